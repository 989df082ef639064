//! What an SSE, long-poll or streaming request asks for: topics, where to resume, options.
//!
//! ```text
//! GET /sse?topic=chat.lobby&topic=news.*                    live from now
//! GET /poll?topic=chat.lobby&since=12&epoch=8b085532        resume one exact topic
//! GET /stream?topic=a&topic=b&cursor=<cursor>               resume where a cursor says
//! GET /sse?topic=chat.lobby&user=ann&password=secret         log in (EventSource cannot
//!                                                            send an Authorization header)
//! ```

use super::cursor::{Cursor, MAX_CURSOR_TOPICS};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FeedRequest {
    pub(crate) topics: Vec<String>,
    pub(crate) cursor: Cursor,
    /// `/poll` only: seconds to hold the request when nothing is new.
    pub(crate) timeout_secs: Option<u64>,
    /// `user=` and `password=` (empty when absent): the session's identity, so presence shows
    /// who it is. HTTP Basic auth, when sent, wins.
    pub(crate) login: Option<(String, String)>,
}

impl FeedRequest {
    /// Parses the query string; `last_event_id` (SSE reconnects) wins over `cursor=`.
    pub(crate) fn parse(query: &str, last_event_id: Option<&str>) -> Result<FeedRequest, String> {
        let mut req = FeedRequest::default();
        let (mut since, mut epoch, mut cursor) = (None, None, None);
        let (mut user, mut password) = (None, None);
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            match &*key {
                "topic" => req.topics.push(value.into_owned()),
                "since" => {
                    since = Some(
                        value
                            .parse::<u64>()
                            .map_err(|_| format!("since={value:?} is not an offset"))?,
                    )
                }
                "epoch" => epoch = Some(value.into_owned()),
                "cursor" => cursor = Some(value.into_owned()),
                "user" => user = Some(value.into_owned()),
                "password" => password = Some(value.into_owned()),
                "timeout" => {
                    req.timeout_secs = Some(
                        value
                            .parse::<u64>()
                            .map_err(|_| format!("timeout={value:?} is not a number of seconds"))?,
                    )
                }
                _ => {}
            }
        }
        if let Some(user) = user {
            req.login = Some((user, password.unwrap_or_default()));
        } else if password.is_some() {
            return Err("password= needs user=".into());
        }
        if req.topics.is_empty() {
            return Err("name at least one topic: ?topic=chat.lobby".into());
        }
        if req.topics.len() > MAX_CURSOR_TOPICS {
            return Err(format!("at most {MAX_CURSOR_TOPICS} topics per request"));
        }
        if let Some(text) = last_event_id
            .filter(|t| !t.is_empty())
            .or(cursor.as_deref())
        {
            req.cursor = Cursor::decode(text)?;
        }
        if let Some(since) = since {
            let [topic] = req.topics.as_slice() else {
                return Err("since= needs exactly one topic; use cursor= for several".into());
            };
            req.cursor
                .advance(topic, since, epoch.as_deref().unwrap_or(""));
        }
        Ok(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_topics_since_and_cursor() {
        let r = FeedRequest::parse("topic=chat.lobby&since=12&epoch=e1", None).unwrap();
        assert_eq!(r.topics, ["chat.lobby"]);
        assert_eq!(r.cursor.get("chat.lobby"), Some(&(12, "e1".to_owned())));
        let mut c = Cursor::default();
        c.advance("a", 3, "x");
        let r = FeedRequest::parse("topic=a&topic=b.*&cursor=ignored", Some(&c.encode())).unwrap();
        assert_eq!(r.cursor, c);
        assert!(FeedRequest::parse("", None).is_err());
        assert!(FeedRequest::parse("topic=a&topic=b&since=1", None).is_err());
        assert!(FeedRequest::parse("topic=a&since=x", None).is_err());
        let r = FeedRequest::parse("topic=a&user=ann%20b&password=pw", None).unwrap();
        assert_eq!(r.login, Some(("ann b".to_owned(), "pw".to_owned())));
        let r = FeedRequest::parse("topic=a&user=ann", None).unwrap();
        assert_eq!(r.login, Some(("ann".to_owned(), String::new())));
        assert!(FeedRequest::parse("topic=a&password=pw", None).is_err());
    }
}
