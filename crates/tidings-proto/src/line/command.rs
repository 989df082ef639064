//! Client commands: what they mean, and how a client writes them.

use bytes::{BufMut, Bytes};

use crate::decimal::put_u64;
use crate::payload::is_single_line_text;

/// One command from a client, as [`Decoder`](super::Decoder) reads it and
/// [`encode_command`] writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `SUB <pattern> [<since> [<epoch>]]`: subscribe to a topic or wildcard pattern; with
    /// `since`, first replay what came after that offset (of that epoch, when given).
    Sub {
        pattern: String,
        since: Option<u64>,
        epoch: Option<String>,
    },
    /// `UNSUB <pattern>`.
    Unsub { pattern: String },
    /// `PUB <topic> <text>` or `BPUB <topic> <len>` + bytes: publish.
    ///
    /// The line protocol has no type tag: a payload that is valid UTF-8 is text, anything else
    /// is binary (see [`PayloadKind::text_or_binary`](crate::PayloadKind::text_or_binary)).
    /// A `PUB` payload is always valid UTF-8.
    Pub { topic: String, payload: Bytes },
    /// `HIST <topic> [<since>]`: replay stored messages after offset `since` (default 0).
    Hist { topic: String, since: u64 },
    /// `WHO <topic>`: list who is subscribed.
    Who { topic: String },
    /// `AUTH <user> <password>`.
    Auth { user: String, password: String },
    /// `AUTH TOKEN <jwt>`: log in with a signed token (again before it expires, to refresh).
    AuthToken { token: String },
    /// `PING [<token>]`: answered by `PONG [<token>]`.
    Ping { token: Option<String> },
    /// `HELP`.
    Help,
    /// `QUIT`: the server closes the connection after its reply.
    Quit,
}

impl Command {
    /// The command's verb as written on the wire, upper case.
    pub fn verb(&self) -> &'static str {
        match self {
            Self::Sub { .. } => "SUB",
            Self::Unsub { .. } => "UNSUB",
            Self::Pub { .. } => "PUB",
            Self::Hist { .. } => "HIST",
            Self::Who { .. } => "WHO",
            Self::Auth { .. } | Self::AuthToken { .. } => "AUTH",
            Self::Ping { .. } => "PING",
            Self::Help => "HELP",
            Self::Quit => "QUIT",
        }
    }
}

/// A command that cannot be written on the line protocol (local misuse, not a peer's fault).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A topic, pattern, user, password, epoch or token is empty or contains a space or a
    /// line break, so it would not come back as one token.
    #[error(
        "{what} {value:?} cannot be sent: it must be non-empty, without spaces or line breaks"
    )]
    InvalidToken { what: &'static str, value: String },
    /// `SUB` arguments are positional: an epoch can only follow a since offset.
    #[error("SUB can only send an epoch together with a since offset")]
    EpochWithoutSince,
}

/// Appends `command` to `out`, ending it with `\r\n`.
///
/// A `Pub` payload that is single-line UTF-8 (no `\r`, no `\n`) goes as `PUB`; anything else
/// goes as `BPUB` with a length prefix. On error nothing is written.
pub fn encode_command<B: BufMut>(command: &Command, out: &mut B) -> Result<(), EncodeError> {
    check_tokens(command)?;
    if let Command::Pub { topic, payload } = command {
        if !is_single_line_text(payload) {
            encode_bpub(topic, payload, out);
            return Ok(());
        }
    }
    out.put_slice(command.verb().as_bytes());
    match command {
        Command::Sub {
            pattern,
            since,
            epoch,
        } => {
            put_arg(out, pattern);
            if let Some(since) = since {
                out.put_u8(b' ');
                put_u64(out, *since);
            }
            if let Some(epoch) = epoch {
                put_arg(out, epoch);
            }
        }
        Command::Unsub { pattern } => put_arg(out, pattern),
        Command::Pub { topic, payload } => {
            // Single-line text here: multi-line and binary payloads went out as BPUB above.
            put_arg(out, topic);
            out.put_u8(b' ');
            out.put_slice(payload);
        }
        Command::Hist { topic, since } => {
            put_arg(out, topic);
            out.put_u8(b' ');
            put_u64(out, *since);
        }
        Command::Who { topic } => put_arg(out, topic),
        Command::Auth { user, password } => {
            put_arg(out, user);
            put_arg(out, password);
        }
        Command::AuthToken { token } => {
            put_arg(out, "TOKEN");
            put_arg(out, token);
        }
        Command::Ping { token } => {
            if let Some(token) = token {
                put_arg(out, token);
            }
        }
        Command::Help | Command::Quit => {}
    }
    out.put_slice(b"\r\n");
    Ok(())
}

/// Writes `BPUB <topic> <len>\r\n<payload>\r\n`.
fn encode_bpub<B: BufMut>(topic: &str, payload: &[u8], out: &mut B) {
    out.put_slice(b"BPUB");
    put_arg(out, topic);
    out.put_u8(b' ');
    put_u64(out, payload.len() as u64);
    out.put_slice(b"\r\n");
    out.put_slice(payload);
    out.put_slice(b"\r\n");
}

fn put_arg<B: BufMut>(out: &mut B, arg: &str) {
    out.put_u8(b' ');
    out.put_slice(arg.as_bytes());
}

/// Checks every token of `command` before anything is written.
fn check_tokens(command: &Command) -> Result<(), EncodeError> {
    let token = |what: &'static str, value: &str| {
        let ok = !value.is_empty() && !value.bytes().any(|b| matches!(b, b' ' | b'\r' | b'\n'));
        if ok {
            Ok(())
        } else {
            Err(EncodeError::InvalidToken {
                what,
                value: value.to_owned(),
            })
        }
    };
    match command {
        Command::Sub {
            pattern,
            since,
            epoch,
        } => {
            token("pattern", pattern)?;
            if let Some(epoch) = epoch {
                if since.is_none() {
                    return Err(EncodeError::EpochWithoutSince);
                }
                token("epoch", epoch)?;
            }
            Ok(())
        }
        Command::Unsub { pattern } => token("pattern", pattern),
        Command::Pub { topic, .. } | Command::Hist { topic, .. } | Command::Who { topic } => {
            token("topic", topic)
        }
        Command::Auth { user, password } => {
            token("user", user)?;
            token("password", password)
        }
        Command::AuthToken { token: t } => token("token", t),
        Command::Ping { token: Some(t) } => token("token", t),
        Command::Ping { token: None } | Command::Help | Command::Quit => Ok(()),
    }
}
