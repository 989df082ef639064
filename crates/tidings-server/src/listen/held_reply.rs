//! Holds one write back so it leaves with the next one: the `101 Switching Protocols` of a
//! `/ws` upgrade and the driver's `hello` in one `writev` instead of two.
//!
//! On loopback (and on any busy server) a write costs far more than its bytes: the sender's
//! syscall runs the receiver's TCP input and wakes it. `/ws` writes its `hello` the moment
//! the upgrade is done, so the 101 (written by hyper) and the hello can travel together; a
//! reconnect storm profile showed the writes as the largest item per reconnect.
//!
//! [`HoldReply::hold_next_write`] arms the stream: the next write is copied aside and
//! reported as written, and flushes do nothing while something is held; the following write
//! (or a shutdown) sends what is held first, in the same `writev`. Whoever arms it promises
//! such a write right after (the `/ws` driver's hello, or its close when no session can be
//! opened): until then the held reply stays unsent. At most one write (an HTTP response
//! head, bounded by hyper) is held per connection.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The handle that arms a [`Held`] stream (put in the request's extensions).
#[derive(Clone, Default)]
pub(crate) struct HoldReply(Arc<AtomicBool>);

impl HoldReply {
    /// The next write is held until the one after it.
    pub(crate) fn hold_next_write(&self) {
        self.0.store(true, Ordering::Release);
    }
}

/// A stream that can hold one write back (see the module docs).
pub(crate) struct Held<S> {
    inner: S,
    armed: HoldReply,
    /// The held write; empty when nothing is held.
    held: Vec<u8>,
}

impl<S> Held<S> {
    pub(crate) fn new(inner: S) -> (Self, HoldReply) {
        let armed = HoldReply::default();
        let stream = Held {
            inner,
            armed: armed.clone(),
            held: Vec::new(),
        };
        (stream, armed)
    }

    /// Takes the write aside if armed; its length then.
    fn take_if_armed(&mut self, bufs: &[IoSlice<'_>]) -> Option<usize> {
        // A plain load first: every write of every connection passes here, the flag is set
        // about once per connection.
        if !self.armed.0.load(Ordering::Relaxed) || !self.armed.0.swap(false, Ordering::AcqRel) {
            return None;
        }
        for b in bufs {
            self.held.extend_from_slice(b);
        }
        Some(bufs.iter().map(|b| b.len()).sum())
    }
}

impl<S: AsyncWrite + Unpin> Held<S> {
    /// Writes what is held together with `bufs`; how much of `bufs` went out (0 when only
    /// held bytes did: the caller then writes `bufs` alone).
    fn poll_write_held(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        while !self.held.is_empty() {
            let mut all = Vec::with_capacity(bufs.len() + 1);
            all.push(IoSlice::new(&self.held));
            all.extend_from_slice(bufs);
            let n = ready!(Pin::new(&mut self.inner).poll_write_vectored(cx, &all))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            if n >= self.held.len() {
                let ours = n - self.held.len();
                self.held = Vec::new();
                return Poll::Ready(Ok(ours));
            }
            self.held.drain(..n);
        }
        Poll::Ready(Ok(0))
    }

    fn poll_write_all_of(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if let Some(n) = self.take_if_armed(bufs) {
            return Poll::Ready(Ok(n));
        }
        if !self.held.is_empty() {
            let ours = ready!(self.poll_write_held(cx, bufs))?;
            if ours > 0 || bufs.iter().all(|b| b.is_empty()) {
                return Poll::Ready(Ok(ours));
            }
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Held<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Held<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_write_all_of(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_write_all_of(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.held.is_empty() {
            // Held on purpose: it leaves with the next write.
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_write_held(cx, &[]))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_held_write_leaves_first_with_the_next_one() {
        let (mut client, server) = tokio::io::duplex(1024);
        let (mut s, hold) = Held::new(server);
        s.write_all(b"plain ").await.unwrap();
        s.flush().await.unwrap();
        hold.hold_next_write();
        s.write_all(b"HTTP/1.1 101\r\n\r\n").await.unwrap();
        s.flush().await.unwrap();
        let mut got = vec![0u8; 6];
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(got, b"plain ");
        // Nothing more is readable yet: the 101 is held.
        let mut one = [0u8; 1];
        let early =
            tokio::time::timeout(std::time::Duration::from_millis(50), client.read(&mut one)).await;
        assert!(early.is_err(), "the held write went out alone");
        s.write_all(b"hello").await.unwrap();
        s.flush().await.unwrap();
        let mut got = vec![0u8; 21];
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(got, b"HTTP/1.1 101\r\n\r\nhello");
    }

    #[tokio::test]
    async fn a_held_write_survives_a_partial_write_and_goes_out_on_shutdown() {
        // A pipe of 4 bytes: every write is partial.
        let (mut client, server) = tokio::io::duplex(4);
        let (mut s, hold) = Held::new(server);
        hold.hold_next_write();
        s.write_all(b"0123456789").await.unwrap();
        let reader = tokio::spawn(async move {
            let mut all = Vec::new();
            client.read_to_end(&mut all).await.unwrap();
            all
        });
        s.write_all(b"abcdef").await.unwrap();
        hold.hold_next_write();
        s.write_all(b"last").await.unwrap();
        s.shutdown().await.unwrap();
        drop(s);
        assert_eq!(reader.await.unwrap(), b"0123456789abcdeflast");
    }
}
