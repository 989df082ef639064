//! Subscribing: route first, then history, then the merge (see `crate::merge`).
//!
//! [`Hub::begin_subscribe`] checks, adds the route (buffering) and says which history it
//! needs; the caller reads it (from the hub's own log, or from a remote one, maybe later and
//! asynchronously) and hands it to [`Hub::complete_subscribe`], which queues the reply, the
//! replay and the buffered live messages, in that order, and turns the route live.
//! [`Hub::subscribe`] does all three under one hold of the lock with the engine's log.

use super::{join_room, Hub, HubError, Locked, Session, State, SubEntry};
use crate::auth::Identity;
use crate::engine::HistoryPage;
use crate::merge::{merge, refuse_strict, HistoryWant, LiveBuffer, TopicResume, Want};
use crate::outbox::SessionId;
use crate::routing::Route;
use crate::topic::{validate_topic, Pattern};
use bytes::Bytes;
use std::sync::Arc;

/// Most per-topic positions one subscribe may carry: bounds the history reads it causes.
pub const MAX_POSITIONS: usize = 1024;

/// Where a client wants to resume from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resume {
    /// The last offset the client saw; delivery restarts after it.
    pub since: u64,
    /// The epoch the client saw; if the topic's differs, its history was lost.
    pub epoch: Option<String>,
}

/// Options of a subscription.
#[derive(Debug, Clone, Default)]
pub struct SubscribeOptions {
    /// Replay history after this point before live messages (exact topics only); when it
    /// cannot, the subscribe fails with [`HubError::ResumeUnavailable`].
    pub resume: Option<Resume>,
    /// Per concrete topic matching the pattern, the position the client saw (what the SSE
    /// cursor carries). Each topic gets what it missed, or a [`crate::Delivery::Gap`] when it
    /// cannot, without failing the subscribe. At most [`MAX_POSITIONS`].
    pub positions: Vec<(String, Resume)>,
    /// Receive join/leave events of this subscription name.
    pub presence: bool,
}

/// What a subscribe did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribed {
    /// The topic's epoch and last offset before the first live message, for exact topics
    /// that have state.
    pub epoch: Option<Arc<str>>,
    pub last_offset: u64,
    /// How many history messages were queued ahead of live ones (all topics).
    pub replayed: usize,
    /// Per resumed topic, what it got.
    pub topics: Vec<TopicResume>,
}

/// A subscribe whose route is in (buffering live messages) and whose history is not.
/// Complete it with [`Hub::complete_subscribe`] or drop it with [`Hub::cancel_subscribe`];
/// until then its buffer holds at most the session's outbox bounds.
#[derive(Debug)]
#[must_use = "a pending subscribe buffers until completed or cancelled"]
pub struct PendingSubscribe {
    session: SessionId,
    key: Arc<str>,
    serial: u64,
    pattern: Pattern,
    presence: bool,
    user: Option<Arc<str>>,
    /// Shown with `user` in presence.
    info: Option<Arc<str>>,
    wants: Vec<Want>,
    history: Vec<HistoryWant>,
}

impl PendingSubscribe {
    /// The history to read before completing: one page per entry (limit of the caller's
    /// choice; a short page shows up as a gap), in any order.
    pub fn history_wanted(&self) -> &[HistoryWant] {
        &self.history
    }

    pub fn key(&self) -> &str {
        &self.key
    }
}

/// The history a subscribe to `pattern` with `opts` needs.
fn wants_of(pattern: &Pattern, opts: &SubscribeOptions) -> Result<Vec<Want>, HubError> {
    if opts.resume.is_some() && !pattern.is_exact() {
        return Err(HubError::ResumeNeedsExactTopic(pattern.as_str().into()));
    }
    if opts.positions.len() > MAX_POSITIONS {
        return Err(HubError::BadPosition {
            topic: pattern.as_str().into(),
            reason: "too many positions",
        });
    }
    let mut wants = Vec::new();
    if pattern.is_exact() {
        wants.push(Want {
            want: HistoryWant {
                topic: pattern.text().clone(),
                since: opts.resume.as_ref().map(|r| r.since),
                create: true,
            },
            epoch: opts.resume.as_ref().and_then(|r| r.epoch.clone()),
            strict: true,
        });
    }
    for (topic, at) in &opts.positions {
        validate_topic(topic)?;
        if !pattern.matches(topic) {
            return Err(HubError::BadPosition {
                topic: topic.clone(),
                reason: "the topic does not match the pattern",
            });
        }
        if wants
            .iter()
            .any(|w| *w.want.topic == **topic && w.want.since.is_some())
        {
            continue;
        }
        let want = Want {
            want: HistoryWant {
                topic: topic.as_str().into(),
                since: Some(at.since),
                create: false,
            },
            epoch: at.epoch.clone(),
            strict: false,
        };
        match wants.iter_mut().find(|w| *w.want.topic == **topic) {
            // An exact topic without `resume`: its position comes from here, as a gap.
            Some(w) => {
                w.want.since = want.want.since;
                w.epoch = want.epoch;
                w.strict = false;
            }
            None => wants.push(want),
        }
    }
    Ok(wants)
}

impl Hub {
    /// Subscribes `session` under `key` (unique per session; the native protocols use the
    /// pattern itself, STOMP its subscription id). `ack` encodes the reply that must precede
    /// any replayed or live message; it is queued atomically with the replay.
    pub fn subscribe(
        &self,
        session: &Session,
        who: &Identity,
        key: &str,
        pattern: &str,
        opts: SubscribeOptions,
        ack: impl FnOnce(&Subscribed) -> Option<Bytes>,
    ) -> Result<Subscribed, HubError> {
        let (pattern, wants, mut guard) = self.prepare(who, pattern, &opts)?;
        let st = &mut *guard;
        // Topic state and an exact resume's check first, so a refusal (too many topics, the
        // position is gone) changes nothing: a subscription under the same key stays.
        let clock = st.clock;
        for w in &wants {
            if w.want.create {
                self.may_create(st, who, &w.want.topic)?;
                st.engine.log.touch(&w.want.topic, clock)?;
            }
            if w.strict && w.want.since.is_some() {
                refuse_strict(w, &st.engine.log.read(&w.want.topic, 0, 0))?;
            }
        }
        let pending = self.begin_locked(st, session, who, key, pattern, opts.presence, wants)?;
        let pages = match read_locked(st, &pending.history, false) {
            Ok(pages) => pages,
            Err(e) => {
                self.unsubscribe_locked(st, session.id, &pending.key);
                return Err(e);
            }
        };
        self.complete_locked(st, session.id, &session.outbox, pending, &pages, ack)
    }

    /// What both ways of subscribing check first: the pattern, the right to subscribe it and
    /// the history it wants; then the hub's lock, unless the hub is shutting down.
    fn prepare(
        &self,
        who: &Identity,
        pattern: &str,
        opts: &SubscribeOptions,
    ) -> Result<(Pattern, Vec<Want>, Locked<'_>), HubError> {
        let pattern = Pattern::parse(pattern)?;
        self.access.can_subscribe(who, &pattern)?;
        let wants = wants_of(&pattern, opts)?;
        let guard = self.lock();
        if guard.shutting_down {
            return Err(HubError::ShuttingDown);
        }
        Ok((pattern, wants, guard))
    }

    /// The first half of a subscribe: checks rights and bounds, adds the route (live
    /// messages are held back from now on) and says which history it needs
    /// ([`PendingSubscribe::history_wanted`]). Re-subscribing a key replaces its
    /// subscription at once.
    pub fn begin_subscribe(
        &self,
        session: &Session,
        who: &Identity,
        key: &str,
        pattern: &str,
        opts: SubscribeOptions,
    ) -> Result<PendingSubscribe, HubError> {
        let (pattern, wants, mut guard) = self.prepare(who, pattern, &opts)?;
        let st = &mut *guard;
        for w in wants.iter().filter(|w| w.want.create) {
            self.may_create(st, who, &w.want.topic)?;
        }
        self.begin_locked(st, session, who, key, pattern, opts.presence, wants)
    }

    /// The second half: merges `pages` (one per [`PendingSubscribe::history_wanted`]) with
    /// the live messages held back since the begin, queues `ack`'s reply, the replay and
    /// those messages in that order, and turns the route live. Fails with
    /// [`HubError::NotSubscribed`] when the subscription went meanwhile (unsubscribed,
    /// replaced, session gone), [`HubError::SessionClosed`] when the session's outbox was
    /// closed (e.g. its buffer overflowed), and [`HubError::ResumeUnavailable`] when an exact
    /// topic's `resume` cannot be served (the subscription is then removed).
    pub fn complete_subscribe(
        &self,
        session: &Session,
        pending: PendingSubscribe,
        pages: &[HistoryPage],
        ack: impl FnOnce(&Subscribed) -> Option<Bytes>,
    ) -> Result<Subscribed, HubError> {
        let mut guard = self.lock();
        self.complete_locked(&mut guard, session.id, &session.outbox, pending, pages, ack)
    }

    /// [`Hub::complete_subscribe`] for a caller that does not hold the [`Session`] (a remote
    /// engine's task, after reading the history asynchronously): the session is the one
    /// `pending` began on. Fails with [`HubError::NotSubscribed`] when it is gone.
    pub fn complete_subscribe_detached(
        &self,
        pending: PendingSubscribe,
        pages: &[HistoryPage],
        ack: impl FnOnce(&Subscribed) -> Option<Bytes>,
    ) -> Result<Subscribed, HubError> {
        let mut guard = self.lock();
        let st = &mut *guard;
        let Some(outbox) = st.sessions.get(&pending.session).map(|e| e.outbox.clone()) else {
            return Err(HubError::NotSubscribed(pending.key.to_string()));
        };
        let id = pending.session;
        self.complete_locked(st, id, &outbox, pending, pages, ack)
    }

    /// The outbox of the session `pending` began on, to answer it from elsewhere (a remote
    /// engine's error reply).
    pub fn outbox_of(&self, pending: &PendingSubscribe) -> Option<Arc<crate::Outbox>> {
        let st = self.lock();
        st.sessions.get(&pending.session).map(|e| e.outbox.clone())
    }

    /// Reads what `pending` wants from this hub's own engine (giving exact topics state), for
    /// a caller that runs the two phases itself on the hub's engine.
    pub fn read_wanted(&self, pending: &PendingSubscribe) -> Result<Vec<HistoryPage>, HubError> {
        let mut st = self.lock();
        read_locked(&mut st, &pending.history, true)
    }

    /// Drops a pending subscribe and its route.
    pub fn cancel_subscribe(&self, pending: PendingSubscribe) {
        let mut st = self.lock();
        if current(&st, &pending) {
            self.unsubscribe_locked(&mut st, pending.session, &pending.key);
        }
    }

    #[allow(clippy::too_many_arguments)] // the checked parts of a subscribe, once
    fn begin_locked(
        &self,
        st: &mut State,
        session: &Session,
        who: &Identity,
        key: &str,
        pattern: Pattern,
        presence: bool,
        wants: Vec<Want>,
    ) -> Result<PendingSubscribe, HubError> {
        let Some(entry) = st.sessions.get(&session.id) else {
            return Err(HubError::ShuttingDown);
        };
        let key: Arc<str> = key.into();
        let already = entry.subs.contains_key(&key);
        if !already
            && entry.subs.len() + entry.consumers >= self.config.max_subscriptions_per_session
        {
            return Err(HubError::TooManySubscriptions(
                self.config.max_subscriptions_per_session,
            ));
        }
        if already {
            self.unsubscribe_locked(st, session.id, &key);
        }
        let serial = st.next_serial;
        st.next_serial += 1;
        st.router.insert(
            &pattern,
            session.id,
            Route {
                key: key.clone(),
                outbox: session.outbox.clone(),
                pending: Some(LiveBuffer::new(self.config.outbox)),
                floor: None,
            },
        );
        if let Some(entry) = st.sessions.get_mut(&session.id) {
            entry.subs.insert(
                key.clone(),
                SubEntry {
                    pattern: pattern.clone(),
                    presence,
                    serial,
                    joined: false,
                },
            );
        }
        st.stats.subscriptions = st.router.len();
        let history = wants.iter().map(|w| w.want.clone()).collect();
        Ok(PendingSubscribe {
            session: session.id,
            key,
            serial,
            pattern,
            presence,
            user: who.user.clone(),
            info: who.info.clone(),
            wants,
            history,
        })
    }

    fn complete_locked(
        &self,
        st: &mut State,
        session_id: SessionId,
        outbox: &Arc<crate::Outbox>,
        pending: PendingSubscribe,
        pages: &[HistoryPage],
        ack: impl FnOnce(&Subscribed) -> Option<Bytes>,
    ) -> Result<Subscribed, HubError> {
        if pending.session != session_id || !current(st, &pending) {
            return Err(HubError::NotSubscribed(pending.key.to_string()));
        }
        let id = session_id;
        let buffered = match st.router.get_mut(&pending.pattern, id, &pending.key) {
            Some(route) => route.pending.take(),
            None => None,
        };
        let Some(buffered) = buffered else {
            return Err(HubError::NotSubscribed(pending.key.to_string()));
        };
        if outbox.is_closed() {
            self.unsubscribe_locked(st, id, &pending.key);
            return Err(HubError::SessionClosed);
        }
        let buffered = buffered.into_items();
        // For an exact topic: where live delivery starts.
        let first_live = buffered.front().map(|(m, _)| m.clone());
        let merged = match merge(&pending.key, &pending.wants, pages, buffered) {
            Ok(m) => m,
            Err(e) => {
                self.unsubscribe_locked(st, id, &pending.key);
                return Err(e);
            }
        };
        let exact = pending
            .pattern
            .is_exact()
            .then(|| pages.iter().find(|p| p.topic == *pending.pattern.text()))
            .flatten();
        let (epoch, mut last_offset) = match exact {
            Some(p) => (p.epoch.clone(), p.last_offset),
            None => (None, 0),
        };
        // Without a replay, buffered messages the page already counted are delivered live:
        // the reply's last offset is the one before them.
        let replays = pending.wants.iter().any(|w| w.want.since.is_some());
        if let (Some(first), Some(epoch), false) = (&first_live, &epoch, replays) {
            if first.epoch == *epoch && exact.is_some() {
                last_offset = last_offset.min(first.offset.saturating_sub(1));
            }
        }
        // An exact subscription has everything up to the page's end and what is queued now;
        // a message at or below that arriving later is stale (see `Route::floor`).
        if let (Some(page), Some(epoch)) = (exact, &epoch) {
            let queued = merged
                .replay
                .iter()
                .chain(merged.live.iter().map(|(d, _)| d))
                .filter_map(|d| match d {
                    crate::Delivery::Message { msg, .. } if msg.epoch == *epoch => Some(msg.offset),
                    _ => None,
                })
                .max()
                .unwrap_or(0);
            if let Some(route) = st.router.get_mut(&pending.pattern, id, &pending.key) {
                route.floor = Some((epoch.clone(), page.last_offset.max(queued)));
            }
        }
        let info = Subscribed {
            epoch,
            last_offset,
            replayed: merged.topics.iter().map(|t| t.replayed).sum(),
            topics: merged.topics,
        };
        if let Some(bytes) = ack(&info) {
            outbox.push_reply(bytes);
        }
        for d in merged.replay {
            outbox.push_replay(d);
        }
        for (d, policy) in merged.live {
            match policy {
                Some(policy) => outbox.push(d, policy),
                None => outbox.push_replay(d),
            };
        }
        let room = pending.pattern.text().clone();
        if let Some(sub) = st
            .sessions
            .get_mut(&id)
            .and_then(|e| e.subs.get_mut(&pending.key))
        {
            sub.joined = true;
        }
        join_room(st, &room, id, pending.user, pending.info, pending.presence);
        Ok(info)
    }
}

/// One page per want from the engine's log: the whole retained history after `since`
/// (bounded by the history limits), or only the position. With `touch`, wanted topics get
/// state first (`Hub::subscribe` did that already, before anything changed).
fn read_locked(
    st: &mut State,
    wants: &[HistoryWant],
    touch: bool,
) -> Result<Vec<HistoryPage>, HubError> {
    let clock = st.clock;
    wants
        .iter()
        .map(|w| {
            if touch && w.create {
                st.engine.log.touch(&w.topic, clock)?;
            }
            Ok(match w.since {
                Some(since) => st.engine.log.read(&w.topic, since, usize::MAX),
                None => st.engine.log.read(&w.topic, 0, 0),
            })
        })
        .collect()
}

/// Is `pending`'s subscription still the one it began (not unsubscribed nor replaced)?
fn current(st: &State, pending: &PendingSubscribe) -> bool {
    st.sessions
        .get(&pending.session)
        .and_then(|e| e.subs.get(&pending.key))
        .is_some_and(|s| s.serial == pending.serial && !s.joined)
}
