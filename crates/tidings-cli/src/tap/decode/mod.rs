//! Protocol decoders of the tap: each turns one direction's in-order bytes into lines.
//!
//! Which decoder a connection gets depends on the server port it talks to (`--http`,
//! `--tcp`, `--stomp`). Every decoder is bounded (it holds at most one frame's head and a
//! preview of its body) and says when it could not decode rather than guessing.

mod line;
mod stomp;
pub(crate) mod udp;
mod web;

use super::{Dir, Role};

/// Most bytes a decoder buffers while waiting for the end of a frame head or line.
pub(crate) const MAX_PENDING: usize = 1 << 20;

pub(crate) enum Stream {
    Line(line::LineStream),
    Web(web::WebStream),
    Stomp(stomp::StompStream),
}

impl Stream {
    pub(crate) fn new(role: Role, max_text: usize) -> Stream {
        match role {
            Role::Line => Stream::Line(line::LineStream::new(max_text)),
            Role::Stomp => Stream::Stomp(stomp::StompStream::new(max_text)),
            // UDP never reaches here; an unknown TCP port is decoded as HTTP.
            Role::Http | Role::Udp => Stream::Web(web::WebStream::new(max_text)),
        }
    }

    pub(crate) fn feed(&mut self, dir: Dir, bytes: &[u8], out: &mut Vec<String>) {
        match self {
            Stream::Line(s) => s.feed(dir, bytes, out),
            Stream::Web(s) => s.feed(dir, bytes, out),
            Stream::Stomp(s) => s.feed(dir, bytes, out),
        }
    }

    /// `n` bytes of `dir` were never seen.
    pub(crate) fn lost(&mut self, dir: Dir, n: usize, out: &mut Vec<String>) {
        match self {
            Stream::Line(s) => s.lost(dir, n, out),
            Stream::Web(s) => s.lost(dir, n, out),
            Stream::Stomp(s) => s.lost(dir, n, out),
        }
    }
}

/// A payload for people: text quoted with escapes, at most `max` characters; binary as its
/// length and first bytes in hex.
pub(crate) fn show(bytes: &[u8], total: usize, max: usize) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => {
            let (shown, cut) = match text.char_indices().nth(max) {
                Some((at, _)) => (&text[..at], true),
                None => (text, total > bytes.len()),
            };
            match cut {
                true => format!("{shown:?} ...({total} bytes)"),
                false => format!("{shown:?}"),
            }
        }
        // A preview may end inside a character.
        Err(e) if e.error_len().is_none() && e.valid_up_to() > 0 => {
            show(&bytes[..e.valid_up_to()], total, max)
        }
        Err(_) => hex(bytes, total),
    }
}

/// Binary for people: the length and the first 16 bytes in hex.
pub(crate) fn hex(bytes: &[u8], total: usize) -> String {
    let hex: Vec<String> = bytes.iter().take(16).map(|b| format!("{b:02x}")).collect();
    let more = if total > 16 { " ..." } else { "" };
    format!("<{total} bytes: {}{more}>", hex.join(" "))
}

/// Per-direction slot of a two-direction array.
pub(crate) fn slot(dir: Dir) -> usize {
    match dir {
        Dir::ToServer => 0,
        Dir::ToClient => 1,
    }
}

/// `>` for client to server, `<` for server to client.
pub(crate) fn arrow(dir: Dir) -> &'static str {
    match dir {
        Dir::ToServer => ">",
        Dir::ToClient => "<",
    }
}

#[cfg(test)]
mod tests {
    use super::show;

    #[test]
    fn shows_text_and_binary() {
        assert_eq!(show(b"hi", 2, 10), "\"hi\"");
        assert_eq!(show(b"a\nb", 3, 10), "\"a\\nb\"");
        assert_eq!(show(b"hello", 5, 2), "\"he\" ...(5 bytes)");
        assert_eq!(show(b"hello", 900, 10), "\"hello\" ...(900 bytes)");
        assert_eq!(show(b"\xff\x00", 2, 10), "<2 bytes: ff 00>");
        assert_eq!(show("é".as_bytes()[..1].as_ref(), 2, 10), "<2 bytes: c3>");
    }
}
