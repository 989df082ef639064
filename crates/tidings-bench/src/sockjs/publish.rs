//! The publisher of the SockJS benchmark: one SockJS session over WebSocket (the path a
//! browser app publishing through SockJS takes), sending the same messages to both servers in
//! the form each relays. tidings gets a native `publish` request and delivers a `message`
//! object; sockjs-node's peer relays what it receives, so it gets that `message` object
//! already written (with the offset the publisher counts), and both servers' clients read
//! the same bytes. Every message starts its text with the send time (ns) for the latency.

use super::frame::send_body;
use super::session::{Session, Transport};
use crate::client::stamped_payload;
use futures::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How the publisher paces itself.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Pace {
    /// A fixed number of messages per second (each its own SockJS send).
    Rate(u64),
    /// As fast as the slowest client takes them: at most `window` messages ahead of it, sent
    /// `batch` to a SockJS send, so a server is measured at the rate it really delivers,
    /// not at the rate it can buffer.
    Saturate { window: u64, batch: u64 },
}

/// What the messages look like for the server at hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Form {
    /// tidings: `{"op":"publish",...}`.
    Native,
    /// A relaying peer: the `message` object the subscribers should get.
    Relayed,
}

pub(crate) struct Publisher {
    pub(crate) server: SocketAddr,
    pub(crate) prefix: String,
    pub(crate) topic: String,
    pub(crate) form: Form,
    pub(crate) payload: usize,
    pub(crate) pace: Pace,
}

impl Publisher {
    /// One message, stamped now; `offset` is the publisher's count (used by [`Form::Relayed`]).
    fn message(&self, offset: u64) -> String {
        let text = stamped_payload(self.payload);
        let topic = &self.topic;
        match self.form {
            Form::Native => format!(r#"{{"op":"publish","topic":"{topic}","text":"{text}"}}"#),
            Form::Relayed => format!(
                r#"{{"type":"message","topic":"{topic}","offset":{offset},"epoch":"bench","text":"{text}"}}"#
            ),
        }
    }

    /// Publishes until `stop`; returns how many messages went out. `slowest` gives the
    /// deliveries of the client that got the fewest (for [`Pace::Saturate`]).
    pub(crate) async fn run(
        self,
        stop: Arc<AtomicBool>,
        slowest: impl Fn() -> u64,
    ) -> Result<u64, String> {
        let source = std::net::Ipv4Addr::LOCALHOST.into();
        let session =
            Session::open(Transport::Websocket, self.server, source, &self.prefix, 0).await?;
        let ws = session
            .into_websocket()
            .ok_or("the publisher needs a WebSocket")?;
        let (mut sink, mut stream) = ws.split();
        // What the server sends the publisher (tidings' hello; the peer relays every message
        // to its sender too) is read and dropped, so it never piles up in the server.
        let reader = tokio::spawn(async move { while stream.next().await.is_some() {} });
        let mut published: u64 = 0;
        let base = slowest();
        let mut ticker = match self.pace {
            Pace::Rate(rate) => Some(tokio::time::interval(Duration::from_nanos(
                1_000_000_000 / rate.max(1),
            ))),
            Pace::Saturate { .. } => None,
        };
        while !stop.load(Ordering::Relaxed) {
            let batch = match self.pace {
                Pace::Rate(_) => {
                    if let Some(t) = ticker.as_mut() {
                        t.tick().await;
                    }
                    1
                }
                Pace::Saturate { window, batch } => {
                    let behind = slowest().saturating_sub(base).min(published);
                    if published + batch - behind > window {
                        tokio::time::sleep(Duration::from_micros(200)).await;
                        continue;
                    }
                    batch
                }
            };
            let messages: Vec<String> = (1..=batch).map(|k| self.message(published + k)).collect();
            let refs: Vec<&str> = messages.iter().map(String::as_str).collect();
            sink.send(yawc::Frame::text(send_body(&refs)))
                .await
                .map_err(|e| format!("publishing: {e}"))?;
            published += batch;
        }
        reader.abort();
        Ok(published)
    }
}
