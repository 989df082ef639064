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
//!
//! Used by the server's request forwarding (`tidings-server/src/runtime/forward/`); here, with
//! the other decoders, so it is fuzzed (`fuzz/fuzz_targets/tunnel_decoder.rs`). The head is
//! looked for in the first [`MAX_HEAD`] bytes only; the payload is borrowed, never copied.

/// Longest head (`KIND SP NODE SP TUNNEL`): a node id is 12 hex digits and a tunnel number at
/// most 20 digits; anything longer is not a tunnel message.
pub const MAX_HEAD: usize = 64;
/// A node id: this many lowercase hex digits (the server's `NodeId`). A message naming
/// anything else is not one of ours; a node id is also part of the channel a reply goes to,
/// so it must never be arbitrary text.
pub const NODE_LEN: usize = 12;
/// Most payload bytes in one message: the tunnels' chunk size. A larger message is not
/// decoded, so what a tunnel queues is bounded by its chunk count times this.
pub const MAX_PAYLOAD: usize = 16 * 1024;

/// What a message says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
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
pub struct Message<'a> {
    pub kind: Kind,
    pub node: &'a str,
    pub tunnel: u64,
    pub payload: &'a [u8],
}

pub fn encode(kind: Kind, node: &str, tunnel: u64, payload: &[u8]) -> Vec<u8> {
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
pub fn decode(bytes: &[u8]) -> Option<Message<'_>> {
    let end = bytes.iter().take(MAX_HEAD + 1).position(|&b| b == b'\n')?;
    let head = std::str::from_utf8(&bytes[..end]).ok()?;
    let mut parts = head.split(' ');
    let kind = parts.next()?.as_bytes();
    let node = parts.next()?;
    let tunnel = parts.next()?.parse().ok()?;
    let node_ok = node.len() == NODE_LEN
        && node
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if kind.len() != 1 || !node_ok || parts.next().is_some() || bytes.len() - end - 1 > MAX_PAYLOAD
    {
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
        // Node ids are 12 lowercase hex digits, payloads at most a chunk.
        assert_eq!(decode(b"R 0A1B2C3D4E5F 1\n"), None);
        assert_eq!(decode(b"R 0a1b2c3d4e5 1\n"), None);
        let mut big = b"R 0a1b2c3d4e5f 1\n".to_vec();
        big.resize(big.len() + MAX_PAYLOAD, b'x');
        assert!(decode(&big).is_some());
        big.push(b'x');
        assert_eq!(decode(&big), None);
        // A head past MAX_HEAD is not looked for further.
        let long = format!("R {} 1\n", "n".repeat(MAX_HEAD));
        assert_eq!(decode(long.as_bytes()), None);
    }
}
