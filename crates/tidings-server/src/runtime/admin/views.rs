//! What the admin API shows, read from the hub and the authenticator: the node, topics,
//! connections, queues and recent problems. Each view is one JSON value; `mod.rs` answers
//! requests with them and `live.rs` puts them in the snapshot it streams.

use super::super::Shared;
use crate::drivers::api::hub_error;
use crate::transports::http::Body;
use hyper::{Request, Response};
use serde_json::{json as j, Value};
use tidings_core::{Hub, Identity};

/// Rows of one page of connections or topics at most; and when `limit=` does not say.
pub(super) const PAGE: (usize, usize) = (100, 500);
/// Longest search string (`q=`).
const MAX_QUERY: usize = 128;
/// Messages of a topic's recent history shown.
const RECENT_HISTORY: usize = 50;

/// `q`, `offset`, `limit` of a listing.
pub(super) struct Query {
    pub(super) q: String,
    pub(super) offset: usize,
    pub(super) limit: usize,
}

pub(super) fn query_of<B>(req: &Request<B>) -> Query {
    let mut out = Query {
        q: String::new(),
        offset: 0,
        limit: PAGE.0,
    };
    for (k, v) in form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes()) {
        match &*k {
            "q" => out.q = v.chars().take(MAX_QUERY).collect::<String>().to_lowercase(),
            "offset" => out.offset = v.parse().unwrap_or(0),
            "limit" => out.limit = v.parse().unwrap_or(PAGE.0).clamp(1, PAGE.1),
            _ => {}
        }
    }
    out
}

/// Version, uptime, memory, CPU, connections by protocol, the hub's counters.
pub(super) fn node(shared: &Shared) -> Value {
    let hub = &shared.hub;
    let mut by_protocol: std::collections::BTreeMap<&str, usize> = Default::default();
    for s in hub.sessions() {
        *by_protocol.entry(s.meta.protocol).or_default() += 1;
    }
    let stats = hub.stats();
    let (rss, cpu) = process_usage();
    let admin = &shared.admin;
    let rates = *admin.rates.lock().unwrap_or_else(|e| e.into_inner());
    j!({
        "id": &admin.node_id,
        "host": super::nodes::host_name(),
        "pid": std::process::id(),
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_secs": admin.started.elapsed().as_secs(),
        "rss_bytes": rss,
        "cpu_secs": cpu,
        "connections": by_protocol,
        "sessions": stats.sessions,
        "topics": stats.topics,
        "subscriptions": stats.subscriptions,
        "published": stats.published,
        "delivered": stats.delivered,
        "dropped": stats.dropped,
        "slow_consumers_closed": stats.slow_consumers_closed,
        "queue_messages_expired": stats.queue_messages_expired,
        "published_per_sec": rates.published,
        "delivered_per_sec": rates.delivered,
    })
}

/// Resident memory (bytes) and CPU time used (seconds) of this process, on Linux.
fn process_usage() -> (Option<u64>, Option<f64>) {
    let rss = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map(|pages| pages * 4096);
    // Fields after the command's closing parenthesis: utime is the 12th, stime the 13th
    // (in clock ticks, 100 per second on Linux).
    let cpu = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = &s[s.rfind(')')? + 1..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
            Some(ticks as f64 / 100.0)
        });
    (rss, cpu)
}

pub(super) fn topics(hub: &Hub, q: &Query) -> Value {
    let all: Vec<_> = hub
        .topics()
        .into_iter()
        .filter(|t| q.q.is_empty() || t.name.to_lowercase().contains(&q.q))
        .collect();
    let rows: Vec<Value> = all
        .iter()
        .skip(q.offset)
        .take(q.limit)
        .map(|t| {
            j!({
                "topic": &*t.name,
                "subscribers": t.subscribers,
                "offset": t.last_offset,
                "epoch": t.epoch.as_deref(),
                "history_messages": t.history_messages,
                "history_bytes": t.history_bytes,
            })
        })
        .collect();
    j!({ "total": all.len(), "offset": q.offset, "topics": rows })
}

/// A topic's presence and its recent history.
pub(super) fn topic(hub: &Hub, who: &Identity, name: &str) -> Response<Body> {
    let members = match hub.presence(who, name) {
        Ok(m) => m,
        Err(e) => return hub_error(&e),
    };
    let page = match hub.history(who, name, 0, usize::MAX) {
        Ok(p) => p,
        Err(e) => return hub_error(&e),
    };
    let skip = page.messages.len().saturating_sub(RECENT_HISTORY);
    let mut messages = bytes::BytesMut::new();
    crate::drivers::fallback::json_array(
        &mut messages,
        page.messages[skip..]
            .iter()
            .map(crate::drivers::fallback::message_json),
    );
    let messages: Value = serde_json::from_slice(&messages).unwrap_or(Value::Null);
    let members: Vec<Value> = members
        .iter()
        .map(|m| j!({ "client": m.client.to_string(), "user": m.user.as_deref() }))
        .collect();
    super::ok(j!({
        "topic": name,
        "epoch": page.epoch.as_deref(),
        "offset": page.last_offset,
        "members": members,
        "messages": messages,
    }))
}

pub(super) fn connections(hub: &Hub, q: &Query) -> Value {
    let now = hub.clock();
    let rows: Vec<Value> = hub
        .sessions()
        .into_iter()
        .map(|s| {
            j!({
                "id": s.id.to_string(),
                "protocol": s.meta.protocol,
                "user": s.identity.user.as_deref(),
                "peer": s.meta.peer.map(|p| p.to_string()),
                "age_secs": now.saturating_sub(s.opened_ms) / 1000,
                "subscriptions": s.subscriptions,
                "consumers": s.consumers,
                "outbox_messages": s.outbox.queued,
                "outbox_bytes": s.outbox.queued_bytes,
                "outbox_max_messages": hub.config().outbox.max_messages,
                "outbox_max_bytes": hub.config().outbox.max_bytes,
            })
        })
        .filter(|row| {
            q.q.is_empty()
                || ["id", "protocol", "user", "peer"].iter().any(|k| {
                    row[*k]
                        .as_str()
                        .is_some_and(|v| v.to_lowercase().contains(&q.q))
                })
        })
        .collect();
    let total = rows.len();
    let page: Vec<Value> = rows.into_iter().skip(q.offset).take(q.limit).collect();
    j!({ "total": total, "offset": q.offset, "connections": page })
}

/// Recent auth failures and slow-consumer closes (bounded rings), and the totals.
pub(super) fn events(shared: &Shared) -> Value {
    let hub = &shared.hub;
    // The hub's clock and the wall clock differ only by the sweep's second; the page shows
    // Unix times.
    let slow: Vec<Value> = hub
        .recent_slow_consumers()
        .into_iter()
        .map(|c| {
            j!({
                "at_ms": c.at_ms,
                "connection": c.session.to_string(),
                "protocol": c.protocol,
                "peer": c.peer.map(|p| p.to_string()),
                "user": c.user.as_deref(),
                "topic": &*c.topic,
            })
        })
        .collect();
    let (failed, refused) = shared.native.auth.failures();
    j!({
        "auth_failures": shared.native.auth.recent_failures(),
        "slow_consumer_closes": slow,
        "login_failures_total": failed,
        "logins_refused_total": refused,
        "slow_consumers_closed_total": hub.stats().slow_consumers_closed,
    })
}

/// This node's queues (the in-memory engine's are all there are).
pub(super) fn queues(hub: &Hub) -> Value {
    let rows: Vec<Value> = hub
        .queues()
        .into_iter()
        .take(PAGE.1)
        .map(|(name, s)| {
            j!({
                "queue": &*name,
                "depth": s.ready,
                "unacked": s.unacked,
                "consumers": s.consumers,
                "published": s.published,
            })
        })
        .collect();
    j!({ "queues": rows })
}
