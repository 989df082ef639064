//! Starting and stopping the server: binds every listener, runs the accept loops and the hub's
//! sweeper, and on shutdown stops accepting, lets every session flush and say goodbye, and
//! waits for them up to the grace deadline.

use crate::config::{Listen, ServerConfig};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tidings_core::Hub;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// What every listener and connection shares.
pub(crate) struct Shared {
    pub(crate) hub: Arc<Hub>,
    pub(crate) config: ServerConfig,
    /// Cancelled when shutdown begins: accept loops stop, drivers say goodbye.
    pub(crate) shutdown: CancellationToken,
    /// Every connection task, so shutdown can wait for them to finish.
    pub(crate) tasks: TaskTracker,
    /// SockJS endpoints and their sessions (SockJS keeps sessions between requests).
    pub(crate) sockjs: crate::sockjs::SockJs,
    /// Counters of the UDP endpoint, read by `/metrics`.
    pub(crate) udp: crate::drivers::udp::stats::UdpStats,
    /// Socket.IO at `/socket.io/`, joined to the hub; `None` when disabled.
    pub(crate) socketio: Option<crate::socketio::SocketIo>,
}

/// The addresses a started server really listens on (port 0 resolved).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BoundAddrs {
    pub http: Option<SocketAddr>,
    pub tcp: Option<SocketAddr>,
    pub stomp: Option<SocketAddr>,
    pub udp: Option<SocketAddr>,
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
}

/// A running server. Call [`Server::shutdown`] to stop it gracefully.
pub struct Server {
    shared: Arc<Shared>,
    addrs: BoundAddrs,
}

impl Server {
    /// Validates the config, binds every enabled listener and starts serving.
    /// Must be called inside a tokio runtime.
    pub async fn start(config: ServerConfig) -> Result<Server, StartError> {
        config.validate()?;
        let seed = crate::clock::now_ms() ^ u64::from(std::process::id()).rotate_left(32);
        let hub = Hub::new(config.hub.clone(), seed).map_err(|e| crate::config::ConfigError {
            field: e.field,
            reason: e.reason,
        })?;
        let http = bind("http", config.http).await?;
        let tcp = bind("tcp", config.tcp).await?;
        let tasks = TaskTracker::new();
        let socketio = config.socketio.enabled.then(|| {
            let bridge = crate::drivers::socketio::Bridge::new(
                hub.clone(),
                config.socketio.clone(),
                tasks.clone(),
            );
            crate::socketio::SocketIo::new(&config.socketio, "/socket.io", Arc::new(bridge))
        });
        let stomp = bind("stomp", config.stomp).await?;
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
        let shared = Arc::new(Shared {
            hub,
            sockjs: crate::sockjs::SockJs::new(&config.sockjs, config.conformance),
            config,
            shutdown: CancellationToken::new(),
            tasks,
            udp: Default::default(),
            socketio,
        });
        let addrs = BoundAddrs {
            http: http.as_ref().and_then(|l| l.local_addr().ok()),
            tcp: tcp.as_ref().and_then(|l| l.local_addr().ok()),
            stomp: stomp.as_ref().and_then(|l| l.local_addr().ok()),
            udp: udp.as_ref().and_then(|s| s.local_addr().ok()),
        };
        if let Some(l) = http {
            tokio::spawn(crate::http::accept_loop(l, shared.clone()));
        }
        if let Some(l) = tcp {
            tokio::spawn(crate::drivers::line::accept_loop(l, shared.clone()));
        }
        if let Some(l) = stomp {
            tokio::spawn(crate::drivers::stomp::accept_loop(l, shared.clone()));
        }
        if let Some(socket) = udp {
            let addr = addrs.udp.or(shared.config.udp.0);
            crate::drivers::udp::spawn(socket, shared.clone()).map_err(|source| {
                StartError::Bind {
                    kind: "udp",
                    addr: addr.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0))),
                    source,
                }
            })?;
        }
        tokio::spawn(sweeper(shared.clone()));
        Ok(Server { shared, addrs })
    }

    pub fn addrs(&self) -> &BoundAddrs {
        &self.addrs
    }

    pub fn hub(&self) -> &Arc<Hub> {
        &self.shared.hub
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
        let grace = self.shared.config.shutdown_grace();
        if tokio::time::timeout(grace, self.shared.tasks.wait())
            .await
            .is_err()
        {
            return self.shared.tasks.len();
        }
        0
    }
}

/// Connections the kernel may hold for us before we accept them. tokio's default is 1024;
/// a reconnect storm of 15k clients overflows that, and an overflowed backlog drops SYNs,
/// which clients retry only after a second or more. The kernel caps it at `somaxconn`.
const LISTEN_BACKLOG: i32 = 4096;

async fn bind(kind: &'static str, listen: Listen) -> Result<Option<TcpListener>, StartError> {
    let Some(addr) = listen.0 else {
        return Ok(None);
    };
    listener(addr)
        .map(Some)
        .map_err(|source| StartError::Bind { kind, addr, source })
}

fn listener(addr: SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // As tokio's own bind does: a restarted server can listen while old connections linger.
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    socket.set_nonblocking(true)?;
    TcpListener::from_std(socket.into())
}

/// Once a second: expires aged history, forgets idle topics, reclaims abandoned SockJS sessions.
async fn sweeper(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {
                shared.hub.sweep(crate::clock::now_ms());
                shared.sockjs.reap(Duration::from_secs(shared.config.sockjs.disconnect_delay_secs));
            }
            _ = shared.shutdown.cancelled() => return,
        }
    }
}
