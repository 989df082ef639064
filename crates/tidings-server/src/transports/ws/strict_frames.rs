//! Two frames RFC 6455 forbids that yawc answers wrongly become protocol errors (1002).
//!
//! - A frame whose opcode is reserved (0x3-0x7, 0xB-0xF) fails the connection (section 5.2),
//!   and 1002 is the code for a protocol error (section 7.4.1); Autobahn's cases 4.1.x and
//!   4.2.x check it. yawc 0.5.0 (the latest release) answers it with 1003 (unsupported data).
//! - A control frame longer than 125 bytes is invalid (section 5.5). yawc refuses only a long
//!   ping: a long close it echoes back as it came (a frame no peer may accept; Autobahn 7.3.6
//!   then fails the connection itself), a long pong it takes.
//!
//! yawc decides these inside its frame layer, out of our reach. So the seam watches frame
//! headers on their way in and sets RSV2 on such a frame: yawc checks the reserved bits first
//! and fails the connection with 1002 (its close reason reads "Reserved bits are not zero").
//! RSV2 is never valid here (the one extension we negotiate, permessage-deflate, uses RSV1).
//! Deciding on a control frame's length needs its second byte, so a read that ends right
//! after a frame's first byte keeps that byte back for the next read: yawc never sees a first
//! byte without its second, which is when it could still be changed.
//!
//! Only headers are read: payload bytes are skipped by count, so the cost is a few
//! instructions per frame and 32 bytes per connection. Remove this once yawc answers both
//! with 1002 itself.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

const RSV2: u8 = 0b0010_0000;

fn is_reserved(opcode: u8) -> bool {
    matches!(opcode, 0x3..=0x7 | 0xB..=0xF)
}

fn is_control(opcode: u8) -> bool {
    opcode >= 0x8
}

/// A byte stream carrying client-to-server WebSocket frames, forbidden frames marked.
pub(crate) struct StrictFrames<S> {
    inner: S,
    frames: FrameHeaders,
    /// A frame's first byte, kept back until its second arrives.
    held: Option<u8>,
}

impl<S> StrictFrames<S> {
    pub(crate) fn new(inner: S) -> Self {
        StrictFrames {
            inner,
            frames: FrameHeaders::default(),
            held: None,
        }
    }
}

/// Where the incoming byte stream is within its frames.
#[derive(Debug, Default)]
struct FrameHeaders {
    /// Payload bytes of the current frame still to come.
    payload_left: u64,
    /// The extended payload length, gathered byte by byte.
    extended: u64,
    /// Header bytes of the current frame seen so far (0: the next byte starts a frame).
    seen: u8,
    /// The header's full length, known from its second byte on.
    header_len: u8,
    /// Bytes of extended payload length (0, 2 or 8).
    extended_len: u8,
    /// The 7-bit payload length of the second header byte.
    short_len: u8,
    /// The opcode of the current frame.
    opcode: u8,
}

impl FrameHeaders {
    /// A frame's first byte went to yawc without its second (see `poll_read`).
    fn passed_first_byte(&mut self, b: u8) {
        self.opcode = b & 0x0F;
        self.seen = 1;
    }

    /// Walks bytes just read, setting RSV2 on the first byte of any forbidden frame. Returns
    /// true when `bytes` ends with a frame's first byte: the caller must keep it back and
    /// hand it in again at the start of the next call (the state is as if it was not seen).
    /// A frame's first two bytes are therefore always in one call.
    fn scan(&mut self, bytes: &mut [u8]) -> bool {
        let mut i = 0;
        while i < bytes.len() {
            if self.payload_left > 0 {
                let n = usize::try_from(self.payload_left)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len() - i);
                i += n;
                self.payload_left -= n as u64;
                continue;
            }
            let b = bytes[i];
            match self.seen {
                0 => {
                    if i + 1 == bytes.len() {
                        return true;
                    }
                    self.opcode = b & 0x0F;
                    if is_reserved(self.opcode) {
                        bytes[i] = b | RSV2;
                    }
                }
                1 => {
                    self.short_len = b & 0x7F;
                    if is_control(self.opcode) && self.short_len > 125 && i > 0 {
                        bytes[i - 1] |= RSV2;
                    }
                    self.extended_len = match self.short_len {
                        126 => 2,
                        127 => 8,
                        _ => 0,
                    };
                    let mask = if b & 0x80 != 0 { 4 } else { 0 };
                    self.header_len = 2 + self.extended_len + mask;
                    self.extended = 0;
                }
                n if n < 2 + self.extended_len => {
                    self.extended = (self.extended << 8) | u64::from(b);
                }
                _ => {} // the masking key
            }
            self.seen += 1;
            i += 1;
            if self.seen >= 2 && self.seen == self.header_len {
                self.payload_left = match self.extended_len {
                    0 => u64::from(self.short_len),
                    _ => self.extended,
                };
                self.seen = 0;
            }
        }
        false
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for StrictFrames<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        loop {
            let held = this.held.take();
            match held {
                _ if buf.remaining() == 0 => {
                    // No room at all: a zero-length read, not the end of the stream.
                    this.held = held;
                    return Poll::Ready(Ok(()));
                }
                None => {}
                Some(b) if buf.remaining() < 2 => {
                    // No room for its second byte: pass the first alone, its opcode checked
                    // here; a long control frame goes unmarked, in a case that needs a read
                    // buffer with exactly one byte free.
                    let b = if is_reserved(b & 0x0F) { b | RSV2 } else { b };
                    buf.put_slice(&[b]);
                    this.frames.passed_first_byte(b);
                    return Poll::Ready(Ok(()));
                }
                Some(b) => buf.put_slice(&[b]),
            }
            let after_held = buf.filled().len();
            match Pin::new(&mut this.inner).poll_read(cx, buf) {
                Poll::Pending => {
                    // Nothing new: take the held byte back out until more arrives.
                    buf.set_filled(after_held - usize::from(held.is_some()));
                    this.held = held;
                    return if buf.filled().len() > before {
                        Poll::Ready(Ok(()))
                    } else {
                        Poll::Pending
                    };
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) if buf.filled().len() == after_held => {
                    return Poll::Ready(Ok(())); // end of stream (with any held byte)
                }
                Poll::Ready(Ok(())) => {}
            }
            let end = buf.filled().len();
            let start = after_held - usize::from(held.is_some());
            if this.frames.scan(&mut buf.filled_mut()[start..]) {
                this.held = Some(buf.filled()[end - 1]);
                buf.set_filled(end - 1);
            }
            if buf.filled().len() > before {
                return Poll::Ready(Ok(()));
            }
            // Only a first byte arrived: read again for its second (or for Pending).
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for StrictFrames<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client frame (masked) with `opcode` and a payload of `len` bytes.
    fn frame(opcode: u8, len: usize) -> Vec<u8> {
        let mut f = vec![0x80 | opcode];
        match len {
            0..=125 => f.push(0x80 | len as u8),
            126..=0xFFFF => {
                f.push(0x80 | 126);
                f.extend_from_slice(&(len as u16).to_be_bytes());
            }
            _ => {
                f.push(0x80 | 127);
                f.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        f.extend_from_slice(&[1, 2, 3, 4]);
        // Payload bytes that look like reserved-opcode headers must be left alone.
        f.extend(std::iter::repeat_n(0x83, len));
        f
    }

    fn stream() -> (Vec<u8>, Vec<usize>) {
        let mut bytes = Vec::new();
        let mut starts = Vec::new();
        for (op, len) in [
            (0x1, 5),
            (0x3, 0),
            (0x2, 125),
            (0x9, 0),
            (0x1, 126),
            (0xB, 3),
            (0x2, 70_000),
            (0xF, 1),
            (0x0, 0),
            (0xA, 126),
            (0x8, 200),
            (0x9, 125),
            (0x8, 2),
        ] {
            starts.push(bytes.len());
            bytes.extend(frame(op, len));
        }
        (bytes, starts)
    }

    fn marked(bytes: &[u8], starts: &[usize]) -> Vec<bool> {
        starts.iter().map(|&s| bytes[s] & RSV2 != 0).collect()
    }

    const WANT: [bool; 13] = [
        false, true, false, false, false, true, false, true, false, true, true, false, false,
    ];

    #[test]
    fn frames_with_reserved_opcodes_are_marked_and_nothing_else_changes() {
        let (original, starts) = stream();
        let mut bytes = original.clone();
        FrameHeaders::default().scan(&mut bytes);
        assert_eq!(marked(&bytes, &starts), WANT);
        let changed: Vec<usize> = (0..bytes.len())
            .filter(|&i| bytes[i] != original[i])
            .collect();
        assert_eq!(
            changed,
            vec![starts[1], starts[5], starts[7], starts[9], starts[10]]
        );
    }

    #[test]
    fn any_split_of_the_stream_gives_the_same_result() {
        let (original, starts) = stream();
        for chunk in [1, 2, 3, 7, 13, 4096] {
            let mut bytes = original.clone();
            let mut out = Vec::new();
            let mut frames = FrameHeaders::default();
            let mut held: Option<u8> = None;
            for piece in bytes.chunks_mut(chunk) {
                let mut read: Vec<u8> = held.take().into_iter().collect();
                read.extend_from_slice(piece);
                if frames.scan(&mut read) {
                    held = read.pop();
                }
                out.extend(read);
            }
            out.extend(held);
            assert_eq!(marked(&out, &starts), WANT, "chunks of {chunk}");
        }
    }

    /// The stream as a reader sees it through `StrictFrames`, fed in pieces of `chunk`
    /// bytes with a pending read between pieces.
    #[tokio::test]
    async fn a_reader_sees_every_byte_once_with_the_same_marks() {
        use tokio::io::AsyncReadExt;
        let (original, starts) = stream();
        for chunk in [1, 2, 5, 4096] {
            let (mut client, server) = tokio::io::duplex(64);
            let mut reader = StrictFrames::new(server);
            let input = original.clone();
            let writer = tokio::spawn(async move {
                use tokio::io::AsyncWriteExt;
                for piece in input.chunks(chunk) {
                    client.write_all(piece).await.unwrap();
                    tokio::task::yield_now().await;
                }
            });
            let mut out = Vec::new();
            reader.read_to_end(&mut out).await.unwrap();
            writer.await.unwrap();
            assert_eq!(out.len(), original.len(), "chunks of {chunk}");
            assert_eq!(marked(&out, &starts), WANT, "chunks of {chunk}");
        }
    }
}
