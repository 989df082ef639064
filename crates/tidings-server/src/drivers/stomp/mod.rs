//! The STOMP 1.0/1.1/1.2 broker: STOMP over TCP (its own listener, 61613 by default) and over
//! WebSocket (`/stomp` on the HTTP port, subprotocols `v10.stomp`, `v11.stomp`, `v12.stomp`).
//!
//! - `destination`: `/topic/<name>` and `/queue/<name>` to hub names;
//! - `session`: the protocol state of one connection (frames in, hub operations, replies);
//! - `deliver`: hub deliveries as MESSAGE frames (the shared part encoded once);
//! - `conn`: the connection loop shared by both transports (heart-beats, coalesced writes).
//!
//! The broker's behaviour for users is `docs/stomp.md`.

mod conn;
mod deliver;
mod destination;
mod session;

use crate::http::Body;
use crate::runtime::Shared;
use crate::ws;
use hyper::body::Incoming;
use hyper::{Request, Response};
use std::sync::Arc;
use tidings_proto::stomp::Version;
use tokio::net::TcpListener;

/// WebSocket subprotocols, in our order of preference.
const SUBPROTOCOLS: [&str; 3] = ["v12.stomp", "v11.stomp", "v10.stomp"];

/// Accepts STOMP-over-TCP connections until shutdown.
pub(crate) async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    super::accept_loop(listener, shared, "stomp", |stream, shared| {
        conn::run(conn::Transport::Tcp(stream), shared)
    })
    .await
}

/// Runs a STOMP connection over a message carrier (a SockJS session): `incoming` brings what
/// the client sent, frames go to `outgoing` one message each; ends when `incoming` closes.
pub(crate) async fn run_over_messages(
    incoming: tokio::sync::mpsc::Receiver<bytes::Bytes>,
    outgoing: Arc<tidings_core::Outbox>,
    shared: Arc<Shared>,
) {
    conn::run(conn::Transport::Channel { incoming, outgoing }, shared).await
}

/// Runs STOMP over an already accepted WebSocket (SockJS's raw `/sockjs-stomp/websocket`).
pub(crate) async fn serve_ws(conn: crate::ws::WsConn, shared: Arc<Shared>) {
    conn::run(conn::Transport::Ws(Box::new(conn)), shared).await
}

/// Answers a WebSocket upgrade on `/stomp`, negotiating the subprotocol.
pub(crate) fn upgrade(req: &mut Request<Incoming>, shared: &Arc<Shared>) -> Response<Body> {
    debug_assert!(SUBPROTOCOLS
        .iter()
        .all(|p| Version::ALL.iter().any(|v| v.subprotocol() == *p)));
    match ws::upgrade_with_subprotocol(req, &shared.config.websocket, &SUBPROTOCOLS) {
        Err(refusal) => refusal.map(http_body_util::BodyExt::boxed),
        Ok((resp, pending, _protocol)) => {
            let shared = shared.clone();
            shared.clone().tasks.spawn(async move {
                if let Some(conn) = pending.accept().await {
                    conn::run(conn::Transport::Ws(Box::new(conn)), shared).await;
                }
            });
            resp.map(http_body_util::BodyExt::boxed)
        }
    }
}
