//! SockJS 0.3.3 (<https://github.com/sockjs/sockjs-protocol>): a WebSocket-like API that falls
//! back to streaming and polling over plain HTTP.
//!
//! ```text
//! GET  <prefix>/                      "Welcome to SockJS!"
//! GET  <prefix>/info                  {"websocket":..,"cookie_needed":..,"origins":["*:*"],"entropy":..}
//! GET  <prefix>/iframe.html           the page for cross-domain iframe transports
//! GET  <prefix>/websocket             raw WebSocket (no SockJS framing)
//! *    <prefix>/<server>/<session>/<transport>
//!        websocket | xhr | xhr_send | xhr_streaming | eventsource | htmlfile | jsonp | jsonp_send
//! ```
//! What a session carries is an [`App`] (see `app.rs`): the server mounts the native JSON
//! protocol at `/sockjs` and STOMP at `/sockjs-stomp` (drivers/sockjs.rs);
//! `examples/sockjs_conformance.rs` mounts the SockJS protocol test suite's echo and close.

mod app;
mod receive;
mod session;
mod websocket;

pub use app::{quote, App, Closed, Handler, Refused};

// The wire formats are sans-IO and live in tidings-proto (fuzzed there).
use tidings_proto::sockjs as frame;
use tidings_proto::sockjs as send;

use super::http::{streamed, Body};
use super::ws;
use crate::config::{SockJsConfig, WebSocketConfig};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use receive::Style;
use session::{CreateError, Registry};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::task::TaskTracker;

/// How one endpoint serves its sessions (most of it comes from `[sockjs]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndpointOptions {
    /// Bytes a streaming response may carry before it ends (`sockjs.response_limit`).
    pub response_limit: usize,
    /// Offer the websocket transport (`sockjs.websocket`).
    pub websocket: bool,
    /// Tell clients to send a JSESSIONID cookie (`sockjs.cookie_needed`).
    pub cookie_needed: bool,
}

impl EndpointOptions {
    pub fn of(cfg: &SockJsConfig) -> EndpointOptions {
        EndpointOptions {
            response_limit: cfg.response_limit,
            websocket: cfg.websocket,
            cookie_needed: cfg.cookie_needed,
        }
    }
}

/// One SockJS endpoint (a prefix) with its application and sessions.
struct Endpoint {
    prefix: String,
    app: Arc<dyn App>,
    options: EndpointOptions,
    sessions: Registry,
}

/// Every SockJS endpoint of one HTTP listener, and what their requests need.
pub struct SockJs {
    endpoints: Vec<Endpoint>,
    config: SockJsConfig,
    websocket: WebSocketConfig,
    /// Largest `xhr_send`/`jsonp_send` body, in bytes (bigger gets 413).
    max_body: usize,
    /// Streaming responses and WebSocket sessions run as tasks here, so shutdown waits.
    tasks: TaskTracker,
}

impl std::fmt::Debug for SockJs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let prefixes: Vec<&str> = self.endpoints.iter().map(|e| e.prefix.as_str()).collect();
        f.debug_struct("SockJs")
            .field("endpoints", &prefixes)
            .finish()
    }
}

impl SockJs {
    /// No endpoints yet; add them with [`SockJs::mount`].
    pub fn new(
        config: SockJsConfig,
        websocket: WebSocketConfig,
        max_body: usize,
        tasks: TaskTracker,
    ) -> SockJs {
        SockJs {
            endpoints: Vec::new(),
            config,
            websocket,
            max_body,
            tasks,
        }
    }

    /// Serves `app` under `prefix` (e.g. `/sockjs`), with at most `sockjs.max_sessions`
    /// sessions at once.
    pub fn mount(&mut self, prefix: &str, app: Arc<dyn App>, options: EndpointOptions) {
        self.endpoints.push(Endpoint {
            prefix: prefix.trim_end_matches('/').to_owned(),
            app,
            options,
            sessions: Registry::new(self.config.max_sessions, self.config.max_sessions_per_ip),
        });
    }

    /// Whether `path` is under one of the endpoints.
    pub fn matches(&self, path: &str) -> bool {
        self.find(path).is_some()
    }

    fn find<'a>(&self, path: &'a str) -> Option<(usize, &'a str)> {
        self.endpoints
            .iter()
            .position(|e| {
                path.strip_prefix(e.prefix.as_str())
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
            })
            .map(|i| (i, &path[self.endpoints[i].prefix.len()..]))
    }

    /// Reclaims sessions no request has touched for `sockjs.disconnect_delay_secs`; returns
    /// how many. Call it about once a second.
    pub fn reap(&self) -> usize {
        let delay = Duration::from_secs(self.config.disconnect_delay_secs);
        self.endpoints.iter().map(|e| e.sessions.reap(delay)).sum()
    }

    /// Open sessions of every endpoint.
    pub fn sessions(&self) -> usize {
        self.endpoints.iter().map(|e| e.sessions.len()).sum()
    }

    /// The session a request under a prefix is about (`<prefix>/<server>/<session>/<transport>`),
    /// for a cluster that routes it to the node holding the session; `None` for the others.
    pub fn session_of<'a>(&'a self, path: &'a str) -> Option<SessionRequest<'a>> {
        let (index, rest) = self.find(path)?;
        let mut segments = rest.strip_prefix('/')?.split('/');
        let (_server, id, transport) = (segments.next()?, segments.next()?, segments.next()?);
        if segments.next().is_some() || !valid_id(id) {
            return None;
        }
        let ep = &self.endpoints[index];
        Some(SessionRequest {
            endpoint: &ep.prefix,
            id,
            transport,
            held: ep.sessions.holds(id),
        })
    }

    /// Every open session as (endpoint prefix, session id).
    pub fn held_sessions(&self) -> Vec<(String, String)> {
        self.endpoints
            .iter()
            .flat_map(|e| {
                e.sessions
                    .ids()
                    .into_iter()
                    .map(|id| (e.prefix.clone(), id))
            })
            .collect()
    }
}

/// A request for one SockJS session (see [`SockJs::session_of`]).
#[derive(Debug, Clone, Copy)]
pub struct SessionRequest<'a> {
    /// The endpoint's prefix, e.g. `/sockjs`: session ids are per endpoint.
    pub endpoint: &'a str,
    pub id: &'a str,
    /// `xhr`, `xhr_send`, `xhr_streaming`, `eventsource`, `htmlfile`, `jsonp`, `jsonp_send`,
    /// `websocket` (or anything else, which gets 404).
    pub transport: &'a str,
    /// Whether this node holds the session.
    pub held: bool,
}

impl SessionRequest<'_> {
    /// Whether the request creates its session when there is none (a receiving transport).
    pub fn creates(&self) -> bool {
        matches!(
            self.transport,
            "xhr" | "xhr_streaming" | "eventsource" | "htmlfile" | "jsonp"
        )
    }
}

impl SockJs {
    /// Answers a request under a SockJS prefix.
    pub async fn handle(&self, mut req: Request<Incoming>) -> Response<Body> {
        let sockjs = self;
        let path = req.uri().path().to_owned();
        let Some((index, rest)) = sockjs.find(&path) else {
            return plain(StatusCode::NOT_FOUND, "Not found");
        };
        let ep = &sockjs.endpoints[index];
        let cfg = &sockjs.config;
        let method = req.method().clone();
        let origin = req.headers().get(header::ORIGIN).cloned();
        let request_headers = req
            .headers()
            .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
            .cloned();
        // The origin policy: with an allow-list, a page from elsewhere gets nothing (and no
        // CORS echo); without one, any origin, as the SockJS protocol expects.
        if let Some(o) = super::http::origin::of(&req) {
            if !super::http::origin::allowed(o, &self.websocket.allowed_origins) {
                return plain(StatusCode::FORBIDDEN, "Origin not allowed");
            }
        }
        // `rest` is empty or starts with '/'; exactly one slash separates the segments, so
        // `//`, `/a/` and friends are not the greeting (sockjs-protocol's test_notFound).
        let segments: Vec<&str> = match rest.strip_prefix('/') {
            None => vec![""],
            Some(r) => r.split('/').collect(),
        };
        let mut resp = match (segments.as_slice(), &method) {
            ([""], &Method::GET) => plain(StatusCode::OK, "Welcome to SockJS!\n"),
            ([""], _) => method_not_allowed("GET"),
            (["info"], &Method::GET) => info(ep),
            (["info"], &Method::OPTIONS) => preflight("OPTIONS, GET"),
            (["info"], _) => method_not_allowed("OPTIONS, GET"),
            ([page], &Method::GET) if is_iframe_page(page) => iframe(&req, &cfg.client_url),
            ([page], _) if is_iframe_page(page) => method_not_allowed("GET"),
            (["websocket"], _) => sockjs.websocket(&mut req, ep, None),
            ([server, session, transport], _) if valid_id(server) && valid_id(session) => {
                sockjs.transport_request(req, ep, session, transport).await
            }
            _ => plain(StatusCode::NOT_FOUND, "Not found"),
        };
        // CORS as SockJS specifies: echo the Origin (credentials allowed), or `*` without one.
        // The literal origin `null` (sandboxed iframes, `file://` pages) is echoed too:
        // browsers refuse `*` on a request made with credentials, which XHR transports are.
        let h = resp.headers_mut();
        match origin {
            Some(o) => {
                h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o);
                h.insert(
                    header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                    HeaderValue::from_static("true"),
                );
            }
            _ => {
                h.insert(
                    header::ACCESS_CONTROL_ALLOW_ORIGIN,
                    HeaderValue::from_static("*"),
                );
            }
        }
        if let Some(rh) = request_headers {
            h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, rh);
        }
        resp
    }
}

/// The client's address, which the HTTP listener puts on every request.
fn peer_of<B>(req: &Request<B>) -> Option<std::net::SocketAddr> {
    req.extensions()
        .get::<crate::listen::Peer>()
        .map(|p| p.addr)
}

fn valid_id(id: &str) -> bool {
    !id.is_empty() && !id.contains('.')
}

/// `iframe[0-9-.a-z_]*.html`, the names the iframe page answers to (clients add a version).
fn is_iframe_page(name: &str) -> bool {
    name.strip_prefix("iframe")
        .and_then(|n| n.strip_suffix(".html"))
        .is_some_and(|middle| {
            middle
                .bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase() || b"-._".contains(&b))
        })
}

impl SockJs {
    async fn transport_request(
        &self,
        mut req: Request<Incoming>,
        ep: &Endpoint,
        id: &str,
        transport: &str,
    ) -> Response<Body> {
        let method = req.method().clone();
        let cfg = &self.config;
        let heartbeat = Duration::from_secs(cfg.heartbeat_secs.max(1));
        let cookie = req.headers().get(header::COOKIE).cloned();
        let from = peer_of(&req);
        let query = req.uri().query().unwrap_or("").to_owned();
        let mut resp = match (transport, &method) {
            ("websocket", _) => return self.websocket(&mut req, ep, Some(heartbeat)),
            ("xhr" | "xhr_send" | "xhr_streaming", &Method::OPTIONS) => preflight("OPTIONS, POST"),
            ("xhr", &Method::POST) => self.receiving(ep, id, Style::Xhr, heartbeat, from).await,
            ("xhr_streaming", &Method::POST) => {
                self.receiving(ep, id, Style::XhrStreaming, heartbeat, from)
                    .await
            }
            ("eventsource", &Method::GET) => {
                self.receiving(ep, id, Style::EventSource, heartbeat, from)
                    .await
            }
            ("htmlfile" | "jsonp", &Method::GET) => match callback(&query) {
                Ok(cb) => {
                    let style = if transport == "jsonp" {
                        Style::Jsonp(cb)
                    } else {
                        Style::HtmlFile(cb)
                    };
                    self.receiving(ep, id, style, heartbeat, from).await
                }
                Err(text) => plain(StatusCode::INTERNAL_SERVER_ERROR, text),
            },
            ("xhr_send" | "jsonp_send", &Method::POST) => {
                self.sending(req, ep, id, transport == "jsonp_send").await
            }
            ("xhr" | "xhr_send" | "xhr_streaming", _) => method_not_allowed("OPTIONS, POST"),
            ("jsonp_send", _) => method_not_allowed("POST"),
            ("eventsource" | "htmlfile" | "jsonp", _) => method_not_allowed("GET"),
            _ => plain(StatusCode::NOT_FOUND, "Not found"),
        };
        if ep.options.cookie_needed {
            let h = resp.headers_mut();
            let value = cookie
                .as_ref()
                .and_then(|c| c.to_str().ok())
                .and_then(|c| {
                    c.split(';')
                        .map(str::trim)
                        .find_map(|kv| kv.strip_prefix("JSESSIONID="))
                })
                .unwrap_or("dummy");
            if let Ok(v) = HeaderValue::from_str(&format!("JSESSIONID={value}; path=/")) {
                h.insert(header::SET_COOKIE, v);
            }
        }
        resp
    }

    async fn receiving(
        &self,
        ep: &Endpoint,
        id: &str,
        style: Style,
        heartbeat: Duration,
        from: Option<std::net::SocketAddr>,
    ) -> Response<Body> {
        let session = match ep.sessions.get_or_create(id, ep.app.as_ref(), from) {
            Ok(s) => s,
            Err(CreateError::Full) => {
                return plain(StatusCode::SERVICE_UNAVAILABLE, "Too many sessions")
            }
            Err(CreateError::FullForAddress) => {
                return plain(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Too many sessions from your address",
                )
            }
            Err(CreateError::Refused) => {
                return plain(StatusCode::SERVICE_UNAVAILABLE, "Server shutting down")
            }
        };
        let content_type = style.content_type();
        let mut resp = if style.is_streaming() {
            let (out, body) = streamed::channel(heartbeat);
            self.tasks.spawn(receive::stream(
                session,
                style,
                out,
                ep.options.response_limit,
            ));
            Response::new(body)
        } else {
            Response::new(Full::new(receive::poll(session, &style, heartbeat).await).boxed())
        };
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        no_cache(&mut resp);
        resp
    }

    async fn sending(
        &self,
        req: Request<Incoming>,
        ep: &Endpoint,
        id: &str,
        jsonp: bool,
    ) -> Response<Body> {
        let Some(session) = ep.sessions.get(id) else {
            return plain(StatusCode::NOT_FOUND, "Not found");
        };
        let form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        let limit = self.max_body;
        let body = match Limited::new(req.into_body(), limit).collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => return plain(StatusCode::PAYLOAD_TOO_LARGE, "Payload too large."),
        };
        let parsed = if jsonp {
            send::jsonp_body(&body, form)
        } else {
            send::xhr_body(&body)
        };
        match parsed {
            Ok(messages) => session.receive(&messages),
            Err(e) => return plain(StatusCode::INTERNAL_SERVER_ERROR, e.text()),
        }
        let mut resp = if jsonp {
            plain(StatusCode::OK, "ok")
        } else {
            plain(StatusCode::NO_CONTENT, "")
        };
        no_cache(&mut resp);
        resp
    }

    /// A WebSocket session: `<prefix>/<server>/<session>/websocket` with SockJS framing, or
    /// (`framing: None`) `<prefix>/websocket`, a plain WebSocket running the endpoint's
    /// application directly.
    fn websocket(
        &self,
        req: &mut Request<Incoming>,
        ep: &Endpoint,
        framing: Option<Duration>,
    ) -> Response<Body> {
        if !ep.options.websocket {
            return plain(StatusCode::NOT_FOUND, "Not found");
        }
        // CONNECT: a WebSocket over an HTTP/2 stream (RFC 8441).
        if req.method() != Method::GET && req.method() != Method::CONNECT {
            return method_not_allowed("GET");
        }
        if !ws::is_upgrade(req) {
            return plain(
                StatusCode::BAD_REQUEST,
                "Can \"Upgrade\" only to \"WebSocket\".",
            );
        }
        let session = match session::SockSession::new(ep.app.as_ref(), peer_of(req)) {
            Ok(s) => Arc::new(s),
            Err(_) => return plain(StatusCode::SERVICE_UNAVAILABLE, "Server shutting down"),
        };
        match ws::upgrade(req, &self.websocket) {
            Err(refusal) => refusal.map(BodyExt::boxed),
            Ok((resp, pending)) => {
                let task = async move {
                    let Some(conn) = pending.accept().await else {
                        return;
                    };
                    match framing {
                        Some(heartbeat) => websocket::serve(conn, session, heartbeat).await,
                        None => websocket::serve_raw(conn, session).await,
                    }
                };
                self.tasks.spawn(tracing::Instrument::in_current_span(task));
                resp.map(BodyExt::boxed)
            }
        }
    }
}

/// `c=` of htmlfile and jsonp: required, and only `[A-Za-z0-9_.]` (it is written into a page).
fn callback(query: &str) -> Result<String, &'static str> {
    let cb = form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "c")
        .map(|(_, v)| v.into_owned());
    match cb {
        None => Err("\"callback\" parameter required"),
        Some(cb)
            if !cb.is_empty()
                && cb
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.') =>
        {
            Ok(cb)
        }
        Some(_) => Err("invalid \"callback\" parameter"),
    }
}

fn info(ep: &Endpoint) -> Response<Body> {
    let entropy: u32 = rand_u32();
    let body = serde_json::json!({
        "websocket": ep.options.websocket,
        "cookie_needed": ep.options.cookie_needed,
        "origins": ["*:*"],
        "entropy": entropy,
    });
    let mut resp = respond(
        StatusCode::OK,
        "application/json; charset=UTF-8",
        Bytes::from(body.to_string()),
    );
    no_cache(&mut resp);
    resp
}

fn iframe(req: &Request<Incoming>, client_url: &str) -> Response<Body> {
    let page = format!(
        "<!DOCTYPE html>\n<html>\n<head>\n  <meta http-equiv=\"X-UA-Compatible\" content=\"IE=edge\" />\n  \
         <meta http-equiv=\"Content-Type\" content=\"text/html; charset=UTF-8\" />\n  <script src=\"{client_url}\"></script>\n  \
         <script>\n    document.domain = document.domain;\n    SockJS.bootstrap_iframe();\n  </script>\n</head>\n<body>\n  \
         <h2>Don't panic!</h2>\n  <p>This is a SockJS hidden iframe. It's used for cross domain magic.</p>\n</body>\n</html>"
    );
    let etag = format!("\"{:016x}\"", fnv1a(page.as_bytes()));
    let mut resp = if req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        == Some(etag.as_str())
    {
        let mut r = Response::new(Full::new(Bytes::new()).boxed());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        respond(
            StatusCode::OK,
            "text/html; charset=UTF-8",
            Bytes::from(page),
        )
    };
    cache_for_a_year(&mut resp);
    if let Ok(v) = HeaderValue::from_str(&etag) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    resp
}

fn preflight(methods: &'static str) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::new()).boxed());
    *resp.status_mut() = StatusCode::NO_CONTENT;
    cache_for_a_year(&mut resp);
    let h = resp.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(methods),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("31536000"),
    );
    resp
}

fn cache_for_a_year(resp: &mut Response<Body>) {
    let h = resp.headers_mut();
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000"),
    );
    let expires =
        httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(31_536_000));
    if let Ok(v) = HeaderValue::from_str(&expires) {
        h.insert(header::EXPIRES, v);
    }
}

fn no_cache(resp: &mut Response<Body>) {
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store, no-cache, no-transform, must-revalidate, max-age=0"),
    );
}

/// 405 as sockjs-protocol expects it: `Allow`, an empty body, and no `Content-Type`.
fn method_not_allowed(allow: &'static str) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::new()).boxed());
    *resp.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    resp.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    resp
}

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    respond(
        status,
        "text/plain; charset=UTF-8",
        Bytes::from_static(text.as_bytes()),
    )
}

fn respond(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Body> {
    let mut resp = Response::new(Full::new(body).boxed());
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// The `entropy` of `/info`: clients only need it to differ between calls.
fn rand_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(crate::clock::now_ms());
    h.finish() as u32
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
