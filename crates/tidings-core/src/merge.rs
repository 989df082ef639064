//! Route-first subscribe, the merging half.
//!
//! A subscribe adds its route first; until its history is in, the route buffers live
//! messages in a [`LiveBuffer`] instead of the outbox. Then [`merge`] joins the history pages
//! (read later, maybe from a remote log by an async caller) and the buffered live messages
//! by offset, per topic, without gaps or duplicates, or with an explicit [`Gap`] where
//! messages cannot be had:
//!
//! ```text
//! begin:    route (buffering) ─── live messages ──> LiveBuffer (bounded like the outbox)
//! read:     history page per wanted topic (epoch, earliest..=last, messages after `since`)
//! complete: reply ─> replay (history after `since`) ─> buffered live (offset > replayed) ─> live
//!                     │ position unavailable: Err (exact resume) or Gap (per topic; after
//!                     │ an eviction, what history still holds follows the gap)
//!                     └ live starts after history ends, or in another epoch: Gap, then on
//! ```

use crate::config::{OutboxLimits, SlowConsumerPolicy};
use crate::engine::HistoryPage;
use crate::error::HubError;
use crate::message::Message;
use crate::outbox::{Delivery, Gap, GapReason, Outbox, PushOutcome};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// A topic whose history a pending subscribe needs before it can complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryWant {
    pub topic: Arc<str>,
    /// Replay the messages after this offset; `None`: no replay, only the topic's position
    /// (a read with limit 0).
    pub since: Option<u64>,
    /// Give the topic state if it has none (`TopicLog::touch`), so the reply can carry its
    /// epoch (exact subscriptions).
    pub create: bool,
}

/// A want with what only the merge needs.
#[derive(Debug, Clone)]
pub(crate) struct Want {
    pub(crate) want: HistoryWant,
    /// The epoch the client saw, if it said.
    pub(crate) epoch: Option<String>,
    /// An unavailable position fails the whole subscribe (an exact topic's `resume`)
    /// instead of becoming a gap (a pattern's per-topic positions).
    pub(crate) strict: bool,
}

/// How a subscribe's resume went for one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicResume {
    pub topic: Arc<str>,
    /// History messages queued ahead of live ones.
    pub replayed: usize,
    /// Why what was missed could not (all) be delivered; a [`Delivery::Gap`] marks the spot.
    pub gap: Option<GapReason>,
}

/// Live messages of a route whose subscribe is not complete yet. Bounded by the session's
/// outbox limits, under the same slow-consumer policies: the messages are the outbox's,
/// only held back.
#[derive(Debug)]
pub(crate) struct LiveBuffer {
    items: VecDeque<(Arc<Message>, SlowConsumerPolicy)>,
    bytes: usize,
    limits: OutboxLimits,
}

impl LiveBuffer {
    pub(crate) fn new(limits: OutboxLimits) -> LiveBuffer {
        LiveBuffer {
            items: VecDeque::new(),
            bytes: 0,
            limits,
        }
    }

    /// Holds `msg` back, enforcing the bounds: conflate replaces the held message of the same
    /// topic, drop-oldest evicts the oldest droppable, and with nothing droppable the session
    /// is closed as a slow consumer (`outbox`), as a full outbox would.
    pub(crate) fn push(
        &mut self,
        msg: Arc<Message>,
        policy: SlowConsumerPolicy,
        outbox: &Outbox,
    ) -> PushOutcome {
        if outbox.is_closed() {
            return PushOutcome::Closed;
        }
        if policy == SlowConsumerPolicy::Conflate {
            if let Some(i) = self.items.iter().position(|(m, _)| m.topic == msg.topic) {
                if let Some((old, _)) = self.items.remove(i) {
                    self.bytes -= old.cost();
                }
                self.bytes += msg.cost();
                self.items.push_back((msg, policy));
                return PushOutcome::Conflated;
            }
        }
        self.bytes += msg.cost();
        self.items.push_back((msg, policy));
        let mut dropped = 0;
        while self.items.len() > self.limits.max_messages || self.bytes > self.limits.max_bytes {
            let victim = self
                .items
                .iter()
                .position(|(_, p)| *p != SlowConsumerPolicy::Disconnect);
            match victim.and_then(|i| self.items.remove(i)) {
                Some((old, _)) => {
                    self.bytes -= old.cost();
                    dropped += 1;
                }
                None => {
                    self.items.clear();
                    self.bytes = 0;
                    outbox.close(crate::outbox::CloseReason::SlowConsumer);
                    return PushOutcome::Overflowed;
                }
            }
        }
        match dropped {
            0 => PushOutcome::Queued,
            n => PushOutcome::DroppedOldest(n),
        }
    }

    pub(crate) fn into_items(self) -> VecDeque<(Arc<Message>, SlowConsumerPolicy)> {
        self.items
    }
}

/// What to queue, in order, when a subscribe completes (after its reply).
#[derive(Debug, Default)]
pub(crate) struct Merged {
    /// History and gap notices: not counted against the outbox bounds (bounded by history).
    pub(crate) replay: Vec<Delivery>,
    /// Buffered live messages (under their policy), with gap notices (policy `None`) between.
    pub(crate) live: Vec<(Delivery, Option<SlowConsumerPolicy>)>,
    pub(crate) topics: Vec<TopicResume>,
}

/// Where a topic's delivery stands during the merge.
struct Track {
    /// The next offset the subscriber should get.
    next: u64,
    /// `None` while the topic has no state yet: the first live message sets it.
    epoch: Option<Arc<str>>,
    /// The topic's last offset when its history was read: every offset up to it exists, so
    /// one the subscriber did not get must be stated as a gap even if no live message
    /// follows (a short page: the caller's limit, or history that moved on).
    known_last: u64,
}

/// Merges history `pages` (matched to `wants` by topic) and the `buffered` live messages of
/// the subscription `sub`. Fails only for a strict want whose position is unavailable.
pub(crate) fn merge(
    sub: &Arc<str>,
    wants: &[Want],
    pages: &[HistoryPage],
    buffered: VecDeque<(Arc<Message>, SlowConsumerPolicy)>,
) -> Result<Merged, HubError> {
    let mut out = Merged::default();
    let mut tracks: HashMap<Arc<str>, Track> = HashMap::new();
    for want in wants {
        let Some(since) = want.want.since else {
            continue;
        };
        let topic = &want.want.topic;
        let empty;
        let page = match pages.iter().find(|p| p.topic == *topic) {
            Some(p) => p,
            None => {
                empty = HistoryPage::empty(topic);
                &empty
            }
        };
        let mut gap = None;
        if let Err(reason) = check(since, want.epoch.as_deref(), page) {
            refuse_strict(want, page)?;
            // Evicted: the gap, then what history still holds (the page was read after
            // `since`, so it starts at the earliest retained). Another epoch or an offset
            // beyond the end: the page's numbering is not the client's; live only.
            let next = match reason {
                GapReason::Evicted => page.messages.first().map(|m| m.offset),
                _ => None,
            };
            out.replay.push(Delivery::Gap(Box::new(Gap {
                sub: sub.clone(),
                topic: topic.clone(),
                since,
                epoch: page.epoch.clone(),
                next,
                reason,
            })));
            gap = Some(reason);
            if reason != GapReason::Evicted {
                out.topics.push(TopicResume {
                    topic: topic.clone(),
                    replayed: 0,
                    gap,
                });
                continue;
            }
        }
        let mut next = since + 1;
        let mut replayed = 0;
        for msg in &page.messages {
            if msg.offset < next || Some(&msg.epoch) != page.epoch.as_ref() {
                continue;
            }
            next = msg.offset + 1;
            replayed += 1;
            out.replay.push(Delivery::Message {
                sub: sub.clone(),
                msg: msg.clone(),
            });
        }
        out.topics.push(TopicResume {
            topic: topic.clone(),
            replayed,
            gap,
        });
        tracks.insert(
            topic.clone(),
            Track {
                next,
                epoch: page.epoch.clone(),
                known_last: page.last_offset,
            },
        );
    }
    for (msg, policy) in buffered {
        if let Some(track) = tracks.get_mut(&msg.topic) {
            let epoch = track.epoch.get_or_insert_with(|| msg.epoch.clone());
            let reason = if *epoch != msg.epoch {
                *epoch = msg.epoch.clone();
                Some(GapReason::EpochChanged)
            } else if msg.offset < track.next {
                continue; // already replayed from history
            } else if msg.offset > track.next {
                Some(GapReason::Incomplete)
            } else {
                None
            };
            if reason == Some(GapReason::EpochChanged) {
                // The page's numbering was the old epoch's; nothing known of the new one.
                track.known_last = 0;
            }
            if let Some(reason) = reason {
                out.live.push((
                    Delivery::Gap(Box::new(Gap {
                        sub: sub.clone(),
                        topic: msg.topic.clone(),
                        since: track.next - 1,
                        epoch: Some(msg.epoch.clone()),
                        next: Some(msg.offset),
                        reason,
                    })),
                    None,
                ));
                if let Some(t) = out.topics.iter_mut().find(|t| t.topic == msg.topic) {
                    t.gap.get_or_insert(reason);
                }
            }
            track.next = msg.offset + 1;
        }
        out.live.push((
            Delivery::Message {
                sub: sub.clone(),
                msg,
            },
            Some(policy),
        ));
    }
    // A page that ended before the topic's last offset, with no live message after it to
    // reveal the hole: say so, or those offsets would be skipped silently.
    let mut short: Vec<(&Arc<str>, &Track)> = tracks
        .iter()
        .filter(|(_, t)| t.next <= t.known_last)
        .collect();
    short.sort_by(|a, b| a.0.cmp(b.0));
    for (topic, track) in short {
        out.live.push((
            Delivery::Gap(Box::new(Gap {
                sub: sub.clone(),
                topic: topic.clone(),
                since: track.next - 1,
                epoch: track.epoch.clone(),
                next: Some(track.known_last + 1),
                reason: GapReason::Incomplete,
            })),
            None,
        ));
        if let Some(t) = out.topics.iter_mut().find(|t| t.topic == *topic) {
            t.gap.get_or_insert(GapReason::Incomplete);
        }
    }
    Ok(out)
}

/// Fails when `want` is strict (an exact topic's `resume`) and `page` cannot serve it.
pub(crate) fn refuse_strict(want: &Want, page: &HistoryPage) -> Result<(), HubError> {
    let (Some(since), true) = (want.want.since, want.strict) else {
        return Ok(());
    };
    match check(since, want.epoch.as_deref(), page) {
        Ok(()) => Ok(()),
        Err(reason) => Err(HubError::ResumeUnavailable {
            topic: want.want.topic.to_string(),
            since,
            epoch: page.epoch.as_deref().unwrap_or("").into(),
            earliest: page.earliest,
            last: page.last_offset,
            reason: reason.as_str(),
        }),
    }
}

/// Can the messages after `since` (seen in `epoch`) be replayed from `page`?
fn check(since: u64, epoch: Option<&str>, page: &HistoryPage) -> Result<(), GapReason> {
    if let Some(theirs) = epoch {
        let lost = match &page.epoch {
            Some(ours) => **ours != *theirs,
            None => since > 0,
        };
        if lost {
            return Err(GapReason::EpochChanged);
        }
    }
    if since > page.last_offset {
        return Err(GapReason::BeyondLast);
    }
    if since + 1 < page.earliest {
        return Err(GapReason::Evicted);
    }
    Ok(())
}
