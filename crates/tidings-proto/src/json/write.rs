//! Writing JSON by hand: string escaping, numbers, base64, and the frame type they end up in.
//!
//! The hot path (one encoded frame per delivered message) must not build `serde_json::Value`
//! trees, so frames are written directly into a buffer with these primitives.

use bytes::{BufMut, Bytes};

use crate::decimal::put_u64;

/// One encoded WebSocket frame: a text frame holding a JSON object, or a binary frame holding a
/// JSON object, `\n`, then raw payload bytes.
///
/// `bytes` is reference-counted: the server encodes a message once and hands clones of the
/// same frame to every subscriber.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedFrame {
    /// True for a binary frame, false for a text frame (then `bytes` is valid UTF-8).
    pub binary: bool,
    /// The frame payload.
    pub bytes: Bytes,
}

/// Writes `s` as a JSON string, quotes included.
pub(crate) fn put_str<B: BufMut>(out: &mut B, s: &str) {
    out.put_u8(b'"');
    let bytes = s.as_bytes();
    let mut run = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let short = match b {
            b'"' => b'"',
            b'\\' => b'\\',
            b'\n' => b'n',
            b'\r' => b'r',
            b'\t' => b't',
            0x08 => b'b',
            0x0c => b'f',
            0x00..=0x1f => 0,
            _ => continue,
        };
        out.put_slice(&bytes[run..i]);
        run = i + 1;
        if short == 0 {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.put_slice(b"\\u00");
            out.put_u8(HEX[usize::from(b >> 4)]);
            out.put_u8(HEX[usize::from(b & 0xf)]);
        } else {
            out.put_u8(b'\\');
            out.put_u8(short);
        }
    }
    out.put_slice(&bytes[run..]);
    out.put_u8(b'"');
}

/// Writes `bytes` as a JSON string of standard, padded base64 (RFC 4648 section 4): how a
/// binary payload travels inside a JSON document (history replies).
pub(crate) fn put_base64<B: BufMut>(out: &mut B, bytes: &[u8]) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let sextet = |n: u32, shift: u32| ALPHABET[((n >> shift) & 63) as usize];
    out.put_u8(b'"');
    let mut chunks = bytes.chunks_exact(3);
    for c in &mut chunks {
        let n = u32::from(c[0]) << 16 | u32::from(c[1]) << 8 | u32::from(c[2]);
        out.put_slice(&[sextet(n, 18), sextet(n, 12), sextet(n, 6), sextet(n, 0)]);
    }
    match *chunks.remainder() {
        [a] => {
            let n = u32::from(a) << 16;
            out.put_slice(&[sextet(n, 18), sextet(n, 12), b'=', b'=']);
        }
        [a, b] => {
            let n = u32::from(a) << 16 | u32::from(b) << 8;
            out.put_slice(&[sextet(n, 18), sextet(n, 12), sextet(n, 6), b'=']);
        }
        _ => {}
    }
    out.put_u8(b'"');
}

/// Writes a JSON object field by field: [`Object::new`] opens it with its first field
/// (`{"type":"message"` or `{"op":"publish"`), each call adds `,"key":value`, and
/// [`Object::close`] writes the `}`.
pub(crate) struct Object<B> {
    pub(crate) out: B,
}

impl<B: BufMut> Object<B> {
    /// Opens `{"<key>":"<value>"`.
    pub(crate) fn new(mut out: B, key: &str, value: &str) -> Self {
        out.put_u8(b'{');
        put_str(&mut out, key);
        out.put_u8(b':');
        put_str(&mut out, value);
        Self { out }
    }

    /// Writes `,"key":` and leaves the value to the caller.
    pub(crate) fn key(&mut self, key: &str) -> &mut B {
        self.out.put_u8(b',');
        put_str(&mut self.out, key);
        self.out.put_u8(b':');
        &mut self.out
    }

    pub(crate) fn str(&mut self, key: &str, value: &str) {
        put_str(self.key(key), value);
    }

    pub(crate) fn opt_str(&mut self, key: &str, value: Option<&str>) {
        match value {
            Some(value) => self.str(key, value),
            None => self.raw(key, "null"),
        }
    }

    pub(crate) fn u64(&mut self, key: &str, value: u64) {
        put_u64(self.key(key), value);
    }

    /// `value` must be one JSON value.
    pub(crate) fn raw(&mut self, key: &str, value: &str) {
        self.key(key).put_slice(value.as_bytes());
    }

    pub(crate) fn close(mut self) -> B {
        self.out.put_u8(b'}');
        self.out
    }
}

impl std::fmt::Debug for Object<Vec<u8>> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Object")
            .field(&String::from_utf8_lossy(&self.out))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string(s: &str) -> String {
        let mut out = Vec::new();
        put_str(&mut out, s);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn escapes() {
        assert_eq!(string("plain"), r#""plain""#);
        assert_eq!(string("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(string("\n\r\t\u{8}\u{c}"), r#""\n\r\t\b\f""#);
        assert_eq!(string("\u{0}\u{1f}\u{7f}"), "\"\\u0000\\u001f\u{7f}\"");
        assert_eq!(string("café ☕ \u{2028}"), "\"café ☕ \u{2028}\"");
        for s in ["", "x\"\u{1}y", "\\\\", "💬\n"] {
            let back: String = serde_json::from_str(&string(s)).unwrap();
            assert_eq!(back, s);
        }
    }

    #[test]
    fn base64() {
        let cases: [(&[u8], &str); 7] = [
            (b"", ""),
            (b"f", "Zg=="),
            (b"fo", "Zm8="),
            (b"foo", "Zm9v"),
            (b"foob", "Zm9vYg=="),
            (b"fooba", "Zm9vYmE="),
            (b"\xff\xfe\x00", "//4A"),
        ];
        for (input, expected) in cases {
            let mut out = Vec::new();
            put_base64(&mut out, input);
            assert_eq!(out, format!("\"{expected}\"").as_bytes());
        }
    }

    #[test]
    fn objects() {
        let mut o = Object::new(Vec::new(), "type", "ok");
        o.u64("n", 42);
        o.opt_str("user", None);
        o.raw("a", "[1]");
        assert_eq!(o.close(), br#"{"type":"ok","n":42,"user":null,"a":[1]}"#);
    }
}
