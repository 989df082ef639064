//! Socket.IO (protocol 5, over Engine.IO 4) at `/socket.io/`.
//!
//! Layers, bottom up:
//! - [`engineio`]: Engine.IO 4 — long-polling on our HTTP layer, WebSocket through the
//!   `transports/ws` seam, the polling-to-WebSocket upgrade, heartbeats, payload limits.
//! - Packet framing is socketioxide's common parser; [`packet`] (tidings-proto, fuzzed there)
//!   encodes what we send and checks what a client's events carry.
//! - This module is the Socket.IO session layer: namespaces (CONNECT / CONNECT_ERROR /
//!   DISCONNECT, the connect timeout), events, acknowledgements, binary attachments, and the
//!   connection-state-recovery handshake (`pid` in CONNECT, the client's `pid` + `offset`).
//! - What a namespace does is an [`App`]: the product's is the hub bridge in
//!   `drivers/socketio`, the conformance fixture (`examples/socketio_conformance.rs`) has its own.
//!
//! Why not socketioxide's `SocketIo` on top: its CONNECT reply cannot carry the `pid` that
//! the official client needs for connection state recovery, and its emit serializes per
//! socket, while a hub message is encoded once for every subscriber.

mod connect_timeout;
mod engine;
pub mod engineio;
mod http;

pub use crate::config::SocketIoConfig;
pub use engineio::SendError;
pub use http::SocketIo;
pub use packet::{Event, Outgoing};
pub use tidings_proto::socketio as packet;

use bytes::Bytes;
use engineio::CloseReason;
use serde_json::value::RawValue;
use std::sync::Arc;

type EioSocket = engineio::Socket<engine::Engine>;

/// What serves the namespaces: decides who may connect and handles each connection.
pub trait App: Send + Sync + 'static {
    /// A client asks to connect to a namespace. Nothing may be sent before the layer sends
    /// the CONNECT reply; use [`Handler::on_connected`] for that.
    fn connect(&self, req: ConnectRequest<'_>) -> Result<Accepted, Refusal>;
}

/// One client's connection to one namespace.
pub trait Handler: Send + 'static {
    /// The CONNECT reply has been queued; the handler may now send.
    fn on_connected(&mut self) {}
    /// The client emitted an event. Do not call [`SocketRef::disconnect`] from here for this
    /// same namespace; return and let the writer or a task do it.
    fn on_event(&mut self, event: Event);
    /// The namespace connection ended (the handler is dropped right after).
    fn on_disconnect(&mut self, reason: Disconnect);
    /// The transport is about to send: queue what is pending (with [`SocketRef::try_send`]
    /// until it says `Full`). A handler with its own queue wakes the transport with
    /// [`SocketRef::waker`] and fills here, instead of running a task per connection.
    fn fill(&mut self) {}
}

/// A namespace connection request.
pub struct ConnectRequest<'a> {
    pub namespace: &'a str,
    /// The handshake `auth` object (raw JSON), if the client sent one.
    pub auth: Option<&'a RawValue>,
    /// Connection state recovery: the session id the client held, and the offset of the last
    /// event it received (`None` if it received none).
    pub recover: Option<(String, Option<String>)>,
    /// Where to send packets for this namespace connection.
    pub socket: SocketRef,
    /// The client's address (from the Engine.IO handshake), for the login limits.
    pub peer: Option<std::net::IpAddr>,
}

/// An accepted namespace connection.
pub struct Accepted {
    pub handler: Box<dyn Handler>,
    /// The Socket.IO session id (`socket.id` on the client).
    pub sid: String,
    /// Connection state recovery id; `None` when recovery is off.
    pub pid: Option<String>,
}

/// A refused namespace connection: sent as CONNECT_ERROR `{"message", "data"?}`.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub message: String,
    /// Raw JSON for the error's `data`.
    pub data: Option<String>,
}

impl Refusal {
    /// The reference server's refusal of an unknown namespace.
    pub fn invalid_namespace() -> Self {
        Refusal {
            message: "Invalid namespace".into(),
            data: None,
        }
    }
}

/// Why a namespace connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Disconnect {
    /// The client sent DISCONNECT for this namespace: it left on purpose.
    ClientLeft,
    /// The server disconnected it ([`SocketRef::disconnect`]).
    ServerLeft,
    /// The underlying connection ended (closed, lost, heartbeat timeout, bad packet, shutdown):
    /// the client will usually reconnect.
    Transport(String),
}

/// A handle on one namespace connection, to send packets to it.
#[derive(Clone)]
pub struct SocketRef {
    eio: Arc<EioSocket>,
    namespace: Arc<str>,
}

impl std::fmt::Debug for SocketRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SocketRef")
            .field("eio", &self.eio.id())
            .field("namespace", &self.namespace)
            .finish()
    }
}

impl SocketRef {
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The Engine.IO transport in use (`polling` or `websocket`).
    pub fn transport(&self) -> &'static str {
        match self.eio.transport() {
            engineio::Transport::Polling => "polling",
            engineio::Transport::WebSocket => "websocket",
        }
    }

    /// Queues a packet (its text and attachments together) without waiting.
    pub fn try_send(&self, packet: Outgoing) -> Result<(), SendError> {
        self.eio.try_send(&packet.text, packet.attachments)
    }

    /// Queues a packet whose text is shared (copied, not re-encoded) and attachments.
    pub fn try_send_shared(&self, text: &str, attachments: &[Bytes]) -> Result<(), SendError> {
        self.eio.try_send(text, attachments.to_vec())
    }

    /// Queues an event: `args_json` is the whole array, event name first.
    pub fn emit(&self, args_json: &str, attachments: Vec<Bytes>) -> Result<(), SendError> {
        self.try_send(packet::event(&self.namespace, args_json, attachments))
    }

    /// Acknowledges the client's event `id` with the JSON array `args_json`.
    pub fn ack(&self, id: i64, args_json: &str, attachments: Vec<Bytes>) -> Result<(), SendError> {
        self.try_send(packet::ack(&self.namespace, id, args_json, attachments))
    }

    /// Ends this namespace connection from the server side (DISCONNECT packet); the handler's
    /// `on_disconnect` runs with [`Disconnect::ServerLeft`].
    pub fn disconnect(&self) {
        let _ = self.try_send(packet::disconnect(&self.namespace));
        engine::remove_namespace(&self.eio, &self.namespace, Disconnect::ServerLeft);
    }

    /// Closes the whole connection (every namespace on it); the client may reconnect.
    pub fn close_connection(&self) {
        self.eio.close(CloseReason::ForcedClose);
    }

    /// Notifying this makes the transport call [`Handler::fill`] soon.
    pub fn waker(&self) -> Arc<tokio::sync::Notify> {
        self.eio.waker().clone()
    }

    /// Whether the connection is closed.
    pub fn is_closed(&self) -> bool {
        self.eio.is_closed()
    }
}
