//! The server's typed configuration: one serde struct, every default in its doc comment.
//! Only the binary reads files and the environment; this module validates.

use crate::socketio::SocketIoConfig;
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
    /// Largest message accepted, in bytes (bigger closes with 1009). Default 16 MiB, which
    /// the Autobahn suite needs; lower it for untrusted clients.
    pub max_message: usize,
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
    /// Initial read/write buffer per connection, in bytes. Default 4096: small keeps idle
    /// connections cheap; buffers grow for big frames and shrink back.
    pub buffer_size: usize,
}

impl Default for WebSocketConfig {
    fn default() -> Self {
        WebSocketConfig {
            max_message: 16 << 20,
            compression: true,
            ping_interval_secs: 25,
            idle_timeout_secs: 60,
            allowed_origins: Vec::new(),
            buffer_size: 4096,
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
}

impl Default for LineConfig {
    fn default() -> Self {
        LineConfig {
            max_line: 4096,
            max_payload: 1 << 20,
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

/// Everything `tidings serve` needs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// HTTP listener (WebSocket, HTTP API, pages). Default 127.0.0.1:7070.
    pub http: Listen,
    /// TCP line protocol listener. Default 127.0.0.1:7071.
    pub tcp: Listen,
    /// UDP listener. Default 127.0.0.1:7072 (the UDP endpoint is not built yet; see README).
    pub udp: Listen,
    /// STOMP listener. Default 127.0.0.1:61613 (the STOMP broker is not built yet; see README).
    pub stomp: Listen,
    /// Milliseconds to flush outboxes and say goodbye on SIGINT/SIGTERM. Default 5000.
    pub shutdown_grace_ms: u64,
    pub websocket: WebSocketConfig,
    pub line: LineConfig,
    #[serde(rename = "http_api")]
    pub http_api: HttpConfig,
    pub socketio: SocketIoConfig,
    pub hub: HubConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            http: Listen::at("127.0.0.1:7070"),
            tcp: Listen::at("127.0.0.1:7071"),
            udp: Listen::at("127.0.0.1:7072"),
            stomp: Listen::at("127.0.0.1:61613"),
            shutdown_grace_ms: 5000,
            websocket: WebSocketConfig::default(),
            line: LineConfig::default(),
            http_api: HttpConfig::default(),
            socketio: SocketIoConfig::default(),
            hub: HubConfig::default(),
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
        if self.websocket.max_message < 125 {
            return Err(err("websocket.max_message", "must be at least 125 bytes"));
        }
        if self.websocket.buffer_size < 256 {
            return Err(err("websocket.buffer_size", "must be at least 256 bytes"));
        }
        if self.line.max_line < 64 {
            return Err(err("line.max_line", "must be at least 64 bytes"));
        }
        if self.http_api.max_body == 0 {
            return Err(err("http_api.max_body", "must be at least 1 byte"));
        }
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

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }
}
