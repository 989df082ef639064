//! Frames out: a writer that escapes headers for the agreed version, and the server's replies.

use super::escape::{self, Escaping};
use super::{Command, Frame, HeartBeat, Version};
use bytes::{BufMut, BytesMut};

/// Writes one frame into a buffer: the command line at creation, then headers, then
/// [`finish`](Self::finish) writes the blank line, the body and the NUL.
///
/// ```
/// use tidings_proto::stomp::{Command, FrameWriter, Version};
/// let mut out = bytes::BytesMut::new();
/// FrameWriter::new(&mut out, Command::Receipt, Version::V1_2).header("receipt-id", "r:1").finish(b"");
/// assert_eq!(&out[..], b"RECEIPT\nreceipt-id:r\\c1\n\n\0");
/// ```
#[derive(Debug)]
pub struct FrameWriter<'a> {
    out: &'a mut BytesMut,
    esc: Escaping,
}

impl<'a> FrameWriter<'a> {
    pub fn new(out: &'a mut BytesMut, command: Command, version: Version) -> FrameWriter<'a> {
        out.put_slice(command.name().as_bytes());
        out.put_u8(b'\n');
        FrameWriter {
            out,
            esc: Escaping::of(version, command),
        }
    }

    /// Writes `name:value`, escaped as the version requires.
    pub fn header(self, name: &str, value: &str) -> Self {
        escape::escape_into(name, self.esc, true, self.out);
        self.out.put_u8(b':');
        escape::escape_into(value, self.esc, false, self.out);
        self.out.put_u8(b'\n');
        self
    }

    /// Writes a header whose value is a number.
    pub fn header_u64(self, name: &str, value: u64) -> Self {
        escape::escape_into(name, self.esc, true, self.out);
        self.out.put_u8(b':');
        self.out.put_slice(value.to_string().as_bytes());
        self.out.put_u8(b'\n');
        self
    }

    /// Appends already encoded header lines (each `name:value\n`), e.g. a part shared by many
    /// frames that was written once with [`write_headers`].
    pub fn raw_headers(self, lines: &[u8]) -> Self {
        self.out.put_slice(lines);
        self
    }

    /// Writes a `content-length` header, the blank line, `body` and the NUL.
    pub fn finish_with_length(self, body: &[u8]) {
        let w = self.header_u64("content-length", body.len() as u64);
        w.finish(body)
    }

    /// Writes the blank line, `body` and the NUL (no `content-length`: the body must not
    /// contain NUL).
    pub fn finish(self, body: &[u8]) {
        self.out.put_u8(b'\n');
        self.out.put_slice(body);
        self.out.put_u8(0);
    }
}

/// Writes header lines (`name:value\n`, escaped for `command` in `version`) without a command
/// line, for splicing into frames with [`FrameWriter::raw_headers`].
pub fn write_headers<'h>(
    headers: impl IntoIterator<Item = (&'h str, &'h str)>,
    command: Command,
    version: Version,
    out: &mut BytesMut,
) {
    let esc = Escaping::of(version, command);
    for (name, value) in headers {
        escape::escape_into(name, esc, true, out);
        out.put_u8(b':');
        escape::escape_into(value, esc, false, out);
        out.put_u8(b'\n');
    }
}

/// True when a header written for `command` in `version` differs from its raw text, i.e.
/// when an encoding made for one version cannot be reused for another.
pub fn needs_escape(text: &str, command: Command, version: Version) -> bool {
    escape::needs_escape(text, Escaping::of(version, command))
}

/// Writes `frame` as is: its headers in order (no `content-length` is added), then its body.
pub fn encode_frame(frame: &Frame, version: Version, out: &mut BytesMut) {
    let mut w = FrameWriter::new(out, frame.command, version);
    for (name, value) in &frame.headers {
        w = w.header(name, value);
    }
    w.finish(&frame.body);
}

/// `CONNECTED`: the agreed version and heart-beat, the session id and the server's name.
pub fn encode_connected(
    version: Version,
    heart_beat: HeartBeat,
    session: &str,
    server: &str,
    out: &mut BytesMut,
) {
    FrameWriter::new(out, Command::Connected, version)
        .header("version", version.as_str())
        .header("heart-beat", &heart_beat.to_header())
        .header("session", session)
        .header("server", server)
        .finish(b"");
}

/// `RECEIPT` for the frame whose `receipt` header was `receipt_id`.
pub fn encode_receipt(receipt_id: &str, version: Version, out: &mut BytesMut) {
    FrameWriter::new(out, Command::Receipt, version)
        .header("receipt-id", receipt_id)
        .finish(b"");
}

/// `ERROR`: `message` says what was wrong in one line, `detail` (the body) may say more;
/// `receipt_id` when the offending frame asked for a receipt.
pub fn encode_error(
    message: &str,
    receipt_id: Option<&str>,
    detail: &str,
    version: Version,
    out: &mut BytesMut,
) {
    let mut w = FrameWriter::new(out, Command::Error, version).header("message", message);
    if let Some(id) = receipt_id {
        w = w.header("receipt-id", id);
    }
    w.header("content-type", "text/plain")
        .finish_with_length(detail.as_bytes());
}
