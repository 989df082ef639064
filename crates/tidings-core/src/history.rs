//! A topic's bounded history: the newest messages, by count, bytes and age.

use crate::config::HistoryLimits;
use crate::message::Message;
use std::collections::VecDeque;
use std::sync::Arc;

#[derive(Debug, Default)]
pub(crate) struct History {
    messages: VecDeque<Arc<Message>>,
    bytes: usize,
}

impl History {
    /// Appends and evicts what no longer fits.
    pub(crate) fn push(&mut self, msg: Arc<Message>, limits: &HistoryLimits, now: u64) {
        self.bytes += msg.cost();
        self.messages.push_back(msg);
        self.evict(limits, now);
    }

    /// Drops messages beyond the count and byte bounds or older than the age bound.
    pub(crate) fn evict(&mut self, limits: &HistoryLimits, now: u64) {
        while let Some(front) = self.messages.front() {
            let too_many = self.messages.len() > limits.max_messages;
            let too_big = self.bytes > limits.max_bytes;
            let too_old =
                limits.max_age_ms > 0 && now.saturating_sub(front.published_at) > limits.max_age_ms;
            if !(too_many || too_big || too_old) {
                break;
            }
            self.bytes -= front.cost();
            self.messages.pop_front();
        }
    }

    /// Drops the oldest messages until `bytes` were freed or none is left; returns what was
    /// freed. Always from the front, so what stays is contiguous in offsets.
    pub(crate) fn free_oldest(&mut self, bytes: usize) -> usize {
        let mut freed = 0;
        while freed < bytes {
            let Some(front) = self.messages.pop_front() else {
                break;
            };
            freed += front.cost();
            self.bytes -= front.cost();
        }
        freed
    }

    /// Offset of the oldest retained message, if any.
    pub(crate) fn first_offset(&self) -> Option<u64> {
        self.messages.front().map(|m| m.offset)
    }

    pub(crate) fn len(&self) -> usize {
        self.messages.len()
    }

    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Messages with offset greater than `since`, at most `limit`.
    pub(crate) fn after(&self, since: u64, limit: usize) -> Vec<Arc<Message>> {
        let start = match self.messages.front() {
            Some(first) if since >= first.offset => (since - first.offset + 1) as usize,
            _ => 0,
        };
        self.messages
            .iter()
            .skip(start)
            .take(limit)
            .cloned()
            .collect()
    }
}
