//! The HTTP face of Socket.IO: requests under the path go to engineioxide's service
//! (long-polling and WebSocket upgrades); CORS headers and preflights are answered here.

use super::engine::Engine;
use super::App;
use crate::config::SocketIoConfig;
use bytes::Bytes;
use engineioxide::config::EngineIoConfig;
use engineioxide::service::EngineIoService;
use engineioxide::TransportType;
use http_body_util::{BodyExt, Full};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use std::sync::Arc;

/// Socket.IO served at one path (see the module docs of `socketio`).
pub struct SocketIo {
    service: EngineIoService<Engine>,
    engine: Arc<Engine>,
    cors: Cors,
}

impl std::fmt::Debug for SocketIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SocketIo").finish_non_exhaustive()
    }
}

impl SocketIo {
    /// Serves `app` at `path` (e.g. `/socket.io`). The config must be valid.
    pub fn new(config: &SocketIoConfig, path: &str, app: Arc<dyn App>) -> SocketIo {
        let max_payload = usize::try_from(config.max_payload).unwrap_or(usize::MAX);
        let engine = Arc::new(Engine::new(app, config.connect_timeout(), max_payload));
        let mut transports = 0u8;
        for t in &config.transports {
            transports |= match t.as_str() {
                "polling" => TransportType::Polling as u8,
                _ => TransportType::Websocket as u8,
            };
        }
        let eio = EngineIoConfig {
            req_path: path.to_owned().into(),
            ping_interval: config.ping_interval(),
            ping_timeout: config.ping_timeout(),
            max_buffer_size: config.max_buffered_packets,
            max_payload: config.max_payload,
            ws_max_message_size: max_payload,
            ws_max_frame_size: max_payload,
            transports,
            ..EngineIoConfig::default()
        };
        SocketIo {
            service: EngineIoService::with_config(engine.clone(), eio),
            engine,
            cors: Cors {
                origins: config.cors_origins.clone(),
                credentials: config.cors_credentials,
            },
        }
    }

    /// Answers one request under the path (upgrades included: the WebSocket is served in
    /// its own task once hyper hands the connection over).
    pub async fn handle<B>(&self, req: Request<B>) -> Response<Full<Bytes>>
    where
        B: hyper::body::Body + Send + Unpin + std::fmt::Debug + 'static,
        B::Data: Send,
        B::Error: std::fmt::Debug,
    {
        let origin = req.headers().get(header::ORIGIN).cloned();
        if req.method() == Method::OPTIONS {
            let mut resp = Response::new(Full::new(Bytes::new()));
            *resp.status_mut() = StatusCode::NO_CONTENT;
            self.cors
                .apply(origin.as_ref(), resp.headers_mut(), Some(req.headers()));
            return resp;
        }
        let resp = match hyper::service::Service::call(&self.service, req).await {
            Ok(resp) => resp,
            Err(never) => match never {},
        };
        let (mut parts, body) = resp.into_parts();
        let body = match body.collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(never) => match never {},
        };
        self.cors.apply(origin.as_ref(), &mut parts.headers, None);
        Response::from_parts(parts, Full::new(body))
    }

    /// On shutdown: closes connections that have no namespace (the others are closed by
    /// their handlers once flushed).
    pub fn close_idle(&self) {
        self.engine.close_connections(false);
    }

    /// Closes every connection.
    pub fn close_all(&self) {
        self.engine.close_connections(true);
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
