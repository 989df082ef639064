//! A feed: the hub session behind one SSE, long-poll or streaming request.
//!
//! It subscribes every requested topic, resuming exact topics from the request's cursor.
//! When history no longer holds what the client missed, it records a [`Gap`] and resumes from
//! the oldest message still held, so the client is told plainly and then loses nothing more.

use super::cursor::Cursor;
use super::request::FeedRequest;
use std::sync::Arc;
use tidings_core::{
    CloseReason, Delivery, Hub, HubError, Identity, Message, Pattern, Resume, Session,
    SubscribeOptions,
};
use tokio::sync::Notify;

use crate::engine::Remote;

/// Subscribes a feed's topics: in the hub, or through Redis when the engine is shared.
struct Subscriber<'a> {
    hub: &'a Arc<Hub>,
    remote: &'a Remote,
}

impl Subscriber<'_> {
    async fn run(
        &mut self,
        session: &Session,
        who: &Identity,
        topic: &str,
        opts: SubscribeOptions,
    ) -> Result<tidings_core::Subscribed, HubError> {
        match self.remote {
            Some(remote) => {
                remote
                    .subscribe_wait(session, who, topic, topic, opts)
                    .await
            }
            None => self
                .hub
                .subscribe(session, who, topic, topic, opts, |_| None),
        }
    }
}

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
    /// When the token that opened the feed expires: a stream ends then (the client
    /// reconnects with a fresh token and its cursor). `None`: never.
    pub(crate) expires: Option<tokio::time::Instant>,
}

/// What one drain produced.
pub(crate) struct Batch {
    pub(crate) messages: Vec<Arc<Message>>,
    pub(crate) closed: Option<CloseReason>,
}

impl Feed {
    /// Opens the feed's session and subscribes every requested topic; with the Redis engine
    /// (`remote`), history comes from Redis, so the request may land on any node.
    pub(crate) async fn open(
        hub: &Arc<Hub>,
        remote: &Remote,
        protocol: &'static str,
        who: &Identity,
        req: &FeedRequest,
        peer: Option<crate::listen::Peer>,
    ) -> Result<Feed, HubError> {
        let (session, wake) = crate::drivers::open_session(hub, protocol, peer)?;
        let mut feed = Feed {
            session,
            wake,
            cursor: req.cursor.clone(),
            gaps: Vec::new(),
            batch: Vec::new(),
            expires: crate::drivers::expiry_instant(who),
        };
        crate::drivers::attach_identity(&feed.session, who);
        let mut sub = Subscriber { hub, remote };
        for topic in &req.topics {
            feed.subscribe(&mut sub, who, topic).await?;
        }
        feed.take_gaps();
        Ok(feed)
    }

    /// Subscribing queued the replays, and for a pattern one `Gap` per topic of the cursor
    /// whose missed messages history no longer holds: those go into `gaps`, which the
    /// response states first; everything else stays queued for the first drain.
    fn take_gaps(&mut self) {
        self.session.outbox().drain_into(&mut self.batch);
        let gaps = &mut self.gaps;
        self.batch.retain(|d| match d {
            Delivery::Gap(g) => {
                gaps.push(Gap {
                    topic: g.topic.to_string(),
                    since: g.since,
                    earliest: g.next.unwrap_or(g.since + 1),
                    epoch: g.epoch.as_deref().unwrap_or("").to_owned(),
                    reason: g.reason.as_str(),
                });
                false
            }
            _ => true,
        });
    }

    async fn subscribe(
        &mut self,
        sub: &mut Subscriber<'_>,
        who: &Identity,
        topic: &str,
    ) -> Result<(), HubError> {
        let pattern = Pattern::parse(topic)?;
        if !pattern.is_exact() {
            // A pattern resumes every topic of the cursor it covers, each from its own
            // position; a topic history cannot serve comes back as a `Gap` (see take_gaps).
            let positions = self
                .cursor
                .iter()
                .filter(|(t, _, _)| pattern.matches(t))
                .map(|(t, since, epoch)| {
                    let epoch = (!epoch.is_empty()).then(|| epoch.to_owned());
                    (t.to_owned(), Resume { since, epoch })
                })
                .collect();
            let opts = SubscribeOptions {
                positions,
                ..SubscribeOptions::default()
            };
            return sub.run(&self.session, who, topic, opts).await.map(drop);
        }
        let resume = self.cursor.get(topic).map(|(since, epoch)| Resume {
            since: *since,
            epoch: (!epoch.is_empty()).then(|| epoch.clone()),
        });
        let opts = SubscribeOptions {
            resume: resume.clone(),
            ..SubscribeOptions::default()
        };
        match sub.run(&self.session, who, topic, opts).await {
            Ok(info) => {
                // A fresh exact subscription starts the cursor at the topic's current end, so
                // a client that reconnects before any message arrives loses nothing. (A
                // resumed one keeps its cursor: the replay that follows advances it; nothing
                // has been drained yet, so this comes first.)
                if let (true, Some(epoch)) = (resume.is_none(), &info.epoch) {
                    self.cursor.advance(topic, info.last_offset, epoch);
                }
                Ok(())
            }
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
                    ..SubscribeOptions::default()
                };
                match sub.run(&self.session, who, topic, opts).await {
                    Ok(info) => {
                        if let Some(e) = &info.epoch {
                            self.cursor.advance(topic, earliest.saturating_sub(1), e);
                        }
                        Ok(())
                    }
                    // History moved on in between: take it live from now.
                    Err(HubError::ResumeUnavailable { .. }) => sub
                        .run(&self.session, who, topic, SubscribeOptions::default())
                        .await
                        .map(drop),
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Takes everything queued, advancing the cursor.
    pub(crate) fn drain(&mut self) -> Batch {
        let closed = self.session.outbox().drain_into(&mut self.batch);
        let mut messages = Vec::with_capacity(self.batch.len());
        for d in self.batch.drain(..) {
            match d {
                Delivery::Message { msg, .. } => {
                    self.cursor.advance(&msg.topic, msg.offset, &msg.epoch);
                    messages.push(msg);
                }
                // Only subscribing produces gaps for a feed; take_gaps took them.
                Delivery::Gap(_) | Delivery::Presence(_) | Delivery::Reply(_) => {}
            }
        }
        Batch { messages, closed }
    }
}
