//! The HTTP API: `POST /api/publish`, `GET /api/topics`, `GET /api/history/<topic>`,
//! `GET /api/presence/<topic>`.
//!
//! History and presence are here for clients whose protocol has no such request (STOMP,
//! SSE, long-polling): the demo chat page uses them on every transport.
//!
//! Publish takes either a JSON envelope (`{"topic":"t","data":...}` or `"text":"..."`) or a
//! raw body with the topic in the path (`/api/publish/chat.lobby`) or query (`?topic=`).
//! A raw body is JSON, text or binary according to its Content-Type. Credentials, when users
//! are configured, come as HTTP Basic auth.

use crate::transports::http::{json, json_bytes, text, Body};
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::{header, Method, Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::sync::Arc;
use tidings_core::{Hub, HubError, Identity, PayloadKind};

/// What the HTTP API needs: the hub, and the largest request body (`http_api.max_body`).
#[derive(Clone)]
pub(crate) struct Api {
    pub(crate) hub: Arc<Hub>,
    pub(crate) auth: Arc<dyn crate::auth::Authenticator>,
    pub(crate) max_body: usize,
    /// The origin policy's allow-list (`websocket.allowed_origins`).
    pub(crate) allowed_origins: Arc<[String]>,
    /// The Redis engine, when topics are shared with other nodes.
    pub(crate) remote: crate::engine::Remote,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    topic: String,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
    #[serde(default)]
    text: Option<String>,
}

pub(crate) async fn publish(req: Request<Incoming>, api: &Api) -> Response<Body> {
    if req.method() != Method::POST {
        return text(StatusCode::METHOD_NOT_ALLOWED, "use POST\n");
    }
    if crate::transports::http::origin::forged(&req, &api.allowed_origins) {
        return error(
            StatusCode::FORBIDDEN,
            "forbidden",
            "a cross-site request with credentials: add the page's origin to websocket.allowed_origins",
        );
    }
    let who = match identity(&req, api) {
        Ok(who) => who,
        Err(refusal) => return *refusal,
    };
    let path_topic = req
        .uri()
        .path()
        .strip_prefix("/api/publish/")
        .map(percent_decode);
    let query_topic = req.uri().query().and_then(|q| {
        q.split('&')
            .find_map(|kv| kv.strip_prefix("topic="))
            .map(percent_decode)
    });
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let limit = api.max_body;
    let body = match Limited::new(req.into_body(), limit).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                &format!("body is larger than {limit} bytes"),
            )
        }
        Err(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "could not read the body",
            )
        }
    };
    let is_json = content_type.starts_with("application/json");
    let (topic, kind, payload) = match path_topic.or(query_topic) {
        Some(topic) => {
            let kind = if is_json {
                if serde_json::from_slice::<&RawValue>(&body).is_err() {
                    return error(StatusCode::BAD_REQUEST, "bad_request", "body is not valid JSON");
                }
                PayloadKind::Json
            } else if content_type.starts_with("text/") || content_type.is_empty() && std::str::from_utf8(&body).is_ok() {
                if std::str::from_utf8(&body).is_err() {
                    return error(StatusCode::BAD_REQUEST, "bad_request", "text body is not UTF-8");
                }
                PayloadKind::Text
            } else {
                PayloadKind::Binary
            };
            (topic, kind, body)
        }
        None => match serde_json::from_slice::<Envelope<'_>>(&body) {
            Ok(Envelope { topic, data: Some(d), text: None }) => {
                (topic, PayloadKind::Json, Bytes::copy_from_slice(d.get().as_bytes()))
            }
            Ok(Envelope { topic, data: None, text: Some(t) }) => (topic, PayloadKind::Text, Bytes::from(t)),
            Ok(_) => {
                return error(StatusCode::BAD_REQUEST, "bad_request", "the envelope needs exactly one of \"data\" or \"text\"")
            }
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    &format!("expected a JSON envelope {{\"topic\":...,\"data\":...}} or a topic in the path: {e}"),
                )
            }
        },
    };
    let now = crate::clock::now_ms();
    let published = match &api.remote {
        Some(remote) => remote.publish_wait(&who, &topic, kind, payload, now).await,
        None => api
            .hub
            .publish(&who, &topic, kind, payload, Vec::new(), now),
    };
    match published {
        Ok(p) => json(
            StatusCode::OK,
            serde_json::json!({"topic": topic, "offset": p.offset, "epoch": &*p.epoch, "receivers": p.receivers})
                .to_string(),
        ),
        Err(e) => hub_error(&e),
    }
}

/// Only topics the caller may subscribe to are listed: with users configured, topic names
/// are data too (an anonymous caller sees what its anonymous rights cover).
pub(crate) fn topics(req: &Request<Incoming>, api: &Api) -> Response<Body> {
    let who = match identity(req, api) {
        Ok(who) => who,
        Err(refusal) => return *refusal,
    };
    let rows: Vec<serde_json::Value> = api
        .hub
        .topics()
        .into_iter()
        .filter(|t| {
            tidings_core::Pattern::parse(&t.name).is_ok_and(|p| who.can_subscribe(&p).is_ok())
        })
        .map(|t| {
            serde_json::json!({
                "topic": &*t.name,
                "subscribers": t.subscribers,
                "last_offset": t.last_offset,
                "epoch": t.epoch.as_deref(),
                "history_messages": t.history_messages,
                "history_bytes": t.history_bytes,
            })
        })
        .collect();
    json(
        StatusCode::OK,
        serde_json::json!({ "topics": rows }).to_string(),
    )
}

/// Messages a history reply holds when `limit=` does not say; and the most it may ask for.
const HISTORY_LIMIT: (usize, usize) = (100, 1000);

/// `GET /api/history/<topic>?since=N&limit=M`: the stored messages after offset `since`
/// (default 0), at most `limit`, as the native protocol's `history` reply gives them.
pub(crate) async fn history(req: &Request<Incoming>, api: &Api) -> Response<Body> {
    let who = match identity(req, api) {
        Ok(who) => who,
        Err(refusal) => return *refusal,
    };
    let topic = percent_decode(req.uri().path().trim_start_matches("/api/history/"));
    let (mut since, mut limit) = (0u64, HISTORY_LIMIT.0);
    for (key, value) in form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes()) {
        let number = value.parse::<u64>();
        match (&*key, number) {
            ("since", Ok(n)) => since = n,
            ("limit", Ok(n)) => limit = (n as usize).min(HISTORY_LIMIT.1),
            ("since" | "limit", Err(_)) => {
                let why = format!("{key}={value:?} must be a whole number, 0 or more");
                return error(StatusCode::BAD_REQUEST, "bad_request", &why);
            }
            _ => {}
        }
    }
    let page = match &api.remote {
        Some(remote) => remote.history(&who, &topic, since, usize::MAX).await,
        None => api.hub.history(&who, &topic, since, usize::MAX),
    };
    let page = match page {
        Ok(page) => page,
        Err(e) => return hub_error(&e),
    };
    // The newest `limit` after `since`: a chat joining late wants the latest lines.
    let skip = page.messages.len().saturating_sub(limit);
    let mut body = bytes::BytesMut::new();
    body.extend_from_slice(
        format!(
            r#"{{"topic":{},"epoch":{},"earliest":{},"offset":{},"messages":"#,
            serde_json::Value::from(topic.as_str()),
            serde_json::to_string(&page.epoch.as_deref()).unwrap_or_default(),
            page.earliest,
            page.last_offset
        )
        .as_bytes(),
    );
    super::fallback::json_array(
        &mut body,
        page.messages[skip..]
            .iter()
            .map(super::fallback::message_json),
    );
    body.extend_from_slice(b"}");
    json_bytes(StatusCode::OK, body.freeze())
}

/// `GET /api/presence/<topic>`: who is subscribed under that exact name.
pub(crate) fn presence(req: &Request<Incoming>, api: &Api) -> Response<Body> {
    let who = match identity(req, api) {
        Ok(who) => who,
        Err(refusal) => return *refusal,
    };
    let topic = percent_decode(req.uri().path().trim_start_matches("/api/presence/"));
    match api.hub.presence(&who, &topic) {
        Ok(members) => {
            let members: Vec<serde_json::Value> = members
                .iter()
                .map(|m| {
                    let mut v = serde_json::json!({"client": m.client.to_string(), "user": m.user.as_deref()});
                    // A token's `info` claim, a JSON value (it parsed when the token did).
                    if let Some(info) = m.info.as_deref().and_then(|i| serde_json::from_str(i).ok()) {
                        v["info"] = info;
                    }
                    v
                })
                .collect();
            json(
                StatusCode::OK,
                serde_json::json!({"topic": topic, "members": members}).to_string(),
            )
        }
        Err(e) => hub_error(&e),
    }
}

/// The caller's identity from HTTP Basic auth or a Bearer token; anonymous without the
/// header.
pub(crate) fn identity(
    req: &Request<Incoming>,
    api: &Api,
) -> Result<Identity, Box<Response<Body>>> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Ok(api.auth.anonymous());
    };
    if let Some(token) = super::credentials::bearer(req.headers()) {
        return api
            .auth
            .token(token, peer_ip(req))
            .map_err(|e| Box::new(hub_error(&e)));
    }
    let creds = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b64| base64_decode(b64.trim()))
        .and_then(|raw| String::from_utf8(raw).ok());
    let Some((user, password)) = creds.as_deref().and_then(|c| c.split_once(':')) else {
        return Err(Box::new(error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Authorization must be HTTP Basic or Bearer",
        )));
    };
    api.auth
        .password(user, password, peer_ip(req))
        .map_err(|e| Box::new(hub_error(&e)))
}

/// With users configured, `/metrics` answers only callers who logged in (HTTP Basic): what
/// a server does is the operator's business. `None` when the caller may read it.
pub(crate) fn metrics_refusal(req: &Request<Incoming>, api: &Api) -> Option<Response<Body>> {
    if api.hub.access().is_allow_all() {
        return None;
    }
    match identity(req, api) {
        Ok(who) if who.user.is_some() => None,
        Ok(_) => {
            let mut resp = error(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "/metrics needs the credentials of a configured user (HTTP Basic)",
            );
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Basic realm=\"tidings\""),
            );
            Some(resp)
        }
        Err(refusal) => Some(*refusal),
    }
}

/// The client's address (the router puts the connection's [`Peer`] on every request).
pub(crate) fn peer_ip<B>(req: &Request<B>) -> Option<std::net::IpAddr> {
    req.extensions()
        .get::<crate::listen::Peer>()
        .map(|p| p.addr.ip())
}

pub(crate) fn hub_error(e: &HubError) -> Response<Body> {
    let (status, code) = match e {
        HubError::Denied(
            tidings_core::AuthError::BadCredentials | tidings_core::AuthError::BadToken(_),
        ) => (StatusCode::UNAUTHORIZED, "unauthorized"),
        HubError::Denied(tidings_core::AuthError::TooManyFailures { .. }) => {
            (StatusCode::TOO_MANY_REQUESTS, "too_many_failures")
        }
        HubError::Denied(_) => (StatusCode::FORBIDDEN, "forbidden"),
        HubError::ShuttingDown => (StatusCode::SERVICE_UNAVAILABLE, "shutting_down"),
        HubError::TooManyTopics(_) => (StatusCode::SERVICE_UNAVAILABLE, "too_many_topics"),
        HubError::EngineUnavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        _ => (StatusCode::BAD_REQUEST, "bad_request"),
    };
    error(status, code, &e.to_string())
}

pub(crate) fn error(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    json(
        status,
        serde_json::json!({"error": code, "message": message}).to_string(),
    )
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).ok()
}
