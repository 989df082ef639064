//! The hub: where every protocol's sessions meet.
//!
//! State lives behind one mutex (topics, routes, presence, sessions); each session's outbox
//! has its own. Lock order is always hub, then outbox, and an outbox's wake callback never
//! touches the hub, so there is no cycle. Time is passed in (`now`, milliseconds) so tests
//! run on a fake clock.

use crate::auth::{Access, Identity};
use crate::config::{CompiledRules, HubConfig, TopicSettings};
pub use crate::error::HubError;
use crate::history::History;
use crate::message::{Message, PayloadKind};
use crate::outbox::{CloseReason, Delivery, Outbox, PresenceEvent, SessionId, Wake};
use crate::queue::Queues;
use crate::routing::{Route, Router};
use crate::topic::{validate_topic, Pattern};
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

mod queue_ops;
pub use queue_ops::ConsumeOptions;

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
    /// Replay history after this point before live messages (exact topics only).
    pub resume: Option<Resume>,
    /// Receive join/leave events of this subscription name.
    pub presence: bool,
}

/// What a subscribe did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribed {
    /// The topic's epoch and last offset, for exact topics that have state.
    pub epoch: Option<Arc<str>>,
    pub last_offset: u64,
    /// How many history messages were queued ahead of live ones.
    pub replayed: usize,
}

/// What a publish did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub offset: u64,
    pub epoch: Arc<str>,
    /// Subscriptions it was queued for.
    pub receivers: usize,
}

/// A page of history.
#[derive(Debug, Clone)]
pub struct HistoryPage {
    pub epoch: Option<Arc<str>>,
    pub earliest: u64,
    pub last_offset: u64,
    pub messages: Vec<Arc<Message>>,
}

/// A present member of a subscription name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub client: SessionId,
    pub user: Option<Arc<str>>,
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
}

struct TopicState {
    name: Arc<str>,
    epoch: Arc<str>,
    last: u64,
    history: History,
    settings: TopicSettings,
    last_activity: u64,
}

struct SessionEntry {
    outbox: Arc<Outbox>,
    subs: HashMap<Arc<str>, SubEntry>,
    /// Queue consumers of this session (they live in `State::queues`).
    consumers: usize,
}

struct SubEntry {
    pattern: Pattern,
    presence: bool,
}

/// Members of one subscription name: session -> (user, subscriptions under that name,
/// how many of them watch presence).
#[derive(Default)]
struct Room {
    members: HashMap<SessionId, RoomMember>,
    /// Members watching presence (`watchers > 0`). Without anyone watching, a join or a
    /// leave tells no one, and skipping the walk over every member keeps a storm of 15k
    /// (re)subscribers to one topic linear instead of quadratic.
    watching: usize,
}

struct RoomMember {
    user: Option<Arc<str>>,
    count: usize,
    watchers: usize,
    outbox: Arc<Outbox>,
}

struct State {
    topics: HashMap<Arc<str>, TopicState>,
    router: Router,
    sessions: HashMap<SessionId, SessionEntry>,
    rooms: HashMap<Arc<str>, Room>,
    next_session: u64,
    /// Bumped for every topic created, so a recreated topic gets a new epoch.
    generation: u64,
    shutting_down: bool,
    stats: HubStats,
    /// The latest `now` seen, for state created by calls that take no time.
    clock: u64,
    queues: Queues,
}

/// See the module docs.
pub struct Hub {
    state: Mutex<State>,
    config: HubConfig,
    rules: CompiledRules,
    access: Access,
    /// Mixed into every epoch so epochs differ across restarts.
    epoch_seed: u64,
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
}

impl Drop for Session {
    fn drop(&mut self) {
        self.hub.remove_session(self.id);
    }
}

impl Hub {
    /// Builds a hub. `epoch_seed` should differ per process start (e.g. the start time).
    pub fn new(config: HubConfig, epoch_seed: u64) -> Result<Arc<Hub>, crate::config::ConfigError> {
        config.validate()?;
        let access =
            Access::from_config(&config.auth).map_err(|reason| crate::config::ConfigError {
                field: "hub.auth".into(),
                reason,
            })?;
        let queue_limits = config.queues;
        Ok(Arc::new(Hub {
            rules: CompiledRules::new(&config),
            access,
            config,
            epoch_seed,
            state: Mutex::new(State {
                topics: HashMap::new(),
                router: Router::default(),
                sessions: HashMap::new(),
                rooms: HashMap::new(),
                next_session: 1,
                generation: 0,
                shutting_down: false,
                stats: HubStats::default(),
                clock: 0,
                queues: Queues::new(queue_limits),
            }),
        }))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn config(&self) -> &HubConfig {
        &self.config
    }

    pub fn access(&self) -> &Access {
        &self.access
    }

    /// Opens a session; `wake` is called when its outbox has something to write.
    pub fn open_session(self: &Arc<Self>, wake: Wake) -> Result<Session, HubError> {
        let outbox = Arc::new(Outbox::new(self.config.outbox, wake));
        let mut st = self.lock();
        if st.shutting_down {
            return Err(HubError::ShuttingDown);
        }
        let id = SessionId(st.next_session);
        st.next_session += 1;
        st.sessions.insert(
            id,
            SessionEntry {
                outbox: outbox.clone(),
                subs: HashMap::new(),
                consumers: 0,
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

    /// Publishes a message to a topic: appends it to history and queues it for every
    /// matching subscription.
    pub fn publish(
        &self,
        who: &Identity,
        topic: &str,
        kind: PayloadKind,
        payload: Bytes,
        headers: Vec<(Arc<str>, Arc<str>)>,
        now: u64,
    ) -> Result<Published, HubError> {
        validate_topic(topic)?;
        self.access.can_publish(who, topic)?;
        let mut guard = self.lock();
        let st = &mut *guard;
        if st.shutting_down {
            return Err(HubError::ShuttingDown);
        }
        self.publish_locked(st, topic, kind, payload, headers, now)
    }

    /// [`Hub::publish`] once the topic is validated, the right checked and the lock held.
    fn publish_locked(
        &self,
        st: &mut State,
        topic: &str,
        kind: PayloadKind,
        payload: Bytes,
        headers: Vec<(Arc<str>, Arc<str>)>,
        now: u64,
    ) -> Result<Published, HubError> {
        st.clock = st.clock.max(now);
        let state = self.topic_state(st, topic)?;
        state.last += 1;
        state.last_activity = now;
        let name = state.name.clone();
        let mut msg = Message::new(name, state.last, state.epoch.clone(), kind, payload, now);
        msg.headers = headers;
        let msg = Arc::new(msg);
        if state.settings.history.max_messages > 0 {
            state
                .history
                .push(msg.clone(), &state.settings.history, now);
        }
        let policy = state.settings.policy;
        let published = Published {
            offset: msg.offset,
            epoch: msg.epoch.clone(),
            receivers: 0,
        };
        let mut receivers = 0;
        let mut dropped = 0;
        let mut overflowed = 0;
        st.router.for_each_match(topic, |_, route| {
            receivers += 1;
            let delivery = Delivery::Message {
                sub: route.key.clone(),
                msg: msg.clone(),
            };
            match route.outbox.push(delivery, policy) {
                crate::outbox::PushOutcome::DroppedOldest(n) => dropped += n as u64,
                crate::outbox::PushOutcome::Overflowed => overflowed += 1,
                _ => {}
            }
        });
        st.stats.published += 1;
        st.stats.delivered += receivers as u64;
        st.stats.dropped += dropped;
        st.stats.slow_consumers_closed += overflowed;
        Ok(Published {
            receivers,
            ..published
        })
    }

    /// The state of `topic`, created (with a fresh epoch) if it has none yet.
    fn topic_state<'a>(
        &self,
        st: &'a mut State,
        topic: &str,
    ) -> Result<&'a mut TopicState, HubError> {
        if !st.topics.contains_key(topic) {
            if st.topics.len() >= self.config.max_topics {
                return Err(HubError::TooManyTopics(self.config.max_topics));
            }
            st.generation += 1;
            let name: Arc<str> = topic.into();
            let state = TopicState {
                name: name.clone(),
                epoch: self.epoch_for(st.generation),
                last: 0,
                history: History::default(),
                settings: self.rules.settings(topic),
                last_activity: st.clock,
            };
            st.topics.insert(name, state);
        }
        st.topics.get_mut(topic).ok_or(HubError::ShuttingDown)
    }

    fn epoch_for(&self, generation: u64) -> Arc<str> {
        // splitmix64: cheap, well-spread, deterministic for tests.
        let mut z = self
            .epoch_seed
            .wrapping_add(generation.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        format!("{:08x}", z as u32).into()
    }

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
        let pattern = Pattern::parse(pattern)?;
        self.access.can_subscribe(who, &pattern)?;
        if opts.resume.is_some() && !pattern.is_exact() {
            return Err(HubError::ResumeNeedsExactTopic(pattern.as_str().into()));
        }
        let mut guard = self.lock();
        let st = &mut *guard;
        if st.shutting_down {
            return Err(HubError::ShuttingDown);
        }
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
        // An exact topic gets its state (and epoch) now, so a subscriber can resume from the
        // very first message even if it subscribed before anything was published.
        let topic = match pattern.is_exact() {
            true => Some(&*self.topic_state(st, pattern.as_str())?),
            false => None,
        };
        let (epoch, last) = match topic {
            Some(t) => (Some(t.epoch.clone()), t.last),
            None => (None, 0),
        };
        let replay = match &opts.resume {
            None => Vec::new(),
            Some(resume) => resume_from(pattern.as_str(), topic, resume)?,
        };
        let info = Subscribed {
            epoch,
            last_offset: last,
            replayed: replay.len(),
        };
        if already {
            self.unsubscribe_locked(st, session.id, &key);
        }
        if let Some(bytes) = ack(&info) {
            session.outbox.push_reply(bytes);
        }
        for msg in replay {
            session.outbox.push_replay(Delivery::Message {
                sub: key.clone(),
                msg,
            });
        }
        st.router.insert(
            &pattern,
            session.id,
            Route {
                key: key.clone(),
                outbox: session.outbox.clone(),
            },
        );
        let room_name = pattern.text().clone();
        let user = who.user.clone();
        if let Some(entry) = st.sessions.get_mut(&session.id) {
            entry.subs.insert(
                key,
                SubEntry {
                    pattern,
                    presence: opts.presence,
                },
            );
        }
        join_room(
            st,
            &room_name,
            session.id,
            user,
            opts.presence,
            &session.outbox,
        );
        st.stats.subscriptions = st.router.len();
        Ok(info)
    }

    /// Removes the subscription `key` of `session`.
    pub fn unsubscribe(&self, session: &Session, key: &str) -> Result<(), HubError> {
        let mut st = self.lock();
        let key: Arc<str> = key.into();
        if self.unsubscribe_locked(&mut st, session.id, &key) {
            Ok(())
        } else {
            Err(HubError::NotSubscribed(key.to_string()))
        }
    }

    fn unsubscribe_locked(&self, st: &mut State, id: SessionId, key: &Arc<str>) -> bool {
        if st.queues.cancel(&(id, key.clone())) {
            if let Some(entry) = st.sessions.get_mut(&id) {
                entry.consumers -= 1;
            }
            return true;
        }
        let Some(sub) = st.sessions.get_mut(&id).and_then(|e| e.subs.remove(key)) else {
            return false;
        };
        st.router.remove(&sub.pattern, id, key);
        leave_room(st, sub.pattern.text(), id, sub.presence);
        st.stats.subscriptions = st.router.len();
        true
    }

    fn remove_session(&self, id: SessionId) {
        let mut st = self.lock();
        let Some(entry) = st.sessions.remove(&id) else {
            return;
        };
        for (key, sub) in entry.subs {
            st.router.remove(&sub.pattern, id, &key);
            leave_room(&mut st, sub.pattern.text(), id, sub.presence);
        }
        st.queues.remove_session(id);
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
        validate_topic(topic)?;
        self.access.can_subscribe(who, &Pattern::parse(topic)?)?;
        let st = self.lock();
        Ok(match st.topics.get(topic) {
            None => HistoryPage {
                epoch: None,
                earliest: 1,
                last_offset: 0,
                messages: Vec::new(),
            },
            Some(t) => HistoryPage {
                epoch: Some(t.epoch.clone()),
                earliest: t.history.first_offset().unwrap_or(t.last + 1),
                last_offset: t.last,
                messages: t.history.after(since, limit),
            },
        })
    }

    /// Who is subscribed under the exact name `topic`.
    pub fn presence(&self, who: &Identity, topic: &str) -> Result<Vec<Member>, HubError> {
        let pattern = Pattern::parse(topic)?;
        self.access.can_subscribe(who, &pattern)?;
        let st = self.lock();
        let mut members: Vec<Member> = st
            .rooms
            .get(topic)
            .map(|room| {
                room.members
                    .iter()
                    .map(|(id, m)| Member {
                        client: *id,
                        user: m.user.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        members.sort_by_key(|m| m.client);
        Ok(members)
    }

    /// Topics with state, plus exact subscription names without any, sorted by name.
    pub fn topics(&self) -> Vec<TopicInfo> {
        let st = self.lock();
        let mut out: Vec<TopicInfo> = st
            .topics
            .iter()
            .map(|(name, t)| TopicInfo {
                name: name.clone(),
                subscribers: st.router.count_matches(name),
                last_offset: t.last,
                epoch: Some(t.epoch.clone()),
                history_messages: t.history.len(),
                history_bytes: t.history.bytes(),
            })
            .collect();
        for name in st.rooms.keys() {
            if !st.topics.contains_key(name) && validate_topic(name).is_ok() {
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

    /// Expires history by age and forgets topics whose history is empty and that saw no
    /// publish for their history age (or an hour). Call it periodically.
    pub fn sweep(&self, now: u64) {
        let mut guard = self.lock();
        let st = &mut *guard;
        st.clock = st.clock.max(now);
        let router = &st.router;
        st.topics.retain(|name, t| {
            t.history.evict(&t.settings.history, now);
            let idle_limit = match t.settings.history.max_age_ms {
                0 => 3_600_000,
                age => age,
            };
            t.history.len() > 0
                || now.saturating_sub(t.last_activity) < idle_limit
                || router.count_matches(name) > 0
        });
        st.stats.topics = st.topics.len();
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
            topics: st.topics.len(),
            ..st.stats
        }
    }
}

fn resume_from(
    topic: &str,
    state: Option<&TopicState>,
    resume: &Resume,
) -> Result<Vec<Arc<Message>>, HubError> {
    let (epoch, earliest, last) = match state {
        Some(t) => (
            t.epoch.to_string(),
            t.history.first_offset().unwrap_or(t.last + 1),
            t.last,
        ),
        None => (String::new(), 1, 0),
    };
    let fail = |reason| HubError::ResumeUnavailable {
        topic: topic.into(),
        since: resume.since,
        epoch: epoch.clone(),
        earliest,
        last,
        reason,
    };
    if let Some(theirs) = &resume.epoch {
        if state.is_some() && *theirs != epoch || state.is_none() && resume.since > 0 {
            return Err(fail("the topic's history was lost (epoch changed)"));
        }
    }
    if resume.since > last {
        return Err(fail("that offset is beyond the topic's last offset"));
    }
    if resume.since + 1 < earliest {
        return Err(fail("messages after it are no longer in history"));
    }
    Ok(match state {
        Some(t) => t.history.after(resume.since, usize::MAX),
        None => Vec::new(),
    })
}

fn join_room(
    st: &mut State,
    name: &Arc<str>,
    id: SessionId,
    user: Option<Arc<str>>,
    watch: bool,
    outbox: &Arc<Outbox>,
) {
    let room = st.rooms.entry(name.clone()).or_default();
    let is_new = !room.members.contains_key(&id);
    let member = room.members.entry(id).or_insert_with(|| RoomMember {
        user: user.clone(),
        count: 0,
        watchers: 0,
        outbox: outbox.clone(),
    });
    member.count += 1;
    member.watchers += usize::from(watch);
    if watch && member.watchers == 1 {
        room.watching += 1;
    }
    if is_new {
        announce(room, name, id, user, true);
    }
}

fn leave_room(st: &mut State, name: &Arc<str>, id: SessionId, watched: bool) {
    let Some(room) = st.rooms.get_mut(name) else {
        return;
    };
    let Some(member) = room.members.get_mut(&id) else {
        return;
    };
    member.count -= 1;
    member.watchers -= usize::from(watched);
    if watched && member.watchers == 0 {
        room.watching -= 1;
    }
    if member.count == 0 {
        let user = room.members.remove(&id).and_then(|m| m.user);
        announce(room, name, id, user, false);
    }
    if room.members.is_empty() {
        st.rooms.remove(name);
    }
}

/// Tells the other watching members of a room that `id` joined or left.
fn announce(room: &Room, name: &Arc<str>, id: SessionId, user: Option<Arc<str>>, joined: bool) {
    if room.watching == 0 {
        return;
    }
    for (other, m) in &room.members {
        if *other != id && m.watchers > 0 {
            let ev = PresenceEvent {
                topic: name.clone(),
                joined,
                client: id,
                user: user.clone(),
            };
            m.outbox.push(
                Delivery::Presence(ev),
                crate::config::SlowConsumerPolicy::Disconnect,
            );
        }
    }
}
