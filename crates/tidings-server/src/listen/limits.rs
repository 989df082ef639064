//! How many connections the server holds, in all and per client address (mini-redis's
//! semaphore, nginx's `limit_conn`). Every TCP listener admits through one [`ConnLimits`];
//! a connection refused is told so in its protocol's words and closed at once.
//!
//! Past the total, HTTP still admits a few connections on a reserve that may only ask
//! `/healthz` and `/metrics`, so an operator can see a full server. The total is kept below
//! the open-file limit (see `LimitsConfig::connections`), so a flood ends in clear refusals
//! rather than in failing `accept`s and files that cannot be opened.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// The connection counts and the limits they are held to.
#[derive(Debug)]
pub(crate) struct ConnLimits {
    max_total: usize,
    max_per_ip: usize,
    reserve: usize,
    open: AtomicUsize,
    on_reserve: AtomicUsize,
    /// Open connections per address, and how many of them are on the reserve (an entry goes
    /// when its count reaches 0, so the map holds at most one entry per open connection).
    per_ip: Mutex<HashMap<IpAddr, PerIp>>,
    pub(crate) refused_total: AtomicU64,
    pub(crate) refused_per_ip: AtomicU64,
}

#[derive(Debug, Default, Clone, Copy)]
struct PerIp {
    open: usize,
    on_reserve: usize,
}

/// Reserve places one address may hold: enough for an operator's probe, too few for a flood
/// from that address to take the reserve from everyone else.
const RESERVE_PER_IP: usize = 2;

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The server holds `max_connections`.
    Full,
    /// This address holds `max_connections_per_ip`.
    PerIp,
}

impl Refusal {
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Refusal::Full => "too many connections",
            Refusal::PerIp => "too many connections from your address",
        }
    }
}

/// An admitted connection's place; dropping it frees the place.
#[derive(Debug)]
pub(crate) struct Admitted {
    limits: Arc<ConnLimits>,
    ip: IpAddr,
    /// On the HTTP reserve: may only ask `/healthz` and `/metrics`.
    pub(crate) on_reserve: bool,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let l = &self.limits;
        if self.on_reserve {
            l.on_reserve.fetch_sub(1, Ordering::Relaxed);
        } else {
            l.open.fetch_sub(1, Ordering::Relaxed);
        }
        let mut map = l.map();
        if let Some(n) = map.get_mut(&self.ip) {
            n.open -= 1;
            if self.on_reserve {
                n.on_reserve -= 1;
            }
            if n.open == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

impl ConnLimits {
    pub(crate) fn new(max_total: usize, max_per_ip: usize, reserve: usize) -> Arc<ConnLimits> {
        Arc::new(ConnLimits {
            max_total,
            max_per_ip,
            reserve,
            open: AtomicUsize::new(0),
            on_reserve: AtomicUsize::new(0),
            per_ip: Mutex::new(HashMap::new()),
            refused_total: AtomicU64::new(0),
            refused_per_ip: AtomicU64::new(0),
        })
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, PerIp>> {
        self.per_ip.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Admits a connection from `ip`, or says why not. `may_use_reserve`: an HTTP listener,
    /// whose connections past the total go on the reserve.
    pub(crate) fn admit(
        self: &Arc<Self>,
        ip: IpAddr,
        may_use_reserve: bool,
    ) -> Result<Admitted, Refusal> {
        let ip = address_key(ip);
        let mut map = self.map();
        let from_ip = map.get(&ip).copied().unwrap_or_default();
        let refusal = if from_ip.open - from_ip.on_reserve >= self.max_per_ip {
            Some(Refusal::PerIp)
        } else if self.open.load(Ordering::Relaxed) >= self.max_total {
            Some(Refusal::Full)
        } else {
            None
        };
        // Past either limit an HTTP connection may still take a place on the reserve: a full
        // server, or an address that used up its share (the operator's, behind one NAT with
        // the flood), can still be looked at.
        let on_reserve = match refusal {
            None => {
                self.open.fetch_add(1, Ordering::Relaxed);
                false
            }
            Some(_)
                if may_use_reserve
                    && from_ip.on_reserve < RESERVE_PER_IP
                    && self.on_reserve.load(Ordering::Relaxed) < self.reserve =>
            {
                self.on_reserve.fetch_add(1, Ordering::Relaxed);
                true
            }
            Some(r) => {
                let counter = match r {
                    Refusal::PerIp => &self.refused_per_ip,
                    Refusal::Full => &self.refused_total,
                };
                counter.fetch_add(1, Ordering::Relaxed);
                return Err(r);
            }
        };
        let entry = map.entry(ip).or_default();
        entry.open += 1;
        entry.on_reserve += usize::from(on_reserve);
        Ok(Admitted {
            limits: self.clone(),
            ip,
            on_reserve,
        })
    }

    /// Connections open now (the reserve included).
    pub(crate) fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed) + self.on_reserve.load(Ordering::Relaxed)
    }
}

/// The address a client is counted under: IPv4 as is, IPv6 by its /64 (one host usually
/// has a whole /64, so counting single addresses would count nothing).
pub(crate) fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn counts_per_address_and_in_all_and_frees_on_drop() {
        let limits = ConnLimits::new(3, 2, 1);
        let a1 = limits.admit(ip("10.0.0.1"), false).unwrap();
        let a2 = limits.admit(ip("10.0.0.1"), false).unwrap();
        assert_eq!(
            limits.admit(ip("10.0.0.1"), false).unwrap_err(),
            Refusal::PerIp
        );
        let b1 = limits.admit(ip("10.0.0.2"), false).unwrap();
        assert_eq!(
            limits.admit(ip("10.0.0.3"), false).unwrap_err(),
            Refusal::Full
        );
        // HTTP gets the reserve, once.
        let r = limits.admit(ip("10.0.0.3"), true).unwrap();
        assert!(r.on_reserve && !b1.on_reserve);
        assert_eq!(
            limits.admit(ip("10.0.0.4"), true).unwrap_err(),
            Refusal::Full
        );
        assert_eq!(limits.open(), 4);
        drop((a1, a2, b1, r));
        assert_eq!(limits.open(), 0);
        assert!(limits.map().is_empty(), "no entry outlives its connections");
        assert_eq!(limits.refused_per_ip.load(Ordering::Relaxed), 1);
        assert_eq!(limits.refused_total.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn one_address_gets_only_a_few_reserve_places() {
        let limits = ConnLimits::new(0, 10, 10);
        let held: Vec<_> = (0..RESERVE_PER_IP)
            .map(|_| limits.admit(ip("10.0.0.5"), true).unwrap())
            .collect();
        assert!(held.iter().all(|a| a.on_reserve));
        assert_eq!(
            limits.admit(ip("10.0.0.5"), true).unwrap_err(),
            Refusal::Full
        );
        assert!(limits.admit(ip("10.0.0.6"), true).is_ok());
    }

    #[test]
    fn ipv6_hosts_are_counted_by_their_64() {
        let limits = ConnLimits::new(10, 1, 0);
        let _a = limits.admit(ip("2001:db8:1:2::1"), false).unwrap();
        assert!(limits.admit(ip("2001:db8:1:2::ffff"), false).is_err());
        assert!(limits.admit(ip("2001:db8:1:3::1"), false).is_ok());
        let _m = limits.admit(ip("::ffff:10.0.0.9"), false).unwrap();
        assert!(limits.admit(ip("10.0.0.9"), false).is_err());
    }
}
