//! Per-source rate limiting: a token bucket for each client address, in a bounded table.
//!
//! Buckets are per IP (IPv6: per /64), not per IP:port: ports cost a sender nothing, so
//! keying by them let one host fill the table. UDP source addresses can be forged, so the
//! table must not grow with the number of addresses an attacker invents: it holds at most
//! `max_sources` entries, forgets entries whose bucket has refilled (they behave exactly like
//! new ones), and when still full says so ([`Verdict::TableFull`]): the caller then still
//! lets validated peers (subscribers holding a lease, which proved they receive at their
//! address) through, so a spoofed flood cannot cut them off.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

/// What the limiter says of a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Allow,
    /// The source spent its tokens.
    Limited,
    /// The table is full and the source is not in it.
    TableFull,
}

/// Milli-tokens per datagram, so refills are exact in whole milliseconds.
const UNIT: u64 = 1000;

struct Bucket {
    /// Milli-tokens available.
    tokens: u64,
    /// When `tokens` was last brought up to date (ms).
    at: u64,
}

pub(crate) struct RateLimiter {
    /// Datagrams per second, sustained (milli-tokens per millisecond); 0 = no limit.
    rate: u64,
    /// Bucket size, milli-tokens.
    capacity: u64,
    max_sources: usize,
    buckets: HashMap<IpAddr, Bucket>,
}

impl RateLimiter {
    pub(crate) fn new(rate_per_sec: u32, burst: u32, max_sources: usize) -> Self {
        Self {
            rate: u64::from(rate_per_sec),
            capacity: u64::from(burst.max(1)) * UNIT,
            max_sources,
            buckets: HashMap::new(),
        }
    }

    /// Takes one datagram's token for `addr`'s address, or says why not.
    pub(crate) fn check(&mut self, addr: SocketAddr, now: u64) -> Verdict {
        if self.rate == 0 {
            return Verdict::Allow;
        }
        let addr = crate::listen::address_key(addr.ip());
        if !self.buckets.contains_key(&addr) && self.buckets.len() >= self.max_sources {
            return Verdict::TableFull;
        }
        let (rate, capacity) = (self.rate, self.capacity);
        let bucket = self.buckets.entry(addr).or_insert(Bucket {
            tokens: capacity,
            at: now,
        });
        let elapsed = now.saturating_sub(bucket.at);
        bucket.tokens = bucket
            .tokens
            .saturating_add(elapsed.saturating_mul(rate))
            .min(capacity);
        bucket.at = now.max(bucket.at);
        match bucket.tokens >= UNIT {
            true => {
                bucket.tokens -= UNIT;
                Verdict::Allow
            }
            false => Verdict::Limited,
        }
    }

    /// Forgets every address whose bucket is full again by `now`.
    pub(crate) fn sweep(&mut self, now: u64) {
        if self.rate == 0 {
            return;
        }
        let (rate, capacity) = (self.rate, self.capacity);
        self.buckets.retain(|_, b| {
            let refilled = b
                .tokens
                .saturating_add(now.saturating_sub(b.at).saturating_mul(rate));
            refilled < capacity
        });
    }

    #[cfg(test)]
    pub(crate) fn allow(&mut self, addr: SocketAddr, now: u64) -> bool {
        self.check(addr, now) == Verdict::Allow
    }

    #[cfg(test)]
    pub(crate) fn tracked(&self) -> usize {
        self.buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(n: u16) -> SocketAddr {
        SocketAddr::from(([10, 0, (n >> 8) as u8, n as u8], 4000))
    }

    #[test]
    fn ports_of_one_address_share_its_bucket() {
        let mut r = RateLimiter::new(10, 2, 100);
        let host = |port| SocketAddr::from(([10, 0, 0, 1], port));
        assert!(r.allow(host(1), 0) && r.allow(host(2), 0));
        assert_eq!(r.check(host(3), 0), Verdict::Limited);
        assert_eq!(r.tracked(), 1);
    }

    #[test]
    fn burst_then_rate() {
        let mut r = RateLimiter::new(10, 5, 100);
        let a = addr(1);
        assert!((0..5).all(|_| r.allow(a, 0)));
        assert!(!r.allow(a, 0));
        assert!(!r.allow(a, 99), "0.99 tokens after 99 ms at 10/s");
        assert!(r.allow(a, 100));
        assert!(!r.allow(a, 100));
        // Other addresses have their own bucket.
        assert!(r.allow(addr(2), 100));
    }

    #[test]
    fn the_table_is_bounded_and_forgets_refilled_buckets() {
        let mut r = RateLimiter::new(10, 2, 3);
        for p in 1..=3 {
            assert!(r.allow(addr(p), 0));
        }
        assert_eq!(
            r.check(addr(4), 0),
            Verdict::TableFull,
            "full: a new address is refused"
        );
        assert!(r.allow(addr(1), 0), "known addresses go on");
        r.sweep(50);
        assert_eq!(r.tracked(), 3, "not refilled yet");
        r.sweep(1000);
        assert_eq!(r.tracked(), 0);
        assert!(r.allow(addr(4), 1000));
    }

    #[test]
    fn zero_rate_means_no_limit() {
        let mut r = RateLimiter::new(0, 0, 1);
        assert!((0..10_000).all(|p| r.allow(addr(p as u16), 0)));
        assert!((0..10).all(|p| r.allow(SocketAddr::from(([1, 2, 3, 4], p)), 0)));
        assert_eq!(r.tracked(), 0);
    }
}
