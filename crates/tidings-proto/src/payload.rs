//! What a payload is, whichever protocol carried it.

/// The kind of a message payload.
///
/// The payload itself travels beside the kind as `bytes::Bytes`; the kind says how to read
/// those bytes and how each protocol should present them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PayloadKind {
    /// UTF-8 text. The bytes are always valid UTF-8.
    Text,
    /// One JSON value, stored as its JSON text exactly as the publisher wrote it, so it can be
    /// spliced into JSON frames without being parsed again. The bytes are always valid JSON.
    Json,
    /// Arbitrary bytes.
    Binary,
}

impl PayloadKind {
    /// The kind the line protocol gives a payload: it has no type tag, so valid UTF-8 is
    /// [`Text`](Self::Text) and anything else is [`Binary`](Self::Binary).
    pub fn text_or_binary(payload: &[u8]) -> Self {
        if std::str::from_utf8(payload).is_ok() {
            Self::Text
        } else {
            Self::Binary
        }
    }

    /// The lower-case name used in docs and JSON (`"text"`, `"json"`, `"binary"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Json => "json",
            Self::Binary => "binary",
        }
    }
}

/// True when `payload` can travel on one text line: valid UTF-8 without `\r` or `\n`.
/// Longest payload sent inline as `MSG`/`PUB` text; longer ones go length-prefixed
/// (`BMSG`/`BPUB`). Why: with the longest topic (256 bytes) the line stays far below the
/// default line limit (4096) of whoever reads it, so a long text never kills a reader.
pub const MAX_INLINE_PAYLOAD: usize = 1024;

pub(crate) fn is_single_line_text(payload: &[u8]) -> bool {
    payload.len() <= MAX_INLINE_PAYLOAD
        && !payload.iter().any(|&b| b == b'\r' || b == b'\n')
        && std::str::from_utf8(payload).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        assert_eq!(PayloadKind::text_or_binary(b"hello"), PayloadKind::Text);
        assert_eq!(PayloadKind::text_or_binary(b""), PayloadKind::Text);
        assert_eq!(PayloadKind::text_or_binary(b"\xff"), PayloadKind::Binary);
        assert!(is_single_line_text(b"caf\xc3\xa9"));
        assert!(!is_single_line_text(b"a\nb"));
        assert!(!is_single_line_text(b"a\r"));
        assert!(!is_single_line_text(b"\xc3"));
    }
}
