//! STOMP queues across nodes: the asynchronous half of the Redis queues (the synchronous
//! half, under the hub's lock, is `queue_store.rs`; the scripts and keys `queue_scripts.rs`).
//!
//! One Redis stream per queue with one consumer group; every node is a consumer of it (named
//! after the node), and hands what it takes to its local consumers:
//!
//! * **publish**: a script checks the bounds (`hub.queues`: ready messages and bytes per
//!   queue, bytes of all queues, number of queues) and `XADD`s with id `SEQ-0`, all or none
//!   for a transaction's SENDs; the publisher's RECEIPT comes from `done`, after Redis.
//! * **fetch** (`XAUTOCLAIM`, then `XREADGROUP`): at most the credit of the node's local
//!   consumers (their prefetch minus what they hold), when woken by a publish (pub/sub
//!   channel `P:qw:NAME`), by local credit coming back, and every tick.
//! * **ACK**: `XACK` + `XDEL`. **NACK** (and a consumer gone with messages unacknowledged):
//!   another local consumer with credit, else handed back (`XCLAIM ... IDLE huge`), so the
//!   next claim of any node takes it, marked redelivered.
//! * **a dead node**: its entries stay pending; once idle longer than
//!   `engine.queue_claim_ms` any node claims them. A live node renews the lease of what it
//!   holds (`XCLAIM ... JUSTID`) every third of that, so only a dead (or stalled) node's
//!   messages are taken.

mod admin;

use super::codec;
use super::connection::{self, unavailable};
use super::queue_scripts;
use super::queue_store::Shared;
use super::redis::{int_of, string_of, Done};
use crate::config::EngineConfig;
use bytes::Bytes;
use futures::StreamExt;
use redis::aio::ConnectionManager;
use redis::{Script, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tidings_core::{Hub, HubError, Identity, Message, PayloadKind, QueueLimits};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Queue publishes waiting for Redis per node before new ones are refused as unavailable.
const PUBLISH_QUEUE: usize = 65_536;
/// Publishes (each possibly a transaction's group) sent in one pipeline.
const PUBLISH_BATCH: usize = 256;
/// Sequences per ACK / hand-back / lease command (a Lua call's arguments stay small).
const CHUNK: usize = 1000;
/// The idle time a handed-back message is given: older than any claim timeout, so the next
/// claim of any node takes it.
const HANDED_BACK_IDLE_MS: u64 = 1_000_000_000;
/// The epoch of queue messages (STOMP does not show it; a queue has no history to resume).
const EPOCH: &str = "redis";

/// One queue message to publish: its queue, encoded body and cost (`Message::cost`).
struct Outgoing {
    queue: Arc<str>,
    body: Vec<u8>,
    cost: usize,
    now: u64,
}

struct PublishJob {
    messages: Vec<Outgoing>,
    done: Done<Vec<u64>>,
}

/// The node's handle on the Redis queues. Cheap to share (`Arc`).
pub(crate) struct RedisQueues {
    hub: Arc<Hub>,
    shared: Arc<Shared>,
    conn: ConnectionManager,
    prefix: String,
    /// This node's consumer name in every queue's group: unique per process start, so a
    /// restarted node does not inherit (and so never renews) what the dead one held.
    node: String,
    timeout: Duration,
    claim_ms: u64,
    limits: QueueLimits,
    publishes: mpsc::Sender<PublishJob>,
    publish_script: Script,
    fetch_script: Script,
    ack_script: Script,
    reclaim_script: Script,
}

impl std::fmt::Debug for RedisQueues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisQueues")
            .field("node", &self.node)
            .finish()
    }
}

impl RedisQueues {
    /// Starts the publisher, the worker (fetch, ack, hand back, renew) and the wake-up
    /// listener; they end on `shutdown`.
    pub(crate) fn start(
        hub: Arc<Hub>,
        shared: Arc<Shared>,
        cfg: &EngineConfig,
        limits: QueueLimits,
        node: &crate::node_id::NodeId,
        shutdown: CancellationToken,
    ) -> Result<Arc<RedisQueues>, String> {
        let (client, conn) = super::connection::connect(cfg)?;
        let timeout = Duration::from_millis(cfg.timeout_ms);
        let (publishes, publish_rx) = mpsc::channel(PUBLISH_QUEUE);
        let queues = Arc::new(RedisQueues {
            hub,
            shared,
            conn,
            prefix: cfg.prefix.clone(),
            node: node.to_string(),
            timeout,
            claim_ms: cfg.queue_claim_ms,
            limits,
            publishes,
            publish_script: Script::new(queue_scripts::PUBLISH),
            fetch_script: Script::new(&queue_scripts::fetch()),
            ack_script: Script::new(&queue_scripts::ack()),
            reclaim_script: Script::new(queue_scripts::RECLAIM),
        });
        tokio::spawn(queues.clone().publisher(publish_rx, shutdown.clone()));
        tokio::spawn(queues.clone().worker(shutdown.clone()));
        tokio::spawn(queues.clone().listener(client, shutdown));
        Ok(queues)
    }

    fn key(&self, kind: &str, queue: &str) -> String {
        format!("{}:{kind}:{queue}", self.prefix)
    }

    /// The stream, hash, total and names keys of `queue`, in the scripts' order.
    fn keys_of(&self, queue: &str) -> [String; 4] {
        [
            self.key("q", queue),
            self.key("qm", queue),
            format!("{}:qtotal", self.prefix),
            format!("{}:queues", self.prefix),
        ]
    }

    // --- publish ---------------------------------------------------------------------------

    /// Checks `who` may publish to `queue`, then stores the message in Redis for exactly one
    /// consumer of the cluster; `done` gets its sequence number once Redis answered (or why
    /// not: the queue is full, Redis is unavailable).
    #[allow(clippy::too_many_arguments)] // a publish's parts, as `Hub::publish_queue` takes them
    pub(crate) fn publish(
        &self,
        who: &Identity,
        queue: &str,
        kind: PayloadKind,
        payload: Bytes,
        headers: Vec<(Arc<str>, Arc<str>)>,
        now: u64,
        done: Done<u64>,
    ) {
        let one = vec![(queue.to_owned(), kind, payload, headers)];
        let done: Done<Vec<u64>> = Box::new(move |r| {
            done(r.and_then(|seqs| {
                seqs.first()
                    .copied()
                    .ok_or_else(|| unavailable("no sequence"))
            }))
        });
        self.publish_all(who, one, now, done);
    }

    /// Publishes `messages` to their queues all or none (one script: the bounds are checked
    /// for all before any is stored), in order with this node's other queue publishes.
    #[allow(clippy::type_complexity)] // a publish's parts, as `publish` takes them
    pub(crate) fn publish_all(
        &self,
        who: &Identity,
        messages: Vec<(String, PayloadKind, Bytes, Vec<(Arc<str>, Arc<str>)>)>,
        now: u64,
        done: Done<Vec<u64>>,
    ) {
        let mut out = Vec::with_capacity(messages.len());
        for (queue, kind, payload, headers) in messages {
            if let Err(e) = self.hub.check_publish(who, &queue, now) {
                return done(Err(e));
            }
            out.push(Outgoing {
                cost: tidings_core::message::cost(&queue, &payload, &headers),
                body: codec::encode_body(kind, now, &headers, &payload),
                queue: queue.into(),
                now,
            });
        }
        let job = PublishJob {
            messages: out,
            done,
        };
        if let Err(mpsc::error::TrySendError::Full(job) | mpsc::error::TrySendError::Closed(job)) =
            self.publishes.try_send(job)
        {
            (job.done)(Err(HubError::EngineUnavailable(
                "too many queue publishes waiting for redis".into(),
            )));
        }
    }

    async fn publisher(
        self: Arc<Self>,
        mut rx: mpsc::Receiver<PublishJob>,
        shutdown: CancellationToken,
    ) {
        let mut jobs = Vec::with_capacity(PUBLISH_BATCH);
        loop {
            let n = tokio::select! {
                n = rx.recv_many(&mut jobs, PUBLISH_BATCH) => n,
                _ = shutdown.cancelled() => 0,
            };
            if n == 0 {
                return;
            }
            let mut pipe = redis::pipe();
            for job in &jobs {
                pipe.invoke_script(&self.publish_invocation(&job.messages));
            }
            match connection::run_script_pipeline(
                &self.conn,
                &pipe,
                &self.publish_script,
                self.timeout,
            )
            .await
            {
                Ok(values) => {
                    for (job, value) in jobs.drain(..).zip(values) {
                        (job.done)(self.published(value));
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "redis engine: queue publish failed");
                    for job in jobs.drain(..) {
                        (job.done)(Err(e.clone()));
                    }
                }
            }
        }
    }

    fn publish_invocation(&self, messages: &[Outgoing]) -> redis::ScriptInvocation<'_> {
        let mut inv = self.publish_script.prepare_invoke();
        inv.key(format!("{}:qtotal", self.prefix))
            .key(format!("{}:queues", self.prefix));
        for m in messages {
            inv.key(self.key("q", &m.queue))
                .key(self.key("qm", &m.queue));
        }
        inv.arg(self.limits.max_messages)
            .arg(self.limits.max_bytes)
            .arg(self.limits.max_total_bytes)
            .arg(self.limits.max_queues)
            .arg(&self.prefix);
        for m in messages {
            inv.arg(&*m.queue).arg(m.cost).arg(&m.body).arg(m.now);
        }
        inv
    }

    /// A publish script's answer: the sequences, or the bound it hit.
    fn published(&self, value: Value) -> Result<Vec<u64>, HubError> {
        let Value::Array(parts) = value else {
            return Err(unavailable(format!(
                "unexpected reply to a queue publish: {value:?}"
            )));
        };
        let word = parts.first().and_then(string_of).unwrap_or_default();
        let limits = self.limits;
        match word.as_str() {
            "ok" => Ok(parts[1..].iter().filter_map(int_of).collect()),
            "full" => Err(HubError::QueueFull {
                queue: parts.get(1).and_then(string_of).unwrap_or_default(),
                max_messages: limits.max_messages,
                max_bytes: limits.max_bytes,
            }),
            "total" => Err(HubError::QueuesFull(limits.max_total_bytes)),
            "queues" => Err(HubError::TooManyQueues(limits.max_queues)),
            other => Err(unavailable(format!(
                "unexpected reply to a queue publish: {other}"
            ))),
        }
    }

    /// One invocation of `script` (it loads itself on `NOSCRIPT`), within the timeout.
    async fn call(&self, inv: redis::ScriptInvocation<'_>) -> Result<Value, HubError> {
        let mut conn = self.conn.clone();
        match tokio::time::timeout(self.timeout, inv.invoke_async(&mut conn)).await {
            Err(_) => Err(unavailable("no answer in time")),
            Ok(Err(e)) => Err(unavailable(e)),
            Ok(Ok(v)) => Ok(v),
        }
    }

    // --- the worker: acks, hand-backs, fetches, leases --------------------------------------

    /// Carries out what the local store asked for, fetches what local consumers have credit
    /// for, and renews the lease of what this node holds.
    async fn worker(self: Arc<Self>, shutdown: CancellationToken) {
        // Often enough that a dead node's messages move soon after the claim timeout, and a
        // lost wake-up costs at most this much latency.
        let tick = Duration::from_millis((self.claim_ms / 4).clamp(25, 1000));
        let renew_every = Duration::from_millis((self.claim_ms / 3).max(1));
        let mut next_tick = Instant::now() + tick;
        let mut next_renew = Instant::now() + renew_every;
        // Where each local queue's claim scan goes on (`XAUTOCLAIM`'s cursor).
        let mut cursors: HashMap<Arc<str>, String> = HashMap::new();
        loop {
            let ticked = tokio::select! {
                () = self.shared.wake.notified() => false,
                () = tokio::time::sleep_until(next_tick) => true,
                _ = shutdown.cancelled() => {
                    // The acks and hand-backs already asked for, so others need not wait for
                    // the claim timeout.
                    self.settle_work(self.shared.take_work(false)).await;
                    return;
                }
            };
            if ticked {
                next_tick = Instant::now() + tick;
            }
            let mut work = self.shared.take_work(ticked);
            let fetch = std::mem::take(&mut work.fetch);
            self.settle_work(work).await;
            for (queue, restart) in fetch {
                let credit = self.shared.credit(&queue);
                let cursor = cursors.entry(queue.clone()).or_insert_with(|| "0-0".into());
                if restart {
                    *cursor = "0-0".into();
                }
                if credit == 0 {
                    continue;
                }
                match self.fetch(&queue, credit, cursor).await {
                    Ok(messages) if !messages.is_empty() => self.shared.offer(&queue, messages),
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(%queue, error = %e, "redis engine: queue fetch failed")
                    }
                }
            }
            // Only queues consumed here keep a cursor; checked on the tick, not on every wake
            // (each check takes the hub's lock once per queue).
            if ticked {
                cursors.retain(|q, _| self.hub.queue_stats(q).is_some());
            }
            if Instant::now() >= next_renew {
                next_renew = Instant::now() + renew_every;
                self.renew().await;
            }
        }
    }

    /// Acknowledges and hands back what the store asked for; what fails is retried later
    /// (an ACK lost for good would only mean a redelivery after the claim timeout).
    async fn settle_work(&self, work: super::queue_store::Work) {
        for (queue, seqs) in work.acks {
            for chunk in seqs.chunks(CHUNK) {
                let mut inv = self.ack_script.prepare_invoke();
                for k in self.keys_of(&queue) {
                    inv.key(k);
                }
                inv.arg(&*queue);
                for s in chunk {
                    inv.arg(*s);
                }
                if let Err(e) = self.call(inv).await {
                    tracing::warn!(%queue, error = %e, "redis engine: queue ack failed; retrying");
                    self.shared.retry(&queue, chunk.to_vec(), Vec::new());
                }
            }
        }
        for (queue, seqs) in work.handbacks {
            let channel = self.key("qw", &queue);
            for chunk in seqs.chunks(CHUNK) {
                if let Err(e) = self
                    .reclaim(&queue, chunk, HANDED_BACK_IDLE_MS, &channel)
                    .await
                {
                    tracing::warn!(%queue, error = %e, "redis engine: queue hand-back failed; retrying");
                    self.shared.retry(&queue, Vec::new(), chunk.to_vec());
                }
            }
        }
    }

    async fn reclaim(
        &self,
        queue: &str,
        seqs: &[u64],
        idle_ms: u64,
        channel: &str,
    ) -> Result<Value, HubError> {
        let mut inv = self.reclaim_script.prepare_invoke();
        inv.key(self.key("q", queue))
            .arg(&self.node)
            .arg(idle_ms)
            .arg(channel);
        for s in seqs {
            inv.arg(*s);
        }
        self.call(inv).await
    }

    /// Renews the lease of every message this node holds (idle time back to 0).
    async fn renew(&self) {
        for (queue, seqs) in self.shared.held() {
            for chunk in seqs.chunks(CHUNK) {
                if let Err(e) = self.reclaim(&queue, chunk, 0, "").await {
                    tracing::warn!(%queue, error = %e, "redis engine: queue lease renewal failed");
                }
            }
        }
    }

    /// At most `credit` messages of `queue` for this node: claimed ones (redelivered) first.
    async fn fetch(
        &self,
        queue: &Arc<str>,
        credit: usize,
        cursor: &mut String,
    ) -> Result<Vec<Arc<Message>>, HubError> {
        let mut inv = self.fetch_script.prepare_invoke();
        for k in self.keys_of(queue) {
            inv.key(k);
        }
        let ttl_ms = self.limits.message_ttl_secs.saturating_mul(1000);
        inv.arg(&**queue)
            .arg(credit)
            .arg(&self.node)
            .arg(self.claim_ms)
            .arg(&*cursor)
            .arg(ttl_ms)
            .arg(crate::clock::now_ms());
        let Value::Array(parts) = self.call(inv).await? else {
            return Err(unavailable("unexpected reply to a queue fetch"));
        };
        *cursor = parts
            .first()
            .and_then(string_of)
            .unwrap_or_else(|| "0-0".into());
        let claimed = parts.get(1).and_then(int_of).unwrap_or(0) as usize;
        let epoch: Arc<str> = EPOCH.into();
        let mut out = Vec::new();
        for (i, pair) in parts[2.min(parts.len())..].chunks(2).enumerate() {
            let (Some(id), Some(Value::BulkString(body))) =
                (pair.first().and_then(string_of), pair.get(1))
            else {
                continue;
            };
            let Some(seq) = id.split('-').next().and_then(|s| s.parse().ok()) else {
                continue;
            };
            match codec::decode_body(queue, seq, &epoch, &Bytes::copy_from_slice(body)) {
                Ok(mut m) => {
                    m.redelivered = i < claimed;
                    out.push(Arc::new(m));
                }
                Err(e) => tracing::warn!(%queue, error = %e, "redis engine: skipped"),
            }
        }
        Ok(out)
    }

    // --- wake-ups ----------------------------------------------------------------------------

    /// Listens to every queue's wake-up channel (`P:qw:*`): a queue consumed here fetches at
    /// once instead of at the next tick. Reconnects with backoff; the tick covers the gap.
    async fn listener(self: Arc<Self>, client: redis::Client, shutdown: CancellationToken) {
        let pattern = format!("{}:qw:*", self.prefix);
        let mut backoff = Duration::from_millis(100);
        loop {
            let connected = tokio::select! {
                c = tokio::time::timeout(self.timeout, client.get_async_pubsub()) => c,
                _ = shutdown.cancelled() => return,
            };
            if let Ok(Ok(mut pubsub)) = connected {
                if pubsub.psubscribe(&pattern).await.is_ok() {
                    backoff = Duration::from_millis(100);
                    let mut stream = pubsub.on_message();
                    loop {
                        let msg = tokio::select! {
                            m = stream.next() => m,
                            _ = shutdown.cancelled() => return,
                        };
                        let Some(msg) = msg else { break };
                        let channel = msg.get_channel_name();
                        let Some(queue) = channel
                            .strip_prefix(self.prefix.as_str())
                            .and_then(|c| c.strip_prefix(":qw:"))
                        else {
                            continue;
                        };
                        self.shared.notify(queue, msg.get_payload_bytes() == b"r");
                    }
                }
            }
            tracing::warn!("redis engine: queue wake-up channel lost; reconnecting in {backoff:?}");
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = shutdown.cancelled() => return,
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }
}
