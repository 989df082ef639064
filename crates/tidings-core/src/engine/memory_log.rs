//! The in-memory topic log of a single node.

use super::log::{HistoryPage, LogInfo, TopicLog};
use crate::config::{CompiledRules, HistoryLimits, HubConfig};
use crate::epoch::epoch_for;
use crate::error::HubError;
use crate::history::History;
use crate::message::{Draft, Message};
use std::collections::HashMap;
use std::sync::Arc;

struct TopicState {
    name: Arc<str>,
    epoch: Arc<str>,
    last: u64,
    history: History,
    /// Resolved once from the topic rules when the topic is created.
    limits: HistoryLimits,
    last_activity: u64,
}

/// See [`TopicLog`]. Bounded by `hub.max_topics` topics, each by its history limits.
pub struct MemoryLog {
    topics: HashMap<Arc<str>, TopicState>,
    rules: CompiledRules,
    max_topics: usize,
    /// Mixed into every epoch so epochs differ across restarts.
    seed: u64,
    /// Bumped for every topic created, so a recreated topic gets a new epoch.
    generation: u64,
    /// How long a topic without history and subscribers is kept (`hub.empty_topic_secs`).
    empty_topic_ms: u64,
    /// Bytes every history holds together, and the most they may (`hub.max_history_bytes`).
    stored: usize,
    max_stored: usize,
}

impl MemoryLog {
    pub fn new(config: &HubConfig, epoch_seed: u64) -> MemoryLog {
        MemoryLog {
            topics: HashMap::new(),
            rules: CompiledRules::new(config),
            max_topics: config.max_topics,
            seed: epoch_seed,
            generation: 0,
            empty_topic_ms: config.empty_topic_secs.saturating_mul(1000),
            stored: 0,
            max_stored: config.max_history_bytes,
        }
    }

    fn state(&mut self, topic: &str, now: u64) -> Result<&mut TopicState, HubError> {
        if !self.topics.contains_key(topic) {
            if self.topics.len() >= self.max_topics {
                return Err(HubError::TooManyTopics(self.max_topics));
            }
            self.generation += 1;
            let name: Arc<str> = topic.into();
            let state = TopicState {
                name: name.clone(),
                epoch: epoch_for(self.seed, self.generation),
                last: 0,
                history: History::default(),
                limits: self.rules.settings(topic).history,
                last_activity: now,
            };
            self.topics.insert(name, state);
        }
        self.topics.get_mut(topic).ok_or(HubError::ShuttingDown)
    }
}

impl std::fmt::Debug for MemoryLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryLog")
            .field("topics", &self.topics.len())
            .finish()
    }
}

fn info(t: &TopicState) -> LogInfo {
    LogInfo {
        topic: t.name.clone(),
        epoch: t.epoch.clone(),
        last_offset: t.last,
        history_messages: t.history.len(),
        history_bytes: t.history.bytes(),
    }
}

impl TopicLog for MemoryLog {
    fn append(&mut self, topic: &str, draft: Draft, now: u64) -> Result<Arc<Message>, HubError> {
        let (stored, max_stored) = (self.stored, self.max_stored);
        let t = self.state(topic, now)?;
        t.last += 1;
        t.last_activity = now;
        let msg = Arc::new(draft.into_message(t.name.clone(), t.last, t.epoch.clone(), now));
        let before = t.history.bytes();
        if t.limits.max_messages > 0 {
            t.history.push(msg.clone(), &t.limits, now);
            // Past the budget of all histories, this topic's own oldest messages make room
            // (the new one too, if need be): evicted from the front, what stays is contiguous,
            // and a resume from before it gets an explicit gap, never a silent hole.
            let total = (stored + t.history.bytes()).saturating_sub(before);
            if total > max_stored {
                t.history.free_oldest(total - max_stored);
            }
        }
        let after = t.history.bytes();
        self.stored = (stored + after).saturating_sub(before);
        Ok(msg)
    }

    fn touch(&mut self, topic: &str, now: u64) -> Result<(), HubError> {
        self.state(topic, now).map(|_| ())
    }

    fn read(&self, topic: &str, since: u64, limit: usize) -> HistoryPage {
        match self.topics.get(topic) {
            None => HistoryPage::empty(topic),
            Some(t) => HistoryPage {
                topic: t.name.clone(),
                epoch: Some(t.epoch.clone()),
                earliest: t.history.first_offset().unwrap_or(t.last + 1),
                last_offset: t.last,
                messages: t.history.after(since, limit),
            },
        }
    }

    fn info(&self, topic: &str) -> Option<LogInfo> {
        self.topics.get(topic).map(info)
    }

    fn topics(&self) -> Vec<LogInfo> {
        self.topics.values().map(info).collect()
    }

    fn len(&self) -> usize {
        self.topics.len()
    }

    fn sweep(&mut self, now: u64, in_use: &dyn Fn(&str) -> bool) {
        let empty_topic_ms = self.empty_topic_ms;
        self.topics.retain(|name, t| {
            t.history.evict(&t.limits, now);
            // A topic holding nothing is only a name and an offset: kept briefly (so a
            // quiet topic's readers keep their epoch between polls), not for an hour.
            let idle_limit = match t.limits.max_age_ms {
                0 => empty_topic_ms,
                age => age.min(empty_topic_ms),
            };
            t.history.len() > 0 || now.saturating_sub(t.last_activity) < idle_limit || in_use(name)
        });
        self.stored = self.topics.values().map(|t| t.history.bytes()).sum();
    }

    fn stored_bytes(&self) -> usize {
        self.stored
    }
}
