//! Client requests: what a server decodes, what a client encodes.

use bytes::BufMut;

use super::error::DatagramError;
use super::wire::{self, kind, Cookie, Limits, Reader, COOKIE_LEN, HEADER_LEN};
use crate::PayloadKind;

/// One request datagram, borrowing from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request<'a> {
    /// Publish one message. `id` 0 asks for no reply (not even an error).
    Publish {
        id: u32,
        kind: PayloadKind,
        topic: &'a str,
        payload: &'a [u8],
    },
    /// Subscribe to a topic or pattern. Without a cookie (or with a stale one) the server
    /// answers `CHALLENGE`; with a valid one the subscription starts and its lease runs.
    Subscribe {
        id: u32,
        cookie: Option<&'a Cookie>,
        pattern: &'a str,
    },
    /// Extend the lease of every subscription of this address.
    Renew { id: u32, cookie: &'a Cookie },
    /// End the subscription to `pattern`, or every subscription of this address when empty.
    Unsubscribe {
        id: u32,
        cookie: &'a Cookie,
        pattern: &'a str,
    },
}

impl Request<'_> {
    /// The request id the reply will carry.
    pub fn id(&self) -> u32 {
        match *self {
            Request::Publish { id, .. }
            | Request::Subscribe { id, .. }
            | Request::Renew { id, .. }
            | Request::Unsubscribe { id, .. } => id,
        }
    }

    /// The request's name as in the docs (`PUBLISH`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            Request::Publish { .. } => "PUBLISH",
            Request::Subscribe { .. } => "SUBSCRIBE",
            Request::Renew { .. } => "RENEW",
            Request::Unsubscribe { .. } => "UNSUBSCRIBE",
        }
    }
}

/// Decodes a request datagram (what a server receives).
///
/// Check, then parse: the header and every length are checked against the datagram before
/// any field is used; strings and payloads are borrowed, nothing is allocated.
pub fn decode_request(datagram: &[u8], limits: Limits) -> Result<Request<'_>, DatagramError> {
    let t = wire::check_header(datagram, limits)?;
    let mut r = Reader::after_header(datagram);
    let request = match t {
        kind::PUBLISH => {
            let id = r.u32("id")?;
            let code = r.u8("kind")?;
            let topic = r.str16("topic")?;
            let len = r.u16("payload length")? as usize;
            let payload = r.bytes(len, "payload")?;
            non_empty(topic, "topic")?;
            let kind = wire::payload_kind(code, payload)?;
            Request::Publish {
                id,
                kind,
                topic,
                payload,
            }
        }
        kind::SUBSCRIBE => {
            let id = r.u32("id")?;
            let cookie = match r.u8("cookie length")? {
                0 => None,
                n if n as usize == COOKIE_LEN => Some(r.cookie()?),
                n => return Err(DatagramError::BadCookieLength(n)),
            };
            let pattern = r.str16("pattern")?;
            non_empty(pattern, "pattern")?;
            Request::Subscribe {
                id,
                cookie,
                pattern,
            }
        }
        kind::RENEW => Request::Renew {
            id: r.u32("id")?,
            cookie: r.cookie()?,
        },
        kind::UNSUBSCRIBE => Request::Unsubscribe {
            id: r.u32("id")?,
            cookie: r.cookie()?,
            pattern: r.str16("pattern")?,
        },
        t if kind::is_reply(t) && super::reply::is_known(t) => {
            return Err(DatagramError::WrongDirection(t))
        }
        t => return Err(DatagramError::UnknownType(t)),
    };
    r.padding()?;
    Ok(request)
}

fn non_empty(s: &str, field: &'static str) -> Result<(), DatagramError> {
    match s.is_empty() {
        true => Err(DatagramError::Empty { field }),
        false => Ok(()),
    }
}

/// The request id of a datagram whose header is a known request type, even when the rest
/// does not decode, so a server can address its `ERROR` reply.
pub fn peek_request_id(datagram: &[u8]) -> Option<u32> {
    let t = wire::check_header(
        datagram,
        Limits {
            max_datagram: usize::MAX,
        },
    )
    .ok()?;
    if !matches!(
        t,
        kind::PUBLISH | kind::SUBSCRIBE | kind::RENEW | kind::UNSUBSCRIBE
    ) {
        return None;
    }
    let id = datagram.get(HEADER_LEN..HEADER_LEN + 4)?;
    Some(u32::from_be_bytes([id[0], id[1], id[2], id[3]]))
}

/// Appends `request` to `out`, then zero bytes until it is at least `pad_to` bytes long
/// (see [`REPLY_ROOM`](super::REPLY_ROOM)). Strings longer than their length field allows
/// are cut; callers check lengths against their limits first.
pub fn encode_request<B: BufMut>(request: &Request<'_>, pad_to: usize, out: &mut B) {
    let mut body = Vec::with_capacity(64);
    match *request {
        Request::Publish {
            id,
            kind,
            topic,
            payload,
        } => {
            wire::put_header(&mut body, kind::PUBLISH);
            body.put_u32(id);
            body.put_u8(wire::kind_code(kind));
            wire::put_str16(&mut body, topic);
            let payload = &payload[..payload.len().min(u16::MAX as usize)];
            body.put_u16(payload.len() as u16);
            body.put_slice(payload);
        }
        Request::Subscribe {
            id,
            cookie,
            pattern,
        } => {
            wire::put_header(&mut body, kind::SUBSCRIBE);
            body.put_u32(id);
            match cookie {
                None => body.put_u8(0),
                Some(c) => {
                    body.put_u8(COOKIE_LEN as u8);
                    body.put_slice(c);
                }
            }
            wire::put_str16(&mut body, pattern);
        }
        Request::Renew { id, cookie } => {
            wire::put_header(&mut body, kind::RENEW);
            body.put_u32(id);
            body.put_slice(cookie);
        }
        Request::Unsubscribe {
            id,
            cookie,
            pattern,
        } => {
            wire::put_header(&mut body, kind::UNSUBSCRIBE);
            body.put_u32(id);
            body.put_slice(cookie);
            wire::put_str16(&mut body, pattern);
        }
    }
    let padding = pad_to.saturating_sub(body.len());
    out.put_slice(&body);
    out.put_bytes(0, padding);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(request: Request<'_>, pad_to: usize) -> Vec<u8> {
        let mut out = Vec::new();
        encode_request(&request, pad_to, &mut out);
        assert!(out.len() >= pad_to);
        assert_eq!(decode_request(&out, Limits::default()), Ok(request));
        assert_eq!(peek_request_id(&out), Some(request.id()));
        out
    }

    #[test]
    fn every_request_round_trips_with_and_without_padding() {
        let cookie = [7u8; COOKIE_LEN];
        for pad in [0, 64, 300] {
            round_trip(
                Request::Publish {
                    id: 9,
                    kind: PayloadKind::Json,
                    topic: "chat.lobby",
                    payload: br#"{"x":1}"#,
                },
                pad,
            );
            round_trip(
                Request::Subscribe {
                    id: 1,
                    cookie: None,
                    pattern: "chat.*",
                },
                pad,
            );
            round_trip(
                Request::Subscribe {
                    id: 2,
                    cookie: Some(&cookie),
                    pattern: "a.>",
                },
                pad,
            );
            round_trip(
                Request::Renew {
                    id: 3,
                    cookie: &cookie,
                },
                pad,
            );
            round_trip(
                Request::Unsubscribe {
                    id: 4,
                    cookie: &cookie,
                    pattern: "",
                },
                pad,
            );
        }
    }

    #[test]
    fn the_publish_layout_is_as_documented() {
        let out = round_trip(
            Request::Publish {
                id: 0x0102_0304,
                kind: PayloadKind::Text,
                topic: "a.b",
                payload: b"hi",
            },
            0,
        );
        assert_eq!(out, b"TD\x01\x01\x01\x02\x03\x04\x00\x00\x03a.b\x00\x02hi");
    }

    #[test]
    fn bad_requests_name_the_problem() {
        fn d(b: &[u8]) -> Result<Request<'_>, DatagramError> {
            decode_request(b, Limits::default())
        }
        assert_eq!(d(b""), Err(DatagramError::NotTidings));
        assert_eq!(d(b"XX\x01\x01"), Err(DatagramError::NotTidings));
        assert_eq!(d(b"TD\x02\x01"), Err(DatagramError::UnsupportedVersion(2)));
        assert_eq!(d(b"TD\x01\x7f"), Err(DatagramError::UnknownType(0x7f)));
        assert_eq!(d(b"TD\x01\x86"), Err(DatagramError::WrongDirection(0x86)));
        assert_eq!(
            d(b"TD\x01\x01\x00\x00"),
            Err(DatagramError::Truncated { field: "id" })
        );
        assert_eq!(
            d(b"TD\x01\x01\0\0\0\x01\x00\x00\x00\x00\x00"),
            Err(DatagramError::Empty { field: "topic" })
        );
        assert_eq!(
            d(b"TD\x01\x01\0\0\0\x01\x00\x00\x01a\x00\x05hi"),
            Err(DatagramError::Truncated { field: "payload" })
        );
        assert_eq!(
            d(b"TD\x01\x01\0\0\0\x01\x00\x00\x01a\x00\x01\xff"),
            Err(DatagramError::NotUtf8 { field: "payload" })
        );
        assert_eq!(
            d(b"TD\x01\x01\0\0\0\x01\x00\x00\x01a\x00\x00\x00\x01"),
            Err(DatagramError::BadPadding { len: 2 })
        );
        assert_eq!(
            d(b"TD\x01\x02\0\0\0\x01\x05abcde\x00\x01a"),
            Err(DatagramError::BadCookieLength(5))
        );
        let big = vec![0u8; 1201];
        assert!(matches!(d(&big), Err(DatagramError::TooLarge { .. })));
        assert!(d(&big).unwrap_err().is_foreign());
        assert_eq!(peek_request_id(b"TD\x01\x01\0\0\0\x09garbage"), Some(9));
        assert_eq!(peek_request_id(b"TD\x01\x86\0\0\0\x09"), None);
    }
}
