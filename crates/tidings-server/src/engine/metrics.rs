//! The Redis engine's counters, held by the engine and rendered into `/metrics`: what an
//! operator needs to see Redis slow, failing, reconnecting or losing messages.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the publish latency histogram's buckets.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Counters only (atomics, relaxed): a scrape may see one a little ahead of another.
#[derive(Debug, Default)]
pub(crate) struct EngineMetrics {
    pub(crate) publishes: AtomicU64,
    pub(crate) publish_errors: AtomicU64,
    /// Per bucket of [`BUCKETS`], plus one for +Inf; not cumulative (summed on render).
    publish_latency: [AtomicU64; BUCKETS.len() + 1],
    publish_latency_micros: AtomicU64,
    pub(crate) pubsub_messages: AtomicU64,
    pub(crate) pubsub_reconnects: AtomicU64,
    pub(crate) hole_fills: AtomicU64,
    pub(crate) filled_messages: AtomicU64,
    pub(crate) read_errors: AtomicU64,
    pub(crate) presence_writes: AtomicU64,
    pub(crate) presence_write_errors: AtomicU64,
    pub(crate) presence_resyncs: AtomicU64,
    pub(crate) presence_events: AtomicU64,
    pub(crate) presence_expired: AtomicU64,
    pub(crate) presence_mirror_full: AtomicU64,
    pub(crate) presence_remote_members: AtomicU64,
    pub(crate) health_round_trip_micros: AtomicU64,
}

impl EngineMetrics {
    /// Counts one publish answered by Redis (or failed) after `waited` in queue and pipeline.
    pub(crate) fn published(&self, ok: bool, waited: Duration) {
        if !ok {
            self.publish_errors.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.publishes.fetch_add(1, Ordering::Relaxed);
        let secs = waited.as_secs_f64();
        let bucket = BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(BUCKETS.len());
        self.publish_latency[bucket].fetch_add(1, Ordering::Relaxed);
        self.publish_latency_micros
            .fetch_add(waited.as_micros() as u64, Ordering::Relaxed);
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Prometheus text exposition, appended to `out`.
    pub(crate) fn render(&self, out: &mut String) {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let rows: [(&str, &str, &str, u64); 14] = [
            (
                "tidings_engine_publish_errors_total",
                "counter",
                "Publishes Redis refused or did not answer in time.",
                get(&self.publish_errors),
            ),
            (
                "tidings_engine_pubsub_messages_total",
                "counter",
                "Messages received from Redis pub/sub.",
                get(&self.pubsub_messages),
            ),
            (
                "tidings_engine_pubsub_reconnects_total",
                "counter",
                "Times the pub/sub connection was (re)established after a loss.",
                get(&self.pubsub_reconnects),
            ),
            (
                "tidings_engine_hole_fills_total",
                "counter",
                "Offset holes in pub/sub filled from a topic's stream.",
                get(&self.hole_fills),
            ),
            (
                "tidings_engine_filled_messages_total",
                "counter",
                "Messages delivered from a stream to fill a hole.",
                get(&self.filled_messages),
            ),
            (
                "tidings_engine_read_errors_total",
                "counter",
                "History, resume or hole reads that failed.",
                get(&self.read_errors),
            ),
            (
                "tidings_engine_presence_writes_total",
                "counter",
                "Presence joins and leaves written to Redis.",
                get(&self.presence_writes),
            ),
            (
                "tidings_engine_presence_write_errors_total",
                "counter",
                "Presence write batches that failed (followed by a resync).",
                get(&self.presence_write_errors),
            ),
            (
                "tidings_engine_presence_resyncs_total",
                "counter",
                "Times this node rewrote its whole presence membership.",
                get(&self.presence_resyncs),
            ),
            (
                "tidings_engine_presence_events_total",
                "counter",
                "Presence joins and leaves received from other nodes.",
                get(&self.presence_events),
            ),
            (
                "tidings_engine_presence_expired_total",
                "counter",
                "Members of dead nodes this node removed (and announced as leaves).",
                get(&self.presence_expired),
            ),
            (
                "tidings_engine_presence_mirror_full_total",
                "counter",
                "Remote members not mirrored because the mirror was full.",
                get(&self.presence_mirror_full),
            ),
            (
                "tidings_engine_presence_remote_members",
                "gauge",
                "Other nodes' presence members mirrored here.",
                get(&self.presence_remote_members),
            ),
            (
                "tidings_engine_health_round_trip_seconds",
                "gauge",
                "Time of the last pub/sub health round trip.",
                0,
            ),
        ];
        for (name, kind, help, value) in rows {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            if name == "tidings_engine_health_round_trip_seconds" {
                let secs = get(&self.health_round_trip_micros) as f64 / 1e6;
                let _ = writeln!(out, "{name} {secs}");
            } else {
                let _ = writeln!(out, "{name} {value}");
            }
        }
        let name = "tidings_engine_publish_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Publish latency: queued on this node until Redis numbered it.\n# TYPE {name} histogram"
        );
        let mut cumulative = 0;
        for (i, bound) in BUCKETS.iter().enumerate() {
            cumulative += get(&self.publish_latency[i]);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        cumulative += get(&self.publish_latency[BUCKETS.len()]);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
        let sum = get(&self.publish_latency_micros) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {cumulative}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_histogram_is_cumulative_and_counts_every_publish() {
        let m = EngineMetrics::default();
        m.published(true, Duration::from_micros(300));
        m.published(true, Duration::from_millis(30));
        m.published(true, Duration::from_secs(9));
        m.published(false, Duration::ZERO);
        let mut out = String::new();
        m.render(&mut out);
        assert!(out.contains("tidings_engine_publish_seconds_bucket{le=\"0.0005\"} 1\n"));
        assert!(out.contains("tidings_engine_publish_seconds_bucket{le=\"0.05\"} 2\n"));
        assert!(out.contains("tidings_engine_publish_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(out.contains("tidings_engine_publish_seconds_count 3\n"));
        assert!(out.contains("tidings_engine_publish_errors_total 1\n"));
    }
}
