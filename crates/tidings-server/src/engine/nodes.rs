//! The cluster's node directory in Redis: each node says once a second that it is alive and
//! what it is doing, and the admin API of any node lists them all.
//!
//! Keys (`P` is `[engine] prefix`):
//! * `P:node:ID`: the node's summary (JSON text, what the admin API's `/node` shows), set with
//!   a TTL of [`NODE_TTL_MS`]: a node that stops (or loses Redis) vanishes within seconds;
//! * `P:nodes`: a sorted set of node ids scored by when their summary expires (the node's wall
//!   clock), the index a listing reads instead of scanning the keyspace. Ids whose score is
//!   older than [`FORGET_AFTER_MS`] are pruned by every listing; its own TTL is refreshed by
//!   every announcement, so a cluster that stopped leaves nothing behind.

use super::connection::unavailable;
use super::RedisEngine;
use redis::Value;
use tidings_core::HubError;

/// How long a node's summary stays without a new one: three missed announcements.
pub(crate) const NODE_TTL_MS: u64 = 3_000;
/// Ids in the index are pruned this long after their summary should have expired (clocks of
/// nodes may differ a little; the summary key's TTL is what really decides).
const FORGET_AFTER_MS: u64 = 60_000;
/// Nodes a listing returns at most (the directory's only unbounded input is other nodes).
pub(crate) const MAX_NODES: usize = 256;
/// Longest summary accepted from a node (the snapshot of one node is about 1 KiB).
const MAX_SUMMARY: usize = 64 * 1024;

fn node_key(prefix: &str, id: &str) -> String {
    format!("{prefix}:node:{id}")
}

fn index_key(prefix: &str) -> String {
    format!("{prefix}:nodes")
}

impl RedisEngine {
    /// Writes this node's summary (`SET P:node:ID ... PX`) and indexes it; `now_ms` is the
    /// wall clock.
    pub(crate) async fn announce_node(
        &self,
        id: &str,
        summary: &str,
        now_ms: u64,
    ) -> Result<(), HubError> {
        let (mut conn, prefix, timeout) = self.commands();
        let index = index_key(prefix);
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(node_key(prefix, id))
            .arg(summary)
            .arg("PX")
            .arg(NODE_TTL_MS)
            .ignore()
            .cmd("ZADD")
            .arg(&index)
            .arg(now_ms + NODE_TTL_MS)
            .arg(id)
            .ignore()
            .cmd("PEXPIRE")
            .arg(&index)
            .arg(FORGET_AFTER_MS)
            .ignore();
        match tokio::time::timeout(timeout, pipe.query_async::<()>(&mut conn)).await {
            Err(_) => Err(unavailable("redis does not answer")),
            Ok(Err(e)) => Err(unavailable(e)),
            Ok(Ok(())) => Ok(()),
        }
    }

    /// The summaries of the live nodes (this one included), at most [`MAX_NODES`], as JSON
    /// text (unordered); a summary that is not JSON or too large is left out.
    pub(crate) async fn list_nodes(&self, now_ms: u64) -> Result<Vec<String>, HubError> {
        let (mut conn, prefix, timeout) = self.commands();
        let index = index_key(prefix);
        let prune = redis::cmd("ZREMRANGEBYSCORE")
            .arg(&index)
            .arg("-inf")
            .arg(now_ms.saturating_sub(FORGET_AFTER_MS))
            .to_owned();
        let ids = redis::cmd("ZRANGE")
            .arg(&index)
            .arg(0)
            .arg(MAX_NODES - 1)
            .to_owned();
        let read = async {
            prune.query_async::<()>(&mut conn).await?;
            let ids: Vec<String> = ids.query_async(&mut conn).await?;
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            let mut mget = redis::cmd("MGET");
            for id in &ids {
                mget.arg(node_key(prefix, id));
            }
            mget.query_async::<Vec<Value>>(&mut conn).await
        };
        let values = match tokio::time::timeout(timeout, read).await {
            Err(_) => return Err(unavailable("redis does not answer")),
            Ok(Err(e)) => return Err(unavailable(e)),
            Ok(Ok(v)) => v,
        };
        Ok(values
            .into_iter()
            .filter_map(|v| match v {
                Value::BulkString(b) if b.len() <= MAX_SUMMARY => String::from_utf8(b).ok(),
                _ => None,
            })
            .filter(|s| serde_json::from_str::<serde::de::IgnoredAny>(s).is_ok())
            .collect())
    }
}
