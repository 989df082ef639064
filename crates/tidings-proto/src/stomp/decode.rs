//! Bytes in, frames out: the stream decoder, for either side of a connection.

use super::escape::{self, Escaping};
use super::{Command, Frame, Version};
use bytes::BytesMut;

/// Default for [`Limits::max_frame_size`].
pub const DEFAULT_MAX_FRAME_SIZE: usize = 1 << 20;
/// Default for [`Limits::max_headers`].
pub const DEFAULT_MAX_HEADERS: usize = 64;
/// Default for [`Limits::max_header_length`].
pub const DEFAULT_MAX_HEADER_LENGTH: usize = 8192;

/// Bounds of a decoder: it never buffers more than `max_frame_size` bytes of one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest frame (command, headers, body and NUL), in bytes. Default 1 MiB (1048576).
    pub max_frame_size: usize,
    /// Most headers in one frame. Default 64.
    pub max_headers: usize,
    /// Longest header line (and command line), in bytes, without its line end. Default 8192.
    pub max_header_length: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            max_headers: DEFAULT_MAX_HEADERS,
            max_header_length: DEFAULT_MAX_HEADER_LENGTH,
        }
    }
}

/// What was wrong with the input. Its `Display` text is what a server puts in the ERROR
/// frame's `message` header. Every one is fatal: the stream cannot be trusted any more.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeErrorKind {
    #[error("unknown command {0:?}")]
    UnknownCommand(String),
    #[error("header line longer than {max} bytes")]
    HeaderTooLong { max: usize },
    #[error("more than {max} headers")]
    TooManyHeaders { max: usize },
    #[error("frame larger than {max} bytes")]
    FrameTooLarge { max: usize },
    #[error("header line without a colon: {line:?}")]
    MissingColon { line: String },
    #[error("invalid escape sequence {sequence:?} in a header (STOMP {version})")]
    InvalidEscape { sequence: String, version: Version },
    #[error("header is not valid UTF-8")]
    NotUtf8,
    #[error("content-length {value:?} is not a whole number")]
    BadContentLength { value: String },
    #[error("the body of {len} bytes (content-length) is not followed by a NUL octet")]
    MissingNul { len: usize },
    #[error("a carriage return between frames is not followed by a line feed")]
    BadLineEnd,
}

/// A decoding failure, with the `receipt` header of the offending frame when it could be
/// read, so the ERROR frame can carry `receipt-id`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}")]
pub struct DecodeError {
    pub kind: DecodeErrorKind,
    pub receipt: Option<String>,
}

/// Where the decoder is in the frame at the front of the buffer: bytes that trickle in are
/// scanned once, not once per read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scan {
    /// Reading the command and header lines; `pos` is where the first incomplete line starts.
    /// `command` is `Err(())` for an unknown one: the headers are still read (within the
    /// limits) so the ERROR can carry the frame's receipt.
    Head {
        pos: usize,
        lines: usize,
        command: Option<Result<Command, ()>>,
    },
    /// The header block ends at `head`; waiting for the body.
    Body {
        command: Command,
        head: usize,
        content_length: Option<usize>,
        /// Bytes already searched for the NUL (frames without content-length).
        scanned: usize,
    },
}

const START: Scan = Scan::Head {
    pos: 0,
    lines: 0,
    command: None,
};

/// Decodes frames from a byte stream (either direction).
///
/// ```text
/// skip EOLs (heart-beats) ─> command line ─known?─> header lines ─> blank line
///   ─> content-length? ─yes─> wait for exactly that many bytes + NUL
///                      └no──> wait for the first NUL
///   ─> parse (unescape per version, UTF-8) ─> Frame, its body sharing the buffer
/// ```
///
/// Checks first, allocates only once a whole frame is buffered; `Ok(None)` means "need more
/// bytes". Errors leave the buffer alone and repeat. Bytes must only be appended to the
/// buffer between calls.
#[derive(Debug, Clone)]
pub struct Decoder {
    limits: Limits,
    version: Version,
    scan: Scan,
    heart_beats: u64,
}

impl Decoder {
    /// A decoder for `version` (use 1.2 until a version is agreed: `CONNECT` and `CONNECTED`
    /// are read without escapes whatever the version).
    pub fn new(limits: Limits, version: Version) -> Decoder {
        Decoder {
            limits,
            version,
            scan: START,
            heart_beats: 0,
        }
    }

    /// Switches the header escaping once the version is agreed.
    pub fn set_version(&mut self, version: Version) {
        self.version = version;
    }

    pub fn version(&self) -> Version {
        self.version
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// How many heart-beat EOLs were skipped so far.
    pub fn heart_beats(&self) -> u64 {
        self.heart_beats
    }

    /// Decodes the next frame from the front of `buf`, consuming its bytes.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, DecodeError> {
        if self.scan == START {
            self.skip_eols(buf)?;
        }
        loop {
            match self.scan {
                Scan::Head {
                    pos,
                    lines,
                    command,
                } => {
                    self.scan = self.scan_head(buf, pos, lines, command)?;
                    if let Scan::Head { .. } = self.scan {
                        return Ok(None);
                    }
                }
                Scan::Body {
                    command,
                    head,
                    content_length,
                    scanned,
                } => {
                    let total = match self.scan_body(buf, head, content_length, scanned)? {
                        Some(total) => total,
                        None => return Ok(None),
                    };
                    let frame = self.parse(buf, command, head, total)?;
                    self.scan = START;
                    return Ok(Some(frame));
                }
            }
        }
    }

    /// Heart-beats: `\n` or `\r\n` between frames.
    fn skip_eols(&mut self, buf: &mut BytesMut) -> Result<(), DecodeError> {
        let mut n = 0;
        let result = loop {
            match buf.get(n) {
                Some(b'\n') => n += 1,
                Some(b'\r') => match buf.get(n + 1) {
                    Some(b'\n') => n += 2,
                    Some(_) => break Err(self.error(DecodeErrorKind::BadLineEnd, None)),
                    None => break Ok(()),
                },
                _ => break Ok(()),
            }
            self.heart_beats += 1;
        };
        self.consume_eols(buf, n);
        result
    }

    fn consume_eols(&mut self, buf: &mut BytesMut, n: usize) {
        let _ = buf.split_to(n);
    }

    /// Advances over complete header lines: `Scan::Body` once the blank line is found, else
    /// the progress made (`Scan::Head`) for the next call.
    fn scan_head(
        &self,
        buf: &BytesMut,
        mut pos: usize,
        mut lines: usize,
        mut command: Option<Result<Command, ()>>,
    ) -> Result<Scan, DecodeError> {
        let max_line = self.limits.max_header_length;
        loop {
            let window_end = pos.saturating_add(max_line).saturating_add(2);
            let window = &buf[pos..window_end.min(buf.len())];
            let Some(newline) = window.iter().position(|&b| b == b'\n') else {
                // Whichever limit the line crosses first decides, so the outcome does not
                // depend on how the input was split into reads.
                let frame_end = self.limits.max_frame_size.saturating_add(1);
                if buf.len() >= window_end.min(frame_end) {
                    let kind = match window_end <= frame_end {
                        true => DecodeErrorKind::HeaderTooLong { max: max_line },
                        false => self.too_large(),
                    };
                    return Err(self.error_at(buf, pos, kind));
                }
                return Ok(Scan::Head {
                    pos,
                    lines,
                    command,
                });
            };
            let end = pos + newline;
            let content = strip_cr(&buf[pos..end]);
            if content.len() > max_line {
                // As above: the frame limit wins if it was crossed before this line end.
                let kind = match end <= self.limits.max_frame_size {
                    true => DecodeErrorKind::HeaderTooLong { max: max_line },
                    false => self.too_large(),
                };
                return Err(self.error_at(buf, pos, kind));
            }
            if end + 1 > self.limits.max_frame_size {
                return Err(self.error_at(buf, pos, self.too_large()));
            }
            match command {
                None => command = Some(Command::parse(content).ok_or(())),
                Some(Err(())) if content.is_empty() => {
                    let name = String::from_utf8_lossy(strip_cr(first_line(buf))).into_owned();
                    return Err(self.error_at(buf, end + 1, DecodeErrorKind::UnknownCommand(name)));
                }
                Some(Ok(c)) if content.is_empty() => {
                    let head = end + 1;
                    let content_length = self.content_length(buf, head)?;
                    return Ok(Scan::Body {
                        command: c,
                        head,
                        content_length,
                        scanned: head,
                    });
                }
                Some(_) => {
                    lines += 1;
                    if lines > self.limits.max_headers {
                        return Err(self.error_at(
                            buf,
                            end + 1,
                            DecodeErrorKind::TooManyHeaders {
                                max: self.limits.max_headers,
                            },
                        ));
                    }
                }
            }
            pos = end + 1;
        }
    }

    fn too_large(&self) -> DecodeErrorKind {
        DecodeErrorKind::FrameTooLarge {
            max: self.limits.max_frame_size,
        }
    }

    /// The first `content-length` header of the block `buf[..head]`, checked against the
    /// frame size limit.
    fn content_length(&self, buf: &BytesMut, head: usize) -> Result<Option<usize>, DecodeError> {
        let Some(raw) = raw_header(&buf[..head], b"content-length") else {
            return Ok(None);
        };
        let text = std::str::from_utf8(raw).unwrap_or("").trim();
        let len = match text.parse::<u64>() {
            Ok(len) if !text.starts_with('+') => len,
            _ => {
                let value = String::from_utf8_lossy(raw).into_owned();
                return Err(self.error_at(buf, head, DecodeErrorKind::BadContentLength { value }));
            }
        };
        match usize::try_from(len) {
            Ok(len) if head.saturating_add(len) < self.limits.max_frame_size => Ok(Some(len)),
            _ => Err(self.error_at(buf, head, self.too_large())),
        }
    }

    /// The length of the whole frame (through its NUL) once it is buffered.
    fn scan_body(
        &mut self,
        buf: &BytesMut,
        head: usize,
        content_length: Option<usize>,
        scanned: usize,
    ) -> Result<Option<usize>, DecodeError> {
        match content_length {
            Some(len) => {
                let total = head + len + 1;
                if buf.len() < total {
                    return Ok(None);
                }
                if buf[total - 1] != 0 {
                    return Err(self.error_at(buf, head, DecodeErrorKind::MissingNul { len }));
                }
                Ok(Some(total))
            }
            None => {
                let limit = buf.len().min(self.limits.max_frame_size);
                let start = scanned.min(limit);
                match buf[start..limit].iter().position(|&b| b == 0) {
                    Some(i) => Ok(Some(start + i + 1)),
                    None if buf.len() >= self.limits.max_frame_size => {
                        Err(self.error_at(buf, head, self.too_large()))
                    }
                    None => {
                        if let Scan::Body { scanned: s, .. } = &mut self.scan {
                            *s = limit;
                        }
                        Ok(None)
                    }
                }
            }
        }
    }

    /// Builds the frame `buf[..total]` whose header block ends at `head`, then consumes it.
    fn parse(
        &self,
        buf: &mut BytesMut,
        command: Command,
        head: usize,
        total: usize,
    ) -> Result<Frame, DecodeError> {
        let esc = Escaping::of(self.version, command);
        let mut headers = Vec::new();
        let block = &buf[..head];
        for line in header_lines(block) {
            let colon = line.iter().position(|&b| b == b':').ok_or_else(|| {
                let line = String::from_utf8_lossy(line).into_owned();
                self.error_at(buf, head, DecodeErrorKind::MissingColon { line })
            })?;
            let name = self.text(buf, head, &line[..colon], esc)?;
            let value = self.text(buf, head, &line[colon + 1..], esc)?;
            headers.push((name, value));
        }
        let frame = buf.split_to(total).freeze();
        Ok(Frame {
            command,
            headers,
            body: frame.slice(head..total - 1),
        })
    }

    fn text(
        &self,
        buf: &BytesMut,
        head: usize,
        raw: &[u8],
        esc: Escaping,
    ) -> Result<String, DecodeError> {
        let bytes = escape::unescape(raw, esc).map_err(|e| {
            self.error_at(
                buf,
                head,
                DecodeErrorKind::InvalidEscape {
                    sequence: e.0,
                    version: self.version,
                },
            )
        })?;
        String::from_utf8(bytes).map_err(|_| self.error_at(buf, head, DecodeErrorKind::NotUtf8))
    }

    fn error(&self, kind: DecodeErrorKind, receipt: Option<String>) -> DecodeError {
        DecodeError { kind, receipt }
    }

    /// An error for the frame whose complete lines are `buf[..end]`, with its receipt if
    /// one of those lines holds it.
    fn error_at(&self, buf: &BytesMut, end: usize, kind: DecodeErrorKind) -> DecodeError {
        let block = &buf[..end.min(buf.len())];
        let receipt = raw_header(block, b"receipt").map(|raw| {
            let command = Command::parse(strip_cr(first_line(block))).unwrap_or(Command::Send);
            let esc = Escaping::of(self.version, command);
            match escape::unescape(raw, esc) {
                Ok(v) => String::from_utf8_lossy(&v).into_owned(),
                Err(_) => String::from_utf8_lossy(raw).into_owned(),
            }
        });
        DecodeError { kind, receipt }
    }
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn first_line(block: &[u8]) -> &[u8] {
    let end = block
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(block.len());
    &block[..end]
}

/// The header lines of a block (after the command line, before the blank line), without
/// their line ends. Only complete lines are yielded.
fn header_lines(block: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut lines = block.split_inclusive(|&b| b == b'\n');
    lines.next(); // the command
    lines
        .filter(|l| l.ends_with(b"\n"))
        .map(|l| strip_cr(&l[..l.len() - 1]))
        .filter(|l| !l.is_empty())
}

/// The raw value of the first header named `name` (names to look up here never need escapes).
fn raw_header<'a>(block: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    header_lines(block).find_map(|line| {
        line.strip_prefix(name)
            .and_then(|rest| rest.strip_prefix(b":"))
    })
}
