//! The HTTP listener: one port for WebSocket upgrades, the HTTP API and the web pages.
//!
//! Each accepted socket is served by hyper's HTTP/1.1 connection with upgrades enabled; a
//! request is routed by path. On shutdown, idle keep-alive connections are closed gracefully
//! and upgraded connections finish through their own drivers.

use super::{metrics, pages, Shared};
use crate::drivers::{api, fallback};
use crate::listen::{ByteStream, Peer};
use crate::transports::http::{json, respond, text, Body};
use crate::transports::ws;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::sync::Arc;

/// Serves one HTTP/1.1 connection (with upgrades) until it ends or shutdown begins.
pub(super) async fn serve_connection(stream: impl ByteStream, _peer: Peer, shared: Arc<Shared>) {
    let shutdown = shared.shutdown.clone();
    let service = service_fn(move |req| route(req, shared.clone()));
    let conn = hyper::server::conn::http1::Builder::new()
        .max_buf_size(64 * 1024)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = shutdown.cancelled() => {
            // Finishes the request in flight, then closes; upgraded sockets live on
            // in their drivers, which say their own goodbye.
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

async fn route(
    mut req: Request<Incoming>,
    shared: Arc<Shared>,
) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_owned();
    let resp = match (req.method(), path.as_str()) {
        (&Method::GET, "/ws") if ws::is_upgrade(&req) => {
            upgrade(&mut req, &shared, Endpoint::Native)
        }
        (&Method::GET, "/echo") if ws::is_upgrade(&req) => {
            upgrade(&mut req, &shared, Endpoint::Echo)
        }
        (&Method::GET, "/stomp") if ws::is_upgrade(&req) => shared.broker.upgrade(&mut req),
        (_, "/stomp") => text(
            StatusCode::UPGRADE_REQUIRED,
            "STOMP over WebSocket: subprotocols v12.stomp, v11.stomp, v10.stomp\n",
        ),
        (_, "/ws" | "/echo") => text(
            StatusCode::UPGRADE_REQUIRED,
            "this endpoint speaks WebSocket\n",
        ),
        (_, p) if p == "/socket.io" || p.starts_with("/socket.io/") => match &shared.socketio {
            Some(sio) => sio.handle(req).await,
            None => text(StatusCode::NOT_FOUND, "socket.io is disabled\n"),
        },
        (&Method::GET, "/healthz") => json(StatusCode::OK, r#"{"status":"ok"}"#.to_owned()),
        (_, p) if p == "/api/publish" || p.starts_with("/api/publish/") => {
            api::publish(req, &shared.api).await
        }
        (_, p) if shared.sockjs.matches(p) => shared.sockjs.handle(req).await,
        (_, "/sse") => fallback::handle(req, &shared.fallbacks, fallback::Transport::Sse).await,
        (_, "/poll") => fallback::handle(req, &shared.fallbacks, fallback::Transport::Poll).await,
        (_, "/stream") => {
            fallback::handle(req, &shared.fallbacks, fallback::Transport::Stream).await
        }
        (&Method::GET, "/api/topics") => api::topics(&shared.api),
        (&Method::GET, p) if p.starts_with("/api/history/") => api::history(&req, &shared.api),
        (&Method::GET, p) if p.starts_with("/api/presence/") => api::presence(&req, &shared.api),
        (&Method::GET, "/metrics") => metrics::render(&shared),
        (&Method::GET, p) => match pages::find(p) {
            Some(page) => respond(
                StatusCode::OK,
                page.content_type,
                Bytes::from_static(page.body),
            ),
            None => text(StatusCode::NOT_FOUND, "not found\n"),
        },
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    };
    Ok(resp)
}

enum Endpoint {
    Native,
    Echo,
}

fn upgrade(
    req: &mut Request<Incoming>,
    shared: &Arc<Shared>,
    endpoint: Endpoint,
) -> Response<Body> {
    match ws::upgrade(req, &shared.websocket) {
        Err(refusal) => refusal.map(BodyExt::boxed),
        Ok((resp, pending)) => {
            use futures::FutureExt;
            let tasks = shared.tasks.clone();
            let shared = shared.clone();
            // `then`, not one async block: the pending upgrade and the driver are states of
            // one enum, so the pending upgrade's room is not kept for the connection's life;
            // the driver is boxed so the task does not reserve room for the larger of two.
            let task = pending.accept().then(move |conn| async move {
                let Some(conn) = conn else {
                    return;
                };
                match endpoint {
                    Endpoint::Echo => {
                        Box::pin(ws::echo::serve(conn, shared.shutdown.clone())).await
                    }
                    Endpoint::Native => {
                        Box::pin(crate::drivers::json_ws::serve(conn, shared.native.clone()))
                            .await
                            .log()
                    }
                }
            });
            // The upgraded connection keeps the HTTP connection's span (listener, peer).
            tasks.spawn(tracing::Instrument::in_current_span(task));
            resp.map(BodyExt::boxed)
        }
    }
}
