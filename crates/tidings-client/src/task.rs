//! The background task that owns the connection.
//!
//! ```text
//!            connect ok                    connection lost (reconnect on)
//!   start ─────────────> Serving ──────────────────────────────> Disconnected
//!                         │  ^                                        │
//!                         │  └─── reconnected: log in, resubscribe <──┘ backoff, retry
//!                         │       (exact topics resume after the last offset seen,
//!                         │        patterns after the last offset of each topic seen)
//!                         └─ close() / every Client dropped / lost without reconnect ─> end
//! ```
//!
//! While serving, the task selects between the server (replies, messages), the client's
//! requests (at most [`MAX_IN_FLIGHT`] unanswered) and the close signal. Events go to a
//! bounded channel; when it is full the task waits, so it stops reading the socket and TCP
//! pushes back on the server. While disconnected, requests fail at once with
//! [`ClientError::NotConnected`].

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use tokio::sync::{mpsc, oneshot, Notify};
use tokio_util::sync::CancellationToken;

use crate::config::{ClientConfig, Target};
use crate::conn::{
    Conn, ErrReply, GapNotice, Incoming, Lost, OkReply, Op, Position, MAX_IN_FLIGHT,
};
use crate::error::ClientError;
use crate::types::{Event, Message, Payload, Published, Subscribed};

/// What the [`Client`](crate::Client) handles share with the task.
#[derive(Default)]
pub(crate) struct Shared {
    /// Cancelled by `close()`: the task says goodbye and ends.
    pub(crate) closing: CancellationToken,
    /// Cancelled when the task has ended (even by panic), so `close()` can wait for it.
    pub(crate) finished: CancellationToken,
    /// Test hook: drop the connection as if the network failed.
    pub(crate) kill: Notify,
}

type Reply<T> = oneshot::Sender<Result<T, ClientError>>;

/// A request from a [`Client`](crate::Client) handle, with where to send the answer.
pub(crate) enum Request {
    Auth {
        user: String,
        password: String,
        reply: Reply<()>,
    },
    Subscribe {
        pattern: String,
        since: Option<u64>,
        epoch: Option<String>,
        reply: Reply<Subscribed>,
    },
    Unsubscribe {
        pattern: String,
        reply: Reply<()>,
    },
    Publish {
        topic: String,
        payload: Payload,
        reply: Reply<Published>,
    },
}

impl Request {
    fn fail(self, error: ClientError) {
        // A caller that gave up waiting dropped its receiver: nothing to tell.
        match self {
            Request::Auth { reply, .. } | Request::Unsubscribe { reply, .. } => {
                let _ = reply.send(Err(error));
            }
            Request::Subscribe { reply, .. } => {
                let _ = reply.send(Err(error));
            }
            Request::Publish { reply, .. } => {
                let _ = reply.send(Err(error));
            }
        }
    }
}

/// Who is waiting for the reply of a request in flight.
pub(crate) enum Tag {
    /// `None`: logging in again after a reconnect.
    Auth(Option<Reply<()>>),
    Subscribe {
        pattern: String,
        reply: Reply<Subscribed>,
    },
    Unsubscribe {
        pattern: String,
        reply: Reply<()>,
    },
    Publish {
        reply: Reply<Published>,
    },
    /// Restoring a subscription after a reconnect.
    Restore(Restore),
}

impl Tag {
    fn fail(self, error: ClientError) {
        match self {
            Tag::Auth(Some(reply)) | Tag::Unsubscribe { reply, .. } => {
                let _ = reply.send(Err(error));
            }
            Tag::Subscribe { reply, .. } => {
                let _ = reply.send(Err(error));
            }
            Tag::Publish { reply } => {
                let _ = reply.send(Err(error));
            }
            Tag::Auth(None) | Tag::Restore(_) => {}
        }
    }
}

/// A subscription to send again on a new connection.
#[derive(Debug, Clone)]
pub(crate) struct Restore {
    pattern: String,
    since: Option<u64>,
    epoch: Option<String>,
    /// A pattern's topics and where each stands (WebSocket only).
    positions: Vec<Position>,
    /// Resume attempts refused so far (each one reported as a [`Event::Gap`]).
    refused: u8,
}

/// After this many refused resumes in a row, subscribe without `since`.
const MAX_RESUME_ATTEMPTS: u8 = 3;

/// What the client is subscribed to, kept to resubscribe after a reconnect.
#[derive(Debug, Clone)]
struct Sub {
    /// An exact topic (no wildcard): it has offsets and can resume.
    exact: bool,
    /// Exact topics: the last offset delivered (or skipped on purpose: a subscribe without
    /// `since` starts after the topic's last offset). Resuming asks for what came after it.
    position: u64,
    epoch: Option<String>,
    /// Patterns: where each concrete topic delivered stands, to resume every one of them.
    topics: Topics,
}

/// Most concrete topics remembered per pattern subscription: the server takes at most this
/// many positions in one subscribe (`tidings_proto::json::MAX_POSITIONS`).
pub(crate) const MAX_TOPICS_PER_PATTERN: usize = tidings_proto::json::MAX_POSITIONS;

/// Where one topic stands: the last offset delivered (or skipped past by a gap) and its epoch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Seen {
    offset: u64,
    epoch: Option<String>,
}

/// The concrete topics a pattern subscription delivered, with where each stands. At most
/// [`MAX_TOPICS_PER_PATTERN`]: past that, the topic delivered least recently is forgotten,
/// and after a reconnect it starts again with live messages (nothing replayed, no gap told).
#[derive(Debug, Clone, Default)]
struct Topics {
    /// Per topic, where it stands and the stamp of its last update (its key in `order`).
    at: HashMap<String, (Seen, u64)>,
    /// Topics by last update, oldest first: the eviction order.
    order: BTreeMap<u64, String>,
    clock: u64,
}

impl Topics {
    fn get(&self, topic: &str) -> Option<&Seen> {
        self.at.get(topic).map(|(seen, _)| seen)
    }

    fn set(&mut self, topic: &str, seen: Seen) {
        self.clock += 1;
        let stamp = self.clock;
        match self.at.get_mut(topic) {
            Some(entry) => {
                self.order.remove(&entry.1);
                *entry = (seen, stamp);
            }
            None => {
                self.at.insert(topic.to_owned(), (seen, stamp));
            }
        }
        self.order.insert(stamp, topic.to_owned());
        while self.at.len() > MAX_TOPICS_PER_PATTERN {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            self.at.remove(&oldest);
        }
    }

    /// What a resubscribe sends: every topic and where it stands.
    fn positions(&self) -> Vec<Position> {
        self.order
            .values()
            .filter_map(|topic| {
                let (seen, _) = self.at.get(topic)?;
                Some(Position {
                    topic: topic.clone(),
                    since: seen.offset,
                    epoch: seen.epoch.clone(),
                })
            })
            .collect()
    }

    fn clear(&mut self) {
        self.at.clear();
        self.order.clear();
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.at.len()
    }
}

/// Why serving a connection ended.
enum Exit {
    /// `close()`, or every `Client` handle dropped.
    Closed,
    /// The connection dropped; reconnect if configured.
    Lost(String),
    /// Reconnecting cannot help (logging in again was refused).
    Fatal(String),
}

pub(crate) struct Task {
    target: Target,
    cfg: ClientConfig,
    requests: mpsc::Receiver<Request>,
    events: mpsc::Sender<Event>,
    shared: Arc<Shared>,
    /// Keyed by pattern (an exact topic is its own pattern). Bounded by the server's
    /// subscriptions-per-session limit: only subscriptions it accepted are kept.
    subs: HashMap<String, Sub>,
    /// Subscriptions still to send on a new connection (sent as in-flight room allows).
    restore: VecDeque<Restore>,
    /// Re-login and restore subscriptions not yet answered; `Reconnected` when it is 0.
    restoring: usize,
    /// True from a successful reconnect until `Reconnected` was emitted.
    reconnecting: bool,
}

impl Task {
    pub(crate) fn new(
        target: Target,
        cfg: ClientConfig,
        requests: mpsc::Receiver<Request>,
        events: mpsc::Sender<Event>,
        shared: Arc<Shared>,
    ) -> Task {
        Task {
            target,
            cfg,
            requests,
            events,
            shared,
            subs: HashMap::new(),
            restore: VecDeque::new(),
            restoring: 0,
            reconnecting: false,
        }
    }

    pub(crate) async fn run(mut self, conn: Conn<Tag>) {
        let _finished = self.shared.finished.clone().drop_guard();
        let mut conn = conn;
        loop {
            match self.serve(conn).await {
                Exit::Closed => return,
                Exit::Fatal(reason) => {
                    self.emit(Event::Disconnected { reason }).await;
                    return;
                }
                Exit::Lost(reason) => {
                    tracing::debug!("connection lost: {reason}");
                    self.emit(Event::Disconnected { reason }).await;
                    if !self.cfg.reconnect {
                        return;
                    }
                    match self.reconnect().await {
                        Some(new) => conn = new,
                        None => return,
                    }
                    self.reconnecting = true;
                }
            }
        }
    }

    /// Serves one connection until it ends.
    async fn serve(&mut self, mut conn: Conn<Tag>) -> Exit {
        // A kill requested while there was no connection is not meant for this one.
        let _ = self.shared.kill.notified().now_or_never();
        if self.reconnecting {
            self.start_restore(&mut conn);
        }
        let exit = loop {
            if let Some(exit) = self.send_restores(&mut conn) {
                break exit;
            }
            if self.reconnecting && self.restoring == 0 {
                self.reconnecting = false;
                self.emit(Event::Reconnected).await;
            }
            let take_requests = conn.in_flight() < MAX_IN_FLIGHT && self.restore.is_empty();
            tokio::select! {
                biased;
                _ = self.shared.closing.cancelled() => break Exit::Closed,
                _ = self.shared.kill.notified() => {
                    break Exit::Lost("connection dropped by the test hook".into())
                }
                // Requests before reading, so that a busy subscription cannot starve them;
                // at most MAX_IN_FLIGHT are taken before reading must make room again.
                request = self.requests.recv(), if take_requests => match request {
                    Some(request) => self.dispatch(&mut conn, request),
                    None => break Exit::Closed, // every Client handle was dropped
                },
                incoming = conn.recv() => match incoming {
                    Ok(Incoming::Event(event)) => self.on_event(event).await,
                    Ok(Incoming::Gap(gap)) => self.on_gap(gap).await,
                    Ok(Incoming::Reply(tag, outcome)) => {
                        if let Err(exit) = self.on_reply(tag, outcome).await {
                            break exit;
                        }
                    }
                    Err(Lost(reason)) => break Exit::Lost(reason),
                },
            }
        };
        let error = || match exit {
            Exit::Closed => ClientError::Closed,
            _ => ClientError::NotConnected,
        };
        for tag in conn.take_pending() {
            tag.fail(error());
        }
        self.restore.clear();
        self.restoring = 0;
        self.reconnecting = false;
        if let Exit::Closed = exit {
            conn.close().await;
        }
        exit
    }

    /// On a new connection: log in again and queue every subscription, resuming exact
    /// topics after the last offset seen.
    fn start_restore(&mut self, conn: &mut Conn<Tag>) {
        if let Some((user, password)) = self.cfg.credentials.clone() {
            let op = Op::Auth { user, password };
            if conn.send(&op, Tag::Auth(None)).is_ok() {
                self.restoring += 1;
            }
        }
        let with_positions = conn.resumes_patterns();
        for (pattern, sub) in &mut self.subs {
            let (since, epoch) = if sub.exact {
                (Some(sub.position), sub.epoch.clone())
            } else {
                (None, None)
            };
            let positions = if with_positions {
                sub.topics.positions()
            } else {
                // The line protocol cannot resume a pattern: its topics start over (live),
                // and their offsets may start over too if the server restarted.
                sub.topics.clear();
                Vec::new()
            };
            self.restore.push_back(Restore {
                pattern: pattern.clone(),
                since,
                epoch,
                positions,
                refused: 0,
            });
        }
        self.restoring += self.restore.len();
    }

    /// Sends queued restores while there is room in flight.
    fn send_restores(&mut self, conn: &mut Conn<Tag>) -> Option<Exit> {
        while conn.in_flight() < MAX_IN_FLIGHT {
            let restore = self.restore.pop_front()?;
            let op = Op::Subscribe {
                pattern: restore.pattern.clone(),
                since: restore.since,
                epoch: restore.epoch.clone(),
                positions: restore.positions.clone(),
            };
            match conn.send(&op, Tag::Restore(restore)) {
                Ok(()) => {}
                Err((Tag::Restore(restore), ClientError::InvalidInput(why))) => {
                    tracing::warn!("cannot resubscribe to {}: {why}", restore.pattern);
                    self.subs.remove(&restore.pattern);
                    self.restoring -= 1;
                }
                Err((_, e)) => return Some(Exit::Lost(e.to_string())),
            }
        }
        None
    }

    /// Writes a client's request, or fails it at once if it cannot be written.
    fn dispatch(&mut self, conn: &mut Conn<Tag>, request: Request) {
        let (op, tag) = match request {
            Request::Auth {
                user,
                password,
                reply,
            } => (Op::Auth { user, password }, Tag::Auth(Some(reply))),
            Request::Subscribe {
                pattern,
                since,
                epoch,
                reply,
            } => (
                Op::Subscribe {
                    pattern: pattern.clone(),
                    since,
                    epoch,
                    positions: Vec::new(),
                },
                Tag::Subscribe { pattern, reply },
            ),
            Request::Unsubscribe { pattern, reply } => (
                Op::Unsubscribe {
                    pattern: pattern.clone(),
                },
                Tag::Unsubscribe { pattern, reply },
            ),
            Request::Publish {
                topic,
                payload,
                reply,
            } => (Op::Publish { topic, payload }, Tag::Publish { reply }),
        };
        if let Err((tag, error)) = conn.send(&op, tag) {
            tag.fail(error);
        }
    }

    /// Tracks offsets and epochs (of exact topics, and of each topic a pattern delivered),
    /// drops what was already delivered, and hands the event on.
    async fn on_event(&mut self, mut event: Event) {
        if let Event::Message(m) = &mut event {
            if !self.track(m) {
                tracing::debug!("skipping {} {}: already delivered", m.topic, m.offset);
                return;
            }
        }
        self.emit(event).await;
    }

    /// Records `m` as delivered on every subscription that matches its topic; false when one
    /// of them already had it (a replay overlapping what was delivered, or overlapping
    /// subscriptions). The line protocol gives no epoch: an exact topic's is filled in.
    fn track(&mut self, m: &mut Message) -> bool {
        let duplicate = |seen: &Seen| {
            let new_epoch = matches!((&m.epoch, &seen.epoch), (Some(a), Some(b)) if a != b);
            m.offset <= seen.offset && !new_epoch
        };
        let mut known_epoch = None;
        for (pattern, sub) in &self.subs {
            if sub.exact {
                if *pattern == m.topic {
                    let seen = Seen {
                        offset: sub.position,
                        epoch: sub.epoch.clone(),
                    };
                    if duplicate(&seen) {
                        return false;
                    }
                    known_epoch = seen.epoch;
                }
            } else if let Some(seen) = sub.topics.get(&m.topic) {
                if duplicate(seen) {
                    return false;
                }
            }
        }
        if m.epoch.is_none() {
            m.epoch = known_epoch;
        }
        self.set_position(
            &m.topic,
            Seen {
                offset: m.offset,
                epoch: m.epoch.clone(),
            },
        );
        true
    }

    /// Sets where `topic` stands on every subscription that matches it.
    fn set_position(&mut self, topic: &str, seen: Seen) {
        for (pattern, sub) in &mut self.subs {
            if sub.exact {
                if pattern == topic {
                    sub.position = seen.offset;
                    sub.epoch = seen.epoch.clone();
                }
            } else if matches(pattern, topic) {
                sub.topics.set(topic, seen.clone());
            }
        }
    }

    /// The server cannot deliver some messages of a topic (a pattern's resume that history
    /// cannot serve, or messages dropped under a slow-consumer policy): the topic now stands
    /// just before `next` (or at 0 in the new epoch when the server does not know `next`
    /// yet), and the application hears of it as an [`Event::Gap`].
    async fn on_gap(&mut self, gap: GapNotice) {
        let GapNotice {
            topic,
            since,
            epoch,
            next,
            reason,
        } = gap;
        let seen = Seen {
            offset: next.map_or(0, |n| n.saturating_sub(1)),
            epoch,
        };
        self.set_position(&topic, seen);
        self.emit(Event::Gap {
            topic,
            since,
            earliest: next.unwrap_or(0),
            reason,
        })
        .await;
    }

    async fn on_reply(&mut self, tag: Tag, outcome: Result<OkReply, ErrReply>) -> Result<(), Exit> {
        match tag {
            Tag::Auth(Some(reply)) => {
                let _ = reply.send(outcome.map(|_| ()).map_err(|e| e.into_error("")));
            }
            Tag::Auth(None) => match outcome {
                Ok(_) => self.restoring -= 1,
                Err(e) => {
                    return Err(Exit::Fatal(format!(
                        "logging in again after reconnecting was refused: {}",
                        e.message
                    )))
                }
            },
            Tag::Subscribe { pattern, reply } => {
                let result = match outcome {
                    Ok(ok) => {
                        self.remember(&pattern, &ok);
                        Ok(Subscribed {
                            epoch: ok.epoch,
                            last_offset: ok.offset,
                            replayed: ok.replayed,
                        })
                    }
                    Err(e) => Err(e.into_error(&pattern)),
                };
                let _ = reply.send(result);
            }
            Tag::Unsubscribe { pattern, reply } => {
                let result = match outcome {
                    Ok(_) => {
                        self.subs.remove(&pattern);
                        Ok(())
                    }
                    Err(e) => Err(e.into_error(&pattern)),
                };
                let _ = reply.send(result);
            }
            Tag::Publish { reply } => {
                let result = match outcome {
                    Ok(ok) => Ok(Published {
                        offset: ok.offset,
                        epoch: ok.epoch,
                    }),
                    Err(e) => Err(e.into_error("")),
                };
                let _ = reply.send(result);
            }
            Tag::Restore(restore) => self.on_restored(restore, outcome).await,
        }
        Ok(())
    }

    /// A resubscription was answered.
    async fn on_restored(&mut self, restore: Restore, outcome: Result<OkReply, ErrReply>) {
        let pattern = restore.pattern;
        match (outcome, restore.since) {
            (Ok(ok), _) => {
                self.remember(&pattern, &ok);
                self.restoring -= 1;
            }
            (Err(e), _) if !restore.positions.is_empty() && e.code == "bad_request" => {
                // A server that refuses these positions (say, one that matches `#` in
                // another way): subscribe again without them, the pattern's topics live.
                tracing::warn!("resuming {pattern}'s topics was refused: {}", e.message);
                if let Some(sub) = self.subs.get_mut(&pattern) {
                    sub.topics.clear();
                }
                self.restore.push_front(Restore {
                    pattern,
                    positions: Vec::new(),
                    ..restore
                });
            }
            (Err(e), Some(since)) if e.is_resume_unavailable() => {
                // What was missed is gone: say so, then take what history still holds.
                let earliest = e.earliest.unwrap_or(1).max(1);
                self.emit(Event::Gap {
                    topic: pattern.clone(),
                    since,
                    earliest,
                    reason: e.message,
                })
                .await;
                let refused = restore.refused + 1;
                let retry = if refused < MAX_RESUME_ATTEMPTS {
                    Restore {
                        pattern,
                        since: Some(earliest - 1),
                        epoch: e.epoch,
                        positions: Vec::new(),
                        refused,
                    }
                } else {
                    Restore {
                        pattern,
                        since: None,
                        epoch: None,
                        positions: Vec::new(),
                        refused,
                    }
                };
                self.restore.push_front(retry);
            }
            (Err(e), _) => {
                tracing::warn!(
                    "could not resubscribe to {pattern} after reconnecting: {}",
                    e.message
                );
                self.subs.remove(&pattern);
                self.restoring -= 1;
            }
        }
    }

    /// Records an accepted subscription (and, for an exact topic, where it starts).
    fn remember(&mut self, pattern: &str, ok: &OkReply) {
        let exact = !is_pattern(pattern);
        let sub = self.subs.entry(pattern.to_owned()).or_insert(Sub {
            exact,
            position: 0,
            epoch: None,
            topics: Topics::default(),
        });
        if exact {
            // `offset` is the topic's last offset; the `replayed` messages before it follow.
            sub.position = ok.offset.saturating_sub(ok.replayed);
            sub.epoch = ok.epoch.clone();
        }
    }

    /// Hands an event to [`Events`](crate::Events), waiting while its buffer is full
    /// (unless the client is closing). Events nobody reads any more are dropped.
    async fn emit(&self, event: Event) {
        tokio::select! {
            biased;
            _ = self.shared.closing.cancelled() => {}
            _ = self.events.send(event) => {}
        }
    }

    /// Retries with backoff until connected; `None` if the client was closed meanwhile.
    async fn reconnect(&mut self) -> Option<Conn<Tag>> {
        let mut attempt = 0u32;
        loop {
            let delay = backoff(self.cfg.min_backoff, self.cfg.max_backoff, attempt);
            attempt = attempt.saturating_add(1);
            self.while_disconnected(tokio::time::sleep(delay)).await?;
            let target = self.target.clone();
            let open = async move { Conn::open(&target).await };
            match self.while_disconnected(open).await? {
                Ok(conn) => return Some(conn),
                Err(e) => tracing::debug!("reconnect attempt {attempt} failed: {e}"),
            }
        }
    }

    /// Runs `fut` while failing every request with `NotConnected`; `None` on close.
    async fn while_disconnected<F: Future>(&mut self, fut: F) -> Option<F::Output> {
        let mut fut = std::pin::pin!(fut);
        loop {
            tokio::select! {
                biased;
                _ = self.shared.closing.cancelled() => return None,
                out = &mut fut => return Some(out),
                request = self.requests.recv() => match request {
                    Some(request) => request.fail(ClientError::NotConnected),
                    None => return None,
                },
            }
        }
    }
}

/// True when `pattern` has a wildcard token (`*`, `>`, or RabbitMQ's `#`).
pub(crate) fn is_pattern(pattern: &str) -> bool {
    pattern.split('.').any(|t| matches!(t, "*" | ">" | "#"))
}

/// True when `topic` matches `pattern`: `*` is one token, `>` (or `#`) one or more at the
/// end, as the server matches them.
pub(crate) fn matches(pattern: &str, topic: &str) -> bool {
    let mut topic = topic.split('.');
    for token in pattern.split('.') {
        match token {
            ">" | "#" => return topic.next().is_some(),
            "*" => {
                if topic.next().is_none() {
                    return false;
                }
            }
            literal => {
                if topic.next() != Some(literal) {
                    return false;
                }
            }
        }
    }
    topic.next().is_none()
}

/// The delay before reconnect attempt `attempt` (0-based): `min * 2^attempt`, at most
/// `max`, then picked at random in its upper half so that clients do not retry in step.
fn backoff(min: Duration, max: Duration, attempt: u32) -> Duration {
    let full = min
        .checked_mul(1u32 << attempt.min(16))
        .unwrap_or(max)
        .min(max);
    let half = full / 2;
    let span = u64::try_from((full - half).as_nanos()).unwrap_or(u64::MAX);
    half + Duration::from_nanos(random() % span.max(1))
}

/// A random number from the standard library's per-process random hash keys: good enough
/// for jitter, without a dependency.
fn random() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert!(is_pattern("chat.*"));
        assert!(is_pattern(">"));
        assert!(is_pattern("a.#"));
        assert!(!is_pattern("chat.lobby"));
        assert!(!is_pattern("a*b.c"));
    }

    #[test]
    fn matching() {
        assert!(matches("w.*", "w.a"));
        assert!(!matches("w.*", "w.a.b"));
        assert!(!matches("w.*", "w"));
        assert!(matches("w.>", "w.a.b"));
        assert!(!matches("w.>", "w"));
        assert!(matches("a.#", "a.b"));
        assert!(matches("*.b", "a.b"));
        assert!(!matches("x.*", "w.a"));
    }

    #[test]
    fn a_pattern_remembers_at_most_its_bound_of_topics_forgetting_the_oldest() {
        let mut topics = Topics::default();
        let seen = |offset| Seen {
            offset,
            epoch: Some("e".into()),
        };
        for i in 0..MAX_TOPICS_PER_PATTERN as u64 {
            topics.set(&format!("w.t{i}"), seen(i));
        }
        // Touching the first keeps it; the next new topic pushes out the second.
        topics.set("w.t0", seen(7));
        topics.set("w.new", seen(1));
        assert_eq!(topics.len(), MAX_TOPICS_PER_PATTERN);
        assert_eq!(topics.get("w.t0"), Some(&seen(7)));
        assert_eq!(topics.get("w.t1"), None);
        let positions = topics.positions();
        assert_eq!(positions.len(), MAX_TOPICS_PER_PATTERN);
        assert_eq!(positions.last().map(|p| p.topic.as_str()), Some("w.new"));
        assert_eq!(positions[positions.len() - 2].since, 7);
    }

    #[test]
    fn backoff_grows_within_bounds() {
        let (min, max) = (Duration::from_millis(100), Duration::from_secs(5));
        for attempt in 0..40 {
            let d = backoff(min, max, attempt);
            let full = (min * 2u32.pow(attempt.min(16))).min(max);
            assert!(d >= full / 2 && d <= full, "{attempt}: {d:?}");
        }
        assert_eq!(backoff(Duration::ZERO, Duration::ZERO, 3), Duration::ZERO);
    }
}
