//! One connection to the server, whichever protocol it speaks.
//!
//! A [`Conn`] is owned by the client's background task. It writes requests through a small
//! writer task (so a socket that is slow to accept bytes never stops the connection from
//! reading: both directions can be full at once without a deadlock), remembers which request
//! each reply answers (in order for the line protocol, by id for WebSocket) and turns what
//! the server sends into [`Incoming`] items. It knows nothing about reconnecting or
//! subscriptions: that is the task's business.
//!
//! Each pending request carries a tag `T` chosen by the task, handed back with its reply.

mod line;
mod ws;

use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::config::Target;
use crate::error::ClientError;
use crate::types::{Event, Payload};

pub(crate) use tidings_proto::json::Position;

/// Most requests written and not yet answered. Bounds the pending table and the writer's
/// queue; further requests wait in the client's request channel.
pub(crate) const MAX_IN_FLIGHT: usize = 256;

/// Largest message the client accepts, in bytes (a `MSG` line, a `BMSG` block or a
/// WebSocket message). The server accepts WebSocket messages of up to 16 MiB by default and
/// forwards them to line subscribers, so the client must take at least that much.
pub(crate) const MAX_MESSAGE: usize = 32 << 20;

/// How long opening a connection (TCP, handshake, greeting) may take.
pub(crate) const OPEN_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a goodbye (QUIT, close frame) may take before the socket is simply dropped.
const GOODBYE_TIMEOUT: Duration = Duration::from_secs(1);

/// A request, as the task asks it.
#[derive(Debug, Clone)]
pub(crate) enum Op {
    Auth {
        user: String,
        password: String,
    },
    Subscribe {
        pattern: String,
        since: Option<u64>,
        epoch: Option<String>,
        /// A pattern's per-topic positions (WebSocket only: the line protocol has none).
        positions: Vec<Position>,
    },
    Unsubscribe {
        pattern: String,
    },
    Publish {
        topic: String,
        payload: Payload,
    },
}

/// A positive reply, normalized across protocols. Fields a reply does not carry are
/// `None`/0.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct OkReply {
    pub(crate) epoch: Option<String>,
    /// The topic's last offset (subscribe) or the message's offset (publish).
    pub(crate) offset: u64,
    pub(crate) replayed: u64,
}

/// A refusal, normalized across protocols.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ErrReply {
    pub(crate) code: String,
    pub(crate) message: String,
    /// For `resume_unavailable`: what history holds now.
    pub(crate) epoch: Option<String>,
    pub(crate) earliest: Option<u64>,
    pub(crate) last: Option<u64>,
}

impl ErrReply {
    pub(crate) const RESUME_UNAVAILABLE: &'static str = "resume_unavailable";

    pub(crate) fn is_resume_unavailable(&self) -> bool {
        self.code == Self::RESUME_UNAVAILABLE
    }

    /// The error a request about `topic` fails with.
    pub(crate) fn into_error(self, topic: &str) -> ClientError {
        if self.is_resume_unavailable() {
            ClientError::ResumeUnavailable {
                topic: topic.to_owned(),
                earliest: self.earliest.unwrap_or(1),
                last: self.last.unwrap_or(0),
                epoch: self.epoch,
                message: self.message,
            }
        } else {
            ClientError::Server {
                code: self.code,
                message: self.message,
            }
        }
    }
}

/// What the server sent.
#[derive(Debug)]
pub(crate) enum Incoming<T> {
    /// The answer to the request tagged `T`.
    Reply(T, Result<OkReply, ErrReply>),
    /// A message or a presence event.
    Event(Event),
    /// Messages of a topic the server cannot deliver (`{"type":"gap"}`, WebSocket only).
    Gap(GapNotice),
}

/// The server's `{"type":"gap"}`: messages of `topic` after `since` are lost; delivery goes
/// on with `next` (when the server knows it already) in epoch `epoch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GapNotice {
    pub(crate) topic: String,
    pub(crate) since: u64,
    pub(crate) epoch: Option<String>,
    pub(crate) next: Option<u64>,
    pub(crate) reason: String,
}

/// The connection is gone; the text says why (the server's goodbye when it gave one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Lost(pub(crate) String);

/// A connection over either protocol.
pub(crate) enum Conn<T> {
    Line(line::LineConn<T>),
    Ws(ws::WsConn<T>),
}

impl<T> Conn<T> {
    /// Connects, does the handshake and reads the server's greeting (`+OK ...` or `hello`).
    /// Must run inside a tokio runtime.
    pub(crate) async fn open(target: &Target) -> Result<Conn<T>, ClientError> {
        let open = async {
            Ok(match target {
                Target::Line { .. } => Conn::Line(line::LineConn::open(target).await?),
                Target::Ws { url, .. } => Conn::Ws(ws::WsConn::open(target, url).await?),
            })
        };
        match tokio::time::timeout(OPEN_TIMEOUT, open).await {
            Ok(result) => result,
            Err(_) => Err(ClientError::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no connection to the server within {OPEN_TIMEOUT:?}"),
            ))),
        }
    }

    /// Writes `op`; its reply will come back with `tag`. Never waits: the caller keeps
    /// [`in_flight`](Self::in_flight) below [`MAX_IN_FLIGHT`]. On failure the tag is handed
    /// back with the error for its request.
    pub(crate) fn send(&mut self, op: &Op, tag: T) -> Result<(), (T, ClientError)> {
        match self {
            Conn::Line(c) => c.send(op, tag),
            Conn::Ws(c) => c.send(op, tag),
        }
    }

    /// True when a pattern subscribe can carry per-topic positions (WebSocket).
    pub(crate) fn resumes_patterns(&self) -> bool {
        matches!(self, Conn::Ws(_))
    }

    /// Requests written and not yet answered.
    pub(crate) fn in_flight(&self) -> usize {
        match self {
            Conn::Line(c) => c.reader.pending.len(),
            Conn::Ws(c) => c.reader.pending.len(),
        }
    }

    /// The next thing the server sent, or why the connection is gone (reading or writing
    /// failed). Cancel-safe: nothing is lost if the future is dropped.
    pub(crate) async fn recv(&mut self) -> Result<Incoming<T>, Lost> {
        match self {
            Conn::Line(c) => tokio::select! {
                biased;
                lost = c.writer.failed() => Err(lost),
                incoming = c.reader.recv() => incoming,
            },
            Conn::Ws(c) => tokio::select! {
                biased;
                lost = c.writer.failed() => Err(lost),
                incoming = c.reader.recv() => incoming,
            },
        }
    }

    /// Takes the tags of every unanswered request, to fail them.
    pub(crate) fn take_pending(&mut self) -> Vec<T> {
        match self {
            Conn::Line(c) => c.reader.pending.drain(..).collect(),
            Conn::Ws(c) => c.reader.pending.drain().map(|(_, t)| t).collect(),
        }
    }

    /// Says goodbye (`QUIT`, or a close frame) and waits briefly for the server to close,
    /// so that what was written is not cut off by a reset.
    pub(crate) async fn close(self) {
        let goodbye = async move {
            match self {
                Conn::Line(c) => c.close().await,
                Conn::Ws(c) => c.close().await,
            }
        };
        let _ = tokio::time::timeout(GOODBYE_TIMEOUT, goodbye).await;
    }
}

/// The writing half of a connection: a task that takes frames from a bounded queue and
/// writes everything queued with one flush. Dropping it aborts the task, which drops the
/// socket's write half.
pub(crate) struct Writer<F> {
    queue: Option<mpsc::Sender<F>>,
    /// Why writing failed, sent once by the task; `None` once received.
    failed: Option<oneshot::Receiver<String>>,
    task: JoinHandle<()>,
}

impl<F: Send + 'static> Writer<F> {
    /// Spawns `run(queue, failed)`, which must send on `failed` if writing fails.
    pub(crate) fn spawn<Fut>(
        run: impl FnOnce(mpsc::Receiver<F>, oneshot::Sender<String>) -> Fut,
    ) -> Self
    where
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        // One slot per request in flight, plus the goodbye.
        let (queue, rx) = mpsc::channel(MAX_IN_FLIGHT + 1);
        let (failed_tx, failed) = oneshot::channel();
        let task = tokio::spawn(run(rx, failed_tx));
        Writer {
            queue: Some(queue),
            failed: Some(failed),
            task,
        }
    }

    /// Queues one frame without waiting.
    pub(crate) fn send(&self, frame: F) -> Result<(), ClientError> {
        let queue = self.queue.as_ref().ok_or(ClientError::NotConnected)?;
        queue.try_send(frame).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => {
                ClientError::Protocol("write queue full (too many requests in flight)".into())
            }
            mpsc::error::TrySendError::Closed(_) => ClientError::NotConnected,
        })
    }

    /// Resolves (once) when writing failed; the connection is then unusable.
    async fn failed(&mut self) -> Lost {
        let Some(failed) = self.failed.as_mut() else {
            return std::future::pending().await;
        };
        let result = failed.await;
        self.failed = None;
        Lost(result.unwrap_or_else(|_| "the writer stopped".into()))
    }

    /// Closes the queue: the task writes what is left, ends the stream and exits.
    pub(crate) async fn finish(&mut self) {
        self.queue = None;
        let _ = (&mut self.task).await;
    }
}

impl<F> Drop for Writer<F> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Most bytes the line writer gathers into one write.
pub(crate) const WRITE_BATCH: usize = 64 * 1024;

/// Picks the bytes of a payload for protocols that carry bytes.
pub(crate) fn payload_bytes(payload: &Payload) -> Bytes {
    match payload {
        Payload::Text(s) | Payload::Json(s) => Bytes::copy_from_slice(s.as_bytes()),
        Payload::Binary(b) => b.clone(),
    }
}
