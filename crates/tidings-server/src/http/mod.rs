//! The HTTP listener: one port for WebSocket upgrades, the HTTP API and the web pages.
//!
//! Each accepted socket is served by hyper's HTTP/1.1 connection with upgrades enabled; a
//! request is routed by path. On shutdown, idle keep-alive connections are closed gracefully
//! and upgraded connections finish through their own drivers.

mod api;
mod fallback;
pub(crate) use fallback::message_json;
pub(crate) mod streamed;

use crate::drivers;
use crate::runtime::Shared;
use crate::ws;
use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Every response body: whole (`Full`) or streamed (SSE, `/stream`), boxed to one type.
pub(crate) type Body = BoxBody<Bytes, Infallible>;

/// Accepts connections until shutdown.
pub(crate) async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    drivers::accept_loop(listener, shared, "http", serve_connection).await
}

/// Serves one HTTP/1.1 connection (with upgrades) until it ends or shutdown begins.
async fn serve_connection(stream: tokio::net::TcpStream, shared: Arc<Shared>) {
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
        (&Method::GET, "/stomp") if ws::is_upgrade(&req) => {
            drivers::stomp::upgrade(&mut req, &shared)
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
            Some(sio) => sio.handle(req).await.map(BodyExt::boxed),
            None => text(StatusCode::NOT_FOUND, "socket.io is disabled\n"),
        },
        (&Method::GET, "/healthz") => json(StatusCode::OK, r#"{"status":"ok"}"#.to_owned()),
        (&Method::GET, "/") => html(include_str!("../../../../web/index.html")),
        (_, p) if p == "/api/publish" || p.starts_with("/api/publish/") => {
            api::publish(req, &shared).await
        }
        (_, p) if shared.sockjs.matches(p) => crate::sockjs::handle(req, &shared).await,
        (_, "/sse") => fallback::handle(req, &shared, fallback::Transport::Sse).await,
        (_, "/poll") => fallback::handle(req, &shared, fallback::Transport::Poll).await,
        (_, "/stream") => fallback::handle(req, &shared, fallback::Transport::Stream).await,
        (&Method::GET, "/api/topics") => api::topics(&shared),
        (&Method::GET, "/metrics") => metrics(&shared),
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
    match ws::upgrade(req, &shared.config.websocket) {
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
                    Endpoint::Native => Box::pin(drivers::json_ws::serve(conn, shared)).await,
                }
            });
            tasks.spawn(task);
            resp.map(BodyExt::boxed)
        }
    }
}

/// Prometheus text exposition of the hub's counters.
fn metrics(shared: &Shared) -> Response<Body> {
    let s = shared.hub.stats();
    let rows: [(&str, &str, &str, u64); 7] = [
        (
            "tidings_sessions",
            "gauge",
            "Open sessions of every protocol.",
            s.sessions as u64,
        ),
        (
            "tidings_topics",
            "gauge",
            "Topics with state (offsets, history).",
            s.topics as u64,
        ),
        (
            "tidings_subscriptions",
            "gauge",
            "Active subscriptions.",
            s.subscriptions as u64,
        ),
        (
            "tidings_published_total",
            "counter",
            "Messages published.",
            s.published,
        ),
        (
            "tidings_delivered_total",
            "counter",
            "Messages queued for subscribers.",
            s.delivered,
        ),
        (
            "tidings_dropped_total",
            "counter",
            "Messages dropped by the drop-oldest policy.",
            s.dropped,
        ),
        (
            "tidings_slow_consumers_closed_total",
            "counter",
            "Sessions closed as slow consumers.",
            s.slow_consumers_closed,
        ),
    ];
    let mut out = String::new();
    let sockjs = (
        "tidings_sockjs_sessions",
        "gauge",
        "Open SockJS sessions.",
        shared.sockjs.sessions() as u64,
    );
    for (name, kind, help, value) in rows.into_iter().chain([sockjs]).chain(shared.udp.rows()) {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
        ));
    }
    respond(
        StatusCode::OK,
        "text/plain; version=0.0.4",
        Bytes::from(out),
    )
}

pub(crate) fn text(status: StatusCode, body: &str) -> Response<Body> {
    respond(
        status,
        "text/plain; charset=utf-8",
        Bytes::from(body.to_owned()),
    )
}

pub(crate) fn json_bytes(status: StatusCode, body: Bytes) -> Response<Body> {
    respond(status, "application/json", body)
}

pub(crate) fn json(status: StatusCode, body: String) -> Response<Body> {
    respond(status, "application/json", Bytes::from(body))
}

fn html(body: &'static str) -> Response<Body> {
    respond(
        StatusCode::OK,
        "text/html; charset=utf-8",
        Bytes::from_static(body.as_bytes()),
    )
}

fn respond(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Body> {
    let mut resp = Response::new(Full::new(body).boxed());
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    resp
}
