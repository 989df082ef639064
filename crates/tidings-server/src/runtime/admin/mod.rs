//! The admin API (`/api/admin/...`), what the dashboard at `/admin` reads and what scripts
//! can use: the node, topics, connections, queues and recent auth failures, and the actions
//! publish, disconnect, unsubscribe, purge. See ARCHITECTURE.md ("Admin API and dashboard") and
//! docs/http-api.md.
//!
//! Off unless `[admin]` is configured (404 then). Every endpoint but `login` needs an admin:
//! the session cookie `login` set, HTTP Basic with an admin user, or a Bearer token whose
//! subject `admin.token_users` lists. Logins are throttled by the server's login guard.
//! Everything is read from the hub and the authenticator; nothing here is a second registry.

mod cluster_queues;
mod live;
mod nodes;
mod views;

pub(crate) use nodes::ticker;

use super::Shared;
use crate::config::AdminConfig;
use crate::drivers::api::{error, hub_error, peer_ip};
use crate::transports::http::{json, Body};
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::{header, Method, Request, Response, StatusCode};
use serde_json::{json as j, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tidings_core::{AuthMethod, Identity, PayloadKind, Rights, SessionId};
use views::{connections, events, node, query_of, topic, topics};

/// The cookie holding an admin session's id.
const COOKIE: &str = "tidings_admin";
/// Largest JSON body of an admin request.
const MAX_BODY: usize = 1 << 20;

/// Marks a request that came over TLS (the session cookie is then `Secure`).
#[derive(Clone, Copy)]
pub(crate) struct OverTls;

/// The admin side of the server: its config and the logged-in admins.
pub(crate) struct Admin {
    config: AdminConfig,
    /// Session id (hex) -> admin. At most `admin.max_sessions`.
    sessions: Mutex<HashMap<String, AdminSession>>,
    started: Instant,
    /// This node's id in the cluster view (`crate::node_id`: the one presence and
    /// forwarding use too).
    node_id: String,
    /// Publishes and deliveries per second over the last second, measured by the ticker.
    rates: Mutex<nodes::Rates>,
    /// The shared snapshot the live streams send, and their bound.
    live: live::Live,
    /// The all-rights identity the admin's hub calls run under is built per admin name.
    all: Arc<Rights>,
    /// An argon2 hash of a random password, checked for unknown names (made at the first).
    stand_in: std::sync::OnceLock<String>,
}

struct AdminSession {
    name: String,
    created: Instant,
}

impl Admin {
    pub(crate) fn new(config: AdminConfig, node: &crate::node_id::NodeId) -> Admin {
        Admin {
            config,
            sessions: Mutex::new(HashMap::new()),
            started: Instant::now(),
            node_id: node.to_string(),
            rates: Mutex::new(nodes::Rates::default()),
            live: live::Live::new(),
            all: Arc::new(Rights::all()),
            stand_in: std::sync::OnceLock::new(),
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.config.enabled()
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<String, AdminSession>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new session for `name`; the oldest goes when the map is full.
    fn open(&self, name: &str) -> String {
        let mut raw = [0u8; 32];
        getrandom::getrandom(&mut raw).expect("the OS random source");
        let id: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        let ttl = self.config.session_ttl();
        let mut map = self.sessions();
        map.retain(|_, s| s.created.elapsed() < ttl);
        while map.len() >= self.config.max_sessions {
            let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.created)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            map.remove(&oldest);
        }
        map.insert(
            id.clone(),
            AdminSession {
                name: name.to_owned(),
                created: Instant::now(),
            },
        );
        id
    }

    fn identity(&self, name: &str) -> Identity {
        Identity::new(Some(name), self.all.clone(), AuthMethod::Password, None)
    }

    /// Checks an admin user's password (argon2, off the async threads). An unknown name is
    /// checked against a stand-in hash, so the time taken does not tell which names exist.
    async fn check_password(&self, user: &str, password: &str) -> bool {
        let known = self.config.users.iter().find(|u| u.name == user);
        let hash = match (known, self.stand_in.get()) {
            (Some(u), _) => u.password_hash.clone(),
            (None, Some(h)) => h.clone(),
            (None, None) => {
                let h = tokio::task::spawn_blocking(stand_in_hash)
                    .await
                    .unwrap_or_default();
                self.stand_in.get_or_init(|| h).clone()
            }
        };
        let password = password.to_owned();
        let matched =
            tokio::task::spawn_blocking(move || tidings_core::verify_argon2(&hash, &password))
                .await
                .unwrap_or(false);
        matched && known.is_some()
    }
}

/// A hash with the parameters of `tidings hash-password` (the default argon2id ones) of a
/// password nobody knows; empty when hashing fails (then unknown names answer at once).
fn stand_in_hash() -> String {
    let mut raw = [0u8; 32];
    if getrandom::getrandom(&mut raw).is_err() {
        return String::new();
    }
    let password: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    tidings_core::hash_argon2(&password, &raw[..16]).unwrap_or_default()
}

/// Serves `/api/admin/...`.
pub(crate) async fn handle(req: Request<Incoming>, shared: &Arc<Shared>) -> Response<Body> {
    let admin = &shared.admin;
    if !admin.enabled() {
        return error(
            StatusCode::NOT_FOUND,
            "not_found",
            "the admin API is off: configure [admin] (docs/configuration.md)",
        );
    }
    let path = req.uri().path().trim_start_matches("/api/admin").to_owned();
    let method = req.method().clone();
    if method == Method::POST {
        // A cross-site form cannot send JSON, and the origin policy covers the rest.
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.starts_with("application/json"));
        if !is_json {
            return error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "bad_request",
                "admin actions take Content-Type: application/json",
            );
        }
        if crate::transports::http::origin::forged(&req, &shared.api.allowed_origins) {
            return error(StatusCode::FORBIDDEN, "forbidden", "a cross-site request");
        }
    }
    if (&method, path.as_str()) == (&Method::POST, "/login") {
        return login(req, shared).await;
    }
    let admitted = match authorize(&req, shared).await {
        Ok(a) => a,
        Err(refusal) => return *refusal,
    };
    if (&method, path.as_str()) == (&Method::GET, "/live") {
        return live::stream(shared, admitted).await;
    }
    let name = admitted.name;
    let hub = &shared.hub;
    let query = query_of(&req);
    match (&method, path.as_str()) {
        (&Method::GET, "/me") => ok(j!({ "user": name })),
        (&Method::POST, "/logout") => {
            if let Some(id) = cookie(&req) {
                admin.sessions().remove(&id);
            }
            let mut resp = ok(j!({ "user": name }));
            set_cookie(
                &mut resp,
                &format!("{COOKIE}=; Max-Age=0; Path=/; HttpOnly; SameSite=Strict"),
            );
            resp
        }
        (&Method::GET, "/node") => ok(node(shared)),
        (&Method::GET, "/nodes") => ok(nodes::nodes(shared).await),
        (&Method::GET, "/topics") => ok(topics(hub, &query)),
        (&Method::GET, p) if p.starts_with("/topics/") => {
            topic(hub, &admin.identity(&name), &decode(&p["/topics/".len()..]))
        }
        (&Method::GET, "/connections") => ok(connections(hub, &query)),
        (&Method::GET, p) if p.starts_with("/connections/") => {
            let id = &p["/connections/".len()..];
            let id = match connection_id(id) {
                Ok(id) => id,
                Err(refusal) => return *refusal,
            };
            let Some(subs) = hub.session_subscriptions(id) else {
                return error(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    &format!("no connection {id}"),
                );
            };
            let row = hub.sessions().into_iter().find(|s| s.id == id);
            ok(j!({
                "id": id.to_string(),
                "protocol": row.as_ref().map(|s| s.meta.protocol),
                "user": row.as_ref().and_then(|s| s.identity.user.as_deref().map(str::to_owned)),
                "subscriptions": subs.iter().map(|k| &**k).collect::<Vec<_>>(),
            }))
        }
        (&Method::GET, "/queues") => ok(cluster_queues::queues(shared).await),
        (&Method::GET, "/events") => ok(events(shared)),
        (&Method::POST, p) if p.starts_with("/queues/") && p.ends_with("/purge") => {
            let queue = decode(&p["/queues/".len()..p.len() - "/purge".len()]);
            cluster_queues::purge(shared, &name, &queue).await
        }
        (&Method::POST, "/publish") => publish(req, shared, &name).await,
        (&Method::POST, p) if p.starts_with("/connections/") => {
            let rest = &p["/connections/".len()..];
            let Some((id, action)) = rest.split_once('/') else {
                return error(StatusCode::NOT_FOUND, "not_found", "no such admin endpoint");
            };
            let id = match connection_id(id) {
                Ok(id) => id,
                Err(refusal) => return *refusal,
            };
            match action {
                "disconnect" => {
                    if !hub.close_session(id) {
                        return error(
                            StatusCode::NOT_FOUND,
                            "not_found",
                            &format!("no connection {id}"),
                        );
                    }
                    tracing::info!(admin = %name, connection = %id, "admin: disconnected a connection");
                    ok(j!({ "disconnected": id.to_string() }))
                }
                "unsubscribe" => {
                    let body = match body_json(req).await {
                        Ok(v) => v,
                        Err(resp) => return *resp,
                    };
                    let Some(topic) = body["topic"].as_str() else {
                        return error(
                            StatusCode::BAD_REQUEST,
                            "bad_request",
                            "unsubscribe needs \"topic\"",
                        );
                    };
                    match hub.unsubscribe_session(id, topic) {
                        Ok(()) => {
                            tracing::info!(admin = %name, connection = %id, topic, "admin: unsubscribed a connection");
                            ok(j!({ "unsubscribed": id.to_string(), "topic": topic }))
                        }
                        Err(e) => error(StatusCode::NOT_FOUND, "not_found", &e.to_string()),
                    }
                }
                _ => error(StatusCode::NOT_FOUND, "not_found", "no such admin endpoint"),
            }
        }
        _ => error(StatusCode::NOT_FOUND, "not_found", "no such admin endpoint"),
    }
}

/// A connection id as the API shows it (`c17`).
fn connection_id(text: &str) -> Result<SessionId, Box<Response<Body>>> {
    text.strip_prefix('c')
        .and_then(|n| n.parse().ok())
        .map(SessionId)
        .ok_or_else(|| {
            Box::new(error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "a connection id looks like c17",
            ))
        })
}

fn ok(v: Value) -> Response<Body> {
    json(StatusCode::OK, v.to_string())
}

/// `POST /api/admin/login` `{"user","password"}`: sets the session cookie.
async fn login(req: Request<Incoming>, shared: &Arc<Shared>) -> Response<Body> {
    let from = peer_ip(&req);
    let tls = req.extensions().get::<OverTls>().is_some();
    let body = match body_json(req).await {
        Ok(v) => v,
        Err(resp) => return *resp,
    };
    let (Some(user), Some(password)) = (body["user"].as_str(), body["password"].as_str()) else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "login takes {\"user\",\"password\"}",
        );
    };
    let auth = &shared.native.auth;
    if let Err(e) = auth.admit(from, user) {
        return hub_error(&e);
    }
    if !shared.admin.check_password(user, password).await {
        auth.login_failed(from, user, "admin login: unknown admin or wrong password");
        return error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "unknown admin or wrong password",
        );
    }
    tracing::info!(admin = user, "admin: logged in");
    let id = shared.admin.open(user);
    let mut resp = ok(j!({ "user": user }));
    let secure = if tls { "; Secure" } else { "" };
    let max_age = shared.admin.config.session_ttl_secs;
    set_cookie(
        &mut resp,
        &format!("{COOKIE}={id}; Max-Age={max_age}; Path=/; HttpOnly; SameSite=Strict{secure}"),
    );
    resp
}

fn set_cookie(resp: &mut Response<Body>, value: &str) {
    if let Ok(v) = header::HeaderValue::from_str(value) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
}

fn cookie<B>(req: &Request<B>) -> Option<String> {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            kv.trim()
                .strip_prefix(COOKIE)?
                .strip_prefix('=')
                .map(str::to_owned)
        })
}

/// Who an admin request comes from, and what keeps it admitted (checked again by a live
/// stream before each snapshot).
struct Admitted {
    name: String,
    /// The session cookie it came with: a logout or the session's end ends its stream.
    session: Option<String>,
    /// A token's expiry (the hub's clock).
    expires_at: Option<u64>,
}

impl Admin {
    /// Whether `admitted` is still let in: its session is still open, its token unexpired.
    fn still_admitted(&self, admitted: &Admitted, now_ms: u64) -> bool {
        let session_open = admitted.session.as_ref().is_none_or(|id| {
            self.sessions()
                .get(id)
                .is_some_and(|s| s.created.elapsed() < self.config.session_ttl())
        });
        session_open && admitted.expires_at.is_none_or(|at| now_ms < at)
    }
}

/// The admin, from the session cookie, HTTP Basic or a Bearer token.
async fn authorize(
    req: &Request<Incoming>,
    shared: &Arc<Shared>,
) -> Result<Admitted, Box<Response<Body>>> {
    let admitted = |name: String, session, expires_at| Admitted {
        name,
        session,
        expires_at,
    };
    let admin = &shared.admin;
    let unauthorized = || {
        Box::new(error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "log in first (POST /api/admin/login), or send an admin's HTTP Basic credentials or token",
        ))
    };
    if let Some(id) = cookie(req) {
        let ttl = admin.config.session_ttl();
        let mut map = admin.sessions();
        match map.get(&id) {
            Some(s) if s.created.elapsed() < ttl => {
                return Ok(admitted(s.name.clone(), Some(id), None))
            }
            Some(_) => {
                map.remove(&id);
            }
            None => {}
        }
    }
    let from = peer_ip(req);
    let auth = &shared.native.auth;
    if let Some(token) = crate::drivers::credentials::bearer(req.headers()) {
        let who = auth
            .token(token, from)
            .map_err(|e| Box::new(hub_error(&e)))?;
        let name = who.name().to_owned();
        if (who.admin && admin.config.admin_tokens) || admin.config.token_users.contains(&name) {
            return Ok(admitted(name, None, who.expires_at));
        }
        return Err(Box::new(error(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this token's subject is no admin",
        )));
    }
    let basic = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b64| {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .ok()
        })
        .and_then(|raw| String::from_utf8(raw).ok());
    let Some((user, password)) = basic.as_deref().and_then(|c| c.split_once(':')) else {
        return Err(unauthorized());
    };
    auth.admit(from, user)
        .map_err(|e| Box::new(hub_error(&e)))?;
    if admin.check_password(user, password).await {
        Ok(admitted(user.to_owned(), None, None))
    } else {
        auth.login_failed(from, user, "admin login: unknown admin or wrong password");
        Err(unauthorized())
    }
}

async fn body_json(req: Request<Incoming>) -> Result<Value, Box<Response<Body>>> {
    let body = Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|_| {
            Box::new(error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                "body too large",
            ))
        })?
        .to_bytes();
    serde_json::from_slice(&body).map_err(|e| {
        Box::new(error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            &format!("body is not JSON: {e}"),
        ))
    })
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// `POST /api/admin/publish` `{"topic", "data"|"text"}`.
async fn publish(req: Request<Incoming>, shared: &Arc<Shared>, name: &str) -> Response<Body> {
    let body = match body_json(req).await {
        Ok(v) => v,
        Err(resp) => return *resp,
    };
    let Some(topic) = body["topic"].as_str() else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "publish needs \"topic\"",
        );
    };
    let (kind, payload) = match (body.get("data"), body.get("text").and_then(Value::as_str)) {
        (Some(d), None) => (PayloadKind::Json, Bytes::from(d.to_string())),
        (None, Some(t)) => (PayloadKind::Text, Bytes::from(t.to_owned())),
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "publish takes exactly one of \"data\" or \"text\"",
            )
        }
    };
    let who = shared.admin.identity(name);
    let now = crate::clock::now_ms();
    // With the Redis engine, through Redis as every driver's publish: numbered there and
    // delivered on every node.
    let published = match &shared.api.remote {
        Some(remote) => remote.publish_wait(&who, topic, kind, payload, now).await,
        None => shared
            .hub
            .publish(&who, topic, kind, payload, Vec::new(), now),
    };
    match published {
        Ok(p) => {
            tracing::info!(admin = name, topic, offset = p.offset, "admin: published");
            ok(
                j!({ "topic": topic, "offset": p.offset, "epoch": &*p.epoch, "receivers": p.receivers }),
            )
        }
        Err(e) => hub_error(&e),
    }
}
