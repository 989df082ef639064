//! What every part of the Redis engine (topics in `redis.rs`, queues in `queues.rs`) does the
//! same way: open a reconnecting command connection, and run a pipeline of one script's
//! invocations within the timeout.

use crate::config::EngineConfig;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Script, Value};
use std::time::Duration;
use tidings_core::HubError;

pub(super) fn unavailable(e: impl std::fmt::Display) -> HubError {
    HubError::EngineUnavailable(format!("redis: {e}"))
}

/// The client (for pub/sub connections) and a command connection that reconnects by itself,
/// opened lazily: a node starts while Redis is down, and commands fail until it is back.
pub(crate) fn connect(cfg: &EngineConfig) -> Result<(redis::Client, ConnectionManager), String> {
    let client = redis::Client::open(cfg.url.as_str()).map_err(|e| e.to_string())?;
    let timeout = Duration::from_millis(cfg.timeout_ms);
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_secs(2));
    let conn = ConnectionManager::new_lazy_with_config(client.clone(), config)
        .map_err(|e| e.to_string())?;
    Ok((client, conn))
}

/// Runs a pipeline of `script`'s invocations within `timeout`, loading the script once on
/// `NOSCRIPT` (Redis restarted or flushed its scripts) and running it again.
pub(super) async fn run_script_pipeline(
    conn: &ConnectionManager,
    pipe: &redis::Pipeline,
    script: &Script,
    timeout: Duration,
) -> Result<Vec<Value>, HubError> {
    let mut conn = conn.clone();
    let mut loaded = false;
    loop {
        let run = pipe.query_async::<Vec<Value>>(&mut conn);
        match tokio::time::timeout(timeout, run).await {
            Err(_) => return Err(unavailable("no answer in time")),
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e))
                if !loaded
                    && e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
            {
                loaded = true;
                let load = script.load_async(&mut conn);
                match tokio::time::timeout(timeout, load).await {
                    Ok(Ok(_)) => continue,
                    Ok(Err(e)) => return Err(unavailable(e)),
                    Err(_) => return Err(unavailable("no answer in time")),
                }
            }
            Ok(Err(e)) => return Err(unavailable(e)),
        }
    }
}
