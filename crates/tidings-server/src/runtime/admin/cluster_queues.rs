//! The admin's queue view and purge with the Redis engine, where the queues live in Redis
//! (`engine/queues/admin.rs`): depth and unacknowledged are the cluster's, consumers this
//! node's plus the other nodes holding messages. With the in-memory engine the hub answers
//! (`views::queues`, `Hub::purge_queue`).

use super::super::Shared;
use super::ok;
use super::views::{queues as local_queues, PAGE};
use crate::drivers::api::{error, hub_error};
use crate::transports::http::Body;
use hyper::{Response, StatusCode};
use serde_json::{json as j, Value};
use std::collections::BTreeMap;

/// `{"queues": [...]}`, at most a page, in name order; `"error"` (and this node's own view)
/// when Redis does not answer.
pub(super) async fn queues(shared: &Shared) -> Value {
    let hub = &shared.hub;
    let Some(engine) = &shared.api.remote else {
        return local_queues(hub);
    };
    let cluster = match engine.queues().cluster_view(PAGE.1).await {
        Ok(c) => c,
        Err(e) => {
            let mut out = local_queues(hub);
            out["error"] = Value::String(e.to_string());
            return out;
        }
    };
    let mut rows: BTreeMap<String, Value> = BTreeMap::new();
    for q in cluster {
        let local = hub.queue_stats(&q.name).map_or(0, |s| s.consumers);
        let row = j!({
            "queue": &q.name,
            "depth": q.waiting,
            "unacked": q.held,
            "consumers": local + q.other_holders,
            "published": q.published,
        });
        rows.insert(q.name, row);
    }
    // Consumed here with nothing in Redis (the stream is deleted when emptied).
    for (name, s) in hub.queues() {
        rows.entry(name.to_string()).or_insert_with(|| {
            j!({
                "queue": &*name,
                "depth": 0,
                "unacked": s.unacked,
                "consumers": s.consumers,
                "published": 0,
            })
        });
    }
    let rows: Vec<Value> = rows.into_values().take(PAGE.1).collect();
    j!({ "queues": rows })
}

/// `POST /api/admin/queues/<queue>/purge`: what waits for a consumer is dropped (in Redis
/// for the whole cluster), logged with the admin's name.
pub(super) async fn purge(shared: &Shared, admin: &str, queue: &str) -> Response<Body> {
    let purged = match &shared.api.remote {
        None => shared.hub.purge_queue(queue).map(|n| n as u64),
        Some(engine) => match engine.queues().purge(queue).await {
            Err(e) => return hub_error(&e),
            // A queue consumed here has no stream while nothing of it is stored.
            Ok(None) => shared.hub.queue_stats(queue).map(|_| 0),
            Ok(n) => n,
        },
    };
    match purged {
        Some(n) => {
            tracing::info!(admin, queue, purged = n, "admin: purged a queue");
            ok(j!({ "queue": queue, "purged": n }))
        }
        None => error(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("no queue {queue:?}"),
        ),
    }
}
