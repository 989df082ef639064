//! The topic log: numbering and history, the part of a topic every node must agree on.

use crate::error::HubError;
use crate::message::{Draft, Message};
use std::sync::Arc;

/// A page of a topic's history, with the topic's position when it was read.
#[derive(Debug, Clone)]
pub struct HistoryPage {
    pub topic: Arc<str>,
    /// `None` when the log has no state for the topic (never published, or forgotten).
    pub epoch: Option<Arc<str>>,
    /// Offset of the oldest message history still holds (`last_offset + 1` when it holds none).
    pub earliest: u64,
    pub last_offset: u64,
    /// Messages after the asked offset, oldest first, at most the asked limit.
    pub messages: Vec<Arc<Message>>,
}

impl HistoryPage {
    /// The page of a topic the log has no state for.
    pub fn empty(topic: &str) -> HistoryPage {
        HistoryPage {
            topic: topic.into(),
            epoch: None,
            earliest: 1,
            last_offset: 0,
            messages: Vec::new(),
        }
    }
}

/// A topic's position and history size, for listings (`GET /api/topics`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogInfo {
    pub topic: Arc<str>,
    pub epoch: Arc<str>,
    pub last_offset: u64,
    pub history_messages: usize,
    pub history_bytes: usize,
}

/// Per topic: the next offset, the epoch, and a history bounded by count, bytes and age
/// (`[hub.history]` and the topic rules). The number of topics with state is bounded
/// (`hub.max_topics`): appending to or touching a new topic beyond it is refused with
/// [`HubError::TooManyTopics`], so a client cannot grow the log by inventing names.
///
/// Synchronous and called under the hub's lock (see the module docs of `engine`); a remote
/// log is driven from above the core and hands its results to the hub instead.
pub trait TopicLog: Send {
    /// Numbers `draft` as the topic's next message (creating the topic with a fresh epoch if
    /// it has no state), keeps it in history and returns it.
    fn append(&mut self, topic: &str, draft: Draft, now: u64) -> Result<Arc<Message>, HubError>;

    /// Gives `topic` state (an epoch, offset 0) if it has none, so a subscriber learns the
    /// epoch before the first message and can resume from the very first one.
    fn touch(&mut self, topic: &str, now: u64) -> Result<(), HubError>;

    /// At most `limit` messages after offset `since`, with the topic's position.
    fn read(&self, topic: &str, since: u64, limit: usize) -> HistoryPage;

    /// The topic's position, if it has state.
    fn info(&self, topic: &str) -> Option<LogInfo>;

    /// Every topic with state (at most `hub.max_topics`).
    fn topics(&self) -> Vec<LogInfo>;

    /// How many topics have state.
    fn len(&self) -> usize;

    /// Bytes all histories hold together.
    fn stored_bytes(&self) -> usize {
        0
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Expires history by age and forgets topics whose history is empty, that saw no append
    /// for their history age (or an hour) and for which `in_use` is false.
    fn sweep(&mut self, now: u64, in_use: &dyn Fn(&str) -> bool);
}
