//! The top of the server: starts everything, routes HTTP requests, and stops.
//!
//! `start` builds the hub, binds every listener (through `listen`), builds each driver with
//! only what it needs (its config slice, the hub, the task tracker and shutdown token), and
//! mounts the HTTP endpoints (`router`). On shutdown it stops accepting, lets every session
//! flush and say goodbye, and waits for them up to the grace deadline.

mod admin;
mod forward;
mod metrics;
mod pages;
mod router;
mod tls;

use crate::auth::{Authenticator, ConfiguredUsers};
use crate::config::{Listen, ServerConfig};
use crate::drivers::api::Api;
use crate::drivers::fallback::Fallbacks;
use crate::drivers::json_ws::{Keepalive, Native};
use crate::drivers::stomp::Broker;
use crate::drivers::udp::stats::UdpStats;
use crate::drivers::Context;
use crate::listen;
use crate::transports::socketio::SocketIo;
use crate::transports::sockjs::{EndpointOptions, SockJs};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tidings_core::Hub;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// What the HTTP router and the shutdown path need. Drivers never see this: each got its
/// own slice when it was built.
pub(crate) struct Shared {
    pub(crate) hub: Arc<Hub>,
    /// Cancelled when shutdown begins: accept loops stop, drivers say goodbye.
    pub(crate) shutdown: CancellationToken,
    /// Every connection task, so shutdown can wait for them to finish.
    pub(crate) tasks: TaskTracker,
    pub(crate) shutdown_grace: Duration,
    /// WebSocket settings of `/ws`, `/echo` and `/stomp` upgrades.
    pub(crate) websocket: Arc<crate::config::WebSocketConfig>,
    /// What `/ws` connections share (hub, authenticator, keepalive).
    pub(crate) native: Arc<Native>,
    /// SockJS endpoints and their sessions (SockJS keeps sessions between requests).
    pub(crate) sockjs: SockJs,
    /// Counters of the UDP endpoint, read by `/metrics`.
    pub(crate) udp: Arc<UdpStats>,
    /// Socket.IO at `/socket.io/`, joined to the hub; `None` when disabled.
    pub(crate) socketio: Option<SocketIo>,
    pub(crate) api: Api,
    pub(crate) fallbacks: Fallbacks,
    pub(crate) broker: Arc<Broker>,
    /// Connections held on every TCP listener, and the limits they are held to.
    pub(crate) connections: Arc<listen::ConnLimits>,
    /// How long an HTTP request head may take (slowloris).
    pub(crate) handshake_timeout: Duration,
    /// The admin API's accounts and logged-in admins (off unless `[admin]` is configured).
    pub(crate) admin: admin::Admin,
    /// With the Redis engine: session requests for another node go there (no sticky
    /// sessions needed in front of a cluster).
    pub(crate) forward: Option<Arc<forward::Forwarder>>,
}

/// The addresses a started server really listens on (port 0 resolved).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BoundAddrs {
    pub http: Option<SocketAddr>,
    pub tcp: Option<SocketAddr>,
    pub stomp: Option<SocketAddr>,
    pub udp: Option<SocketAddr>,
    pub https: Option<SocketAddr>,
    pub tcp_tls: Option<SocketAddr>,
    pub stomp_tls: Option<SocketAddr>,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("cannot listen for {kind} on {addr}: {source}")]
    Bind {
        kind: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] crate::listen::tls::TlsError),
}

/// A running server. Call [`Server::shutdown`] to stop it gracefully.
pub struct Server {
    shared: Arc<Shared>,
    addrs: BoundAddrs,
    /// The TLS listeners' certificate, for [`Server::reload_tls`]; `None` without them.
    tls: Option<crate::listen::tls::Tls>,
}

impl Server {
    /// Validates the config, binds every enabled listener and starts serving.
    /// Must be called inside a tokio runtime.
    pub async fn start(config: ServerConfig) -> Result<Server, StartError> {
        config.validate()?;
        let seed = crate::clock::now_ms() ^ u64::from(std::process::id()).rotate_left(32);
        // One name for this process everywhere (admin directory, presence, forwarding).
        let node = crate::node_id::NodeId::random();
        tracing::info!(node = %node, "node id");
        let shutdown = CancellationToken::new();
        // Created first: the engine's tasks that must finish on shutdown are tracked too.
        let tasks = TaskTracker::new();
        let (hub, remote) = crate::engine::build(&config, &node, seed, shutdown.clone(), &tasks)?;
        let http = bind("http", config.http)?;
        let tcp = bind("tcp", config.tcp)?;
        let stomp = bind("stomp", config.stomp)?;
        let tls_listeners = tls::Listeners::bind(&config)?;
        let udp = match config.udp.0 {
            None => None,
            Some(addr) => Some(
                crate::drivers::udp::bind(addr, config.datagram.socket_buffer)
                    .await
                    .map_err(|source| StartError::Bind {
                        kind: "udp",
                        addr,
                        source,
                    })?,
            ),
        };
        let jwt = crate::auth::jwt::JwtVerifier::load(&config.auth.jwt)?;
        let auth: Arc<dyn Authenticator> = Arc::new(
            ConfiguredUsers::new(hub.clone(), config.limits.login_failures_per_ip).with_jwt(jwt),
        );
        let ctx = Context {
            hub: hub.clone(),
            auth: auth.clone(),
            shutdown,
            tasks,
            remote: remote.clone(),
        };
        let websocket = Arc::new(config.websocket.clone());
        let forward = forward::build(&config, &node)?;
        let socketio = config.socketio.enabled.then(|| {
            let bridge = crate::drivers::socketio::Bridge::new(&ctx, config.socketio.clone());
            SocketIo::with_sid_prefix(
                &config.socketio,
                &config.websocket,
                Arc::new(bridge),
                ctx.tasks.clone(),
                forward.as_ref().map_or("", |f| f.node()),
            )
        });
        let api = Api {
            hub: hub.clone(),
            auth: auth.clone(),
            max_body: config.http_api.max_body,
            allowed_origins: config.websocket.allowed_origins.clone().into(),
            remote: remote.clone(),
        };
        let broker = Arc::new(Broker {
            hub: hub.clone(),
            auth: auth.clone(),
            tasks: ctx.tasks.clone(),
            config: config.stomp_broker,
            websocket: websocket.clone(),
            remote: remote.clone(),
        });
        let native = Arc::new(Native {
            hub: hub.clone(),
            auth: auth.clone(),
            keepalive: Keepalive::of(&config.websocket),
            remote: remote.clone(),
        });
        let mut sockjs = SockJs::new(
            config.sockjs.clone(),
            config.websocket.clone(),
            config.http_api.max_body,
            ctx.tasks.clone(),
        );
        let options = EndpointOptions::of(&config.sockjs);
        sockjs.mount(
            "/sockjs",
            Arc::new(crate::drivers::sockjs::NativeApp {
                native: native.clone(),
            }),
            options,
        );
        sockjs.mount(
            "/sockjs-stomp",
            Arc::new(crate::drivers::sockjs::StompApp {
                broker: broker.clone(),
                shutdown: ctx.shutdown.clone(),
            }),
            options,
        );
        let limits = &config.limits;
        listen::raise_open_file_limit();
        let connections = listen::ConnLimits::new(
            limits.connections(),
            limits.max_connections_per_ip,
            limits.reserve_http,
        );
        let shared = Arc::new(Shared {
            connections: connections.clone(),
            handshake_timeout: limits.handshake_timeout(),
            hub,
            shutdown: ctx.shutdown.clone(),
            tasks: ctx.tasks.clone(),
            shutdown_grace: config.shutdown_grace(),
            native,
            websocket: websocket.clone(),
            sockjs,
            udp: Arc::new(UdpStats::default()),
            socketio,
            fallbacks: Fallbacks {
                api: api.clone(),
                ctx: ctx.clone(),
                config: config.fallback,
                websocket,
            },
            api,
            broker: broker.clone(),
            admin: admin::Admin::new(config.admin.clone(), &node),
            forward,
        });
        if let Some(forwarder) = &shared.forward {
            forwarder.start(&shared);
        }
        let mut addrs = BoundAddrs {
            http: http.as_ref().and_then(|l| l.local_addr().ok()),
            tcp: tcp.as_ref().and_then(|l| l.local_addr().ok()),
            stomp: stomp.as_ref().and_then(|l| l.local_addr().ok()),
            udp: udp.as_ref().and_then(|s| s.local_addr().ok()),
            ..BoundAddrs::default()
        };
        if let Some(t) = &tls_listeners {
            t.addrs(&mut addrs);
        }
        let admission = |refuse, may_use_reserve| listen::Admission {
            limits: connections.clone(),
            may_use_reserve,
            refuse,
            write_timeout: limits.write_timeout(),
        };
        // A TLS client cannot read a refusal sent before the handshake: it is just closed.
        let tls_admission = |may_use_reserve| admission(listen::silent_refusal, may_use_reserve);
        let tls = match tls_listeners {
            Some(t) => Some(t.spawn(&shared, &ctx, config.line, broker.clone(), &tls_admission)?),
            None => None,
        };
        let accept = |l, kind| (l, kind, ctx.shutdown.clone(), ctx.tasks.clone());
        if let Some((l, kind, shutdown, tasks)) = http.map(|l| accept(l, "http")) {
            let shared = shared.clone();
            let serve = move |stream, peer| router::serve_connection(stream, peer, shared.clone());
            let admit = admission(crate::transports::http::refusal, true);
            tokio::spawn(listen::accept_loop(l, kind, admit, shutdown, tasks, serve));
        }
        if let Some((l, kind, shutdown, tasks)) = tcp.map(|l| accept(l, "tcp")) {
            let (ctx, cfg) = (ctx.clone(), config.line);
            let serve =
                move |stream, peer| crate::drivers::line::serve(stream, peer, ctx.clone(), cfg);
            let admit = admission(crate::drivers::line::refusal, false);
            tokio::spawn(listen::accept_loop(l, kind, admit, shutdown, tasks, serve));
        }
        if let Some((l, kind, shutdown, tasks)) = stomp.map(|l| accept(l, "stomp")) {
            let serve = move |stream, peer| broker.clone().serve_stream(stream, peer);
            let admit = admission(Broker::refusal, false);
            tokio::spawn(listen::accept_loop(l, kind, admit, shutdown, tasks, serve));
        }
        if let Some(socket) = udp {
            let addr = addrs.udp.or(config.udp.0);
            crate::drivers::udp::spawn(socket, ctx.clone(), config.datagram, shared.udp.clone())
                .map_err(|source| StartError::Bind {
                    kind: "udp",
                    addr: addr.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0))),
                    source,
                })?;
        }
        tokio::spawn(sweeper(shared.clone()));
        tokio::spawn(admin::ticker(shared.clone()));
        Ok(Server { shared, addrs, tls })
    }

    pub fn addrs(&self) -> &BoundAddrs {
        &self.addrs
    }

    pub fn hub(&self) -> &Arc<Hub> {
        &self.shared.hub
    }

    /// Reads the TLS certificate and key files again (on SIGHUP): new handshakes get the new
    /// certificate, open connections keep going. On error the old certificate stays in use.
    /// Does nothing without TLS listeners.
    pub fn reload_tls(&self) -> Result<(), crate::listen::tls::TlsError> {
        match &self.tls {
            Some(tls) => tls.reload(),
            None => Ok(()),
        }
    }

    /// Reads the token keys' files (`[auth.jwt]` `hmac_secret_file`, `public_key_files`,
    /// `jwks_file`) again (on SIGHUP): later tokens are checked with the new keys, open
    /// connections keep their identities. On error the old keys stay in use. Returns how
    /// many keys are loaded, `None` without tokens configured.
    pub fn reload_token_keys(&self) -> Result<Option<usize>, crate::config::ConfigError> {
        self.shared.native.auth.reload_keys()
    }

    /// Stops accepting, closes every session with its protocol's goodbye after flushing what
    /// is queued, and waits for connections to finish, at most the configured grace period.
    /// Returns how many connections were still open at the deadline.
    pub async fn shutdown(self) -> usize {
        self.shared.shutdown.cancel();
        self.shared.hub.shutdown();
        if let Some(sio) = &self.shared.socketio {
            sio.close_idle();
        }
        self.shared.tasks.close();
        let grace = self.shared.shutdown_grace;
        if tokio::time::timeout(grace, self.shared.tasks.wait())
            .await
            .is_err()
        {
            return self.shared.tasks.len();
        }
        0
    }
}

fn bind(kind: &'static str, listen: Listen) -> Result<Option<TcpListener>, StartError> {
    let Some(addr) = listen.0 else {
        return Ok(None);
    };
    listen::bind(addr)
        .map(Some)
        .map_err(|source| StartError::Bind { kind, addr, source })
}

/// Once a second: expires aged history, forgets idle topics, reclaims abandoned SockJS sessions.
async fn sweeper(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {
                shared.hub.sweep(crate::clock::now_ms());
                shared.sockjs.reap();
            }
            _ = shared.shutdown.cancelled() => return,
        }
    }
}
