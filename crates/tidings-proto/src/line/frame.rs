//! Framing shared by both directions: where a line ends, where a length-prefixed block ends,
//! how a line splits into tokens.
//!
//! Everything here only *checks*: it returns positions and never allocates, so the decoders
//! can wait for a whole frame before they build anything from it.

use std::ops::Range;

/// Default for [`Limits::max_line`].
pub const DEFAULT_MAX_LINE: usize = 4096;
/// Default for [`Limits::max_payload`].
pub const DEFAULT_MAX_PAYLOAD: usize = 1024 * 1024;

/// Bounds of a line-protocol decoder. A decoder never needs more than
/// `max_line + max_payload + 4` buffered bytes to make progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest line, in bytes, not counting its line end. Default 4096: enough for any command
    /// a person types and for a long text `PUB`; longer payloads go through `BPUB`.
    pub max_line: usize,
    /// Largest length-prefixed payload (`BPUB` from clients, `BMSG` from servers), in bytes.
    /// Default 1 MiB (1048576), so one peer cannot make the other buffer without bound.
    pub max_payload: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_line: DEFAULT_MAX_LINE,
            max_payload: DEFAULT_MAX_PAYLOAD,
        }
    }
}

/// A complete line at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LineSpan {
    /// Length of the line without its line end (`\n` or `\r\n`).
    pub(crate) content: usize,
    /// Length of the line with its line end.
    pub(crate) total: usize,
}

/// The line at the start of the buffer is longer than the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Overlong;

/// Finds the line at the start of `buf`.
///
/// `scanned` remembers how many bytes were already searched without finding `\n`, so that a
/// line arriving one byte at a time is searched once, not once per byte. The caller resets it
/// to 0 whenever it consumes bytes from the buffer.
///
/// The outcome depends only on the first `max_line + 2` bytes, so it is the same however the
/// input was split into reads.
pub(crate) fn find_line(
    buf: &[u8],
    scanned: &mut usize,
    max_line: usize,
) -> Result<Option<LineSpan>, Overlong> {
    // Room for the longest allowed content plus "\r\n".
    let window = max_line.saturating_add(2).min(buf.len());
    let start = (*scanned).min(window);
    match buf[start..window].iter().position(|&b| b == b'\n') {
        Some(found) => {
            let newline = start + found;
            let content = if newline > 0 && buf[newline - 1] == b'\r' {
                newline - 1
            } else {
                newline
            };
            if content > max_line {
                return Err(Overlong);
            }
            Ok(Some(LineSpan {
                content,
                total: newline + 1,
            }))
        }
        None if window < max_line.saturating_add(2) => {
            *scanned = window;
            Ok(None)
        }
        None => Err(Overlong),
    }
}

/// The bytes after a length-prefixed block are not a line end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MissingLineEnd;

/// Checks for a block of `len` bytes at `start` followed by `\n` or `\r\n`; returns the length
/// of everything up to and including that line end.
pub(crate) fn find_block_end(
    buf: &[u8],
    start: usize,
    len: usize,
) -> Result<Option<usize>, MissingLineEnd> {
    let Some(end) = start.checked_add(len) else {
        return Err(MissingLineEnd);
    };
    match buf.get(end) {
        None => Ok(None),
        Some(b'\n') => Ok(Some(end + 1)),
        Some(b'\r') => match buf.get(end + 1) {
            None => Ok(None),
            Some(b'\n') => Ok(Some(end + 2)),
            Some(_) => Err(MissingLineEnd),
        },
        Some(_) => Err(MissingLineEnd),
    }
}

/// Splits a line into tokens separated by one or more spaces, remembering positions so that
/// "the rest of the line" can be sliced out without copying.
#[derive(Debug, Clone)]
pub(crate) struct Tokens<'a> {
    line: &'a [u8],
    pos: usize,
}

impl<'a> Tokens<'a> {
    pub(crate) fn new(line: &'a [u8]) -> Self {
        Self { line, pos: 0 }
    }

    /// The next token, as a range into the line.
    pub(crate) fn next_range(&mut self) -> Option<Range<usize>> {
        while self.line.get(self.pos) == Some(&b' ') {
            self.pos += 1;
        }
        if self.pos == self.line.len() {
            return None;
        }
        let start = self.pos;
        while self.pos < self.line.len() && self.line[self.pos] != b' ' {
            self.pos += 1;
        }
        Some(start..self.pos)
    }

    /// The next token.
    pub(crate) fn next_token(&mut self) -> Option<&'a [u8]> {
        self.next_range().map(|r| &self.line[r])
    }

    /// Everything after the single space that follows the last token (empty when the line
    /// ends there). Consumes the rest of the line.
    pub(crate) fn rest(&mut self) -> Range<usize> {
        let start = (self.pos + 1).min(self.line.len());
        self.pos = self.line.len();
        start..self.line.len()
    }

    /// How many tokens are left (consumes them).
    pub(crate) fn count_rest(&mut self) -> usize {
        let mut n = 0;
        while self.next_range().is_some() {
            n += 1;
        }
        n
    }
}

/// Why a token is not a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NumberError {
    /// Empty, or not only ASCII digits.
    NotANumber,
    /// Only digits, but more than fits in a `u64`.
    Overflow,
}

/// Parses a decimal number made only of ASCII digits (no sign, no spaces).
pub(crate) fn parse_u64(token: &[u8]) -> Result<u64, NumberError> {
    if token.is_empty() || !token.iter().all(u8::is_ascii_digit) {
        return Err(NumberError::NotANumber);
    }
    token.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(d - b'0')))
            .ok_or(NumberError::Overflow)
    })
}

/// Peer-supplied bytes made fit to quote in an error message: lossy UTF-8, at most 64
/// characters. Quote it with `{:?}` so control characters are escaped.
pub(crate) fn show(bytes: &[u8]) -> String {
    const MAX_CHARS: usize = 64;
    let text = String::from_utf8_lossy(bytes);
    match text.char_indices().nth(MAX_CHARS) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(buf: &[u8], max: usize) -> Result<Option<LineSpan>, Overlong> {
        find_line(buf, &mut 0, max)
    }

    #[test]
    fn lines() {
        assert_eq!(line(b"", 8), Ok(None));
        assert_eq!(line(b"abc", 8), Ok(None));
        assert_eq!(
            line(b"abc\nx", 8),
            Ok(Some(LineSpan {
                content: 3,
                total: 4
            }))
        );
        assert_eq!(
            line(b"abc\r\n", 8),
            Ok(Some(LineSpan {
                content: 3,
                total: 5
            }))
        );
        assert_eq!(
            line(b"\n", 8),
            Ok(Some(LineSpan {
                content: 0,
                total: 1
            }))
        );
    }

    #[test]
    fn line_limit_is_exact() {
        // 4 bytes of content fit a limit of 4 with either line end.
        assert!(line(b"abcd\n", 4).unwrap().is_some());
        assert!(line(b"abcd\r\n", 4).unwrap().is_some());
        assert_eq!(line(b"abcde\n", 4), Err(Overlong));
        // Still waiting: "abcd\r" may become "abcd\r\n".
        assert_eq!(line(b"abcd\r", 4), Ok(None));
        assert_eq!(line(b"abcdef", 4), Err(Overlong));
    }

    #[test]
    fn scanned_skips_searched_bytes() {
        let mut scanned = 0;
        assert_eq!(find_line(b"abc", &mut scanned, 100), Ok(None));
        assert_eq!(scanned, 3);
        assert_eq!(
            find_line(b"abc\n", &mut scanned, 100),
            Ok(Some(LineSpan {
                content: 3,
                total: 4
            }))
        );
    }

    #[test]
    fn blocks() {
        assert_eq!(find_block_end(b"H\nab", 2, 2), Ok(None));
        assert_eq!(find_block_end(b"H\nab\r", 2, 2), Ok(None));
        assert_eq!(find_block_end(b"H\nab\r\n", 2, 2), Ok(Some(6)));
        assert_eq!(find_block_end(b"H\nab\n", 2, 2), Ok(Some(5)));
        assert_eq!(find_block_end(b"H\nabc", 2, 2), Err(MissingLineEnd));
        assert_eq!(find_block_end(b"H\nab\rx", 2, 2), Err(MissingLineEnd));
        assert_eq!(find_block_end(b"", 1, usize::MAX), Err(MissingLineEnd));
    }

    #[test]
    fn tokens() {
        let line = b"  PUB   a.b  hello  world ";
        let mut t = Tokens::new(line);
        assert_eq!(t.next_token(), Some(&b"PUB"[..]));
        assert_eq!(t.next_token(), Some(&b"a.b"[..]));
        assert_eq!(&line[t.rest()], b" hello  world ");
        let mut t = Tokens::new(b"PUB a");
        t.next_token();
        t.next_token();
        assert_eq!(t.rest(), 5..5);
        assert_eq!(Tokens::new(b" a b  c ").count_rest(), 3);
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_u64(b"0"), Ok(0));
        assert_eq!(parse_u64(b"007"), Ok(7));
        assert_eq!(parse_u64(b"18446744073709551615"), Ok(u64::MAX));
        assert_eq!(
            parse_u64(b"18446744073709551616"),
            Err(NumberError::Overflow)
        );
        assert_eq!(parse_u64(b"+1"), Err(NumberError::NotANumber));
        assert_eq!(parse_u64(b""), Err(NumberError::NotANumber));
        assert_eq!(parse_u64(b"1x"), Err(NumberError::NotANumber));
    }

    #[test]
    fn show_truncates_and_is_lossy() {
        assert_eq!(show(b"FOO"), "FOO");
        assert_eq!(show(b"\xffA"), "\u{fffd}A");
        assert_eq!(show(&[b'x'; 100]).len(), 67);
    }
}
