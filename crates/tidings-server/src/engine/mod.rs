//! The engine layer of the server: the asynchronous half of a shared engine, above the
//! core's synchronous hub (see ARCHITECTURE.md, "Redis engine").
//!
//! With the in-memory engine (the default) drivers call the hub directly and this layer is
//! absent (`Option<Arc<RedisEngine>>` is `None`). With Redis, drivers hand publishes,
//! subscribes and history reads to [`RedisEngine`], which answers the client through its
//! outbox once Redis answered; live messages come back from Redis pub/sub and go to
//! [`tidings_core::Hub::deliver`].

mod codec;
pub(crate) mod connection;
mod nodes;
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

/// The hub and, with `[engine] kind = "redis"`, the Redis engine joined to it.
pub(crate) fn build(
    config: &crate::config::ServerConfig,
    seed: u64,
    shutdown: tokio_util::sync::CancellationToken,
) -> Result<(Arc<tidings_core::Hub>, Remote), crate::config::ConfigError> {
    use tidings_core::engine::{Engine, MemoryPresence};
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
            let shared = queue_store::Shared::new(config.hub.queues);
            let engine = Engine {
                log: Box::new(RemoteLog),
                presence: Box::new(MemoryPresence::default()),
                queues: Box::new(queue_store::RemoteQueues(shared.clone())),
            };
            let hub = tidings_core::Hub::with_engine(config.hub.clone(), engine).map_err(bad)?;
            let url_error = |reason| crate::config::ConfigError {
                field: "engine.url".into(),
                reason,
            };
            let queues = RedisQueues::start(
                hub.clone(),
                shared,
                &config.engine,
                config.hub.queues,
                seed,
                shutdown.clone(),
            )
            .map_err(url_error)?;
            let redis = RedisEngine::start(hub.clone(), &config.engine, seed, shutdown, queues)
                .map_err(url_error)?;
            Ok((hub, Some(redis)))
        }
    }
}
