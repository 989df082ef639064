//! The messages a tunnel's two ends exchange over Redis pub/sub, on the channel of the node
//! they are for (`P:n:NODE`):
//!
//! ```text
//! KIND SP NODE SP TUNNEL LF PAYLOAD
//! ```
//!
//! `NODE` is the sender's id, `TUNNEL` the number the forwarding node gave the tunnel (with
//! `NODE` it names the tunnel on the owning node). Kinds: to the owner `O` (open; payload:
//! the client's address), `Q` (request bytes), `C` (the forwarding side is gone: drop the
//! request); to the forwarder `R` (response bytes), `F` (the response is finished).

/// What a message says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Open,
    Request,
    Cancel,
    Response,
    Finished,
}

impl Kind {
    fn letter(self) -> u8 {
        match self {
            Kind::Open => b'O',
            Kind::Request => b'Q',
            Kind::Cancel => b'C',
            Kind::Response => b'R',
            Kind::Finished => b'F',
        }
    }

    fn of(letter: u8) -> Option<Kind> {
        Some(match letter {
            b'O' => Kind::Open,
            b'Q' => Kind::Request,
            b'C' => Kind::Cancel,
            b'R' => Kind::Response,
            b'F' => Kind::Finished,
            _ => return None,
        })
    }
}

/// One decoded message; the payload borrows the received bytes.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Message<'a> {
    pub(super) kind: Kind,
    pub(super) node: &'a str,
    pub(super) tunnel: u64,
    pub(super) payload: &'a [u8],
}

pub(super) fn encode(kind: Kind, node: &str, tunnel: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(node.len() + payload.len() + 24);
    out.push(kind.letter());
    out.push(b' ');
    out.extend_from_slice(node.as_bytes());
    out.push(b' ');
    out.extend_from_slice(tunnel.to_string().as_bytes());
    out.push(b'\n');
    out.extend_from_slice(payload);
    out
}

/// `None` for anything else (another program on the channel, a newer version): ignored.
pub(super) fn decode(bytes: &[u8]) -> Option<Message<'_>> {
    let end = bytes.iter().position(|&b| b == b'\n')?;
    let head = std::str::from_utf8(&bytes[..end]).ok()?;
    let mut parts = head.split(' ');
    let kind = parts.next()?.as_bytes();
    let node = parts.next()?;
    let tunnel = parts.next()?.parse().ok()?;
    if kind.len() != 1 || node.is_empty() || parts.next().is_some() {
        return None;
    }
    Some(Message {
        kind: Kind::of(kind[0])?,
        node,
        tunnel,
        payload: &bytes[end + 1..],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_survives_the_round_trip_with_any_payload() {
        let bytes = encode(
            Kind::Request,
            "0a1b2c3d4e5f",
            42,
            b"POST / HTTP/1.1\r\n\n\0",
        );
        assert_eq!(
            decode(&bytes),
            Some(Message {
                kind: Kind::Request,
                node: "0a1b2c3d4e5f",
                tunnel: 42,
                payload: b"POST / HTTP/1.1\r\n\n\0",
            })
        );
    }

    #[test]
    fn other_bytes_are_not_messages() {
        for bad in [
            &b""[..],
            b"R node 1",
            b"X node 1\n",
            b"R  1\n",
            b"R node one\n",
            b"RR node 1\n",
            b"R node 1 2\n",
        ] {
            assert_eq!(decode(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
