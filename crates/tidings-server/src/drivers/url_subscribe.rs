//! Subscriptions named on the `/ws` upgrade URL, made before the peer's first frame is read:
//!
//! ```text
//! GET /ws?topic=chat.lobby&since=12&epoch=1f3a     resume one exact topic
//! GET /ws?topic=chat.lobby&topic=news.*&presence=1 several topics, with presence events
//! ```
//!
//! Why: a client that (re)connects and resubscribes otherwise waits for the `101`, sends
//! `subscribe`, and waits again; with the topics on the URL the server answers `101`, `hello`,
//! each subscription's `ok` and what it replays in one write. One round trip, and on the
//! server one read and one write, fewer per (re)connect (issue 19's reconnect storm).
//!
//! Each topic becomes the same `subscribe` request a frame would carry (so rights, patterns
//! and resume are checked by the one code path, and answered in the protocol's own terms:
//! an `error` frame, the connection stays), with `id` `"url.0"`, `"url.1"`, ... in URL order.
//! What cannot be a request at all (no number in `since`, too many topics) is refused before
//! the upgrade with a `400` saying why.

use bytes::Bytes;

/// Most topics one URL may name: the HTTP fallbacks' limit (`?topic=` there too).
pub(crate) const MAX_URL_TOPICS: usize = 64;

/// The `subscribe` requests the query asks for (none when it names no topic).
pub(crate) fn requests(query: Option<&str>) -> Result<Vec<Bytes>, String> {
    let Some(query) = query else {
        return Ok(Vec::new());
    };
    let (mut topics, mut since, mut epoch, mut presence) = (Vec::new(), None, None, false);
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        match &*key {
            "topic" if topics.len() == MAX_URL_TOPICS => {
                return Err(format!("at most {MAX_URL_TOPICS} topics on the URL"))
            }
            "topic" => topics.push(value.into_owned()),
            "since" => {
                let offset = value
                    .parse::<u64>()
                    .map_err(|_| format!("since={value:?} is not an offset"))?;
                since = Some(offset);
            }
            "epoch" => epoch = Some(value.into_owned()),
            "presence" => {
                presence = match &*value {
                    "1" | "true" => true,
                    "0" | "false" => false,
                    _ => return Err(format!("presence={value:?}: say 1 or 0")),
                }
            }
            // `token=` (read before the upgrade) and whatever else a client adds.
            _ => {}
        }
    }
    if topics.is_empty() {
        return match (since, epoch) {
            (None, None) if !presence => Ok(Vec::new()),
            _ => Err("since=, epoch= and presence= need a topic=".into()),
        };
    }
    if (since.is_some() || epoch.is_some()) && topics.len() != 1 {
        return Err("since= and epoch= resume exactly one topic; name it alone".into());
    }
    Ok(topics
        .iter()
        .enumerate()
        .map(|(i, topic)| {
            let mut request = serde_json::json!({
                "op": "subscribe",
                "id": format!("url.{i}"),
                "topic": topic,
            });
            if let Some(since) = since {
                request["since"] = since.into();
            }
            if let Some(epoch) = &epoch {
                request["epoch"] = epoch.as_str().into();
            }
            if presence {
                request["presence"] = true.into();
            }
            Bytes::from(request.to_string())
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(query: &str) -> Result<Vec<String>, String> {
        requests(Some(query)).map(|all| {
            all.iter()
                .map(|b| String::from_utf8(b.to_vec()).unwrap())
                .collect()
        })
    }

    #[test]
    fn each_topic_is_one_subscribe_request_numbered_in_url_order() {
        assert_eq!(
            texts("topic=chat.lobby&since=12&epoch=1f3a").unwrap(),
            [r#"{"epoch":"1f3a","id":"url.0","op":"subscribe","since":12,"topic":"chat.lobby"}"#]
        );
        assert_eq!(
            texts("topic=a%22b&topic=news.*&presence=1&token=x").unwrap(),
            [
                r#"{"id":"url.0","op":"subscribe","presence":true,"topic":"a\"b"}"#,
                r#"{"id":"url.1","op":"subscribe","presence":true,"topic":"news.*"}"#
            ]
        );
        assert!(requests(None).unwrap().is_empty());
        assert!(texts("token=abc").unwrap().is_empty());
    }

    #[test]
    fn what_cannot_be_a_request_is_refused_with_the_reason() {
        assert!(texts("topic=a&since=x")
            .unwrap_err()
            .contains("not an offset"));
        assert!(texts("topic=a&topic=b&since=1")
            .unwrap_err()
            .contains("exactly one"));
        assert!(texts("since=1").unwrap_err().contains("need a topic"));
        assert!(texts("topic=a&presence=yes")
            .unwrap_err()
            .contains("say 1 or 0"));
        let many = (0..=MAX_URL_TOPICS)
            .map(|i| format!("topic=t{i}"))
            .collect::<Vec<_>>()
            .join("&");
        assert!(texts(&many).unwrap_err().contains("at most 64"));
        let most = (0..MAX_URL_TOPICS)
            .map(|i| format!("topic=t{i}"))
            .collect::<Vec<_>>()
            .join("&");
        assert_eq!(texts(&most).unwrap().len(), MAX_URL_TOPICS);
    }
}
