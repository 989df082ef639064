//! The resume cursor of the HTTP transports: per topic, the last offset a client saw and the
//! epoch it belonged to, as one opaque URL-safe string.
//!
//! It is the whole state of a client's position, carried by the client (`cursor=` on `/poll`
//! and `/stream`, the SSE event id that browsers send back as `Last-Event-ID`), so any server
//! can answer the next request: no sticky sessions.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use std::collections::BTreeMap;

/// Most topics a cursor may carry (keeps ids and headers small).
pub(crate) const MAX_CURSOR_TOPICS: usize = 64;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Cursor {
    /// topic -> (last offset seen, its epoch)
    positions: BTreeMap<String, (u64, String)>,
}

impl Cursor {
    pub(crate) fn get(&self, topic: &str) -> Option<&(u64, String)> {
        self.positions.get(topic)
    }

    /// Every position the cursor holds: (topic, last offset seen, epoch).
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, u64, &str)> {
        self.positions
            .iter()
            .map(|(t, (o, e))| (t.as_str(), *o, e.as_str()))
    }

    /// Records that `offset` of `topic` (in `epoch`) was delivered.
    pub(crate) fn advance(&mut self, topic: &str, offset: u64, epoch: &str) {
        let room = self.positions.len() < MAX_CURSOR_TOPICS;
        match self.positions.get_mut(topic) {
            Some(pos) if pos.1 == epoch && pos.0 >= offset => {}
            Some(pos) => *pos = (offset, epoch.to_owned()),
            None if room => {
                self.positions
                    .insert(topic.to_owned(), (offset, epoch.to_owned()));
            }
            None => {}
        }
    }

    /// Base64url of `[["topic",offset,"epoch"],...]`.
    pub(crate) fn encode(&self) -> String {
        let rows: Vec<(&str, u64, &str)> = self
            .positions
            .iter()
            .map(|(t, (o, e))| (t.as_str(), *o, e.as_str()))
            .collect();
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&rows).unwrap_or_default())
    }

    pub(crate) fn decode(text: &str) -> Result<Cursor, String> {
        let bad = || "cursor is not one this server gave out".to_owned();
        let raw = URL_SAFE_NO_PAD
            .decode(text.trim().as_bytes())
            .map_err(|_| bad())?;
        let rows: Vec<(String, u64, String)> = serde_json::from_slice(&raw).map_err(|_| bad())?;
        if rows.len() > MAX_CURSOR_TOPICS {
            return Err(format!(
                "cursor carries more than {MAX_CURSOR_TOPICS} topics"
            ));
        }
        Ok(Cursor {
            positions: rows.into_iter().map(|(t, o, e)| (t, (o, e))).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Cursor;

    #[test]
    fn round_trips_and_only_moves_forward_within_an_epoch() {
        let mut c = Cursor::default();
        c.advance("chat.lobby", 5, "e1");
        c.advance("chat.lobby", 3, "e1");
        c.advance("news", 1, "e2");
        assert_eq!(c.get("chat.lobby"), Some(&(5, "e1".to_owned())));
        let text = c.encode();
        assert!(text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(Cursor::decode(&text).unwrap(), c);
        c.advance("chat.lobby", 1, "e9");
        assert_eq!(
            c.get("chat.lobby"),
            Some(&(1, "e9".to_owned())),
            "a new epoch restarts"
        );
        assert!(Cursor::decode("not a cursor!").is_err());
    }
}
