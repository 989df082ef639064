//! The server side: bytes from a client in, [`Command`]s out.

use std::ops::Range;

use bytes::{Bytes, BytesMut};

use super::command::Command;
use super::frame::{self, Limits, NumberError, Tokens};

/// Why a client's input was refused. Its `Display` text is what the server sends after `-ERR `.
///
/// Two classes, told apart by [`is_fatal`](Self::is_fatal):
/// - *recoverable*: the offending line was consumed; reply `-ERR ...` and go on reading;
/// - *fatal*: the stream can no longer be framed (or would need unbounded memory); reply
///   `-ERR ...` and close. The buffer is left at the offending frame, so calling again
///   returns the same error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LineError {
    /// The first word of the line is not a command.
    #[error("unknown command {verb:?}; try HELP")]
    UnknownCommand { verb: String },
    /// A required argument is missing.
    #[error("{command} needs {what}; usage: {usage}")]
    MissingArgument {
        command: &'static str,
        what: &'static str,
        usage: &'static str,
    },
    /// More arguments than the command takes.
    #[error("too many arguments for {command}; usage: {usage}")]
    TooManyArguments {
        command: &'static str,
        usage: &'static str,
    },
    /// An offset or length is not a whole number that fits in 64 bits.
    #[error("{command} {what} must be a whole number, got {value:?}")]
    NotANumber {
        command: &'static str,
        what: &'static str,
        value: String,
    },
    /// A topic, pattern, user name, ... is not valid UTF-8.
    #[error("{command} {what} is not valid UTF-8")]
    NotUtf8 {
        command: &'static str,
        what: &'static str,
    },
    /// A `PUB` payload is not valid UTF-8.
    #[error("PUB payload is not valid UTF-8; use BPUB for binary data")]
    PayloadNotUtf8,
    /// Fatal: no line end within `max` bytes.
    #[error("line longer than {max} bytes")]
    LineTooLong { max: usize },
    /// Fatal: a `BPUB` announces more bytes than allowed.
    #[error("BPUB payload of {len} bytes is larger than the limit of {max} bytes")]
    PayloadTooLarge { len: u64, max: usize },
    /// Fatal: the `len` bytes of a `BPUB` payload are not followed by `\r\n` or `\n`, so the
    /// announced length was wrong and the stream cannot be framed any more.
    #[error("BPUB payload of {len} bytes must be followed by a line end")]
    MissingLineEnd { len: usize },
}

impl LineError {
    /// True when the connection must be closed after the `-ERR` reply.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            Self::LineTooLong { .. } | Self::PayloadTooLarge { .. } | Self::MissingLineEnd { .. }
        )
    }
}

/// Decodes client commands from a byte stream.
///
/// ```text
/// loop:  find the line end within max_line + 2 bytes  --none yet--> Ok(None)
///          |                                          --too far---> fatal LineTooLong
///          +-- blank line: consume, loop
///          +-- BPUB <topic> <len>: wait for len bytes + line end, consume all, Ok(Pub)
///          +-- any other line: consume, parse -> Ok(command) or recoverable error
/// ```
///
/// Bytes must only be appended to the buffer between calls (the decoder remembers how far it
/// searched for a line end).
#[derive(Debug, Clone, Default)]
pub struct Decoder {
    limits: Limits,
    /// Bytes at the start of the buffer already searched for `\n` in vain: a line that trickles
    /// in byte by byte is searched once, not once per read.
    scanned: usize,
}

impl Decoder {
    /// A decoder with the given limits.
    pub fn new(limits: Limits) -> Self {
        Self { limits, scanned: 0 }
    }

    /// The limits this decoder enforces.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Decodes the next command from the front of `buf`, consuming its bytes.
    ///
    /// `Ok(None)` means "need more bytes"; blank lines are skipped. Payloads are split out of
    /// `buf` without copying.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Command>, LineError> {
        loop {
            let span = match frame::find_line(buf, &mut self.scanned, self.limits.max_line) {
                Ok(Some(span)) => span,
                Ok(None) => return Ok(None),
                Err(frame::Overlong) => {
                    return Err(LineError::LineTooLong {
                        max: self.limits.max_line,
                    })
                }
            };
            let mut tokens = Tokens::new(&buf[..span.content]);
            let Some(verb) = tokens.next_token() else {
                self.consume(buf, span.total);
                continue;
            };
            if Verb::parse(verb) == Some(Verb::Bpub) {
                return self.decode_bpub(buf, span);
            }
            let line = self.consume(buf, span.total);
            return parse_line(line.slice(..span.content)).map(Some);
        }
    }

    /// Splits `n` bytes off the front of `buf`.
    fn consume(&mut self, buf: &mut BytesMut, n: usize) -> Bytes {
        self.scanned = 0;
        buf.split_to(n).freeze()
    }

    /// `BPUB <topic> <len>\r\n<len bytes>\r\n`, the header line being `span`.
    fn decode_bpub(
        &mut self,
        buf: &mut BytesMut,
        span: frame::LineSpan,
    ) -> Result<Option<Command>, LineError> {
        let header = (|| {
            let mut args = Args::after_verb(Verb::Bpub, &buf[..span.content]);
            let topic = args.required_range("a topic")?;
            let len = args.required("a length")?;
            let len = match frame::parse_u64(len) {
                Ok(len) => len,
                // All digits: surely too large, which is fatal below.
                Err(NumberError::Overflow) => u64::MAX,
                Err(NumberError::NotANumber) => return Err(args.not_a_number("length", len)),
            };
            args.end()?;
            Ok((topic, len))
        })();
        let (topic, len) = match header {
            Ok(header) => header,
            Err(error) => {
                // The payload length is unknown, so only the header line can be skipped.
                self.consume(buf, span.total);
                return Err(error);
            }
        };
        let max = self.limits.max_payload;
        let len = match usize::try_from(len) {
            Ok(len) if len <= max => len,
            _ => return Err(LineError::PayloadTooLarge { len, max }),
        };
        let total = match frame::find_block_end(buf, span.total, len) {
            Ok(Some(total)) => total,
            Ok(None) => return Ok(None),
            Err(frame::MissingLineEnd) => return Err(LineError::MissingLineEnd { len }),
        };
        let frame = self.consume(buf, total);
        let topic = utf8(&frame[topic], Verb::Bpub, "topic")?;
        let payload = frame.slice(span.total..span.total + len);
        Ok(Some(Command::Pub { topic, payload }))
    }
}

/// The verbs a client may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    Sub,
    Unsub,
    Pub,
    Bpub,
    Hist,
    Who,
    Auth,
    Ping,
    Help,
    Quit,
}

impl Verb {
    const ALL: [Verb; 10] = [
        Verb::Sub,
        Verb::Unsub,
        Verb::Pub,
        Verb::Bpub,
        Verb::Hist,
        Verb::Who,
        Verb::Auth,
        Verb::Ping,
        Verb::Help,
        Verb::Quit,
    ];

    /// Case-insensitive lookup.
    fn parse(token: &[u8]) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|verb| token.eq_ignore_ascii_case(verb.name().as_bytes()))
    }

    fn name(self) -> &'static str {
        match self {
            Verb::Sub => "SUB",
            Verb::Unsub => "UNSUB",
            Verb::Pub => "PUB",
            Verb::Bpub => "BPUB",
            Verb::Hist => "HIST",
            Verb::Who => "WHO",
            Verb::Auth => "AUTH",
            Verb::Ping => "PING",
            Verb::Help => "HELP",
            Verb::Quit => "QUIT",
        }
    }

    /// Quoted in error messages.
    fn usage(self) -> &'static str {
        match self {
            Verb::Sub => "SUB <pattern> [<since> [<epoch>]]",
            Verb::Unsub => "UNSUB <pattern>",
            Verb::Pub => "PUB <topic> <text>",
            Verb::Bpub => "BPUB <topic> <len>, then <len> bytes and a line end",
            Verb::Hist => "HIST <topic> [<since>]",
            Verb::Who => "WHO <topic>",
            Verb::Auth => "AUTH <user> <password> | AUTH TOKEN <jwt>",
            Verb::Ping => "PING [<token>]",
            Verb::Help => "HELP",
            Verb::Quit => "QUIT",
        }
    }
}

fn utf8(bytes: &[u8], verb: Verb, what: &'static str) -> Result<String, LineError> {
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok(s.to_owned()),
        Err(_) => Err(LineError::NotUtf8 {
            command: verb.name(),
            what,
        }),
    }
}

/// Reads the arguments of one command, in order.
struct Args<'a> {
    verb: Verb,
    tokens: Tokens<'a>,
}

impl<'a> Args<'a> {
    /// The arguments of `line`, whose first token is the verb.
    fn after_verb(verb: Verb, line: &'a [u8]) -> Self {
        let mut tokens = Tokens::new(line);
        tokens.next_range();
        Self { verb, tokens }
    }

    fn missing(&self, what: &'static str) -> LineError {
        LineError::MissingArgument {
            command: self.verb.name(),
            what,
            usage: self.verb.usage(),
        }
    }

    fn not_a_number(&self, what: &'static str, token: &[u8]) -> LineError {
        LineError::NotANumber {
            command: self.verb.name(),
            what,
            value: frame::show(token),
        }
    }

    fn required_range(&mut self, what: &'static str) -> Result<Range<usize>, LineError> {
        self.tokens.next_range().ok_or_else(|| self.missing(what))
    }

    fn required(&mut self, what: &'static str) -> Result<&'a [u8], LineError> {
        self.tokens.next_token().ok_or_else(|| self.missing(what))
    }

    fn required_str(&mut self, what: &'static str) -> Result<String, LineError> {
        utf8(self.required(what)?, self.verb, what)
    }

    fn optional_str(&mut self, what: &'static str) -> Result<Option<String>, LineError> {
        let verb = self.verb;
        self.tokens
            .next_token()
            .map(|t| utf8(t, verb, what))
            .transpose()
    }

    fn optional_number(&mut self, what: &'static str) -> Result<Option<u64>, LineError> {
        match self.tokens.next_token() {
            None => Ok(None),
            Some(t) => frame::parse_u64(t)
                .map(Some)
                .map_err(|_| self.not_a_number(what, t)),
        }
    }

    /// Everything after the single space that follows the last argument read.
    fn rest(&mut self) -> Range<usize> {
        self.tokens.rest()
    }

    /// Fails when arguments are left over.
    fn end(mut self) -> Result<(), LineError> {
        match self.tokens.next_range() {
            Some(_) => Err(LineError::TooManyArguments {
                command: self.verb.name(),
                usage: self.verb.usage(),
            }),
            None => Ok(()),
        }
    }
}

/// Parses one whole, non-blank line (without its line end) other than `BPUB`.
fn parse_line(line: Bytes) -> Result<Command, LineError> {
    let verb_token = Tokens::new(&line).next_token().unwrap_or_default();
    let Some(verb) = Verb::parse(verb_token) else {
        return Err(LineError::UnknownCommand {
            verb: frame::show(verb_token),
        });
    };
    let mut args = Args::after_verb(verb, &line);
    let command = match verb {
        Verb::Sub => {
            let pattern = args.required_str("a pattern")?;
            let since = args.optional_number("since")?;
            let epoch = args.optional_str("epoch")?;
            args.end()?;
            Command::Sub {
                pattern,
                since,
                epoch,
            }
        }
        Verb::Unsub => {
            let pattern = args.required_str("a pattern")?;
            args.end()?;
            Command::Unsub { pattern }
        }
        Verb::Pub => {
            let topic = args.required_str("a topic")?;
            let rest = args.rest();
            if std::str::from_utf8(&line[rest.clone()]).is_err() {
                return Err(LineError::PayloadNotUtf8);
            }
            Command::Pub {
                topic,
                payload: line.slice(rest),
            }
        }
        Verb::Hist => {
            let topic = args.required_str("a topic")?;
            let since = args.optional_number("since")?.unwrap_or(0);
            args.end()?;
            Command::Hist { topic, since }
        }
        Verb::Who => {
            let topic = args.required_str("a topic")?;
            args.end()?;
            Command::Who { topic }
        }
        Verb::Auth => {
            let user = args.required_str("a user")?;
            let password = args.required_str("a password")?;
            args.end()?;
            // `TOKEN` in the user's place means a signed token follows (so no configured
            // user can be called `TOKEN` on this protocol; docs/line-protocol.md says so).
            if user == "TOKEN" {
                Command::AuthToken { token: password }
            } else {
                Command::Auth { user, password }
            }
        }
        Verb::Ping => {
            let token = args.optional_str("token")?;
            args.end()?;
            Command::Ping { token }
        }
        Verb::Help => {
            args.end()?;
            Command::Help
        }
        Verb::Quit => {
            args.end()?;
            Command::Quit
        }
        // Framed by `Decoder::decode_bpub`, never passed here; refuse rather than panic.
        Verb::Bpub => return Err(args.missing("a length")),
    };
    Ok(command)
}
