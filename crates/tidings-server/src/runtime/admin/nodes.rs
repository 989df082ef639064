//! The admin's once-a-second work and the cluster view.
//!
//! One ticker task per node measures the publish and delivery rates, announces the node's
//! summary to the cluster (with the Redis engine: `engine/nodes.rs`, key `P:node:ID`, TTL 3 s),
//! and, while a live admin stream is open, builds the one snapshot all streams send
//! (`live.rs`). `/api/admin/nodes` lists every live node: from Redis with the Redis engine,
//! this node alone with the in-memory one.

use super::super::Shared;
use super::views::node;
use serde_json::{json as j, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Publishes and deliveries per second over the ticker's last second; `None` until measured.
#[derive(Clone, Copy, Default)]
pub(super) struct Rates {
    pub(super) published: Option<f64>,
    pub(super) delivered: Option<f64>,
}

/// The machine's name (Linux), so a person can tell nodes apart; `None` elsewhere.
pub(super) fn host_name() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// Once a second until shutdown: rates, the cluster announcement, the live snapshot.
pub(crate) async fn ticker(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    // A slow Redis delays the next tick rather than bunching them up.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last: Option<(Instant, u64, u64)> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shared.shutdown.cancelled() => return,
        }
        let stats = shared.hub.stats();
        let now = Instant::now();
        if let Some((at, published, delivered)) = last {
            let secs = now.duration_since(at).as_secs_f64().max(0.001);
            let per_sec = |new: u64, old: u64| Some(new.saturating_sub(old) as f64 / secs);
            *shared.admin.rates.lock().unwrap_or_else(|e| e.into_inner()) = Rates {
                published: per_sec(stats.published, published),
                delivered: per_sec(stats.delivered, delivered),
            };
        }
        last = Some((now, stats.published, stats.delivered));
        if let Some(engine) = &shared.api.remote {
            let summary = node(&shared).to_string();
            let id = &shared.admin.node_id;
            if let Err(e) = engine
                .announce_node(id, &summary, crate::clock::now_ms())
                .await
            {
                tracing::debug!(error = %e, "admin: could not announce this node");
            }
        }
        if shared.admin.live.watched() {
            let snapshot = super::live::snapshot(&shared).await;
            shared.admin.live.publish(snapshot);
        }
    }
}

/// `{"cluster": bool, "nodes": [...], "error"?}`: every live node's summary in id order
/// (this node's is read fresh), at most `engine::MAX_NODES`.
pub(super) async fn nodes(shared: &Shared) -> Value {
    let this = node(shared);
    let Some(engine) = &shared.api.remote else {
        return j!({ "cluster": false, "this": &shared.admin.node_id, "nodes": [this] });
    };
    let (mut nodes, error) = match engine.list_nodes(crate::clock::now_ms()).await {
        Ok(listed) => (
            listed
                .iter()
                .filter_map(|s| serde_json::from_str::<Value>(s).ok())
                .filter(|n| n["id"] != this["id"])
                .collect::<Vec<_>>(),
            None,
        ),
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    nodes.truncate(crate::engine::MAX_NODES - 1);
    nodes.push(this);
    nodes.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    let mut out = j!({ "cluster": true, "this": &shared.admin.node_id, "nodes": nodes });
    if let Some(e) = error {
        out["error"] = Value::String(e);
    }
    out
}
