//! SockJS settings.

/// SockJS settings (`[sockjs]`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SockJsConfig {
    /// Seconds of silence before a heartbeat frame `h`. Default 25.
    pub heartbeat_secs: u64,
    /// Seconds a session lives without any request before it is reclaimed. Default 5.
    pub disconnect_delay_secs: u64,
    /// Bytes a streaming response may carry before it ends and the client reconnects
    /// (old proxies buffer long responses). Default 131072.
    pub response_limit: usize,
    /// Most sessions at once per endpoint; more get 503. Default 10000.
    pub max_sessions: usize,
    /// Most sessions one client address (IPv6: /64) may hold per endpoint; more get 503, so
    /// one client cannot take `max_sessions` from everyone. Default 100.
    pub max_sessions_per_ip: usize,
    /// Offer the websocket transport. Default true.
    pub websocket: bool,
    /// Tell clients to send a JSESSIONID cookie (for sticky load balancers). Default false.
    pub cookie_needed: bool,
    /// Where the iframe page loads sockjs-client from.
    /// Default "/vendor/sockjs.min.js": the copy this binary serves, so iframe transports work
    /// offline and from the same origin.
    pub client_url: String,
}

impl Default for SockJsConfig {
    fn default() -> Self {
        SockJsConfig {
            heartbeat_secs: 25,
            disconnect_delay_secs: 5,
            response_limit: 128 * 1024,
            max_sessions: 10_000,
            max_sessions_per_ip: 100,
            websocket: true,
            cookie_needed: false,
            client_url: "/vendor/sockjs.min.js".into(),
        }
    }
}
