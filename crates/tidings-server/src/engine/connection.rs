//! The Redis connection every user of `[engine]` opens the same way.

use crate::config::EngineConfig;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::time::Duration;

/// The client (for pub/sub connections) and a lazy, reconnecting command connection whose
/// connects and answers are bounded by `engine.timeout_ms`.
pub(crate) fn open(cfg: &EngineConfig) -> Result<(redis::Client, ConnectionManager), String> {
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
