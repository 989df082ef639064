//! The SockJS 0.3.3 frames a server sends, read by the client side (sans-IO): `o` open, `h`
//! heartbeat, `a["m1","m2"]` messages (a JSON array of strings), `c[code,"reason"]` close.
//! Over WebSocket each text frame is one SockJS frame; over `xhr_streaming` and `xhr` the
//! response body carries frames each ended by `\n`, the streaming one after a prelude of 2048
//! `h` bytes and a `\n` ([`LineFrames`] splits them, whatever the chunking).

/// One frame from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Frame {
    Open,
    Heartbeat,
    Messages(Vec<String>),
    Close { code: u16, reason: String },
}

/// Reads one frame; an error names what was wrong (the benchmark stops on it: a framing error
/// means the client and the server disagree, and no figure measured then means anything).
pub(crate) fn parse(frame: &[u8]) -> Result<Frame, String> {
    let bad = || format!("bad SockJS frame {:?}", String::from_utf8_lossy(frame));
    match frame.first() {
        Some(b'o') if frame.len() == 1 => Ok(Frame::Open),
        Some(b'h') if frame.len() == 1 => Ok(Frame::Heartbeat),
        Some(b'a') => serde_json::from_slice(&frame[1..])
            .map(Frame::Messages)
            .map_err(|_| bad()),
        Some(b'c') => {
            let (code, reason): (u16, String) =
                serde_json::from_slice(&frame[1..]).map_err(|_| bad())?;
            Ok(Frame::Close { code, reason })
        }
        _ => Err(bad()),
    }
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
        mut each: impl FnMut(Frame) -> Result<(), String>,
    ) -> Result<(), String> {
        while let Some(end) = chunk.iter().position(|&b| b == b'\n') {
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

    #[test]
    fn frames_of_every_kind() {
        assert_eq!(parse(b"o"), Ok(Frame::Open));
        assert_eq!(parse(b"h"), Ok(Frame::Heartbeat));
        assert_eq!(
            parse(br#"a["{\"type\":\"hello\"}","x\u2028y"]"#),
            Ok(Frame::Messages(vec![
                r#"{"type":"hello"}"#.into(),
                "x\u{2028}y".into()
            ]))
        );
        assert_eq!(
            parse(br#"c[3000,"Go away!"]"#),
            Ok(Frame::Close {
                code: 3000,
                reason: "Go away!".into()
            })
        );
    }

    #[test]
    fn broken_frames_are_errors_that_quote_them() {
        for bad in [&b""[..], b"x", b"a[1]", b"a[\"x\"", b"c[\"x\"]", b"oo"] {
            let err = parse(bad).unwrap_err();
            assert!(err.contains("bad SockJS frame"), "{err}");
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
                        frames.push(f);
                        Ok(())
                    })
                    .unwrap();
            }
            assert!(split.is_clean());
            assert_eq!(
                frames,
                [
                    Frame::Open,
                    Frame::Messages(vec!["m1".into(), "m2".into()]),
                    Frame::Heartbeat,
                    Frame::Messages(vec!["m3".into()]),
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
