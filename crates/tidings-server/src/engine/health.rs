//! The pub/sub health round trip: every `engine.health_interval_ms` the node publishes the
//! time to its own health channel (`P:h:NODE`) and its cluster pub/sub connection receives it
//! back. `/healthz` is degraded when the last round trip is older than three intervals plus
//! the command timeout: Redis may answer PING and still not deliver what is published.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

#[derive(Debug)]
pub(crate) struct RoundTrip {
    interval: Duration,
    timeout: Duration,
    /// Clock milliseconds (`clock::now_ms`) the last round trip came back; 0: none yet.
    last_back_ms: AtomicU64,
    /// Clock milliseconds this node started, so a fresh node has time for its first one.
    started_ms: u64,
}

impl RoundTrip {
    pub(crate) fn new(interval: Duration, timeout: Duration, now_ms: u64) -> RoundTrip {
        RoundTrip {
            interval,
            timeout,
            last_back_ms: AtomicU64::new(0),
            started_ms: now_ms,
        }
    }

    pub(crate) fn interval(&self) -> Duration {
        self.interval
    }

    /// Records a health message, published at `sent_ms`, received back at `now_ms`; the
    /// round trip's time.
    pub(crate) fn back(&self, sent_ms: u64, now_ms: u64) -> Duration {
        self.last_back_ms.fetch_max(now_ms, Ordering::Relaxed);
        Duration::from_millis(now_ms.saturating_sub(sent_ms))
    }

    /// `Err(why)` when no round trip came back recently enough.
    pub(crate) fn check(&self, now_ms: u64) -> Result<(), String> {
        let limit = (self.interval * 3 + self.timeout).as_millis() as u64;
        let last = self.last_back_ms.load(Ordering::Relaxed);
        let since = now_ms.saturating_sub(last.max(self.started_ms));
        if since > limit {
            let what = if last == 0 { "yet" } else { "for" };
            return Err(format!(
                "no redis pub/sub round trip {what} {since} ms (limit {limit} ms)"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn degraded_once_round_trips_stop_for_three_intervals_plus_the_timeout() {
        let rt = RoundTrip::new(
            Duration::from_millis(100),
            Duration::from_millis(200),
            1_000,
        );
        assert!(rt.check(1_400).is_ok(), "a fresh node gets time");
        assert!(rt.check(1_600).unwrap_err().contains("yet"));
        assert_eq!(rt.back(1_590, 1_600), Duration::from_millis(10));
        assert!(rt.check(2_000).is_ok());
        assert!(rt.check(2_101).unwrap_err().contains("for 501 ms"));
    }
}
