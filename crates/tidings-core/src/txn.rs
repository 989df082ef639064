//! Transactions (STOMP's BEGIN/COMMIT/ABORT): publishes and acknowledgements staged in a
//! [`Transaction`] and applied all at once by [`Hub::commit`](crate::Hub::commit), under one
//! hold of the hub's lock, or not at all. Aborting is dropping the value.
//!
//! ```text
//! BEGIN ─> Transaction::new ─> stage publish / ack / nack (bounded) ─┬─ COMMIT: hub.commit
//!                                                                     └─ ABORT or disconnect: drop
//! ```
//!
//! Staged work has no effect before the commit: a staged ACK leaves its message unacknowledged
//! (it still counts against prefetch), a staged publish is seen by nobody.

use crate::config::TransactionLimits;
use crate::error::HubError;
use crate::message::PayloadKind;
use bytes::Bytes;
use std::sync::Arc;

/// Where a staged publish goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Pub/sub: every matching subscriber, recorded in history.
    Topic,
    /// Point-to-point: exactly one consumer of the queue.
    Queue,
}

/// One staged operation.
#[derive(Debug, Clone)]
pub enum Staged {
    Publish {
        target: Target,
        name: String,
        kind: PayloadKind,
        payload: Bytes,
        headers: Vec<(Arc<str>, Arc<str>)>,
    },
    /// Settles the queue message `seq` of the subscription `key` (cumulatively or not).
    Ack {
        key: Arc<str>,
        seq: u64,
        cumulative: bool,
    },
    Nack {
        key: Arc<str>,
        seq: u64,
        cumulative: bool,
    },
}

/// Staged work of one open transaction. See the module docs.
#[derive(Debug, Clone)]
pub struct Transaction {
    limits: TransactionLimits,
    ops: Vec<Staged>,
    bytes: usize,
}

impl Transaction {
    pub fn new(limits: TransactionLimits) -> Transaction {
        Transaction {
            limits,
            ops: Vec::new(),
            bytes: 0,
        }
    }

    /// Stages an operation; refused when the transaction would outgrow its bounds.
    pub fn stage(&mut self, op: Staged) -> Result<(), HubError> {
        let cost = match &op {
            Staged::Publish {
                payload, headers, ..
            } => {
                payload.len()
                    + headers
                        .iter()
                        .map(|(n, v)| n.len() + v.len())
                        .sum::<usize>()
                    + 64
            }
            _ => 32,
        };
        if self.ops.len() >= self.limits.max_operations || self.bytes + cost > self.limits.max_bytes
        {
            return Err(HubError::TransactionTooLarge {
                max_operations: self.limits.max_operations,
                max_bytes: self.limits.max_bytes,
            });
        }
        self.bytes += cost;
        self.ops.push(op);
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    pub fn into_ops(self) -> Vec<Staged> {
        self.ops
    }

    pub(crate) fn ops(&self) -> &[Staged] {
        &self.ops
    }
}

/// What a commit did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Committed {
    pub published: usize,
    pub settled: usize,
}
