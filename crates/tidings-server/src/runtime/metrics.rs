//! `GET /metrics`: the Prometheus text exposition of the hub's, SockJS's and UDP's counters.

use super::Shared;
use crate::transports::http::{respond, Body};
use bytes::Bytes;
use hyper::{Response, StatusCode};

/// Prometheus text exposition of the hub's counters.
pub(super) fn render(shared: &Shared) -> Response<Body> {
    let s = shared.hub.stats();
    let rows: [(&str, &str, &str, u64); 8] = [
        (
            "tidings_sessions",
            "gauge",
            "Open sessions of every protocol.",
            s.sessions as u64,
        ),
        (
            "tidings_topics",
            "gauge",
            "Topics with state (offsets, history).",
            s.topics as u64,
        ),
        (
            "tidings_subscriptions",
            "gauge",
            "Active subscriptions.",
            s.subscriptions as u64,
        ),
        (
            "tidings_published_total",
            "counter",
            "Messages published.",
            s.published,
        ),
        (
            "tidings_delivered_total",
            "counter",
            "Messages queued for subscribers.",
            s.delivered,
        ),
        (
            "tidings_dropped_total",
            "counter",
            "Messages dropped by the drop-oldest policy.",
            s.dropped,
        ),
        (
            "tidings_slow_consumers_closed_total",
            "counter",
            "Sessions closed as slow consumers.",
            s.slow_consumers_closed,
        ),
        (
            "tidings_queue_messages_expired_total",
            "counter",
            "Queue messages dropped after hub.queues.message_ttl_secs without a consumer.",
            s.queue_messages_expired,
        ),
    ];
    let mut out = String::new();
    let sockjs = (
        "tidings_sockjs_sessions",
        "gauge",
        "Open SockJS sessions.",
        shared.sockjs.sessions() as u64,
    );
    let c = &shared.connections;
    let connections = [
        (
            "tidings_connections",
            "gauge",
            "Open TCP connections on every listener (the HTTP reserve included).",
            c.open() as u64,
        ),
        (
            "tidings_connections_refused_total",
            "counter",
            "Connections refused because the server held limits.max_connections.",
            c.refused_total.load(std::sync::atomic::Ordering::Relaxed),
        ),
        (
            "tidings_connections_refused_per_ip_total",
            "counter",
            "Connections refused because their address held limits.max_connections_per_ip.",
            c.refused_per_ip.load(std::sync::atomic::Ordering::Relaxed),
        ),
    ];
    let (failed, refused) = shared.native.auth.failures();
    let logins = [
        (
            "tidings_login_failures_total",
            "counter",
            "Failed logins (wrong user or password) on every protocol.",
            failed,
        ),
        (
            "tidings_logins_refused_total",
            "counter",
            "Logins refused unchecked: their address failed too often (auth.rs LoginGuard).",
            refused,
        ),
    ];
    for (name, kind, help, value) in rows
        .into_iter()
        .chain([sockjs])
        .chain(connections)
        .chain(logins)
        .chain(shared.udp.rows())
    {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
        ));
    }
    // Labelled by kind, so a flood of expired tokens (a client not refreshing) is told
    // apart from forged ones (bad_signature, algorithm_not_allowed).
    let name = "tidings_token_refusals_total";
    out.push_str(&format!(
        "# HELP {name} Tokens refused, by why (docs/security.md).\n# TYPE {name} counter\n"
    ));
    for (reason, n) in shared.native.auth.token_refusals() {
        out.push_str(&format!("{name}{{reason=\"{reason}\"}} {n}\n"));
    }
    // The Redis engine's own figures (publish latency, errors, reconnects, presence).
    if let Some(remote) = &shared.api.remote {
        remote.metrics().render(&mut out);
    }
    respond(
        StatusCode::OK,
        "text/plain; version=0.0.4",
        Bytes::from(out),
    )
}
