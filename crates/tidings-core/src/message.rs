//! A published message: stored once, shared by history and every subscriber's outbox.

use bytes::Bytes;
use std::sync::{Arc, OnceLock};

/// What the payload bytes are, so each protocol can render them faithfully.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PayloadKind {
    /// UTF-8 text.
    Text,
    /// A JSON document, stored as its JSON text (spliced, never re-encoded).
    Json,
    /// Arbitrary bytes.
    Binary,
}

/// One cached wire encoding per protocol family, filled on first use by a driver.
///
/// Why: a broadcast to 5k WebSocket subscribers must encode the frame once, not 5k times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncodingSlot {
    Line = 0,
    Json = 1,
    Stomp = 2,
    Other = 3,
    /// One UDP `MESSAGE` datagram, sent as is to every UDP subscriber.
    Udp = 4,
    /// A Socket.IO `message` event packet, shared by every root-namespace subscriber.
    SocketIo = 5,
    /// A message quoted as one SockJS message (its `/ws` JSON as a JSON string).
    SockJs = 6,
}

const SLOTS: usize = 7;

/// A message as stored in history and delivered to subscribers.
#[derive(Debug)]
pub struct Message {
    pub topic: Arc<str>,
    /// Position in the topic, starting at 1, increasing by one per message.
    pub offset: u64,
    /// Changes whenever the topic's history was lost (restart, topic reclaimed).
    pub epoch: Arc<str>,
    pub kind: PayloadKind,
    pub payload: Bytes,
    /// Extra headers (STOMP user headers travel here). Empty for most messages.
    pub headers: Vec<(Arc<str>, Arc<str>)>,
    /// Milliseconds on the hub's clock when it was published (drives age-based history).
    pub published_at: u64,
    /// A queue message delivered again (after a NACK or a consumer that went away).
    pub redelivered: bool,
    encoded: [OnceLock<Bytes>; SLOTS],
}

impl Message {
    pub fn new(
        topic: Arc<str>,
        offset: u64,
        epoch: Arc<str>,
        kind: PayloadKind,
        payload: Bytes,
        published_at: u64,
    ) -> Self {
        Message {
            topic,
            offset,
            epoch,
            kind,
            payload,
            headers: Vec::new(),
            published_at,
            redelivered: false,
            encoded: Default::default(),
        }
    }

    /// The same message marked redelivered, with its own (empty) encoding cache.
    pub fn redelivery(&self) -> Message {
        Message {
            headers: self.headers.clone(),
            redelivered: true,
            ..Message::new(
                self.topic.clone(),
                self.offset,
                self.epoch.clone(),
                self.kind,
                self.payload.clone(),
                self.published_at,
            )
        }
    }

    /// Bytes this message accounts for in history, queue and outbox limits: its payload,
    /// name and headers (a STOMP frame may carry far more in headers than in its body).
    pub fn cost(&self) -> usize {
        cost(&self.topic, &self.payload, &self.headers)
    }

    /// The protocol's encoding of this message, computed at most once.
    pub fn encoded(&self, slot: EncodingSlot, encode: impl FnOnce(&Message) -> Bytes) -> Bytes {
        self.encoded[slot as usize]
            .get_or_init(|| encode(self))
            .clone()
    }
}

/// A message before a topic log numbered it: what a publisher gives. The log adds the topic's
/// next offset, its epoch and the time, and turns it into a [`Message`].
#[derive(Debug, Clone)]
pub struct Draft {
    pub kind: PayloadKind,
    pub payload: Bytes,
    pub headers: Vec<(Arc<str>, Arc<str>)>,
}

/// What a message of `name` with `payload` and `headers` costs ([`Message::cost`]), known
/// before the message exists.
pub fn cost(name: &str, payload: &[u8], headers: &[(Arc<str>, Arc<str>)]) -> usize {
    let headers: usize = headers.iter().map(|(k, v)| k.len() + v.len() + 16).sum();
    payload.len() + name.len() + 64 + headers
}

impl Draft {
    /// The message numbered `offset` in `epoch` of `topic`, published at `now`.
    pub fn into_message(self, topic: Arc<str>, offset: u64, epoch: Arc<str>, now: u64) -> Message {
        let mut msg = Message::new(topic, offset, epoch, self.kind, self.payload, now);
        msg.headers = self.headers;
        msg
    }
}
