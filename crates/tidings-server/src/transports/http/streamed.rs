//! A streamed response body fed by a task through a small bounded channel.
//!
//! When the client reads slowly the channel fills, the feeding task waits in `send`, and the
//! session's bounded outbox (and its slow-consumer policy) absorbs the rest: nothing grows.

use super::Body;
use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use std::convert::Infallible;
use std::time::Duration;
use tokio::sync::mpsc;

/// Chunks buffered between a feeding task and hyper: enough to keep the socket busy, few
/// enough that a slow reader pushes back at once.
const STREAM_CHUNKS: usize = 8;

/// The sending side of a streamed response.
pub(crate) struct Streamed {
    tx: mpsc::Sender<Bytes>,
    quiet: Duration,
}

/// A streamed body and the handle that feeds it; `quiet` is the keep-alive period.
pub(crate) fn channel(quiet: Duration) -> (Streamed, Body) {
    let (tx, rx) = mpsc::channel(STREAM_CHUNKS);
    let body = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (Ok::<_, Infallible>(Frame::data(chunk)), rx))
    });
    (
        Streamed { tx, quiet },
        BodyExt::boxed(StreamBody::new(body)),
    )
}

impl Streamed {
    /// Sends a chunk, waiting while the client is slow. False once the client is gone.
    pub(crate) async fn send(&self, chunk: Bytes) -> bool {
        self.tx.send(chunk).await.is_ok()
    }

    /// Resolves after a quiet period (the caller re-arms it on each loop).
    pub(crate) async fn keepalive(&self) {
        tokio::time::sleep(self.quiet).await
    }

    /// Resolves when the client went away (hyper dropped the body).
    pub(crate) async fn gone(&self) {
        self.tx.closed().await
    }
}
