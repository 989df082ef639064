//! The hub: where every protocol's sessions meet, local to one node.
//!
//! What stays local is here: sessions, their routes (the router), outboxes and presence
//! watchers, and the fan-out [`Hub::deliver`] that queues an already-numbered message for
//! every local subscriber. What a cluster must share (topic logs, presence membership) is
//! the [`Engine`]'s; `Hub::new` uses the in-memory one.
//!
//! State lives behind one mutex (engine, routes, presence, sessions, queues); each session's
//! outbox has its own. Lock order is always hub, then outbox, and an outbox's wake callback
//! never touches the hub, so there is no cycle. Nothing outside the hub is called while its
//! lock is held except the engine (synchronous, in memory) and outbox wakes; interest events
//! are queued and drained by the caller instead of being called out. Time is passed in
//! (`now`, milliseconds) so tests run on a fake clock.

use crate::auth::{Access, Identity};
use crate::config::{CompiledRules, HubConfig};
use crate::engine::{Engine, HistoryPage, Member};
use crate::message::{Draft, Message, PayloadKind};
use crate::outbox::{CloseReason, Delivery, Outbox, PresenceEvent, PushOutcome, SessionId, Wake};
use crate::routing::{InterestEvent, Router};
use crate::topic::{validate_topic, Pattern};
use bytes::Bytes;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

pub use crate::error::HubError;

mod queue_ops;
mod rooms;
mod subscribe;
pub use queue_ops::ConsumeOptions;
pub use subscribe::{PendingSubscribe, Resume, SubscribeOptions, Subscribed, MAX_POSITIONS};

use rooms::Rooms;

/// What a publish did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub offset: u64,
    pub epoch: Arc<str>,
    /// Local subscriptions it was queued for.
    pub receivers: usize,
}

/// A row of `GET /api/topics`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    pub name: Arc<str>,
    pub subscribers: usize,
    pub last_offset: u64,
    pub epoch: Option<Arc<str>>,
    pub history_messages: usize,
    pub history_bytes: usize,
}

/// Hub-wide counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HubStats {
    pub sessions: usize,
    pub topics: usize,
    pub subscriptions: usize,
    pub published: u64,
    pub delivered: u64,
    pub dropped: u64,
    pub slow_consumers_closed: u64,
    /// Queue messages dropped after waiting longer than `hub.queues.message_ttl_secs`.
    pub queue_messages_expired: u64,
}

/// What a session is, recorded once when it opens, so presence and the admin view read it
/// from one place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionMeta {
    /// The protocol the session speaks: "ws", "stomp", "line", "udp", "sse", "sockjs",
    /// "socketio", ...
    pub protocol: &'static str,
    /// The peer's address, when the transport has one.
    pub peer: Option<SocketAddr>,
}

impl SessionMeta {
    pub fn new(protocol: &'static str, peer: Option<SocketAddr>) -> SessionMeta {
        SessionMeta { protocol, peer }
    }
}

/// Slow-consumer closes remembered for the admin view.
const RECENT_SLOW_CLOSES: usize = 64;

/// A session the hub closed because its outbox overflowed (the admin view).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlowConsumerClose {
    /// On the hub's clock, ms.
    pub at_ms: u64,
    pub session: SessionId,
    pub protocol: &'static str,
    pub peer: Option<SocketAddr>,
    pub user: Option<Arc<str>>,
    /// The topic of the message that did not fit.
    pub topic: Arc<str>,
}

/// A row of the admin view of sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    pub id: SessionId,
    pub meta: SessionMeta,
    pub identity: Identity,
    pub subscriptions: usize,
    pub consumers: usize,
    /// When it opened, in ms on the hub's clock (the latest time the hub was given: exact to
    /// about a second with the server's sweep).
    pub opened_ms: u64,
    /// How full its outbox is now.
    pub outbox: crate::OutboxStats,
}

struct SessionEntry {
    outbox: Arc<Outbox>,
    subs: HashMap<Arc<str>, SubEntry>,
    /// Queue consumers of this session (they live in the engine's queues).
    consumers: usize,
    meta: SessionMeta,
    /// Who the session is; anonymous until `Session::set_identity`.
    identity: Identity,
    /// The hub clock when it opened (the admin view's age).
    opened_ms: u64,
}

struct SubEntry {
    pattern: Pattern,
    presence: bool,
    /// The route's serial (see `Route::serial`).
    serial: u64,
    /// Counted in the presence room: set when the subscribe completes.
    joined: bool,
}

struct State {
    engine: Engine,
    router: Router,
    sessions: HashMap<SessionId, SessionEntry>,
    rooms: Rooms,
    next_session: u64,
    next_serial: u64,
    shutting_down: bool,
    stats: HubStats,
    /// The latest `now` seen, for state created by calls that take no time.
    clock: u64,
    /// The interest wake was called and nobody drained since: one wake per batch.
    interest_woken: bool,
    /// The last [`RECENT_SLOW_CLOSES`] slow-consumer closes.
    slow_closes: std::collections::VecDeque<SlowConsumerClose>,
}

/// See the module docs.
pub struct Hub {
    state: Mutex<State>,
    config: HubConfig,
    rules: CompiledRules,
    access: Access,
    /// Called (outside the lock) when interest events wait to be drained.
    interest_wake: OnceLock<Wake>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").field("stats", &self.stats()).finish()
    }
}

/// A session's handle. Dropping it removes its subscriptions and presence.
pub struct Session {
    id: SessionId,
    outbox: Arc<Outbox>,
    hub: Arc<Hub>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("id", &self.id).finish()
    }
}

impl Session {
    pub fn id(&self) -> SessionId {
        self.id
    }
    pub fn outbox(&self) -> &Arc<Outbox> {
        &self.outbox
    }
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// Records who the session is (after a login); presence and the admin view show it.
    pub fn set_identity(&self, identity: Identity) {
        let mut st = self.hub.lock();
        if let Some(entry) = st.sessions.get_mut(&self.id) {
            entry.identity = identity;
        }
    }

    /// Takes a new identity (a refreshed token, whose rights may be narrower) and ends the
    /// subscriptions it no longer allows, returning their keys so that the driver tells the
    /// client each one ended: a refresh never leaves a subscription its rights forbid.
    pub fn reauthorize(&self, identity: Identity) -> Vec<Arc<str>> {
        let hub = &self.hub;
        let mut guard = hub.lock();
        let st = &mut *guard;
        let Some(entry) = st.sessions.get_mut(&self.id) else {
            return Vec::new();
        };
        let mut ended: Vec<Arc<str>> = entry
            .subs
            .iter()
            .filter(|(_, sub)| !identity.rights.may_subscribe(&sub.pattern))
            .map(|(key, _)| key.clone())
            .collect();
        ended.sort();
        entry.identity = identity;
        for key in &ended {
            hub.unsubscribe_locked(st, self.id, key);
        }
        ended
    }

    /// The client's address, when the transport gave one.
    pub fn peer(&self) -> Option<SocketAddr> {
        let st = self.hub.lock();
        st.sessions.get(&self.id).and_then(|e| e.meta.peer)
    }

    /// Whether the session subscribes to or consumes anything. One that does not and sends
    /// nothing is only holding a connection (drivers close it after their idle timeout).
    pub fn is_listening(&self) -> bool {
        let st = self.hub.lock();
        st.sessions
            .get(&self.id)
            .is_some_and(|e| !e.subs.is_empty() || e.consumers > 0)
    }

    /// Who the session is (anonymous until [`Session::set_identity`]).
    pub fn identity(&self) -> Identity {
        let st = self.hub.lock();
        match st.sessions.get(&self.id) {
            Some(entry) => entry.identity.clone(),
            None => self.hub.access.anonymous(),
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.hub.remove_session(self.id);
    }
}

impl Hub {
    /// Builds a hub on the in-memory engine. `epoch_seed` should differ per process start
    /// (e.g. the start time).
    pub fn new(config: HubConfig, epoch_seed: u64) -> Result<Arc<Hub>, crate::config::ConfigError> {
        let engine = Engine::memory(&config, epoch_seed);
        Hub::with_engine(config, engine)
    }

    /// Builds a hub on the given engine.
    pub fn with_engine(
        config: HubConfig,
        engine: Engine,
    ) -> Result<Arc<Hub>, crate::config::ConfigError> {
        Hub::with_engine_numbered(config, engine, 1)
    }

    /// Builds a hub on the given engine whose session ids start at `first_session`: nodes
    /// sharing presence give each a range of its own, so a member's id names it cluster-wide.
    pub fn with_engine_numbered(
        config: HubConfig,
        engine: Engine,
        first_session: u64,
    ) -> Result<Arc<Hub>, crate::config::ConfigError> {
        config.validate()?;
        let access =
            Access::from_config(&config.auth).map_err(|reason| crate::config::ConfigError {
                field: "hub.auth".into(),
                reason,
            })?;
        Ok(Arc::new(Hub {
            rules: CompiledRules::new(&config),
            access,
            config,
            state: Mutex::new(State {
                engine,
                router: Router::default(),
                sessions: HashMap::new(),
                rooms: Rooms::default(),
                next_session: first_session.max(1),
                next_serial: 1,
                shutting_down: false,
                stats: HubStats::default(),
                clock: 0,
                interest_woken: false,
                slow_closes: Default::default(),
            }),
            interest_wake: OnceLock::new(),
        }))
    }

    fn lock(&self) -> Locked<'_> {
        Locked {
            guard: Some(self.state.lock().unwrap_or_else(|e| e.into_inner())),
            hub: self,
        }
    }

    pub fn config(&self) -> &HubConfig {
        &self.config
    }

    pub fn access(&self) -> &Access {
        &self.access
    }

    /// Opens a session; `wake` is called when its outbox has something to write.
    pub fn open_session(
        self: &Arc<Self>,
        wake: Wake,
        meta: SessionMeta,
    ) -> Result<Session, HubError> {
        let outbox = Arc::new(Outbox::new(self.config.outbox, wake));
        let mut st = self.lock();
        if st.shutting_down {
            return Err(HubError::ShuttingDown);
        }
        let id = SessionId(st.next_session);
        st.next_session += 1;
        let opened_ms = st.clock;
        st.sessions.insert(
            id,
            SessionEntry {
                outbox: outbox.clone(),
                subs: HashMap::new(),
                consumers: 0,
                meta,
                identity: self.access.anonymous(),
                opened_ms,
            },
        );
        st.stats.sessions = st.sessions.len();
        drop(st);
        Ok(Session {
            id,
            outbox,
            hub: self.clone(),
        })
    }

    /// Checks credentials against the configured users.
    pub fn authenticate(&self, user: &str, password: &str) -> Result<Identity, HubError> {
        Ok(self.access.authenticate(user, password)?)
    }

    /// Publishes a message to a topic: the engine's log numbers it and keeps it in history,
    /// then it is queued for every matching local subscription.
    pub fn publish(
        &self,
        who: &Identity,
        topic: &str,
        kind: PayloadKind,
        payload: Bytes,
        headers: Vec<(Arc<str>, Arc<str>)>,
        now: u64,
    ) -> Result<Published, HubError> {
        self.check_publish_rights(who, topic, now)?;
        let mut guard = self.lock();
        let st = &mut *guard;
        if st.shutting_down {
            return Err(HubError::ShuttingDown);
        }
        self.may_create(st, who, topic)?;
        let draft = Draft {
            kind,
            payload,
            headers,
        };
        self.publish_locked(st, topic, draft, now)
    }

    /// What [`Hub::publish`] checks before numbering: the topic, the right to publish it,
    /// the identity's expiry and that the hub is not shutting down. A remote engine checks
    /// this first, then numbers the message in the shared log and hands it to
    /// [`Hub::deliver`].
    pub fn check_publish(&self, who: &Identity, topic: &str, now: u64) -> Result<(), HubError> {
        self.check_publish_rights(who, topic, now)?;
        if self.is_shutting_down() {
            return Err(HubError::ShuttingDown);
        }
        Ok(())
    }

    /// The name, the right to publish and the identity's expiry: what needs no lock.
    fn check_publish_rights(&self, who: &Identity, topic: &str, now: u64) -> Result<(), HubError> {
        validate_topic(topic)?;
        self.access.can_publish(who, topic)?;
        who.check_expiry(now)?;
        Ok(())
    }

    /// What [`Hub::history`] checks before reading: the topic and the right to subscribe it.
    pub fn check_history(&self, who: &Identity, topic: &str) -> Result<(), HubError> {
        validate_topic(topic)?;
        self.access.can_subscribe(who, &Pattern::parse(topic)?)?;
        Ok(())
    }

    /// The settings (slow-consumer policy, history limits) of `topic`.
    pub fn topic_settings(&self, topic: &str) -> crate::config::TopicSettings {
        self.rules.settings(topic)
    }

    /// Whether `who` may bring `topic` into being if it has no state yet: with users
    /// configured, anonymous sessions get only `hub.anonymous_topic_percent` of the table.
    fn may_create(&self, st: &State, who: &Identity, topic: &str) -> Result<(), HubError> {
        if who.method != crate::AuthMethod::Anonymous || self.access.is_allow_all() {
            return Ok(());
        }
        let share = self
            .config
            .max_topics
            .saturating_mul(usize::from(self.config.anonymous_topic_percent))
            / 100;
        if st.engine.log.len() >= share && st.engine.log.info(topic).is_none() {
            return Err(HubError::TooManyTopics(share));
        }
        Ok(())
    }

    /// [`Hub::publish`] once the topic is validated, the right checked and the lock held.
    /// Numbering and fan-out happen under one hold, so subscribers see offsets in order.
    fn publish_locked(
        &self,
        st: &mut State,
        topic: &str,
        draft: Draft,
        now: u64,
    ) -> Result<Published, HubError> {
        st.clock = st.clock.max(now);
        let msg = st.engine.log.append(topic, draft, now)?;
        let receivers = self.deliver_locked(st, &msg);
        st.stats.published += 1;
        Ok(Published {
            offset: msg.offset,
            epoch: msg.epoch.clone(),
            receivers,
        })
    }

    /// Queues an already-numbered message for every matching local subscription (a pending
    /// subscribe holds it back until its history is in), under the topic's slow-consumer
    /// policy. Returns how many subscriptions it went to.
    ///
    /// This is the local half of a publish: a cluster engine appends to the shared log
    /// first (asynchronously, above the core), then calls `deliver` on every node with the
    /// numbered message, in offset order per topic. Nothing is recorded in history here.
    pub fn deliver(&self, msg: Arc<Message>) -> usize {
        let mut guard = self.lock();
        let st = &mut *guard;
        if st.shutting_down {
            return 0;
        }
        st.clock = st.clock.max(msg.published_at);
        self.deliver_locked(st, &msg)
    }

    fn deliver_locked(&self, st: &mut State, msg: &Arc<Message>) -> usize {
        let policy = self.rules.settings(&msg.topic).policy;
        let (mut receivers, mut dropped, mut overflowed) = (0, 0, 0);
        // Rare (each is a closed session): who they were is looked up after the walk.
        let mut closed: Vec<Arc<Outbox>> = Vec::new();
        st.router.for_each_match_mut(&msg.topic, |route| {
            if let Some((epoch, last)) = &route.floor {
                if msg.offset <= *last && *epoch == msg.epoch {
                    return; // already replayed, delivered or counted before it subscribed
                }
            }
            receivers += 1;
            let outcome = match &mut route.pending {
                Some(buffer) => buffer.push(msg.clone(), policy, &route.outbox),
                None => route.outbox.push(
                    Delivery::Message {
                        sub: route.key.clone(),
                        msg: msg.clone(),
                    },
                    policy,
                ),
            };
            match outcome {
                PushOutcome::DroppedOldest(n) => dropped += n as u64,
                PushOutcome::Overflowed => {
                    overflowed += 1;
                    closed.push(route.outbox.clone());
                }
                _ => {}
            }
        });
        st.stats.delivered += receivers as u64;
        st.stats.dropped += dropped;
        st.stats.slow_consumers_closed += overflowed;
        for outbox in closed {
            let Some((id, entry)) = st
                .sessions
                .iter()
                .find(|(_, e)| Arc::ptr_eq(&e.outbox, &outbox))
            else {
                continue;
            };
            let close = SlowConsumerClose {
                at_ms: st.clock,
                session: *id,
                protocol: entry.meta.protocol,
                peer: entry.meta.peer,
                user: entry.identity.user.clone(),
                topic: msg.topic.clone(),
            };
            if st.slow_closes.len() == RECENT_SLOW_CLOSES {
                st.slow_closes.pop_front();
            }
            st.slow_closes.push_back(close);
        }
        receivers
    }

    /// The most recent sessions closed as slow consumers by a publish, oldest first (at
    /// most 64: the admin view).
    pub fn recent_slow_consumers(&self) -> Vec<SlowConsumerClose> {
        self.lock().slow_closes.iter().cloned().collect()
    }

    /// Tells local presence watchers of a join or leave reported by another node.
    pub fn deliver_presence(&self, ev: &PresenceEvent) {
        self.lock().rooms.announce_remote(ev);
    }

    /// Tells every local subscription of `topic` that its messages after `since` are lost
    /// (a remote engine lost the topic's history, e.g. Redis restarted empty): each gets a
    /// [`Delivery::Gap`] in its place in the stream. A pending subscribe is skipped: its
    /// history read states the gap itself. Returns how many were told.
    pub fn deliver_gap(
        &self,
        topic: &Arc<str>,
        since: u64,
        epoch: Option<Arc<str>>,
        reason: crate::outbox::GapReason,
    ) -> usize {
        let mut st = self.lock();
        let mut told = 0;
        st.router.for_each_match_mut(topic, |route| {
            if route.pending.is_some() {
                return;
            }
            let gap = crate::outbox::Gap {
                sub: route.key.clone(),
                topic: topic.clone(),
                since,
                epoch: epoch.clone(),
                next: None,
                reason,
            };
            route.outbox.push(
                Delivery::Gap(Box::new(gap)),
                crate::config::SlowConsumerPolicy::Disconnect,
            );
            told += 1;
        });
        told
    }

    /// Removes the subscription `key` of `session` (also a pending one).
    pub fn unsubscribe(&self, session: &Session, key: &str) -> Result<(), HubError> {
        let mut st = self.lock();
        let key: Arc<str> = key.into();
        if self.unsubscribe_locked(&mut st, session.id, &key) {
            Ok(())
        } else {
            Err(HubError::NotSubscribed(key.to_string()))
        }
    }

    /// Ends the session `id` as its application would (the admin's disconnect): its outbox
    /// closes with [`CloseReason::Finished`], so its driver flushes what is queued and closes
    /// normally. False when there is no such session.
    pub fn close_session(&self, id: SessionId) -> bool {
        let st = self.lock();
        match st.sessions.get(&id) {
            Some(entry) => {
                entry.outbox.close(CloseReason::Finished);
                true
            }
            None => false,
        }
    }

    /// Removes the subscription `key` of the session `id` (the admin's unsubscribe), as the
    /// client's own unsubscribe would.
    pub fn unsubscribe_session(&self, id: SessionId, key: &str) -> Result<(), HubError> {
        let mut st = self.lock();
        let key: Arc<str> = key.into();
        if self.unsubscribe_locked(&mut st, id, &key) {
            Ok(())
        } else {
            Err(HubError::NotSubscribed(key.to_string()))
        }
    }

    /// The subscriptions of the session `id` (their keys: what the client subscribed with),
    /// sorted; `None` when there is no such session (the admin view of one connection).
    pub fn session_subscriptions(&self, id: SessionId) -> Option<Vec<Arc<str>>> {
        let st = self.lock();
        let entry = st.sessions.get(&id)?;
        let mut keys: Vec<Arc<str>> = entry.subs.keys().cloned().collect();
        keys.sort();
        Some(keys)
    }

    /// The clock the hub last saw (ms): what `SessionInfo::opened_ms` is measured on.
    pub fn clock(&self) -> u64 {
        self.lock().clock
    }

    fn unsubscribe_locked(&self, st: &mut State, id: SessionId, key: &Arc<str>) -> bool {
        if st.engine.queues.cancel(&(id, key.clone())) {
            if let Some(entry) = st.sessions.get_mut(&id) {
                entry.consumers -= 1;
            }
            return true;
        }
        let Some(sub) = st.sessions.get_mut(&id).and_then(|e| e.subs.remove(key)) else {
            return false;
        };
        st.router.remove(&sub.pattern, id, key);
        if sub.joined {
            leave_room(st, sub.pattern.text(), id, sub.presence);
        }
        st.stats.subscriptions = st.router.len();
        true
    }

    fn remove_session(&self, id: SessionId) {
        let mut guard = self.lock();
        let st = &mut *guard;
        let Some(entry) = st.sessions.remove(&id) else {
            return;
        };
        for (key, sub) in entry.subs {
            st.router.remove(&sub.pattern, id, &key);
            if sub.joined {
                leave_room(st, sub.pattern.text(), id, sub.presence);
            }
        }
        st.engine.queues.remove_session(id);
        st.stats.sessions = st.sessions.len();
        st.stats.subscriptions = st.router.len();
    }

    /// Messages of `topic` after `since`, at most `limit`.
    pub fn history(
        &self,
        who: &Identity,
        topic: &str,
        since: u64,
        limit: usize,
    ) -> Result<HistoryPage, HubError> {
        self.check_history(who, topic)?;
        Ok(self.lock().engine.log.read(topic, since, limit))
    }

    /// Who is subscribed under the exact name `topic`, ordered by client id.
    pub fn presence(&self, who: &Identity, topic: &str) -> Result<Vec<Member>, HubError> {
        let pattern = Pattern::parse(topic)?;
        self.access.can_subscribe(who, &pattern)?;
        Ok(self.lock().engine.presence.list(topic))
    }

    /// Every open session, ordered by id (the admin view).
    pub fn sessions(&self) -> Vec<SessionInfo> {
        let st = self.lock();
        let mut out: Vec<SessionInfo> = st
            .sessions
            .iter()
            .map(|(id, e)| SessionInfo {
                id: *id,
                meta: e.meta.clone(),
                identity: e.identity.clone(),
                subscriptions: e.subs.len(),
                consumers: e.consumers,
                opened_ms: e.opened_ms,
                outbox: e.outbox.stats(),
            })
            .collect();
        out.sort_by_key(|s| s.id);
        out
    }

    /// Topics with state, plus exact subscription names without any, sorted by name.
    pub fn topics(&self) -> Vec<TopicInfo> {
        let st = self.lock();
        let mut out: Vec<TopicInfo> = st
            .engine
            .log
            .topics()
            .into_iter()
            .map(|t| TopicInfo {
                subscribers: st.router.count_matches(&t.topic),
                name: t.topic,
                last_offset: t.last_offset,
                epoch: Some(t.epoch),
                history_messages: t.history_messages,
                history_bytes: t.history_bytes,
            })
            .collect();
        for name in st.rooms.names() {
            if st.engine.log.info(name).is_none() && validate_topic(name).is_ok() {
                out.push(TopicInfo {
                    name: name.clone(),
                    subscribers: st.router.count_matches(name),
                    last_offset: 0,
                    epoch: None,
                    history_messages: 0,
                    history_bytes: 0,
                });
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Moves the interest events not drained yet into `out` (see [`InterestEvent`]): what a
    /// node's backplane subscription should follow. Drained, not called out, so nothing
    /// outside the hub runs under its lock.
    pub fn drain_interest(&self, out: &mut Vec<InterestEvent>) {
        let mut st = self.lock();
        st.router.drain_interest(out);
        st.interest_woken = false;
    }

    /// Sets the function called when interest events start waiting to be drained (once per
    /// batch, after the hub's lock is released, like an outbox's wake). It must not block;
    /// typically it notifies the task that drains. False when one was set already.
    pub fn on_interest(&self, wake: Wake) -> bool {
        self.interest_wake.set(wake).is_ok()
    }

    /// Every pattern at least one local session subscribes to, sorted.
    pub fn interests(&self) -> Vec<Arc<str>> {
        self.lock().router.interests()
    }

    /// Expires history by age and forgets topics whose history is empty and that saw no
    /// publish for their history age (or an hour), unless someone here subscribes to them.
    /// Call it periodically.
    pub fn sweep(&self, now: u64) {
        let mut guard = self.lock();
        let st = &mut *guard;
        st.clock = st.clock.max(now);
        let router = &st.router;
        st.engine
            .log
            .sweep(now, &|name| router.count_matches(name) > 0);
        st.stats.topics = st.engine.log.len();
        let expired = st.engine.queues.expire(now);
        st.stats.queue_messages_expired += expired as u64;
    }

    /// Refuses new work and closes every outbox with [`CloseReason::Shutdown`], so each
    /// writer flushes what is queued and says its protocol's goodbye.
    pub fn shutdown(&self) {
        let mut st = self.lock();
        st.shutting_down = true;
        for entry in st.sessions.values() {
            entry.outbox.close(CloseReason::Shutdown);
        }
    }

    pub fn is_shutting_down(&self) -> bool {
        self.lock().shutting_down
    }

    pub fn stats(&self) -> HubStats {
        let st = self.lock();
        HubStats {
            topics: st.engine.log.len(),
            ..st.stats
        }
    }
}

/// The hub's lock. Releasing it calls the interest wake when events started waiting, so the
/// wake runs outside the lock whatever operation queued them.
struct Locked<'a> {
    /// `Some` until dropped.
    guard: Option<MutexGuard<'a, State>>,
    hub: &'a Hub,
}

impl Deref for Locked<'_> {
    type Target = State;
    fn deref(&self) -> &State {
        match &self.guard {
            Some(g) => g,
            None => unreachable_guard(),
        }
    }
}

impl DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut State {
        match &mut self.guard {
            Some(g) => g,
            None => unreachable_guard(),
        }
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        let Some(mut st) = self.guard.take() else {
            return;
        };
        let wake = !st.interest_woken && st.router.has_interest_events();
        if wake {
            st.interest_woken = true;
        }
        drop(st);
        if let (true, Some(wake)) = (wake, self.hub.interest_wake.get()) {
            wake();
        }
    }
}

/// The guard is only taken in `drop`, after which nothing derefs it.
#[cold]
fn unreachable_guard() -> ! {
    panic!("hub lock used after release")
}

/// Counts a completed subscription of `id` under `name`; on its first, the engine's
/// presence learns the member.
fn join_room(
    st: &mut State,
    name: &Arc<str>,
    id: SessionId,
    user: Option<Arc<str>>,
    info: Option<Arc<str>>,
    watch: bool,
) {
    let Some(entry) = st.sessions.get(&id) else {
        return;
    };
    let (outbox, protocol) = (entry.outbox.clone(), entry.meta.protocol);
    if st
        .rooms
        .join(name, id, (user.clone(), info.clone()), watch, &outbox)
    {
        st.engine.presence.join(
            name,
            Member {
                client: id,
                user,
                info,
                protocol,
            },
        );
    }
}

fn leave_room(st: &mut State, name: &Arc<str>, id: SessionId, watched: bool) {
    if st.rooms.leave(name, id, watched) {
        st.engine.presence.leave(name, id);
    }
}
