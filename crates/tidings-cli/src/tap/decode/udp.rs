//! UDP datagrams of the tidings protocol, decoded with tidings-proto.

use tidings_proto::udp::{self, Reply, Request};

use super::show;
use crate::tap::Dir;

/// One line for a datagram sent to (`ToServer`) or from the UDP port.
pub(crate) fn describe(dir: Dir, datagram: &[u8], max: usize) -> String {
    let limits = udp::Limits {
        max_datagram: usize::MAX,
    };
    let size = datagram.len();
    let text = match dir {
        Dir::ToServer => match udp::decode_request(datagram, limits) {
            Ok(r) => request(&r, max),
            Err(e) => format!("could not decode: {e}"),
        },
        Dir::ToClient => match udp::decode_reply(datagram, limits) {
            Ok(r) => reply(&r, max),
            Err(e) => format!("could not decode: {e}"),
        },
    };
    format!("{text} ({size} bytes)")
}

fn request(r: &Request<'_>, max: usize) -> String {
    match *r {
        Request::Publish {
            id,
            kind,
            topic,
            payload,
        } => format!(
            "PUBLISH id={id} {topic} {} {}",
            kind.as_str(),
            show(payload, payload.len(), max)
        ),
        Request::Subscribe {
            id,
            cookie,
            pattern,
        } => format!(
            "SUBSCRIBE id={id} {pattern} {}",
            if cookie.is_some() {
                "with cookie"
            } else {
                "no cookie"
            }
        ),
        Request::Renew { id, .. } => format!("RENEW id={id} with cookie"),
        Request::Unsubscribe { id, pattern, .. } => {
            let pattern = if pattern.is_empty() { "(all)" } else { pattern };
            format!("UNSUBSCRIBE id={id} {pattern}")
        }
    }
}

fn reply(r: &Reply<'_>, max: usize) -> String {
    match *r {
        Reply::Challenge { id, .. } => {
            format!("CHALLENGE id={id} (echo the cookie to prove the address)")
        }
        Reply::Subscribed {
            id,
            lease_ms,
            last_offset,
            epoch,
            ..
        } => format!("SUBSCRIBED id={id} lease={lease_ms}ms last={last_offset} epoch={epoch}"),
        Reply::Renewed {
            id,
            lease_ms,
            subscriptions,
            ..
        } => format!("RENEWED id={id} lease={lease_ms}ms subscriptions={subscriptions}"),
        Reply::Unsubscribed { id, removed } => format!("UNSUBSCRIBED id={id} removed={removed}"),
        Reply::Published { id, offset, epoch } => {
            format!("PUBLISHED id={id} offset={offset} epoch={epoch}")
        }
        Reply::Message {
            kind,
            offset,
            epoch,
            topic,
            payload,
        } => format!(
            "MESSAGE {topic} offset={offset} epoch={epoch} {} {}",
            kind.as_str(),
            show(payload, payload.len(), max)
        ),
        Reply::Error { id, code, message } => {
            format!("ERROR id={id} {} {message:?}", code.as_str())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidings_proto::PayloadKind;

    #[test]
    fn both_directions() {
        let mut d = Vec::new();
        udp::encode_request(
            &Request::Publish {
                id: 3,
                kind: PayloadKind::Text,
                topic: "a.b",
                payload: b"hi",
            },
            0,
            &mut d,
        );
        assert_eq!(
            describe(Dir::ToServer, &d, 10),
            "PUBLISH id=3 a.b text \"hi\" (18 bytes)"
        );
        assert_eq!(
            describe(Dir::ToClient, &d, 10),
            "could not decode: datagram type 0x01 is not one this side receives (18 bytes)"
        );
        assert_eq!(
            describe(Dir::ToServer, b"xyz", 10),
            "could not decode: not a tidings datagram (3 bytes)"
        );
    }
}
