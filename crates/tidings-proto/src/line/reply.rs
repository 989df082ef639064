//! The client side: bytes from a server in, [`Reply`]s out.

use std::ops::Range;

use bytes::{Bytes, BytesMut};

use super::frame::{self, Limits, Tokens};

/// One line (or `BMSG` block) from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+OK <text>` (the text may be empty).
    Ok(String),
    /// `-ERR <text>`.
    Err(String),
    /// `# <text>`: information for people, such as the lines of the `HELP` reply.
    Info(String),
    /// `MSG <topic> <offset> <payload>` or `BMSG <topic> <offset> <len>` + bytes.
    Msg {
        topic: String,
        offset: u64,
        payload: Bytes,
    },
    /// `PONG [<token>]`.
    Pong(Option<String>),
    /// `JOIN <topic> <client-id> <user>`; `user` is `None` for `-` (anonymous).
    Join {
        topic: String,
        client: String,
        user: Option<String>,
    },
    /// `LEAVE <topic> <client-id> <user>`.
    Leave {
        topic: String,
        client: String,
        user: Option<String>,
    },
}

/// Why the server's output could not be read. A misbehaving server is a bug, but the client
/// must not panic on it either.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplyError {
    /// A whole line that is not a reply this client knows; it was consumed and the stream can
    /// be read on.
    #[error("unexpected line from server: {line:?}")]
    Unexpected { line: String },
    /// Fatal: a `BMSG` header whose length cannot be read; the stream cannot be framed.
    #[error("malformed BMSG header from server: {line:?}")]
    BadBmsgHeader { line: String },
    /// Fatal: no line end within `max` bytes.
    #[error("line longer than {max} bytes from server")]
    LineTooLong { max: usize },
    /// Fatal: a `BMSG` announces more bytes than allowed.
    #[error("BMSG payload of {len} bytes is larger than the limit of {max} bytes")]
    PayloadTooLarge { len: u64, max: usize },
    /// Fatal: the bytes after a `BMSG` payload are not a line end.
    #[error("BMSG payload of {len} bytes is not followed by a line end")]
    MissingLineEnd { len: usize },
}

impl ReplyError {
    /// True when the stream cannot be read any further.
    pub fn is_fatal(&self) -> bool {
        !matches!(self, Self::Unexpected { .. })
    }
}

/// Decodes the server's lines: the mirror of [`Decoder`](super::Decoder), with the same
/// *check, then parse* rules (`Ok(None)` = need more bytes, blank lines skipped, fatal errors
/// leave the buffer at the offending frame).
#[derive(Debug, Clone, Default)]
pub struct ReplyDecoder {
    limits: Limits,
    /// Bytes already searched for `\n` in vain (see [`Decoder`](super::Decoder)).
    scanned: usize,
}

impl ReplyDecoder {
    /// A decoder with the given limits (`max_payload` bounds `BMSG`).
    pub fn new(limits: Limits) -> Self {
        Self { limits, scanned: 0 }
    }

    /// Decodes the next reply from the front of `buf`, consuming its bytes.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Reply>, ReplyError> {
        loop {
            let span = match frame::find_line(buf, &mut self.scanned, self.limits.max_line) {
                Ok(Some(span)) => span,
                Ok(None) => return Ok(None),
                Err(frame::Overlong) => {
                    return Err(ReplyError::LineTooLong {
                        max: self.limits.max_line,
                    })
                }
            };
            let line = &buf[..span.content];
            if line.iter().all(|&b| b == b' ') {
                self.consume(buf, span.total);
                continue;
            }
            if line.starts_with(b"BMSG ") {
                return self.decode_bmsg(buf, span);
            }
            let line = self.consume(buf, span.total).slice(..span.content);
            return match parse_line(&line) {
                Some(reply) => Ok(Some(reply)),
                None => Err(ReplyError::Unexpected {
                    line: frame::show(&line),
                }),
            };
        }
    }

    fn consume(&mut self, buf: &mut BytesMut, n: usize) -> Bytes {
        self.scanned = 0;
        buf.split_to(n).freeze()
    }

    /// `BMSG <topic> <offset> <len>\r\n<len bytes>\r\n`.
    fn decode_bmsg(
        &mut self,
        buf: &mut BytesMut,
        span: frame::LineSpan,
    ) -> Result<Option<Reply>, ReplyError> {
        let header = &buf[..span.content];
        let mut tokens = Tokens::new(header);
        tokens.next_range();
        let parsed = (|| {
            let topic = tokens.next_range()?;
            let offset = frame::parse_u64(tokens.next_token()?).ok()?;
            let len = match frame::parse_u64(tokens.next_token()?) {
                Ok(len) => len,
                Err(frame::NumberError::Overflow) => u64::MAX,
                Err(frame::NumberError::NotANumber) => return None,
            };
            std::str::from_utf8(&header[topic.clone()]).ok()?;
            (tokens.count_rest() == 0).then_some((topic, offset, len))
        })();
        let Some((topic, offset, len)) = parsed else {
            return Err(ReplyError::BadBmsgHeader {
                line: frame::show(header),
            });
        };
        let max = self.limits.max_payload;
        let len = match usize::try_from(len) {
            Ok(len) if len <= max => len,
            _ => return Err(ReplyError::PayloadTooLarge { len, max }),
        };
        let total = match frame::find_block_end(buf, span.total, len) {
            Ok(Some(total)) => total,
            Ok(None) => return Ok(None),
            Err(frame::MissingLineEnd) => return Err(ReplyError::MissingLineEnd { len }),
        };
        let frame = self.consume(buf, total);
        Ok(Some(Reply::Msg {
            topic: String::from_utf8_lossy(&frame[topic]).into_owned(),
            offset,
            payload: frame.slice(span.total..span.total + len),
        }))
    }
}

/// Parses one whole line other than `BMSG`; `None` when it is not a known reply.
fn parse_line(line: &Bytes) -> Option<Reply> {
    let text = |prefix: &[u8]| -> Option<String> {
        let rest = line.strip_prefix(prefix)?;
        let rest = match rest {
            [] => rest,
            [b' ', rest @ ..] => rest,
            _ => return None,
        };
        std::str::from_utf8(rest).ok().map(str::to_owned)
    };
    if let Some(t) = text(b"+OK") {
        return Some(Reply::Ok(t));
    }
    if let Some(t) = text(b"-ERR") {
        return Some(Reply::Err(t));
    }
    if let Some(t) = text(b"#") {
        return Some(Reply::Info(t));
    }
    let mut tokens = Tokens::new(line);
    let verb = tokens.next_token()?;
    let string = |r: Range<usize>| std::str::from_utf8(&line[r]).ok().map(str::to_owned);
    match verb {
        b"MSG" => {
            let topic = string(tokens.next_range()?)?;
            let offset = frame::parse_u64(tokens.next_token()?).ok()?;
            let payload = line.slice(tokens.rest());
            std::str::from_utf8(&payload).ok()?;
            Some(Reply::Msg {
                topic,
                offset,
                payload,
            })
        }
        b"PONG" => {
            let token = match tokens.next_range() {
                Some(range) => Some(string(range)?),
                None => None,
            };
            (tokens.count_rest() == 0).then_some(Reply::Pong(token))
        }
        b"JOIN" | b"LEAVE" => {
            let topic = string(tokens.next_range()?)?;
            let client = string(tokens.next_range()?)?;
            let user = string(tokens.rest())?;
            let user = (!user.is_empty() && user != "-").then_some(user);
            Some(if verb == b"JOIN" {
                Reply::Join {
                    topic,
                    client,
                    user,
                }
            } else {
                Reply::Leave {
                    topic,
                    client,
                    user,
                }
            })
        }
        _ => None,
    }
}
