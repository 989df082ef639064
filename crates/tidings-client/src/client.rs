//! The async API: a cheap, clonable [`Client`] handle for requests and one [`Events`]
//! receiver for everything the server pushes.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::{mpsc, oneshot};

use crate::config::{self, check_token, ClientConfig};
use crate::conn::Conn;
use crate::error::ClientError;
use crate::task::{Request, Shared, Task};
use crate::types::{Event, Payload, Published, Subscribed};

/// Requests queued for the connection task before callers wait (their own `await`).
const REQUEST_QUEUE: usize = 64;

/// A handle to one connection to a tidings server. Clones share the connection.
///
/// Every method waits for the server's answer. Requests made while the client is
/// reconnecting fail at once with [`ClientError::NotConnected`]. Dropping every handle
/// closes the connection, like [`close`](Self::close).
#[derive(Clone)]
pub struct Client {
    requests: mpsc::Sender<Request>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("closed", &self.shared.closing.is_cancelled())
            .finish_non_exhaustive()
    }
}

/// Everything the server pushes, in order: messages, presence, and connection events.
///
/// Read it steadily: its buffer holds [`ClientConfig::event_buffer`] events, and while it
/// is full the connection stops reading from the server, which also holds up the answers
/// to requests (they come on the same stream, after the messages). [`next`](Self::next)
/// returns `None` once the client is closed for good and every buffered event was read.
#[derive(Debug)]
pub struct Events {
    rx: mpsc::Receiver<Event>,
}

impl Events {
    pub(crate) fn from_receiver(rx: mpsc::Receiver<Event>) -> Self {
        Events { rx }
    }

    /// The next event; `None` once the client is closed (or gave up reconnecting) and the
    /// buffer is empty.
    pub async fn next(&mut self) -> Option<Event> {
        self.rx.recv().await
    }
}

impl futures::Stream for Events {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        self.rx.poll_recv(cx)
    }
}

impl Client {
    /// Connects to `cfg.url`, logs in when `cfg.credentials` are set, and starts the
    /// background task (so it must be called inside a tokio runtime).
    ///
    /// The first connection is not retried: an unreachable server or refused credentials
    /// are an error here. Later losses are retried when `cfg.reconnect` is set.
    pub async fn connect(cfg: ClientConfig) -> Result<(Client, Events), ClientError> {
        let target = config::validate(&cfg)?;
        let conn = Conn::open(&target).await?;
        let (requests, requests_rx) = mpsc::channel(REQUEST_QUEUE);
        let (events_tx, events_rx) = mpsc::channel(cfg.event_buffer);
        let shared = Arc::new(Shared::default());
        let credentials = cfg.credentials.clone();
        let task = Task::new(target, cfg, requests_rx, events_tx, shared.clone());
        tokio::spawn(task.run(conn));
        let client = Client { requests, shared };
        if let Some((user, password)) = credentials {
            let login = client
                .call(|reply| Request::Auth {
                    user,
                    password,
                    reply,
                })
                .await;
            if let Err(e) = login {
                client.close().await;
                return Err(e);
            }
        }
        Ok((client, Events { rx: events_rx }))
    }

    /// Subscribes to a topic (`chat.lobby`) or a pattern (`chat.*`, `prices.>`).
    ///
    /// For an exact topic, [`Subscribed::last_offset`] is the topic's last offset: messages
    /// after it are delivered. After a reconnect the client resumes from the last offset it
    /// delivered, so nothing is lost while history holds it (or a [`Event::Gap`] says what
    /// was). A pattern resumes over WebSocket too: each concrete topic it delivered (at most
    /// 1024, the least recently delivered forgotten first) gets what it missed or a
    /// [`Event::Gap`]. Over the TCP line protocol a pattern is resubscribed but not resumed:
    /// what its topics got while the client was away is not replayed.
    pub async fn subscribe(&self, pattern: &str) -> Result<Subscribed, ClientError> {
        self.call(requests::subscribe(pattern, None, None)?).await
    }

    /// Subscribes to an exact topic and first replays what came after offset `since` (of
    /// `epoch`, when given: a different epoch means history was lost). Fails with
    /// [`ClientError::ResumeUnavailable`] when history no longer holds all of it; subscribe
    /// again with `since = earliest - 1` to take what is left.
    pub async fn subscribe_since(
        &self,
        topic: &str,
        since: u64,
        epoch: Option<&str>,
    ) -> Result<Subscribed, ClientError> {
        self.call(requests::subscribe(topic, Some(since), epoch)?)
            .await
    }

    /// Ends a subscription made with the same pattern.
    pub async fn unsubscribe(&self, pattern: &str) -> Result<(), ClientError> {
        self.call(requests::unsubscribe(pattern)?).await
    }

    /// Publishes to an exact topic and returns the offset the message got.
    ///
    /// `&str`/`String` publish text, `Bytes`/`Vec<u8>` binary; [`Payload::Json`] a JSON
    /// document (checked here; the line protocol carries it as text).
    pub async fn publish(
        &self,
        topic: &str,
        payload: impl Into<Payload>,
    ) -> Result<Published, ClientError> {
        self.call(requests::publish(topic, payload.into())?).await
    }

    /// Closes the connection politely (`QUIT` or a close frame) and stops reconnecting.
    /// Requests still waiting fail with [`ClientError::Closed`]; [`Events::next`] returns
    /// what is buffered, then `None`. Returns once the connection task has ended.
    pub async fn close(&self) {
        self.shared.closing.cancel();
        self.shared.finished.cancelled().await;
    }

    /// True once [`close`](Self::close) was called or the client stopped for good.
    pub fn is_closed(&self) -> bool {
        self.shared.closing.is_cancelled() || self.shared.finished.is_cancelled()
    }

    /// Test hook: drops the socket as a network failure would, without a goodbye. With
    /// reconnect on, the client then reconnects and resumes.
    #[doc(hidden)]
    pub async fn kill_connection_for_test(&self) {
        self.begin_kill();
    }

    pub(crate) fn begin_kill(&self) {
        self.shared.kill.notify_one();
    }

    async fn call<R>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<R, ClientError>>) -> Request,
    ) -> Result<R, ClientError> {
        if self.is_closed() {
            return Err(ClientError::Closed);
        }
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(make(reply))
            .await
            .map_err(|_| ClientError::Closed)?;
        answer.await.unwrap_or(Err(ClientError::Closed))
    }

    /// Like `call`, for threads outside any async runtime (the blocking client).
    pub(crate) fn call_blocking<R>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<R, ClientError>>) -> Request,
    ) -> Result<R, ClientError> {
        if self.is_closed() {
            return Err(ClientError::Closed);
        }
        let (reply, answer) = oneshot::channel();
        self.requests
            .blocking_send(make(reply))
            .map_err(|_| ClientError::Closed)?;
        answer.blocking_recv().unwrap_or(Err(ClientError::Closed))
    }

    pub(crate) fn begin_close(&self) {
        self.shared.closing.cancel();
    }
}

/// Checks a publish before it is queued.
pub(crate) fn check_publish(topic: &str, payload: &Payload) -> Result<(), ClientError> {
    check_token("topic", topic)?;
    if crate::task::is_pattern(topic) {
        return Err(ClientError::InvalidInput(format!(
            "{topic:?} is a pattern; publish needs an exact topic"
        )));
    }
    if let Payload::Json(json) = payload {
        serde_json::from_str::<&serde_json::value::RawValue>(json)
            .map_err(|e| ClientError::InvalidInput(format!("Payload::Json is not JSON: {e}")))?;
    }
    Ok(())
}

/// The requests of the blocking client, built the same way as the async ones.
pub(crate) mod requests {
    use super::*;

    pub(crate) fn subscribe(
        pattern: &str,
        since: Option<u64>,
        epoch: Option<&str>,
    ) -> Result<impl FnOnce(oneshot::Sender<Result<Subscribed, ClientError>>) -> Request, ClientError>
    {
        check_token(if since.is_some() { "topic" } else { "pattern" }, pattern)?;
        if let Some(epoch) = epoch {
            check_token("epoch", epoch)?;
        }
        let pattern = pattern.to_owned();
        let epoch = epoch.map(str::to_owned);
        Ok(move |reply| Request::Subscribe {
            pattern,
            since,
            epoch,
            reply,
        })
    }

    pub(crate) fn unsubscribe(
        pattern: &str,
    ) -> Result<impl FnOnce(oneshot::Sender<Result<(), ClientError>>) -> Request, ClientError> {
        check_token("pattern", pattern)?;
        let pattern = pattern.to_owned();
        Ok(move |reply| Request::Unsubscribe { pattern, reply })
    }

    pub(crate) fn publish(
        topic: &str,
        payload: Payload,
    ) -> Result<impl FnOnce(oneshot::Sender<Result<Published, ClientError>>) -> Request, ClientError>
    {
        check_publish(topic, &payload)?;
        let topic = topic.to_owned();
        Ok(move |reply| Request::Publish {
            topic,
            payload,
            reply,
        })
    }
}
