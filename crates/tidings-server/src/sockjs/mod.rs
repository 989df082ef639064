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
//! `/sockjs` runs the native JSON protocol inside the session (each SockJS message is one
//! request or one server message). With `--conformance`, `/sockjs-test/{echo,
//! disabled_websocket_echo,cookie_needed_echo,close}` serve the SockJS protocol test suite.

mod receive;
mod session;
mod websocket;

// The wire formats are sans-IO and live in tidings-proto (fuzzed there).
use tidings_proto::sockjs as frame;
use tidings_proto::sockjs as send;

use crate::http::{streamed, Body};
use crate::runtime::Shared;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use receive::Style;
use session::{AppKind, CreateError, Registry};
use std::sync::Arc;
use std::time::Duration;

/// SockJS settings (`[sockjs]`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SockJsConfig {
    /// Seconds of silence before a heartbeat frame `h`. Default 25.
    pub heartbeat_secs: u64,
    /// Seconds a session lives without any request before it is reclaimed. Default 5.
    pub disconnect_delay_secs: u64,
    /// Bytes a streaming response may carry before it ends and the client reconnects
    /// (old proxies buffer long responses). Default 131072.
    pub response_limit: usize,
    /// Most sessions at once per endpoint; more get 503. Default 10000.
    pub max_sessions: usize,
    /// Offer the websocket transport. Default true.
    pub websocket: bool,
    /// Tell clients to send a JSESSIONID cookie (for sticky load balancers). Default false.
    pub cookie_needed: bool,
    /// Where the iframe page loads sockjs-client from.
    /// Default "/vendor/sockjs.min.js": the copy this binary serves, so iframe transports work
    /// offline and from the same origin.
    pub client_url: String,
}

impl Default for SockJsConfig {
    fn default() -> Self {
        SockJsConfig {
            heartbeat_secs: 25,
            disconnect_delay_secs: 5,
            response_limit: 128 * 1024,
            max_sessions: 10_000,
            websocket: true,
            cookie_needed: false,
            client_url: "/vendor/sockjs.min.js".into(),
        }
    }
}

/// One SockJS endpoint (a prefix) with its sessions.
struct Endpoint {
    prefix: &'static str,
    kind: AppKind,
    response_limit: usize,
    websocket: bool,
    cookie_needed: bool,
    sessions: Registry,
}

/// Every SockJS endpoint of the server.
pub(crate) struct SockJs {
    endpoints: Vec<Endpoint>,
}

impl SockJs {
    pub(crate) fn new(cfg: &SockJsConfig, conformance: bool) -> SockJs {
        let endpoint = |prefix, kind, response_limit, websocket, cookie_needed| Endpoint {
            prefix,
            kind,
            response_limit,
            websocket,
            cookie_needed,
            sessions: Registry::new(cfg.max_sessions),
        };
        let mut endpoints = vec![endpoint(
            "/sockjs",
            AppKind::Native,
            cfg.response_limit,
            cfg.websocket,
            cfg.cookie_needed,
        )];
        endpoints.push(endpoint(
            "/sockjs-stomp",
            AppKind::Stomp,
            cfg.response_limit,
            cfg.websocket,
            cfg.cookie_needed,
        ));
        if conformance {
            endpoints.push(endpoint(
                "/sockjs-test/echo",
                AppKind::Echo,
                4096,
                true,
                false,
            ));
            endpoints.push(endpoint(
                "/sockjs-test/disabled_websocket_echo",
                AppKind::Echo,
                4096,
                false,
                false,
            ));
            endpoints.push(endpoint(
                "/sockjs-test/cookie_needed_echo",
                AppKind::Echo,
                4096,
                true,
                true,
            ));
            endpoints.push(endpoint(
                "/sockjs-test/close",
                AppKind::Close,
                4096,
                true,
                false,
            ));
        }
        SockJs { endpoints }
    }

    /// The endpoint serving `path`, and the rest of the path after its prefix.
    pub(crate) fn matches(&self, path: &str) -> bool {
        self.find(path).is_some()
    }

    fn find<'a>(&self, path: &'a str) -> Option<(usize, &'a str)> {
        self.endpoints
            .iter()
            .position(|e| {
                path.strip_prefix(e.prefix)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
            })
            .map(|i| (i, &path[self.endpoints[i].prefix.len()..]))
    }

    /// Reclaims abandoned sessions; returns how many.
    pub(crate) fn reap(&self, delay: Duration) -> usize {
        self.endpoints.iter().map(|e| e.sessions.reap(delay)).sum()
    }

    pub(crate) fn sessions(&self) -> usize {
        self.endpoints.iter().map(|e| e.sessions.len()).sum()
    }
}

/// Answers a request under a SockJS prefix.
pub(crate) async fn handle(mut req: Request<Incoming>, shared: &Arc<Shared>) -> Response<Body> {
    let path = req.uri().path().to_owned();
    let Some((index, rest)) = shared.sockjs.find(&path) else {
        return plain(StatusCode::NOT_FOUND, "Not found");
    };
    let ep = &shared.sockjs.endpoints[index];
    let cfg = &shared.config.sockjs;
    let method = req.method().clone();
    let origin = req.headers().get(header::ORIGIN).cloned();
    let request_headers = req
        .headers()
        .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .cloned();
    let mut resp = match rest
        .trim_start_matches('/')
        .split('/')
        .collect::<Vec<_>>()
        .as_slice()
    {
        [""] if method == Method::GET => plain(StatusCode::OK, "Welcome to SockJS!\n"),
        ["info"] if method == Method::GET => info(ep),
        ["info"] if method == Method::OPTIONS => preflight("OPTIONS, GET"),
        [page]
            if page.starts_with("iframe") && page.ends_with(".html") && method == Method::GET =>
        {
            iframe(&req, &cfg.client_url)
        }
        ["websocket"] => raw_websocket(&mut req, shared, ep),
        [server, session, transport] if valid_id(server) && valid_id(session) => {
            transport_request(req, shared, ep, session, transport).await
        }
        _ => plain(StatusCode::NOT_FOUND, "Not found"),
    };
    // CORS as SockJS specifies: echo the Origin (credentials allowed), or `*` without one.
    let h = resp.headers_mut();
    match origin {
        Some(o) if o != "null" => {
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

fn valid_id(id: &str) -> bool {
    !id.is_empty() && !id.contains('.')
}

async fn transport_request(
    mut req: Request<Incoming>,
    shared: &Arc<Shared>,
    ep: &Endpoint,
    id: &str,
    transport: &str,
) -> Response<Body> {
    let method = req.method().clone();
    let cfg = &shared.config.sockjs;
    let heartbeat = Duration::from_secs(cfg.heartbeat_secs.max(1));
    let cookie = req.headers().get(header::COOKIE).cloned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let mut resp = match (transport, &method) {
        ("websocket", _) => return sockjs_websocket(&mut req, shared, ep, heartbeat),
        ("xhr" | "xhr_send" | "xhr_streaming", &Method::OPTIONS) => preflight("OPTIONS, POST"),
        ("xhr", &Method::POST) => receiving(shared, ep, id, Style::Xhr, heartbeat).await,
        ("xhr_streaming", &Method::POST) => {
            receiving(shared, ep, id, Style::XhrStreaming, heartbeat).await
        }
        ("eventsource", &Method::GET) => {
            receiving(shared, ep, id, Style::EventSource, heartbeat).await
        }
        ("htmlfile" | "jsonp", &Method::GET) => match callback(&query) {
            Ok(cb) => {
                let style = if transport == "jsonp" {
                    Style::Jsonp(cb)
                } else {
                    Style::HtmlFile(cb)
                };
                receiving(shared, ep, id, style, heartbeat).await
            }
            Err(text) => plain(StatusCode::INTERNAL_SERVER_ERROR, text),
        },
        ("xhr_send" | "jsonp_send", &Method::POST) => {
            sending(req, shared, ep, id, transport == "jsonp_send").await
        }
        (
            "xhr" | "xhr_send" | "xhr_streaming" | "eventsource" | "htmlfile" | "jsonp"
            | "jsonp_send",
            _,
        ) => plain(StatusCode::METHOD_NOT_ALLOWED, ""),
        _ => plain(StatusCode::NOT_FOUND, "Not found"),
    };
    if ep.cookie_needed {
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

async fn receiving(
    shared: &Arc<Shared>,
    ep: &Endpoint,
    id: &str,
    style: Style,
    heartbeat: Duration,
) -> Response<Body> {
    let session = match ep.sessions.get_or_create(id, shared, ep.kind) {
        Ok(s) => s,
        Err(CreateError::Full) => {
            return plain(StatusCode::SERVICE_UNAVAILABLE, "Too many sessions")
        }
        Err(CreateError::ShuttingDown) => {
            return plain(StatusCode::SERVICE_UNAVAILABLE, "Server shutting down")
        }
    };
    let content_type = style.content_type();
    let mut resp = if style.is_streaming() {
        let (out, body) = streamed::channel(heartbeat);
        shared
            .tasks
            .spawn(receive::stream(session, style, out, ep.response_limit));
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
    req: Request<Incoming>,
    shared: &Arc<Shared>,
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
    let limit = shared.config.http_api.max_body;
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

fn sockjs_websocket(
    req: &mut Request<Incoming>,
    shared: &Arc<Shared>,
    ep: &Endpoint,
    heartbeat: Duration,
) -> Response<Body> {
    if !ep.websocket {
        return plain(StatusCode::NOT_FOUND, "Not found");
    }
    if req.method() != Method::GET {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "");
    }
    if !crate::ws::is_upgrade(req) {
        return plain(
            StatusCode::BAD_REQUEST,
            "Can \"Upgrade\" only to \"WebSocket\".",
        );
    }
    let session = match session::SockSession::new(shared, ep.kind) {
        Ok(s) => Arc::new(s),
        Err(_) => return plain(StatusCode::SERVICE_UNAVAILABLE, "Server shutting down"),
    };
    match crate::ws::upgrade(req, &shared.config.websocket) {
        Err(refusal) => refusal.map(BodyExt::boxed),
        Ok((resp, pending)) => {
            shared.tasks.spawn(async move {
                if let Some(conn) = pending.accept().await {
                    websocket::serve(conn, session, heartbeat).await;
                }
            });
            resp.map(BodyExt::boxed)
        }
    }
}

/// `<prefix>/websocket`: a plain WebSocket running the endpoint's application directly.
fn raw_websocket(
    req: &mut Request<Incoming>,
    shared: &Arc<Shared>,
    ep: &Endpoint,
) -> Response<Body> {
    if !ep.websocket {
        return plain(StatusCode::NOT_FOUND, "Not found");
    }
    if req.method() != Method::GET {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "");
    }
    if !crate::ws::is_upgrade(req) {
        return plain(
            StatusCode::BAD_REQUEST,
            "Can \"Upgrade\" only to \"WebSocket\".",
        );
    }
    let kind = ep.kind;
    match crate::ws::upgrade(req, &shared.config.websocket) {
        Err(refusal) => refusal.map(BodyExt::boxed),
        Ok((resp, pending)) => {
            let shared2 = shared.clone();
            shared.tasks.spawn(async move {
                let Some(conn) = pending.accept().await else {
                    return;
                };
                match kind {
                    AppKind::Native => crate::drivers::json_ws::serve(conn, shared2).await,
                    AppKind::Echo => crate::ws::echo::serve(conn, shared2.shutdown.clone()).await,
                    AppKind::Close => {
                        conn.close(crate::ws::Close::Application(3000), "Go away!")
                            .await
                    }
                    AppKind::Stomp => crate::drivers::stomp::serve_ws(conn, shared2).await,
                }
            });
            resp.map(BodyExt::boxed)
        }
    }
}

fn info(ep: &Endpoint) -> Response<Body> {
    let entropy: u32 = rand_u32();
    let body = serde_json::json!({
        "websocket": ep.websocket,
        "cookie_needed": ep.cookie_needed,
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
