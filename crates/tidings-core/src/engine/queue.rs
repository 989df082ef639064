//! Point-to-point queues as the engine sees them: the narrow interface a cluster version
//! re-implements (a shared ready list with local consumers).

use crate::error::HubError;
use crate::message::Draft;
use crate::message::Message;
use crate::outbox::{Outbox, SessionId};
use std::collections::VecDeque;
use std::sync::Arc;

/// A consumer is known by its session and the key it subscribed with.
pub type ConsumerId = (SessionId, Arc<str>);

/// Counters of one queue, for tests, metrics and `GET /api/...`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Messages waiting for a consumer.
    pub ready: usize,
    /// Messages sent to a consumer and not yet acknowledged.
    pub unacked: usize,
    pub consumers: usize,
    /// Messages published so far (the last sequence number).
    pub published: u64,
}

/// Takes the message `seq` out of a consumer's unacknowledged messages (kept in delivery
/// order), and with `cumulative` every one delivered before it (STOMP's `ack:client`).
/// `None` when `seq` is not there: already settled, or never delivered. Every `QueueStore`
/// settles this way.
pub fn take_unacked(
    unacked: &mut VecDeque<(u64, Arc<Message>)>,
    seq: u64,
    cumulative: bool,
) -> Option<Vec<Arc<Message>>> {
    let pos = unacked.iter().position(|(s, _)| *s == seq)?;
    Some(if cumulative {
        unacked.drain(..=pos).map(|(_, m)| m).collect()
    } else {
        unacked.remove(pos).map(|(_, m)| m).into_iter().collect()
    })
}

/// What a NACK or a lost consumer does with a message's next delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    /// ACK: the message is done.
    Ack,
    /// NACK: deliver it again, preferably to another consumer.
    Requeue,
}

/// Queues with competing consumers, ack/nack and redelivery. Bounded by `[hub.queues]`:
/// the number of queues, the messages and bytes waiting in each (publishing beyond is
/// refused with [`HubError::QueueFull`] / [`HubError::TooManyQueues`], never dropped), and
/// each consumer's prefetch (unacknowledged messages it holds).
///
/// Called under the hub's lock. Consumers are local sessions: messages are handed to their
/// outboxes, so a cluster version keeps consumers local and shares the ready list.
pub trait QueueStore: Send {
    /// Appends a message numbered with the queue's next sequence number and hands it to a
    /// consumer with credit, if any. Returns the sequence number.
    fn publish(&mut self, name: &str, draft: Draft, now: u64) -> Result<u64, HubError>;

    /// Adds a consumer (prefetch `None`: the default) without handing it anything yet, so the
    /// caller can queue its reply first; then [`QueueStore::pump`].
    fn consume(
        &mut self,
        name: &str,
        id: ConsumerId,
        outbox: Arc<Outbox>,
        prefetch: Option<usize>,
    ) -> Result<QueueStats, HubError>;

    /// Hands ready messages of `name` to consumers with credit, round-robin.
    fn pump(&mut self, name: &str);

    /// Removes a consumer; what it had not acknowledged is redelivered to the others.
    /// False when there was no such consumer.
    fn cancel(&mut self, id: &ConsumerId) -> bool;

    /// Cancels every consumer of a session that is going away.
    fn remove_session(&mut self, session: SessionId);

    /// ACKs or NACKs the unacknowledged message `seq` of a consumer (with `cumulative`, also
    /// every one delivered to it before). Returns how many were settled.
    fn settle(&mut self, id: &ConsumerId, seq: u64, cumulative: bool, how: Settle) -> usize;

    fn is_consumer(&self, id: &ConsumerId) -> bool;

    /// Would `count` more messages of `bytes` fit in `name` now? (Transactions check every
    /// queue before applying anything.)
    fn check_room(&self, name: &str, count: usize, bytes: usize) -> Result<(), HubError>;

    /// Would `bytes` more fit in all queues together? (A transaction publishing to several
    /// queues checks their sum once, so it never applies in part.)
    fn check_total(&self, _bytes: usize) -> Result<(), HubError> {
        Ok(())
    }

    fn stats(&self, name: &str) -> Option<QueueStats>;

    /// Drops every message of `name` waiting for a consumer (the admin's purge; what
    /// consumers hold unacknowledged stays theirs) and returns their bytes to the budget.
    /// Returns how many were dropped, `None` when there is no such queue.
    fn purge(&mut self, _name: &str) -> Option<usize> {
        None
    }

    /// Every queue's name, sorted (the admin view). An engine that cannot list them cheaply
    /// lists none.
    fn names(&self) -> Vec<Arc<str>> {
        Vec::new()
    }

    /// How many queues exist.
    fn len(&self) -> usize;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops messages that waited for a consumer longer than the queues' message TTL (if
    /// any) as of `now` (ms), and forgets queues that are left empty and unconsumed. Returns
    /// how many messages were dropped. Called periodically (the hub's sweep).
    fn expire(&mut self, _now: u64) -> usize {
        0
    }
}
