//! The engine layer of the server: the asynchronous half of a shared engine, above the
//! core's synchronous hub (see ARCHITECTURE.md, "Redis engine").
//!
//! With the in-memory engine (the default) drivers call the hub directly and this layer is
//! absent (`Option<Arc<RedisEngine>>` is `None`). With Redis, drivers hand publishes,
//! subscribes and history reads to [`RedisEngine`], which answers the client through its
//! outbox once Redis answered; live messages come back from Redis pub/sub and go to
//! [`tidings_core::Hub::deliver`].

mod cluster;
mod codec;
pub(crate) mod connection;
mod health;
mod metrics;
mod nodes;
mod presence;
mod queue_scripts;
mod queue_store;
mod queues;
mod redis;
mod remote_log;

pub(crate) use self::redis::RedisEngine;
pub(crate) use nodes::MAX_NODES;
pub(crate) use queues::RedisQueues;
pub(crate) use remote_log::RemoteLog;

use std::sync::Arc;

/// What drivers hold: the Redis engine, or `None` for the in-memory one.
pub(crate) type Remote = Option<Arc<RedisEngine>>;

/// The hub and, with `[engine] kind = "redis"`, the Redis engine joined to it; `node` names
/// this node in Redis (presence keys, its session ids' tag, queue claims).
pub(crate) fn build(
    config: &crate::config::ServerConfig,
    node: &crate::node_id::NodeId,
    seed: u64,
    shutdown: tokio_util::sync::CancellationToken,
    tasks: &tokio_util::task::TaskTracker,
) -> Result<(Arc<tidings_core::Hub>, Remote), crate::config::ConfigError> {
    use tidings_core::engine::Engine;
    let bad = |e: tidings_core::ConfigError| crate::config::ConfigError {
        field: e.field,
        reason: e.reason,
    };
    match config.engine.kind {
        crate::config::EngineKind::Memory => {
            let hub = tidings_core::Hub::new(config.hub.clone(), seed).map_err(bad)?;
            Ok((hub, None))
        }
        crate::config::EngineKind::Redis => {
            // Presence through Redis: a mirror of the cluster's members behind the hub's
            // synchronous store, written and followed by the cluster tasks. Queues: local
            // consumers, the ready list in Redis.
            let metrics = Arc::new(metrics::EngineMetrics::default());
            let (presence_shared, writes) =
                presence::PresenceShared::new(node.clone(), metrics.clone());
            let queue_shared = queue_store::Shared::new(config.hub.queues);
            let engine = Engine {
                log: Box::new(RemoteLog),
                presence: Box::new(presence::RedisPresence::new(presence_shared.clone())),
                queues: Box::new(queue_store::RemoteQueues(queue_shared.clone())),
            };
            let hub = tidings_core::Hub::with_engine_numbered(
                config.hub.clone(),
                engine,
                node.first_session(),
            )
            .map_err(bad)?;
            let redis_error = |reason| crate::config::ConfigError {
                field: "engine.url".into(),
                reason,
            };
            let queues = RedisQueues::start(
                hub.clone(),
                queue_shared,
                &config.engine,
                config.hub.queues,
                node,
                shutdown.clone(),
            )
            .map_err(redis_error)?;
            let round_trip = Arc::new(health::RoundTrip::new(
                std::time::Duration::from_millis(config.engine.health_interval_ms),
                std::time::Duration::from_millis(config.engine.timeout_ms),
                crate::clock::now_ms(),
            ));
            let redis = RedisEngine::start(
                hub.clone(),
                &config.engine,
                seed,
                metrics,
                round_trip.clone(),
                shutdown.clone(),
                queues,
            )
            .map_err(redis_error)?;
            let chores = cluster::Chores {
                writes,
                round_trip,
                shutdown,
                tasks: tasks.clone(),
            };
            cluster::start(hub.clone(), presence_shared, &config.engine, chores)
                .map_err(redis_error)?;
            Ok((hub, Some(redis)))
        }
    }
}
