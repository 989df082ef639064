//! What one client, or all of them, may make the server hold (`[limits]`): connections,
//! and how long a connection may stall. docs/security.md says why each default is what it is.

use serde::Deserialize;
use std::time::Duration;

/// `[limits]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Open connections on all TCP listeners together (HTTP, line, STOMP). Default 0: the
    /// process's open-file limit minus `reserved_files`, read at start (after raising the
    /// soft limit to the hard one), and at least 64.
    pub max_connections: usize,
    /// File descriptors kept out of `max_connections` when it is derived from the open-file
    /// limit: for history files, DNS, the UDP socket and the `reserve_http` connections.
    /// Default 512.
    pub reserved_files: usize,
    /// Open connections from one IP address (IPv6: one /64) on all TCP listeners together.
    /// Default 1000 (clients behind one NAT share an address).
    pub max_connections_per_ip: usize,
    /// HTTP connections accepted beyond `max_connections` that may only ask `/healthz` and
    /// `/metrics` (anything else gets 503): a full server can still be seen. Default 32.
    pub reserve_http: usize,
    /// Seconds a connection may take to say who it is: the HTTP request head (slowloris),
    /// a STOMP `CONNECT`. Default 10 (nginx's `client_header_timeout` is 60; clients that
    /// mean it send theirs at once).
    pub handshake_timeout_secs: u64,
    /// Seconds a write may wait for a client that reads nothing before the connection is
    /// dropped, on every TCP protocol (NATS `write_deadline`, nginx `send_timeout`).
    /// Default 10.
    pub write_timeout_secs: u64,
    /// Failed logins one address may make per minute; past it its logins are refused
    /// unchecked until the minute passes. Default 10; 0 turns the per-address budget off
    /// (behind a proxy that hides client addresses, every client is one address).
    pub login_failures_per_ip: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_connections: 0,
            reserved_files: 512,
            max_connections_per_ip: 1000,
            reserve_http: 32,
            handshake_timeout_secs: 10,
            write_timeout_secs: 10,
            login_failures_per_ip: 10,
        }
    }
}

impl LimitsConfig {
    /// `max_connections`, derived from the open-file limit when 0.
    pub fn connections(&self) -> usize {
        if self.max_connections > 0 {
            return self.max_connections;
        }
        let files = open_file_limit().unwrap_or(1024);
        files.saturating_sub(self.reserved_files).max(64)
    }

    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_secs(self.handshake_timeout_secs.max(1))
    }

    pub fn write_timeout(&self) -> Duration {
        Duration::from_secs(self.write_timeout_secs.max(1))
    }
}

/// The soft `RLIMIT_NOFILE` of this process.
fn open_file_limit() -> Option<usize> {
    use nix::sys::resource::{getrlimit, Resource};
    let (soft, _hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    Some(usize::try_from(soft).unwrap_or(usize::MAX))
}
