//! The pre-WebSocket HTTP transports for the native protocol: Server-Sent Events (`/sse`),
//! long-polling (`/poll`) and chunked streaming (`/stream`). `POST` to any of them publishes,
//! exactly like `POST /api/publish`.
//!
//! None needs sticky sessions: each request carries its position (a [`cursor`] or `since`),
//! the messages live in the topic history, and each request is its own short hub session.
//! Streaming responses go through a small bounded channel; when the client reads slowly the
//! channel fills, the writer waits, and the session's outbox policy takes over.

pub(crate) mod cursor;
mod encode;
pub(crate) use encode::{json_array, message_json};
mod feed;
mod poll;
mod pump;
mod request;
mod sse;
mod stream;

use super::api::{self, Api};
use super::Context;
use crate::config::{FallbackConfig, WebSocketConfig};
use crate::transports::http::{streamed, Body};
use crate::transports::ws;
use hyper::body::Incoming;
use hyper::header::{
    HeaderValue, ACCESS_CONTROL_ALLOW_ORIGIN, CACHE_CONTROL, CONTENT_TYPE, ORIGIN,
};
use hyper::{Method, Request, Response, StatusCode};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    Sse,
    Poll,
    Stream,
}

impl Transport {
    /// The protocol name a feed's hub session records.
    fn protocol(self) -> &'static str {
        match self {
            Transport::Sse => "sse",
            Transport::Poll => "poll",
            Transport::Stream => "stream",
        }
    }
}

/// What the fallback transports need: the API (publishing, credentials), the tasks that
/// feed streamed responses, their own config, and the WebSocket origin allow-list (shared).
pub(crate) struct Fallbacks {
    pub(crate) api: Api,
    pub(crate) ctx: Context,
    pub(crate) config: FallbackConfig,
    pub(crate) websocket: Arc<WebSocketConfig>,
}

pub(crate) async fn handle(
    req: Request<Incoming>,
    fb: &Fallbacks,
    transport: Transport,
) -> Response<Body> {
    if req.method() == Method::POST {
        return api::publish(req, &fb.api).await;
    }
    if req.method() != Method::GET {
        return api::error(
            StatusCode::METHOD_NOT_ALLOWED,
            "bad_request",
            "use GET to receive, POST to publish",
        );
    }
    let origin = allowed_origin(&req, &fb.websocket);
    let basic = req.headers().contains_key(hyper::header::AUTHORIZATION);
    let who = match api::identity(&req, &fb.api) {
        Ok(who) => who,
        Err(refusal) => return *refusal,
    };
    let last_event_id = req
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok());
    let feed_req = match request::FeedRequest::parse(req.uri().query().unwrap_or(""), last_event_id)
    {
        Ok(r) => r,
        Err(e) => return api::error(StatusCode::BAD_REQUEST, "bad_request", &e),
    };
    // Without an Authorization header, the query may log in: `token=` (EventSource cannot
    // send headers) or `user=`/`password=`.
    let token = (!basic)
        .then(|| super::credentials::query_token(req.uri()))
        .flatten();
    let who = match (&feed_req.login, token) {
        (_, Some(token)) => match fb.api.auth.token(&token, api::peer_ip(&req)) {
            Ok(who) => who,
            Err(e) => return api::hub_error(&e),
        },
        (Some((user, password)), None) if !basic => {
            match fb.api.auth.password(user, password, api::peer_ip(&req)) {
                Ok(who) => who,
                Err(e) => return api::hub_error(&e),
            }
        }
        _ => who,
    };
    // The client's address, so presence and the admin view show where a feed comes from.
    let peer = req.extensions().get::<crate::listen::Peer>().copied();
    let feed = match feed::Feed::open(
        &fb.api.hub,
        &fb.api.remote,
        transport.protocol(),
        &who,
        &feed_req,
        peer,
    )
    .await
    {
        Ok(f) => f,
        Err(e) => return api::hub_error(&e),
    };
    let cfg = &fb.config;
    let mut resp = match transport {
        Transport::Poll => {
            let secs = feed_req
                .timeout_secs
                .unwrap_or(cfg.poll_timeout_secs)
                .min(cfg.poll_timeout_secs);
            poll::run(feed, Duration::from_secs(secs)).await
        }
        Transport::Sse | Transport::Stream => {
            let (out, body) = streamed::channel(Duration::from_secs(cfg.keepalive_secs.max(1)));
            if transport == Transport::Sse {
                fb.ctx
                    .tasks
                    .spawn(pump::run(feed, out, cfg.response_limit, sse::Sse));
            } else {
                fb.ctx
                    .tasks
                    .spawn(pump::run(feed, out, cfg.response_limit, stream::Ndjson));
            }
            let mut resp = Response::new(body);
            let kind = if transport == Transport::Sse {
                "text/event-stream"
            } else {
                "application/x-ndjson"
            };
            resp.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(kind));
            resp.headers_mut()
                .insert("x-accel-buffering", HeaderValue::from_static("no"));
            resp
        }
    };
    resp.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(origin) = origin {
        resp.headers_mut()
            .insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    }
    resp
}

/// The `Origin` to allow in CORS, if the request has one and the allow-list (shared with
/// WebSocket) permits it.
fn allowed_origin(req: &Request<Incoming>, websocket: &WebSocketConfig) -> Option<HeaderValue> {
    let origin = req.headers().get(ORIGIN)?;
    ws::origin_allowed(req, websocket).then(|| origin.clone())
}
