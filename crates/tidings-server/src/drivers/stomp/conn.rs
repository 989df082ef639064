//! The per-connection loop, the same for STOMP over TCP and over WebSocket: one task selects
//! between the peer's bytes, the outbox's wake-up and the heart-beat/CONNECT timer.
//!
//! Everything queued is encoded into one buffer and written at once: one `write` on TCP, one
//! flush of WebSocket frames (one STOMP frame per WebSocket message, as STOMP clients
//! expect). Queue messages of `auto` subscriptions are acknowledged once written, so prefetch
//! bounds what sits unread in socket buffers too.

use super::carrier::{Carrier, Ending};
use super::deliver;
use super::session::{Flow, StompSession};
use crate::drivers::Ended;
use crate::listen::{ByteStream, Peer};
use crate::transports::ws::{Close, OutFrame, WsClosed, WsConn, WsMessage};
use bytes::Bytes;
use bytes::BytesMut;
use std::sync::Arc;
use std::time::Duration;
use tidings_core::{CloseReason, Delivery, PayloadKind, Settle};
use tidings_proto::stomp::{self, AckMode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Why the transport under a STOMP connection failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(super) enum TransportError {
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("websocket closed")]
    WebSocket(#[from] WsClosed),
    #[error("the carrier ended (its client reads too slowly, or it closed)")]
    CarrierEnded,
}

/// The byte stream under STOMP.
pub(super) enum Transport {
    /// STOMP over TCP (or anything else that is a byte stream, such as TLS).
    Stream(Box<dyn ByteStream>),
    /// Boxed: yawc's connection is large and TCP's is small.
    Ws(Box<WsConn>),
    /// A message-oriented carrier such as a SockJS session: what the client sent arrives on
    /// `incoming`; each frame written goes to `outgoing` (the carrier's bounded outbox) as one
    /// message.
    Channel {
        incoming: mpsc::Receiver<Bytes>,
        outgoing: Arc<Carrier>,
    },
}

/// Encoded frames waiting to be written, with their boundaries and whether each must go as a
/// binary WebSocket message (known when encoding, so nothing is rescanned per subscriber).
#[derive(Default)]
struct Outgoing {
    buf: BytesMut,
    ends: Vec<(usize, bool)>,
}

impl Outgoing {
    /// Ends the frame written since the last mark; `binary` when its body is not text.
    fn mark(&mut self, binary: bool) {
        if self.ends.last().map(|e| e.0) != Some(self.buf.len()) {
            self.ends.push((self.buf.len(), binary));
        }
    }

    fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}

impl Transport {
    /// Appends what the peer sent; `Ok(0)` when it is gone.
    async fn recv(&mut self, buf: &mut BytesMut) -> Result<usize, TransportError> {
        match self {
            Transport::Stream(s) => {
                if buf.capacity() - buf.len() < 1024 {
                    buf.reserve(8192);
                }
                Ok(s.read_buf(buf).await?)
            }
            Transport::Ws(ws) => match ws.recv().await {
                Ok(WsMessage::Text(b) | WsMessage::Binary(b)) => {
                    buf.extend_from_slice(&b);
                    // An empty message (or a ping) still proves the peer alive.
                    Ok(b.len().max(1))
                }
                Ok(WsMessage::Control) => Ok(1),
                Err(_) => Ok(0),
            },
            Transport::Channel { incoming, .. } => match incoming.recv().await {
                Some(b) => {
                    buf.extend_from_slice(&b);
                    Ok(b.len().max(1))
                }
                None => Ok(0),
            },
        }
    }

    async fn send(&mut self, out: &mut Outgoing) -> Result<(), TransportError> {
        out.mark(false);
        let result = match self {
            Transport::Stream(s) => s.write_all(&out.buf).await.map_err(TransportError::from),
            Transport::Ws(ws) => {
                let all = out.buf.split().freeze();
                let mut start = 0;
                let frames = out.ends.iter().map(|&(end, binary)| {
                    let f = all.slice(start..end);
                    start = end;
                    if binary {
                        OutFrame::Binary(f)
                    } else {
                        OutFrame::Text(f)
                    }
                });
                let frames: Vec<OutFrame> = frames.collect();
                ws.send_all(frames).await.map_err(TransportError::from)
            }
            Transport::Channel { outgoing, .. } => {
                let all = out.buf.split().freeze();
                let mut start = 0;
                let mut result = Ok(());
                for &(end, _) in &out.ends {
                    let frame = all.slice(start..end);
                    start = end;
                    if outgoing.push(frame).is_err() {
                        result = Err(TransportError::CarrierEnded);
                        break;
                    }
                }
                result
            }
        };
        out.buf.clear();
        out.ends.clear();
        if out.buf.capacity() > 256 * 1024 {
            out.buf = BytesMut::new(); // give back what a burst made it grow to
        }
        result
    }

    async fn close(self, code: Close, reason: &str) {
        match self {
            Transport::Stream(mut s) => {
                let _ = s.shutdown().await;
            }
            Transport::Ws(ws) => ws.close(code, reason).await,
            // The carrier ends once what was written is delivered.
            Transport::Channel { outgoing, .. } => outgoing.end(Ending::Finished),
        }
    }
}

/// Serves one connection until it ends; says why.
pub(super) async fn run(
    transport: Transport,
    broker: Arc<super::Broker>,
    protocol: &'static str,
    peer: Option<Peer>,
) {
    serve(transport, broker, protocol, peer).await.log();
}

async fn serve(
    mut transport: Transport,
    broker: Arc<super::Broker>,
    protocol: &'static str,
    peer: Option<Peer>,
) -> Ended {
    let (hub, cfg) = (broker.hub.clone(), broker.config);
    let (session, wake) = match crate::drivers::open_session(&hub, protocol, peer) {
        Ok(pair) => pair,
        Err(e) => {
            let mut out = Outgoing::default();
            stomp::encode_error(&e.to_string(), None, "", stomp::Version::V1_2, &mut out.buf);
            let _ = transport.send(&mut out).await;
            transport
                .close(Close::GoingAway, "server shutting down")
                .await;
            return Ended::Refused(e);
        }
    };
    let from = peer.map(|p| p.addr.ip());
    let mut st = StompSession::new(session, hub, broker.auth.clone(), cfg, from);
    st.remote = broker.remote.clone();
    let connect_deadline = Instant::now() + Duration::from_millis(cfg.connect_timeout_ms);
    let mut rbuf = BytesMut::with_capacity(4096);
    let mut out = Outgoing::default();
    let mut batch = Vec::new();
    let mut auto_acks: Vec<(Arc<str>, u64)> = Vec::new();
    let mut last_read = Instant::now();
    let mut last_write = Instant::now();
    loop {
        let (send_every, expect_every) = st.heart_beat;
        let deadline = if !st.is_connected() {
            Some(connect_deadline)
        } else {
            let beat = (send_every > 0).then(|| last_write + ms(send_every));
            let dead =
                (expect_every > 0).then(|| last_read + ms(expect_every) * cfg.heart_beat_tolerance);
            // Without heart-beats from the client, silence is checked by the idle timeout.
            let idle = (expect_every == 0 && cfg.idle_timeout_secs > 0)
                .then(|| last_read + Duration::from_secs(cfg.idle_timeout_secs));
            beat.into_iter()
                .chain(dead)
                .chain(idle)
                .chain(st.expiry())
                .min()
        };
        let timer = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            _ = wake.notified() => {
                let closed = st.session.outbox().drain_into(&mut batch);
                encode_batch(&st, &mut batch, &mut out, &mut auto_acks);
                if let Some(reason) = &closed {
                    let message = match reason {
                        CloseReason::SlowConsumer => Some("slow consumer: too many messages queued; closing"),
                        // The session queued its own ERROR (a publish or subscribe Redis
                        // refused after the frame was handled), then closed.
                        CloseReason::Finished => None,
                        _ => Some("server shutting down"),
                    };
                    if let Some(message) = message {
                        stomp::encode_error(message, None, "", st.version, &mut out.buf);
                    }
                }
                if !out.is_empty() {
                    if let Err(e) = transport.send(&mut out).await {
                        return Ended::WriteFailed(e.to_string());
                    }
                    last_write = Instant::now();
                }
                settle_auto(&st, &mut auto_acks);
                if let Some(reason) = closed {
                    transport.close(Close::GoingAway, "closing").await;
                    return Ended::closed(&reason);
                }
            }
            r = transport.recv(&mut rbuf) => {
                match r {
                    Ok(0) => return Ended::PeerClosed, // the session is dropped (and queue messages it held go back)
                    Ok(_) => {}
                    Err(TransportError::Io(_) | TransportError::WebSocket(_)) => return Ended::PeerClosed,
                    Err(e) => return Ended::WriteFailed(e.to_string()),
                }
                last_read = Instant::now();
                if st.handle_input(&mut rbuf) == Flow::Close {
                    let why = Ended::Concluded("DISCONNECT, or an ERROR for what the client sent");
                    return finish(&st, transport, &mut batch, &mut out, why).await;
                }
                if rbuf.is_empty() && rbuf.capacity() > 64 * 1024 {
                    rbuf = BytesMut::with_capacity(4096);
                }
            }
            _ = timer => {
                let now = Instant::now();
                if !st.is_connected() {
                    st.error("no CONNECT frame in time", None, "");
                    return finish(&st, transport, &mut batch, &mut out, Ended::Idle).await;
                }
                if st.expired() {
                    st.error("token expired", None, "connect again with a fresh token");
                    return finish(&st, transport, &mut batch, &mut out, Ended::Expired).await;
                }
                if expect_every > 0 && now >= last_read + ms(expect_every) * cfg.heart_beat_tolerance {
                    st.error("heart-beat timeout: nothing received in time", None, "");
                    return finish(&st, transport, &mut batch, &mut out, Ended::Idle).await;
                }
                let idle_for = Duration::from_secs(cfg.idle_timeout_secs);
                if expect_every == 0 && cfg.idle_timeout_secs > 0 && now >= last_read + idle_for {
                    // A subscriber waiting for messages is not idle.
                    if st.session.is_listening() {
                        last_read = now;
                        continue;
                    }
                    let message = format!(
                        "idle for {} s with heart-beats off and no subscription; closing",
                        cfg.idle_timeout_secs
                    );
                    st.error(&message, None, "");
                    return finish(&st, transport, &mut batch, &mut out, Ended::Idle).await;
                }
                if send_every > 0 && now >= last_write + ms(send_every) {
                    out.buf.extend_from_slice(b"\n");
                    if let Err(e) = transport.send(&mut out).await {
                        return Ended::WriteFailed(e.to_string());
                    }
                    last_write = now;
                }
            }
        }
    }
}

fn ms(n: u32) -> Duration {
    Duration::from_millis(u64::from(n))
}

/// Writes what is queued (ending with the RECEIPT or ERROR that ended the conversation) and
/// closes.
async fn finish(
    st: &StompSession,
    mut transport: Transport,
    batch: &mut Vec<Delivery>,
    out: &mut Outgoing,
    why: Ended,
) -> Ended {
    let mut ignored = Vec::new();
    st.session.outbox().drain_into(batch);
    encode_batch(st, batch, out, &mut ignored);
    if !out.is_empty() {
        if let Err(e) = transport.send(out).await {
            return Ended::WriteFailed(e.to_string());
        }
    }
    transport.close(Close::Normal, "bye").await;
    why
}

/// Encodes every delivery; records the last queue message written per `auto` subscription.
fn encode_batch(
    st: &StompSession,
    batch: &mut Vec<Delivery>,
    out: &mut Outgoing,
    auto_acks: &mut Vec<(Arc<str>, u64)>,
) {
    for d in batch.drain(..) {
        let binary = match d {
            Delivery::Message { sub, msg } => {
                // A subscription cancelled meanwhile: its queue messages were already given
                // back by the hub, its topic messages are no longer wanted.
                let Some(info) = st.subs.get(&sub) else {
                    continue;
                };
                deliver::encode_message(&msg, info, st.version, &mut out.buf);
                if info.queue && info.ack == AckMode::Auto {
                    match auto_acks.iter_mut().find(|(k, _)| *k == sub) {
                        Some(entry) => entry.1 = msg.offset,
                        None => auto_acks.push((sub, msg.offset)),
                    }
                }
                // The hub only stores Text and Json payloads that are UTF-8.
                msg.kind == PayloadKind::Binary
            }
            Delivery::Reply(bytes) => {
                out.buf.extend_from_slice(&bytes);
                false
            }
            // STOMP subscriptions do not watch presence, and resume exact topics only (a
            // refused resume is an ERROR), so the hub queues neither for them.
            Delivery::Presence(_) | Delivery::Gap(_) => continue,
        };
        out.mark(binary);
    }
}

/// Acknowledges what `auto` subscriptions were sent: cumulatively, up to the last one written.
fn settle_auto(st: &StompSession, auto_acks: &mut Vec<(Arc<str>, u64)>) {
    for (key, seq) in auto_acks.drain(..) {
        st.session
            .hub()
            .settle(&st.session, &key, seq, true, Settle::Ack);
    }
}
