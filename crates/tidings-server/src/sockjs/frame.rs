//! SockJS frames (protocol 0.3.3): `o` open, `h` heartbeat, `a[...]` messages, `c[code,"reason"]`
//! close. Messages are JSON strings, escaped the way sockjs-node does so that browsers and
//! proxies do not mangle them.

use bytes::{BufMut, Bytes, BytesMut};

pub(crate) const OPEN: &[u8] = b"o";
pub(crate) const HEARTBEAT: &[u8] = b"h";

/// `c[code,"reason"]`.
pub(crate) fn close(code: u16, reason: &str) -> Bytes {
    let mut out = BytesMut::new();
    out.put_slice(format!("c[{code},").as_bytes());
    quote(&mut out, reason);
    out.put_u8(b']');
    out.freeze()
}

/// `a["m1","m2",...]` from messages already [`quoted`].
pub(crate) fn messages(quoted_items: &[Bytes]) -> Bytes {
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
pub(crate) fn quoted(text: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(text.len() + text.len() / 8 + 2);
    quote(&mut out, &String::from_utf8_lossy(text));
    out.freeze()
}

/// A JSON string literal that also escapes the characters SockJS requires escaped
/// (control characters, surrogates, and the ranges browsers treat specially).
pub(crate) fn quote(out: &mut BytesMut, s: &str) {
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

#[cfg(test)]
mod tests {
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
