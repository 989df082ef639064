//! Server datagrams: replies to requests and the messages of subscriptions.

use bytes::BufMut;

use super::error::DatagramError;
use super::wire::{self, kind, Cookie, Limits, Reader, HEADER_LEN};
use crate::PayloadKind;

/// Why a server refused a request (the `code` of an `ERROR` datagram).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// 1: malformed request, invalid topic or pattern.
    BadRequest,
    /// 2: the anonymous rights (UDP has no login) do not allow it.
    Forbidden,
    /// 3: no subscription with that pattern.
    NotFound,
    /// 4: this address holds as many subscriptions as allowed.
    TooManySubscriptions,
    /// 5: the server holds as many subscriber addresses (or topics) as allowed.
    Busy,
    /// 6: the server is shutting down.
    ShuttingDown,
    /// A code this version does not know.
    Other(u8),
}

impl ErrorCode {
    pub fn code(self) -> u8 {
        match self {
            ErrorCode::BadRequest => 1,
            ErrorCode::Forbidden => 2,
            ErrorCode::NotFound => 3,
            ErrorCode::TooManySubscriptions => 4,
            ErrorCode::Busy => 5,
            ErrorCode::ShuttingDown => 6,
            ErrorCode::Other(n) => n,
        }
    }

    pub fn from_code(n: u8) -> Self {
        match n {
            1 => ErrorCode::BadRequest,
            2 => ErrorCode::Forbidden,
            3 => ErrorCode::NotFound,
            4 => ErrorCode::TooManySubscriptions,
            5 => ErrorCode::Busy,
            6 => ErrorCode::ShuttingDown,
            n => ErrorCode::Other(n),
        }
    }

    /// The name used in docs and by clients (`bad_request`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::TooManySubscriptions => "too_many_subscriptions",
            ErrorCode::Busy => "busy",
            ErrorCode::ShuttingDown => "shutting_down",
            ErrorCode::Other(_) => "error",
        }
    }
}

/// One server datagram, borrowing from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply<'a> {
    /// Echo this cookie in a `SUBSCRIBE` (or `RENEW`, `UNSUBSCRIBE`) to prove the address.
    Challenge { id: u32, cookie: &'a Cookie },
    /// The subscription is active for `lease_ms`. `epoch`/`last_offset` describe an exact
    /// topic (empty/0 for patterns). `cookie` is fresh: use it for the next renewal.
    Subscribed {
        id: u32,
        lease_ms: u32,
        last_offset: u64,
        epoch: &'a str,
        cookie: &'a Cookie,
    },
    /// `subscriptions` leases were extended by `lease_ms`. Fewer than the client holds means
    /// the server forgot some (restart, expiry): subscribe to them again.
    Renewed {
        id: u32,
        lease_ms: u32,
        subscriptions: u16,
        cookie: &'a Cookie,
    },
    /// `removed` subscriptions ended.
    Unsubscribed { id: u32, removed: u16 },
    /// The message was published at `offset` of `epoch`.
    Published {
        id: u32,
        offset: u64,
        epoch: &'a str,
    },
    /// A message of a subscription.
    Message {
        kind: PayloadKind,
        offset: u64,
        epoch: &'a str,
        topic: &'a str,
        payload: &'a [u8],
    },
    /// The request was refused.
    Error {
        id: u32,
        code: ErrorCode,
        message: &'a str,
    },
}

impl Reply<'_> {
    /// The datagram's name as in the docs (`CHALLENGE`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            Reply::Challenge { .. } => "CHALLENGE",
            Reply::Subscribed { .. } => "SUBSCRIBED",
            Reply::Renewed { .. } => "RENEWED",
            Reply::Unsubscribed { .. } => "UNSUBSCRIBED",
            Reply::Published { .. } => "PUBLISHED",
            Reply::Message { .. } => "MESSAGE",
            Reply::Error { .. } => "ERROR",
        }
    }
}

pub(crate) fn is_known(t: u8) -> bool {
    (kind::CHALLENGE..=kind::ERROR).contains(&t)
}

/// Decodes a server datagram (what a client receives).
pub fn decode_reply(datagram: &[u8], limits: Limits) -> Result<Reply<'_>, DatagramError> {
    let t = wire::check_header(datagram, limits)?;
    let mut r = Reader::after_header(datagram);
    let reply = match t {
        kind::CHALLENGE => Reply::Challenge {
            id: r.u32("id")?,
            cookie: r.cookie()?,
        },
        kind::SUBSCRIBED => Reply::Subscribed {
            id: r.u32("id")?,
            lease_ms: r.u32("lease")?,
            last_offset: r.u64("last offset")?,
            epoch: r.str8("epoch")?,
            cookie: r.cookie()?,
        },
        kind::RENEWED => Reply::Renewed {
            id: r.u32("id")?,
            lease_ms: r.u32("lease")?,
            subscriptions: r.u16("subscriptions")?,
            cookie: r.cookie()?,
        },
        kind::UNSUBSCRIBED => Reply::Unsubscribed {
            id: r.u32("id")?,
            removed: r.u16("removed")?,
        },
        kind::PUBLISHED => Reply::Published {
            id: r.u32("id")?,
            offset: r.u64("offset")?,
            epoch: r.str8("epoch")?,
        },
        kind::MESSAGE => {
            let code = r.u8("kind")?;
            let offset = r.u64("offset")?;
            let epoch = r.str8("epoch")?;
            let topic = r.str16("topic")?;
            let payload = r.rest();
            if topic.is_empty() {
                return Err(DatagramError::Empty { field: "topic" });
            }
            let kind = wire::payload_kind(code, payload)?;
            return Ok(Reply::Message {
                kind,
                offset,
                epoch,
                topic,
                payload,
            });
        }
        kind::ERROR => Reply::Error {
            id: r.u32("id")?,
            code: ErrorCode::from_code(r.u8("code")?),
            message: r.str8("message")?,
        },
        kind::PUBLISH | kind::SUBSCRIBE | kind::RENEW | kind::UNSUBSCRIBE => {
            return Err(DatagramError::WrongDirection(t))
        }
        t => return Err(DatagramError::UnknownType(t)),
    };
    r.end()?;
    Ok(reply)
}

/// Length of the `MESSAGE` datagram for these fields, without encoding it: a server checks
/// it against its maximum before sending.
pub fn message_len(topic: &str, epoch: &str, payload: &[u8]) -> usize {
    HEADER_LEN + 1 + 8 + 1 + epoch.len().min(255) + 2 + topic.len() + payload.len()
}

/// Appends `reply` to `out`. Strings longer than their length field allows are cut.
pub fn encode_reply<B: BufMut>(reply: &Reply<'_>, out: &mut B) {
    match *reply {
        Reply::Challenge { id, cookie } => {
            wire::put_header(out, kind::CHALLENGE);
            out.put_u32(id);
            out.put_slice(cookie);
        }
        Reply::Subscribed {
            id,
            lease_ms,
            last_offset,
            epoch,
            cookie,
        } => {
            wire::put_header(out, kind::SUBSCRIBED);
            out.put_u32(id);
            out.put_u32(lease_ms);
            out.put_u64(last_offset);
            wire::put_str8(out, epoch);
            out.put_slice(cookie);
        }
        Reply::Renewed {
            id,
            lease_ms,
            subscriptions,
            cookie,
        } => {
            wire::put_header(out, kind::RENEWED);
            out.put_u32(id);
            out.put_u32(lease_ms);
            out.put_u16(subscriptions);
            out.put_slice(cookie);
        }
        Reply::Unsubscribed { id, removed } => {
            wire::put_header(out, kind::UNSUBSCRIBED);
            out.put_u32(id);
            out.put_u16(removed);
        }
        Reply::Published { id, offset, epoch } => {
            wire::put_header(out, kind::PUBLISHED);
            out.put_u32(id);
            out.put_u64(offset);
            wire::put_str8(out, epoch);
        }
        Reply::Message {
            kind: k,
            offset,
            epoch,
            topic,
            payload,
        } => {
            wire::put_header(out, kind::MESSAGE);
            out.put_u8(wire::kind_code(k));
            out.put_u64(offset);
            wire::put_str8(out, epoch);
            wire::put_str16(out, topic);
            out.put_slice(payload);
        }
        Reply::Error { id, code, message } => {
            wire::put_header(out, kind::ERROR);
            out.put_u32(id);
            out.put_u8(code.code());
            wire::put_str8(out, message);
        }
    }
}

/// Appends an `ERROR` of at most `budget` bytes, cutting `message` to fit (the server's
/// answer to an unvalidated address must not exceed the request). Writes nothing and
/// returns false when even an empty message does not fit.
pub fn encode_error<B: BufMut>(
    id: u32,
    code: ErrorCode,
    message: &str,
    budget: usize,
    out: &mut B,
) -> bool {
    const FIXED: usize = HEADER_LEN + 4 + 1 + 1;
    let Some(room) = budget.checked_sub(FIXED) else {
        return false;
    };
    let message = wire::truncate(message, room.min(u8::MAX as usize));
    encode_reply(&Reply::Error { id, code, message }, out);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::udp::COOKIE_LEN;

    /// Length of a `CHALLENGE`; a padded request has room for it.
    const CHALLENGE_LEN: usize = HEADER_LEN + 4 + COOKIE_LEN;
    const _: () = assert!(CHALLENGE_LEN <= crate::udp::REPLY_ROOM);

    fn round_trip(reply: Reply<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        encode_reply(&reply, &mut out);
        assert_eq!(decode_reply(&out, Limits::default()), Ok(reply));
        out
    }

    #[test]
    fn every_reply_round_trips() {
        let cookie = [1u8; COOKIE_LEN];
        let challenge = round_trip(Reply::Challenge {
            id: 1,
            cookie: &cookie,
        });
        assert_eq!(challenge.len(), CHALLENGE_LEN);
        round_trip(Reply::Subscribed {
            id: 2,
            lease_ms: 30_000,
            last_offset: 7,
            epoch: "1f3a",
            cookie: &cookie,
        });
        round_trip(Reply::Renewed {
            id: 3,
            lease_ms: 30_000,
            subscriptions: 2,
            cookie: &cookie,
        });
        round_trip(Reply::Unsubscribed { id: 4, removed: 1 });
        let published = round_trip(Reply::Published {
            id: 5,
            offset: 9,
            epoch: "0123456789abcdef0123456789abcdef012",
        });
        assert!(published.len() <= super::super::REPLY_ROOM);
        round_trip(Reply::Error {
            id: 6,
            code: ErrorCode::Forbidden,
            message: "no",
        });
        round_trip(Reply::Error {
            id: 6,
            code: ErrorCode::Other(99),
            message: "",
        });
    }

    #[test]
    fn messages_carry_topic_offset_epoch_and_the_rest_is_payload() {
        let msg = Reply::Message {
            kind: PayloadKind::Binary,
            offset: 42,
            epoch: "e1",
            topic: "cam.1",
            payload: b"\x00\xff",
        };
        let out = round_trip(msg);
        assert_eq!(out.len(), message_len("cam.1", "e1", b"\x00\xff"));
        assert_eq!(
            out,
            b"TD\x01\x86\x02\0\0\0\0\0\0\0\x2a\x02e1\x00\x05cam.1\x00\xff"
        );
    }

    #[test]
    fn errors_fit_their_budget() {
        let long = "é".repeat(200);
        for budget in [0, 9, 10, 11, 12, 40, 300, 1000] {
            let mut out = Vec::new();
            let wrote = encode_error(7, ErrorCode::BadRequest, &long, budget, &mut out);
            assert_eq!(wrote, budget >= 10, "{budget}");
            assert!(out.len() <= budget, "{budget}: {}", out.len());
            if wrote {
                assert!(matches!(
                    decode_reply(&out, Limits::default()),
                    Ok(Reply::Error { id: 7, .. })
                ));
            }
        }
    }

    #[test]
    fn bad_replies_are_refused() {
        let l = Limits::default();
        assert_eq!(
            decode_reply(b"TD\x01\x01", l),
            Err(DatagramError::WrongDirection(1))
        );
        assert_eq!(
            decode_reply(b"TD\x01\x84\0\0\0\x01\0\x01x", l),
            Err(DatagramError::TrailingBytes { len: 1 })
        );
        assert_eq!(
            decode_reply(b"TD\x01\x86\x00\0\0\0\0\0\0\0\x01\x00\x00\x00", l),
            Err(DatagramError::Empty { field: "topic" })
        );
    }
}
