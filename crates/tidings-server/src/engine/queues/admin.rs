//! The admin's side of the Redis queues: a cluster-wide view of the queues and the purge.
//! Both read or change Redis when the admin asks; nothing is cached on the node.
//!
//! * **view**: the names come from `P:queues` (`SSCAN`, at most `MAX_LISTED` names), then
//!   one `STATS` script per `STATS_CHUNK` queues: waiting (`XLEN` − pending + handed back),
//!   held unacknowledged (the other pending ones, every node's) and the nodes holding some
//!   (`XPENDING` summary less the handed-back entries).
//! * **purge**: the `PURGE` script, `PURGE_CHUNK` entries of each kind per call (Redis runs a
//!   script alone), until nothing is left or `PURGE_CALLS` calls were made.

use super::super::connection::unavailable;
use super::super::queue_scripts;
use super::super::redis::{int_of, string_of};
use super::{RedisQueues, HANDED_BACK_IDLE_MS};
use redis::{Script, Value};
use tidings_core::HubError;

/// Queue names read from `P:queues` for one view (the set is bounded by `max_queues`).
const MAX_LISTED: usize = 5000;
/// Queues per `STATS` script call.
const STATS_CHUNK: usize = 100;
/// Handed-back entries counted per queue in a view (they are a few consumers' prefetch).
const HANDED_BACK_LOOKED_AT: usize = 10_000;
/// Entries of each kind (never delivered, handed back) dropped per `PURGE` call.
const PURGE_CHUNK: usize = 1000;
/// `PURGE` calls per purge: publishers racing the purge cannot keep it going for ever.
const PURGE_CALLS: usize = 1000;

/// One queue as Redis sees it, for the whole cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClusterQueue {
    pub(crate) name: String,
    /// Messages waiting for a consumer (never delivered or handed back).
    pub(crate) waiting: u64,
    /// Messages some node holds, not yet acknowledged (nor handed back).
    pub(crate) held: u64,
    /// The last sequence published.
    pub(crate) published: u64,
    /// Other nodes holding entries of it (so having consumers), this node not counted.
    pub(crate) other_holders: usize,
}

impl RedisQueues {
    /// Drops what waits in `queue` for a consumer, cluster-wide (not what consumers hold),
    /// and returns how many; `None` when Redis has no such queue.
    pub(crate) async fn purge(&self, queue: &str) -> Result<Option<u64>, HubError> {
        let script = Script::new(&queue_scripts::purge());
        let mut dropped = 0;
        for call in 0..PURGE_CALLS {
            let mut inv = script.prepare_invoke();
            for k in self.keys_of(queue) {
                inv.key(k);
            }
            inv.arg(queue).arg(PURGE_CHUNK).arg(HANDED_BACK_IDLE_MS);
            let reply = self.call(inv).await?;
            let Value::Array(parts) = &reply else {
                return Err(unavailable(format!(
                    "unexpected reply to a purge: {reply:?}"
                )));
            };
            match parts.first() {
                Some(Value::Int(-1)) if call == 0 => return Ok(None),
                Some(Value::Int(-1)) => break,
                Some(n) => dropped += int_of(n).unwrap_or(0),
                None => return Err(unavailable("empty reply to a purge")),
            }
            if parts.get(1).and_then(int_of) != Some(1) {
                break;
            }
        }
        Ok(Some(dropped))
    }

    /// At most `limit` queues known to Redis, in name order, with their cluster-wide counts.
    pub(crate) async fn cluster_view(&self, limit: usize) -> Result<Vec<ClusterQueue>, HubError> {
        let mut names = self.queue_names().await?;
        names.sort();
        names.truncate(limit);
        let script = Script::new(queue_scripts::STATS);
        let mut out = Vec::with_capacity(names.len());
        for chunk in names.chunks(STATS_CHUNK) {
            let mut inv = script.prepare_invoke();
            for name in chunk {
                inv.key(self.key("q", name)).key(self.key("qm", name));
            }
            inv.arg(HANDED_BACK_IDLE_MS).arg(HANDED_BACK_LOOKED_AT);
            let Value::Array(rows) = self.call(inv).await? else {
                return Err(unavailable("unexpected reply to the queue view"));
            };
            for (name, row) in chunk.iter().zip(rows) {
                out.push(self.cluster_queue(name, &row));
            }
        }
        Ok(out)
    }

    fn cluster_queue(&self, name: &str, row: &Value) -> ClusterQueue {
        let parts: &[Value] = match row {
            Value::Array(p) => p,
            _ => &[],
        };
        let int = |i: usize| parts.get(i).and_then(int_of).unwrap_or(0);
        let other_holders = match parts.get(3) {
            Some(Value::Array(holders)) => holders
                .iter()
                .filter_map(string_of)
                .filter(|h| *h != self.node)
                .count(),
            _ => 0,
        };
        ClusterQueue {
            name: name.to_owned(),
            waiting: int(0),
            held: int(1),
            published: int(2),
            other_holders,
        }
    }

    /// The names in `P:queues`, at most `MAX_LISTED`.
    async fn queue_names(&self) -> Result<Vec<String>, HubError> {
        let key = format!("{}:queues", self.prefix);
        let mut conn = self.conn.clone();
        let mut cursor: u64 = 0;
        let mut names = Vec::new();
        loop {
            let mut cmd = redis::cmd("SSCAN");
            cmd.arg(&key).arg(cursor).arg("COUNT").arg(STATS_CHUNK);
            let scan = cmd.query_async::<(u64, Vec<String>)>(&mut conn);
            let (next, batch) = match tokio::time::timeout(self.timeout, scan).await {
                Err(_) => return Err(unavailable("no answer in time")),
                Ok(Err(e)) => return Err(unavailable(e)),
                Ok(Ok(v)) => v,
            };
            names.extend(batch);
            cursor = next;
            if cursor == 0 || names.len() >= MAX_LISTED {
                break;
            }
        }
        // SSCAN may return a name twice.
        names.sort();
        names.dedup();
        names.truncate(MAX_LISTED);
        Ok(names)
    }
}
