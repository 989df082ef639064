//! The server's typed configuration: one serde struct, every default in its doc comment.
//! Only the binary reads files and the environment; this module validates.

mod admin;
mod engine;
mod jwt;
mod limits;
mod socketio;
mod sockjs;
mod tls;

pub use admin::{AdminConfig, AdminUser};
pub use engine::{EngineConfig, EngineKind};
pub use jwt::{JwtConfig, ServerAuthConfig};
pub use limits::LimitsConfig;
pub use socketio::SocketIoConfig;
pub use sockjs::SockJsConfig;
pub use tls::TlsConfig;

use serde::{Deserialize, Deserializer};
use std::net::SocketAddr;
use std::time::Duration;
use tidings_core::HubConfig;

/// A listener address, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listen(pub Option<SocketAddr>);

impl Listen {
    /// Parses `HOST:PORT` or `off`.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.eq_ignore_ascii_case("off") {
            return Ok(Listen(None));
        }
        text.parse::<SocketAddr>()
            .map(|a| Listen(Some(a)))
            .map_err(|_| format!("{text:?} is not an address like 127.0.0.1:7070, or `off`"))
    }

    fn at(addr: &str) -> Self {
        Listen(addr.parse().ok())
    }
}

impl<'de> Deserialize<'de> for Listen {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Listen::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// WebSocket settings (`[websocket]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebSocketConfig {
    /// Largest message accepted, in bytes, counted as it is inflated (bigger closes with
    /// 1009). Default 1 MiB (Centrifugo 64 KiB, NATS 1 MB): a message arriving in pieces is
    /// held until whole, so this times the connections is memory a client can pin. The
    /// Autobahn suite needs 16 MiB (scripts/test.sh sets it).
    pub max_message: usize,
    /// Seconds a message sent in fragments may take to arrive whole (then 1002). Default
    /// 10: a peer that trickles fragments cannot hold a half-built message long.
    pub message_timeout_secs: u64,
    /// Offer permessage-deflate (RFC 7692). Default true.
    pub compression: bool,
    /// Seconds between server pings. Default 25; 0 disables.
    pub ping_interval_secs: u64,
    /// Close a connection that sent nothing (not even a pong) for this many seconds.
    /// Default 60; 0 disables.
    pub idle_timeout_secs: u64,
    /// Allowed `Origin` headers (exact match, e.g. `https://app.example.com`). Requests
    /// without an Origin (non-browser clients) are always allowed. Default: empty = any.
    pub allowed_origins: Vec<String>,
    /// Initial read/write buffer per connection, in bytes. Default 512: idle connections are
    /// most of a server's connections, and this is most of what each costs; buffers grow for
    /// big frames and shrink back (docs/performance.md has the measurements).
    pub buffer_size: usize,
}

impl Default for WebSocketConfig {
    fn default() -> Self {
        WebSocketConfig {
            max_message: 1 << 20,
            message_timeout_secs: 10,
            compression: true,
            ping_interval_secs: 25,
            idle_timeout_secs: 60,
            allowed_origins: Vec::new(),
            buffer_size: 512,
        }
    }
}

/// TCP line protocol settings (`[line]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LineConfig {
    /// Longest command line, in bytes; longer gets `-ERR` and a close. Default 4096.
    pub max_line: usize,
    /// Largest `BPUB` payload, in bytes. Default 1 MiB.
    pub max_payload: usize,
    /// Close a connection that subscribes to nothing and sent nothing for this many seconds
    /// (`-ERR idle ...`). A subscriber waiting for messages is never idle. Default 300;
    /// 0 disables.
    pub idle_timeout_secs: u64,
}

impl Default for LineConfig {
    fn default() -> Self {
        LineConfig {
            max_line: 4096,
            max_payload: 1 << 20,
            idle_timeout_secs: 300,
        }
    }
}

/// HTTP API settings (`[http]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Largest request body, in bytes (bigger gets 413). Default 1 MiB.
    pub max_body: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig { max_body: 1 << 20 }
    }
}

/// SSE, long-poll and streaming settings (`[fallback]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FallbackConfig {
    /// Seconds of silence before a keep-alive on `/sse` and `/stream` (proxies drop quiet
    /// connections). Default 15.
    pub keepalive_secs: u64,
    /// Longest a `/poll` request is held when nothing is new, in seconds; a request's
    /// `timeout=` may only shorten it. Default 25 (below common 30 s proxy timeouts).
    pub poll_timeout_secs: u64,
    /// Bytes an `/sse` or `/stream` response carries before it ends and the client resumes
    /// on a new one (proxies that buffer whole responses would otherwise grow). Default 16 MiB.
    pub response_limit: usize,
}

impl Default for FallbackConfig {
    fn default() -> Self {
        FallbackConfig {
            keepalive_secs: 15,
            poll_timeout_secs: 25,
            response_limit: 16 << 20,
        }
    }
}

/// STOMP broker settings (`[stomp_broker]`; the `stomp` key is the listener address).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StompConfig {
    /// Largest frame (command, headers, body), in bytes; bigger gets an ERROR and a close.
    /// Default 1 MiB (1048576).
    pub max_frame_size: usize,
    /// Most headers in one frame. Default 64.
    pub max_headers: usize,
    /// Longest header line, in bytes. Default 8192.
    pub max_header_length: usize,
    /// The server's `cx`: it never sends heart-beats more often than this, in milliseconds.
    /// Default 10000; 0 never sends any.
    pub heart_beat_send_ms: u32,
    /// The server's `cy`: it wants the client's heart-beats at least this often (a client
    /// offering more often is held to this), in milliseconds. Default 10000; 0 never asks,
    /// so silent peers are not detected.
    pub heart_beat_receive_ms: u32,
    /// A peer that sent nothing for this many agreed heart-beat intervals is dead: ERROR and
    /// close. Default 2.
    pub heart_beat_tolerance: u32,
    /// Milliseconds a new connection has to send CONNECT. Default 10000.
    pub connect_timeout_ms: u64,
    /// With heart-beats off (`heart-beat:0,0`), close a connection that subscribes to
    /// nothing and sent nothing for this many seconds (`ERROR`, idle). Default 300; 0
    /// disables.
    pub idle_timeout_secs: u64,
}

impl Default for StompConfig {
    fn default() -> Self {
        StompConfig {
            max_frame_size: 1 << 20,
            max_headers: 64,
            max_header_length: 8192,
            heart_beat_send_ms: 10_000,
            heart_beat_receive_ms: 10_000,
            heart_beat_tolerance: 2,
            connect_timeout_ms: 10_000,
            idle_timeout_secs: 300,
        }
    }
}

/// UDP endpoint settings (`[datagram]`; the address itself is the top-level `udp`, as the
/// line protocol's is `tcp` beside `[line]`). See docs/udp.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatagramConfig {
    /// Largest UDP payload sent or accepted, in bytes: one whole datagram (header, topic,
    /// epoch and message). Default 1200, so datagrams are not fragmented on any IPv6 path
    /// (minimum MTU 1280) and on nearly every IPv4 one. A message that does not fit is not
    /// sent to UDP subscribers, and is counted. 128 to 65507.
    pub max_payload: usize,
    /// Lease of a subscriber address, in seconds: its subscriptions end unless it renews
    /// (clients renew every third of it). Default 30.
    pub lease_secs: u64,
    /// How long a cookie proves an address, in seconds. Default 60, two leases: a client that
    /// renews on time always holds a fresh one (every answer carries a new cookie).
    pub cookie_secs: u64,
    /// Datagrams per second accepted from one client address (the IP, every port; IPv6 per
    /// /64), sustained.
    /// Default 1000; 0 turns rate limiting off.
    pub rate_per_sec: u32,
    /// Datagrams one source address may send at once above that rate. Default 2000.
    pub rate_burst: u32,
    /// Source addresses tracked for rate limiting. Default 65536; when full, datagrams from
    /// new addresses are dropped until idle entries are forgotten (each second), so a flood
    /// of spoofed sources costs bounded memory; subscribers holding a lease still pass.
    pub max_sources: usize,
    /// Subscriber addresses at once. Default 10000 (each holds one hub session and outbox).
    pub max_subscribers: usize,
    /// Subscriptions of one subscriber address. Default 64.
    pub max_subscriptions: usize,
    /// Kernel send and receive buffer asked for the socket, in bytes. Default 4 MiB; Linux
    /// grants at most `net.core.rmem_max`/`wmem_max`. Bursts beyond it are lost, as on any
    /// UDP socket.
    pub socket_buffer: usize,
    /// Send what is queued for one subscriber as one GSO send (UDP segmentation offload,
    /// Linux 4.18 and later): many datagrams per system call. Default true; where the kernel
    /// or the interface refuses it, the server falls back to one send per datagram by itself.
    /// Also asks for GRO on receive (a client's GSO send arrives as one buffer). False forces
    /// the fallback and leaves GRO off.
    pub gso: bool,
}

impl Default for DatagramConfig {
    fn default() -> Self {
        DatagramConfig {
            max_payload: 1200,
            lease_secs: 30,
            cookie_secs: 60,
            rate_per_sec: 1000,
            rate_burst: 2000,
            max_sources: 65536,
            max_subscribers: 10_000,
            max_subscriptions: 64,
            socket_buffer: 4 << 20,
            gso: true,
        }
    }
}

/// Everything `tidings serve` needs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// HTTP listener (WebSocket, HTTP API, pages). Default 127.0.0.1:7070.
    pub http: Listen,
    /// TCP line protocol listener. Default 127.0.0.1:7071.
    pub tcp: Listen,
    /// UDP listener (datagrams, see `[datagram]`). Default 127.0.0.1:7072.
    pub udp: Listen,
    /// STOMP listener (STOMP over TCP). Default 127.0.0.1:61613.
    pub stomp: Listen,
    /// Milliseconds to flush outboxes and say goodbye on SIGINT/SIGTERM. Default 5000.
    pub shutdown_grace_ms: u64,
    /// HTTPS listener: everything `http` carries, over TLS, HTTP/2 or HTTP/1.1 (ALPN).
    /// Default off (suggested 127.0.0.1:7443); needs `[tls]` cert and key.
    pub https: Listen,
    /// TCP line protocol over TLS. Default off (suggested 127.0.0.1:7444).
    pub tcp_tls: Listen,
    /// STOMP over TLS. Default off (suggested 127.0.0.1:61614, as RabbitMQ).
    pub stomp_tls: Listen,
    pub tls: TlsConfig,
    pub websocket: WebSocketConfig,
    pub line: LineConfig,
    pub datagram: DatagramConfig,
    #[serde(rename = "http_api")]
    pub http_api: HttpConfig,
    pub fallback: FallbackConfig,
    pub sockjs: SockJsConfig,
    pub socketio: SocketIoConfig,
    pub hub: HubConfig,
    pub stomp_broker: StompConfig,
    pub limits: LimitsConfig,
    /// `[auth.jwt]`: signed tokens (the users of `[hub.auth]` are the hub's).
    pub auth: ServerAuthConfig,
    /// `[admin]`: the dashboard's accounts (off unless configured).
    pub admin: AdminConfig,
    /// `[engine]`: in memory (default) or Redis, shared by several nodes.
    pub engine: EngineConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            http: Listen::at("127.0.0.1:7070"),
            tcp: Listen::at("127.0.0.1:7071"),
            udp: Listen::at("127.0.0.1:7072"),
            stomp: Listen::at("127.0.0.1:61613"),
            shutdown_grace_ms: 5000,
            https: Listen(None),
            tcp_tls: Listen(None),
            stomp_tls: Listen(None),
            tls: TlsConfig::default(),
            websocket: WebSocketConfig::default(),
            line: LineConfig::default(),
            datagram: DatagramConfig::default(),
            http_api: HttpConfig::default(),
            fallback: FallbackConfig::default(),
            sockjs: SockJsConfig::default(),
            socketio: SocketIoConfig::default(),
            hub: HubConfig::default(),
            stomp_broker: StompConfig::default(),
            limits: LimitsConfig::default(),
            auth: ServerAuthConfig::default(),
            admin: AdminConfig::default(),
            engine: EngineConfig::default(),
        }
    }
}

/// A config field that is wrong, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("config: {field}: {reason}")]
pub struct ConfigError {
    pub field: String,
    pub reason: String,
}

impl ServerConfig {
    /// Checks every field; the error names the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |field: &str, reason: &str| ConfigError {
            field: field.into(),
            reason: reason.into(),
        };
        self.admin.validate()?;
        if self.websocket.max_message < 125 {
            return Err(err("websocket.max_message", "must be at least 125 bytes"));
        }
        if self.websocket.buffer_size < 256 {
            return Err(err("websocket.buffer_size", "must be at least 256 bytes"));
        }
        if self.line.max_line < 64 {
            return Err(err("line.max_line", "must be at least 64 bytes"));
        }
        if self.sockjs.response_limit < 1024 {
            return Err(err("sockjs.response_limit", "must be at least 1024 bytes"));
        }
        if self.sockjs.max_sessions == 0 {
            return Err(err("sockjs.max_sessions", "must be at least 1"));
        }
        if self.fallback.keepalive_secs == 0 {
            return Err(err("fallback.keepalive_secs", "must be at least 1"));
        }
        let st = &self.stomp_broker;
        if st.max_frame_size < 1024 {
            return Err(err(
                "stomp_broker.max_frame_size",
                "must be at least 1024 bytes",
            ));
        }
        if st.max_header_length < 256 || st.max_headers < 8 {
            return Err(err(
                "stomp_broker.max_header_length",
                "max_header_length must be at least 256 and max_headers at least 8",
            ));
        }
        if st.heart_beat_tolerance == 0 {
            return Err(err(
                "stomp_broker.heart_beat_tolerance",
                "must be at least 1",
            ));
        }
        let d = &self.datagram;
        if !(128..=65507).contains(&d.max_payload) {
            return Err(err("datagram.max_payload", "must be 128 to 65507 bytes"));
        }
        if d.lease_secs == 0 || d.lease_secs > 86_400 {
            return Err(err("datagram.lease_secs", "must be 1 to 86400 seconds"));
        }
        if d.cookie_secs < d.lease_secs || d.cookie_secs > 86_400 {
            return Err(err(
                "datagram.cookie_secs",
                "must be at least lease_secs and at most 86400",
            ));
        }
        if d.rate_per_sec > 0 && d.rate_burst == 0 {
            return Err(err("datagram.rate_burst", "must be at least 1"));
        }
        if d.max_sources == 0 || d.max_subscribers == 0 || d.max_subscriptions == 0 {
            return Err(err(
                "datagram.max_sources/max_subscribers/max_subscriptions",
                "must be at least 1",
            ));
        }
        if self.http_api.max_body == 0 {
            return Err(err("http_api.max_body", "must be at least 1 byte"));
        }
        self.tls
            .validate(self.tls_listeners())
            .map_err(|(field, reason)| err(&format!("tls.{field}"), reason))?;
        self.auth
            .jwt
            .validate()
            .map_err(|(field, reason)| ConfigError {
                field: format!("auth.jwt.{field}"),
                reason,
            })?;
        self.engine
            .validate()
            .map_err(|(field, reason)| ConfigError {
                field: format!("engine.{field}"),
                reason,
            })?;
        self.socketio
            .validate()
            .map_err(|(field, reason)| ConfigError {
                field: format!("socketio.{field}"),
                reason,
            })?;
        self.hub.validate().map_err(|e| ConfigError {
            field: e.field,
            reason: e.reason,
        })
    }

    /// Whether a TLS listener (`https`, `tcp_tls`, `stomp_tls`) is on.
    pub fn tls_listeners(&self) -> bool {
        [self.https, self.tcp_tls, self.stomp_tls]
            .iter()
            .any(|l| l.0.is_some())
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }
}
