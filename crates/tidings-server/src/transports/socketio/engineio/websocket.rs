//! Engine.IO over WebSocket, through the `transports/ws` seam (yawc: small buffers,
//! permessage-deflate when the client offers it and `compression` allows).
//!
//! A direct connect (no `sid`) opens a session and carries it. An upgrade (`sid` of a
//! long-polling session) first probes: `2probe` -> `3probe`, the pending long-poll gets a
//! NOOP so the client can pause polling, then the client's `5` hands the session over.
//! Anything else during the probe, or no `5` within the upgrade timeout, closes only this
//! WebSocket; the session stays on long-polling.

use super::socket::{Beat, CloseReason, Socket, Transport};
use super::{Handler, Inner, UPGRADE_TIMEOUT};
use crate::transports::http::Body;
use crate::transports::ws::{self, Close, OutFrame, WsConn, WsMessage};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Request, Response};
use std::sync::Arc;
use std::time::Duration;
use tidings_proto::engineio::{decode_packet, Packet};
use tokio::time::Instant;

/// Answers the upgrade request and spawns the session's WebSocket task; `socket` is the
/// long-polling session to take over, `None` for a direct connect.
pub(super) fn upgrade<H: Handler>(
    req: &mut Request<Incoming>,
    inner: &Arc<Inner<H>>,
    socket: Option<Arc<Socket<H>>>,
) -> Response<Body> {
    let from = super::peer_ip(req);
    match ws::upgrade(req, &inner.options.ws) {
        Err(refusal) => refusal.map(BodyExt::boxed),
        Ok((resp, pending)) => {
            use futures::FutureExt;
            let inner = inner.clone();
            let tasks = inner.tasks.clone();
            // `then`: the pending upgrade and the session loop are states of one future, so
            // an idle connection does not keep the pending upgrade's room (see ws::serve).
            let task = pending.accept().then(move |conn| async move {
                let Some(conn) = conn else {
                    return;
                };
                // Not boxed: the session's future lives in the task's own allocation (one
                // allocation fewer per connection, measured with heaptrack).
                match socket {
                    None => direct(conn, inner, from).await,
                    Some(socket) => probe(conn, socket).await,
                }
            });
            // The upgraded connection keeps the HTTP connection's span (listener, peer).
            tasks.spawn(tracing::Instrument::in_current_span(task));
            resp.map(BodyExt::boxed)
        }
    }
}

/// A session opened over WebSocket: the OPEN packet, then the session.
async fn direct<H: Handler>(
    mut conn: WsConn,
    inner: Arc<Inner<H>>,
    from: Option<std::net::IpAddr>,
) {
    let Some(socket) = inner.open(Transport::WebSocket, from) else {
        return conn.close(Close::Policy, "too many sessions").await;
    };
    let open = inner.open_packet(socket.id(), Transport::WebSocket);
    if conn
        .send_all([OutFrame::Text(Bytes::from(open))])
        .await
        .is_err()
    {
        socket.close(CloseReason::TransportError);
        socket.forget();
        return;
    }
    inner.handler.on_open(&socket);
    carry(conn, socket).await
}

/// The upgrade's probe phase (see the module docs).
async fn probe<H: Handler>(mut conn: WsConn, socket: Arc<Socket<H>>) {
    let deadline = Instant::now() + UPGRADE_TIMEOUT;
    let mut probed = false;
    loop {
        let msg = tokio::select! {
            m = conn.recv() => m,
            // The session may end meanwhile (ping timeout on polling): look now and then.
            _ = tokio::time::sleep(Duration::from_millis(100)) => {
                if socket.is_closed() || Instant::now() >= deadline {
                    break;
                }
                continue;
            }
        };
        let Ok(WsMessage::Text(text)) = msg else {
            if let Ok(WsMessage::Control) = msg {
                continue;
            }
            break;
        };
        match std::str::from_utf8(&text).map(decode_packet) {
            Ok(Ok(Packet::Ping("probe"))) if !probed && socket.begin_upgrade() => {
                probed = true;
                let pong = OutFrame::Text(Bytes::from_static(b"3probe"));
                if conn.send_all([pong]).await.is_err() {
                    break;
                }
            }
            Ok(Ok(Packet::Upgrade)) if probed && socket.finish_upgrade() => {
                return carry(conn, socket).await;
            }
            _ => break,
        }
    }
    if probed {
        socket.abort_upgrade();
    }
    conn.close(Close::Normal, "").await
}

/// Carries a session over its WebSocket until it ends: the client's packets in, what the
/// session queues out (one flush per batch), and the heartbeat.
async fn carry<H: Handler>(mut conn: WsConn, socket: Arc<Socket<H>>) {
    loop {
        // A fresh Vec each round (it allocates only when there is something to send): an
        // idle connection keeps no buffer from its last burst.
        let mut frames = Vec::new();
        let closed = socket.drain_frames(&mut frames);
        if !frames.is_empty() && conn.send_all(frames).await.is_err() {
            socket.close(CloseReason::TransportError);
            break;
        }
        if closed.is_some() {
            conn.close(Close::Normal, "").await;
            break;
        }
        let next = match socket.beat(Instant::now()) {
            Beat::Wait(at) => at,
            Beat::Acted | Beat::Over => continue,
        };
        tokio::select! {
            m = conn.recv() => match m {
                Ok(WsMessage::Text(text)) => match std::str::from_utf8(&text).map(decode_packet) {
                    Ok(Ok(packet)) => socket.receive(packet),
                    _ => socket.close(CloseReason::ParseError),
                },
                Ok(WsMessage::Binary(data)) => socket.receive(Packet::Binary(Vec::from(data))),
                Ok(WsMessage::Control) => {}
                Err(_) => {
                    socket.close(CloseReason::TransportClose);
                    break;
                }
            },
            _ = socket.wake.notified() => {}
            _ = tokio::time::sleep_until(next) => {}
        }
    }
    socket.forget();
}
