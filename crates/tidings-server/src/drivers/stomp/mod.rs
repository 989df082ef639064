//! The STOMP 1.0/1.1/1.2 broker: STOMP over TCP (its own listener, 61613 by default) and over
//! WebSocket (`/stomp` on the HTTP port, subprotocols `v10.stomp`, `v11.stomp`, `v12.stomp`).
//!
//! - `destination`: `/topic/<name>` and `/queue/<name>` to hub names;
//! - `session`: the protocol state of one connection (frames in, hub operations, replies);
//! - `deliver`: hub deliveries as MESSAGE frames (the shared part encoded once);
//! - `conn`: the connection loop shared by both transports (heart-beats, coalesced writes).
//!
//! The broker's behaviour for users is `docs/stomp.md`.

pub(crate) mod carrier;
mod conn;
mod deliver;
mod destination;
mod session;

use crate::auth::Authenticator;
use crate::config::{StompConfig, WebSocketConfig};
use crate::listen::{ByteStream, Peer};
use crate::transports::http::Body;
use crate::transports::ws::{self, WsConn};
use bytes::Bytes;
use carrier::Carrier;
use hyper::body::Incoming;
use hyper::{Request, Response};
use std::sync::Arc;
use tidings_core::Hub;
use tidings_proto::stomp::Version;
use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;

/// WebSocket subprotocols, in our order of preference.
const SUBPROTOCOLS: [&str; 3] = ["v12.stomp", "v11.stomp", "v10.stomp"];

/// The broker's share of the server: the hub, where its tasks run, and its config slices.
pub(crate) struct Broker {
    pub(crate) hub: Arc<Hub>,
    pub(crate) auth: Arc<dyn Authenticator>,
    pub(crate) tasks: TaskTracker,
    pub(crate) config: StompConfig,
    /// For `/stomp` upgrades (limits, compression, origins).
    pub(crate) websocket: Arc<WebSocketConfig>,
    /// The Redis engine, when topics are shared with other nodes (`None`: in memory).
    pub(crate) remote: crate::engine::Remote,
}

impl Broker {
    /// Serves STOMP over a byte stream (the STOMP listener) until it ends.
    /// What a connection the listener refuses is told: an `ERROR` frame.
    pub(crate) fn refusal(reason: &str) -> Vec<u8> {
        let mut out = bytes::BytesMut::new();
        tidings_proto::stomp::encode_error(
            reason,
            None,
            "",
            tidings_proto::stomp::Version::V1_0,
            &mut out,
        );
        out.to_vec()
    }

    pub(crate) async fn serve_stream(self: Arc<Self>, stream: impl ByteStream, peer: Peer) {
        let transport = conn::Transport::Stream(Box::new(stream));
        conn::run(transport, self, "stomp", Some(peer)).await
    }

    /// Starts a STOMP connection over a message carrier (a SockJS session): what the client
    /// sent goes into the returned sender, frames come out of `outgoing` one message each;
    /// ends when the sender is dropped.
    pub(crate) fn spawn_over_messages(
        self: &Arc<Self>,
        outgoing: Arc<Carrier>,
        inbox: usize,
        peer: Option<std::net::SocketAddr>,
    ) -> mpsc::Sender<Bytes> {
        let peer = peer.map(|addr| Peer {
            addr,
            on_reserve: false,
        });
        let (to_broker, incoming) = mpsc::channel(inbox);
        let transport = conn::Transport::Channel { incoming, outgoing };
        self.tasks
            .spawn(conn::run(transport, self.clone(), "sockjs-stomp", peer));
        to_broker
    }

    /// Runs STOMP over an already accepted WebSocket.
    pub(crate) async fn serve_ws(self: Arc<Self>, conn: WsConn, peer: Option<Peer>) {
        conn::run(conn::Transport::Ws(Box::new(conn)), self, "stomp-ws", peer).await
    }

    /// Answers a WebSocket upgrade on `/stomp`, negotiating the subprotocol.
    pub(crate) fn upgrade(self: &Arc<Self>, req: &mut Request<Incoming>) -> Response<Body> {
        debug_assert!(SUBPROTOCOLS
            .iter()
            .all(|p| Version::ALL.iter().any(|v| v.subprotocol() == *p)));
        match ws::upgrade_with_subprotocol(req, &self.websocket, &SUBPROTOCOLS) {
            Err(refusal) => refusal.map(http_body_util::BodyExt::boxed),
            Ok((resp, pending, _protocol)) => {
                let broker = self.clone();
                let peer = req.extensions().get::<Peer>().copied();
                let task = async move {
                    if let Some(conn) = pending.accept().await {
                        broker.serve_ws(conn, peer).await;
                    }
                };
                self.tasks.spawn(tracing::Instrument::in_current_span(task));
                resp.map(http_body_util::BodyExt::boxed)
            }
        }
    }
}
