//! Socket.IO protocol 5 packets as text: the encoders for what the server sends, and the
//! checks of what a client's event carries (decoding the packet frame itself is done by
//! socketioxide's common parser in tidings-server; what it hands over is checked here).
//!
//! ```text
//! <type>[<attachments>-][<namespace>,][<ack id>][<JSON payload>]   + binary attachments
//! 0 CONNECT  1 DISCONNECT  2 EVENT  3 ACK  4 CONNECT_ERROR  5 BINARY_EVENT  6 BINARY_ACK
//! ```
//! A binary argument is replaced in the JSON by `{"_placeholder":true,"num":N}` and sent as
//! the N-th attachment (its own Engine.IO binary packet) right after the text packet.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::fmt::Write as _;

/// One packet for the client: the text packet and its binary attachments, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub text: String,
    pub attachments: Vec<Bytes>,
}

/// Appends `<type>[<n>-][<nsp>,][<ack>]` to `out`.
fn header(out: &mut String, kind: u8, attachments: usize, nsp: &str, ack: Option<i64>) {
    out.push(char::from(b'0' + kind));
    if attachments > 0 {
        let _ = write!(out, "{attachments}-");
    }
    if nsp != "/" {
        out.push_str(nsp);
        out.push(',');
    }
    if let Some(id) = ack {
        let _ = write!(out, "{id}");
    }
}

/// An EVENT (or BINARY_EVENT when there are attachments): `args_json` is the whole JSON array
/// including the event name, with placeholders for the attachments.
pub fn event(nsp: &str, args_json: &str, attachments: Vec<Bytes>) -> Outgoing {
    let kind = if attachments.is_empty() { 2 } else { 5 };
    let mut text = String::with_capacity(args_json.len() + nsp.len() + 8);
    header(&mut text, kind, attachments.len(), nsp, None);
    text.push_str(args_json);
    Outgoing { text, attachments }
}

/// An ACK (or BINARY_ACK) of the client's event `id`; `args_json` is the JSON array of
/// the acknowledgement's arguments.
pub fn ack(nsp: &str, id: i64, args_json: &str, attachments: Vec<Bytes>) -> Outgoing {
    let kind = if attachments.is_empty() { 3 } else { 6 };
    let mut text = String::with_capacity(args_json.len() + nsp.len() + 24);
    header(&mut text, kind, attachments.len(), nsp, Some(id));
    text.push_str(args_json);
    Outgoing { text, attachments }
}

/// The CONNECT reply: `{"sid":..}`, plus `"pid"` when connection state recovery is on.
pub fn connect(nsp: &str, sid: &str, pid: Option<&str>) -> Outgoing {
    let mut text = String::with_capacity(64);
    header(&mut text, 0, 0, nsp, None);
    text.push_str("{\"sid\":");
    text.push_str(&json_string(sid));
    if let Some(pid) = pid {
        text.push_str(",\"pid\":");
        text.push_str(&json_string(pid));
    }
    text.push('}');
    plain(text)
}

/// A CONNECT_ERROR: `{"message":..}` plus `"data"` when given (raw JSON).
pub fn connect_error(nsp: &str, message: &str, data: Option<&str>) -> Outgoing {
    let mut text = String::with_capacity(64 + message.len());
    header(&mut text, 4, 0, nsp, None);
    text.push_str("{\"message\":");
    text.push_str(&json_string(message));
    if let Some(data) = data {
        text.push_str(",\"data\":");
        text.push_str(data);
    }
    text.push('}');
    plain(text)
}

/// A DISCONNECT of namespace `nsp`.
pub fn disconnect(nsp: &str) -> Outgoing {
    let mut text = String::with_capacity(nsp.len() + 2);
    header(&mut text, 1, 0, nsp, None);
    plain(text)
}

fn plain(text: String) -> Outgoing {
    Outgoing {
        text,
        attachments: Vec::new(),
    }
}

/// A JSON string literal.
pub fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// Why a client's event payload was refused: the protocol answer is closing the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PayloadError {
    #[error("an event's payload must be a JSON array")]
    NotAnArray,
    #[error("an event's first element must be its name, a string")]
    NoEventName,
    #[error("a CONNECT payload must be a JSON object")]
    AuthNotAnObject,
}

/// A client's EVENT, decoded.
#[derive(Debug)]
pub struct Event {
    pub name: String,
    /// The arguments after the name, as raw JSON (placeholders included).
    pub args: Vec<Box<RawValue>>,
    /// The binary attachments the placeholders refer to.
    pub attachments: Vec<Bytes>,
    /// Present when the client waits for an acknowledgement.
    pub ack: Option<i64>,
}

/// Splits an event's JSON array into its name and raw arguments.
pub fn decode_event(
    payload: &str,
    attachments: Vec<Bytes>,
    ack: Option<i64>,
) -> Result<Event, PayloadError> {
    let items: Vec<Box<RawValue>> =
        serde_json::from_str(payload).map_err(|_| PayloadError::NotAnArray)?;
    let mut items = items.into_iter();
    let name = items
        .next()
        .and_then(|first| serde_json::from_str::<String>(first.get()).ok())
        .ok_or(PayloadError::NoEventName)?;
    Ok(Event {
        name,
        args: items.collect(),
        attachments,
        ack,
    })
}

/// Checks a CONNECT payload (absent or an object) and returns it as raw JSON.
pub fn decode_auth(payload: Option<&str>) -> Result<Option<Box<RawValue>>, PayloadError> {
    let Some(text) = payload else {
        return Ok(None);
    };
    if !text.trim_start().starts_with('{') {
        return Err(PayloadError::AuthNotAnObject);
    }
    serde_json::from_str::<Box<RawValue>>(text)
        .map(Some)
        .map_err(|_| PayloadError::AuthNotAnObject)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Placeholder {
    #[serde(rename = "_placeholder")]
    placeholder: bool,
    num: usize,
}

/// The attachment index if `raw` is exactly a binary placeholder.
pub fn placeholder(raw: &RawValue) -> Option<usize> {
    let text = raw.get();
    if !text.starts_with('{') || !text.contains("_placeholder") {
        return None;
    }
    serde_json::from_str::<Placeholder>(text)
        .ok()
        .filter(|p| p.placeholder)
        .map(|p| p.num)
}

/// The JSON text of placeholder `num`.
pub fn placeholder_json(num: usize) -> String {
    format!("{{\"_placeholder\":true,\"num\":{num}}}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_the_reference_server() {
        assert_eq!(event("/", r#"["a",1]"#, vec![]).text, r#"2["a",1]"#);
        assert_eq!(
            event("/custom", r#"["a"]"#, vec![Bytes::from_static(b"x")]).text,
            r#"51-/custom,["a"]"#
        );
        assert_eq!(ack("/", 456, "[1]", vec![]).text, "3456[1]");
        assert_eq!(
            ack("/", 789, "[{}]", vec![Bytes::new(), Bytes::new()]).text,
            "62-789[{}]"
        );
        assert_eq!(connect("/", "abc", None).text, r#"0{"sid":"abc"}"#);
        assert_eq!(
            connect("/c", "abc", Some("p")).text,
            r#"0/c,{"sid":"abc","pid":"p"}"#
        );
        assert_eq!(
            connect_error("/random", "Invalid namespace", None).text,
            r#"4/random,{"message":"Invalid namespace"}"#
        );
        assert_eq!(disconnect("/").text, "1");
        assert_eq!(disconnect("/c").text, "1/c,");
    }

    #[test]
    fn decodes_events() {
        let ev = decode_event(r#"["message",1,"2",{"3":[true]}]"#, vec![], Some(4)).unwrap();
        assert_eq!(ev.name, "message");
        assert_eq!(ev.args.len(), 3);
        assert_eq!(ev.args[2].get(), r#"{"3":[true]}"#);
        assert_eq!(ev.ack, Some(4));
        assert_eq!(
            decode_event("{}", vec![], None).unwrap_err(),
            PayloadError::NotAnArray
        );
        assert_eq!(
            decode_event("abc[\"x\"]", vec![], None).unwrap_err(),
            PayloadError::NotAnArray
        );
        assert_eq!(
            decode_event("[1]", vec![], None).unwrap_err(),
            PayloadError::NoEventName
        );
        assert_eq!(
            decode_event("[]", vec![], None).unwrap_err(),
            PayloadError::NoEventName
        );
    }

    #[test]
    fn placeholders_and_auth() {
        let raw: Box<RawValue> = serde_json::from_str(r#"{"_placeholder":true,"num":1}"#).unwrap();
        assert_eq!(placeholder(&raw), Some(1));
        let raw: Box<RawValue> = serde_json::from_str(r#"{"num":1}"#).unwrap();
        assert_eq!(placeholder(&raw), None);
        assert_eq!(placeholder_json(0), r#"{"_placeholder":true,"num":0}"#);
        assert!(decode_auth(None).unwrap().is_none());
        assert!(decode_auth(Some(r#"{"token":"1"}"#)).unwrap().is_some());
        assert!(decode_auth(Some(r#""x""#)).is_err());
        assert!(decode_auth(Some("{")).is_err());
    }
}
