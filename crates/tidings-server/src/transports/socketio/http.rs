//! The HTTP face of Socket.IO: requests under the path go to the Engine.IO endpoint
//! (long-polling and WebSocket upgrades); CORS headers and preflights are answered here.

use super::engine::{self, Engine};
use super::engineio::{CloseReason, EngineIo, Options};
use super::App;
use crate::config::{SocketIoConfig, WebSocketConfig};
use crate::transports::http::Body;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use std::sync::Arc;
use tokio_util::task::TaskTracker;

/// Socket.IO served at one path (see the module docs of `socketio`).
pub struct SocketIo {
    eio: EngineIo<Engine>,
    cors: Cors,
}

impl std::fmt::Debug for SocketIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SocketIo").finish_non_exhaustive()
    }
}

impl SocketIo {
    /// Serves `app` (the config must be valid). `websocket` gives the WebSocket buffers;
    /// permessage-deflate is on when both it and `socketio.compression` allow. WebSocket
    /// sessions run as tasks in `tasks`, so shutdown can wait for their goodbyes.
    pub fn new(
        config: &SocketIoConfig,
        websocket: &WebSocketConfig,
        app: Arc<dyn App>,
        tasks: TaskTracker,
    ) -> SocketIo {
        SocketIo::with_sid_prefix(config, websocket, app, tasks, "")
    }

    /// As [`SocketIo::new`], every Engine.IO session id starting with `sid_prefix` (a
    /// cluster node's id: any node can tell which one holds a session).
    pub fn with_sid_prefix(
        config: &SocketIoConfig,
        websocket: &WebSocketConfig,
        app: Arc<dyn App>,
        tasks: TaskTracker,
        sid_prefix: &str,
    ) -> SocketIo {
        let max_payload = usize::try_from(config.max_payload).unwrap_or(usize::MAX);
        let engine = Engine::new(
            app,
            config.connect_timeout(),
            max_payload,
            config.max_namespaces,
        );
        let mut ws = websocket.clone();
        ws.compression = websocket.compression && config.compression;
        let options = Options {
            ping_interval: config.ping_interval(),
            ping_timeout: config.ping_timeout(),
            max_payload: config.max_payload,
            polling: config.transports.iter().any(|t| t == "polling"),
            websocket: config.transports.iter().any(|t| t == "websocket"),
            max_sessions: config.max_sessions,
            max_sessions_per_ip: config.max_sessions_per_ip,
            max_buffered_packets: config.max_buffered_packets,
            ws,
            sid_prefix: sid_prefix.to_owned(),
        };
        SocketIo {
            eio: EngineIo::new(engine, options, tasks),
            cors: Cors {
                origins: config.cors_origins.clone(),
                credentials: config.cors_credentials,
            },
        }
    }

    /// Whether this node holds the Engine.IO session `sid`.
    pub fn holds(&self, sid: &str) -> bool {
        self.eio.holds(sid)
    }

    /// Answers one request under the path (upgrades included: the WebSocket is served in
    /// its own task once hyper hands the connection over).
    pub async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        let origin = req.headers().get(header::ORIGIN).cloned();
        if req.method() == Method::OPTIONS {
            let mut resp = Response::new(Full::new(Bytes::new()).boxed());
            *resp.status_mut() = StatusCode::NO_CONTENT;
            self.cors
                .apply(origin.as_ref(), resp.headers_mut(), Some(req.headers()));
            return resp;
        }
        let mut resp = self.eio.handle(req).await;
        self.cors.apply(origin.as_ref(), resp.headers_mut(), None);
        resp
    }

    /// On shutdown: closes connections that have no namespace (the others are closed by
    /// their handlers once flushed).
    pub fn close_idle(&self) {
        for s in self.eio.sockets() {
            if engine::has_no_namespace(&s) {
                s.close(CloseReason::ForcedClose);
            }
        }
    }

    /// Closes every connection.
    pub fn close_all(&self) {
        for s in self.eio.sockets() {
            s.close(CloseReason::ForcedClose);
        }
    }

    /// Open Engine.IO sessions.
    pub fn sessions(&self) -> usize {
        self.eio.len()
    }
}

/// Cross-origin rules for long-polling from browser pages.
struct Cors {
    origins: Vec<String>,
    credentials: bool,
}

impl Cors {
    fn allows(&self, origin: &HeaderValue) -> bool {
        self.origins
            .iter()
            .any(|o| o == "*" || o.as_bytes() == origin.as_bytes())
    }

    /// Adds the CORS headers for an allowed `origin`; a preflight (`request` given) also
    /// gets the allowed methods and headers.
    fn apply(
        &self,
        origin: Option<&HeaderValue>,
        headers: &mut HeaderMap,
        request: Option<&HeaderMap>,
    ) {
        let Some(origin) = origin.filter(|o| self.allows(o)) else {
            return;
        };
        let any = self.origins.iter().any(|o| o == "*");
        let value = if any && !self.credentials {
            HeaderValue::from_static("*")
        } else {
            origin.clone()
        };
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
        if self.credentials {
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        if let Some(req) = request {
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("GET, POST, OPTIONS"),
            );
            if let Some(asked) = req.get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
                headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked.clone());
            }
            headers.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static("86400"),
            );
        }
    }
}
