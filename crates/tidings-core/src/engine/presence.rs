//! Presence membership: who is subscribed under a name, as every node must see it.
//!
//! Telling watchers about joins and leaves is local (each node tells its own sessions); the
//! membership list is what a cluster shares.

use crate::outbox::SessionId;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// A present member of a subscription name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub client: SessionId,
    pub user: Option<Arc<str>>,
    /// The member's presence info (a token's `info` claim, JSON text), if any.
    pub info: Option<Arc<str>>,
    /// The protocol the member's session speaks ("ws", "stomp", "line", "sse", ...).
    pub protocol: &'static str,
}

/// Membership per subscription name. The hub calls `join` when a session's first
/// subscription under a name is complete and `leave` when its last one goes, so the store
/// holds at most one entry per (name, session): it is bounded by the hub's sessions times
/// `hub.max_subscriptions_per_session`.
pub trait PresenceStore: Send {
    fn join(&mut self, name: &Arc<str>, member: Member);
    fn leave(&mut self, name: &str, client: SessionId);
    /// Members of `name`, ordered by client id.
    fn list(&self, name: &str) -> Vec<Member>;
}

/// The in-memory presence of a single node.
#[derive(Debug, Default)]
pub struct MemoryPresence {
    rooms: HashMap<Arc<str>, BTreeMap<SessionId, Member>>,
}

impl PresenceStore for MemoryPresence {
    fn join(&mut self, name: &Arc<str>, member: Member) {
        self.rooms
            .entry(name.clone())
            .or_default()
            .insert(member.client, member);
    }

    fn leave(&mut self, name: &str, client: SessionId) {
        if let Some(room) = self.rooms.get_mut(name) {
            room.remove(&client);
            if room.is_empty() {
                self.rooms.remove(name);
            }
        }
    }

    fn list(&self, name: &str) -> Vec<Member> {
        self.rooms
            .get(name)
            .map(|room| room.values().cloned().collect())
            .unwrap_or_default()
    }
}
