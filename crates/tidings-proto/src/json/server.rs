//! What the server sends: messages (the hot path), replies, events.
//!
//! Every frame is a JSON object whose `type` says what it is: `hello`, `ok`, `error`,
//! `message`, `presence` or `pong`.

use bytes::{BufMut, BytesMut};

use super::client::RequestId;
use super::write::{put_base64, put_str, EncodedFrame, Object};
use crate::PayloadKind;

/// The `server` field of `hello`: `tidings/<version>`.
pub const SERVER: &str = concat!("tidings/", env!("CARGO_PKG_VERSION"));

/// The `code` of an error reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The request could not be read or makes no sense.
    BadRequest,
    /// Authenticated, but not allowed to do this.
    Forbidden,
    /// Needs authentication first (or the credentials were wrong).
    Unauthorized,
    /// No such topic, queue or subscription.
    NotFound,
    /// A resume (`since`/`epoch`) cannot be served: history was lost or is too short.
    ResumeUnavailable,
    /// A frame or payload is larger than allowed.
    TooLarge,
    /// The client did not read fast enough and is being disconnected.
    SlowConsumer,
    /// The server is shutting down.
    ShuttingDown,
    /// The shared engine (Redis) is unreachable: nothing was done, try again later.
    Unavailable,
}

impl ErrorCode {
    /// The wire name, e.g. `"bad_request"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::Forbidden => "forbidden",
            Self::Unauthorized => "unauthorized",
            Self::NotFound => "not_found",
            Self::ResumeUnavailable => "resume_unavailable",
            Self::TooLarge => "too_large",
            Self::SlowConsumer => "slow_consumer",
            Self::ShuttingDown => "shutting_down",
            Self::Unavailable => "unavailable",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `{"type":"message","topic":...,"offset":...,"epoch":...,"data"|"text":...}` as one frame,
/// encoded once and shared by every subscriber.
///
/// - `Json`: a text frame with `"data":<payload spliced verbatim>`;
/// - `Text`: a text frame with `"text":"<payload, escaped>"`;
/// - `Binary`: a binary frame: the header object without data or text, `\n`, the raw bytes.
///
/// A `Text` or `Json` payload that is not valid UTF-8 (which the hub should never store) is
/// sent as `Binary` rather than as a broken text frame.
pub fn encode_message(
    topic: &str,
    offset: u64,
    epoch: &str,
    kind: PayloadKind,
    payload: &[u8],
) -> EncodedFrame {
    // Header fields, quotes and a little escaping; a small overshoot is cheaper than a regrow.
    let capacity = 64 + topic.len() + epoch.len() + payload.len() + payload.len() / 8;
    let mut o = message_header(BytesMut::with_capacity(capacity), topic, offset, epoch);
    let text = std::str::from_utf8(payload);
    match (kind, text) {
        (PayloadKind::Json, Ok(json)) => o.raw("data", json_or_null(json)),
        (PayloadKind::Text, Ok(text)) => o.str("text", text),
        _ => {
            let mut out = o.close();
            out.put_u8(b'\n');
            out.put_slice(payload);
            return EncodedFrame {
                binary: true,
                bytes: out.freeze(),
            };
        }
    }
    EncodedFrame {
        binary: false,
        bytes: o.close().freeze(),
    }
}

/// A stored message, borrowed, for the `messages` array of a history reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageRef<'a> {
    pub topic: &'a str,
    pub offset: u64,
    pub epoch: &'a str,
    pub kind: PayloadKind,
    pub payload: &'a [u8],
}

/// A subscriber, for the `members` array of a presence reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member<'a> {
    pub client: &'a str,
    /// `None` when anonymous (sent as `null`).
    pub user: Option<&'a str>,
    /// Presence info (a token's `info` claim): JSON text, written as it is; left out when
    /// `None`. The caller vouches that it is valid JSON.
    pub info: Option<&'a str>,
}

/// Whether a presence event is a join or a leave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PresenceEvent {
    Join,
    Leave,
}

/// `{"type":"hello","client":"c17","server":"tidings/0.1.0"}`, the first frame of a session.
/// Pass [`SERVER`] as `server`.
pub fn encode_hello(client: &str, server: &str) -> String {
    let mut o = Object::new(Vec::new(), "type", "hello");
    o.str("client", client);
    o.str("server", server);
    finish(o)
}

/// `{"type":"pong","id":6}` (without `id` when the ping had none).
pub fn encode_pong(id: Option<&RequestId>) -> String {
    let mut o = Object::new(Vec::new(), "type", "pong");
    if let Some(id) = id {
        o.raw("id", id.as_json());
    }
    finish(o)
}

/// `{"type":"presence","topic":"chat.lobby","event":"join","client":"c2","user":"bob"}`;
/// `user` is `null` when anonymous.
pub fn encode_presence(
    topic: &str,
    event: PresenceEvent,
    client: &str,
    user: Option<&str>,
) -> String {
    encode_presence_info(topic, event, client, user, None)
}

/// [`encode_presence`] with the member's presence `info` (JSON text, written as it is:
/// the caller vouches that it is valid JSON), as `"info":...` after `user`.
pub fn encode_presence_info(
    topic: &str,
    event: PresenceEvent,
    client: &str,
    user: Option<&str>,
    info: Option<&str>,
) -> String {
    let mut o = Object::new(Vec::new(), "type", "presence");
    o.str("topic", topic);
    o.str(
        "event",
        match event {
            PresenceEvent::Join => "join",
            PresenceEvent::Leave => "leave",
        },
    );
    o.str("client", client);
    o.opt_str("user", user);
    if let Some(info) = info {
        o.raw("info", info);
    }
    finish(o)
}

/// Builds an `ok` or `error` reply, field by field, without a `serde_json::Value`:
///
/// ```
/// use tidings_proto::json::{ErrorCode, ReplyBuilder, RequestId};
/// let id = RequestId::from(1);
/// let ok = ReplyBuilder::ok(Some(&id)).string("epoch", "1f3a").number("offset", 12).finish();
/// assert_eq!(ok, r#"{"type":"ok","id":1,"epoch":"1f3a","offset":12}"#);
/// let err = ReplyBuilder::error(None, ErrorCode::ResumeUnavailable, "history starts at 40")
///     .number("earliest", 40)
///     .finish();
/// assert_eq!(
///     err,
///     r#"{"type":"error","code":"resume_unavailable","message":"history starts at 40","earliest":40}"#
/// );
/// ```
#[derive(Debug)]
#[must_use]
pub struct ReplyBuilder {
    object: Object<Vec<u8>>,
}

impl ReplyBuilder {
    /// `{"type":"ok","id":...`.
    pub fn ok(id: Option<&RequestId>) -> Self {
        Self::open("ok", id)
    }

    /// `{"type":"error","id":...,"code":...,"message":...`.
    pub fn error(id: Option<&RequestId>, code: ErrorCode, message: &str) -> Self {
        Self::open("error", id)
            .string("code", code.as_str())
            .string("message", message)
    }

    fn open(kind: &str, id: Option<&RequestId>) -> Self {
        let mut object = Object::new(Vec::new(), "type", kind);
        if let Some(id) = id {
            object.raw("id", id.as_json());
        }
        Self { object }
    }

    /// Adds a string field.
    pub fn string(mut self, key: &str, value: &str) -> Self {
        self.object.str(key, value);
        self
    }

    /// Adds a number field.
    pub fn number(mut self, key: &str, value: u64) -> Self {
        self.object.u64(key, value);
        self
    }

    /// Adds a boolean field.
    pub fn boolean(mut self, key: &str, value: bool) -> Self {
        self.object.raw(key, if value { "true" } else { "false" });
        self
    }

    /// Adds a field whose value is already JSON text; `json` must be one JSON value.
    pub fn raw(mut self, key: &str, json: &str) -> Self {
        self.object.raw(key, json_or_null(json));
        self
    }

    /// Adds `"members":[{"client":"c1","user":"alice"},...]` (user `null` when anonymous).
    pub fn members<'a>(mut self, key: &str, members: impl IntoIterator<Item = Member<'a>>) -> Self {
        let out = self.object.key(key);
        out.put_u8(b'[');
        for (i, member) in members.into_iter().enumerate() {
            if i > 0 {
                out.put_u8(b',');
            }
            out.put_slice(b"{\"client\":");
            put_str(out, member.client);
            out.put_slice(b",\"user\":");
            match member.user {
                Some(user) => put_str(out, user),
                None => out.put_slice(b"null"),
            }
            if let Some(info) = member.info {
                out.put_slice(b",\"info\":");
                out.put_slice(info.as_bytes());
            }
            out.put_u8(b'}');
        }
        out.put_u8(b']');
        self
    }

    /// Adds `"messages":[{"type":"message",...},...]`. Inside a JSON document a binary
    /// payload cannot be raw bytes, so it is sent as `"base64":"..."` (standard alphabet,
    /// padded) instead of `data`/`text`.
    pub fn messages<'a>(
        mut self,
        key: &str,
        messages: impl IntoIterator<Item = MessageRef<'a>>,
    ) -> Self {
        self.object.key(key).put_u8(b'[');
        for (i, m) in messages.into_iter().enumerate() {
            if i > 0 {
                self.object.out.put_u8(b',');
            }
            let mut o = message_header(&mut self.object.out, m.topic, m.offset, m.epoch);
            match (m.kind, std::str::from_utf8(m.payload)) {
                (PayloadKind::Json, Ok(json)) => o.raw("data", json_or_null(json)),
                (PayloadKind::Text, Ok(text)) => o.str("text", text),
                _ => put_base64(o.key("base64"), m.payload),
            }
            o.close();
        }
        self.object.out.put_u8(b']');
        self
    }

    /// The finished reply, for a text frame.
    pub fn finish(self) -> String {
        finish(self.object)
    }
}

/// `{"type":"message","topic":...,"offset":...,"epoch":...` (left open).
fn message_header<B: BufMut>(out: B, topic: &str, offset: u64, epoch: &str) -> Object<B> {
    let mut o = Object::new(out, "type", "message");
    o.str("topic", topic);
    o.u64("offset", offset);
    o.str("epoch", epoch);
    o
}

/// Raw JSON to splice; empty (or blank) text would leave `"key":` without a value.
fn json_or_null(json: &str) -> &str {
    if json.trim().is_empty() {
        "null"
    } else {
        json
    }
}

fn finish(object: Object<Vec<u8>>) -> String {
    // Everything written is UTF-8 (escaped strings, digits, raw JSON from `&str`), so the
    // lossy conversion never replaces anything; it only avoids an `unwrap`.
    match String::from_utf8(object.close()) {
        Ok(text) => text,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}
