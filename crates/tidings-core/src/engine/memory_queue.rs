//! The in-memory queues of a single node (STOMP's `/queue/<name>`): each message goes to exactly one consumer.
//!
//! ```text
//! publish ─> ready (bounded: messages, bytes) ─dispatch─> consumer with credit, round-robin
//!                 ^                                         │ unacked (≤ prefetch), in delivery order
//!                 └─ requeued at the front, redelivered ────┤ NACK, unsubscribe, session gone
//!                                                           └ ACK (one, or cumulative): gone
//! ```
//!
//! A consumer has credit while it holds fewer unacknowledged messages than its prefetch, so a
//! slow consumer stops receiving and the messages wait in the queue (or go to a faster
//! consumer) instead of piling up in its outbox. In `auto` ack mode the driver acknowledges
//! what it wrote to the socket, so the same flow control applies. A queue with nothing ready,
//! nothing unacknowledged and no consumer is forgotten at once.
//!
//! [`MemoryQueues`] holds no lock: the hub owns it inside its own state and calls it under
//! its lock.

use super::queue::{take_unacked, ConsumerId, QueueStats, QueueStore, Settle};
use crate::config::{QueueLimits, SlowConsumerPolicy};
use crate::epoch::epoch_for;
use crate::error::HubError;
use crate::message::{Draft, Message};
use crate::outbox::{Delivery, Outbox, SessionId};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

struct QueueState {
    name: Arc<str>,
    epoch: Arc<str>,
    ready: VecDeque<Arc<Message>>,
    bytes: usize,
    last_seq: u64,
    /// Round-robin order of consumers.
    consumers: Vec<ConsumerId>,
    /// Index in `consumers` of the next one to try.
    cursor: usize,
}

struct Consumer {
    queue: Arc<str>,
    outbox: Arc<Outbox>,
    prefetch: usize,
    /// (sequence, message) in delivery order, so a cumulative ACK covers what was delivered
    /// before, even when a redelivered old message arrived after newer ones.
    unacked: VecDeque<(u64, Arc<Message>)>,
}

/// Every queue of a single node. See the module docs and [`QueueStore`].
pub struct MemoryQueues {
    limits: QueueLimits,
    queues: HashMap<Arc<str>, QueueState>,
    consumers: HashMap<ConsumerId, Consumer>,
    /// Mixed into every epoch so epochs differ across restarts.
    seed: u64,
    /// Bumped for every queue created, so a recreated queue gets a new epoch.
    generation: u64,
    /// Bytes of every message admitted and not yet acknowledged, in all queues.
    stored: usize,
}

impl std::fmt::Debug for MemoryQueues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryQueues")
            .field("queues", &self.queues.len())
            .field("consumers", &self.consumers.len())
            .finish()
    }
}

impl MemoryQueues {
    /// `epoch_seed` should differ per process start.
    pub fn new(limits: QueueLimits, epoch_seed: u64) -> MemoryQueues {
        MemoryQueues {
            limits,
            queues: HashMap::new(),
            consumers: HashMap::new(),
            // Not the topic log's seed, so a queue and a topic of the same rank differ.
            seed: epoch_seed ^ 0x5155_4555,
            generation: 0,
            stored: 0,
        }
    }

    /// The queue `name`, created if needed.
    fn queue(&mut self, name: &str) -> Result<&mut QueueState, HubError> {
        if !self.queues.contains_key(name) {
            if self.queues.len() >= self.limits.max_queues {
                return Err(HubError::TooManyQueues(self.limits.max_queues));
            }
            self.generation += 1;
            let name: Arc<str> = name.into();
            self.queues.insert(
                name.clone(),
                QueueState {
                    name,
                    epoch: epoch_for(self.seed, self.generation),
                    ready: VecDeque::new(),
                    bytes: 0,
                    last_seq: 0,
                    consumers: Vec::new(),
                    cursor: 0,
                },
            );
        }
        self.queues.get_mut(name).ok_or(HubError::ShuttingDown)
    }

    /// Hands ready messages to consumers with credit, round-robin. `avoid` (a consumer that
    /// just NACKed) is used only when no other consumer has credit.
    fn dispatch(&mut self, name: &str, avoid: Option<&ConsumerId>) {
        let Some(q) = self.queues.get_mut(name) else {
            return;
        };
        while !q.ready.is_empty() && !q.consumers.is_empty() {
            let n = q.consumers.len();
            let has_credit = |id: &ConsumerId| {
                self.consumers
                    .get(id)
                    .is_some_and(|c| c.unacked.len() < c.prefetch && !c.outbox.is_closed())
            };
            let pick = (0..n)
                .map(|i| (q.cursor + i) % n)
                .find(|&i| Some(&q.consumers[i]) != avoid && has_credit(&q.consumers[i]))
                .or_else(|| {
                    (0..n)
                        .map(|i| (q.cursor + i) % n)
                        .find(|&i| has_credit(&q.consumers[i]))
                });
            let Some(i) = pick else { break };
            let Some(msg) = q.ready.pop_front() else {
                break;
            };
            q.bytes -= msg.cost();
            q.cursor = (i + 1) % n;
            let id = &q.consumers[i];
            if let Some(c) = self.consumers.get_mut(id) {
                c.unacked.push_back((msg.offset, msg.clone()));
                // A message that does not fit closes the session; it stays unacknowledged
                // and is redelivered when the session goes.
                c.outbox.push(
                    Delivery::Message {
                        sub: id.1.clone(),
                        msg,
                    },
                    SlowConsumerPolicy::Disconnect,
                );
            }
        }
    }

    fn forget_if_idle(&mut self, name: &str) {
        let idle = self
            .queues
            .get(name)
            .is_some_and(|q| q.ready.is_empty() && q.consumers.is_empty());
        if idle {
            self.queues.remove(name);
        }
    }
}

impl QueueStore for MemoryQueues {
    fn len(&self) -> usize {
        self.queues.len()
    }

    fn names(&self) -> Vec<Arc<str>> {
        let mut names: Vec<Arc<str>> = self.queues.keys().cloned().collect();
        names.sort();
        names
    }

    fn purge(&mut self, name: &str) -> Option<usize> {
        let q = self.queues.get_mut(name)?;
        let dropped = q.ready.len();
        self.stored -= q.bytes;
        q.ready.clear();
        q.bytes = 0;
        if q.consumers.is_empty() {
            self.queues.remove(name);
        }
        Some(dropped)
    }

    fn is_consumer(&self, id: &ConsumerId) -> bool {
        self.consumers.contains_key(id)
    }

    fn pump(&mut self, name: &str) {
        self.dispatch(name, None);
    }

    fn expire(&mut self, now: u64) -> usize {
        let ttl_ms = self.limits.message_ttl_secs.saturating_mul(1000);
        if ttl_ms == 0 {
            return 0;
        }
        let mut expired = 0;
        let stored = &mut self.stored;
        self.queues.retain(|_, q| {
            // From the front: the oldest wait there (a NACKed message goes back to the front,
            // and it is older than what came after it).
            while q
                .ready
                .front()
                .is_some_and(|m| now.saturating_sub(m.published_at) >= ttl_ms)
            {
                if let Some(m) = q.ready.pop_front() {
                    let cost = m.cost();
                    q.bytes -= cost;
                    *stored -= cost;
                    expired += 1;
                }
            }
            !(q.ready.is_empty() && q.consumers.is_empty())
        });
        expired
    }

    fn check_total(&self, bytes: usize) -> Result<(), HubError> {
        if self.stored + bytes > self.limits.max_total_bytes {
            return Err(HubError::QueuesFull(self.limits.max_total_bytes));
        }
        Ok(())
    }

    fn check_room(&self, name: &str, count: usize, bytes: usize) -> Result<(), HubError> {
        let (ready, held) = match self.queues.get(name) {
            Some(q) => (q.ready.len(), q.bytes),
            None if self.queues.len() >= self.limits.max_queues => {
                return Err(HubError::TooManyQueues(self.limits.max_queues))
            }
            None => (0, 0),
        };
        self.check_total(bytes)?;
        if ready + count > self.limits.max_messages || held + bytes > self.limits.max_bytes {
            return Err(HubError::QueueFull {
                queue: name.into(),
                max_messages: self.limits.max_messages,
                max_bytes: self.limits.max_bytes,
            });
        }
        Ok(())
    }

    fn publish(&mut self, name: &str, draft: Draft, now: u64) -> Result<u64, HubError> {
        // As `Message::cost`, before the message exists (computed once: the headers are
        // walked for it).
        let cost = crate::message::cost(name, &draft.payload, &draft.headers);
        self.check_room(name, 1, cost)?;
        let q = self.queue(name)?;
        q.last_seq += 1;
        let msg = Arc::new(draft.into_message(q.name.clone(), q.last_seq, q.epoch.clone(), now));
        debug_assert_eq!(cost, msg.cost());
        q.bytes += cost;
        q.ready.push_back(msg);
        let seq = q.last_seq;
        let name = q.name.clone();
        self.stored += cost;
        self.dispatch(&name, None);
        Ok(seq)
    }

    fn consume(
        &mut self,
        name: &str,
        id: ConsumerId,
        outbox: Arc<Outbox>,
        prefetch: Option<usize>,
    ) -> Result<QueueStats, HubError> {
        let prefetch = prefetch
            .unwrap_or(self.limits.default_prefetch)
            .clamp(1, self.limits.max_prefetch);
        let q = self.queue(name)?;
        q.consumers.push(id.clone());
        let name = q.name.clone();
        self.consumers.insert(
            id,
            Consumer {
                queue: name.clone(),
                outbox,
                prefetch,
                unacked: VecDeque::new(),
            },
        );
        Ok(self.stats(&name).unwrap_or_default())
    }

    /// What it had not acknowledged goes back to the front of the queue, marked redelivered.
    fn cancel(&mut self, id: &ConsumerId) -> bool {
        let Some(consumer) = self.consumers.remove(id) else {
            return false;
        };
        if let Some(q) = self.queues.get_mut(&consumer.queue) {
            if let Some(i) = q.consumers.iter().position(|c| c == id) {
                q.consumers.remove(i);
                if q.cursor > i {
                    q.cursor -= 1;
                }
            }
            requeue(q, consumer.unacked.into_iter().map(|(_, m)| m));
        }
        self.dispatch(&consumer.queue, None);
        self.forget_if_idle(&consumer.queue);
        true
    }

    fn remove_session(&mut self, session: SessionId) {
        let mine: Vec<ConsumerId> = self
            .consumers
            .keys()
            .filter(|(s, _)| *s == session)
            .cloned()
            .collect();
        for id in mine {
            self.cancel(&id);
        }
    }

    /// ACKs or NACKs the unacknowledged message `seq` of a consumer, and with `cumulative`
    /// every message delivered to it before that one. Returns how many were settled (0 when
    /// `seq` is not unacknowledged there: already settled, or never delivered).
    fn settle(&mut self, id: &ConsumerId, seq: u64, cumulative: bool, how: Settle) -> usize {
        let Some(consumer) = self.consumers.get_mut(id) else {
            return 0;
        };
        let Some(settled) = take_unacked(&mut consumer.unacked, seq, cumulative) else {
            return 0;
        };
        let n = settled.len();
        let queue = consumer.queue.clone();
        if how == Settle::Requeue {
            match self.queues.get_mut(&queue) {
                Some(q) => requeue(q, settled),
                None => self.stored -= settled.iter().map(|m| m.cost()).sum::<usize>(),
            }
            self.dispatch(&queue, Some(id));
        } else {
            self.stored -= settled.iter().map(|m| m.cost()).sum::<usize>();
            // Credit came back.
            self.dispatch(&queue, None);
        }
        n
    }

    fn stats(&self, name: &str) -> Option<QueueStats> {
        let q = self.queues.get(name)?;
        Some(QueueStats {
            ready: q.ready.len(),
            unacked: q
                .consumers
                .iter()
                .filter_map(|id| self.consumers.get(id))
                .map(|c| c.unacked.len())
                .sum(),
            consumers: q.consumers.len(),
            published: q.last_seq,
        })
    }
}

/// Puts messages back at the front of the queue in their order, marked redelivered. They are
/// not counted against the queue's bounds twice: they were admitted once.
fn requeue(q: &mut QueueState, msgs: impl IntoIterator<Item = Arc<Message>>) {
    let again: Vec<Arc<Message>> = msgs.into_iter().map(|m| Arc::new(m.redelivery())).collect();
    for m in again.into_iter().rev() {
        q.bytes += m.cost();
        q.ready.push_front(m);
    }
}
