//! Engine.IO protocol 4 packets and long-polling payloads (<https://github.com/socketio/engine.io-protocol>).
//!
//! ```text
//! packet   = type [data]          type: 0 open  1 close  2 ping  3 pong  4 message  5 upgrade  6 noop
//! binary   = 'b' base64(bytes)    (long-polling only; over WebSocket a binary frame is the bytes)
//! payload  = packet *( %x1E packet )   the body of a long-polling request or response
//! ```
//! Decoding borrows from the input except for base64 binary, which is decoded into its own
//! buffer. A payload is decoded packet by packet; the caller stops at the first bad packet,
//! as the reference server does.

use base64::Engine as _;

/// The record separator between the packets of a long-polling payload.
pub const SEPARATOR: u8 = 0x1e;

/// One Engine.IO packet, borrowed from its frame (or payload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet<'a> {
    /// `0{...}`: the handshake (server to client only).
    Open(&'a str),
    /// `1`: the sender closes the session.
    Close,
    /// `2[data]`: a heartbeat, or `2probe` during an upgrade.
    Ping(&'a str),
    /// `3[data]`: the answer to a ping (`3probe` during an upgrade).
    Pong(&'a str),
    /// `4<text>`: a text message.
    Message(&'a str),
    /// A binary message: a WebSocket binary frame, or `b<base64>` in a payload.
    Binary(Vec<u8>),
    /// `5`: the client switches to the new transport.
    Upgrade,
    /// `6`: nothing (makes a pending long-poll return during an upgrade).
    Noop,
}

/// Why a packet or payload could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    #[error("an empty packet")]
    Empty,
    #[error("unknown packet type {0:?}")]
    UnknownType(char),
    #[error("a binary packet that is not valid base64")]
    BadBase64,
    #[error("a payload that is not UTF-8")]
    NotUtf8,
}

/// Decodes one text packet: a WebSocket text frame, or one packet of a payload (where `b`
/// introduces base64 binary).
pub fn decode_packet(text: &str) -> Result<Packet<'_>, DecodeError> {
    let mut chars = text.chars();
    let kind = chars.next().ok_or(DecodeError::Empty)?;
    let data = chars.as_str();
    Ok(match kind {
        '0' => Packet::Open(data),
        '1' => Packet::Close,
        '2' => Packet::Ping(data),
        '3' => Packet::Pong(data),
        '4' => Packet::Message(data),
        '5' => Packet::Upgrade,
        '6' => Packet::Noop,
        'b' => Packet::Binary(
            base64::engine::general_purpose::STANDARD
                .decode(data)
                .map_err(|_| DecodeError::BadBase64)?,
        ),
        other => return Err(DecodeError::UnknownType(other)),
    })
}

/// Decodes a long-polling request body: its packets one by one, so a caller handles each as
/// it comes and stops at the first bad one (closing the session, as the reference server
/// does). Nothing is collected, so a big body of tiny packets costs no more than its bytes.
pub fn decode_payload(
    body: &[u8],
) -> Result<impl Iterator<Item = Result<Packet<'_>, DecodeError>>, DecodeError> {
    let text = std::str::from_utf8(body).map_err(|_| DecodeError::NotUtf8)?;
    Ok(text.split(char::from(SEPARATOR)).map(decode_packet))
}

/// Writes long-polling payloads: packets appended one after the other with separators.
#[derive(Debug, Default)]
pub struct PayloadWriter {
    buf: Vec<u8>,
}

impl PayloadWriter {
    pub fn new() -> Self {
        PayloadWriter::default()
    }

    fn separate(&mut self) {
        if !self.buf.is_empty() {
            self.buf.push(SEPARATOR);
        }
    }

    /// Appends an already encoded text packet (`4hello`, `2`, `6`...).
    pub fn text(&mut self, packet: &[u8]) {
        self.separate();
        self.buf.extend_from_slice(packet);
    }

    /// Appends any packet (binary as `b<base64>`).
    pub fn packet(&mut self, packet: &Packet<'_>) {
        let (kind, data) = match packet {
            Packet::Binary(bytes) => return self.binary(bytes),
            Packet::Open(d) => (b'0', *d),
            Packet::Close => (b'1', ""),
            Packet::Ping(d) => (b'2', *d),
            Packet::Pong(d) => (b'3', *d),
            Packet::Message(d) => (b'4', *d),
            Packet::Upgrade => (b'5', ""),
            Packet::Noop => (b'6', ""),
        };
        self.separate();
        self.buf.push(kind);
        self.buf.extend_from_slice(data.as_bytes());
    }

    /// Appends a binary message as `b<base64>`.
    pub fn binary(&mut self, data: &[u8]) {
        self.separate();
        self.buf.push(b'b');
        let start = self.buf.len();
        let len = base64::encoded_len(data.len(), true).unwrap_or(0);
        self.buf.resize(start + len, 0);
        let written = base64::engine::general_purpose::STANDARD
            .encode_slice(data, &mut self.buf[start..])
            .unwrap_or(0);
        self.buf.truncate(start + written);
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// The handshake packet: `0{"sid":..,"upgrades":[..],"pingInterval":..,"pingTimeout":..,"maxPayload":..}`,
/// the fields in the reference server's order.
pub fn open_packet(
    sid: &str,
    upgrades: &[&str],
    ping_interval_ms: u64,
    ping_timeout_ms: u64,
    max_payload: u64,
) -> String {
    let upgrades: Vec<String> = upgrades.iter().map(|u| json_string(u)).collect();
    format!(
        "0{{\"sid\":{},\"upgrades\":[{}],\"pingInterval\":{ping_interval_ms},\"pingTimeout\":{ping_timeout_ms},\"maxPayload\":{max_payload}}}",
        json_string(sid),
        upgrades.join(",")
    )
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_every_packet_type() {
        assert_eq!(decode_packet("0{}"), Ok(Packet::Open("{}")));
        assert_eq!(decode_packet("1"), Ok(Packet::Close));
        assert_eq!(decode_packet("2"), Ok(Packet::Ping("")));
        assert_eq!(decode_packet("2probe"), Ok(Packet::Ping("probe")));
        assert_eq!(decode_packet("3probe"), Ok(Packet::Pong("probe")));
        assert_eq!(decode_packet("4héllo"), Ok(Packet::Message("héllo")));
        assert_eq!(decode_packet("5"), Ok(Packet::Upgrade));
        assert_eq!(decode_packet("6"), Ok(Packet::Noop));
        assert_eq!(decode_packet("bAQID"), Ok(Packet::Binary(vec![1, 2, 3])));
        assert_eq!(decode_packet(""), Err(DecodeError::Empty));
        assert_eq!(decode_packet("7"), Err(DecodeError::UnknownType('7')));
        assert_eq!(decode_packet("b!!"), Err(DecodeError::BadBase64));
    }

    #[test]
    fn payloads_split_on_the_separator() {
        let all = |b: &'static [u8]| decode_payload(b).unwrap().collect::<Vec<_>>();
        assert_eq!(
            all(b"4hello\x1ebAQID\x1e3"),
            [
                Ok(Packet::Message("hello")),
                Ok(Packet::Binary(vec![1, 2, 3])),
                Ok(Packet::Pong(""))
            ]
        );
        assert_eq!(
            all(b"4a\x1e\x1e4b"),
            [
                Ok(Packet::Message("a")),
                Err(DecodeError::Empty),
                Ok(Packet::Message("b"))
            ]
        );
        assert!(matches!(
            decode_payload(b"4\xff"),
            Err(DecodeError::NotUtf8)
        ));
    }

    #[test]
    fn writes_payloads_like_the_reference() {
        let mut w = PayloadWriter::new();
        assert!(w.is_empty());
        w.text(b"2");
        w.text(b"451-[\"x\",{\"_placeholder\":true,\"num\":0}]");
        w.binary(&[1, 2, 3]);
        assert_eq!(
            w.finish(),
            b"2\x1e451-[\"x\",{\"_placeholder\":true,\"num\":0}]\x1ebAQID"
        );
        assert_eq!(
            open_packet("abc", &["websocket"], 25000, 20000, 1000000),
            r#"0{"sid":"abc","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#
        );
    }
}
