//! SockJS 0.3.3 wire formats (<https://github.com/sockjs/sockjs-protocol>): the frames a
//! server sends (`o` open, `h` heartbeat, `a[...]` messages, `c[code,"reason"]` close; messages
//! are JSON strings escaped the way sockjs-node does, so browsers and proxies do not mangle
//! them) and the bodies clients send (`xhr_send`: a JSON array of strings; `jsonp_send`: the
//! same in the form field `d`). The transports, sessions and HTTP live in tidings-server.
//!
//! Limits: a body is bounded by whoever read it (the server's `http_api.max_body`); decoding
//! allocates only the strings it returns and never panics.

use bytes::{BufMut, Bytes, BytesMut};
use serde_json::Value;

pub const OPEN: &[u8] = b"o";
pub const HEARTBEAT: &[u8] = b"h";

/// `c[code,"reason"]`.
pub fn close(code: u16, reason: &str) -> Bytes {
    let mut out = BytesMut::new();
    out.put_slice(format!("c[{code},").as_bytes());
    quote(&mut out, reason);
    out.put_u8(b']');
    out.freeze()
}

/// `a["m1","m2",...]` from messages already [`quoted`].
pub fn messages(quoted_items: &[Bytes]) -> Bytes {
    let len = quoted_items.iter().map(|q| q.len() + 1).sum::<usize>() + 3;
    let mut out = BytesMut::with_capacity(len);
    out.put_slice(b"a[");
    for (i, item) in quoted_items.iter().enumerate() {
        if i > 0 {
            out.put_u8(b',');
        }
        out.put_slice(item);
    }
    out.put_u8(b']');
    out.freeze()
}

/// One message as a quoted JSON string, ready for [`messages`]. A published message's
/// quoted form is cached in the message, so a broadcast quotes it once, not per session.
pub fn quoted(text: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(text.len() + text.len() / 8 + 2);
    quote(&mut out, &String::from_utf8_lossy(text));
    out.freeze()
}

/// A JSON string literal that also escapes the characters SockJS requires escaped
/// (control characters, surrogates, and the ranges browsers treat specially).
pub fn quote(out: &mut BytesMut, s: &str) {
    out.put_u8(b'"');
    // Plain ASCII (the bulk of JSON) is copied in runs; only the rest is looked at per char.
    let mut rest = s;
    while !rest.is_empty() {
        let plain = rest
            .bytes()
            .position(|b| !(0x20..0x7f).contains(&b) || b == b'"' || b == b'\\')
            .unwrap_or(rest.len());
        out.put_slice(&rest.as_bytes()[..plain]);
        rest = &rest[plain..];
        let Some(c) = rest.chars().next() else { break };
        rest = &rest[c.len_utf8()..];
        match c {
            '"' => out.put_slice(b"\\\""),
            '\\' => out.put_slice(b"\\\\"),
            '\n' => out.put_slice(b"\\n"),
            '\r' => out.put_slice(b"\\r"),
            '\t' => out.put_slice(b"\\t"),
            c if needs_escape(c) => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.put_slice(format!("\\u{unit:04x}").as_bytes());
                }
            }
            c => {
                let mut buf = [0u8; 4];
                out.put_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out.put_u8(b'"');
}

fn needs_escape(c: char) -> bool {
    matches!(c as u32,
        0x0000..=0x001f | 0x007f..=0x009f | 0x00ad | 0x0600..=0x0604 | 0x070f | 0x17b4 | 0x17b5
        | 0x200c..=0x200f | 0x2028..=0x202f | 0x2060..=0x206f | 0xfeff | 0xfff0..=0xffff)
}

/// Why a send body was refused (each maps to SockJS's status and text).
#[derive(Debug, PartialEq, Eq)]
pub enum SendError {
    PayloadExpected,
    BrokenJson,
}

impl SendError {
    pub fn text(&self) -> &'static str {
        match self {
            SendError::PayloadExpected => "Payload expected.",
            SendError::BrokenJson => "Broken JSON encoding.",
        }
    }
}

/// The messages in an `xhr_send` body: a JSON array of strings (or one string).
pub fn xhr_body(body: &[u8]) -> Result<Vec<String>, SendError> {
    if body.is_empty() {
        return Err(SendError::PayloadExpected);
    }
    parse(body)
}

/// The messages in a `jsonp_send` body: the form field `d`, or the raw body.
pub fn jsonp_body(body: &[u8], form: bool) -> Result<Vec<String>, SendError> {
    let payload: Vec<u8> = if form {
        form_urlencoded::parse(body)
            .find(|(k, _)| k == "d")
            .map(|(_, v)| v.into_owned().into_bytes())
            .unwrap_or_default()
    } else {
        body.to_vec()
    };
    if payload.is_empty() {
        return Err(SendError::PayloadExpected);
    }
    parse(&payload)
}

fn parse(json: &[u8]) -> Result<Vec<String>, SendError> {
    match serde_json::from_slice::<Value>(json) {
        Ok(Value::Array(items)) => items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                other => Ok(other.to_string()),
            })
            .collect(),
        Ok(Value::String(s)) => Ok(vec![s]),
        _ => Err(SendError::BrokenJson),
    }
}

#[cfg(test)]
mod frame_tests {
    use super::*;

    #[test]
    fn frames_look_like_the_spec() {
        assert_eq!(&close(3000, "Go away!")[..], br#"c[3000,"Go away!"]"#);
        assert_eq!(
            &messages(&[quoted(b"a"), quoted(br#"{"x":"y"}"#)])[..],
            br#"a["a","{\"x\":\"y\"}"]"#
        );
        let mut out = BytesMut::new();
        quote(&mut out, "\u{2028}\u{0}é");
        assert_eq!(&out[..], br#""\u2028\u0000"#.iter().chain("é\"".as_bytes()).copied().collect::<Vec<u8>>().as_slice());
    }

    #[test]
    fn quoted_strings_are_json() {
        for s in [
            "plain",
            "quote\" back\\slash",
            "\u{1}\u{7f}\u{ad}\u{2029}\u{fff9}",
            "emoji 😀",
        ] {
            let mut out = BytesMut::new();
            quote(&mut out, s);
            let back: String = serde_json::from_slice(&out).unwrap();
            assert_eq!(back, s);
        }
    }
}

#[cfg(test)]
mod send_tests {
    use super::*;

    #[test]
    fn bodies_as_sockjs_specifies() {
        assert_eq!(xhr_body(br#"["a","b"]"#).unwrap(), ["a", "b"]);
        assert_eq!(xhr_body(b""), Err(SendError::PayloadExpected));
        assert_eq!(xhr_body(b"[\"x"), Err(SendError::BrokenJson));
        assert_eq!(jsonp_body(b"d=%5B%22x%22%5D", true).unwrap(), ["x"]);
        assert_eq!(jsonp_body(b"d=", true), Err(SendError::PayloadExpected));
        assert_eq!(jsonp_body(br#"["y"]"#, false).unwrap(), ["y"]);
    }
}
