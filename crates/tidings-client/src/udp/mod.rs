//! The UDP client: publish with one datagram, subscribe with a lease the client renews.
//!
//! UDP is unreliable by design, and so is this client: messages may be lost, duplicated or
//! reordered on the way. What it does about it: every message carries its topic's offset and
//! epoch, duplicates (within 64 offsets) are dropped, and a jump in offsets is reported as an
//! [`Event::Gap`] before the message that revealed it (a late datagram may still fill it). It
//! does not retransmit messages or replay history: use TCP or WebSocket for that.
//!
//! Requests are retransmitted until answered (subscribe, unsubscribe, renew: 5 tries); an
//! acknowledged publish is sent once and waits up to 2 s, since sending it again could publish
//! it twice. The client answers the server's address-validation challenge by itself, renews
//! the lease every third of it, and subscribes again when the server forgot it (restart).
//! The event buffer never blocks the socket: when it is full, events are dropped and counted
//! ([`UdpClient::dropped_events`]).

mod order;
mod task;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::client::{check_publish, Events};
use crate::config::{check_token, ClientConfig};
use crate::error::ClientError;
use crate::types::{Payload, Published, Subscribed};
use task::{Command, Handles, Task};

/// Default UDP port of `tidings serve`.
const DEFAULT_UDP_PORT: u16 = 7072;

/// A handle to a UDP client of a tidings server (`udp://HOST:PORT`). Clones share it.
///
/// ```no_run
/// use tidings_client::{ClientConfig, Event, UdpClient};
/// # async fn run() -> Result<(), tidings_client::ClientError> {
/// let (client, mut events) = UdpClient::connect(ClientConfig::new("udp://127.0.0.1:7072")).await?;
/// client.subscribe("game.*").await?;
/// client.publish("game.pos", "x=1").await?;                 // fire and forget
/// let published = client.publish_acked("game.pos", "x=2").await?;
/// while let Some(event) = events.next().await {
///     match event {
///         Event::Message(m) => println!("{} {} {:?}", m.topic, m.offset, m.payload),
///         Event::Gap { topic, since, earliest, .. } => eprintln!("{topic}: missed {}..{earliest}", since + 1),
///         _ => {}
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct UdpClient {
    commands: mpsc::Sender<Command>,
    closing: CancellationToken,
    finished: CancellationToken,
    dropped: Arc<AtomicU64>,
    local: SocketAddr,
}

impl std::fmt::Debug for UdpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UdpClient")
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

/// Reads `udp://HOST[:PORT]`.
fn parse_url(text: &str) -> Result<(String, u16), ClientError> {
    let bad = |why: &str| ClientError::BadUrl(format!("{text:?}: {why}"));
    let url = Url::parse(text).map_err(|e| bad(&format!("{e}; expected udp://HOST:PORT")))?;
    if url.scheme() != "udp" {
        return Err(bad("expected udp://HOST:PORT"));
    }
    if !matches!(url.path(), "" | "/") || url.query().is_some() {
        return Err(bad("a udp:// URL has no path or query"));
    }
    let host = url.host_str().ok_or_else(|| bad("no host"))?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    Ok((host, url.port().unwrap_or(DEFAULT_UDP_PORT)))
}

impl UdpClient {
    /// Binds a local UDP socket, points it at `cfg.url` (`udp://HOST:PORT`, port 7072 when
    /// omitted) and starts the background task. Sends nothing yet: UDP has no connection.
    /// Only `url` and `event_buffer` of `cfg` apply; UDP has no login (`credentials` is an
    /// error) and no reconnection (there is nothing to reconnect).
    pub async fn connect(cfg: ClientConfig) -> Result<(UdpClient, Events), ClientError> {
        if cfg.credentials.is_some() {
            return Err(ClientError::InvalidInput(
                "UDP has no login: it acts with the server's anonymous rights".into(),
            ));
        }
        if cfg.event_buffer == 0 {
            return Err(ClientError::InvalidInput(
                "event_buffer must be at least 1".into(),
            ));
        }
        let (host, port) = parse_url(&cfg.url)?;
        let server = tokio::net::lookup_host((host.as_str(), port))
            .await?
            .next()
            .ok_or_else(|| ClientError::BadUrl(format!("{host}: no address")))?;
        let bind: SocketAddr = match server {
            SocketAddr::V4(_) => "0.0.0.0:0".parse().unwrap_or(server),
            SocketAddr::V6(_) => "[::]:0".parse().unwrap_or(server),
        };
        let socket = UdpSocket::bind(bind).await?;
        // Connected: the kernel drops datagrams from anyone but the server.
        socket.connect(server).await?;
        let local = socket.local_addr()?;
        let (commands, commands_rx) = mpsc::channel(64);
        let (events_tx, events_rx) = mpsc::channel(cfg.event_buffer);
        let closing = CancellationToken::new();
        let finished = CancellationToken::new();
        let dropped = Arc::new(AtomicU64::new(0));
        let handles = Handles {
            commands: commands_rx,
            events: events_tx,
            closing: closing.clone(),
            finished: finished.clone(),
            dropped: dropped.clone(),
        };
        let max = tidings_proto::udp::DEFAULT_MAX_DATAGRAM;
        let task = Task::new(socket, server, max, handles);
        tokio::spawn(task.run());
        let client = UdpClient {
            commands,
            closing,
            finished,
            dropped,
            local,
        };
        Ok((client, Events::from_receiver(events_rx)))
    }

    /// The local address datagrams come from (and messages go to).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    async fn call<R>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<R, ClientError>>) -> Command,
    ) -> Result<R, ClientError> {
        if self.closing.is_cancelled() || self.finished.is_cancelled() {
            return Err(ClientError::Closed);
        }
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(make(reply))
            .await
            .map_err(|_| ClientError::Closed)?;
        answer.await.unwrap_or(Err(ClientError::Closed))
    }

    /// Subscribes to a topic or pattern and waits until the server confirms (after the
    /// address-validation round trip). For an exact topic, [`Subscribed::last_offset`] is
    /// where delivery starts, so even a first lost message shows as a gap.
    pub async fn subscribe(&self, pattern: &str) -> Result<Subscribed, ClientError> {
        check_token("pattern", pattern)?;
        let pattern = pattern.to_owned();
        self.call(|reply| Command::Subscribe { pattern, reply })
            .await
    }

    /// Ends a subscription made with the same pattern.
    pub async fn unsubscribe(&self, pattern: &str) -> Result<(), ClientError> {
        check_token("pattern", pattern)?;
        let pattern = pattern.to_owned();
        self.call(|reply| Command::Unsubscribe { pattern, reply })
            .await
    }

    /// Publishes with one datagram and returns once it is sent, without any answer: it may
    /// be lost. Fails if the message does not fit in one datagram (1200 bytes in all).
    pub async fn publish(
        &self,
        topic: &str,
        payload: impl Into<Payload>,
    ) -> Result<(), ClientError> {
        let payload = payload.into();
        check_publish(topic, &payload)?;
        let topic = topic.to_owned();
        self.commands
            .send(Command::Publish {
                topic,
                payload,
                reply: None,
            })
            .await
            .map_err(|_| ClientError::Closed)
    }

    /// Publishes and waits (up to 2 s) for the offset the message got. A timeout means the
    /// request or its answer was lost: the message may or may not have been published.
    pub async fn publish_acked(
        &self,
        topic: &str,
        payload: impl Into<Payload>,
    ) -> Result<Published, ClientError> {
        let payload = payload.into();
        check_publish(topic, &payload)?;
        let topic = topic.to_owned();
        self.call(|reply| Command::Publish {
            topic,
            payload,
            reply: Some(reply),
        })
        .await
    }

    /// Events dropped so far because the event buffer was full.
    pub fn dropped_events(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Ends every subscription (one best-effort `UNSUBSCRIBE`) and stops the task.
    pub async fn close(&self) {
        self.closing.cancel();
        self.finished.cancelled().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("udp://127.0.0.1:9000").unwrap(),
            ("127.0.0.1".into(), 9000)
        );
        assert_eq!(parse_url("udp://localhost").unwrap().1, 7072);
        assert_eq!(parse_url("udp://[::1]:1").unwrap().0, "::1");
        for bad in ["tcp://x:1", "udp://x:1/path", "x", "udp://"] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }
}
