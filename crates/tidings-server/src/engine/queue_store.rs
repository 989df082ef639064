//! The hub's `QueueStore` with the Redis engine: consumers stay on their node (their
//! outboxes, prefetch and unacknowledged messages), the ready list is shared in Redis.
//!
//! ```text
//!  Redis stream P:q:NAME ──fetch (≤ this node's credit)──> local ready ─dispatch─> consumer
//!        ^    ^                                               │ leftovers      │ unacked
//!        │    └──────────── hand back (NACK, no credit) <─────┘                │
//!        └──────────────────── ACK (XACK + XDEL) <─────────────────────────────┘
//! ```
//!
//! The hub calls [`RemoteQueues`] synchronously under its lock; the queue task
//! (`queues.rs`) shares the same [`Shared`] state and does the Redis side: it fetches what
//! local consumers have credit for, and carries out the acks and hand-backs queued here.
//! Lock order: hub, then `Shared::local`, then an outbox; the task takes only the last two.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use tidings_core::engine::{take_unacked, ConsumerId, QueueStats, QueueStore, Settle};
use tidings_core::{
    Delivery, Draft, HubError, Message, Outbox, QueueLimits, SessionId, SlowConsumerPolicy,
};
use tokio::sync::Notify;

/// Sequences per queue (ACKs, hand-backs) kept for another try while Redis fails: a Redis
/// that keeps failing while consumers keep acknowledging cannot grow the list without bound.
const MAX_RETRIED: usize = 65_536;

/// What the queue task is asked to do, taken all at once by [`Shared::take_work`].
#[derive(Debug, Default)]
pub(crate) struct Work {
    /// Sequence numbers acknowledged, per queue: `XACK` + `XDEL`.
    pub(crate) acks: HashMap<Arc<str>, Vec<u64>>,
    /// Sequence numbers this node gives back for another consumer, per queue.
    pub(crate) handbacks: HashMap<Arc<str>, Vec<u64>>,
    /// Queues whose local credit may have grown (or Redis said new messages wait), with
    /// whether their claim scan should restart from the start (something was handed back).
    pub(crate) fetch: HashMap<Arc<str>, bool>,
}

/// The state the hub's store and the queue task share.
pub(crate) struct Shared {
    local: Mutex<Local>,
    /// Wakes the queue task (a permit is kept, so no wake is lost).
    pub(crate) wake: Notify,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

struct LocalQueue {
    /// Round-robin order of this node's consumers.
    consumers: Vec<ConsumerId>,
    cursor: usize,
    /// Fetched from Redis (held by this node there) and not yet handed to a consumer; at most
    /// the credit asked for, and what is left after a dispatch is handed back.
    ready: VecDeque<Arc<Message>>,
}

struct Consumer {
    queue: Arc<str>,
    outbox: Arc<Outbox>,
    prefetch: usize,
    /// In delivery order, so a cumulative ACK covers what was delivered before.
    unacked: VecDeque<(u64, Arc<Message>)>,
}

impl Consumer {
    fn credit(&self) -> usize {
        match self.outbox.is_closed() {
            true => 0,
            false => self.prefetch.saturating_sub(self.unacked.len()),
        }
    }
}

struct Local {
    limits: QueueLimits,
    queues: HashMap<Arc<str>, LocalQueue>,
    consumers: HashMap<ConsumerId, Consumer>,
    work: Work,
}

impl Shared {
    pub(crate) fn new(limits: QueueLimits) -> Arc<Shared> {
        Arc::new(Shared {
            local: Mutex::new(Local {
                limits,
                queues: HashMap::new(),
                consumers: HashMap::new(),
                work: Work::default(),
            }),
            wake: Notify::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Local> {
        self.local.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What the queue task should do now; a timer tick asks every local queue to fetch.
    pub(crate) fn take_work(&self, every_queue: bool) -> Work {
        let mut local = self.lock();
        if every_queue {
            let names: Vec<Arc<str>> = local.queues.keys().cloned().collect();
            for name in names {
                local.work.fetch.entry(name).or_insert(false);
            }
        }
        std::mem::take(&mut local.work)
    }

    /// Puts back work that Redis could not take (it is retried on the next round), up to
    /// [`MAX_RETRIED`] sequences per queue and kind; beyond, it is given up: the messages stay
    /// pending in Redis and are redelivered after the claim timeout (at least once).
    pub(crate) fn retry(&self, queue: &Arc<str>, acks: Vec<u64>, handbacks: Vec<u64>) {
        let mut local = self.lock();
        let room = |w: Option<&Vec<u64>>| MAX_RETRIED.saturating_sub(w.map_or(0, Vec::len));
        let acks: Vec<u64> = acks
            .into_iter()
            .take(room(local.work.acks.get(queue)))
            .collect();
        let handbacks: Vec<u64> = handbacks
            .into_iter()
            .take(room(local.work.handbacks.get(queue)))
            .collect();
        if !acks.is_empty() {
            local
                .work
                .acks
                .entry(queue.clone())
                .or_default()
                .extend(acks);
        }
        if !handbacks.is_empty() {
            let w = local.work.handbacks.entry(queue.clone()).or_default();
            w.extend(handbacks);
        }
    }

    /// Redis said `queue` has messages (new, or handed back): fetch if it is consumed here.
    pub(crate) fn notify(&self, queue: &str, restart_scan: bool) {
        let mut local = self.lock();
        let Some((name, _)) = local.queues.get_key_value(queue) else {
            return;
        };
        let name = name.clone();
        let restart = local.work.fetch.entry(name).or_insert(false);
        *restart |= restart_scan;
        drop(local);
        self.wake.notify_one();
    }

    /// How many more messages of `queue` this node's consumers can take now.
    pub(crate) fn credit(&self, queue: &str) -> usize {
        let local = self.lock();
        let Some(q) = local.queues.get(queue) else {
            return 0;
        };
        let free: usize = q
            .consumers
            .iter()
            .filter_map(|id| local.consumers.get(id))
            .map(Consumer::credit)
            .sum();
        free.saturating_sub(q.ready.len())
    }

    /// Messages fetched from Redis for `queue`: handed to consumers with credit; what none
    /// can take is handed back. One this node already holds (a claim raced its own lease
    /// renewal) is not delivered twice.
    pub(crate) fn offer(&self, queue: &str, messages: Vec<Arc<Message>>) {
        let mut local = self.lock();
        let Some((name, _)) = local.queues.get_key_value(queue) else {
            let back: Vec<u64> = messages.iter().map(|m| m.offset).collect();
            local
                .work
                .handbacks
                .entry(queue.into())
                .or_default()
                .extend(back);
            drop(local);
            self.wake.notify_one();
            return;
        };
        let name = name.clone();
        let held: HashSet<u64> = local.held_of(&name).into_iter().collect();
        if let Some(q) = local.queues.get_mut(&name) {
            q.ready
                .extend(messages.into_iter().filter(|m| !held.contains(&m.offset)));
        }
        local.dispatch(&name, None);
        self.wake.notify_one();
    }

    /// Every message this node holds in Redis (fetched, unacknowledged), per queue: their
    /// lease is renewed so no other node claims them while they are alive here.
    pub(crate) fn held(&self) -> Vec<(Arc<str>, Vec<u64>)> {
        let local = self.lock();
        local
            .queues
            .keys()
            .map(|name| (name.clone(), local.held_of(name)))
            .filter(|(_, seqs)| !seqs.is_empty())
            .collect()
    }
}

impl Local {
    fn held_of(&self, name: &str) -> Vec<u64> {
        let Some(q) = self.queues.get(name) else {
            return Vec::new();
        };
        let mut seqs: Vec<u64> = q.ready.iter().map(|m| m.offset).collect();
        for c in q.consumers.iter().filter_map(|id| self.consumers.get(id)) {
            seqs.extend(c.unacked.iter().map(|(s, _)| *s));
        }
        seqs
    }

    /// Hands ready messages to consumers with credit, round-robin, never to `avoid` (the
    /// consumer that just NACKed them). What is left over goes back to Redis, where any
    /// node's consumer may take it (the NACKing one too, when it is the only one left).
    fn dispatch(&mut self, name: &str, avoid: Option<&ConsumerId>) {
        let Some(q) = self.queues.get_mut(name) else {
            return;
        };
        while !q.ready.is_empty() && !q.consumers.is_empty() {
            let n = q.consumers.len();
            let consumers = &self.consumers;
            let pick = (0..n).map(|i| (q.cursor + i) % n).find(|&i| {
                Some(&q.consumers[i]) != avoid
                    && consumers
                        .get(&q.consumers[i])
                        .is_some_and(|c| c.credit() > 0)
            });
            let Some(i) = pick else { break };
            let Some(msg) = q.ready.pop_front() else {
                break;
            };
            q.cursor = (i + 1) % n;
            let id = &q.consumers[i];
            if let Some(c) = self.consumers.get_mut(id) {
                c.unacked.push_back((msg.offset, msg.clone()));
                // A message that does not fit closes the session; it stays unacknowledged
                // and goes back when the session goes.
                c.outbox.push(
                    Delivery::Message {
                        sub: id.1.clone(),
                        msg,
                    },
                    SlowConsumerPolicy::Disconnect,
                );
            }
        }
        if !q.ready.is_empty() {
            let back: Vec<u64> = q.ready.drain(..).map(|m| m.offset).collect();
            let name = name.into();
            self.work.handbacks.entry(name).or_default().extend(back);
        }
    }

    fn wants_fetch(&mut self, name: &Arc<str>) {
        self.work.fetch.entry(name.clone()).or_insert(false);
    }
}

/// The hub's `QueueStore` with Redis: see the module docs.
#[derive(Debug)]
pub(crate) struct RemoteQueues(pub(crate) Arc<Shared>);

impl RemoteQueues {
    fn lock(&self) -> MutexGuard<'_, Local> {
        self.0.lock()
    }
}

impl QueueStore for RemoteQueues {
    /// Refused: a queue publish is numbered and stored by Redis (`RedisQueues::publish`).
    fn publish(&mut self, _: &str, _: Draft, _: u64) -> Result<u64, HubError> {
        Err(HubError::EngineUnavailable(
            "this protocol cannot publish to queues through the redis engine yet".into(),
        ))
    }

    fn consume(
        &mut self,
        name: &str,
        id: ConsumerId,
        outbox: Arc<Outbox>,
        prefetch: Option<usize>,
    ) -> Result<QueueStats, HubError> {
        let mut local = self.lock();
        let limits = local.limits;
        let prefetch = prefetch
            .unwrap_or(limits.default_prefetch)
            .clamp(1, limits.max_prefetch);
        if !local.queues.contains_key(name) && local.queues.len() >= limits.max_queues {
            return Err(HubError::TooManyQueues(limits.max_queues));
        }
        let name: Arc<str> = match local.queues.get_key_value(name) {
            Some((n, _)) => n.clone(),
            None => name.into(),
        };
        let q = local
            .queues
            .entry(name.clone())
            .or_insert_with(|| LocalQueue {
                consumers: Vec::new(),
                cursor: 0,
                ready: VecDeque::new(),
            });
        q.consumers.push(id.clone());
        let consumers = q.consumers.len();
        local.consumers.insert(
            id,
            Consumer {
                queue: name,
                outbox,
                prefetch,
                unacked: VecDeque::new(),
            },
        );
        Ok(QueueStats {
            consumers,
            ..QueueStats::default()
        })
    }

    /// The consumer was added (its reply queued): ask Redis for what it can take.
    fn pump(&mut self, name: &str) {
        let mut local = self.lock();
        if let Some((name, _)) = local.queues.get_key_value(name) {
            let name = name.clone();
            local.dispatch(&name, None);
            local.wants_fetch(&name);
        }
        drop(local);
        self.0.wake.notify_one();
    }

    /// What it had not acknowledged goes to another local consumer with credit, else back
    /// to Redis, marked redelivered.
    fn cancel(&mut self, id: &ConsumerId) -> bool {
        let mut local = self.lock();
        let Some(consumer) = local.consumers.remove(id) else {
            return false;
        };
        let name = consumer.queue.clone();
        let mut idle = false;
        if let Some(q) = local.queues.get_mut(&name) {
            if let Some(i) = q.consumers.iter().position(|c| c == id) {
                q.consumers.remove(i);
                if q.cursor > i {
                    q.cursor -= 1;
                }
            }
            for (_, m) in consumer.unacked.into_iter().rev() {
                q.ready.push_front(Arc::new(m.redelivery()));
            }
            idle = q.consumers.is_empty();
        }
        local.dispatch(&name, None);
        if idle {
            local.queues.remove(&name);
        }
        drop(local);
        self.0.wake.notify_one();
        true
    }

    fn remove_session(&mut self, session: SessionId) {
        let mine: Vec<ConsumerId> = self
            .lock()
            .consumers
            .keys()
            .filter(|(s, _)| *s == session)
            .cloned()
            .collect();
        for id in mine {
            self.cancel(&id);
        }
    }

    /// ACK: gone from Redis (`XACK` + `XDEL`, by the task). NACK: to another local consumer
    /// with credit, else back to the cluster for any node's consumer.
    fn settle(&mut self, id: &ConsumerId, seq: u64, cumulative: bool, how: Settle) -> usize {
        let mut local = self.lock();
        let Some(consumer) = local.consumers.get_mut(id) else {
            return 0;
        };
        let Some(settled) = take_unacked(&mut consumer.unacked, seq, cumulative) else {
            return 0;
        };
        let n = settled.len();
        let name = consumer.queue.clone();
        match how {
            Settle::Ack => {
                let seqs = settled.iter().map(|m| m.offset);
                local
                    .work
                    .acks
                    .entry(name.clone())
                    .or_default()
                    .extend(seqs);
                local.dispatch(&name, None);
            }
            Settle::Requeue => {
                if let Some(q) = local.queues.get_mut(&name) {
                    for m in settled.into_iter().rev() {
                        q.ready.push_front(Arc::new(m.redelivery()));
                    }
                }
                local.dispatch(&name, Some(id));
            }
        }
        // Credit came back.
        local.wants_fetch(&name);
        drop(local);
        self.0.wake.notify_one();
        n
    }

    fn is_consumer(&self, id: &ConsumerId) -> bool {
        self.lock().consumers.contains_key(id)
    }

    /// Checked by Redis when the publish runs (`queues.rs`): always room here.
    fn check_room(&self, _: &str, _: usize, _: usize) -> Result<(), HubError> {
        Ok(())
    }

    /// This node's view: its consumers and what they hold (the ready list is in Redis).
    fn stats(&self, name: &str) -> Option<QueueStats> {
        let local = self.lock();
        let q = local.queues.get(name)?;
        Some(QueueStats {
            ready: q.ready.len(),
            unacked: q
                .consumers
                .iter()
                .filter_map(|id| local.consumers.get(id))
                .map(|c| c.unacked.len())
                .sum(),
            consumers: q.consumers.len(),
            published: 0,
        })
    }

    fn names(&self) -> Vec<Arc<str>> {
        let mut names: Vec<Arc<str>> = self.lock().queues.keys().cloned().collect();
        names.sort();
        names
    }

    fn len(&self) -> usize {
        self.lock().queues.len()
    }
}

#[cfg(test)]
mod tests {
    //! The node-local half without Redis: what is dispatched, handed back and asked for.
    use super::*;
    use bytes::Bytes;
    use tidings_core::{OutboxLimits, PayloadKind};

    fn outbox() -> Arc<Outbox> {
        Arc::new(Outbox::new(OutboxLimits::default(), Box::new(|| {})))
    }

    fn msg(seq: u64) -> Arc<Message> {
        Arc::new(Message::new(
            "jobs".into(),
            seq,
            "redis".into(),
            PayloadKind::Text,
            Bytes::from(format!("m{seq}")),
            0,
        ))
    }

    /// (sequence, redelivered) of what `outbox` was handed.
    fn got(outbox: &Outbox) -> Vec<(u64, bool)> {
        let mut out = Vec::new();
        outbox.drain_into(&mut out);
        out.into_iter()
            .filter_map(|d| match d {
                Delivery::Message { msg, .. } => Some((msg.offset, msg.redelivered)),
                _ => None,
            })
            .collect()
    }

    fn id(session: u64) -> ConsumerId {
        (SessionId(session), "s".into())
    }

    #[test]
    fn fetched_messages_go_round_robin_within_credit_and_the_rest_is_handed_back() {
        let shared = Shared::new(QueueLimits::default());
        let mut store = RemoteQueues(shared.clone());
        let (a, b) = (outbox(), outbox());
        store.consume("jobs", id(1), a.clone(), Some(2)).unwrap();
        store.consume("jobs", id(2), b.clone(), Some(1)).unwrap();
        store.pump("jobs");
        assert_eq!(shared.credit("jobs"), 3);
        assert_eq!(shared.take_work(false).fetch.get("jobs"), Some(&false));
        shared.offer("jobs", (1..=4).map(msg).collect());
        assert_eq!(got(&a), [(1, false), (3, false)]);
        assert_eq!(got(&b), [(2, false)]);
        assert_eq!(shared.credit("jobs"), 0);
        // The fourth found no room: back to Redis for another node.
        assert_eq!(
            shared.take_work(false).handbacks.get("jobs"),
            Some(&vec![4])
        );
        // What a consumer holds is not delivered twice when a claim brings it again.
        store.settle(&id(1), 1, false, Settle::Ack);
        shared.offer("jobs", vec![msg(3)]);
        assert_eq!(got(&a), []);
        let mut held = shared.held();
        held[0].1.sort_unstable();
        assert_eq!(held, [("jobs".into(), vec![2, 3])]);
    }

    #[test]
    fn acks_are_queued_for_redis_and_a_nack_prefers_another_consumer() {
        let shared = Shared::new(QueueLimits::default());
        let mut store = RemoteQueues(shared.clone());
        let (a, b) = (outbox(), outbox());
        store.consume("jobs", id(1), a.clone(), Some(5)).unwrap();
        shared.offer("jobs", (1..=3).map(msg).collect());
        assert_eq!(got(&a).len(), 3);
        // Cumulative ACK of 2 settles 1 and 2.
        assert_eq!(store.settle(&id(1), 2, true, Settle::Ack), 2);
        let work = shared.take_work(false);
        assert_eq!(work.acks.get("jobs"), Some(&vec![1, 2]));
        assert!(work.fetch.contains_key("jobs"), "credit came back");
        // NACK with another consumer here: it gets it, redelivered.
        store.consume("jobs", id(2), b.clone(), Some(5)).unwrap();
        assert_eq!(store.settle(&id(1), 3, false, Settle::Requeue), 1);
        assert_eq!(got(&b), [(3, true)]);
        assert_eq!(got(&a), []);
        // Back the other way.
        assert_eq!(store.settle(&id(2), 3, false, Settle::Requeue), 1);
        assert_eq!(got(&a), [(3, true)]);
        // The only consumer here NACKs: handed back to Redis, not to itself at once.
        store.cancel(&id(2));
        assert_eq!(store.settle(&id(1), 3, false, Settle::Requeue), 1);
        assert_eq!(got(&a), []);
        assert_eq!(
            shared.take_work(false).handbacks.get("jobs"),
            Some(&vec![3])
        );
    }

    #[test]
    fn a_consumer_gone_gives_what_it_held_to_the_others_or_back_to_redis() {
        let shared = Shared::new(QueueLimits::default());
        let mut store = RemoteQueues(shared.clone());
        let (a, b) = (outbox(), outbox());
        store.consume("jobs", id(1), a.clone(), Some(5)).unwrap();
        store.consume("jobs", id(2), b.clone(), Some(1)).unwrap();
        shared.offer("jobs", vec![msg(1), msg(2), msg(3)]);
        got(&a);
        got(&b);
        store.remove_session(SessionId(1));
        // Session 1 held 1 and 3; 2's consumer is full, so both go back to Redis.
        assert_eq!(
            shared.take_work(false).handbacks.get("jobs"),
            Some(&vec![1, 3])
        );
        store.remove_session(SessionId(2));
        assert_eq!(store.len(), 0, "a queue no one consumes here is forgotten");
        assert_eq!(
            shared.take_work(false).handbacks.get("jobs"),
            Some(&vec![2])
        );
        // A fetch that lands after the last consumer left is handed back too.
        shared.offer("jobs", vec![msg(4)]);
        assert_eq!(
            shared.take_work(false).handbacks.get("jobs"),
            Some(&vec![4])
        );
    }
}
