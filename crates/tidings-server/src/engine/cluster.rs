//! The node's cluster chores on Redis, beside the message path of `redis.rs`: writing this
//! node's presence members, keeping it alive, removing dead nodes' members, mirroring the
//! other nodes' members, and the pub/sub health round trip.
//!
//! Keys (`P` is `[engine] prefix`, `NODE` the node's id, see `crate::node_id`):
//! * `P:p:NAME`: hash, field = member's session id, value = its `Record` (JSON);
//! * `P:pn:NODE`: set of `"ID NAME"`, the node's members (so a dead node's can be found);
//! * `P:pl:NODE`: the node's liveness, `PX engine.presence_ttl_ms`, refreshed every third;
//! * `P:pnodes`: set of nodes that have members;
//! * channel `P:pe`: `J` or `L` followed by a `Record`; channel `P:h:NODE`: health pings.
//!
//! Three tasks: the writer (joins/leaves pipelined, liveness, the sweep of dead nodes), the
//! listener (its own pub/sub connection: events and health pings, a snapshot of every other
//! node's members after each (re)connect) and the health pinger.

use super::health::RoundTrip;
use super::metrics::EngineMetrics;
use super::presence::{event_of, Mirror, PresenceShared, Record, Write, MAX_REMOTE_MEMBERS};
use crate::clock::now_ms;
use crate::config::EngineConfig;
use futures::StreamExt;
use redis::aio::ConnectionManager;
use redis::Script;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tidings_core::{Hub, PresenceEvent, SessionId};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Joins and leaves written in one pipeline.
const WRITE_BATCH: usize = 256;
/// Members of a dead node removed per sweep call (the rest on the next call), so one call
/// never holds Redis long.
const SWEEP_BATCH: usize = 1000;

/// Removes the members of nodes whose liveness key is gone (ARGV[5] = '1': of this node,
/// on shutdown) and publishes their leaves. Returns how many left.
const SWEEP_LUA: &str = r"
local left = 0
for _, node in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local mine = node == ARGV[4]
  if (ARGV[5] == '1' and mine) or (ARGV[5] ~= '1' and not mine
      and redis.call('EXISTS', ARGV[1] .. ':pl:' .. node) == 0) then
    local set = ARGV[1] .. ':pn:' .. node
    for _, e in ipairs(redis.call('SPOP', set, ARGV[3])) do
      local sp = string.find(e, ' ', 1, true)
      if sp then
        local key = ARGV[1] .. ':p:' .. string.sub(e, sp + 1)
        local id = string.sub(e, 1, sp - 1)
        local rec = redis.call('HGET', key, id)
        if rec then
          redis.call('HDEL', key, id)
          redis.call('PUBLISH', ARGV[2], 'L' .. rec)
          left = left + 1
        end
      end
    end
    if redis.call('SCARD', set) == 0 then redis.call('SREM', KEYS[1], node) end
  end
end
return left
";

/// Every other node's members (their records), at most ARGV[3].
const SNAPSHOT_LUA: &str = r"
local out = {}
for _, node in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if node ~= ARGV[2] then
    for _, e in ipairs(redis.call('SMEMBERS', ARGV[1] .. ':pn:' .. node)) do
      if #out >= tonumber(ARGV[3]) then return out end
      local sp = string.find(e, ' ', 1, true)
      if sp then
        local rec = redis.call('HGET', ARGV[1] .. ':p:' .. string.sub(e, sp + 1), string.sub(e, 1, sp - 1))
        if rec then out[#out + 1] = rec end
      end
    end
  end
end
return out
";

struct Cluster {
    hub: Arc<Hub>,
    shared: Arc<PresenceShared>,
    metrics: Arc<EngineMetrics>,
    conn: ConnectionManager,
    prefix: String,
    ttl: Duration,
    timeout: Duration,
    round_trip: Arc<RoundTrip>,
    sweep: Script,
    snapshot: Script,
}

/// What the cluster tasks are started with, besides the hub and the presence store.
pub(crate) struct Chores {
    pub(crate) writes: mpsc::Receiver<Write>,
    pub(crate) round_trip: Arc<RoundTrip>,
    pub(crate) shutdown: CancellationToken,
    /// The server's task tracker: shutdown waits for the writer's goodbye.
    pub(crate) tasks: TaskTracker,
}

/// Starts the three tasks; they end on `shutdown` (the writer first removes this node's
/// members, so other nodes see them leave at once rather than after the TTL).
pub(crate) fn start(
    hub: Arc<Hub>,
    shared: Arc<PresenceShared>,
    cfg: &EngineConfig,
    chores: Chores,
) -> Result<(), String> {
    let Chores {
        writes,
        round_trip,
        shutdown,
        tasks,
    } = chores;
    let timeout = Duration::from_millis(cfg.timeout_ms);
    // A command connection of its own: presence writes never wait behind publishes.
    let (client, conn) = super::connection::connect(cfg)?;
    let cluster = Arc::new(Cluster {
        hub,
        metrics: shared.metrics.clone(),
        shared,
        conn,
        prefix: cfg.prefix.clone(),
        ttl: Duration::from_millis(cfg.presence_ttl_ms),
        timeout,
        round_trip,
        sweep: Script::new(SWEEP_LUA),
        snapshot: Script::new(SNAPSHOT_LUA),
    });
    tasks.spawn(cluster.clone().writer(writes, shutdown.clone()));
    tokio::spawn(cluster.clone().listener(client, shutdown.clone()));
    tokio::spawn(cluster.pinger(shutdown));
    Ok(())
}

impl Cluster {
    fn node(&self) -> &str {
        self.shared.node.as_str()
    }

    fn key(&self, kind: &str, rest: &str) -> String {
        format!("{}:{kind}:{rest}", self.prefix)
    }

    fn nodes_key(&self) -> String {
        format!("{}:pnodes", self.prefix)
    }

    fn events_channel(&self) -> String {
        format!("{}:pe", self.prefix)
    }

    fn health_channel(&self) -> String {
        self.key("h", self.node())
    }

    async fn run<T: redis::FromRedisValue>(&self, pipe: &redis::Pipeline) -> Result<T, String> {
        let mut conn = self.conn.clone();
        match tokio::time::timeout(self.timeout, pipe.query_async::<T>(&mut conn)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("no answer in time".into()),
        }
    }

    // --- writer ----------------------------------------------------------------------------

    async fn writer(self: Arc<Self>, mut rx: mpsc::Receiver<Write>, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(self.ttl / 3);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut batch = Vec::with_capacity(WRITE_BATCH);
        loop {
            tokio::select! {
                n = rx.recv_many(&mut batch, WRITE_BATCH) => if n == 0 { return },
                _ = tick.tick() => self.sweep_dead().await,
                () = self.shared.wake.notified() => {}
                _ = shutdown.cancelled() => return self.leave_all().await,
            }
            // Liveness goes with every batch (and every tick), its old value telling whether
            // Redis still knew this node: if not, its members must be written again.
            let lost = match self.write(&batch).await {
                Ok(lost) => {
                    EngineMetrics::add(&self.metrics.presence_writes, batch.len() as u64);
                    lost
                }
                Err(e) => {
                    tracing::warn!(error = %e, "redis engine: presence write failed; resyncing when back");
                    EngineMetrics::add(&self.metrics.presence_write_errors, 1);
                    true
                }
            };
            batch.clear();
            if lost || self.shared.resync.load(Ordering::Relaxed) {
                self.shared.resync.store(true, Ordering::Relaxed);
                if let Err(e) = self.resync().await {
                    tracing::warn!(error = %e, "redis engine: presence resync failed; retrying");
                    EngineMetrics::add(&self.metrics.presence_write_errors, 1);
                }
            }
        }
    }

    /// Writes `batch` after refreshing liveness; true when the liveness key was missing.
    async fn write(&self, batch: &[Write]) -> Result<bool, String> {
        let node = self.node();
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(self.key("pl", node))
            .arg(1)
            .arg("PX")
            .arg(self.ttl.as_millis() as u64)
            .arg("GET");
        pipe.cmd("SADD").arg(self.nodes_key()).arg(node).ignore();
        for w in batch {
            let (name, m, joined) = match w {
                Write::Join(name, m) => (name, m, true),
                Write::Leave(name, m) => (name, m, false),
            };
            self.push_write(
                &mut pipe,
                name,
                m.client,
                Some(&Record::of(node, name, m)),
                joined,
            );
        }
        let (old,): (Option<String>,) = self.run(&pipe).await?;
        Ok(old.is_none())
    }

    /// Adds one join (`HSET`, `SADD`, `PUBLISH J`) or leave (`HDEL`, `SREM`, `PUBLISH L`).
    fn push_write(
        &self,
        pipe: &mut redis::Pipeline,
        name: &str,
        client: SessionId,
        record: Option<&Record>,
        joined: bool,
    ) {
        let node = self.node();
        let entry = format!("{} {name}", client.0);
        let json = match record {
            Some(r) => r.to_json(),
            None => Record {
                n: node.to_owned(),
                c: client.0,
                t: name.to_owned(),
                u: None,
                i: None,
                p: String::new(),
            }
            .to_json(),
        };
        let (hash, set) = (self.key("p", name), self.key("pn", node));
        if joined {
            pipe.cmd("HSET")
                .arg(&hash)
                .arg(client.0)
                .arg(&json)
                .ignore();
            pipe.cmd("SADD").arg(&set).arg(&entry).ignore();
            pipe.cmd("PUBLISH")
                .arg(self.events_channel())
                .arg(format!("J{json}"))
                .ignore();
        } else {
            pipe.cmd("HDEL").arg(&hash).arg(client.0).ignore();
            pipe.cmd("SREM").arg(&set).arg(&entry).ignore();
            pipe.cmd("PUBLISH")
                .arg(self.events_channel())
                .arg(format!("L{json}"))
                .ignore();
        }
    }

    /// Makes Redis hold exactly this node's local members: after a full queue, a write
    /// failure, Redis losing its data, or this node having been taken for dead.
    async fn resync(&self) -> Result<(), String> {
        self.shared.resync.store(false, Ordering::Relaxed);
        EngineMetrics::add(&self.metrics.presence_resyncs, 1);
        let local: Vec<(Arc<str>, tidings_core::engine::Member)> = {
            let mirror = self.shared.mirror();
            mirror
                .local
                .iter()
                .flat_map(|(name, room)| room.values().map(|m| (name.clone(), m.clone())))
                .collect()
        };
        let mut read = redis::pipe();
        read.cmd("SMEMBERS").arg(self.key("pn", self.node()));
        let in_redis: (HashSet<String>,) = self.run(&read).await.inspect_err(|_| {
            self.shared.resync.store(true, Ordering::Relaxed);
        })?;
        let mut in_redis = in_redis.0;
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(self.key("pl", self.node()))
            .arg(1)
            .arg("PX")
            .arg(self.ttl.as_millis() as u64)
            .ignore();
        pipe.cmd("SADD")
            .arg(self.nodes_key())
            .arg(self.node())
            .ignore();
        for (name, m) in &local {
            if !in_redis.remove(&format!("{} {name}", m.client.0)) {
                let record = Record::of(self.node(), name, m);
                self.push_write(&mut pipe, name, m.client, Some(&record), true);
            }
        }
        for stale in &in_redis {
            // Entries are written here as "ID NAME"; anything else is not ours to announce.
            let Some((Ok(id), name)) = stale.split_once(' ').map(|(i, n)| (i.parse(), n)) else {
                continue;
            };
            self.push_write(&mut pipe, name, SessionId(id), None, false);
        }
        self.run::<()>(&pipe).await.inspect_err(|_| {
            self.shared.resync.store(true, Ordering::Relaxed);
        })
    }

    /// Removes dead nodes' members (another node may do it first: the script is atomic, so
    /// each leave is published once).
    async fn sweep_dead(&self) {
        match self.sweep_call(false).await {
            Ok(n) => EngineMetrics::add(&self.metrics.presence_expired, n),
            Err(e) => tracing::debug!(error = %e, "redis engine: presence sweep failed"),
        }
    }

    async fn sweep_call(&self, own: bool) -> Result<u64, String> {
        let mut inv = self.sweep.prepare_invoke();
        inv.key(self.nodes_key())
            .arg(&self.prefix)
            .arg(self.events_channel())
            .arg(SWEEP_BATCH)
            .arg(self.node())
            .arg(if own { "1" } else { "0" });
        let mut conn = self.conn.clone();
        match tokio::time::timeout(self.timeout, inv.invoke_async::<u64>(&mut conn)).await {
            Ok(Ok(n)) => Ok(n),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("no answer in time".into()),
        }
    }

    /// On shutdown: this node's members leave now, announced to every node.
    async fn leave_all(&self) {
        for _ in 0..MAX_REMOTE_MEMBERS / SWEEP_BATCH {
            match self.sweep_call(true).await {
                Ok(n) if n > 0 => continue,
                _ => break,
            }
        }
        let mut pipe = redis::pipe();
        pipe.cmd("DEL").arg(self.key("pl", self.node())).ignore();
        let _ = self.run::<()>(&pipe).await;
    }

    // --- listener --------------------------------------------------------------------------

    async fn listener(self: Arc<Self>, client: redis::Client, shutdown: CancellationToken) {
        let mut backoff = Duration::from_millis(100);
        let mut connected_before = false;
        loop {
            match self
                .listen_once(&client, &shutdown, &mut connected_before)
                .await
            {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "redis engine: cluster pub/sub lost; retrying in {backoff:?}");
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = shutdown.cancelled() => return,
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    /// One connection's life: subscribe, snapshot, then events until it drops (`Err`) or the
    /// node shuts down (`Ok`).
    async fn listen_once(
        &self,
        client: &redis::Client,
        shutdown: &CancellationToken,
        connected_before: &mut bool,
    ) -> Result<(), String> {
        let mut pubsub = match tokio::time::timeout(self.timeout, client.get_async_pubsub()).await {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => return Err("no answer in time".into()),
        };
        for channel in [self.events_channel(), self.health_channel()] {
            pubsub
                .subscribe(&channel)
                .await
                .map_err(|e| e.to_string())?;
        }
        if std::mem::replace(connected_before, true) {
            EngineMetrics::add(&self.metrics.pubsub_reconnects, 1);
        }
        // Subscribed first, then the snapshot: events published meanwhile wait in the
        // stream and are applied after it (joins and leaves are idempotent on the mirror).
        self.take_snapshot().await?;
        let mut stream = pubsub.on_message();
        loop {
            tokio::select! {
                msg = stream.next() => match msg {
                    Some(msg) => self.on_message(&msg),
                    None => return Err("connection closed".into()),
                },
                _ = shutdown.cancelled() => return Ok(()),
            }
        }
    }

    async fn take_snapshot(&self) -> Result<(), String> {
        let mut inv = self.snapshot.prepare_invoke();
        inv.key(self.nodes_key())
            .arg(&self.prefix)
            .arg(self.node())
            .arg(MAX_REMOTE_MEMBERS);
        let mut conn = self.conn.clone();
        let records: Vec<String> =
            match tokio::time::timeout(self.timeout, inv.invoke_async(&mut conn)).await {
                Ok(Ok(v)) => v,
                Ok(Err(e)) => return Err(e.to_string()),
                Err(_) => return Err("no answer in time".into()),
            };
        let mut fresh: Rooms = HashMap::new();
        for r in records
            .iter()
            .filter_map(|r| serde_json::from_str::<Record>(r).ok())
        {
            let name: Arc<str> = r.t.as_str().into();
            fresh
                .entry(name)
                .or_default()
                .insert(SessionId(r.c), r.member());
        }
        // What changed while this node was not listening, told to local watchers.
        let events = {
            let mut mirror = self.shared.mirror();
            let events = diff(&mirror.remote, &fresh);
            mirror.remote_members = fresh.values().map(HashMap::len).sum();
            mirror.remote = fresh;
            self.metrics
                .presence_remote_members
                .store(mirror.remote_members as u64, Ordering::Relaxed);
            events
        };
        for ev in &events {
            self.hub.deliver_presence(ev);
        }
        Ok(())
    }

    fn on_message(&self, msg: &redis::Msg) {
        let payload = msg.get_payload_bytes();
        if msg.get_channel_name() == self.health_channel() {
            let sent = std::str::from_utf8(payload)
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let rtt = self.round_trip.back(sent, now_ms());
            self.metrics
                .health_round_trip_micros
                .store(rtt.as_micros() as u64, Ordering::Relaxed);
            return;
        }
        let (joined, json) = match payload.split_first() {
            Some((b'J', rest)) => (true, rest),
            Some((b'L', rest)) => (false, rest),
            _ => return,
        };
        let Ok(record) = serde_json::from_slice::<Record>(json) else {
            return tracing::warn!("redis engine: skipped a presence event that does not parse");
        };
        if record.n == *self.node() {
            return; // local watchers were told by the hub itself
        }
        EngineMetrics::add(&self.metrics.presence_events, 1);
        let name: Arc<str> = record.t.as_str().into();
        let event = {
            let mut mirror = self.shared.mirror();
            let event = apply(&mut mirror, &name, &record, joined, &self.metrics);
            self.metrics
                .presence_remote_members
                .store(mirror.remote_members as u64, Ordering::Relaxed);
            event
        };
        if let Some(ev) = event {
            self.hub.deliver_presence(&ev);
        }
    }

    // --- health ----------------------------------------------------------------------------

    async fn pinger(self: Arc<Self>, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(self.round_trip.interval());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.cancelled() => return,
            }
            let mut pipe = redis::pipe();
            pipe.cmd("PUBLISH")
                .arg(self.health_channel())
                .arg(now_ms())
                .ignore();
            if let Err(e) = self.run::<()>(&pipe).await {
                tracing::debug!(error = %e, "redis engine: health ping failed");
            }
        }
    }
}

/// One remote join or leave applied to the mirror; the event for local watchers when it
/// changed something (a repeated join or a leave of someone unknown tells no one).
fn apply(
    mirror: &mut Mirror,
    name: &Arc<str>,
    record: &Record,
    joined: bool,
    metrics: &EngineMetrics,
) -> Option<PresenceEvent> {
    if joined {
        let member = record.member();
        if mirror.remote_members >= MAX_REMOTE_MEMBERS {
            EngineMetrics::add(&metrics.presence_mirror_full, 1);
            tracing::warn!(%name, "redis engine: presence mirror full; member not mirrored");
        }
        mirror
            .add_remote(name, member.clone())
            .then(|| event_of(name, &member, true))
    } else {
        mirror
            .remove_remote(name, SessionId(record.c))
            .map(|gone| event_of(name, &gone, false))
    }
}

/// Members per name, as the mirror keeps them (unordered: `list` sorts).
type Rooms = HashMap<Arc<str>, HashMap<SessionId, tidings_core::engine::Member>>;

/// Leaves (in `old`, not in `new`) and joins (the other way round).
fn diff(old: &Rooms, new: &Rooms) -> Vec<PresenceEvent> {
    let mut events = Vec::new();
    for (name, room) in old {
        for (id, m) in room {
            if !new.get(name).is_some_and(|r| r.contains_key(id)) {
                events.push(event_of(name, m, false));
            }
        }
    }
    for (name, room) in new {
        for (id, m) in room {
            if !old.get(name).is_some_and(|r| r.contains_key(id)) {
                events.push(event_of(name, m, true));
            }
        }
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidings_core::engine::Member;

    fn rooms(entries: &[(&str, u64)]) -> Rooms {
        let mut r = Rooms::new();
        for (name, id) in entries {
            r.entry((*name).into()).or_default().insert(
                SessionId(*id),
                Member {
                    client: SessionId(*id),
                    user: None,
                    info: None,
                    protocol: "ws",
                },
            );
        }
        r
    }

    #[test]
    fn a_snapshot_tells_who_left_and_who_joined_while_away() {
        let old = rooms(&[("a", 1), ("a", 2), ("b", 3)]);
        let new = rooms(&[("a", 2), ("b", 4)]);
        let mut got: Vec<(String, bool, u64)> = diff(&old, &new)
            .into_iter()
            .map(|e| (e.topic.to_string(), e.joined, e.client.0))
            .collect();
        got.sort();
        assert_eq!(
            got,
            [
                ("a".into(), false, 1),
                ("b".into(), false, 3),
                ("b".into(), true, 4)
            ]
        );
    }

    #[test]
    fn repeated_joins_and_unknown_leaves_tell_no_one() {
        let mut mirror = Mirror::default();
        let metrics = EngineMetrics::default();
        let name: Arc<str> = "a".into();
        let rec = Record::of("n1", "a", &rooms(&[("a", 7)])["a"][&SessionId(7)]);
        assert!(apply(&mut mirror, &name, &rec, true, &metrics).is_some());
        assert!(apply(&mut mirror, &name, &rec, true, &metrics).is_none());
        assert!(apply(&mut mirror, &name, &rec, false, &metrics).is_some());
        assert!(apply(&mut mirror, &name, &rec, false, &metrics).is_none());
        assert_eq!(mirror.remote_members, 0);
    }
}
