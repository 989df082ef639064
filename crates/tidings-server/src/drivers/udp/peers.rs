//! Subscriber addresses: one hub session per validated address, with a lease.
//!
//! An address enters the table only after it echoed a valid cookie, so everything the
//! sender sends goes to an address that proved it receives there. Each entry holds a hub
//! [`Session`] (its outbox bounded by `hub.outbox`) and the patterns it subscribed to; the
//! lease covers them all and every `SUBSCRIBE`/`RENEW` extends it. Expiry drops the session,
//! which removes its subscriptions from the hub.
//!
//! Outboxes wake the sender through [`Ready`]: the wake callback (called under the hub's
//! lock) only appends the address to a queue and notifies, never touching this table.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tidings_core::{Hub, HubError, Outbox, Session, SubscribeOptions, Subscribed};
use tokio::sync::Notify;

/// Addresses whose outbox has something to send, in wake order.
#[derive(Default)]
pub(crate) struct Ready {
    /// At most one entry per outbox wake (empty -> non-empty), so bounded by the number of
    /// subscriber addresses (twice that in a race with a drain).
    queue: Mutex<VecDeque<SocketAddr>>,
    pub(crate) notify: Notify,
}

impl Ready {
    fn push(&self, addr: SocketAddr) {
        self.queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back(addr);
        self.notify.notify_one();
    }

    pub(crate) fn pop(&self) -> Option<SocketAddr> {
        self.queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_front()
    }
}

struct Peer {
    session: Session,
    patterns: HashSet<Arc<str>>,
    /// Hub clock (ms) after which the subscriptions end unless renewed.
    expires_at: u64,
}

/// Why a subscription was refused.
#[derive(Debug)]
pub(crate) enum SubscribeError {
    Hub(HubError),
    /// `datagram.max_subscribers` addresses already hold a lease.
    TooManySubscribers,
    /// This address holds `datagram.max_subscriptions` patterns already.
    TooManySubscriptions,
}

pub(crate) struct Peers {
    map: HashMap<SocketAddr, Peer>,
    max_subscribers: usize,
    max_subscriptions: usize,
    lease_ms: u64,
}

impl Peers {
    pub(crate) fn new(max_subscribers: usize, max_subscriptions: usize, lease_ms: u64) -> Self {
        Self {
            map: HashMap::new(),
            max_subscribers,
            max_subscriptions,
            lease_ms,
        }
    }

    /// Subscribes the (validated) `addr` to `pattern` and extends its lease.
    pub(crate) fn subscribe(
        &mut self,
        hub: &Arc<Hub>,
        ready: &Arc<Ready>,
        addr: SocketAddr,
        pattern: &str,
        now: u64,
    ) -> Result<Subscribed, SubscribeError> {
        if !self.map.contains_key(&addr) {
            if self.map.len() >= self.max_subscribers {
                return Err(SubscribeError::TooManySubscribers);
            }
            let waker = ready.clone();
            let meta = tidings_core::SessionMeta::new("udp", Some(addr));
            let session = hub
                .open_session(Box::new(move || waker.push(addr)), meta)
                .map_err(SubscribeError::Hub)?;
            self.map.insert(
                addr,
                Peer {
                    session,
                    patterns: HashSet::new(),
                    expires_at: now,
                },
            );
        }
        let Some(peer) = self.map.get_mut(&addr) else {
            return Err(SubscribeError::Hub(HubError::ShuttingDown));
        };
        let known = peer.patterns.contains(pattern);
        if !known && peer.patterns.len() >= self.max_subscriptions {
            return Err(SubscribeError::TooManySubscriptions);
        }
        // UDP has no login (docs/udp.md): every datagram client has the anonymous rights.
        let result = hub.subscribe(
            &peer.session,
            &hub.access().anonymous(),
            pattern,
            pattern,
            SubscribeOptions::default(),
            |_| None,
        );
        match result {
            Ok(info) => {
                peer.patterns.insert(pattern.into());
                peer.expires_at = now + self.lease_ms;
                Ok(info)
            }
            Err(e) => {
                if peer.patterns.is_empty() {
                    self.map.remove(&addr);
                }
                Err(SubscribeError::Hub(e))
            }
        }
    }

    /// Extends the lease of `addr`; returns how many subscriptions it holds (0: none, so the
    /// client must subscribe again).
    pub(crate) fn renew(&mut self, addr: SocketAddr, now: u64) -> usize {
        match self.map.get_mut(&addr) {
            Some(peer) => {
                peer.expires_at = now + self.lease_ms;
                peer.patterns.len()
            }
            None => 0,
        }
    }

    /// Ends the subscription to `pattern` (every one when empty); returns how many ended.
    pub(crate) fn unsubscribe(&mut self, hub: &Hub, addr: SocketAddr, pattern: &str) -> usize {
        let Some(peer) = self.map.get_mut(&addr) else {
            return 0;
        };
        let removed = if pattern.is_empty() {
            peer.patterns.len()
        } else if peer.patterns.remove(pattern) {
            let _ = hub.unsubscribe(&peer.session, pattern);
            1
        } else {
            0
        };
        if pattern.is_empty() || peer.patterns.is_empty() {
            self.map.remove(&addr);
        }
        removed
    }

    /// True when `addr` holds a lease: it proved within the lease that it receives there.
    pub(crate) fn is_validated(&self, addr: SocketAddr) -> bool {
        self.map.contains_key(&addr)
    }

    /// The outbox the sender drains for `addr`.
    pub(crate) fn outbox(&self, addr: SocketAddr) -> Option<Arc<Outbox>> {
        self.map.get(&addr).map(|p| p.session.outbox().clone())
    }

    /// Drops `addr` (its queue overflowed); its session's subscriptions end.
    pub(crate) fn remove(&mut self, addr: SocketAddr) -> bool {
        self.map.remove(&addr).is_some()
    }

    /// Drops every address whose lease ran out; returns how many.
    pub(crate) fn expire(&mut self, now: u64) -> usize {
        let before = self.map.len();
        self.map.retain(|_, p| p.expires_at > now);
        before - self.map.len()
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    pub(crate) fn addrs(&self) -> Vec<SocketAddr> {
        self.map.keys().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidings_core::{Delivery, HubConfig, PayloadKind};

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn leases_bounds_and_unsubscribe() {
        let hub = Hub::new(HubConfig::default(), 1).unwrap();
        let ready = Arc::new(Ready::default());
        let mut peers = Peers::new(2, 2, 1000);
        let a = addr(1);
        peers.subscribe(&hub, &ready, a, "chat.*", 0).unwrap();
        peers.subscribe(&hub, &ready, a, "chat.*", 0).unwrap();
        peers.subscribe(&hub, &ready, a, "news", 0).unwrap();
        assert!(matches!(
            peers.subscribe(&hub, &ready, a, "third", 0),
            Err(SubscribeError::TooManySubscriptions)
        ));
        peers.subscribe(&hub, &ready, addr(2), "x", 0).unwrap();
        assert!(matches!(
            peers.subscribe(&hub, &ready, addr(3), "x", 0),
            Err(SubscribeError::TooManySubscribers)
        ));
        assert!(matches!(
            peers.subscribe(&hub, &ready, addr(3), "x", 0),
            Err(SubscribeError::TooManySubscribers)
        ));

        // A publish wakes the sender with the address, and the outbox holds the message.
        let anon = hub.access().anonymous();
        hub.publish(
            &anon,
            "chat.lobby",
            PayloadKind::Text,
            "hi".into(),
            vec![],
            1,
        )
        .unwrap();
        assert_eq!(ready.pop(), Some(a));
        let mut out = Vec::new();
        peers.outbox(a).unwrap().drain_into(&mut out);
        assert!(matches!(&out[..], [Delivery::Message { .. }]));

        assert_eq!(peers.renew(a, 500), 2);
        assert_eq!(peers.expire(1000), 1, "addr 2 was not renewed");
        assert_eq!(peers.renew(addr(2), 1000), 0);
        assert_eq!(peers.unsubscribe(&hub, a, "nope"), 0);
        assert_eq!(peers.unsubscribe(&hub, a, "news"), 1);
        assert_eq!(hub.stats().subscriptions, 1);
        assert_eq!(peers.unsubscribe(&hub, a, ""), 1);
        assert_eq!(peers.len(), 0);
        assert_eq!(hub.stats().subscriptions, 0);
        assert_eq!(hub.stats().sessions, 0);
    }
}
