//! Subscriptions named on the `/ws` upgrade URL, made before the peer's first frame is read:
//!
//! ```text
//! GET /ws?topic=chat.lobby&since=12&epoch=1f3a                  resume one exact topic
//! GET /ws?topic=a&since=3&epoch=e1&topic=b&since=9&epoch=e1     resume several
//! GET /ws?topic=chat.lobby&topic=news.*&presence=1              several, with presence events
//! ```
//!
//! `since` and `epoch` belong to the `topic` named just before them; `presence` to all.
//!
//! Why: a client that (re)connects and resubscribes otherwise waits for the `101`, sends
//! `subscribe`, and waits again; with the topics on the URL the server answers `101`, `hello`,
//! each subscription's `ok` and what it replays in one write. One round trip, and on the
//! server one read and one write fewer per (re)connect (issue 19's reconnect storm).
//!
//! Each topic becomes the same `subscribe` request a frame would carry (so rights, patterns
//! and resume are checked by the one code path, and answered in the protocol's own terms:
//! an `error` frame, the connection stays), with `id` `"url.0"`, `"url.1"`, ... in URL order.
//! What cannot be a request at all (no number in `since`, a `since` before any `topic`, too
//! many topics) is refused before the upgrade with a `400` saying why.

use bytes::Bytes;

/// Most topics one URL may name: the HTTP fallbacks' limit (`?topic=` there too).
pub(crate) use super::fallback::cursor::MAX_CURSOR_TOPICS as MAX_URL_TOPICS;

/// One `topic=` and the `since=`/`epoch=` after it.
#[derive(Default)]
struct Named {
    topic: String,
    since: Option<u64>,
    epoch: Option<String>,
}

/// The `subscribe` requests the query asks for (none when it names no topic).
pub(crate) fn requests(query: Option<&str>) -> Result<Vec<Bytes>, String> {
    let Some(query) = query else {
        return Ok(Vec::new());
    };
    let (mut named, mut presence): (Vec<Named>, bool) = (Vec::new(), false);
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        match &*key {
            "topic" if named.len() == MAX_URL_TOPICS => {
                return Err(format!("at most {MAX_URL_TOPICS} topics on the URL"))
            }
            "topic" => named.push(Named {
                topic: value.into_owned(),
                ..Named::default()
            }),
            "since" | "epoch" => {
                let Some(last) = named.last_mut() else {
                    return Err(format!("{key}= belongs after the topic= it resumes"));
                };
                let twice = || format!("{key}= given twice for topic {:?}", last.topic);
                if key == "since" {
                    let offset = value
                        .parse::<u64>()
                        .map_err(|_| format!("since={value:?} is not an offset"))?;
                    if last.since.replace(offset).is_some() {
                        return Err(twice());
                    }
                } else if last.epoch.replace(value.into_owned()).is_some() {
                    return Err(twice());
                }
            }
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
    if presence && named.is_empty() {
        return Err("presence= needs a topic=".into());
    }
    Ok(named
        .iter()
        .enumerate()
        .map(|(i, named)| request(i, named, presence))
        .collect())
}

/// The `subscribe` request of the `i`th topic. Written directly (strings escaped by
/// serde_json): building a `serde_json::Value` first cost a reconnect more than a microsecond.
fn request(i: usize, named: &Named, presence: bool) -> Bytes {
    use std::io::Write as _;
    let mut out = Vec::with_capacity(64 + named.topic.len());
    // Writes into a Vec cannot fail.
    let _ = write!(out, r#"{{"op":"subscribe","id":"url.{i}","topic":"#);
    let _ = serde_json::to_writer(&mut out, &named.topic);
    if let Some(since) = named.since {
        let _ = write!(out, r#","since":{since}"#);
    }
    if let Some(epoch) = &named.epoch {
        out.extend_from_slice(br#","epoch":"#);
        let _ = serde_json::to_writer(&mut out, epoch);
    }
    if presence {
        out.extend_from_slice(br#","presence":true"#);
    }
    out.push(b'}');
    Bytes::from(out)
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
            [r#"{"op":"subscribe","id":"url.0","topic":"chat.lobby","since":12,"epoch":"1f3a"}"#]
        );
        assert_eq!(
            texts("topic=a%22b&topic=news.*&presence=1&token=x").unwrap(),
            [
                r#"{"op":"subscribe","id":"url.0","topic":"a\"b","presence":true}"#,
                r#"{"op":"subscribe","id":"url.1","topic":"news.*","presence":true}"#
            ]
        );
        // What the server's own decoder reads back, escapes and all.
        for request in requests(Some("topic=a%22b%5C%0A%C3%A9&since=1&epoch=e%22")).unwrap() {
            let req = tidings_proto::json::decode_client(&request, false).unwrap();
            match req.op {
                tidings_proto::json::Op::Subscribe {
                    topic,
                    since,
                    epoch,
                    ..
                } => {
                    assert_eq!(topic, "a\"b\\\né");
                    assert_eq!(since, Some(1));
                    assert_eq!(epoch.as_deref(), Some("e\""));
                }
                other => panic!("not a subscribe: {other:?}"),
            }
        }
        assert!(requests(None).unwrap().is_empty());
        assert!(texts("token=abc").unwrap().is_empty());
    }

    #[test]
    fn since_and_epoch_belong_to_the_topic_before_them() {
        let got = texts("topic=a&since=3&epoch=e1&topic=b&topic=c&epoch=e2&since=9").unwrap();
        assert_eq!(
            got,
            [
                r#"{"op":"subscribe","id":"url.0","topic":"a","since":3,"epoch":"e1"}"#,
                r#"{"op":"subscribe","id":"url.1","topic":"b"}"#,
                r#"{"op":"subscribe","id":"url.2","topic":"c","since":9,"epoch":"e2"}"#
            ]
        );
    }

    #[test]
    fn what_cannot_be_a_request_is_refused_with_the_reason() {
        assert!(texts("topic=a&since=x")
            .unwrap_err()
            .contains("not an offset"));
        assert!(texts("topic=a&since=1&since=2")
            .unwrap_err()
            .contains("twice"));
        assert!(texts("since=1&topic=a")
            .unwrap_err()
            .contains("belongs after"));
        assert!(texts("epoch=e&topic=a")
            .unwrap_err()
            .contains("belongs after"));
        assert!(texts("presence=1").unwrap_err().contains("needs a topic"));
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
