//! The pieces every datagram is made of: header, integers, strings, cookies, payload kinds.
//!
//! [`Reader`] only checks and slices: it never allocates, so a datagram is fully checked
//! before anything is built from it.

use bytes::BufMut;

use super::error::DatagramError;
use crate::PayloadKind;

/// The first two bytes of every datagram.
pub const MAGIC: [u8; 2] = *b"TD";
/// The protocol version this crate speaks.
pub const VERSION: u8 = 1;
/// Magic, version, type.
pub const HEADER_LEN: usize = 4;
/// Length of an address-validation cookie.
pub const COOKIE_LEN: usize = 24;
/// A cookie: opaque to clients, which echo it unchanged.
pub type Cookie = [u8; COOKIE_LEN];
/// Default for [`Limits::max_datagram`].
pub const DEFAULT_MAX_DATAGRAM: usize = 1200;
/// What a client pads a request to when it wants an answer before its address is validated:
/// enough for a `CHALLENGE` (32 bytes) or a `PUBLISHED` with an epoch of up to 35 bytes.
pub const REPLY_ROOM: usize = 64;

/// Bounds of the decoders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest datagram, in bytes (the whole UDP payload). Default 1200: below the IPv6
    /// minimum MTU (1280) minus IP and UDP headers, so a datagram is never fragmented.
    pub max_datagram: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_datagram: DEFAULT_MAX_DATAGRAM,
        }
    }
}

/// Datagram types, as written on the wire.
pub(crate) mod kind {
    pub(crate) const PUBLISH: u8 = 0x01;
    pub(crate) const SUBSCRIBE: u8 = 0x02;
    pub(crate) const RENEW: u8 = 0x03;
    pub(crate) const UNSUBSCRIBE: u8 = 0x04;
    pub(crate) const CHALLENGE: u8 = 0x81;
    pub(crate) const SUBSCRIBED: u8 = 0x82;
    pub(crate) const RENEWED: u8 = 0x83;
    pub(crate) const UNSUBSCRIBED: u8 = 0x84;
    pub(crate) const PUBLISHED: u8 = 0x85;
    pub(crate) const MESSAGE: u8 = 0x86;
    pub(crate) const ERROR: u8 = 0x87;

    /// True for the types a server sends.
    pub(crate) fn is_reply(t: u8) -> bool {
        t & 0x80 != 0
    }
}

/// Checks size and header; returns the type byte.
pub(crate) fn check_header(datagram: &[u8], limits: Limits) -> Result<u8, DatagramError> {
    if datagram.len() > limits.max_datagram {
        return Err(DatagramError::TooLarge {
            len: datagram.len(),
            max: limits.max_datagram,
        });
    }
    if datagram.len() < HEADER_LEN || datagram[..2] != MAGIC {
        return Err(DatagramError::NotTidings);
    }
    if datagram[2] != VERSION {
        return Err(DatagramError::UnsupportedVersion(datagram[2]));
    }
    Ok(datagram[3])
}

pub(crate) fn put_header<B: BufMut>(out: &mut B, t: u8) {
    out.put_slice(&MAGIC);
    out.put_u8(VERSION);
    out.put_u8(t);
}

pub(crate) fn kind_code(kind: PayloadKind) -> u8 {
    match kind {
        PayloadKind::Text => 0,
        PayloadKind::Json => 1,
        PayloadKind::Binary => 2,
    }
}

/// Checks that `payload` is what `code` says it is.
pub(crate) fn payload_kind(code: u8, payload: &[u8]) -> Result<PayloadKind, DatagramError> {
    match code {
        0 => std::str::from_utf8(payload)
            .map(|_| PayloadKind::Text)
            .map_err(|_| DatagramError::NotUtf8 { field: "payload" }),
        1 => match serde_json::from_slice::<&serde_json::value::RawValue>(payload) {
            Ok(raw) if !crate::json::has_lone_surrogate(raw.get()) => Ok(PayloadKind::Json),
            _ => Err(DatagramError::NotJson),
        },
        2 => Ok(PayloadKind::Binary),
        other => Err(DatagramError::UnknownKind(other)),
    }
}

pub(crate) fn put_str8<B: BufMut>(out: &mut B, s: &str) {
    // Callers check lengths before writing; a longer string is cut at a char boundary.
    let s = truncate(s, u8::MAX as usize);
    out.put_u8(s.len() as u8);
    out.put_slice(s.as_bytes());
}

pub(crate) fn put_str16<B: BufMut>(out: &mut B, s: &str) {
    let s = truncate(s, u16::MAX as usize);
    out.put_u16(s.len() as u16);
    out.put_slice(s.as_bytes());
}

/// The longest prefix of `s` of at most `max` bytes that ends on a char boundary.
pub(crate) fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut cut = max;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    &s[..cut]
}

/// Reads fields front to back; every read checks that the bytes are there.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader positioned after the header.
    pub(crate) fn after_header(buf: &'a [u8]) -> Self {
        Self {
            buf,
            pos: HEADER_LEN,
        }
    }

    pub(crate) fn bytes(
        &mut self,
        n: usize,
        field: &'static str,
    ) -> Result<&'a [u8], DatagramError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.buf.len())
            .ok_or(DatagramError::Truncated { field })?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, DatagramError> {
        Ok(self.bytes(1, field)?[0])
    }

    pub(crate) fn u16(&mut self, field: &'static str) -> Result<u16, DatagramError> {
        let b = self.bytes(2, field)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, DatagramError> {
        let mut a = [0; 4];
        a.copy_from_slice(self.bytes(4, field)?);
        Ok(u32::from_be_bytes(a))
    }

    pub(crate) fn u64(&mut self, field: &'static str) -> Result<u64, DatagramError> {
        let mut a = [0; 8];
        a.copy_from_slice(self.bytes(8, field)?);
        Ok(u64::from_be_bytes(a))
    }

    pub(crate) fn cookie(&mut self) -> Result<&'a Cookie, DatagramError> {
        let b = self.bytes(COOKIE_LEN, "cookie")?;
        b.try_into()
            .map_err(|_| DatagramError::Truncated { field: "cookie" })
    }

    fn utf8(bytes: &'a [u8], field: &'static str) -> Result<&'a str, DatagramError> {
        std::str::from_utf8(bytes).map_err(|_| DatagramError::NotUtf8 { field })
    }

    pub(crate) fn str8(&mut self, field: &'static str) -> Result<&'a str, DatagramError> {
        let len = self.u8(field)? as usize;
        Self::utf8(self.bytes(len, field)?, field)
    }

    pub(crate) fn str16(&mut self, field: &'static str) -> Result<&'a str, DatagramError> {
        let len = self.u16(field)? as usize;
        Self::utf8(self.bytes(len, field)?, field)
    }

    /// Everything left.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        let out = &self.buf[self.pos..];
        self.pos = self.buf.len();
        out
    }

    /// A request may end in zero bytes of padding, nothing else.
    pub(crate) fn padding(mut self) -> Result<(), DatagramError> {
        let rest = self.rest();
        match rest.iter().any(|&b| b != 0) {
            true => Err(DatagramError::BadPadding { len: rest.len() }),
            false => Ok(()),
        }
    }

    /// A reply ends exactly where its last field does.
    pub(crate) fn end(mut self) -> Result<(), DatagramError> {
        let rest = self.rest();
        match rest.is_empty() {
            true => Ok(()),
            false => Err(DatagramError::TrailingBytes { len: rest.len() }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncates_on_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("héllo", 3), "hé");
        assert_eq!(truncate("abc", 10), "abc");
    }

    #[test]
    fn reader_checks_lengths() {
        let buf = b"TD\x01\x02\x00\x05abc";
        let mut r = Reader::after_header(buf);
        assert_eq!(
            r.str16("pattern"),
            Err(DatagramError::Truncated { field: "pattern" })
        );
        let mut r = Reader::after_header(buf);
        assert_eq!(r.u16("x"), Ok(5));
        assert_eq!(r.rest(), b"abc");
    }

    #[test]
    fn payload_kinds_are_checked() {
        assert_eq!(payload_kind(0, b"hi"), Ok(PayloadKind::Text));
        assert!(payload_kind(0, b"\xff").is_err());
        assert_eq!(payload_kind(1, b" {\"a\":1} "), Ok(PayloadKind::Json));
        assert_eq!(payload_kind(1, b"{"), Err(DatagramError::NotJson));
        assert_eq!(payload_kind(1, br#""\ud800""#), Err(DatagramError::NotJson));
        assert_eq!(payload_kind(2, b"\xff"), Ok(PayloadKind::Binary));
        assert_eq!(payload_kind(9, b""), Err(DatagramError::UnknownKind(9)));
    }
}
