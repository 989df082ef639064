//! Presence shared through Redis: the [`PresenceStore`] the hub holds with the Redis engine.
//!
//! The hub calls the store synchronously, under its lock, so the store never waits for
//! Redis. It keeps two maps behind one mutex (`Mirror`): this node's own members
//! (authoritative: the hub told it) and a mirror of every other node's members, kept current
//! by the join/leave events of the presence channel (`engine/cluster.rs`). `list` answers
//! from both at once, so a presence request of any protocol is cluster-wide without a round
//! trip. A join or leave is also queued for the cluster task, which writes it to Redis and
//! publishes it; a full queue turns into one resync of the node's whole membership.
//!
//! Lock order: hub, then mirror. The cluster task takes only the mirror, and calls the hub
//! (`deliver_presence`) after releasing it.

use super::metrics::EngineMetrics;
use crate::node_id::NodeId;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tidings_core::engine::{Member, PresenceStore};
use tidings_core::{PresenceEvent, SessionId};
use tokio::sync::{mpsc, Notify};

/// Joins and leaves waiting to be written; past it the writer resyncs the node's whole
/// membership instead (the local map holds the truth, so nothing is lost).
pub(crate) const WRITE_QUEUE: usize = 65_536;
/// Other nodes' members this node mirrors; past it new ones are not mirrored (counted in
/// `tidings_engine_presence_mirror_full_total`, and logged).
pub(crate) const MAX_REMOTE_MEMBERS: usize = 250_000;

/// One membership change for the cluster task to write.
#[derive(Debug)]
pub(crate) enum Write {
    Join(Arc<str>, Member),
    Leave(Arc<str>, Member),
}

#[derive(Default)]
pub(crate) struct Mirror {
    /// This node's members, per name.
    pub(crate) local: HashMap<Arc<str>, HashMap<SessionId, Member>>,
    /// Other nodes' members, per name (session ids are unique in the cluster).
    pub(crate) remote: HashMap<Arc<str>, HashMap<SessionId, Member>>,
    pub(crate) remote_members: usize,
}

impl Mirror {
    /// Adds a remote member; false when it was there already (or the mirror is full).
    pub(crate) fn add_remote(&mut self, name: &Arc<str>, member: Member) -> bool {
        let room = self.remote.entry(name.clone()).or_default();
        if room.contains_key(&member.client) || self.remote_members >= MAX_REMOTE_MEMBERS {
            if room.is_empty() {
                self.remote.remove(name);
            }
            return false;
        }
        room.insert(member.client, member);
        self.remote_members += 1;
        true
    }

    /// Removes a remote member; the member when it was there.
    pub(crate) fn remove_remote(&mut self, name: &str, client: SessionId) -> Option<Member> {
        let room = self.remote.get_mut(name)?;
        let gone = room.remove(&client)?;
        if room.is_empty() {
            self.remote.remove(name);
        }
        self.remote_members -= 1;
        Some(gone)
    }
}

/// What the store and the cluster task share.
pub(crate) struct PresenceShared {
    pub(crate) node: NodeId,
    pub(crate) mirror: Mutex<Mirror>,
    writes: mpsc::Sender<Write>,
    /// Set when a write could not be queued: the writer rewrites the whole membership.
    pub(crate) resync: AtomicBool,
    pub(crate) wake: Notify,
    pub(crate) metrics: Arc<EngineMetrics>,
}

impl PresenceShared {
    pub(crate) fn new(
        node: NodeId,
        metrics: Arc<EngineMetrics>,
    ) -> (Arc<PresenceShared>, mpsc::Receiver<Write>) {
        let (writes, rx) = mpsc::channel(WRITE_QUEUE);
        let shared = Arc::new(PresenceShared {
            node,
            mirror: Mutex::new(Mirror::default()),
            writes,
            resync: AtomicBool::new(false),
            wake: Notify::new(),
            metrics,
        });
        (shared, rx)
    }

    pub(crate) fn mirror(&self) -> std::sync::MutexGuard<'_, Mirror> {
        self.mirror.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn queue(&self, write: Write) {
        if self.writes.try_send(write).is_err() {
            self.resync.store(true, Ordering::Relaxed);
            self.wake.notify_one();
        }
    }
}

/// The hub's presence store with the Redis engine.
pub(crate) struct RedisPresence {
    shared: Arc<PresenceShared>,
}

impl RedisPresence {
    pub(crate) fn new(shared: Arc<PresenceShared>) -> RedisPresence {
        RedisPresence { shared }
    }
}

impl PresenceStore for RedisPresence {
    fn join(&mut self, name: &Arc<str>, member: Member) {
        self.shared
            .mirror()
            .local
            .entry(name.clone())
            .or_default()
            .insert(member.client, member.clone());
        self.shared.queue(Write::Join(name.clone(), member));
    }

    fn leave(&mut self, name: &str, client: SessionId) {
        let gone = {
            let mut mirror = self.shared.mirror();
            let Some((key, mut room)) = mirror.local.remove_entry(name) else {
                return;
            };
            let gone = room.remove(&client);
            if !room.is_empty() {
                mirror.local.insert(key.clone(), room);
            }
            gone.map(|m| (key, m))
        };
        if let Some((name, member)) = gone {
            self.shared.queue(Write::Leave(name, member));
        }
    }

    fn list(&self, name: &str) -> Vec<Member> {
        let mirror = self.shared.mirror();
        let mut all: BTreeMap<SessionId, Member> = BTreeMap::new();
        for room in [mirror.local.get(name), mirror.remote.get(name)]
            .into_iter()
            .flatten()
        {
            all.extend(room.iter().map(|(id, m)| (*id, m.clone())));
        }
        all.into_values().collect()
    }
}

// --- the record written to Redis and published ------------------------------------------

/// A member as Redis holds it (the hash value) and as the presence channel carries it
/// (after `J` or `L`).
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct Record {
    /// The node that owns the member.
    pub(crate) n: String,
    pub(crate) c: u64,
    pub(crate) t: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) u: Option<String>,
    /// Presence info, JSON text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) i: Option<String>,
    #[serde(default)]
    pub(crate) p: String,
}

impl Record {
    pub(crate) fn of(node: &str, name: &str, m: &Member) -> Record {
        Record {
            n: node.to_owned(),
            c: m.client.0,
            t: name.to_owned(),
            u: m.user.as_deref().map(str::to_owned),
            i: m.info.as_deref().map(str::to_owned),
            p: m.protocol.to_owned(),
        }
    }

    pub(crate) fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub(crate) fn member(&self) -> Member {
        Member {
            client: SessionId(self.c),
            user: self.u.as_deref().map(Arc::from),
            info: self.i.as_deref().map(Arc::from),
            protocol: protocol_name(&self.p),
        }
    }
}

/// The event local watchers are told of a remote member's join or leave.
pub(crate) fn event_of(name: &Arc<str>, m: &Member, joined: bool) -> PresenceEvent {
    PresenceEvent {
        topic: name.clone(),
        joined,
        client: m.client,
        user: m.user.clone(),
        info: m.info.clone(),
    }
}

/// A protocol name read from Redis as the `&'static str` members carry.
fn protocol_name(p: &str) -> &'static str {
    // What the drivers pass to `open_session` (a newer node's unknown name shows as "remote").
    const KNOWN: [&str; 11] = [
        "line",
        "ws",
        "stomp",
        "stomp-ws",
        "sockjs-stomp",
        "sockjs",
        "socketio",
        "sse",
        "poll",
        "stream",
        "udp",
    ];
    KNOWN.into_iter().find(|k| *k == p).unwrap_or("remote")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: u64) -> Member {
        Member {
            client: SessionId(id),
            user: Some("ann".into()),
            info: None,
            protocol: "ws",
        }
    }

    #[test]
    fn list_merges_local_and_remote_members_by_id() {
        let (shared, _rx) = PresenceShared::new(NodeId::random(), Default::default());
        let mut store = RedisPresence::new(shared.clone());
        let name: Arc<str> = "room".into();
        store.join(&name, member(5));
        assert!(shared.mirror().add_remote(&name, member(3)));
        assert!(!shared.mirror().add_remote(&name, member(3)));
        let ids: Vec<u64> = store.list("room").iter().map(|m| m.client.0).collect();
        assert_eq!(ids, [3, 5]);
        store.leave("room", SessionId(5));
        assert!(shared
            .mirror()
            .remove_remote("room", SessionId(3))
            .is_some());
        assert!(store.list("room").is_empty());
        assert!(shared.mirror().local.is_empty() && shared.mirror().remote.is_empty());
    }

    #[test]
    fn a_record_round_trips_through_json() {
        let m = member(9);
        let json = Record::of("00abcd", "room", &m).to_json();
        let back: Record = serde_json::from_str(&json).unwrap();
        assert_eq!(back.member(), m);
        assert_eq!((back.n.as_str(), back.t.as_str()), ("00abcd", "room"));
    }
}
