//! The conformance fixture for tidings' SockJS transport: the endpoints the SockJS protocol
//! test suite (sockjs-protocol 0.3.3) expects, on tidings' own SockJS layer. Not part of the
//! product (it used to be `tidings serve --conformance`).
//!
//! - `/echo`: every message is sent back;
//! - `/disabled_websocket_echo`: the same, with the websocket transport off;
//! - `/cookie_needed_echo`: the same, asking clients for a JSESSIONID cookie;
//! - `/close`: every session is closed with `c[3000,"Go away!"]` as soon as it opens.
//!
//! Each also answers under `/sockjs-test/<name>`, the prefixes tidings' own tests use.
//!
//! ```sh
//! cargo run -p tidings-server --example sockjs_conformance -- 127.0.0.1:8081
//! ```
//! It prints `sockjs_conformance: listening on <addr>`.

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::io::Write;
use std::sync::Arc;
use tidings_server::sockjs::{quote, App, Closed, EndpointOptions, Handler, Refused, SockJs};
use tidings_server::{Body, SockJsConfig, WebSocketConfig};
use tokio::sync::Notify;
use tokio_util::task::TaskTracker;

/// Sends every message back.
struct EchoApp;

impl App for EchoApp {
    fn open(
        &self,
        wake: Arc<Notify>,
        _peer: Option<std::net::SocketAddr>,
    ) -> Result<Box<dyn Handler>, Refused> {
        Ok(Box::new(Echo {
            queued: Vec::new(),
            wake,
        }))
    }
}

/// The suite sends a handful of messages at a time; more than this unread ends the session.
const ECHO_BACKLOG: usize = 1024;

struct Echo {
    queued: Vec<Bytes>,
    wake: Arc<Notify>,
}

impl Handler for Echo {
    fn on_messages(&mut self, messages: &[String]) {
        for m in messages {
            self.queued.push(quote(m.as_bytes()));
        }
        self.wake.notify_one();
    }

    fn drain(&mut self, out: &mut Vec<Bytes>) -> Option<Closed> {
        if self.queued.len() > ECHO_BACKLOG {
            self.queued.clear();
            return Some(Closed {
                code: 3008,
                reason: "Slow consumer",
            });
        }
        out.append(&mut self.queued);
        None
    }
}

/// Closes every session at once.
struct CloseApp;

impl App for CloseApp {
    fn open(
        &self,
        _wake: Arc<Notify>,
        _peer: Option<std::net::SocketAddr>,
    ) -> Result<Box<dyn Handler>, Refused> {
        Ok(Box::new(Close))
    }
}

struct Close;

impl Handler for Close {
    fn on_messages(&mut self, _messages: &[String]) {}

    fn drain(&mut self, _out: &mut Vec<Bytes>) -> Option<Closed> {
        Some(Closed {
            code: 3000,
            reason: "Go away!",
        })
    }
}

fn fixture(tasks: TaskTracker) -> SockJs {
    let config = SockJsConfig::default();
    let mut sockjs = SockJs::new(config, WebSocketConfig::default(), 1 << 20, tasks);
    let options = |websocket, cookie_needed| EndpointOptions {
        // The suite checks that a streaming response ends after 4 KiB.
        response_limit: 4096,
        websocket,
        cookie_needed,
    };
    for base in ["", "/sockjs-test"] {
        let echo: Arc<dyn App> = Arc::new(EchoApp);
        sockjs.mount(&format!("{base}/echo"), echo.clone(), options(true, false));
        sockjs.mount(
            &format!("{base}/disabled_websocket_echo"),
            echo.clone(),
            options(false, false),
        );
        sockjs.mount(
            &format!("{base}/cookie_needed_echo"),
            echo,
            options(true, true),
        );
        sockjs.mount(
            &format!("{base}/close"),
            Arc::new(CloseApp),
            options(true, false),
        );
    }
    sockjs
}

async fn route(req: Request<Incoming>, sockjs: Arc<SockJs>) -> Result<Response<Body>, Infallible> {
    if sockjs.matches(req.uri().path()) {
        return Ok(sockjs.handle(req).await);
    }
    let mut resp =
        Response::new(http_body_util::Full::new(Bytes::from_static(b"not found\n")).boxed());
    *resp.status_mut() = hyper::StatusCode::NOT_FOUND;
    Ok(resp)
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8081".into());
    let sockjs = Arc::new(fixture(TaskTracker::new()));
    let reaper = sockjs.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tick.tick().await;
            reaper.reap();
        }
    });
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!(
        "sockjs_conformance: listening on {}",
        listener.local_addr()?
    );
    std::io::stdout().flush()?;
    loop {
        let (stream, _) = listener.accept().await?;
        let sockjs = sockjs.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| route(req, sockjs.clone()));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await;
        });
    }
}
