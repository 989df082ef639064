//! The blocking API for classic socket programs: the caller sends, a reader thread receives.
//!
//! [`BlockingClient::connect`] starts one thread that runs a single-threaded tokio runtime
//! with the async [`Client`] on it: that thread reads the socket and feeds events into a
//! bounded std channel, which [`BlockingClient::recv`] reads. Requests are handed to the
//! same runtime and the calling thread waits for their answer.

use std::sync::mpsc::{self as std_mpsc, RecvTimeoutError as StdRecvTimeoutError};
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::client::{requests, Client};
use crate::config::ClientConfig;
use crate::error::ClientError;
use crate::types::{Event, Payload, Published, Subscribed};

/// A client for code without an async runtime. `Send + Sync`: share it (e.g. in an `Arc`)
/// between a thread that publishes and one that calls [`recv`](Self::recv).
///
/// Its methods block the calling thread, so do not call them from async code (use
/// [`Client`] there). Events buffer up to [`ClientConfig::event_buffer`] in the std channel
/// (and as many again inside the async client); when that is full the reader thread waits,
/// the socket is no longer read and TCP pushes back on the server, and requests wait too,
/// since their answers come after the unread messages. So keep calling `recv` while you
/// publish to topics you are subscribed to.
#[derive(Debug)]
pub struct BlockingClient {
    client: Client,
    /// The receiving end of the reader thread's channel. A mutex makes the client `Sync`;
    /// `None` once closing (dropping it releases a reader thread blocked on a full channel).
    events: Mutex<Option<std_mpsc::Receiver<Event>>>,
    thread: Option<JoinHandle<()>>,
}

/// [`BlockingClient::recv_timeout`] found no event in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("timed out waiting for an event")]
pub struct RecvTimeoutError;

impl BlockingClient {
    /// Connects (see [`Client::connect`]) on a new reader thread and waits until connected.
    pub fn connect(cfg: ClientConfig) -> Result<Self, ClientError> {
        let (ready_tx, ready_rx) = std_mpsc::sync_channel(1);
        let (events_tx, events_rx) = std_mpsc::sync_channel(cfg.event_buffer.max(1));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let thread = std::thread::Builder::new()
            .name("tidings-client".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let (client, mut events) = match Client::connect(cfg).await {
                        Ok(pair) => pair,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    if ready_tx.send(Ok(client.clone())).is_err() {
                        return client.close().await;
                    }
                    while let Some(event) = events.next().await {
                        // Blocking this runtime's only thread on a full channel is the
                        // point: the connection stops reading until the caller catches up.
                        if events_tx.send(event).is_err() {
                            break; // the BlockingClient is closing
                        }
                    }
                    client.close().await;
                });
            })?;
        match ready_rx.recv() {
            Ok(Ok(client)) => Ok(BlockingClient {
                client,
                events: Mutex::new(Some(events_rx)),
                thread: Some(thread),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => {
                let _ = thread.join();
                Err(ClientError::Closed)
            }
        }
    }

    /// See [`Client::subscribe`].
    pub fn subscribe(&self, pattern: &str) -> Result<Subscribed, ClientError> {
        self.client
            .call_blocking(requests::subscribe(pattern, None, None)?)
    }

    /// See [`Client::subscribe_since`].
    pub fn subscribe_since(
        &self,
        topic: &str,
        since: u64,
        epoch: Option<&str>,
    ) -> Result<Subscribed, ClientError> {
        self.client
            .call_blocking(requests::subscribe(topic, Some(since), epoch)?)
    }

    /// See [`Client::unsubscribe`].
    pub fn unsubscribe(&self, pattern: &str) -> Result<(), ClientError> {
        self.client.call_blocking(requests::unsubscribe(pattern)?)
    }

    /// See [`Client::publish`].
    pub fn publish(
        &self,
        topic: &str,
        payload: impl Into<Payload>,
    ) -> Result<Published, ClientError> {
        self.client
            .call_blocking(requests::publish(topic, payload.into())?)
    }

    /// The next event, waiting as long as it takes; `None` once the client is closed for
    /// good and every event was read.
    pub fn recv(&self) -> Option<Event> {
        let events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        events.as_ref()?.recv().ok()
    }

    /// Like [`recv`](Self::recv), waiting at most `timeout`: `Ok(Some(event))`, `Ok(None)`
    /// when closed for good, `Err(RecvTimeoutError)` when nothing came in time.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Option<Event>, RecvTimeoutError> {
        let events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        let Some(events) = events.as_ref() else {
            return Ok(None);
        };
        match events.recv_timeout(timeout) {
            Ok(event) => Ok(Some(event)),
            Err(StdRecvTimeoutError::Timeout) => Err(RecvTimeoutError),
            Err(StdRecvTimeoutError::Disconnected) => Ok(None),
        }
    }

    /// Test hook, see [`Client::kill_connection_for_test`].
    #[doc(hidden)]
    pub fn kill_connection_for_test(&self) {
        self.client.begin_kill();
    }

    /// Closes the connection politely and joins the reader thread (dropping the client does
    /// the same).
    pub fn close(self) {}
}

impl Drop for BlockingClient {
    fn drop(&mut self) {
        self.client.begin_close();
        // Releases the reader thread if it waits on a full channel.
        let events = self.events.get_mut().unwrap_or_else(|e| e.into_inner());
        drop(events.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
