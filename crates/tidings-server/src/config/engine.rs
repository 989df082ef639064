//! `[engine]`: where topics, history and offsets live. The in-memory engine (one node) is
//! the default; `kind = "redis"` shares them with every node on the same Redis.

use serde::Deserialize;

/// Which engine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// This process only (default).
    #[default]
    Memory,
    /// Redis: several nodes share topics, offsets, epochs and history.
    Redis,
}

/// `[engine]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// `memory` or `redis`. Default `memory`.
    pub kind: EngineKind,
    /// The Redis server, `redis://HOST:PORT[/DB]` (also `rediss://`, `redis://:PASSWORD@HOST`).
    /// Default `redis://127.0.0.1:6379`.
    pub url: String,
    /// Prefix of every key and channel, so several clusters can share one Redis. Default
    /// `tidings`.
    pub prefix: String,
    /// Milliseconds a Redis command may take before the operation fails with
    /// `unavailable`. Default 2000.
    pub timeout_ms: u64,
    /// Milliseconds a queue message may stay unacknowledged on a node that stopped renewing
    /// its lease (dead, or cut off from Redis) before another node takes it for its
    /// consumers. Live nodes renew every third of it. Default 30000.
    pub queue_claim_ms: u64,
    /// Milliseconds a node's presence members outlive it: the node refreshes its liveness
    /// every third of it, and once it lapses (the node died) every node is told they left.
    /// Default 30000; at least 300.
    pub presence_ttl_ms: u64,
    /// Milliseconds between the health round trips through Redis pub/sub; `/healthz` is
    /// degraded when none came back for three of them plus `timeout_ms`. Default 1000.
    pub health_interval_ms: u64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            kind: EngineKind::Memory,
            url: "redis://127.0.0.1:6379".into(),
            prefix: "tidings".into(),
            timeout_ms: 2000,
            queue_claim_ms: 30_000,
            presence_ttl_ms: 30_000,
            health_interval_ms: 1000,
        }
    }
}

impl EngineConfig {
    /// The Redis engine at `url` (what `--engine redis://HOST:PORT` sets).
    pub fn redis(url: &str) -> EngineConfig {
        EngineConfig {
            kind: EngineKind::Redis,
            url: url.into(),
            ..EngineConfig::default()
        }
    }

    pub(crate) fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.kind == EngineKind::Redis
            && !(self.url.starts_with("redis://")
                || self.url.starts_with("rediss://")
                || self.url.starts_with("redis+unix://"))
        {
            return Err(("url", format!("{:?} is not a redis:// URL", self.url)));
        }
        if self.prefix.is_empty() || self.prefix.contains(['*', '?', '[', ']', ' ']) {
            return Err((
                "prefix",
                "must be non-empty, without * ? [ ] or spaces".into(),
            ));
        }
        if self.timeout_ms == 0 {
            return Err(("timeout_ms", "must be at least 1".into()));
        }
        if self.queue_claim_ms < 100 {
            return Err((
                "queue_claim_ms",
                "must be at least 100 (a lease renewed every third of it)".into(),
            ));
        }
        if self.presence_ttl_ms < 300 {
            return Err(("presence_ttl_ms", "must be at least 300".into()));
        }
        if self.health_interval_ms < 10 {
            return Err(("health_interval_ms", "must be at least 10".into()));
        }
        Ok(())
    }
}
