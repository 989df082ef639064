//! The server in-process: what most integration tests need, and the fastest to start.

use tidings_server::{Listen, Server, ServerConfig};

/// 127.0.0.1 on a port the OS picks, so tests run side by side without clashing.
pub fn local() -> Listen {
    Listen(Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0))))
}

/// A [`ServerBuilder`] with every listener off: a test turns on only what it talks to, so
/// it never binds a port it does not use.
///
/// ```no_run
/// # async fn run() {
/// let server = tidings_testkit::server()
///     .http()
///     .with(|c| c.websocket.idle_timeout_secs = 2)
///     .start()
///     .await;
/// let ws = format!("ws://{}/ws", server.addrs().http.unwrap());
/// # }
/// ```
pub fn server() -> ServerBuilder {
    ServerBuilder {
        config: ServerConfig {
            http: Listen(None),
            tcp: Listen(None),
            udp: Listen(None),
            stomp: Listen(None),
            ..Default::default()
        },
    }
}

/// The configuration of an in-process server under test; see [`server()`].
#[derive(Debug, Clone)]
#[must_use = "nothing starts until `start`"]
pub struct ServerBuilder {
    config: ServerConfig,
}

impl ServerBuilder {
    /// Turns the HTTP listener on (WebSocket, HTTP API, fallbacks, Socket.IO, SockJS).
    pub fn http(mut self) -> Self {
        self.config.http = local();
        self
    }

    /// Turns the TCP line-protocol listener on.
    pub fn tcp(mut self) -> Self {
        self.config.tcp = local();
        self
    }

    /// Turns the UDP datagram listener on.
    pub fn udp(mut self) -> Self {
        self.config.udp = local();
        self
    }

    /// Turns the STOMP-over-TCP listener on.
    pub fn stomp(mut self) -> Self {
        self.config.stomp = local();
        self
    }

    /// Changes anything else in the configuration (limits, auth, timeouts).
    pub fn with(mut self, f: impl FnOnce(&mut ServerConfig)) -> Self {
        f(&mut self.config);
        self
    }

    /// The configuration as built, for a test that starts the server itself (e.g. twice).
    pub fn config(self) -> ServerConfig {
        self.config
    }

    /// Starts the server; panics (failing the test) when it cannot.
    pub async fn start(self) -> Server {
        Server::start(self.config).await.expect("server starts")
    }
}
