//! The Socket.IO session layer on one Engine.IO connection: namespace connections, the
//! connect timeout, and dispatch of decoded packets to each namespace's [`Handler`].
//!
//! ```text
//! Engine.IO open ──(connect timeout)──> closed
//!      │ CONNECT /nsp {auth}
//!      ├─ App refuses ──> CONNECT_ERROR /nsp        (the connection stays open)
//!      └─ App accepts ──> CONNECT /nsp {sid, pid} ──> EVENT… ──> DISCONNECT /nsp
//!                                                    (last namespace gone: connection closed)
//! ```
//! A packet that does not parse closes the connection (the protocol's answer); a packet for
//! a namespace the client is not connected to is ignored.

use super::connect_timeout::ConnectTimeouts;
use super::engineio::{self, CloseReason};
use super::packet::{self, PayloadError};
use super::{Accepted, App, ConnectRequest, Disconnect, EioSocket, Handler, SocketRef};
use bytes::Bytes;
use socketioxide_core::packet::{Packet, PacketData};
use socketioxide_core::parser::{Parse, ParseConfig, ParseError, ParserState};
use socketioxide_core::{Str, Value};
use socketioxide_parser_common::CommonParser;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

type SharedHandler = Arc<Mutex<Box<dyn Handler>>>;

/// Per Engine.IO connection state (kept in the Engine.IO socket's `data`).
#[derive(Default)]
pub(crate) struct SocketState {
    /// Connected namespaces. A handler sits behind its own lock so that one namespace's
    /// event runs without holding the map (a handler may disconnect another namespace).
    namespaces: Mutex<HashMap<Arc<str>, SharedHandler>>,
    /// Binary attachments of a packet still being received.
    parser: ParserState,
    /// A namespace was connected at least once: the connect timeout no longer applies.
    pub(super) connected_once: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The Engine.IO handler: see the module docs.
pub(crate) struct Engine {
    app: Arc<dyn App>,
    /// Namespaces one connection may join at once (`socketio.max_namespaces`).
    max_namespaces: usize,
    connect_timeouts: Arc<ConnectTimeouts>,
    parse: ParseConfig,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").finish_non_exhaustive()
    }
}

impl Engine {
    pub(crate) fn new(
        app: Arc<dyn App>,
        connect_timeout: Duration,
        max_payload: usize,
        max_namespaces: usize,
    ) -> Self {
        Engine {
            app,
            max_namespaces,
            connect_timeouts: ConnectTimeouts::new(connect_timeout),
            parse: ParseConfig {
                max_incoming_binary_buf_size: max_payload,
                max_incoming_binaries: 64,
                packet_completion_timeout: Duration::from_secs(10),
            },
        }
    }

    fn on_packet(&self, packet: Packet, socket: &Arc<EioSocket>) {
        let ns: Arc<str> = Arc::from(packet.ns.as_str());
        match packet.inner {
            PacketData::Connect(auth) => self.connect(ns, auth, socket),
            PacketData::Disconnect => {
                remove_namespace(socket, &ns, Disconnect::ClientLeft);
                if lock(&socket.data.namespaces).is_empty() {
                    // The client left its last namespace: it waits for nothing more.
                    socket.close(CloseReason::TransportClose);
                }
            }
            PacketData::Event(value, ack) | PacketData::BinaryEvent(value, ack) => {
                let Some(handler) = lock(&socket.data.namespaces).get(&ns).cloned() else {
                    return; // not connected to that namespace: ignored, as the reference server does
                };
                let (text, bins) = match value {
                    Value::Str(text, bins) => (text, bins.map(Vec::from).unwrap_or_default()),
                    Value::Bytes(_) => return socket.close(CloseReason::ParseError),
                };
                match packet::decode_event(text.as_str(), bins, ack) {
                    Ok(event) => lock(&handler).on_event(event),
                    Err(e) => {
                        tracing::debug!(sid = %socket.id(), "socket.io: {e}; closing");
                        socket.close(CloseReason::ParseError);
                    }
                }
            }
            // The server never asks for acknowledgements, so a client's ACK answers nothing.
            PacketData::EventAck(..) | PacketData::BinaryAck(..) => {}
            PacketData::ConnectError(_) => socket.close(CloseReason::ParseError),
        }
    }

    fn connect(&self, ns: Arc<str>, auth: Option<Value>, socket: &Arc<EioSocket>) {
        {
            let joined = lock(&socket.data.namespaces);
            if joined.contains_key(&ns) {
                return; // a duplicate CONNECT is ignored
            }
            if joined.len() >= self.max_namespaces {
                drop(joined);
                let message = format!(
                    "too many namespaces on this connection (at most {})",
                    self.max_namespaces
                );
                let socket_ref = SocketRef {
                    eio: socket.clone(),
                    namespace: ns.clone(),
                };
                let _ = socket_ref.try_send(packet::connect_error(&ns, &message, None));
                return;
            }
        }
        let auth_text = match &auth {
            Some(Value::Str(s, _)) => Some(s.as_str()),
            Some(Value::Bytes(_)) => return socket.close(CloseReason::ParseError),
            None => None,
        };
        let auth = match packet::decode_auth(auth_text) {
            Ok(a) => a,
            Err(PayloadError::AuthNotAnObject) | Err(_) => {
                return socket.close(CloseReason::ParseError)
            }
        };
        let recover = auth.as_deref().and_then(recovery_fields);
        let socket_ref = SocketRef {
            eio: socket.clone(),
            namespace: ns.clone(),
        };
        let req = ConnectRequest {
            namespace: &ns,
            auth: auth.as_deref(),
            recover,
            socket: socket_ref.clone(),
            peer: socket.peer(),
        };
        match self.app.connect(req) {
            Err(refusal) => {
                let _ = socket_ref.try_send(packet::connect_error(
                    &ns,
                    &refusal.message,
                    refusal.data.as_deref(),
                ));
            }
            Ok(Accepted { handler, sid, pid }) => {
                let handler: SharedHandler = Arc::new(Mutex::new(handler));
                socket.data.connected_once.store(true, Ordering::Relaxed);
                if socket_ref
                    .try_send(packet::connect(&ns, &sid, pid.as_deref()))
                    .is_err()
                {
                    lock(&handler).on_disconnect(Disconnect::Transport("closed".into()));
                    return;
                }
                lock(&socket.data.namespaces).insert(ns, handler.clone());
                lock(&handler).on_connected();
                if socket.is_closed() {
                    // Closed while connecting: on_disconnect may have run before the insert.
                    remove_namespace(socket, &socket_ref.namespace, transport_gone());
                }
            }
        }
    }

    fn parse_error(&self, e: ParseError, socket: &Arc<EioSocket>) {
        if matches!(e, ParseError::NeedsMoreBinaryData) {
            return;
        }
        tracing::debug!(sid = %socket.id(), "socket.io: bad packet ({e}); closing");
        socket.close(CloseReason::ParseError);
    }
}

fn transport_gone() -> Disconnect {
    Disconnect::Transport("transport close".into())
}

/// `pid` and `offset` of a recovering client's auth object.
fn recovery_fields(auth: &serde_json::value::RawValue) -> Option<(String, Option<String>)> {
    #[derive(serde::Deserialize)]
    struct Fields {
        pid: Option<String>,
        offset: Option<String>,
    }
    let f: Fields = serde_json::from_str(auth.get()).ok()?;
    f.pid.map(|pid| (pid, f.offset))
}

/// Removes a namespace connection and tells its handler why.
pub(crate) fn remove_namespace(socket: &EioSocket, ns: &str, reason: Disconnect) {
    let Some(handler) = lock(&socket.data.namespaces).remove(ns) else {
        return;
    };
    // The handler may be running (it asked for this itself): then finish in a task.
    let busy = match handler.try_lock() {
        Ok(mut h) => {
            h.on_disconnect(reason.clone());
            false
        }
        Err(_) => true,
    };
    if busy {
        tokio::spawn(async move { lock(&handler).on_disconnect(reason) });
    }
}

/// Whether a connection has no namespace (shutdown closes those itself).
pub(crate) fn has_no_namespace(socket: &EioSocket) -> bool {
    lock(&socket.data.namespaces).is_empty()
}

impl engineio::Handler for Engine {
    type Data = SocketState;

    fn on_open(&self, socket: &Arc<EioSocket>) {
        self.connect_timeouts.watch(socket);
    }

    fn on_close(&self, socket: &Arc<EioSocket>, reason: CloseReason) {
        let names: Vec<Arc<str>> = lock(&socket.data.namespaces).keys().cloned().collect();
        for ns in names {
            remove_namespace(socket, &ns, Disconnect::Transport(reason.as_str().into()));
        }
    }

    fn on_message(&self, socket: &Arc<EioSocket>, text: &str) {
        let msg = Str::copy_from_slice(text);
        match CommonParser.decode_str(&self.parse, &socket.data.parser, msg) {
            Ok(packet) => self.on_packet(packet, socket),
            Err(e) => self.parse_error(e, socket),
        }
    }

    fn on_drain(&self, socket: &Arc<EioSocket>) {
        let handlers: Vec<SharedHandler> =
            lock(&socket.data.namespaces).values().cloned().collect();
        for h in handlers {
            lock(&h).fill();
        }
    }

    fn on_binary(&self, socket: &Arc<EioSocket>, data: Bytes) {
        match CommonParser.decode_bin(&self.parse, &socket.data.parser, data) {
            Ok(packet) => self.on_packet(packet, socket),
            Err(e) => self.parse_error(e, socket),
        }
    }
}
