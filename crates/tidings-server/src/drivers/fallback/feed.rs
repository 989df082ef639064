//! A feed: the hub session behind one SSE, long-poll or streaming request.
//!
//! It subscribes every requested topic, resuming exact topics from the request's cursor.
//! When history no longer holds what the client missed, it records a [`Gap`] and resumes from
//! the oldest message still held, so the client is told plainly and then loses nothing more.

use super::cursor::Cursor;
use super::request::FeedRequest;
use std::sync::Arc;
use tidings_core::{
    CloseReason, Delivery, Hub, HubError, Identity, Message, Resume, Session, SubscribeOptions,
};
use tokio::sync::Notify;

/// Messages after `since` of `topic` were lost; delivery went on from `earliest`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct Gap {
    pub(crate) topic: String,
    pub(crate) since: u64,
    pub(crate) earliest: u64,
    pub(crate) epoch: String,
    pub(crate) reason: &'static str,
}

pub(crate) struct Feed {
    session: Session,
    pub(crate) wake: Arc<Notify>,
    pub(crate) cursor: Cursor,
    pub(crate) gaps: Vec<Gap>,
    /// Reused between drains.
    batch: Vec<Delivery>,
}

/// What one drain produced.
pub(crate) struct Batch {
    pub(crate) messages: Vec<Arc<Message>>,
    pub(crate) closed: Option<CloseReason>,
}

impl Feed {
    pub(crate) fn open(
        hub: &Arc<Hub>,
        who: &Identity,
        req: &FeedRequest,
    ) -> Result<Feed, HubError> {
        let (session, wake) = crate::drivers::open_session(hub)?;
        let mut feed = Feed {
            session,
            wake,
            cursor: req.cursor.clone(),
            gaps: Vec::new(),
            batch: Vec::new(),
        };
        for topic in &req.topics {
            feed.subscribe(hub, who, topic)?;
        }
        Ok(feed)
    }

    fn subscribe(&mut self, hub: &Hub, who: &Identity, topic: &str) -> Result<(), HubError> {
        let resume = self.cursor.get(topic).map(|(since, epoch)| Resume {
            since: *since,
            epoch: (!epoch.is_empty()).then(|| epoch.clone()),
        });
        let opts = SubscribeOptions {
            resume: resume.clone(),
            presence: false,
        };
        let (cursor, session, fresh) = (&mut self.cursor, &self.session, resume.is_none());
        let note_start = |info: &tidings_core::Subscribed| {
            // A fresh exact subscription starts the cursor at the topic's current end, so a
            // client that reconnects before any message arrives loses nothing. (A resumed one
            // keeps its cursor: the replay that follows advances it.)
            if let (true, Some(epoch)) = (fresh, &info.epoch) {
                cursor.advance(topic, info.last_offset, epoch);
            }
            None
        };
        match hub.subscribe(session, who, topic, topic, opts, note_start) {
            Err(HubError::ResumeUnavailable {
                since,
                epoch,
                earliest,
                reason,
                ..
            }) => {
                self.gaps.push(Gap {
                    topic: topic.to_owned(),
                    since,
                    earliest,
                    epoch: epoch.clone(),
                    reason,
                });
                let from = Resume {
                    since: earliest.saturating_sub(1),
                    epoch: Some(epoch),
                };
                let opts = SubscribeOptions {
                    resume: Some(from),
                    presence: false,
                };
                let cursor = &mut self.cursor;
                let restart = |info: &tidings_core::Subscribed| {
                    if let Some(e) = &info.epoch {
                        cursor.advance(topic, earliest.saturating_sub(1), e);
                    }
                    None
                };
                match hub.subscribe(&self.session, who, topic, topic, opts, restart) {
                    // History moved on in between: take it live from now.
                    Err(HubError::ResumeUnavailable { .. }) => hub
                        .subscribe(
                            &self.session,
                            who,
                            topic,
                            topic,
                            SubscribeOptions::default(),
                            |_| None,
                        )
                        .map(drop),
                    other => other.map(drop),
                }
            }
            other => other.map(drop),
        }
    }

    /// Takes everything queued, advancing the cursor.
    pub(crate) fn drain(&mut self) -> Batch {
        let closed = self.session.outbox().drain_into(&mut self.batch);
        let mut messages = Vec::with_capacity(self.batch.len());
        for d in self.batch.drain(..) {
            if let Delivery::Message { msg, .. } = d {
                self.cursor.advance(&msg.topic, msg.offset, &msg.epoch);
                messages.push(msg);
            }
        }
        Batch { messages, closed }
    }
}
