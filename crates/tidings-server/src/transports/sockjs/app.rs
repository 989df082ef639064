//! What runs inside SockJS sessions: the seam between the SockJS transport (framing, the
//! receiving and sending requests, heartbeats, one receiver per session) and what a session
//! carries. The product's applications (the native protocol, STOMP) live in
//! `drivers/sockjs.rs`; the conformance fixture's echo and close in
//! `examples/sockjs_conformance.rs`. Socket.IO's `App`/`Handler` has the same shape.

use bytes::Bytes;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::Notify;

/// Serves the sessions of one SockJS endpoint.
pub trait App: Send + Sync + 'static {
    /// A session opens for a client at `peer` (when the transport knows it). The handler
    /// must notify `wake` whenever it has something to send (the transport then calls
    /// [`Handler::drain`]). `Err` refuses the session (e.g. the server is shutting down):
    /// the client gets 503.
    fn open(
        &self,
        wake: Arc<Notify>,
        peer: Option<SocketAddr>,
    ) -> Result<Box<dyn Handler>, Refused>;
}

/// One SockJS session's application.
pub trait Handler: Send + 'static {
    /// Messages the client sent, in order (one decoded `xhr_send` body or WebSocket frame).
    fn on_messages(&mut self, messages: &[String]);

    /// Moves what is queued for the client into `out`, each item one SockJS message already
    /// quoted as a JSON string (see [`quote`]; an application may quote a message once and
    /// share it between sessions). Returns the close frame's code and reason when the session
    /// has ended; the transport sends it after `out` and closes.
    fn drain(&mut self, out: &mut Vec<Bytes>) -> Option<Closed>;
}

/// Why a session ended, as its SockJS close frame `c[code,"reason"]` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed {
    pub code: u16,
    pub reason: &'static str,
}

/// A session the application would not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused;

/// `text` as one SockJS message: a JSON string literal, escaped as SockJS requires.
pub fn quote(text: &[u8]) -> Bytes {
    tidings_proto::sockjs::quoted(text)
}
