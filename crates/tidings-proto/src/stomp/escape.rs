//! Header value encoding, which differs by version (spec 1.2, "Value Encoding"):
//!
//! | version | `\r` | `\n` | `:` | `\` |
//! |---|---|---|---|---|
//! | 1.0, and `CONNECT`/`STOMP`/`CONNECTED` of every version | raw | cannot occur | raw (values only) | raw |
//! | 1.1 | raw | `\n` | `\c` | `\\` |
//! | 1.2 | `\r` | `\n` | `\c` | `\\` |
//!
//! Any other backslash sequence is a fatal protocol error.

use super::{Command, Version};
use bytes::{BufMut, BytesMut};

/// Which escaping a frame's headers use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Escaping {
    None,
    V11,
    V12,
}

impl Escaping {
    pub(crate) fn of(version: Version, command: Command) -> Escaping {
        match (version, command.escapes_headers()) {
            (_, false) | (Version::V1_0, _) => Escaping::None,
            (Version::V1_1, true) => Escaping::V11,
            (Version::V1_2, true) => Escaping::V12,
        }
    }
}

/// A backslash sequence the version does not define.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BadEscape(pub(crate) String);

/// Decodes one raw header name or value. The caller checks UTF-8 afterwards.
pub(crate) fn unescape(raw: &[u8], esc: Escaping) -> Result<Vec<u8>, BadEscape> {
    if esc == Escaping::None || !raw.contains(&b'\\') {
        return Ok(raw.to_vec());
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut bytes = raw.iter();
    while let Some(&b) = bytes.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        let next = bytes.next().copied();
        out.push(match (next, esc) {
            (Some(b'\\'), _) => b'\\',
            (Some(b'c'), _) => b':',
            (Some(b'n'), _) => b'\n',
            (Some(b'r'), Escaping::V12) => b'\r',
            (Some(other), _) => {
                let shown = String::from_utf8_lossy(&[b'\\', other]).into_owned();
                return Err(BadEscape(shown));
            }
            (None, _) => return Err(BadEscape("\\ at the end of a header".into())),
        });
    }
    Ok(out)
}

/// True when `text` would be written differently from its raw bytes under `esc`.
pub(crate) fn needs_escape(text: &str, esc: Escaping) -> bool {
    match esc {
        Escaping::None => text.contains(['\n', '\r']),
        Escaping::V11 => text.contains(['\\', ':', '\n']),
        Escaping::V12 => text.contains(['\\', ':', '\n', '\r']),
    }
}

/// Writes a header name (`is_name`) or value. Without escaping (1.0, CONNECT/CONNECTED) what
/// cannot be represented is replaced: line ends by spaces, and a colon in a name by `_`.
pub(crate) fn escape_into(text: &str, esc: Escaping, is_name: bool, out: &mut BytesMut) {
    let raw_ok = match esc {
        Escaping::None => !(text.contains(['\n', '\r']) || is_name && text.contains(':')),
        _ => !needs_escape(text, esc),
    };
    if raw_ok {
        out.put_slice(text.as_bytes());
        return;
    }
    for ch in text.chars() {
        match (ch, esc) {
            ('\n' | '\r', Escaping::None) => out.put_u8(b' '),
            (':', Escaping::None) if is_name => out.put_u8(b'_'),
            ('\\', Escaping::V11 | Escaping::V12) => out.put_slice(b"\\\\"),
            (':', Escaping::V11 | Escaping::V12) => out.put_slice(b"\\c"),
            ('\n', Escaping::V11 | Escaping::V12) => out.put_slice(b"\\n"),
            ('\r', Escaping::V12) => out.put_slice(b"\\r"),
            _ => {
                let mut buf = [0u8; 4];
                out.put_slice(ch.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn esc(text: &str, e: Escaping) -> String {
        let mut out = BytesMut::new();
        escape_into(text, e, false, &mut out);
        String::from_utf8(out.to_vec()).unwrap()
    }

    #[test]
    fn each_version_escapes_its_own_set() {
        let v = "a:b\\c\nd\re";
        assert_eq!(esc(v, Escaping::V12), "a\\cb\\\\c\\nd\\re");
        assert_eq!(esc(v, Escaping::V11), "a\\cb\\\\c\\nd\re");
        assert_eq!(esc(v, Escaping::None), "a:b\\c d e");
        for e in [Escaping::V11, Escaping::V12] {
            let back = unescape(esc("x:y\\z\n", e).as_bytes(), e).unwrap();
            assert_eq!(back, b"x:y\\z\n");
        }
    }

    #[test]
    fn undefined_escapes_are_refused() {
        assert!(unescape(b"a\\tb", Escaping::V12).is_err());
        assert!(unescape(b"a\\r", Escaping::V11).is_err());
        assert!(unescape(b"a\\", Escaping::V12).is_err());
        assert_eq!(unescape(b"a\\tb", Escaping::None).unwrap(), b"a\\tb");
    }
}
