//! Engine.IO 4 (<https://github.com/socketio/engine.io-protocol>) on tidings' own pieces:
//! long-polling on our HTTP layer, WebSocket through the `transports/ws` seam.
//!
//! ```text
//! GET  <path>?EIO=4&transport=polling              handshake: 0{"sid",..}
//! GET  <path>?EIO=4&transport=polling&sid=..       long-poll: packets \x1e-separated (one receiver)
//! POST <path>?EIO=4&transport=polling&sid=..       packets from the client ("ok")
//! GET  <path>?EIO=4&transport=websocket            a WebSocket session from the start
//! GET  <path>?EIO=4&transport=websocket&sid=..     upgrade: 2probe / 3probe, the long-poll gets 6, then 5
//! ```
//! A request the reference server would refuse gets its status and JSON body
//! (`{"code":1,"message":"Session ID unknown"}`, see `refusal.rs`). What runs on the sessions
//! is a [`Handler`]; Socket.IO is one (`../engine.rs`), the conformance fixture's echo another.
//!
//! Bounded: sessions (`max_sessions`), messages queued per session (`max_buffered_packets`;
//! PINGs are flags, never refused), a long-polling body and a WebSocket message
//! (`max_payload`), one long-poll and one POST per session at a time, an upgrade's probe
//! phase (10 s, as the reference).

mod polling;
mod refusal;
mod socket;
mod websocket;

pub use socket::{CloseReason, SendError, Socket, Transport};

use crate::config::WebSocketConfig;
use crate::transports::http::{self as http_util, Body};
use crate::transports::ws;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use refusal::Refusal;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio_util::task::TaskTracker;

/// What runs on Engine.IO sessions. Called synchronously from the transports: do not block.
pub trait Handler: Send + Sync + Sized + 'static {
    /// Per-session state of the layer above (kept in [`Socket::data`]).
    type Data: Default + Send + Sync + 'static;
    /// A session was opened (its OPEN packet is on its way).
    fn on_open(&self, socket: &Arc<Socket<Self>>);
    /// A text message from the client.
    fn on_message(&self, socket: &Arc<Socket<Self>>, text: &str);
    /// A binary message from the client.
    fn on_binary(&self, socket: &Arc<Socket<Self>>, data: Bytes);
    /// The transport is about to take what is queued: top the queue up now (a layer that
    /// keeps its own bounded queue pulls from it here instead of running a task to push).
    fn on_drain(&self, _socket: &Arc<Socket<Self>>) {}
    /// The session ended; called once.
    fn on_close(&self, socket: &Arc<Socket<Self>>, reason: CloseReason);
}

/// Engine.IO settings (from `[socketio]` and `[websocket]`).
#[derive(Debug, Clone)]
pub struct Options {
    pub ping_interval: Duration,
    pub ping_timeout: Duration,
    /// Largest long-polling body or WebSocket message, in bytes.
    pub max_payload: u64,
    pub polling: bool,
    pub websocket: bool,
    /// Most sessions at once; handshakes beyond get 503.
    pub max_sessions: usize,
    /// Most sessions one client address (IPv6: /64) may hold; handshakes beyond get 503.
    pub max_sessions_per_ip: usize,
    /// Messages queued per session ahead of its transport.
    pub max_buffered_packets: usize,
    /// The WebSocket seam's settings: buffers, permessage-deflate (`compression`); the
    /// message limit is `max_payload` and origins are not checked (Socket.IO has its CORS).
    pub ws: WebSocketConfig,
    /// Put before every session id this endpoint mints: in a cluster, the node's id, so any
    /// node can tell which one holds a session (empty on one node).
    pub sid_prefix: String,
}

/// How long a WebSocket has between its probe and the UPGRADE packet (the reference's
/// `upgradeTimeout`).
const UPGRADE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a session the server closed waits for the long-poll that fetches its goodbye.
const GOODBYE_GRACE: Duration = Duration::from_secs(5);

/// What every session of one endpoint shares.
pub(crate) struct Inner<H: Handler> {
    pub(crate) handler: H,
    options: Options,
    sessions: Mutex<HashMap<Box<str>, Arc<Socket<H>>>>,
    /// Whose each session is, and how many each address holds (both bounded by sessions).
    owners: Mutex<Owners>,
    /// WebSocket sessions run as tasks here, so shutdown waits for their goodbyes.
    tasks: TaskTracker,
}

impl<H: Handler> Inner<H> {
    fn sessions(&self) -> MutexGuard<'_, HashMap<Box<str>, Arc<Socket<H>>>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn owners(&self) -> MutexGuard<'_, Owners> {
        self.owners.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn forget(&self, id: &str) {
        self.sessions().remove(id);
        self.owners().release(id);
    }

    /// Whether `from` may open another session.
    fn admits(&self, from: Option<IpAddr>) -> bool {
        from.is_none_or(|ip| self.owners().held(ip) < self.options.max_sessions_per_ip)
    }

    /// A new session for a client at `from`, registered; `None` when `max_sessions` are
    /// open, or `max_sessions_per_ip` from that address.
    fn open(
        self: &Arc<Self>,
        transport: Transport,
        from: Option<IpAddr>,
    ) -> Option<Arc<Socket<H>>> {
        let mut sessions = self.sessions();
        if sessions.len() >= self.options.max_sessions || !self.admits(from) {
            return None;
        }
        let id = loop {
            let id = format!("{}{}", self.options.sid_prefix, random_sid());
            if !sessions.contains_key(id.as_str()) {
                break id;
            }
        };
        let socket = Arc::new(Socket::new(id.clone(), self.clone(), transport, from));
        if let Some(ip) = from {
            self.owners().take(&id, ip);
        }
        sessions.insert(id.into_boxed_str(), socket.clone());
        Some(socket)
    }

    fn open_packet(&self, id: &str, transport: Transport) -> String {
        let o = &self.options;
        let upgrades: &[&str] = if transport == Transport::Polling && o.websocket {
            &["websocket"]
        } else {
            &[]
        };
        tidings_proto::engineio::open_packet(
            id,
            upgrades,
            millis(o.ping_interval),
            millis(o.ping_timeout),
            o.max_payload,
        )
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A session id: 15 random bytes in base64url (20 characters, like the reference's).
fn random_sid() -> String {
    use base64::Engine as _;
    let mut bytes = [0u8; 15];
    if getrandom::getrandom(&mut bytes).is_err() {
        // No OS randomness: std's per-process random hasher keys and a counter still make
        // ids unique and hard to guess.
        use std::hash::{BuildHasher, Hasher};
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(n);
        let a = h.finish().to_le_bytes();
        h.write_u64(n);
        let b = h.finish().to_le_bytes();
        bytes[..8].copy_from_slice(&a);
        bytes[8..].copy_from_slice(&b[..7]);
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// An Engine.IO endpoint: its sessions and the [`Handler`] running on them.
pub struct EngineIo<H: Handler> {
    inner: Arc<Inner<H>>,
}

impl<H: Handler> std::fmt::Debug for EngineIo<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineIo").finish_non_exhaustive()
    }
}

/// The query of an Engine.IO request.
struct Query {
    eio: Option<String>,
    transport: Option<String>,
    sid: Option<String>,
}

impl Query {
    fn parse(query: Option<&str>) -> Query {
        let mut q = Query {
            eio: None,
            transport: None,
            sid: None,
        };
        for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            match &*k {
                "EIO" => q.eio = Some(v.into_owned()),
                "transport" => q.transport = Some(v.into_owned()),
                "sid" => q.sid = Some(v.into_owned()),
                _ => {}
            }
        }
        q
    }
}

/// The client address of each session and the count per address.
#[derive(Default)]
struct Owners {
    of: HashMap<Box<str>, IpAddr>,
    count: HashMap<IpAddr, usize>,
}

impl Owners {
    fn held(&self, ip: IpAddr) -> usize {
        self.count
            .get(&crate::listen::address_key(ip))
            .copied()
            .unwrap_or(0)
    }

    fn take(&mut self, id: &str, ip: IpAddr) {
        let ip = crate::listen::address_key(ip);
        self.of.insert(id.into(), ip);
        *self.count.entry(ip).or_insert(0) += 1;
    }

    fn release(&mut self, id: &str) {
        let Some(ip) = self.of.remove(id) else { return };
        if let Some(n) = self.count.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.count.remove(&ip);
            }
        }
    }
}

/// The client's address, which the HTTP listener puts on every request.
fn peer_ip<B>(req: &Request<B>) -> Option<IpAddr> {
    req.extensions()
        .get::<crate::listen::Peer>()
        .map(|p| p.addr.ip())
}

impl<H: Handler> EngineIo<H> {
    /// The WebSocket settings' `allowed_origins` apply as on every WebSocket endpoint (the
    /// one origin policy, docs/security.md); `max_message` becomes `max_payload`.
    pub fn new(handler: H, mut options: Options, tasks: TaskTracker) -> Self {
        options.ws.max_message = usize::try_from(options.max_payload).unwrap_or(usize::MAX);
        EngineIo {
            inner: Arc::new(Inner {
                handler,
                options,
                sessions: Mutex::new(HashMap::new()),
                owners: Mutex::new(Owners::default()),
                tasks,
            }),
        }
    }

    pub fn handler(&self) -> &H {
        &self.inner.handler
    }

    /// Whether this node holds the session `sid`.
    pub fn holds(&self, sid: &str) -> bool {
        self.inner.sessions().contains_key(sid)
    }

    /// Every open session.
    pub fn sockets(&self) -> Vec<Arc<Socket<H>>> {
        self.inner.sessions().values().cloned().collect()
    }

    /// Open sessions.
    pub fn len(&self) -> usize {
        self.inner.sessions().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Answers one request under the endpoint's path (CORS is the caller's).
    pub async fn handle(&self, mut req: Request<Incoming>) -> Response<Body> {
        let q = Query::parse(req.uri().query());
        let upgrade = ws::is_upgrade(&req);
        match self.route(&mut req, &q, upgrade) {
            Ok(Route::Poll(socket)) => polling::receive(socket).await,
            Ok(Route::Post(socket)) => polling::send(socket, req).await,
            Ok(Route::Done(resp)) => resp,
            Err(refusal) => refusal.response(upgrade),
        }
    }

    /// The reference server's checks (`verify`), in its order, then the transport.
    fn route(
        &self,
        req: &mut Request<Incoming>,
        q: &Query,
        upgrade: bool,
    ) -> Result<Route<H>, Refusal> {
        let o = &self.inner.options;
        let transport = match q.transport.as_deref() {
            Some("polling") if o.polling => Transport::Polling,
            Some("websocket") if o.websocket => Transport::WebSocket,
            _ => return Err(Refusal::UnknownTransport),
        };
        let v4 = q.eio.as_deref() == Some("4");
        if let Some(sid) = &q.sid {
            let socket = self
                .inner
                .sessions()
                .get(sid.as_str())
                .cloned()
                .ok_or(Refusal::UnknownSid)?;
            if !v4 {
                return Err(Refusal::BadRequest);
            }
            // A WebSocket upgrade: GET over HTTP/1.1, CONNECT over HTTP/2 (RFC 8441;
            // `ws::is_upgrade` tells them apart).
            if upgrade && transport == Transport::WebSocket {
                if !socket.upgradable() {
                    return Err(Refusal::BadRequest);
                }
                return Ok(Route::Done(websocket::upgrade(
                    req,
                    &self.inner,
                    Some(socket),
                )));
            }
            if transport != Transport::Polling || socket.transport() != Transport::Polling {
                return Err(Refusal::BadRequest);
            }
            return match *req.method() {
                Method::GET => Ok(Route::Poll(socket)),
                Method::POST => Ok(Route::Post(socket)),
                _ => Err(Refusal::BadRequest),
            };
        }
        if req.method() != Method::GET && !upgrade {
            return Err(Refusal::BadHandshakeMethod);
        }
        if transport == Transport::WebSocket && !upgrade {
            return Err(Refusal::BadRequest);
        }
        if !v4 {
            return Err(Refusal::UnsupportedProtocolVersion);
        }
        let from = peer_ip(req);
        if self.inner.sessions().len() >= o.max_sessions || !self.inner.admits(from) {
            return Err(Refusal::TooManySessions);
        }
        match transport {
            Transport::WebSocket => Ok(Route::Done(websocket::upgrade(req, &self.inner, None))),
            Transport::Polling => {
                let socket = self
                    .inner
                    .open(Transport::Polling, from)
                    .ok_or(Refusal::TooManySessions)?;
                let open = self.inner.open_packet(socket.id(), Transport::Polling);
                self.inner.handler.on_open(&socket);
                tokio::spawn(polling::heartbeat(socket));
                Ok(Route::Done(polling::payload_response(Bytes::from(open))))
            }
        }
    }
}

enum Route<H: Handler> {
    Poll(Arc<Socket<H>>),
    Post(Arc<Socket<H>>),
    Done(Response<Body>),
}

/// `200 ok`, the reference's answer to a POST.
fn ok_response() -> Response<Body> {
    // text/html, as the reference: text/plain made some browsers offer a download.
    http_util::respond(StatusCode::OK, "text/html", Bytes::from_static(b"ok"))
}
