//! The server side: replies, messages and events out, each line ending in `\r\n`.
//!
//! Every function appends to any [`BufMut`] (`BytesMut`, `Vec<u8>`). Text that may come from
//! users (reply text, user names) has `\r` and `\n` replaced by spaces, and tokens (topics,
//! client ids, ping tokens) have spaces and line breaks replaced by `_`: whatever the caller
//! passes, the output is always well framed.

use std::fmt::{self, Write as _};

use bytes::BufMut;

use crate::decimal::put_u64;
use crate::payload::is_single_line_text;

/// The first line the server sends on a new connection.
pub const GREETING: &str = "+OK tidings line protocol 1; HELP for commands\r\n";

/// The whole reply to `HELP`: comment lines starting with `# `, then `+OK HELP`.
pub const HELP: &str = concat!(
    "# tidings line protocol 1. Verbs are case-insensitive; lines end with \\n or \\r\\n.\r\n",
    "# SUB <pattern> [<since> [<epoch>]]  subscribe; * matches one token, > the rest;\r\n",
    "#                                    since/epoch: resume after that offset\r\n",
    "# UNSUB <pattern>                    unsubscribe\r\n",
    "# PUB <topic> <text>                 publish the rest of the line\r\n",
    "# BPUB <topic> <len>                 publish the <len> bytes that follow, then a line end\r\n",
    "# HIST <topic> [<since>]             replay stored messages after offset <since>\r\n",
    "# WHO <topic>                        who is subscribed\r\n",
    "# AUTH <user> <password>             log in\r\n",
    "# PING [<token>]                     answered by PONG [<token>]\r\n",
    "# HELP                               this text\r\n",
    "# QUIT                               close the connection\r\n",
    "# Server lines: +OK <text>, -ERR <text>, MSG <topic> <offset> <text>,\r\n",
    "# BMSG <topic> <offset> <len> then <len> bytes, PONG [<token>],\r\n",
    "# JOIN <topic> <client> <user>, LEAVE <topic> <client> <user> (user - when anonymous)\r\n",
    "+OK HELP\r\n",
);

/// `+OK <text>`. Pass `format_args!(...)` to format without allocating, e.g.
/// `encode_ok(format_args!("PUB {topic} {offset}"), out)`.
pub fn encode_ok<B: BufMut>(text: impl fmt::Display, out: &mut B) {
    status_line("+OK", text, out);
}

/// `-ERR <text>`; for a decoding error pass the [`LineError`](super::LineError) itself.
pub fn encode_err<B: BufMut>(text: impl fmt::Display, out: &mut B) {
    status_line("-ERR", text, out);
}

/// A delivered message: `MSG <topic> <offset> <payload>` when the payload is single-line
/// UTF-8 (no `\r`, no `\n`) of at most [`MAX_INLINE_PAYLOAD`](crate::MAX_INLINE_PAYLOAD)
/// bytes, otherwise `BMSG <topic> <offset> <len>\r\n<bytes>\r\n`.
///
/// The frame is the same for every subscriber: encode it once and share the bytes.
pub fn encode_message<B: BufMut>(topic: &str, offset: u64, payload: &[u8], out: &mut B) {
    if is_single_line_text(payload) {
        out.put_slice(b"MSG ");
        put_token(out, topic);
        out.put_u8(b' ');
        put_u64(out, offset);
        out.put_u8(b' ');
        out.put_slice(payload);
    } else {
        out.put_slice(b"BMSG ");
        put_token(out, topic);
        out.put_u8(b' ');
        put_u64(out, offset);
        out.put_u8(b' ');
        put_u64(out, payload.len() as u64);
        out.put_slice(b"\r\n");
        out.put_slice(payload);
    }
    out.put_slice(b"\r\n");
}

/// `PONG` or `PONG <token>`.
pub fn encode_pong<B: BufMut>(token: Option<&str>, out: &mut B) {
    out.put_slice(b"PONG");
    if let Some(token) = token {
        out.put_u8(b' ');
        put_token(out, token);
    }
    out.put_slice(b"\r\n");
}

/// Presence: `JOIN <topic> <client-id> <user>`, user `-` when anonymous. The user is the rest
/// of the line, so it may contain spaces.
pub fn encode_join<B: BufMut>(topic: &str, client: &str, user: Option<&str>, out: &mut B) {
    presence_line(b"JOIN ", topic, client, user, out);
}

/// Presence: `LEAVE <topic> <client-id> <user>`, user `-` when anonymous.
pub fn encode_leave<B: BufMut>(topic: &str, client: &str, user: Option<&str>, out: &mut B) {
    presence_line(b"LEAVE ", topic, client, user, out);
}

fn presence_line<B: BufMut>(
    verb: &[u8],
    topic: &str,
    client: &str,
    user: Option<&str>,
    out: &mut B,
) {
    out.put_slice(verb);
    put_token(out, topic);
    out.put_u8(b' ');
    put_token(out, client);
    out.put_u8(b' ');
    match user {
        Some(user) if !user.is_empty() => {
            // Formatting into a `LineText` cannot fail.
            let _ = LineText(out).write_str(user);
        }
        _ => out.put_u8(b'-'),
    }
    out.put_slice(b"\r\n");
}

fn status_line<B: BufMut>(status: &str, text: impl fmt::Display, out: &mut B) {
    out.put_slice(status.as_bytes());
    let mut text_out = LineText(out);
    // Only a `Display` impl that itself fails can make this fail; the line is ended anyway.
    let _ = write!(text_out, " {text}");
    out.put_slice(b"\r\n");
}

/// Writes `token` with spaces and line breaks replaced by `_`, so it stays one token.
fn put_token<B: BufMut>(out: &mut B, token: &str) {
    if token.is_empty() {
        out.put_u8(b'_');
        return;
    }
    for (i, part) in token.split([' ', '\r', '\n']).enumerate() {
        if i > 0 {
            out.put_u8(b'_');
        }
        out.put_slice(part.as_bytes());
    }
}

/// A `fmt::Write` sink that keeps text on one line: `\r` and `\n` become spaces.
struct LineText<'a, B>(&'a mut B);

impl<B: BufMut> fmt::Write for LineText<'_, B> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for (i, part) in s.split(['\r', '\n']).enumerate() {
            if i > 0 {
                self.0.put_u8(b' ');
            }
            self.0.put_slice(part.as_bytes());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        f(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn status_lines() {
        assert_eq!(text(|o| encode_ok("PUB chat 13", o)), "+OK PUB chat 13\r\n");
        assert_eq!(
            text(|o| encode_ok(
                format_args!("SUB {} epoch={} last={}", "a.*", "1f3a", 12),
                o
            )),
            "+OK SUB a.* epoch=1f3a last=12\r\n"
        );
        assert_eq!(
            text(|o| encode_err("bad\r\nthing", o)),
            "-ERR bad  thing\r\n"
        );
    }

    #[test]
    fn messages() {
        assert_eq!(
            text(|o| encode_message("chat.lobby", 5, b"hi there", o)),
            "MSG chat.lobby 5 hi there\r\n"
        );
        assert_eq!(text(|o| encode_message("t", 0, b"", o)), "MSG t 0 \r\n");
        let mut out = Vec::new();
        encode_message("t", 7, b"a\r\nb", &mut out);
        assert_eq!(out, b"BMSG t 7 4\r\na\r\nb\r\n");
        out.clear();
        encode_message("t", 7, b"\xff", &mut out);
        assert_eq!(out, b"BMSG t 7 1\r\n\xff\r\n");
    }

    #[test]
    fn events() {
        assert_eq!(text(|o| encode_pong(None, o)), "PONG\r\n");
        assert_eq!(text(|o| encode_pong(Some("x y"), o)), "PONG x_y\r\n");
        assert_eq!(
            text(|o| encode_join("chat", "c1", Some("Ann Lee"), o)),
            "JOIN chat c1 Ann Lee\r\n"
        );
        assert_eq!(
            text(|o| encode_leave("chat", "c1", None, o)),
            "LEAVE chat c1 -\r\n"
        );
    }

    #[test]
    fn constants_are_lines() {
        assert!(GREETING.starts_with("+OK ") && GREETING.ends_with("\r\n"));
        assert_eq!(GREETING.matches('\n').count(), 1);
        for line in HELP.split_terminator("\r\n") {
            assert!(line.starts_with("# ") || line == "+OK HELP", "{line:?}");
            assert!(line.len() <= 100, "{line:?}");
            assert!(!line.contains(['\r', '\n']));
        }
    }
}
