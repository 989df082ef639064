//! One Engine.IO session: what the client has not received yet, the heartbeat, and how the
//! session ends. The transports (`polling.rs`, `websocket.rs`) carry it; this file decides.
//!
//! ```text
//! open ──(pingInterval)──> PING sent ──PONG──> (pingInterval) ──> PING sent ...
//!   │                          └──(pingTimeout, no PONG)──> closed "ping timeout"
//!   ├── client CLOSE / transport gone ──> closed "transport close"
//!   ├── bad packet ──> closed "parse error"; duplicate GET, ping from client ──> "transport error"
//!   └── server close ──> closed "forced close": what is queued is still delivered, then CLOSE
//! ```
//! The first PING goes one interval after the handshake (as the reference server does), not
//! at once; a PONG re-arms the interval from when it came. While a PING waits for its PONG,
//! the first other packet from the client refreshes the timeout once (the reference again).

use super::{Handler, Inner};
use bytes::Bytes;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use tidings_proto::engineio::{Packet, PayloadWriter};
use tokio::sync::Notify;
use tokio::time::Instant;

/// The transport a session is carried by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Polling,
    WebSocket,
}

/// Why a session ended, as the reference server names it (`socket.on("close", reason)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// The client closed (a CLOSE packet, or its connection ended).
    TransportClose,
    /// No PONG within `pingTimeout` of a PING.
    PingTimeout,
    /// The client broke the transport's rules (a second long-poll at once, a ping from the
    /// client, an I/O error).
    TransportError,
    /// A packet that does not decode.
    ParseError,
    /// The server closed the session.
    ForcedClose,
}

impl CloseReason {
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::TransportClose => "transport close",
            CloseReason::PingTimeout => "ping timeout",
            CloseReason::TransportError => "transport error",
            CloseReason::ParseError => "parse error",
            CloseReason::ForcedClose => "forced close",
        }
    }

    /// Only the server's own close delivers what is queued before the goodbye; for the
    /// others the client is gone or broke the rules.
    fn flushes(self) -> bool {
        self == CloseReason::ForcedClose
    }
}

/// Why a packet could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The session's queue is full: the client is not reading fast enough.
    #[error("the connection's queue is full")]
    Full,
    /// The session is closed.
    #[error("the connection is closed")]
    Closed,
}

/// One message for the client: an Engine.IO text packet (`4...`, empty for none) and the
/// binary messages that follow it (a Socket.IO packet's attachments), kept together.
struct Queued {
    text: Bytes,
    binaries: Vec<Bytes>,
}

struct State {
    transport: Transport,
    /// Messages not yet handed to a transport; at most `max_buffered_packets`.
    queue: VecDeque<Queued>,
    /// A PING is owed to the client (not queued: it must never be refused for space).
    ping_due: bool,
    /// When the next PING is due; `None` while one waits for its PONG.
    next_ping: Option<Instant>,
    /// When the PING in flight times out.
    pong_deadline: Option<Instant>,
    /// The PING in flight already had its timeout refreshed by another packet.
    refreshed: bool,
    /// A long-poll is attached (at most one).
    receiving: bool,
    /// A long-polling POST is being read (at most one).
    posting: bool,
    /// A WebSocket probed this session: the pending long-poll gets a NOOP so the client can
    /// finish the upgrade.
    upgrading: bool,
    /// Set once; the session is then closed (possibly still delivering its goodbye).
    closed: Option<CloseReason>,
}

/// An Engine.IO session (the reference's `Socket`). `data` is the layer above's state.
pub struct Socket<H: Handler> {
    id: Box<str>,
    /// The address of the client that opened the session (for logins' per-address limit).
    peer: Option<std::net::IpAddr>,
    pub data: H::Data,
    pub(super) server: Arc<Inner<H>>,
    state: Mutex<State>,
    /// Wakes whoever carries packets to the client: the WebSocket task or the long-poll
    /// (shared, so the layer above can hand it to what feeds it, e.g. a hub outbox).
    pub(super) wake: Arc<Notify>,
}

impl<H: Handler> std::fmt::Debug for Socket<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Socket").field("id", &self.id).finish()
    }
}

/// What the heartbeat asks of whoever runs it.
pub(super) enum Beat {
    /// Nothing to do until then.
    Wait(Instant),
    /// A PING was owed and is now queued (the carrier has been woken), or the session timed
    /// out and is closed: look again.
    Acted,
    /// The session is closed.
    Over,
}

impl<H: Handler> Socket<H> {
    pub(super) fn new(
        id: String,
        server: Arc<Inner<H>>,
        transport: Transport,
        peer: Option<std::net::IpAddr>,
    ) -> Self {
        let first_ping = Instant::now() + server.options.ping_interval;
        Socket {
            id: id.into_boxed_str(),
            peer,
            data: H::Data::default(),
            server,
            state: Mutex::new(State {
                transport,
                queue: VecDeque::new(),
                ping_due: false,
                next_ping: Some(first_ping),
                pong_deadline: None,
                refreshed: false,
                receiving: false,
                posting: false,
                upgrading: false,
                closed: None,
            }),
            wake: Arc::new(Notify::new()),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The session id (`sid`).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The address of the client that opened the session, when known.
    pub fn peer(&self) -> Option<std::net::IpAddr> {
        self.peer
    }

    pub fn transport(&self) -> Transport {
        self.state().transport
    }

    /// What wakes the transport to drain the session (it then calls `Handler::on_drain`).
    pub fn waker(&self) -> &Arc<Notify> {
        &self.wake
    }

    pub fn is_closed(&self) -> bool {
        self.state().closed.is_some()
    }

    /// Queues a text message and the binary messages that go with it, without waiting.
    pub fn try_send(&self, text: &str, binaries: Vec<Bytes>) -> Result<(), SendError> {
        let mut packet = Vec::with_capacity(text.len() + 1);
        packet.push(b'4');
        packet.extend_from_slice(text.as_bytes());
        self.push(Queued {
            text: Bytes::from(packet),
            binaries,
        })
    }

    /// Queues one binary message, without waiting.
    pub fn try_send_binary(&self, data: Bytes) -> Result<(), SendError> {
        self.push(Queued {
            text: Bytes::new(),
            binaries: vec![data],
        })
    }

    fn push(&self, item: Queued) -> Result<(), SendError> {
        let mut st = self.state();
        if st.closed.is_some() {
            return Err(SendError::Closed);
        }
        if st.queue.len() >= self.server.options.max_buffered_packets {
            return Err(SendError::Full);
        }
        let was_empty = st.queue.is_empty();
        st.queue.push_back(item);
        drop(st);
        if was_empty {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Closes the session: the layer above hears why at once; the transport delivers the
    /// goodbye (after what is queued when the server closes) and then forgets the session.
    pub fn close(self: &Arc<Self>, reason: CloseReason) {
        let transport = {
            let mut st = self.state();
            if st.closed.is_some() {
                return;
            }
            st.closed = Some(reason);
            if !reason.flushes() {
                st.queue.clear();
            }
            st.transport
        };
        self.wake.notify_one();
        self.server.handler.on_close(self, reason);
        // A long-polling client that broke off or timed out is not waited for: the next
        // request gets "Session ID unknown". A WebSocket session is forgotten by its task.
        if transport == Transport::Polling && !reason.flushes() {
            self.forget();
        }
    }

    /// Removes the session from the server's registry.
    pub(super) fn forget(&self) {
        self.server.forget(&self.id);
    }

    /// Handles one packet from the client, on any transport.
    pub(super) fn receive(self: &Arc<Self>, packet: Packet<'_>) {
        {
            let mut st = self.state();
            if st.closed.is_some() {
                return; // the reference ignores packets on a closing session
            }
            let now = Instant::now();
            match packet {
                Packet::Pong(_) => {
                    st.pong_deadline = None;
                    st.next_ping = Some(now + self.server.options.ping_interval);
                }
                _ if st.pong_deadline.is_some() && !st.refreshed => {
                    st.pong_deadline = Some(now + self.server.options.ping_timeout);
                    st.refreshed = true;
                }
                _ => {}
            }
        }
        let handler = &self.server.handler;
        match packet {
            Packet::Message(text) => handler.on_message(self, text),
            Packet::Binary(data) => handler.on_binary(self, Bytes::from(data)),
            Packet::Close => self.close(CloseReason::TransportClose),
            // In protocol 4 only the server pings.
            Packet::Ping(_) => self.close(CloseReason::TransportError),
            Packet::Pong(_) | Packet::Open(_) | Packet::Upgrade | Packet::Noop => {}
        }
    }

    /// Runs the heartbeat at `now` (see the module docs).
    pub(super) fn beat(self: &Arc<Self>, now: Instant) -> Beat {
        let mut st = self.state();
        if st.closed.is_some() {
            return Beat::Over;
        }
        if let Some(deadline) = st.pong_deadline {
            if now < deadline {
                return Beat::Wait(deadline);
            }
            drop(st);
            self.close(CloseReason::PingTimeout);
            return Beat::Acted;
        }
        match st.next_ping {
            Some(at) if now < at => Beat::Wait(at),
            _ => {
                st.ping_due = true;
                st.next_ping = None;
                st.pong_deadline = Some(now + self.server.options.ping_timeout);
                st.refreshed = false;
                drop(st);
                self.wake.notify_one();
                Beat::Acted
            }
        }
    }

    /// Takes what a WebSocket should send now, as frames. Returns the close reason once the
    /// session is closed (after its queue was taken, when the server closed it).
    pub(super) fn drain_frames(
        self: &Arc<Self>,
        out: &mut Vec<crate::transports::ws::OutFrame>,
    ) -> Option<CloseReason> {
        use crate::transports::ws::OutFrame;
        self.server.handler.on_drain(self);
        let mut st = self.state();
        if std::mem::take(&mut st.ping_due) {
            out.push(OutFrame::Text(Bytes::from_static(b"2")));
        }
        // Taken, not drained: an idle session then holds no queue buffer at all.
        for q in std::mem::take(&mut st.queue) {
            if !q.text.is_empty() {
                out.push(OutFrame::Text(q.text));
            }
            out.extend(q.binaries.into_iter().map(OutFrame::Binary));
        }
        st.closed
    }

    /// The payload a long-poll answers with now, if there is anything to say: the PING,
    /// queued messages, a NOOP during an upgrade, the CLOSE once closed. `None`: wait.
    pub(super) fn drain_payload(self: &Arc<Self>) -> Option<Vec<u8>> {
        self.server.handler.on_drain(self);
        let mut st = self.state();
        let mut w = PayloadWriter::new();
        if std::mem::take(&mut st.ping_due) {
            w.text(b"2");
        }
        for q in std::mem::take(&mut st.queue) {
            if !q.text.is_empty() {
                w.text(&q.text);
            }
            for b in &q.binaries {
                w.binary(b);
            }
        }
        if st.closed.is_some() {
            w.text(b"1");
        } else if w.is_empty() && (st.upgrading || st.transport == Transport::WebSocket) {
            w.text(b"6");
        }
        (!w.is_empty()).then(|| w.finish())
    }

    /// A long-poll arrives: false if one is attached already.
    pub(super) fn attach_receiver(&self) -> bool {
        !std::mem::replace(&mut self.state().receiving, true)
    }

    pub(super) fn detach_receiver(&self) {
        self.state().receiving = false;
    }

    /// A long-polling POST arrives: false if one is being read already.
    pub(super) fn begin_post(&self) -> bool {
        !std::mem::replace(&mut self.state().posting, true)
    }

    pub(super) fn end_post(&self) {
        self.state().posting = false;
    }

    /// A WebSocket asks to take over (`2probe` arrived): false if the session cannot be
    /// upgraded (already upgrading, upgraded, or closed).
    pub(super) fn begin_upgrade(&self) -> bool {
        let mut st = self.state();
        if st.upgrading || st.transport != Transport::Polling || st.closed.is_some() {
            return false;
        }
        st.upgrading = true;
        drop(st);
        self.wake.notify_one();
        true
    }

    /// The client sent UPGRADE: the WebSocket carries the session from now on.
    pub(super) fn finish_upgrade(&self) -> bool {
        let mut st = self.state();
        if !st.upgrading || st.closed.is_some() {
            return false;
        }
        st.upgrading = false;
        st.transport = Transport::WebSocket;
        drop(st);
        self.wake.notify_one();
        true
    }

    /// The probing WebSocket gave up: the session stays on long-polling.
    pub(super) fn abort_upgrade(&self) {
        self.state().upgrading = false;
    }

    /// Whether this session may be upgraded by a new WebSocket.
    pub(super) fn upgradable(&self) -> bool {
        let st = self.state();
        st.transport == Transport::Polling && !st.upgrading && st.closed.is_none()
    }
}
