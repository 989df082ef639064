//! How a message travels through Redis: the body stored in a topic's stream (field `b`) and
//! carried by pub/sub after `"<offset> <epoch> "`. Sans-IO, so it is tested without Redis.
//!
//! ```text
//! body  = kind(1 byte: t j b) published_at(decimal) "\n" header_count "\n"
//!         { key_len ":" key value_len ":" value } payload
//! pubsub message = offset " " epoch " " body
//! ```

use bytes::Bytes;
use std::sync::Arc;
use tidings_core::{Message, PayloadKind};

/// Why bytes from Redis could not be read as a message (another program wrote the keys, or
/// a version mismatch): the message is skipped and logged, never a panic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unreadable message from redis: {0}")]
pub(crate) struct CodecError(&'static str);

impl CodecError {
    pub(crate) fn new(why: &'static str) -> CodecError {
        CodecError(why)
    }
}

/// The parts of a message that are the same on every node, before numbering.
pub(crate) fn encode_body(
    kind: PayloadKind,
    published_at: u64,
    headers: &[(Arc<str>, Arc<str>)],
    payload: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 32);
    out.push(match kind {
        PayloadKind::Text => b't',
        PayloadKind::Json => b'j',
        PayloadKind::Binary => b'b',
    });
    out.extend_from_slice(format!("{published_at}\n{}\n", headers.len()).as_bytes());
    for (k, v) in headers {
        for part in [k.as_bytes(), v.as_bytes()] {
            out.extend_from_slice(format!("{}:", part.len()).as_bytes());
            out.extend_from_slice(part);
        }
    }
    out.extend_from_slice(payload);
    out
}

fn take_until<'a>(buf: &mut &'a [u8], sep: u8) -> Result<&'a [u8], CodecError> {
    let at = buf
        .iter()
        .position(|&b| b == sep)
        .ok_or(CodecError("truncated"))?;
    let (head, rest) = buf.split_at(at);
    *buf = &rest[1..];
    Ok(head)
}

fn number(bytes: &[u8]) -> Result<u64, CodecError> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(CodecError("bad number"))
}

fn text(bytes: &[u8]) -> Result<Arc<str>, CodecError> {
    std::str::from_utf8(bytes)
        .map(Arc::from)
        .map_err(|_| CodecError("header is not UTF-8"))
}

/// A numbered message from a stored or published body.
pub(crate) fn decode_body(
    topic: &Arc<str>,
    offset: u64,
    epoch: &Arc<str>,
    body: &Bytes,
) -> Result<Message, CodecError> {
    let mut buf: &[u8] = body;
    let (&kind, rest) = buf.split_first().ok_or(CodecError("empty"))?;
    buf = rest;
    let kind = match kind {
        b't' => PayloadKind::Text,
        b'j' => PayloadKind::Json,
        b'b' => PayloadKind::Binary,
        _ => return Err(CodecError("bad kind")),
    };
    let published_at = number(take_until(&mut buf, b'\n')?)?;
    let count = number(take_until(&mut buf, b'\n')?)?;
    if count > 1024 {
        return Err(CodecError("too many headers"));
    }
    let mut headers = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let mut pair = [Arc::<str>::from(""), Arc::<str>::from("")];
        for part in &mut pair {
            let len = number(take_until(&mut buf, b':')?)? as usize;
            if len > buf.len() {
                return Err(CodecError("truncated header"));
            }
            *part = text(&buf[..len])?;
            buf = &buf[len..];
        }
        let [k, v] = pair;
        headers.push((k, v));
    }
    let payload = body.slice(body.len() - buf.len()..);
    let draft = tidings_core::Draft {
        kind,
        payload,
        headers,
    };
    Ok(draft.into_message(topic.clone(), offset, epoch.clone(), published_at))
}

/// Splits a pub/sub message into offset, epoch and body.
pub(crate) fn split_published(msg: &Bytes) -> Result<(u64, Arc<str>, Bytes), CodecError> {
    let mut buf: &[u8] = msg;
    let offset = number(take_until(&mut buf, b' ')?)?;
    let epoch = text(take_until(&mut buf, b' ')?)?;
    Ok((offset, epoch, msg.slice(msg.len() - buf.len()..)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_round_trips_with_headers_and_binary_payload() {
        let headers: Vec<(Arc<str>, Arc<str>)> = vec![
            ("content-type".into(), "text/plain".into()),
            ("x:odd\n".into(), "".into()),
        ];
        let body = encode_body(PayloadKind::Binary, 42, &headers, b"a\nb:c \0");
        let mut wire = b"7 abc ".to_vec();
        wire.extend_from_slice(&body);
        let (offset, epoch, body) = split_published(&Bytes::from(wire)).unwrap();
        assert_eq!((offset, &*epoch), (7, "abc"));
        let m = decode_body(&"t.x".into(), offset, &epoch, &body).unwrap();
        assert_eq!(m.offset, 7);
        assert_eq!(&*m.epoch, "abc");
        assert_eq!(m.kind, PayloadKind::Binary);
        assert_eq!(m.published_at, 42);
        assert_eq!(m.headers, headers);
        assert_eq!(&m.payload[..], b"a\nb:c \0");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bad in [
            &b""[..],
            b"x",
            b"t12",
            b"t1\n2\n5:ab",
            b"t1\n9999\n",
            b"q1\n0\n",
        ] {
            assert!(
                decode_body(&"t".into(), 1, &"e".into(), &Bytes::copy_from_slice(bad)).is_err()
            );
        }
        assert!(split_published(&Bytes::from_static(b"x y z")).is_err());
        assert!(split_published(&Bytes::from_static(b"12")).is_err());
    }
}
