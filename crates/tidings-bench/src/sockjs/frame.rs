//! The SockJS 0.3.3 frames a server sends, read by the client side (sans-IO): `o` open, `h`
//! heartbeat, `a["m1","m2"]` messages (a JSON array of strings), `c[code,"reason"]` close.
//! Over WebSocket each text frame is one SockJS frame; over `xhr_streaming` and `xhr` the
//! response body carries frames each ended by `\n`, the streaming one after a prelude of 2048
//! `h` bytes and a `\n` ([`LineFrames`] splits them, whatever the chunking). Frames borrow the
//! bytes read; messages are read without allocating ([`strings`]).

use super::strings;

/// One frame from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Frame<'a> {
    Open,
    Heartbeat,
    Messages(Messages<'a>),
    Close { code: u16, reason: String },
}

/// The messages of an `a` frame, checked as they are read by [`Messages::for_each`] (reading
/// them twice would double most of the load generator's work).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Messages<'a> {
    /// The whole frame, `a` included (an error quotes it).
    frame: &'a [u8],
}

impl Messages<'_> {
    /// Calls `each` with every message, unescaped (valid UTF-8); `scratch` is the buffer the
    /// messages with escapes are unescaped into. An error names what was wrong; messages
    /// before it were handed over already.
    pub(crate) fn for_each(
        self,
        scratch: &mut Vec<u8>,
        each: impl FnMut(&[u8]),
    ) -> Result<(), String> {
        strings::for_each(&self.frame[1..], scratch, each).map_err(|why| bad(self.frame, why))
    }
}

/// Reads one frame; an error names what was wrong (the benchmark stops on it: a framing error
/// means the client and the server disagree, and no figure measured then means anything).
pub(crate) fn parse(frame: &[u8]) -> Result<Frame<'_>, String> {
    match frame.first() {
        Some(b'o') if frame.len() == 1 => Ok(Frame::Open),
        Some(b'h') if frame.len() == 1 => Ok(Frame::Heartbeat),
        Some(b'a') => Ok(Frame::Messages(Messages { frame })),
        Some(b'c') => {
            let (code, reason): (u16, String) = serde_json::from_slice(&frame[1..])
                .map_err(|_| bad(frame, "not [code, \"reason\"]"))?;
            Ok(Frame::Close { code, reason })
        }
        _ => Err(bad(frame, "not o, h, a[...] or c[...]")),
    }
}

fn bad(frame: &[u8], why: &str) -> String {
    format!(
        "bad SockJS frame {:?}: {why}",
        String::from_utf8_lossy(frame)
    )
}

/// The longest line kept while waiting for its `\n`: a server that never ends a line must not
/// grow the client without bound. tidings' streaming responses end after 128 KiB anyway.
pub(crate) const MAX_LINE: usize = 1 << 20;

/// Splits a response body into `\n`-ended frames across chunk boundaries, skipping the
/// `xhr_streaming` prelude (a line of 2048 `h`).
#[derive(Debug, Default)]
pub(crate) struct LineFrames {
    partial: Vec<u8>,
}

impl LineFrames {
    /// Feeds one chunk; calls `each` with every complete frame in it.
    pub(crate) fn feed(
        &mut self,
        mut chunk: &[u8],
        mut each: impl FnMut(Frame<'_>) -> Result<(), String>,
    ) -> Result<(), String> {
        while let Some(end) = memchr::memchr(b'\n', chunk) {
            let line: &[u8] = if self.partial.is_empty() {
                &chunk[..end]
            } else {
                self.partial.extend_from_slice(&chunk[..end]);
                &self.partial
            };
            if !is_prelude(line) {
                each(parse(line)?)?;
            }
            self.partial.clear();
            chunk = &chunk[end + 1..];
        }
        if self.partial.len() + chunk.len() > MAX_LINE {
            return Err(format!("a SockJS frame longer than {MAX_LINE} bytes"));
        }
        self.partial.extend_from_slice(chunk);
        Ok(())
    }

    /// True when no frame is half read (a response may end only there).
    pub(crate) fn is_clean(&self) -> bool {
        self.partial.is_empty()
    }
}

fn is_prelude(line: &[u8]) -> bool {
    line.len() > 1 && line.iter().all(|&b| b == b'h')
}

/// The body of an `xhr_send` (or a WebSocket text frame from the client): a JSON array of the
/// messages.
pub(crate) fn send_body(messages: &[&str]) -> String {
    serde_json::to_string(messages).expect("strings always serialize")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame as owned values, to compare.
    #[derive(Debug, PartialEq, Eq)]
    enum Owned {
        Open,
        Heartbeat,
        Messages(Vec<String>),
        Close(u16, String),
    }

    fn owned(frame: Frame<'_>) -> Result<Owned, String> {
        Ok(match frame {
            Frame::Open => Owned::Open,
            Frame::Heartbeat => Owned::Heartbeat,
            Frame::Messages(m) => {
                let mut out = Vec::new();
                m.for_each(&mut Vec::new(), |s| {
                    out.push(String::from_utf8(s.to_vec()).unwrap())
                })?;
                Owned::Messages(out)
            }
            Frame::Close { code, reason } => Owned::Close(code, reason),
        })
    }

    fn read(frame: &[u8]) -> Result<Owned, String> {
        owned(parse(frame)?)
    }

    #[test]
    fn frames_of_every_kind() {
        assert_eq!(read(b"o"), Ok(Owned::Open));
        assert_eq!(read(b"h"), Ok(Owned::Heartbeat));
        assert_eq!(
            read(br#"a["{\"type\":\"hello\"}","x\u2028y"]"#),
            Ok(Owned::Messages(vec![
                r#"{"type":"hello"}"#.into(),
                "x\u{2028}y".into()
            ]))
        );
        assert_eq!(
            read(br#"c[3000,"Go away!"]"#),
            Ok(Owned::Close(3000, "Go away!".into()))
        );
    }

    #[test]
    fn broken_frames_are_errors_that_quote_them() {
        for bad in [&b""[..], b"x", b"a[1]", b"a[\"x\"", b"c[\"x\"]", b"oo"] {
            let err = read(bad).unwrap_err();
            assert!(err.contains("bad SockJS frame"), "{err}");
            let quoted = format!("{:?}", String::from_utf8_lossy(bad));
            assert!(err.contains(&quoted), "{err}");
        }
    }

    #[test]
    fn streaming_body_split_anywhere_gives_the_same_frames() {
        let mut body = vec![b'h'; 2048];
        body.extend_from_slice(b"\no\na[\"m1\",\"m2\"]\nh\na[\"m3\"]\n");
        for cut in 0..body.len() {
            let mut frames = Vec::new();
            let mut split = LineFrames::default();
            for chunk in [&body[..cut], &body[cut..]] {
                split
                    .feed(chunk, |f| {
                        frames.push(owned(f)?);
                        Ok(())
                    })
                    .unwrap();
            }
            assert!(split.is_clean());
            assert_eq!(
                frames,
                [
                    Owned::Open,
                    Owned::Messages(vec!["m1".into(), "m2".into()]),
                    Owned::Heartbeat,
                    Owned::Messages(vec!["m3".into()]),
                ],
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn a_line_that_never_ends_is_bounded() {
        let mut split = LineFrames::default();
        let chunk = vec![b'a'; MAX_LINE / 2 + 1];
        split.feed(&chunk, |_| Ok(())).unwrap();
        assert!(split.feed(&chunk, |_| Ok(())).is_err());
    }

    #[test]
    fn send_body_is_a_json_array_of_strings() {
        assert_eq!(send_body(&["a\"b", "c"]), r#"["a\"b","c"]"#);
    }
}
