//! Socket.IO settings (`[socketio]`): Engine.IO timing and limits, CORS, namespaces and
//! connection state recovery. Defaults follow the official Node server where it has one.

use serde::Deserialize;
use std::time::Duration;

/// Socket.IO settings (`[socketio]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SocketIoConfig {
    /// Serve Socket.IO at `/socket.io/`. Default true.
    pub enabled: bool,
    /// Milliseconds between the server's Engine.IO pings. Default 25000 (as Socket.IO).
    pub ping_interval_ms: u64,
    /// Milliseconds to wait for the pong before closing the connection. Default 20000.
    pub ping_timeout_ms: u64,
    /// Largest packet accepted, in bytes: a long-polling request body (bigger gets HTTP 413)
    /// or a WebSocket message (bigger closes the connection). Default 1000000, Socket.IO's
    /// `maxHttpBufferSize`.
    pub max_payload: u64,
    /// Milliseconds a client has after the Engine.IO handshake to connect to a namespace
    /// before it is disconnected. Default 45000 (as Socket.IO).
    pub connect_timeout_ms: u64,
    /// Transports offered: `polling`, `websocket`. Default both (upgrade from polling).
    pub transports: Vec<String>,
    /// Origins whose pages may use long-polling across origins (CORS): exact values such as
    /// `https://app.example.com`, or `*` for any. Default empty: no CORS headers (same-origin
    /// pages and non-browser clients only). WebSocket is not subject to CORS.
    pub cors_origins: Vec<String>,
    /// Let cross-origin pages send cookies (`Access-Control-Allow-Credentials`). Default false.
    pub cors_credentials: bool,
    /// Namespaces clients may connect to, e.g. `["/", "/chat"]`. Default empty: `/` and any
    /// one-token namespace (`/chat` sees the topics under `chat.`); others get CONNECT_ERROR.
    pub namespaces: Vec<String>,
    /// Engine.IO packets queued per connection ahead of its transport. Default 32: beyond
    /// that the hub outbox holds the messages (a shared pointer each, under the topic's
    /// slow-consumer policy) instead of a copy of each encoded packet (about 0.5 KiB).
    /// Heartbeat PINGs are not counted: they are never refused for space.
    pub max_buffered_packets: usize,
    /// Namespaces one connection may join at once; a CONNECT beyond gets CONNECT_ERROR.
    /// Each namespace is a hub session with its own subscriptions, so this times
    /// `hub.max_subscriptions_per_session` bounds one connection. Default 8.
    pub max_namespaces: usize,
    /// Most Engine.IO sessions at once (long-polling and WebSocket); handshakes beyond get
    /// HTTP 503. Default 100000.
    pub max_sessions: usize,
    /// Most sessions one client address (IPv6: /64) may hold at once; handshakes beyond
    /// get 503, so one client cannot take `max_sessions` from everyone. Default 100.
    pub max_sessions_per_ip: usize,
    /// permessage-deflate on Socket.IO's WebSocket when the client offers it and
    /// `websocket.compression` is on. Default true (the Node server's default is off: each
    /// compressing connection keeps zlib state, which idle clients that offer it pay for).
    pub compression: bool,
    /// Connection state recovery: how long a disconnected session's subscriptions and
    /// positions are kept for the client to come back, in milliseconds. Default 120000
    /// (Socket.IO's `maxDisconnectionDuration`); 0 disables recovery.
    pub recovery_ms: u64,
    /// Most disconnected sessions kept for recovery (oldest forgotten first). Default 10000.
    pub recovery_max_sessions: usize,
}

impl Default for SocketIoConfig {
    fn default() -> Self {
        SocketIoConfig {
            enabled: true,
            ping_interval_ms: 25_000,
            ping_timeout_ms: 20_000,
            max_payload: 1_000_000,
            connect_timeout_ms: 45_000,
            transports: vec!["polling".into(), "websocket".into()],
            cors_origins: Vec::new(),
            cors_credentials: false,
            namespaces: Vec::new(),
            max_buffered_packets: 32,
            max_namespaces: 8,
            max_sessions: 100_000,
            max_sessions_per_ip: 100,
            compression: true,
            recovery_ms: 120_000,
            recovery_max_sessions: 10_000,
        }
    }
}

impl SocketIoConfig {
    /// Checks every field; the error names the field (relative to `socketio.`) and why.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.ping_interval_ms < 10 {
            return Err(("ping_interval_ms", "must be at least 10".into()));
        }
        if self.ping_timeout_ms < 10 {
            return Err(("ping_timeout_ms", "must be at least 10".into()));
        }
        if self.max_payload < 64 {
            return Err(("max_payload", "must be at least 64 bytes".into()));
        }
        if self.connect_timeout_ms == 0 {
            return Err(("connect_timeout_ms", "must be at least 1".into()));
        }
        if self.max_buffered_packets < 4 {
            return Err(("max_buffered_packets", "must be at least 4".into()));
        }
        if self.max_sessions == 0 {
            return Err(("max_sessions", "must be at least 1".into()));
        }
        if self.transports.is_empty() {
            return Err(("transports", "needs at least one transport".into()));
        }
        for t in &self.transports {
            if t != "polling" && t != "websocket" {
                return Err((
                    "transports",
                    format!("{t:?} is not `polling` or `websocket`"),
                ));
            }
        }
        for ns in &self.namespaces {
            if !valid_namespace_name(ns) {
                return Err((
                    "namespaces",
                    format!("{ns:?} is not `/` or `/` followed by one topic token"),
                ));
            }
        }
        Ok(())
    }

    pub fn ping_interval(&self) -> Duration {
        Duration::from_millis(self.ping_interval_ms)
    }

    pub fn ping_timeout(&self) -> Duration {
        Duration::from_millis(self.ping_timeout_ms)
    }

    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    /// Whether `namespace` may be connected to.
    pub fn allows_namespace(&self, namespace: &str) -> bool {
        if self.namespaces.is_empty() {
            valid_namespace_name(namespace)
        } else {
            self.namespaces.iter().any(|n| n == namespace)
        }
    }
}

/// `/`, or `/` and one topic token (letters, digits, `_`, `-`).
fn valid_namespace_name(ns: &str) -> bool {
    match ns.strip_prefix('/') {
        Some("") => true,
        Some(token) => {
            token.len() <= 64
                && token
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces() {
        let cfg = SocketIoConfig::default();
        assert!(cfg.allows_namespace("/"));
        assert!(cfg.allows_namespace("/chat"));
        assert!(!cfg.allows_namespace("/chat.eu"));
        assert!(!cfg.allows_namespace("/a/b"));
        assert!(!cfg.allows_namespace("chat"));
        let cfg = SocketIoConfig {
            namespaces: vec!["/".into(), "/custom".into()],
            ..SocketIoConfig::default()
        };
        assert!(cfg.allows_namespace("/custom"));
        assert!(!cfg.allows_namespace("/random"));
        assert!(cfg.validate().is_ok());
        let bad = SocketIoConfig {
            namespaces: vec!["/a.b".into()],
            ..SocketIoConfig::default()
        };
        assert_eq!(bad.validate().unwrap_err().0, "namespaces");
    }
}
