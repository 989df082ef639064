//! The HTTP listener: one port for WebSocket upgrades, the HTTP API and the web pages.
//!
//! Each accepted socket is served by hyper's HTTP/1.1 connection with upgrades enabled; a
//! request is routed by path. On shutdown, idle keep-alive connections are closed gracefully
//! and upgraded connections finish through their own drivers.

use super::forward::Diverted;
use super::{admin, metrics, pages, Shared};
use crate::drivers::{api, fallback};
use crate::listen::{ByteStream, Held, HoldReply, Peer};
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
///
/// The request head must arrive within the handshake timeout (slowloris); hyper closes a
/// connection that stalls in it.
pub(super) async fn serve_connection(stream: impl ByteStream, peer: Peer, shared: Arc<Shared>) {
    serve(stream, peer, shared, false).await
}

/// Serves a request another node forwarded through Redis (`forward/`): answered here, never
/// forwarded again.
pub(super) async fn serve_forwarded(stream: impl ByteStream, peer: Peer, shared: Arc<Shared>) {
    serve(stream, peer, shared, true).await
}

async fn serve(stream: impl ByteStream, peer: Peer, shared: Arc<Shared>, forwarded: bool) {
    let shutdown = shared.shutdown.clone();
    let header_timeout = shared.handshake_timeout;
    // A `/ws` upgrade holds its 101 back to send it with the hello (`listen::held_reply`).
    let (stream, hold) = Held::new(stream);
    let service = service_fn(move |mut req: Request<Incoming>| {
        req.extensions_mut().insert(peer);
        req.extensions_mut().insert(hold.clone());
        if forwarded {
            req.extensions_mut().insert(super::forward::Forwarded);
        }
        route(req, shared.clone())
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .max_buf_size(64 * 1024)
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(header_timeout)
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

pub(super) async fn route(
    mut req: Request<Incoming>,
    shared: Arc<Shared>,
) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_owned();
    let on_reserve = req.extensions().get::<Peer>().is_some_and(|p| p.on_reserve);
    let max_body = shared.api.max_body;
    let announced = req
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let socketio = path == "/socket.io" || path.starts_with("/socket.io/");
    let resp = match (req.method(), path.as_str()) {
        // A connection admitted past the connection limit may only look at the server.
        (_, p) if on_reserve && p != "/healthz" && p != "/metrics" => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many connections: only /healthz and /metrics are answered\n",
        ),
        // A body announced larger than any endpoint takes is refused before a byte of it is
        // waited for (Socket.IO checks its own `max_payload`).
        _ if !socketio && announced.is_some_and(|n| n > max_body as u64) => text(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("request body larger than {max_body} bytes\n"),
        ),
        (&Method::GET | &Method::CONNECT, "/ws") if ws::is_upgrade(&req) => {
            // A token on the upgrade URL (browsers' WebSocket cannot set headers) is checked
            // before upgrading: a refused one gets a plain 401, not a socket.
            // So are the topics it names (`drivers/url_subscribe.rs`): what cannot be a
            // subscribe request is a plain 400.
            match crate::drivers::url_subscribe::requests(req.uri().query()) {
                Err(e) => text(StatusCode::BAD_REQUEST, &format!("{e}\n")),
                Ok(subscribe) => match crate::drivers::credentials::of_request(&req) {
                    None => upgrade(&mut req, &shared, Endpoint::Native(None, subscribe)),
                    Some(token) => {
                        let from = req.extensions().get::<Peer>().map(|p| p.addr.ip());
                        match shared.native.auth.token(&token, from) {
                            Ok(who) => {
                                upgrade(&mut req, &shared, Endpoint::Native(Some(who), subscribe))
                            }
                            Err(e) => text(StatusCode::UNAUTHORIZED, &format!("{e}\n")),
                        }
                    }
                },
            }
        }
        (&Method::GET | &Method::CONNECT, "/echo") if ws::is_upgrade(&req) => {
            upgrade(&mut req, &shared, Endpoint::Echo)
        }
        (&Method::GET | &Method::CONNECT, "/stomp") if ws::is_upgrade(&req) => {
            shared.broker.upgrade(&mut req)
        }
        (_, "/stomp") => text(
            StatusCode::UPGRADE_REQUIRED,
            "STOMP over WebSocket: subprotocols v12.stomp, v11.stomp, v10.stomp\n",
        ),
        (_, "/ws" | "/echo") => text(
            StatusCode::UPGRADE_REQUIRED,
            "this endpoint speaks WebSocket\n",
        ),
        (_, p) if p == "/socket.io" || p.starts_with("/socket.io/") => match &shared.socketio {
            Some(sio) => match divert(req, &shared).await {
                Diverted::Answered(resp) => resp,
                Diverted::Local(req) => sio.handle(req).await,
            },
            None => text(StatusCode::NOT_FOUND, "socket.io is disabled\n"),
        },
        (&Method::GET, "/healthz") => healthz(&shared).await,
        (_, p) if p == "/api/publish" || p.starts_with("/api/publish/") => {
            api::publish(req, &shared.api).await
        }
        (_, p) if shared.sockjs.matches(p) => match divert(req, &shared).await {
            Diverted::Answered(resp) => resp,
            Diverted::Local(req) => shared.sockjs.handle(req).await,
        },
        (_, "/sse") => fallback::handle(req, &shared.fallbacks, fallback::Transport::Sse).await,
        (_, "/poll") => fallback::handle(req, &shared.fallbacks, fallback::Transport::Poll).await,
        (_, "/stream") => {
            fallback::handle(req, &shared.fallbacks, fallback::Transport::Stream).await
        }
        (_, p) if p.starts_with("/api/admin/") => admin::handle(req, &shared).await,
        (&Method::GET, "/admin") if !shared.admin.enabled() => text(
            StatusCode::NOT_FOUND,
            "the admin dashboard is off: configure [admin] (docs/configuration.md)\n",
        ),
        (&Method::GET, "/api/topics") => api::topics(&req, &shared.api),
        (&Method::GET, p) if p.starts_with("/api/history/") => {
            api::history(&req, &shared.api).await
        }
        (&Method::GET, p) if p.starts_with("/api/presence/") => api::presence(&req, &shared.api),
        (&Method::GET, "/metrics") => match api::metrics_refusal(&req, &shared.api) {
            Some(refusal) => refusal,
            None => metrics::render(&shared),
        },
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

/// In a cluster, a session request for another node goes there (`forward/`).
async fn divert(req: Request<Incoming>, shared: &Shared) -> Diverted {
    match &shared.forward {
        Some(forwarder) => forwarder.divert(req, shared).await,
        None => Diverted::Local(req),
    }
}

enum Endpoint {
    /// With the identity of a token given on the upgrade URL, and the `subscribe` requests
    /// its topics make.
    Native(Option<tidings_core::Identity>, Vec<Bytes>),
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
            if matches!(endpoint, Endpoint::Native(..)) {
                // The driver writes its hello at once (or a close when it cannot open a
                // session), so the 101 can wait for it: one write instead of two.
                if let Some(hold) = req.extensions().get::<HoldReply>() {
                    hold.hold_next_write();
                }
            }
            let tasks = shared.tasks.clone();
            let shared = shared.clone();
            let peer = req.extensions().get::<Peer>().map(|p| p.addr);
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
                    Endpoint::Native(who, subscribe) => {
                        let native = shared.native.clone();
                        let first = Box::new(crate::drivers::json_ws::First { who, subscribe });
                        Box::pin(crate::drivers::json_ws::serve(conn, native, peer, first))
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

/// `/healthz`: `{"status":"ok"}`; with the Redis engine also whether Redis answers and this
/// node's pub/sub connection is up (503 `{"status":"degraded",...}` when not).
async fn healthz(shared: &Shared) -> Response<Body> {
    let Some(remote) = &shared.api.remote else {
        return json(StatusCode::OK, r#"{"status":"ok"}"#.to_owned());
    };
    let (status, body) = match remote.health().await {
        Ok(()) => (
            StatusCode::OK,
            serde_json::json!({"status": "ok", "engine": "redis", "redis": "up"}),
        ),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"status": "degraded", "engine": "redis", "redis": why}),
        ),
    };
    json(status, body.to_string())
}
