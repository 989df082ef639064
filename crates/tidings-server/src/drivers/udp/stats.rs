//! Counters of the UDP endpoint, for `/metrics` and tests.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of the UDP endpoint. All are totals since start except `subscribers`.
#[derive(Debug, Default)]
pub(crate) struct UdpStats {
    /// Datagrams received (before any check).
    pub(crate) received: AtomicU64,
    /// System calls that received datagrams (`recvmmsg`, each possibly several datagrams).
    pub(crate) receive_calls: AtomicU64,
    /// Dropped: not a tidings datagram, malformed, or too large.
    pub(crate) bad: AtomicU64,
    /// Dropped by the per-source rate limit (or because the source table was full).
    pub(crate) rate_limited: AtomicU64,
    /// `CHALLENGE`s sent (subscribe, renew or unsubscribe without a valid cookie).
    pub(crate) challenges: AtomicU64,
    /// Replies not sent because they were longer than the request from an unvalidated address.
    pub(crate) replies_withheld: AtomicU64,
    /// Message datagrams sent to subscribers.
    pub(crate) messages_sent: AtomicU64,
    /// Messages not sent to a subscriber because their datagram would exceed `max_payload`.
    pub(crate) oversize: AtomicU64,
    /// GSO sends (several message datagrams to one subscriber in one system call).
    pub(crate) gso_sends: AtomicU64,
    /// GSO sends the kernel refused; their datagrams were sent again one by one.
    pub(crate) gso_fallbacks: AtomicU64,
    /// Datagrams the kernel refused to send (send buffer full, unreachable).
    pub(crate) send_errors: AtomicU64,
    /// Subscriber addresses whose lease ran out.
    pub(crate) leases_expired: AtomicU64,
    /// Subscriber addresses dropped because their outbox overflowed (`disconnect` policy).
    pub(crate) slow_dropped: AtomicU64,
    /// Subscriber addresses now.
    pub(crate) subscribers: AtomicU64,
    /// Publishes the engine refused (Redis unavailable, rights): counted because a datagram
    /// without a request id is never answered.
    pub(crate) publish_failures: AtomicU64,
}

impl UdpStats {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// `(name, type, help, value)` rows for the Prometheus exposition.
    pub(crate) fn rows(&self) -> Vec<(&'static str, &'static str, &'static str, u64)> {
        let g = Self::get;
        vec![
            (
                "tidings_udp_datagrams_received_total",
                "counter",
                "UDP datagrams received.",
                g(&self.received),
            ),
            (
                "tidings_udp_receive_calls_total",
                "counter",
                "System calls that received UDP datagrams (recvmmsg: several per call).",
                g(&self.receive_calls),
            ),
            (
                "tidings_udp_bad_datagrams_total",
                "counter",
                "UDP datagrams dropped as malformed, foreign or too large.",
                g(&self.bad),
            ),
            (
                "tidings_udp_rate_limited_total",
                "counter",
                "UDP datagrams dropped by the per-source rate limit.",
                g(&self.rate_limited),
            ),
            (
                "tidings_udp_challenges_total",
                "counter",
                "Address-validation challenges sent.",
                g(&self.challenges),
            ),
            (
                "tidings_udp_replies_withheld_total",
                "counter",
                "Replies not sent: longer than the request of an unvalidated address.",
                g(&self.replies_withheld),
            ),
            (
                "tidings_udp_messages_sent_total",
                "counter",
                "Message datagrams sent to UDP subscribers.",
                g(&self.messages_sent),
            ),
            (
                "tidings_udp_oversize_total",
                "counter",
                "Messages not sent to a UDP subscriber: larger than datagram.max_payload.",
                g(&self.oversize),
            ),
            (
                "tidings_udp_gso_sends_total",
                "counter",
                "GSO sends: several datagrams to one UDP subscriber in one system call.",
                g(&self.gso_sends),
            ),
            (
                "tidings_udp_gso_fallbacks_total",
                "counter",
                "GSO sends the kernel refused, sent again one datagram at a time.",
                g(&self.gso_fallbacks),
            ),
            (
                "tidings_udp_send_errors_total",
                "counter",
                "Datagrams the kernel refused to send.",
                g(&self.send_errors),
            ),
            (
                "tidings_udp_leases_expired_total",
                "counter",
                "UDP subscriber addresses whose lease ran out.",
                g(&self.leases_expired),
            ),
            (
                "tidings_udp_slow_subscribers_dropped_total",
                "counter",
                "UDP subscriber addresses dropped because their queue overflowed.",
                g(&self.slow_dropped),
            ),
            (
                "tidings_udp_publish_failures_total",
                "counter",
                "UDP publishes refused (e.g. the Redis engine unavailable); without a request id the sender is not told.",
                g(&self.publish_failures),
            ),
            (
                "tidings_udp_subscribers",
                "gauge",
                "UDP subscriber addresses with a lease.",
                g(&self.subscribers),
            ),
        ]
    }
}
