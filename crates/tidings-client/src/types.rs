//! What the client hands back: payloads, messages, events, and the answers to requests.

use bytes::Bytes;

/// A message payload, whichever protocol carried it.
///
/// The line protocol has no type tag: what it delivers is [`Text`](Self::Text) when the bytes
/// are valid UTF-8 and [`Binary`](Self::Binary) otherwise, and a [`Json`](Self::Json) payload
/// published over it arrives as `Text`. WebSocket keeps all three kinds apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// UTF-8 text.
    Text(String),
    /// One JSON document, as JSON text. Over WebSocket it travels as a JSON value (`"data"`),
    /// so the client checks that it parses before sending it.
    Json(String),
    /// Arbitrary bytes (WebSocket binary frames, `BPUB`/`BMSG` on the line protocol).
    Binary(Bytes),
}

impl Payload {
    /// The payload's bytes: the text, the JSON text, or the binary data.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Payload::Text(s) | Payload::Json(s) => s.as_bytes(),
            Payload::Binary(b) => b,
        }
    }

    /// The payload as text, when it is text or JSON.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Payload::Text(s) | Payload::Json(s) => Some(s),
            Payload::Binary(_) => None,
        }
    }

    /// The payload's bytes, without copying a binary payload.
    pub fn into_bytes(self) -> Bytes {
        match self {
            Payload::Text(s) | Payload::Json(s) => Bytes::from(s),
            Payload::Binary(b) => b,
        }
    }

    /// Text when `bytes` are valid UTF-8, binary otherwise (how the line protocol reads them).
    pub(crate) fn text_or_binary(bytes: Bytes) -> Payload {
        match std::str::from_utf8(&bytes) {
            Ok(text) => Payload::Text(text.to_owned()),
            Err(_) => Payload::Binary(bytes),
        }
    }
}

impl From<&str> for Payload {
    fn from(s: &str) -> Self {
        Payload::Text(s.to_owned())
    }
}

impl From<String> for Payload {
    fn from(s: String) -> Self {
        Payload::Text(s)
    }
}

impl From<Bytes> for Payload {
    fn from(b: Bytes) -> Self {
        Payload::Binary(b)
    }
}

impl From<Vec<u8>> for Payload {
    fn from(b: Vec<u8>) -> Self {
        Payload::Binary(Bytes::from(b))
    }
}

impl From<&[u8]> for Payload {
    fn from(b: &[u8]) -> Self {
        Payload::Binary(Bytes::copy_from_slice(b))
    }
}

/// A message delivered on a subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub topic: String,
    /// The topic's offset of this message: 1, 2, 3, ... per topic and epoch.
    pub offset: u64,
    /// The topic's epoch. WebSocket gives it with every message; the line protocol does not,
    /// so there it is the epoch the `SUB` reply named for an exact topic, and `None` for
    /// messages that only a wildcard subscription matched.
    pub epoch: Option<String>,
    pub payload: Payload,
}

/// Something that happened on the connection, in the order it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A message on one of the subscriptions.
    Message(Message),
    /// Someone subscribed to (`joined`) or left a topic this client is subscribed to.
    /// `user` is `None` for anonymous sessions.
    Presence {
        topic: String,
        joined: bool,
        client: String,
        user: Option<String>,
    },
    /// The connection was lost (or the server closed it, saying why). With
    /// [`ClientConfig::reconnect`](crate::ClientConfig::reconnect) the client now retries;
    /// without it, this is the last event.
    Disconnected { reason: String },
    /// Connected again: logged in again and every subscription restored (each exact topic
    /// resumed after the last offset seen, and over WebSocket each topic a pattern
    /// delivered). Messages replayed from history may arrive just
    /// before and just after this event.
    Reconnected,
    /// Resuming `topic` after offset `since` was impossible (history no longer holds what was
    /// missed, or the server restarted and the epoch changed): messages `since + 1` up to
    /// `earliest - 1` are lost. The client continues from `earliest`, the oldest message the
    /// server still has. `reason` is the server's explanation.
    ///
    /// Over WebSocket a gap also comes for a topic of a resumed pattern (and, rarely, when a
    /// resume's live messages do not follow on from its history). When the server cannot name the next offset yet (the topic's history was lost: another epoch,
    /// or `since` is beyond its last offset), `earliest` is 0 and delivery goes on with the
    /// topic's next live message.
    Gap {
        topic: String,
        since: u64,
        earliest: u64,
        reason: String,
    },
}

/// The answer to a subscribe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribed {
    /// The topic's epoch, for an exact topic that already has messages; `None` for patterns
    /// and new topics.
    pub epoch: Option<String>,
    /// The topic's last offset when the subscription started (0 for patterns and new topics).
    pub last_offset: u64,
    /// How many messages from history are delivered ahead of live ones.
    pub replayed: u64,
}

/// The answer to a publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The offset the message got in its topic.
    pub offset: u64,
    /// The topic's epoch. WebSocket reports it; the line protocol's `+OK PUB` does not (`None`).
    pub epoch: Option<String>,
}
