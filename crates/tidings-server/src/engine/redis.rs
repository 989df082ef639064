//! The Redis engine: topics, offsets, epochs and history shared by every node on one Redis.
//!
//! Keys per topic (`P` is `[engine] prefix`):
//! * `P:t:TOPIC`: a hash `{e: epoch, o: last offset}`;
//! * `P:s:TOPIC`: a stream, entry id `OFFSET-0`, field `b` = the message body
//!   (`codec.rs`), capped with `MAXLEN ~` the topic's `history.max_messages`;
//! * `P:m:TOPIC`: the pub/sub channel, messages `OFFSET EPOCH BODY`.
//!
//! Both keys expire after the topic's `history.max_age_ms` without a publish (a day when it
//! has no age limit); when the hash is gone the next publish starts a new epoch and drops
//! what remained of the stream, so an epoch changes only when history was really lost.
//!
//! Three tasks per node: the publisher (pipelines queued publishes, one `EVALSHA` each), the
//! pub/sub loop (subscribes to what local clients want, watches offset continuity, fills
//! holes from the stream, reconnects with backoff) and a short task per subscribe that reads
//! its history and completes it.

use super::codec;
use super::connection::unavailable;
use super::health::RoundTrip;
use super::metrics::EngineMetrics;
use crate::config::EngineConfig;
use bytes::Bytes;
use futures::StreamExt;
use redis::aio::{ConnectionManager, PubSubSink};
use redis::{Script, Value};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tidings_core::{
    GapReason, HistoryPage, Hub, HubError, Identity, InterestEvent, Message, PayloadKind,
    Published, Session, SubscribeOptions, Subscribed,
};
use tokio::sync::{mpsc, oneshot, Notify};
use tokio_util::sync::CancellationToken;

/// Called once with the outcome of an operation, when Redis answered.
pub(crate) type Done<T> = Box<dyn FnOnce(Result<T, HubError>) + Send>;

type Ack = Box<dyn FnOnce(&Subscribed) -> Option<Bytes> + Send>;
type Refused = Box<dyn FnOnce(&HubError) -> Option<Bytes> + Send>;

/// Publishes queued per node before new ones are refused as unavailable (Redis slower than
/// clients publish): bounds the memory a stalled Redis costs.
const PUBLISH_QUEUE: usize = 65_536;
/// Publishes sent to Redis in one pipeline.
const PUBLISH_BATCH: usize = 256;
/// Most messages one hole fill or one resume reads from a stream.
const MAX_READ: usize = 10_000;
/// Topics whose last offset the pub/sub loop remembers (continuity); past it, it forgets all.
const MAX_TRACKED: usize = 100_000;

const PUBLISH_LUA: &str = r"
local epoch = redis.call('HGET', KEYS[1], 'e')
if not epoch then
  epoch = ARGV[1]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'e', epoch, 'o', 0)
end
local off = redis.call('HINCRBY', KEYS[1], 'o', 1)
if tonumber(ARGV[2]) > 0 then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], off .. '-0', 'b', ARGV[4])
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PUBLISH', ARGV[5], off .. ' ' .. epoch .. ' ' .. ARGV[4])
return {off, epoch}
";

/// Position and history of a topic in one call: `{epoch, last, earliest, entries}`, or `{}`
/// when the topic has no state (and ARGV[3] is not `1`, which creates it).
const READ_LUA: &str = r"
local e = redis.call('HGET', KEYS[1], 'e')
if not e then
  if ARGV[3] ~= '1' then return {} end
  e = ARGV[4]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'e', e, 'o', 0)
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
end
local last = tonumber(redis.call('HGET', KEYS[1], 'o'))
local earliest = last + 1
local first = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
if #first > 0 then earliest = tonumber(string.match(first[1][1], '^(%d+)')) end
local entries = {}
if tonumber(ARGV[2]) > 0 and tonumber(ARGV[1]) <= last then
  entries = redis.call('XRANGE', KEYS[2], ARGV[1] .. '-0', '+', 'COUNT', ARGV[2])
end
return {e, last, earliest, entries}
";

struct PublishJob {
    topic: Arc<str>,
    kind: PayloadKind,
    payload: Bytes,
    headers: Vec<(Arc<str>, Arc<str>)>,
    now: u64,
    /// When it was queued: the publish latency metric.
    queued: std::time::Instant,
    done: Done<Published>,
}

/// What the publisher task takes, in order: one publish, or a group numbered all together
/// (`MULTI`/`EXEC`: a STOMP transaction's commit).
enum Job {
    One(PublishJob),
    All(Vec<PublishJob>, Done<Vec<Published>>),
}

struct SubscribeJob {
    pending: tidings_core::PendingSubscribe,
    ack: Ack,
    refused: Refused,
}

/// The node's handle on the shared engine. Cheap to share (`Arc`).
pub(crate) struct RedisEngine {
    hub: Arc<Hub>,
    /// Commands (publish, read, ping); reconnects by itself.
    conn: ConnectionManager,
    prefix: String,
    url: String,
    timeout: Duration,
    publishes: mpsc::Sender<Job>,
    subscribes: mpsc::UnboundedSender<SubscribeJob>,
    /// Whether the pub/sub connection is up and subscribed to every local interest.
    pubsub_up: AtomicBool,
    /// Candidate epochs (used only when a topic has no state in Redis).
    epoch_seed: u64,
    epochs: AtomicU64,
    publish_script: Script,
    read_script: Script,
    /// The queues (STOMP `/queue/...`) through Redis: `queues.rs`.
    queues: Arc<super::RedisQueues>,
    metrics: Arc<EngineMetrics>,
    /// The pub/sub health round trip (`engine/cluster.rs` sends and receives it).
    round_trip: Arc<RoundTrip>,
}

impl std::fmt::Debug for RedisEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisEngine")
            .field("url", &self.url)
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl RedisEngine {
    /// Connects lazily (a node starts while Redis is down, and publishes fail until it is
    /// back) and starts the publisher and pub/sub tasks, which end on `shutdown`.
    pub(crate) fn start(
        hub: Arc<Hub>,
        cfg: &EngineConfig,
        epoch_seed: u64,
        metrics: Arc<EngineMetrics>,
        round_trip: Arc<RoundTrip>,
        shutdown: CancellationToken,
        queues: Arc<super::RedisQueues>,
    ) -> Result<Arc<RedisEngine>, String> {
        let (client, conn) = super::connection::connect(cfg)?;
        let timeout = Duration::from_millis(cfg.timeout_ms);
        let (publishes, publish_rx) = mpsc::channel(PUBLISH_QUEUE);
        let (subscribes, subscribe_rx) = mpsc::unbounded_channel();
        let engine = Arc::new(RedisEngine {
            hub: hub.clone(),
            conn,
            prefix: cfg.prefix.clone(),
            url: cfg.url.clone(),
            timeout,
            publishes,
            subscribes,
            pubsub_up: AtomicBool::new(false),
            epoch_seed,
            epochs: AtomicU64::new(1),
            publish_script: Script::new(PUBLISH_LUA),
            read_script: Script::new(READ_LUA),
            queues,
            metrics,
            round_trip,
        });
        let interest = Arc::new(Notify::new());
        let wake = interest.clone();
        hub.on_interest(Box::new(move || wake.notify_one()));
        tokio::spawn(engine.clone().publisher(publish_rx, shutdown.clone()));
        tokio::spawn(
            engine
                .clone()
                .pubsub_loop(client, subscribe_rx, interest, shutdown),
        );
        Ok(engine)
    }

    /// The command connection, key prefix and timeout, for the node directory (`nodes.rs`).
    pub(super) fn commands(&self) -> (ConnectionManager, &str, Duration) {
        (self.conn.clone(), &self.prefix, self.timeout)
    }

    /// The queues through Redis.
    pub(crate) fn queues(&self) -> &super::RedisQueues {
        &self.queues
    }

    fn key(&self, kind: &str, topic: &str) -> String {
        format!("{}:{kind}:{topic}", self.prefix)
    }

    /// The channel (exact topic) or channel pattern (wildcards) of a subscription pattern.
    fn channel_of(&self, pattern: &str) -> (bool, String) {
        let exact = !pattern.split('.').any(|t| matches!(t, "*" | ">" | "#"));
        if exact {
            return (true, self.key("m", pattern));
        }
        let mut glob = format!("{}:m:", self.prefix);
        for (i, token) in pattern.split('.').enumerate() {
            if i > 0 {
                glob.push('.');
            }
            if matches!(token, "*" | ">" | "#") {
                glob.push('*');
                continue;
            }
            for c in token.chars() {
                if matches!(c, '*' | '?' | '[' | ']' | '\\') {
                    glob.push('\\');
                }
                glob.push(c);
            }
        }
        (false, glob)
    }

    fn new_epoch(&self) -> String {
        let n = self.epochs.fetch_add(1, Ordering::Relaxed);
        let mut z = self.epoch_seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        format!("{:08x}", (z ^ (z >> 31)) as u32)
    }

    /// Milliseconds the topic's keys live without a publish.
    fn ttl_ms(&self, topic: &str) -> u64 {
        ttl_of(&self.hub.topic_settings(topic).history)
    }

    // --- publish ---------------------------------------------------------------------------

    /// Checks `who` may publish, then queues the message for Redis; `done` gets its offset
    /// and epoch once Redis numbered it (or why not). Other nodes and this one deliver it
    /// from pub/sub.
    #[allow(clippy::too_many_arguments)] // a publish's parts, as `Hub::publish` takes them
    pub(crate) fn publish(
        &self,
        who: &Identity,
        topic: &str,
        kind: PayloadKind,
        payload: Bytes,
        headers: Vec<(Arc<str>, Arc<str>)>,
        now: u64,
        done: Done<Published>,
    ) {
        if let Err(e) = self.hub.check_publish(who, topic, now) {
            return done(Err(e));
        }
        let job = PublishJob {
            topic: topic.into(),
            kind,
            payload,
            headers,
            now,
            queued: std::time::Instant::now(),
            done,
        };
        if let Err(
            mpsc::error::TrySendError::Full(Job::One(job))
            | mpsc::error::TrySendError::Closed(Job::One(job)),
        ) = self.publishes.try_send(Job::One(job))
        {
            (job.done)(Err(HubError::EngineUnavailable(
                "too many publishes waiting for redis".into(),
            )));
        }
    }

    /// Publishes `messages` all or none (one `MULTI`/`EXEC` of the publish scripts), in order
    /// with this node's other publishes; `done` gets their offsets once Redis answered.
    #[allow(clippy::type_complexity)] // a publish's parts, as `publish` takes them
    pub(crate) fn publish_all(
        &self,
        who: &Identity,
        messages: Vec<(String, PayloadKind, Bytes, Vec<(Arc<str>, Arc<str>)>)>,
        now: u64,
        done: Done<Vec<Published>>,
    ) {
        let mut group = Vec::with_capacity(messages.len());
        for (topic, kind, payload, headers) in messages {
            if let Err(e) = self.hub.check_publish(who, &topic, now) {
                return done(Err(e));
            }
            group.push(PublishJob {
                topic: topic.into(),
                kind,
                payload,
                headers,
                now,
                queued: std::time::Instant::now(),
                done: Box::new(|_| {}),
            });
        }
        if let Err(
            mpsc::error::TrySendError::Full(Job::All(_, done))
            | mpsc::error::TrySendError::Closed(Job::All(_, done)),
        ) = self.publishes.try_send(Job::All(group, done))
        {
            done(Err(HubError::EngineUnavailable(
                "too many publishes waiting for redis".into(),
            )));
        }
    }

    /// [`RedisEngine::publish`], awaiting the outcome.
    pub(crate) async fn publish_wait(
        &self,
        who: &Identity,
        topic: &str,
        kind: PayloadKind,
        payload: Bytes,
        now: u64,
    ) -> Result<Published, HubError> {
        let (tx, rx) = oneshot::channel();
        let done: Done<Published> = Box::new(move |r| {
            let _ = tx.send(r);
        });
        self.publish(who, topic, kind, payload, Vec::new(), now, done);
        rx.await.unwrap_or(Err(HubError::ShuttingDown))
    }

    async fn publisher(self: Arc<Self>, mut rx: mpsc::Receiver<Job>, shutdown: CancellationToken) {
        let mut jobs = Vec::with_capacity(PUBLISH_BATCH);
        let mut batch = Vec::with_capacity(PUBLISH_BATCH);
        loop {
            let n = tokio::select! {
                n = rx.recv_many(&mut jobs, PUBLISH_BATCH) => n,
                _ = shutdown.cancelled() => 0,
            };
            if n == 0 {
                return;
            }
            for job in jobs.drain(..) {
                match job {
                    Job::One(job) => batch.push(job),
                    Job::All(group, done) => {
                        self.publish_batch(&mut batch).await;
                        let queued = group.first().map(|j| j.queued);
                        let result = self.publish_group(group).await;
                        if let Some(queued) = queued {
                            self.metrics.published(result.is_ok(), queued.elapsed());
                        }
                        done(result);
                    }
                }
            }
            self.publish_batch(&mut batch).await;
        }
    }

    /// The publishes of a group, all or none.
    async fn publish_group(&self, group: Vec<PublishJob>) -> Result<Vec<Published>, HubError> {
        // Loaded first: a NOSCRIPT inside EXEC would fail one command and run the others.
        let mut conn = self.conn.clone();
        let load = self.publish_script.load_async(&mut conn);
        match tokio::time::timeout(self.timeout, load).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(unavailable(e)),
            Err(_) => return Err(unavailable("no answer in time")),
        }
        let mut pipe = self.pipeline_of(&group);
        drop(group);
        pipe.atomic();
        self.run_publish(pipe).await?.into_iter().collect()
    }

    /// One pipeline of the queued single publishes, each answered.
    async fn publish_batch(&self, batch: &mut Vec<PublishJob>) {
        if batch.is_empty() {
            return;
        }
        let pipe = self.pipeline_of(batch);
        match self.run_publish(pipe).await {
            Ok(results) => {
                for (job, result) in batch.drain(..).zip(results) {
                    self.metrics.published(result.is_ok(), job.queued.elapsed());
                    (job.done)(result);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "redis engine: publish failed");
                for job in batch.drain(..) {
                    self.metrics.published(false, job.queued.elapsed());
                    (job.done)(Err(e.clone()));
                }
            }
        }
    }

    /// One pipeline of `EVALSHA`s, in queue order (so a session's publishes keep their order).
    fn pipeline_of(&self, batch: &[PublishJob]) -> redis::Pipeline {
        let mut pipe = redis::pipe();
        for job in batch {
            let history = self.hub.topic_settings(&job.topic).history;
            let body = codec::encode_body(job.kind, job.now, &job.headers, &job.payload);
            let mut inv = self.publish_script.prepare_invoke();
            inv.key(self.key("t", &job.topic))
                .key(self.key("s", &job.topic))
                .arg(self.new_epoch())
                .arg(history.max_messages)
                .arg(ttl_of(&history))
                .arg(body)
                .arg(self.key("m", &job.topic));
            pipe.invoke_script(&inv);
        }
        pipe
    }

    async fn run_publish(
        &self,
        pipe: redis::Pipeline,
    ) -> Result<Vec<Result<Published, HubError>>, HubError> {
        let values = super::connection::run_script_pipeline(
            &self.conn,
            &pipe,
            &self.publish_script,
            self.timeout,
        )
        .await?;
        Ok(values
            .into_iter()
            .map(|v| match v {
                Value::Array(parts) => match (parts.first(), parts.get(1)) {
                    (Some(Value::Int(off)), Some(epoch)) => Ok(Published {
                        offset: *off as u64,
                        epoch: string_of(epoch).unwrap_or_default().into(),
                        receivers: 0,
                    }),
                    _ => Err(unavailable("unexpected reply to publish")),
                },
                other => Err(unavailable(format!(
                    "unexpected reply to publish: {other:?}"
                ))),
            })
            .collect())
    }

    // --- history ---------------------------------------------------------------------------

    /// Position and at most `limit` messages after `since` (`limit` 0: the position only);
    /// with `create`, a topic without state gets one (an epoch, offset 0).
    async fn read(
        &self,
        topic: &str,
        since: u64,
        limit: usize,
        create: bool,
    ) -> Result<HistoryPage, HubError> {
        let mut inv = self.read_script.prepare_invoke();
        inv.key(self.key("t", topic))
            .key(self.key("s", topic))
            .arg(since.saturating_add(1))
            .arg(limit.min(MAX_READ))
            .arg(if create { "1" } else { "0" })
            .arg(self.new_epoch())
            .arg(self.ttl_ms(topic));
        let mut conn = self.conn.clone();
        let value: Value =
            match tokio::time::timeout(self.timeout, inv.invoke_async(&mut conn)).await {
                Err(_) => return Err(unavailable("no answer in time")),
                Ok(Err(e)) => return Err(unavailable(e)),
                Ok(Ok(v)) => v,
            };
        let topic: Arc<str> = topic.into();
        let Value::Array(parts) = value else {
            return Err(unavailable("unexpected reply to a history read"));
        };
        if parts.is_empty() {
            return Ok(HistoryPage::empty(&topic));
        }
        let epoch: Arc<str> = parts.first().and_then(string_of).unwrap_or_default().into();
        let last = parts.get(1).and_then(int_of).unwrap_or(0);
        let earliest = parts.get(2).and_then(int_of).unwrap_or(last + 1);
        let mut messages = Vec::new();
        if let Some(Value::Array(entries)) = parts.get(3) {
            for entry in entries {
                match entry_of(&topic, &epoch, entry) {
                    Ok(m) => messages.push(Arc::new(m)),
                    Err(e) => tracing::warn!(%topic, error = %e, "redis engine: skipped an entry"),
                }
            }
        }
        Ok(HistoryPage {
            topic,
            epoch: Some(epoch),
            earliest,
            last_offset: last,
            messages,
        })
    }

    /// `who`'s history of `topic` after `since`, at most `limit` (the hub's rights apply).
    pub(crate) async fn history(
        &self,
        who: &Identity,
        topic: &str,
        since: u64,
        limit: usize,
    ) -> Result<HistoryPage, HubError> {
        self.hub.check_history(who, topic)?;
        self.read(topic, since, limit.min(MAX_READ), false).await
    }

    /// [`RedisEngine::history`] answered through `done` from a task of its own.
    pub(crate) fn history_then(
        self: &Arc<Self>,
        who: &Identity,
        topic: &str,
        since: u64,
        limit: usize,
        done: Done<HistoryPage>,
    ) {
        if let Err(e) = self.hub.check_history(who, topic) {
            return done(Err(e));
        }
        let engine = self.clone();
        let topic = topic.to_owned();
        tokio::spawn(async move {
            done(engine.read(&topic, since, limit.min(MAX_READ), false).await);
        });
    }

    // --- subscribe -------------------------------------------------------------------------

    /// Subscribes as [`Hub::subscribe`] does, with the history from Redis: the route is added
    /// now (live messages wait in its buffer); once this node's pub/sub follows the pattern,
    /// the history is read and merged by offset, and `ack`'s reply, the replay and the live
    /// messages are queued in that order. A failure after this returns is answered with
    /// `refused`'s reply.
    #[allow(clippy::too_many_arguments)] // a subscribe's parts, as `Hub::subscribe` takes them
    pub(crate) fn subscribe(
        &self,
        session: &Session,
        who: &Identity,
        key: &str,
        pattern: &str,
        opts: SubscribeOptions,
        ack: Ack,
        refused: Refused,
    ) -> Result<(), HubError> {
        let pending = self.hub.begin_subscribe(session, who, key, pattern, opts)?;
        let job = SubscribeJob {
            pending,
            ack,
            refused,
        };
        if let Err(mpsc::error::SendError(job)) = self.subscribes.send(job) {
            self.hub.cancel_subscribe(job.pending);
            return Err(HubError::ShuttingDown);
        }
        Ok(())
    }

    /// [`RedisEngine::subscribe`], awaiting the outcome (for drivers whose request waits,
    /// such as the HTTP feeds): the replay and live messages are queued in the session's
    /// outbox when this returns `Ok`.
    pub(crate) async fn subscribe_wait(
        &self,
        session: &Session,
        who: &Identity,
        key: &str,
        pattern: &str,
        opts: SubscribeOptions,
    ) -> Result<Subscribed, HubError> {
        let (tx, rx) = oneshot::channel::<Result<Subscribed, HubError>>();
        let tx = Arc::new(std::sync::Mutex::new(Some(tx)));
        let on_refused = tx.clone();
        let ack: Ack = Box::new(move |info| {
            if let Some(tx) = tx.lock().ok().and_then(|mut t| t.take()) {
                let _ = tx.send(Ok(info.clone()));
            }
            None
        });
        let refused: Refused = Box::new(move |e| {
            if let Some(tx) = on_refused.lock().ok().and_then(|mut t| t.take()) {
                let _ = tx.send(Err(e.clone()));
            }
            None
        });
        self.subscribe(session, who, key, pattern, opts, ack, refused)?;
        match tokio::time::timeout(self.timeout * 2, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(HubError::ShuttingDown),
            Err(_) => Err(unavailable("no answer in time")),
        }
    }

    async fn complete(self: Arc<Self>, job: SubscribeJob) {
        let mut pages = Vec::new();
        let mut failed = None;
        for want in job.pending.history_wanted() {
            let (since, limit) = match want.since {
                Some(since) => (since, MAX_READ),
                None => (0, 0),
            };
            match self.read(&want.topic, since, limit, want.create).await {
                Ok(page) => pages.push(page),
                Err(e) => {
                    EngineMetrics::add(&self.metrics.read_errors, 1);
                    failed = Some(e);
                    break;
                }
            }
        }
        let outbox = self.hub.outbox_of(&job.pending);
        let result = match failed {
            Some(e) => {
                self.hub.cancel_subscribe(job.pending);
                Err(e)
            }
            None => self
                .hub
                .complete_subscribe_detached(job.pending, &pages, job.ack),
        };
        if let (Err(e), Some(outbox)) = (result, outbox) {
            if !matches!(e, HubError::NotSubscribed(_)) {
                if let Some(reply) = (job.refused)(&e) {
                    outbox.push_reply(reply);
                }
            }
        }
    }

    // --- pub/sub ---------------------------------------------------------------------------

    /// Follows the patterns local clients want, delivers what Redis publishes in offset
    /// order per topic, and completes subscribes once their pattern is followed. Reconnects
    /// with backoff (100 ms doubling to 5 s); after a reconnect it resubscribes everything
    /// and fills every followed topic's hole from its stream.
    async fn pubsub_loop(
        self: Arc<Self>,
        client: redis::Client,
        mut jobs: mpsc::UnboundedReceiver<SubscribeJob>,
        interest: Arc<Notify>,
        shutdown: CancellationToken,
    ) {
        let mut last: HashMap<Arc<str>, (Arc<str>, u64)> = HashMap::new();
        let mut backoff = Duration::from_millis(100);
        let mut events = Vec::new();
        let mut connected_before = false;
        loop {
            let connected = tokio::select! {
                c = tokio::time::timeout(self.timeout, client.get_async_pubsub()) => c,
                _ = shutdown.cancelled() => return,
            };
            let (mut sink, mut stream) = match connected {
                Ok(Ok(p)) => p.split(),
                other => {
                    let why = match other {
                        Ok(Err(e)) => e.to_string(),
                        _ => "no answer in time".into(),
                    };
                    tracing::warn!(error = %why, "redis engine: pub/sub connect failed; retrying in {backoff:?}");
                    self.refuse_waiting(&mut jobs, &why);
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.cancelled() => return,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            // Everything local clients want, from scratch (events before now are in it).
            self.hub.drain_interest(&mut events);
            events.clear();
            let mut followed = HashSet::new();
            let mut ok = true;
            for pattern in self.hub.interests() {
                if follow(&self, &mut sink, &mut followed, &pattern)
                    .await
                    .is_err()
                {
                    ok = false;
                    break;
                }
            }
            if !ok {
                continue;
            }
            backoff = Duration::from_millis(100);
            if std::mem::replace(&mut connected_before, true) {
                EngineMetrics::add(&self.metrics.pubsub_reconnects, 1);
            }
            self.pubsub_up.store(true, Ordering::Relaxed);
            tracing::info!(url = %self.url, "redis engine: pub/sub connected");
            // What was published while we were away.
            let tracked: Vec<Arc<str>> = last.keys().cloned().collect();
            for topic in tracked {
                self.fill(&mut last, &topic, u64::MAX).await;
            }
            loop {
                tokio::select! {
                    msg = stream.next() => {
                        let Some(msg) = msg else { break };
                        self.on_message(&mut last, &msg).await;
                    }
                    () = interest.notified() => {
                        if self.apply_interest(&mut sink, &mut followed, &mut last, &mut events).await.is_err() {
                            break;
                        }
                    }
                    job = jobs.recv() => {
                        let Some(job) = job else { return };
                        // The pattern is followed once the interest events up to its begin are.
                        if self.apply_interest(&mut sink, &mut followed, &mut last, &mut events).await.is_err() {
                            (job.refused)(&unavailable("pub/sub connection lost")).map(|r| {
                                self.hub.outbox_of(&job.pending).map(|o| o.push_reply(r))
                            });
                            break;
                        }
                        tokio::spawn(self.clone().complete(job));
                    }
                    _ = shutdown.cancelled() => return,
                }
            }
            self.pubsub_up.store(false, Ordering::Relaxed);
            tracing::warn!("redis engine: pub/sub connection lost; reconnecting");
        }
    }

    /// Refuses the subscribes that came while pub/sub is down (they would wait unbounded).
    fn refuse_waiting(&self, jobs: &mut mpsc::UnboundedReceiver<SubscribeJob>, why: &str) {
        self.pubsub_up.store(false, Ordering::Relaxed);
        while let Ok(job) = jobs.try_recv() {
            let outbox = self.hub.outbox_of(&job.pending);
            self.hub.cancel_subscribe(job.pending);
            if let (Some(reply), Some(outbox)) = ((job.refused)(&unavailable(why)), outbox) {
                outbox.push_reply(reply);
            }
        }
    }

    async fn apply_interest(
        &self,
        sink: &mut PubSubSink,
        followed: &mut HashSet<String>,
        last: &mut HashMap<Arc<str>, (Arc<str>, u64)>,
        events: &mut Vec<InterestEvent>,
    ) -> Result<(), ()> {
        self.hub.drain_interest(events);
        for ev in events.drain(..) {
            let result = match ev {
                InterestEvent::Gained(p) => follow(self, sink, followed, &p).await,
                InterestEvent::Lost(p) => {
                    // Not followed any more, its topics' positions go stale: were they kept,
                    // the first message after interest comes back would look like a hole, and
                    // the fill would deliver again what a resume replayed (or old messages to
                    // a fresh subscriber). A topic another pattern still covers is checked
                    // again from its next message.
                    match tidings_core::Pattern::parse(&p) {
                        // An exact topic (the common case) is one lookup, not a scan of
                        // every tracked topic per unsubscribe.
                        Ok(pattern) if pattern.is_exact() => {
                            last.remove(p.as_ref());
                        }
                        Ok(pattern) => last.retain(|topic, _| !pattern.matches(topic)),
                        Err(_) => last.clear(),
                    }
                    let (exact, channel) = self.channel_of(&p);
                    if !followed.remove(&channel) {
                        continue;
                    }
                    let r = if exact {
                        sink.unsubscribe(&channel).await
                    } else {
                        sink.punsubscribe(&channel).await
                    };
                    r.map_err(|_| ())
                }
                InterestEvent::Resync => {
                    let want: HashSet<String> = self
                        .hub
                        .interests()
                        .iter()
                        .map(|p| self.channel_of(p).1)
                        .collect();
                    let mut r = Ok(());
                    for p in self.hub.interests() {
                        r = r.and(follow(self, sink, followed, &p).await);
                    }
                    let gone: Vec<String> = followed.difference(&want).cloned().collect();
                    for channel in gone {
                        followed.remove(&channel);
                        let _ = sink.unsubscribe(&channel).await;
                        let _ = sink.punsubscribe(&channel).await;
                    }
                    r
                }
                _ => Ok(()),
            };
            result?;
        }
        Ok(())
    }

    async fn on_message(&self, last: &mut HashMap<Arc<str>, (Arc<str>, u64)>, msg: &redis::Msg) {
        let channel = msg.get_channel_name();
        let Some(topic) = channel
            .strip_prefix(self.prefix.as_str())
            .and_then(|t| t.strip_prefix(":m:"))
        else {
            return;
        };
        EngineMetrics::add(&self.metrics.pubsub_messages, 1);
        let topic: Arc<str> = topic.into();
        let payload = Bytes::copy_from_slice(msg.get_payload_bytes());
        let (offset, epoch, body) = match codec::split_published(&payload) {
            Ok(parts) => parts,
            Err(e) => return tracing::warn!(%topic, error = %e, "redis engine: skipped"),
        };
        if let Some((seen_epoch, seen)) = last.get(&topic) {
            if *seen_epoch != epoch {
                let (since, epoch) = (*seen, Some(epoch.clone()));
                self.hub
                    .deliver_gap(&topic, since, epoch, GapReason::EpochChanged);
            } else {
                if offset <= *seen {
                    return; // already delivered (a fill read it from the stream)
                }
                if offset > seen + 1 {
                    // Pub/sub is at-most-once: take the hole from the stream.
                    self.fill(last, &topic, offset - 1).await;
                    if last
                        .get(&topic)
                        .is_some_and(|(e, s)| *e == epoch && *s >= offset)
                    {
                        return;
                    }
                }
            }
        }
        match codec::decode_body(&topic, offset, &epoch, &body) {
            Ok(m) => {
                self.hub.deliver(Arc::new(m));
            }
            Err(e) => tracing::warn!(%topic, error = %e, "redis engine: skipped"),
        }
        if last.len() >= MAX_TRACKED && !last.contains_key(&topic) {
            last.clear();
        }
        last.insert(topic, (epoch, offset));
    }

    /// Delivers `topic`'s messages after the last one delivered, up to `until`, from its
    /// stream. A hole the stream no longer holds stays a hole: subscribers see it in the
    /// offsets (and a resume from it is refused plainly).
    async fn fill(
        &self,
        last: &mut HashMap<Arc<str>, (Arc<str>, u64)>,
        topic: &Arc<str>,
        until: u64,
    ) {
        let Some((epoch, seen)) = last.get(topic).cloned() else {
            return;
        };
        let limit = until.saturating_sub(seen).min(MAX_READ as u64) as usize;
        if limit == 0 {
            return;
        }
        // A connection that broke fails its next command and reconnects (after a Redis
        // restart that is this read): one more try.
        let page = match self.read(topic, seen, limit, false).await {
            Err(_) => self.read(topic, seen, limit, false).await,
            ok => ok,
        };
        let page = match page {
            Ok(page) => page,
            Err(e) => {
                EngineMetrics::add(&self.metrics.read_errors, 1);
                return tracing::warn!(%topic, error = %e, "redis engine: hole not filled");
            }
        };
        if page.epoch.as_ref() != Some(&epoch) {
            // The topic's history is gone (Redis restarted empty, or the topic expired):
            // local subscribers are told in their protocol's terms instead of seeing offsets
            // start again silently. Forgotten, so its next message is delivered as it is.
            self.hub
                .deliver_gap(topic, seen, page.epoch, GapReason::EpochChanged);
            last.remove(topic);
            return;
        }
        let mut newest = seen;
        for m in page
            .messages
            .into_iter()
            .filter(|m| m.offset > seen && m.offset <= until)
        {
            newest = m.offset;
            self.hub.deliver(m);
        }
        if newest > seen {
            EngineMetrics::add(&self.metrics.hole_fills, 1);
            EngineMetrics::add(&self.metrics.filled_messages, newest - seen);
            tracing::debug!(%topic, from = seen + 1, to = newest, "redis engine: filled a hole");
        }
        last.insert(topic.clone(), (epoch, newest));
    }

    // --- health ----------------------------------------------------------------------------

    /// The engine's counters (`/metrics`).
    pub(crate) fn metrics(&self) -> &EngineMetrics {
        &self.metrics
    }

    /// Whether Redis answers a PING, this node's pub/sub connection is up and a message it
    /// published came back through pub/sub recently.
    pub(crate) async fn health(&self) -> Result<(), String> {
        let mut conn = self.conn.clone();
        let cmd = redis::cmd("PING");
        let ping = cmd.query_async::<String>(&mut conn);
        match tokio::time::timeout(self.timeout, ping).await {
            Err(_) => return Err("redis does not answer".into()),
            Ok(Err(e)) => return Err(format!("redis: {e}")),
            Ok(Ok(_)) => {}
        }
        if !self.pubsub_up.load(Ordering::Relaxed) {
            return Err("redis pub/sub is reconnecting".into());
        }
        self.round_trip.check(crate::clock::now_ms())
    }
}

async fn follow(
    engine: &RedisEngine,
    sink: &mut PubSubSink,
    followed: &mut HashSet<String>,
    pattern: &str,
) -> Result<(), ()> {
    let (exact, channel) = engine.channel_of(pattern);
    if followed.contains(&channel) {
        return Ok(());
    }
    let r = if exact {
        sink.subscribe(&channel).await
    } else {
        sink.psubscribe(&channel).await
    };
    match r {
        Ok(()) => {
            followed.insert(channel);
            Ok(())
        }
        Err(e) => {
            tracing::warn!(%pattern, error = %e, "redis engine: subscribe failed");
            Err(())
        }
    }
}

pub(super) fn string_of(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(n) => Some(n.to_string()),
        _ => None,
    }
}

pub(super) fn int_of(v: &Value) -> Option<u64> {
    match v {
        Value::Int(n) => u64::try_from(*n).ok(),
        other => string_of(other).and_then(|s| s.parse().ok()),
    }
}

/// A stream entry `[ "OFFSET-0", ["b", BODY] ]` as a message.
fn entry_of(
    topic: &Arc<str>,
    epoch: &Arc<str>,
    entry: &Value,
) -> Result<Message, codec::CodecError> {
    let bad = || codec::CodecError::new("bad stream entry");
    let Value::Array(parts) = entry else {
        return Err(bad());
    };
    let id = parts.first().and_then(string_of).ok_or_else(bad)?;
    let offset: u64 = id
        .split('-')
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)?;
    let Some(Value::Array(fields)) = parts.get(1) else {
        return Err(bad());
    };
    let body = match fields.get(1) {
        Some(Value::BulkString(b)) => Bytes::copy_from_slice(b),
        _ => return Err(bad()),
    };
    codec::decode_body(topic, offset, epoch, &body)
}

/// How long a topic's keys live after a publish: its history's age limit (a day when 0).
fn ttl_of(history: &tidings_core::HistoryLimits) -> u64 {
    match history.max_age_ms {
        0 => 86_400_000,
        ms => ms.max(1000),
    }
}
