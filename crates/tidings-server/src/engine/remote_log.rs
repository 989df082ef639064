//! The hub's `TopicLog` when the log lives in Redis: it holds nothing. Publishes, history
//! and resumes go through [`super::RedisEngine`]; a driver that still calls the hub's
//! synchronous publish gets a plain refusal instead of a message numbered on one node only.

use std::sync::Arc;
use tidings_core::engine::{HistoryPage, LogInfo, TopicLog};
use tidings_core::{Draft, HubError, Message};

#[derive(Debug, Default)]
pub(crate) struct RemoteLog;

impl TopicLog for RemoteLog {
    fn append(&mut self, _: &str, _: Draft, _: u64) -> Result<Arc<Message>, HubError> {
        Err(HubError::EngineUnavailable(
            "this protocol cannot publish through the redis engine yet".into(),
        ))
    }

    fn touch(&mut self, _: &str, _: u64) -> Result<(), HubError> {
        Ok(())
    }

    fn read(&self, topic: &str, _: u64, _: usize) -> HistoryPage {
        HistoryPage::empty(topic)
    }

    fn info(&self, _: &str) -> Option<LogInfo> {
        None
    }

    fn topics(&self) -> Vec<LogInfo> {
        Vec::new()
    }

    fn len(&self) -> usize {
        0
    }

    fn sweep(&mut self, _: u64, _: &dyn Fn(&str) -> bool) {}
}
