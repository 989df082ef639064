//! No sticky sessions: a SockJS or Engine.IO long-polling request that reaches a node which
//! does not hold its session is forwarded, through Redis, to the node that does, and that
//! node's answer goes back to the client byte for byte (see ARCHITECTURE.md, "Sessions on
//! any node").
//!
//! ```text
//! client ── request ──> node B: session held here? ── yes ──> answered here
//!                         │ no: who holds it? (Engine.IO: the sid's prefix;
//!                         │      SockJS: the P:sj:.. key, claimed by the first receiving request)
//!                         v
//!                  tunnel over Redis (tunnel.rs; tidings_proto::tunnel) ──> node A serves it as one more
//!                  HTTP connection (router::serve_forwarded) and streams the answer back
//! ```
//!
//! Streaming answers (SockJS `xhr_streaming`, `eventsource`, `htmlfile`) travel chunk by
//! chunk as the owner writes them. WebSocket upgrades are not forwarded: a SockJS WebSocket
//! has its own session on whichever node it reaches, and an Engine.IO upgrade for a session
//! held elsewhere gets the protocol's "Session ID unknown" (400), so the client stays on
//! long-polling (see docs/socketio.md).

mod owners;
mod tunnel;

use super::Shared;
use crate::config::EngineConfig;
use crate::listen::Peer;
use crate::node_id::NodeId;
use crate::transports::http::{text, Body};
use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use owners::Owners;
use redis::aio::ConnectionManager;
use std::collections::HashMap;
use std::convert::Infallible;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tidings_proto::tunnel::{self as wire, Kind};
use tokio::sync::mpsc;
use tunnel::Far;

/// Tunnels a node forwards at once, and (separately) tunnels it serves for others; beyond,
/// a request gets 503.
const MAX_TUNNELS: usize = 1024;
/// Chunks (each at most 16 KiB) waiting to be written into one tunnel's pipe: a reader too
/// slow for them loses the tunnel (its request fails) rather than growing memory.
const TUNNEL_CHUNKS: usize = 64;
/// Each direction of a tunnel's in-memory pipe.
const PIPE: usize = 64 * 1024;
/// A tunnel with no byte either way for this long is dropped: longer than any long-poll is
/// held (SockJS sends a heartbeat every 25 s, Engine.IO answers a poll within
/// `pingInterval`, 25 s) and than a streaming response's heartbeat period.
const IDLE: Duration = Duration::from_secs(60);
/// The largest request body forwarded (SockJS sends are limited by `http_api.max_body`,
/// Engine.IO posts by `socketio.max_payload`; the owner applies its own limit too).
const MAX_FORWARDED_BODY: usize = 16 * 1024 * 1024;

/// The forwarder of a node on the Redis engine; `None` with the in-memory engine.
pub(super) fn build(
    config: &crate::config::ServerConfig,
    node: &NodeId,
) -> Result<Option<Arc<Forwarder>>, crate::config::ConfigError> {
    if config.engine.kind != crate::config::EngineKind::Redis {
        return Ok(None);
    }
    Forwarder::new(&config.engine, node)
        .map(Some)
        .map_err(|reason| crate::config::ConfigError {
            field: "engine.url".into(),
            reason,
        })
}

/// Marks a request that came through a tunnel: it is answered where it arrives.
#[derive(Debug, Clone, Copy)]
pub(super) struct Forwarded;

/// What [`Forwarder::divert`] did with a request.
pub(super) enum Diverted {
    /// The node holding the session answered.
    Answered(Response<Body>),
    /// This node answers (it holds the session, nobody does, or the holder is gone).
    Local(Request<Incoming>),
}

/// Where each open tunnel's bytes from Redis go (its pump's bounded channel).
type Tunnels<K> = Mutex<HashMap<K, mpsc::Sender<Bytes>>>;

/// This node's end of every tunnel, and its id in the cluster.
pub(crate) struct Forwarder {
    /// This node's id (`crate::node_id`), as text.
    me: String,
    prefix: String,
    client: redis::Client,
    conn: ConnectionManager,
    timeout: Duration,
    owners: Owners,
    /// Tunnels this node forwards, by number: where the owner's answer goes.
    forwarding: Tunnels<u64>,
    /// Tunnels this node serves, by (forwarding node, number): where the request goes.
    serving: Tunnels<(Box<str>, u64)>,
    next: AtomicU64,
}

impl Forwarder {
    /// This node's forwarder, with lazy connections to the engine's Redis (nothing is sent
    /// until [`Forwarder::start`]).
    pub(crate) fn new(cfg: &EngineConfig, node: &NodeId) -> Result<Arc<Forwarder>, String> {
        let (client, conn) = crate::engine::connection::connect(cfg)?;
        let timeout = Duration::from_millis(cfg.timeout_ms);
        Ok(Arc::new(Forwarder {
            me: node.to_string(),
            prefix: cfg.prefix.clone(),
            owners: Owners::new(conn.clone(), &cfg.prefix),
            client,
            conn,
            timeout,
            forwarding: Mutex::new(HashMap::new()),
            serving: Mutex::new(HashMap::new()),
            next: AtomicU64::new(1),
        }))
    }

    /// This node's id: the prefix of the Engine.IO session ids it mints.
    pub(crate) fn node(&self) -> &str {
        &self.me
    }

    /// Listens on this node's channel and re-asserts its SockJS sessions, until shutdown.
    pub(super) fn start(self: &Arc<Self>, shared: &Arc<Shared>) {
        tokio::spawn(self.clone().listen(shared.clone()));
        tokio::spawn(self.clone().refresh(shared.clone()));
    }

    fn channel(&self, node: &str) -> String {
        format!("{}:n:{node}", self.prefix)
    }

    /// Answers `req` on the node holding its session, or hands it back to be answered here.
    pub(super) async fn divert(
        self: &Arc<Self>,
        req: Request<Incoming>,
        shared: &Shared,
    ) -> Diverted {
        if req.extensions().get::<Forwarded>().is_some() {
            return Diverted::Local(req);
        }
        let path = req.uri().path();
        if path == "/socket.io" || path.starts_with("/socket.io/") {
            let Some(sio) = &shared.socketio else {
                return Diverted::Local(req);
            };
            let sid = form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
                .find(|(k, _)| k == "sid")
                .map(|(_, v)| v.into_owned());
            let owner = match sid.as_deref() {
                Some(sid) if !sio.holds(sid) => owners::engineio_owner(sid).map(str::to_owned),
                _ => None,
            };
            return match owner {
                // An upgrade is not forwarded: refused as an unknown sid, the client polls on.
                Some(owner) if owner != self.me && !crate::transports::ws::is_upgrade(&req) => {
                    match self.forward(req, &owner).await {
                        Ok(resp) => Diverted::Answered(resp),
                        Err(req) => Diverted::Local(req),
                    }
                }
                _ => Diverted::Local(req),
            };
        }
        let Some(session) = shared.sockjs.session_of(path) else {
            return Diverted::Local(req);
        };
        if session.held || session.transport == "websocket" {
            return Diverted::Local(req);
        }
        let key = self.owners.key(session.endpoint, session.id);
        let creates = session.creates();
        let holder = if creates {
            self.owners.claim(&key, &self.me).await.map(Some)
        } else {
            self.owners.holder(&key).await
        };
        let owner = match holder {
            Ok(Some(owner)) if owner != self.me => owner,
            Ok(_) => return Diverted::Local(req),
            Err(e) => {
                // Without Redis each node answers for itself, as a single node would.
                tracing::debug!(error = %e, "sockjs owner lookup failed; answering here");
                return Diverted::Local(req);
            }
        };
        match self.forward(req, &owner).await {
            Ok(resp) => Diverted::Answered(resp),
            Err(req) => {
                // The holder is gone: a receiving request starts the session here.
                if creates {
                    let _ = self.owners.assert_held(&[key], &self.me).await;
                }
                Diverted::Local(req)
            }
        }
    }

    /// Sends `req` through a tunnel to `owner` and returns its answer; gives `req` back when
    /// no node listens on `owner`'s channel (it is gone).
    async fn forward(
        self: &Arc<Self>,
        req: Request<Incoming>,
        owner: &str,
    ) -> Result<Response<Body>, Request<Incoming>> {
        tracing::debug!(holder = owner, path = %req.uri().path(), "forwarding a session request");
        let peer = req.extensions().get::<Peer>().map(|p| p.addr.to_string());
        let tunnel = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(TUNNEL_CHUNKS);
        if !admit(&self.forwarding, tunnel, tx) {
            return Ok(text(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many requests forwarded to other nodes\n",
            ));
        }
        let far = Far {
            conn: self.conn.clone(),
            channel: self.channel(owner),
            me: self.me.clone(),
            tunnel,
        };
        match far
            .send(Kind::Open, peer.unwrap_or_default().as_bytes())
            .await
        {
            Some(n) if n > 0 => {}
            gone => {
                lock(&self.forwarding).remove(&tunnel);
                return match gone {
                    Some(_) => Err(req),
                    None => Ok(text(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "the node holding this session cannot be reached: redis unavailable\n",
                    )),
                };
            }
        }
        let (client_io, pipe) = tokio::io::duplex(PIPE);
        let this = self.clone();
        tokio::spawn(async move {
            tunnel::pump(pipe, rx, &far, Kind::Request, IDLE).await;
            lock(&this.forwarding).remove(&tunnel);
            // Always: the holder may not have finished (this side overflowed, timed out or
            // its client left); a cancel for a finished tunnel is ignored.
            far.send(Kind::Cancel, b"").await;
        });
        let gateway = |why: &str| {
            text(
                StatusCode::BAD_GATEWAY,
                &format!("the node holding this session did not answer: {why}\n"),
            )
        };
        let (mut sender, conn) =
            match hyper::client::conn::http1::handshake(TokioIo::new(client_io)).await {
                Ok(pair) => pair,
                Err(e) => return Ok(gateway(&e.to_string())),
            };
        tokio::spawn(conn);
        match sender.send_request(outgoing(req)).await {
            Ok(resp) => Ok(relay(resp)),
            Err(e) => Ok(gateway(&e.to_string())),
        }
    }

    /// Serves a tunnel another node opened: one more HTTP connection, fed from Redis.
    fn open(self: &Arc<Self>, shared: &Arc<Shared>, from: &str, tunnel: u64, addr: &[u8]) {
        let far = Far {
            conn: self.conn.clone(),
            channel: self.channel(from),
            me: self.me.clone(),
            tunnel,
        };
        let key: (Box<str>, u64) = (from.into(), tunnel);
        let (tx, rx) = mpsc::channel(TUNNEL_CHUNKS);
        if !admit(&self.serving, key.clone(), tx) {
            // Finished at once: the forwarding node answers 502.
            tokio::spawn(async move { far.send(Kind::Finished, b"").await });
            return;
        }
        let addr = std::str::from_utf8(addr)
            .ok()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| std::net::SocketAddr::from(([0, 0, 0, 0], 0)));
        let (conn_io, pipe) = tokio::io::duplex(PIPE);
        let peer = Peer {
            addr,
            on_reserve: false,
        };
        tokio::spawn(super::router::serve_forwarded(
            conn_io,
            peer,
            shared.clone(),
        ));
        let this = self.clone();
        tokio::spawn(async move {
            tunnel::pump(pipe, rx, &far, Kind::Response, IDLE).await;
            lock(&this.serving).remove(&key);
            far.send(Kind::Finished, b"").await;
        });
    }

    /// One message from this node's channel.
    fn dispatch(self: &Arc<Self>, shared: &Arc<Shared>, bytes: &[u8]) {
        let Some(m) = wire::decode(bytes) else {
            return;
        };
        match m.kind {
            Kind::Open => self.open(shared, m.node, m.tunnel, m.payload),
            Kind::Request => pass(&self.serving, &(m.node.into(), m.tunnel), m.payload),
            Kind::Cancel => {
                lock(&self.serving).remove(&(m.node.into(), m.tunnel));
            }
            Kind::Response => pass(&self.forwarding, &m.tunnel, m.payload),
            Kind::Finished => {
                lock(&self.forwarding).remove(&m.tunnel);
            }
        }
    }

    /// Subscribes to this node's channel and dispatches what arrives; reconnects with
    /// backoff. Tunnels open while the connection was down may have lost bytes: they end
    /// by their idle deadline.
    async fn listen(self: Arc<Self>, shared: Arc<Shared>) {
        let shutdown = shared.shutdown.clone();
        let mut backoff = Duration::from_millis(100);
        loop {
            let connected = tokio::select! {
                c = tokio::time::timeout(self.timeout, self.client.get_async_pubsub()) => c,
                _ = shutdown.cancelled() => return,
            };
            let subscribed = match connected {
                Ok(Ok(mut pubsub)) => match pubsub.subscribe(self.channel(&self.me)).await {
                    Ok(()) => Ok(pubsub),
                    Err(e) => Err(e.to_string()),
                },
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("no answer in time".to_owned()),
            };
            match subscribed {
                Ok(pubsub) => {
                    backoff = Duration::from_millis(100);
                    let mut messages = pubsub.into_on_message();
                    loop {
                        tokio::select! {
                            msg = messages.next() => match msg {
                                Some(msg) => self.dispatch(&shared, msg.get_payload_bytes()),
                                None => break,
                            },
                            _ = shutdown.cancelled() => return,
                        }
                    }
                    tracing::warn!("session forwarding: pub/sub connection lost; reconnecting");
                }
                Err(why) => {
                    tracing::warn!(error = %why, "session forwarding: pub/sub connect failed; retrying in {backoff:?}");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.cancelled() => return,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// Every `owners::REFRESH`, this node's SockJS sessions are its own for another TTL.
    async fn refresh(self: Arc<Self>, shared: Arc<Shared>) {
        let mut tick = tokio::time::interval(owners::REFRESH);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let keys: Vec<String> = shared
                        .sockjs
                        .held_sessions()
                        .iter()
                        .map(|(endpoint, id)| self.owners.key(endpoint, id))
                        .collect();
                    if let Err(e) = self.owners.assert_held(&keys, &self.me).await {
                        tracing::warn!(error = %e, "session forwarding: could not refresh SockJS owners");
                    }
                }
                _ = shared.shutdown.cancelled() => return,
            }
        }
    }
}

fn lock<K, V>(map: &Mutex<HashMap<K, V>>) -> std::sync::MutexGuard<'_, HashMap<K, V>> {
    map.lock().unwrap_or_else(|e| e.into_inner())
}

/// Registers a tunnel unless `MAX_TUNNELS` are open.
fn admit<K: Hash + Eq>(map: &Tunnels<K>, key: K, tx: mpsc::Sender<Bytes>) -> bool {
    let mut map = lock(map);
    if map.len() >= MAX_TUNNELS {
        return false;
    }
    map.insert(key, tx);
    true
}

/// Hands bytes from Redis to a tunnel's pump; a tunnel whose pump is `TUNNEL_CHUNKS`
/// behind is dropped (the pub/sub reader never waits for one slow tunnel).
fn pass<K: Hash + Eq>(map: &Tunnels<K>, key: &K, payload: &[u8]) {
    let mut map = lock(map);
    if let Some(tx) = map.get(key) {
        if tx.try_send(Bytes::copy_from_slice(payload)).is_err() {
            map.remove(key);
        }
    }
}

/// Headers that describe one hop's connection, not the message.
const HOP_BY_HOP: [header::HeaderName; 4] = [
    header::CONNECTION,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::TE,
];

/// The client's request as the owner gets it: HTTP/1.1 in origin form, one request per
/// tunnel (`Connection: close`), the body within `MAX_FORWARDED_BODY`.
fn outgoing(req: Request<Incoming>) -> Request<Limited<Incoming>> {
    let (mut parts, body) = req.into_parts();
    if !parts.headers.contains_key(header::HOST) {
        if let Some(host) = parts
            .uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        {
            parts.headers.insert(header::HOST, host);
        }
    }
    if let Some(origin_form) = parts.uri.path_and_query().cloned() {
        parts.uri = origin_form.into();
    }
    parts.version = hyper::Version::HTTP_11;
    parts.extensions = Default::default();
    for name in &HOP_BY_HOP {
        parts.headers.remove(name);
    }
    parts
        .headers
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    Request::from_parts(parts, Limited::new(body, MAX_FORWARDED_BODY))
}

/// The owner's answer as this node sends it: same status, headers and bytes, re-framed for
/// the client's connection. A tunnel lost mid-answer ends the body early.
fn relay(resp: Response<Incoming>) -> Response<Body> {
    let (mut parts, body) = resp.into_parts();
    for name in &HOP_BY_HOP {
        parts.headers.remove(name);
    }
    let chunks = body
        .into_data_stream()
        .take_while(|chunk| std::future::ready(chunk.is_ok()))
        .map(|chunk| Ok::<_, Infallible>(Frame::data(chunk.unwrap_or_default())));
    Response::from_parts(parts, BodyExt::boxed(StreamBody::new(chunks)))
}
