//! The conformance fixture for tidings' Socket.IO layer: configured the way the Socket.IO and
//! Engine.IO protocol test suites expect (ping interval 300 ms, ping timeout 200 ms, max
//! payload 1e6, connect timeout 1000 ms, CORS `*`). Not part of the product.
//!
//! - `/socket.io/`: namespaces `/` and `/custom`; on connect the server emits `auth` with the
//!   handshake's auth payload; `message` is echoed as `message-back` (binary attachments
//!   included); `message-with-ack` is acknowledged with its own arguments.
//! - `/engine.io/`: an Engine.IO echo (text and binary).
//!
//! ```sh
//! cargo run -p tidings-server --example socketio_conformance -- 127.0.0.1:3000
//! ```
//! It prints `socketio_conformance: listening on <addr>`.

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::io::Write;
use std::sync::Arc;
use tidings_server::socketio::engineio::{self, CloseReason, EngineIo, Socket};
use tidings_server::socketio::{
    Accepted, App, ConnectRequest, Disconnect, Event, Handler, Refusal, SocketIo, SocketIoConfig,
    SocketRef,
};
use tidings_server::WebSocketConfig;
use tokio_util::task::TaskTracker;

type Body = BoxBody<Bytes, Infallible>;

/// The fixture's namespaces.
struct Fixture;

impl App for Fixture {
    fn connect(&self, req: ConnectRequest<'_>) -> Result<Accepted, Refusal> {
        if req.namespace != "/" && req.namespace != "/custom" {
            return Err(Refusal::invalid_namespace());
        }
        let auth = req.auth.map(|a| a.get().to_owned());
        Ok(Accepted {
            handler: Box::new(Echo {
                socket: req.socket,
                auth: auth.unwrap_or_else(|| "{}".into()),
            }),
            sid: next_sid(),
            pid: None,
        })
    }
}

fn next_sid() -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    format!(
        "fixture-{}",
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
}

struct Echo {
    socket: SocketRef,
    auth: String,
}

impl Handler for Echo {
    fn on_connected(&mut self) {
        let _ = self
            .socket
            .emit(&format!("[\"auth\",{}]", self.auth), Vec::new());
    }

    fn on_event(&mut self, event: Event) {
        let args: Vec<&str> = event.args.iter().map(|a| a.get()).collect();
        match event.name.as_str() {
            "message" => {
                let mut all = vec!["\"message-back\""];
                all.extend(args);
                let _ = self
                    .socket
                    .emit(&format!("[{}]", all.join(",")), event.attachments);
            }
            "message-with-ack" => {
                if let Some(id) = event.ack {
                    let _ =
                        self.socket
                            .ack(id, &format!("[{}]", args.join(",")), event.attachments);
                }
            }
            _ => {}
        }
    }

    fn on_disconnect(&mut self, _reason: Disconnect) {}
}

/// The Engine.IO echo at `/engine.io/`.
#[derive(Debug)]
struct EioEcho;

impl engineio::Handler for EioEcho {
    type Data = ();
    fn on_open(&self, _socket: &Arc<Socket<Self>>) {}
    fn on_close(&self, _socket: &Arc<Socket<Self>>, _reason: CloseReason) {}
    fn on_message(&self, socket: &Arc<Socket<Self>>, text: &str) {
        let _ = socket.try_send(text, Vec::new());
    }
    fn on_binary(&self, socket: &Arc<Socket<Self>>, data: Bytes) {
        let _ = socket.try_send_binary(data);
    }
}

fn fixture_config() -> SocketIoConfig {
    SocketIoConfig {
        ping_interval_ms: 300,
        ping_timeout_ms: 200,
        max_payload: 1_000_000,
        connect_timeout_ms: 1000,
        cors_origins: vec!["*".into()],
        recovery_ms: 0,
        ..SocketIoConfig::default()
    }
}

async fn route(
    req: Request<Incoming>,
    sio: Arc<SocketIo>,
    eio: Arc<EngineIo<EioEcho>>,
) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path();
    if path.starts_with("/socket.io") {
        return Ok(sio.handle(req).await);
    }
    if path.starts_with("/engine.io") {
        let mut resp = eio.handle(req).await;
        resp.headers_mut().insert(
            hyper::header::ACCESS_CONTROL_ALLOW_ORIGIN,
            hyper::header::HeaderValue::from_static("*"),
        );
        return Ok(resp);
    }
    let mut resp = Response::new(Full::new(Bytes::from_static(b"not found\n")).boxed());
    *resp.status_mut() = hyper::StatusCode::NOT_FOUND;
    Ok(resp)
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3000".into());
    let cfg = fixture_config();
    let ws = WebSocketConfig::default();
    let tasks = TaskTracker::new();
    let sio = Arc::new(SocketIo::new(&cfg, &ws, Arc::new(Fixture), tasks.clone()));
    let options = engineio::Options {
        ping_interval: cfg.ping_interval(),
        ping_timeout: cfg.ping_timeout(),
        max_payload: cfg.max_payload,
        polling: true,
        websocket: true,
        max_sessions: cfg.max_sessions,
        max_sessions_per_ip: cfg.max_sessions_per_ip,
        max_buffered_packets: cfg.max_buffered_packets,
        ws,
        sid_prefix: String::new(),
    };
    let eio = Arc::new(EngineIo::new(EioEcho, options, tasks));
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!(
        "socketio_conformance: listening on {}",
        listener.local_addr()?
    );
    std::io::stdout().flush()?;
    loop {
        let (stream, _) = listener.accept().await?;
        let (sio, eio) = (sio.clone(), eio.clone());
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |req| route(req, sio.clone(), eio.clone()));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await;
        });
    }
}
