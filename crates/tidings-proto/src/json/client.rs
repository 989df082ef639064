//! What clients send: one frame in, one [`ClientOp`] out (and the reverse, for Rust clients).
//!
//! A text frame is one JSON object. A binary frame is a JSON object, `\n`, then raw payload
//! bytes, which a `publish` stores as a [`PayloadKind::Binary`] payload.

use std::borrow::Cow;

use bytes::Bytes;
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use super::server::{ErrorCode, ReplyBuilder};
use super::write::{put_str, EncodedFrame, Object};
use crate::PayloadKind;

/// The `id` of a request, kept as the raw JSON text the client sent (a number or a string) so
/// that replies echo it verbatim: `7`, `7.0` and `"7"` are three different ids.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RequestId(Box<str>);

impl RequestId {
    /// The id as JSON text, ready to splice into a reply.
    pub fn as_json(&self) -> &str {
        &self.0
    }

    /// Accepts the raw JSON of an `id` field if it is a number or a string (one that holds
    /// only characters, so that echoing it keeps the reply valid for strict parsers).
    fn from_raw(raw: &RawValue) -> Option<Self> {
        let text = raw.get();
        match text.as_bytes().first() {
            Some(b'"') if !has_lone_surrogate(text) => Some(Self(text.into())),
            Some(b'"') => None,
            Some(b'-' | b'0'..=b'9') => Some(Self(text.into())),
            _ => None,
        }
    }
}

impl From<u64> for RequestId {
    fn from(n: u64) -> Self {
        Self(n.to_string().into())
    }
}

impl From<&str> for RequestId {
    fn from(s: &str) -> Self {
        let mut json = Vec::with_capacity(s.len() + 2);
        put_str(&mut json, s);
        // `put_str` writes valid UTF-8, so nothing is replaced here.
        Self(String::from_utf8_lossy(&json).into())
    }
}

/// One request from a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientOp {
    /// Echoed in the reply; `None` when absent or `null`.
    pub id: Option<RequestId>,
    /// What the client asks for.
    pub op: Op,
}

/// Most entries a subscribe's `positions` may hold (the server's bound on the history reads
/// one subscribe causes).
pub const MAX_POSITIONS: usize = 1024;

/// One entry of a pattern subscribe's `positions`: `{"topic":"chat.a","since":12,"epoch":"1f3a"}`,
/// the last offset the client saw of one concrete topic the pattern matches (and that
/// topic's epoch, when known).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub topic: String,
    pub since: u64,
    pub epoch: Option<String>,
}

/// The operations of the native protocol, named by the `op` field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `{"op":"subscribe","topic":"chat.*","since":12,"epoch":"1f3a","presence":true}`:
    /// subscribe to a topic or pattern; with `since`, first replay what came after that offset
    /// (of that epoch, when given); with `presence`, also receive join/leave events.
    ///
    /// A pattern resumes per concrete topic with `positions` (at most [`MAX_POSITIONS`]):
    /// `{"op":"subscribe","topic":"chat.*","positions":[{"topic":"chat.a","since":12,"epoch":"1f3a"}]}`.
    /// Empty when absent.
    Subscribe {
        topic: String,
        since: Option<u64>,
        epoch: Option<String>,
        positions: Vec<Position>,
        presence: bool,
    },
    /// `{"op":"unsubscribe","topic":"chat.*"}`.
    Unsubscribe { topic: String },
    /// `{"op":"publish","topic":"chat.lobby","data":{...}}` (kind `Json`, payload = the JSON
    /// text as sent), `"text":"..."` (kind `Text`), or a binary frame (kind `Binary`).
    /// `ack: true` asks for an `ok` reply carrying the offset (default false).
    Publish {
        topic: String,
        kind: PayloadKind,
        payload: Bytes,
        ack: bool,
    },
    /// `{"op":"history","topic":"chat.lobby","since":0,"limit":100}`: stored messages after
    /// offset `since` (default 0), at most `limit` of them (default: the server's).
    History {
        topic: String,
        since: u64,
        limit: Option<usize>,
    },
    /// `{"op":"presence","topic":"chat.lobby"}`: who is subscribed.
    Presence { topic: String },
    /// `{"op":"ping"}`: answered by `{"type":"pong"}`.
    Ping,
    /// `{"op":"auth","user":"alice","password":"secret"}`.
    Auth { user: String, password: String },
    /// `{"op":"auth","token":"<jwt>"}`: log in with a signed token instead of a password.
    AuthToken { token: String },
    /// `{"op":"refresh","token":"<jwt>"}`: a fresh token for the same user before the
    /// current one expires (its rights replace the old ones).
    Refresh { token: String },
}

impl Op {
    /// The value of the `op` field.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Subscribe { .. } => "subscribe",
            Self::Unsubscribe { .. } => "unsubscribe",
            Self::Publish { .. } => "publish",
            Self::History { .. } => "history",
            Self::Presence { .. } => "presence",
            Self::Ping => "ping",
            Self::Auth { .. } | Self::AuthToken { .. } => "auth",
            Self::Refresh { .. } => "refresh",
        }
    }
}

/// A request that could not be read. Maps to an `error` reply with code `bad_request`
/// ([`to_reply`](Self::to_reply)); the connection stays open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}")]
#[non_exhaustive]
pub struct JsonError {
    /// The request's id, when the frame was readable far enough to find it.
    pub id: Option<RequestId>,
    /// What was wrong.
    pub kind: JsonErrorKind,
}

impl JsonError {
    /// The error code for the reply; always [`ErrorCode::BadRequest`] for decoding errors.
    pub fn code(&self) -> ErrorCode {
        ErrorCode::BadRequest
    }

    /// The `{"type":"error",...}` reply for this error.
    pub fn to_reply(&self) -> String {
        ReplyBuilder::error(self.id.as_ref(), self.code(), &self.to_string()).finish()
    }
}

/// What was wrong with a request. The `Display` text is the `message` of the error reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JsonErrorKind {
    /// Not JSON (or more than one value).
    #[error("invalid JSON at line {line} column {column}: {message}")]
    Syntax {
        line: usize,
        column: usize,
        message: String,
    },
    /// JSON, but not an object.
    #[error("a request must be a JSON object")]
    NotAnObject,
    /// An object that serde_json refused as a whole (for instance, a duplicate field).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// No `op` field.
    #[error("missing \"op\"; expected one of {OPS}")]
    MissingOp,
    /// An `op` this server does not know.
    #[error("unknown op {op:?}; expected one of {OPS}")]
    UnknownOp { op: String },
    /// A required field is missing (or `null`).
    #[error("{op} needs \"{field}\"")]
    MissingField {
        op: &'static str,
        field: &'static str,
    },
    /// A field has the wrong JSON type.
    #[error("\"{field}\" must be {expected}")]
    WrongType {
        field: &'static str,
        expected: &'static str,
    },
    /// A publish with both `data` and `text`.
    #[error("publish takes \"data\" or \"text\", not both")]
    DataAndText,
    /// A text-frame publish with neither `data` nor `text`.
    #[error("publish needs \"data\" (any JSON value) or \"text\" (a string), or a binary frame")]
    NoPayload,
    /// A string (or anywhere inside `data`) holds a `\uXXXX` escape of half a UTF-16
    /// surrogate pair without the other half. That is JSON by grammar but not text: strict
    /// parsers refuse it, and `data` and `id` are passed on verbatim.
    #[error("\"{field}\" holds an unpaired surrogate escape (\\ud800 to \\udfff)")]
    LoneSurrogate { field: &'static str },
    /// `positions` holds more than [`MAX_POSITIONS`] entries.
    #[error("\"positions\" holds more than {max} entries")]
    TooManyPositions { max: usize },
    /// An entry of `positions` is not `{"topic":<string>,"since":<number>,"epoch":<string>}`.
    #[error("positions[{index}]: {problem}")]
    BadPosition { index: usize, problem: &'static str },
    /// A binary-frame publish that also has `data` or `text`.
    #[error("a binary publish carries its payload after the header; drop \"data\" and \"text\"")]
    PayloadInBinaryFrame,
    /// A binary frame whose JSON header is not followed by `\n`.
    #[error("a binary frame must hold a JSON object, a newline, then the payload")]
    NoHeaderEnd,
    /// A binary frame with payload bytes for an op other than publish.
    #[error("only publish carries a payload; {op} got {len} bytes after its header")]
    UnexpectedPayload { op: &'static str, len: usize },
}

const OPS: &str = "subscribe, unsubscribe, publish, history, presence, ping, auth";

/// Decodes one client frame: a text frame (`binary == false`) is a JSON object; a binary frame
/// is a JSON object, `\n`, then the raw payload of a publish.
///
/// Unknown fields are ignored. `null` counts as absent, except for `data`, where it is the
/// JSON value `null`.
///
/// Limits: a frame is one whole message, so its size is bounded by the transport that read it
/// (`websocket.max_message`, `http_api.max_body`); nesting is bounded by serde_json's recursion
/// limit (128). Decoding allocates only what the returned op owns.
pub fn decode_client(frame: &[u8], binary: bool) -> Result<ClientOp, JsonError> {
    let no_id = |kind| JsonError { id: None, kind };
    let first = frame.iter().copied().find(|b| !is_json_space(*b));
    if first != Some(b'{') {
        return Err(no_id(not_an_object(frame, binary)));
    }
    let (wire, payload) = if binary {
        let mut stream = serde_json::Deserializer::from_slice(frame).into_iter::<Wire<'_>>();
        let wire = match stream.next() {
            Some(Ok(wire)) => wire,
            Some(Err(e)) => return Err(no_id(from_serde(&e))),
            None => return Err(no_id(JsonErrorKind::NotAnObject)),
        };
        let rest = frame.get(stream.byte_offset()..).unwrap_or_default();
        match rest.iter().position(|b| !matches!(b, b' ' | b'\t' | b'\r')) {
            Some(newline) if rest[newline] == b'\n' => (wire, Some(&rest[newline + 1..])),
            _ => {
                let id = read_id(&wire).ok().flatten();
                let kind = JsonErrorKind::NoHeaderEnd;
                return Err(JsonError { id, kind });
            }
        }
    } else {
        match serde_json::from_slice::<Wire<'_>>(frame) {
            Ok(wire) => (wire, None),
            Err(e) => return Err(no_id(from_serde(&e))),
        }
    };
    let id = read_id(&wire).map_err(no_id)?;
    match read_op(&wire, payload) {
        Ok(op) => Ok(ClientOp { id, op }),
        Err(kind) => Err(JsonError { id, kind }),
    }
}

/// Encodes a request the way [`decode_client`] reads it (for Rust clients and tests).
///
/// A `Text` or `Json` publish whose payload is not valid UTF-8 is sent as a binary frame. A
/// `Json` payload is spliced as it is: it must be one JSON value.
pub fn encode_client(request: &ClientOp) -> EncodedFrame {
    let mut o = Object::new(Vec::new(), "op", request.op.name());
    if let Some(id) = &request.id {
        o.raw("id", id.as_json());
    }
    let mut binary_payload = None;
    match &request.op {
        Op::Subscribe {
            topic,
            since,
            epoch,
            positions,
            presence,
        } => {
            o.str("topic", topic);
            if let Some(since) = since {
                o.u64("since", *since);
            }
            if let Some(epoch) = epoch {
                o.str("epoch", epoch);
            }
            if !positions.is_empty() {
                let out = o.key("positions");
                out.push(b'[');
                for (i, p) in positions.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    let mut entry = Object::new(&mut *out, "topic", &p.topic);
                    entry.u64("since", p.since);
                    if let Some(epoch) = &p.epoch {
                        entry.str("epoch", epoch);
                    }
                    entry.close();
                }
                out.push(b']');
            }
            if *presence {
                o.raw("presence", "true");
            }
        }
        Op::Unsubscribe { topic } | Op::Presence { topic } => o.str("topic", topic),
        Op::Publish {
            topic,
            kind,
            payload,
            ack,
        } => {
            o.str("topic", topic);
            if *ack {
                o.raw("ack", "true");
            }
            match (kind, std::str::from_utf8(payload)) {
                (PayloadKind::Json, Ok(json)) => o.raw("data", json),
                (PayloadKind::Text, Ok(text)) => o.str("text", text),
                _ => binary_payload = Some(payload),
            }
        }
        Op::History {
            topic,
            since,
            limit,
        } => {
            o.str("topic", topic);
            o.u64("since", *since);
            if let Some(limit) = limit {
                o.u64("limit", *limit as u64);
            }
        }
        Op::Ping => {}
        Op::Auth { user, password } => {
            o.str("user", user);
            o.str("password", password);
        }
        Op::AuthToken { token } | Op::Refresh { token } => o.str("token", token),
    }
    let mut bytes = o.close();
    let binary = binary_payload.is_some();
    if let Some(payload) = binary_payload {
        bytes.push(b'\n');
        bytes.extend_from_slice(payload);
    }
    EncodedFrame {
        binary,
        bytes: Bytes::from(bytes),
    }
}

/// Every field a request may have, each kept as raw JSON so that a field of the wrong type
/// is reported by name (and after the id was read) rather than failing the whole object.
#[derive(Deserialize)]
struct Wire<'a> {
    #[serde(borrow, default, deserialize_with = "present")]
    op: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    id: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    topic: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    since: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    epoch: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    presence: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    positions: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    data: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    text: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    ack: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    limit: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    user: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    password: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    token: Option<&'a RawValue>,
}

/// A field that is there, even as `null` (a plain `Option` would turn `null` into `None`).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

fn is_json_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// The error for a frame that does not start with `{`: a syntax error if it is not JSON.
fn not_an_object(frame: &[u8], binary: bool) -> JsonErrorKind {
    if binary {
        return JsonErrorKind::NotAnObject;
    }
    match serde_json::from_slice::<serde::de::IgnoredAny>(frame) {
        Ok(_) => JsonErrorKind::NotAnObject,
        Err(e) => from_serde(&e),
    }
}

fn from_serde(e: &serde_json::Error) -> JsonErrorKind {
    let text = e.to_string();
    let location = format!(" at line {} column {}", e.line(), e.column());
    let message = text.strip_suffix(&location).unwrap_or(&text).to_owned();
    if e.is_syntax() || e.is_eof() {
        JsonErrorKind::Syntax {
            line: e.line(),
            column: e.column(),
            message,
        }
    } else {
        JsonErrorKind::Invalid(message)
    }
}

fn is_null(raw: &RawValue) -> bool {
    raw.get() == "null"
}

fn read_id(wire: &Wire<'_>) -> Result<Option<RequestId>, JsonErrorKind> {
    match wire.id {
        None => Ok(None),
        Some(raw) if is_null(raw) => Ok(None),
        Some(raw) if raw.get().starts_with('"') && has_lone_surrogate(raw.get()) => {
            Err(JsonErrorKind::LoneSurrogate { field: "id" })
        }
        Some(raw) => RequestId::from_raw(raw)
            .map(Some)
            .ok_or(JsonErrorKind::WrongType {
                field: "id",
                expected: "a number or a string",
            }),
    }
}

/// Parses an optional field of type `T`; `null` counts as absent.
fn field<'a, T: Deserialize<'a>>(
    raw: Option<&'a RawValue>,
    field: &'static str,
    expected: &'static str,
) -> Result<Option<T>, JsonErrorKind> {
    match raw {
        None => Ok(None),
        Some(raw) if is_null(raw) => Ok(None),
        Some(raw) if raw.get().starts_with('"') && has_lone_surrogate(raw.get()) => {
            Err(JsonErrorKind::LoneSurrogate { field })
        }
        Some(raw) => serde_json::from_str(raw.get())
            .map(Some)
            .map_err(|_| JsonErrorKind::WrongType { field, expected }),
    }
}

fn string(raw: Option<&RawValue>, name: &'static str) -> Result<Option<String>, JsonErrorKind> {
    field::<String>(raw, name, "a string")
}

fn required(
    raw: Option<&RawValue>,
    op: &'static str,
    name: &'static str,
) -> Result<String, JsonErrorKind> {
    string(raw, name)?.ok_or(JsonErrorKind::MissingField { op, field: name })
}

fn number(raw: Option<&RawValue>, name: &'static str) -> Result<Option<u64>, JsonErrorKind> {
    field::<u64>(raw, name, "a whole number, 0 or more")
}

fn boolean(raw: Option<&RawValue>, name: &'static str) -> Result<bool, JsonErrorKind> {
    Ok(field::<bool>(raw, name, "true or false")?.unwrap_or(false))
}

/// Reads the operation; `payload` is the part of a binary frame after the header.
fn read_op(wire: &Wire<'_>, payload: Option<&[u8]>) -> Result<Op, JsonErrorKind> {
    let name: Cow<'_, str> = field(wire.op, "op", "a string")?.ok_or(JsonErrorKind::MissingOp)?;
    let op = match &*name {
        "subscribe" => Op::Subscribe {
            topic: required(wire.topic, "subscribe", "topic")?,
            since: number(wire.since, "since")?,
            epoch: string(wire.epoch, "epoch")?,
            positions: positions(wire.positions)?,
            presence: boolean(wire.presence, "presence")?,
        },
        "unsubscribe" => Op::Unsubscribe {
            topic: required(wire.topic, "unsubscribe", "topic")?,
        },
        "publish" => return read_publish(wire, payload),
        "history" => Op::History {
            topic: required(wire.topic, "history", "topic")?,
            since: number(wire.since, "since")?.unwrap_or(0),
            limit: number(wire.limit, "limit")?.map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
        },
        "presence" => Op::Presence {
            topic: required(wire.topic, "presence", "topic")?,
        },
        "ping" => Op::Ping,
        // A token, when given, is the credential; otherwise user and password.
        "auth" if wire.token.is_some() => Op::AuthToken {
            token: required(wire.token, "auth", "token")?,
        },
        "auth" => Op::Auth {
            user: required(wire.user, "auth", "user")?,
            password: required(wire.password, "auth", "password")?,
        },
        "refresh" => Op::Refresh {
            token: required(wire.token, "refresh", "token")?,
        },
        _ => {
            return Err(JsonErrorKind::UnknownOp {
                op: name.chars().take(64).collect(),
            })
        }
    };
    match payload {
        Some(bytes) if !bytes.is_empty() => Err(JsonErrorKind::UnexpectedPayload {
            op: op.name(),
            len: bytes.len(),
        }),
        _ => Ok(op),
    }
}

/// Reads `positions`: check (an array of at most [`MAX_POSITIONS`] entries, each kept raw,
/// so an oversized list costs no allocation beyond the bound), then parse entry by entry.
fn positions(raw: Option<&RawValue>) -> Result<Vec<Position>, JsonErrorKind> {
    let raw = match raw {
        Some(raw) if !is_null(raw) => raw,
        _ => return Ok(Vec::new()),
    };
    if !raw.get().starts_with('[') {
        return Err(JsonErrorKind::WrongType {
            field: "positions",
            expected: "an array of {\"topic\",\"since\",\"epoch\"} objects",
        });
    }
    let entries = serde_json::from_str::<BoundedRaw<'_>>(raw.get())
        .map_err(|_| JsonErrorKind::TooManyPositions { max: MAX_POSITIONS })?
        .0;
    entries
        .iter()
        .enumerate()
        .map(|(index, entry)| {
            position(entry).map_err(|problem| JsonErrorKind::BadPosition { index, problem })
        })
        .collect()
}

/// A JSON array of at most [`MAX_POSITIONS`] raw values; fails as soon as there are more.
struct BoundedRaw<'a>(Vec<&'a RawValue>);

impl<'de> Deserialize<'de> for BoundedRaw<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = BoundedRaw<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "an array of at most {MAX_POSITIONS} entries")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(16));
                while let Some(entry) = seq.next_element::<&'de RawValue>()? {
                    if entries.len() == MAX_POSITIONS {
                        return Err(serde::de::Error::custom("too many positions"));
                    }
                    entries.push(entry);
                }
                Ok(BoundedRaw(entries))
            }
        }
        d.deserialize_seq(Visit)
    }
}

/// One `positions` entry; the error is what is wrong with it.
fn position(raw: &RawValue) -> Result<Position, &'static str> {
    #[derive(Deserialize)]
    struct Entry<'a> {
        #[serde(borrow, default, deserialize_with = "present")]
        topic: Option<&'a RawValue>,
        #[serde(borrow, default, deserialize_with = "present")]
        since: Option<&'a RawValue>,
        #[serde(borrow, default, deserialize_with = "present")]
        epoch: Option<&'a RawValue>,
    }
    const SHAPE: &str = "must be an object with \"topic\" (a string), \"since\" (a whole number) and optionally \"epoch\" (a string)";
    if !raw.get().starts_with('{') {
        return Err(SHAPE);
    }
    let entry: Entry<'_> = serde_json::from_str(raw.get()).map_err(|_| SHAPE)?;
    let text = |raw: Option<&RawValue>, wrong: &'static str| match raw {
        None => Ok(None),
        Some(raw) if is_null(raw) => Ok(None),
        Some(raw) if raw.get().starts_with('"') && has_lone_surrogate(raw.get()) => {
            Err("a string holds an unpaired surrogate escape (\\ud800 to \\udfff)")
        }
        Some(raw) => serde_json::from_str::<String>(raw.get())
            .map(Some)
            .map_err(|_| wrong),
    };
    let topic =
        text(entry.topic, "\"topic\" must be a string")?.ok_or("needs \"topic\" (a string)")?;
    let since = match entry.since {
        Some(raw) if !is_null(raw) => serde_json::from_str::<u64>(raw.get())
            .map_err(|_| "\"since\" must be a whole number, 0 or more")?,
        _ => return Err("needs \"since\" (a whole number, 0 or more)"),
    };
    let epoch = text(entry.epoch, "\"epoch\" must be a string")?;
    Ok(Position {
        topic,
        since,
        epoch,
    })
}

fn read_publish(wire: &Wire<'_>, payload: Option<&[u8]>) -> Result<Op, JsonErrorKind> {
    let topic = required(wire.topic, "publish", "topic")?;
    let ack = boolean(wire.ack, "ack")?;
    let text = string(wire.text, "text")?;
    let (kind, payload) = match (payload, wire.data, text) {
        (Some(bytes), None, None) => (PayloadKind::Binary, Bytes::copy_from_slice(bytes)),
        (Some(_), _, _) => return Err(JsonErrorKind::PayloadInBinaryFrame),
        (None, Some(_), Some(_)) => return Err(JsonErrorKind::DataAndText),
        (None, Some(data), None) if has_lone_surrogate(data.get()) => {
            return Err(JsonErrorKind::LoneSurrogate { field: "data" })
        }
        (None, Some(data), None) => (
            PayloadKind::Json,
            Bytes::copy_from_slice(data.get().as_bytes()),
        ),
        (None, None, Some(text)) => (PayloadKind::Text, Bytes::from(text)),
        (None, None, None) => return Err(JsonErrorKind::NoPayload),
    };
    Ok(Op::Publish {
        topic,
        kind,
        payload,
        ack,
    })
}

/// True when raw JSON text has a `\uXXXX` escape for half a surrogate pair without its other
/// half. serde_json checks only the escape syntax when it keeps a value raw, so this is the
/// one thing left to check before raw text is passed on. One pass, no allocation.
pub fn has_lone_surrogate(raw: &str) -> bool {
    let bytes = raw.as_bytes();
    let unit = |at: usize| -> Option<u16> {
        let hex = bytes.get(at..at + 4)?;
        u16::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()
    };
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            i += 1;
            continue;
        }
        if bytes.get(i + 1) != Some(&b'u') {
            i += 2; // `\"`, `\\`, `\n`, ...: skip the escaped character
            continue;
        }
        match unit(i + 2) {
            Some(0xd800..=0xdbff) => {
                let low = match bytes.get(i + 6..i + 8) {
                    Some(b"\\u") => unit(i + 8),
                    _ => None,
                };
                if !matches!(low, Some(0xdc00..=0xdfff)) {
                    return true;
                }
                i += 12;
            }
            Some(0xdc00..=0xdfff) => return true,
            _ => i += 6,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::has_lone_surrogate;

    #[test]
    fn lone_surrogates() {
        for ok in [
            r#""plain""#,
            r#""\u00e9 \ud83d\udcac""#,
            r#"["\\ud800", "\\\\"]"#,
            r#"{"a":"\"\ud800\udc00"}"#,
            r#""\uD83D\uDCAC""#,
        ] {
            assert!(!has_lone_surrogate(ok), "{ok}");
        }
        for bad in [
            r#""\ud800""#,
            r#""\udcac""#,
            r#""\ud83d\u0041""#,
            r#""\ud83dx""#,
            r#""\\\ud800""#,
            r#""\uDC00""#,
        ] {
            assert!(has_lone_surrogate(bad), "{bad}");
        }
    }
}
