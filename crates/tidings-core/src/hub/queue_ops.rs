//! The hub's point-to-point side: publishing to queues, consuming, settling (ACK/NACK), and
//! committing transactions. The queue logic itself is in the engine's `QueueStore`; this is the part
//! that validates, checks rights and holds the hub's lock.

use super::{Hub, HubError, Session, State};
use crate::auth::Identity;
use crate::engine::{QueueStats, Settle};
use crate::message::{Draft, PayloadKind};
use crate::topic::{validate_topic, Pattern};
use crate::txn::{Committed, Staged, Target, Transaction};
use bytes::Bytes;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Options of a queue consumer.
#[derive(Debug, Clone, Default)]
pub struct ConsumeOptions {
    /// Most unacknowledged messages at once; `None` takes `hub.queues.default_prefetch`.
    pub prefetch: Option<usize>,
}

impl Hub {
    /// Puts a message on the queue `queue` for exactly one of its consumers (or keeps it,
    /// bounded, until one comes). Returns its sequence number in the queue.
    pub fn publish_queue(
        &self,
        who: &Identity,
        queue: &str,
        kind: PayloadKind,
        payload: Bytes,
        headers: Vec<(Arc<str>, Arc<str>)>,
        now: u64,
    ) -> Result<u64, HubError> {
        validate_topic(queue)?;
        self.access.can_publish(who, queue)?;
        who.check_expiry(now)?;
        let mut guard = self.lock();
        let st = &mut *guard;
        if st.shutting_down {
            return Err(HubError::ShuttingDown);
        }
        self.publish_queue_locked(st, queue, kind, payload, headers, now)
    }

    fn publish_queue_locked(
        &self,
        st: &mut State,
        queue: &str,
        kind: PayloadKind,
        payload: Bytes,
        headers: Vec<(Arc<str>, Arc<str>)>,
        now: u64,
    ) -> Result<u64, HubError> {
        st.clock = st.clock.max(now);
        let draft = Draft {
            kind,
            payload,
            headers,
        };
        st.engine.queues.publish(queue, draft, now)
    }

    /// Makes `session` a consumer of `queue` under `key` (unique per session, like a
    /// subscription's). `ack` encodes the reply that must precede the first message.
    pub fn consume(
        &self,
        session: &Session,
        who: &Identity,
        key: &str,
        queue: &str,
        opts: ConsumeOptions,
        ack: impl FnOnce(&QueueStats) -> Option<Bytes>,
    ) -> Result<(), HubError> {
        validate_topic(queue)?;
        self.access.can_subscribe(who, &Pattern::parse(queue)?)?;
        let mut guard = self.lock();
        let st = &mut *guard;
        if st.shutting_down {
            return Err(HubError::ShuttingDown);
        }
        let key: Arc<str> = key.into();
        let id = session.id;
        let Some(entry) = st.sessions.get(&id) else {
            return Err(HubError::ShuttingDown);
        };
        let already =
            entry.subs.contains_key(&key) || st.engine.queues.is_consumer(&(id, key.clone()));
        if !already
            && entry.subs.len() + entry.consumers >= self.config.max_subscriptions_per_session
        {
            return Err(HubError::TooManySubscriptions(
                self.config.max_subscriptions_per_session,
            ));
        }
        if already {
            self.unsubscribe_locked(st, id, &key);
        }
        let stats =
            st.engine
                .queues
                .consume(queue, (id, key), session.outbox.clone(), opts.prefetch)?;
        // The reply precedes the first message.
        if let Some(bytes) = ack(&stats) {
            session.outbox.push_reply(bytes);
        }
        st.engine.queues.pump(queue);
        if let Some(entry) = st.sessions.get_mut(&id) {
            entry.consumers += 1;
        }
        Ok(())
    }

    /// Acknowledges (`Settle::Ack`) or gives back (`Settle::Requeue`, NACK) the queue message
    /// `seq` delivered to `session`'s consumer `key`; with `cumulative`, also every message
    /// delivered to it before. Returns how many messages were settled (0 for an unknown one).
    pub fn settle(
        &self,
        session: &Session,
        key: &str,
        seq: u64,
        cumulative: bool,
        how: Settle,
    ) -> usize {
        let mut st = self.lock();
        st.engine
            .queues
            .settle(&(session.id, key.into()), seq, cumulative, how)
    }

    /// Applies a transaction's staged publishes and acknowledgements in order, all under one
    /// hold of the lock, or none of them when one would fail (bad name, no right, no room).
    pub fn commit(
        &self,
        session: &Session,
        who: &Identity,
        tx: Transaction,
        now: u64,
    ) -> Result<Committed, HubError> {
        who.check_expiry(now)?;
        for op in tx.ops() {
            if let Staged::Publish { name, .. } = op {
                validate_topic(name)?;
                self.access.can_publish(who, name)?;
            }
        }
        let mut guard = self.lock();
        let st = &mut *guard;
        if st.shutting_down {
            return Err(HubError::ShuttingDown);
        }
        self.check_room(st, who, &tx)?;
        let mut done = Committed::default();
        for op in tx.into_ops() {
            match op {
                Staged::Publish {
                    target,
                    name,
                    kind,
                    payload,
                    headers,
                } => {
                    match target {
                        Target::Topic => {
                            let draft = Draft {
                                kind,
                                payload,
                                headers,
                            };
                            self.publish_locked(st, &name, draft, now)?;
                        }
                        Target::Queue => {
                            self.publish_queue_locked(st, &name, kind, payload, headers, now)?;
                        }
                    }
                    done.published += 1;
                }
                Staged::Ack {
                    key,
                    seq,
                    cumulative,
                } => {
                    done.settled +=
                        st.engine
                            .queues
                            .settle(&(session.id, key), seq, cumulative, Settle::Ack)
                }
                Staged::Nack {
                    key,
                    seq,
                    cumulative,
                } => {
                    done.settled += st.engine.queues.settle(
                        &(session.id, key),
                        seq,
                        cumulative,
                        Settle::Requeue,
                    )
                }
            }
        }
        Ok(done)
    }

    /// Fails when the transaction's publishes would not all fit (topics, queues, the share
    /// of topics `who` may create), so a commit applies whole or not at all.
    fn check_room(&self, st: &State, who: &Identity, tx: &Transaction) -> Result<(), HubError> {
        let mut new_topics = HashSet::new();
        let mut per_queue: HashMap<&str, (usize, usize)> = HashMap::new();
        for op in tx.ops() {
            match op {
                Staged::Publish {
                    target: Target::Topic,
                    name,
                    ..
                } if st.engine.log.info(name).is_none() => {
                    self.may_create(st, who, name)?;
                    new_topics.insert(name.as_str());
                }
                Staged::Publish {
                    target: Target::Queue,
                    name,
                    payload,
                    headers,
                    ..
                } => {
                    let e = per_queue.entry(name).or_default();
                    e.0 += 1;
                    e.1 += crate::message::cost(name, payload, headers);
                }
                _ => {}
            }
        }
        if st.engine.log.len() + new_topics.len() > self.config.max_topics {
            return Err(HubError::TooManyTopics(self.config.max_topics));
        }
        let new_queues = per_queue
            .keys()
            .filter(|q| st.engine.queues.stats(q).is_none())
            .count();
        if st.engine.queues.len() + new_queues > self.config.queues.max_queues {
            return Err(HubError::TooManyQueues(self.config.queues.max_queues));
        }
        let total: usize = per_queue.values().map(|(_, bytes)| bytes).sum();
        st.engine.queues.check_total(total)?;
        for (name, (count, bytes)) in per_queue {
            st.engine.queues.check_room(name, count, bytes)?;
        }
        Ok(())
    }

    /// Every queue with its counters, sorted by name (the admin view).
    pub fn queues(&self) -> Vec<(Arc<str>, QueueStats)> {
        let st = self.lock();
        st.engine
            .queues
            .names()
            .into_iter()
            .filter_map(|name| st.engine.queues.stats(&name).map(|s| (name, s)))
            .collect()
    }

    /// Drops the messages of `queue` waiting for a consumer (the admin's purge): how many,
    /// `None` when there is no such queue.
    pub fn purge_queue(&self, queue: &str) -> Option<usize> {
        self.lock().engine.queues.purge(queue)
    }

    /// Counters of the queue `queue`, if it exists.
    pub fn queue_stats(&self, queue: &str) -> Option<QueueStats> {
        self.lock().engine.queues.stats(queue)
    }
}
