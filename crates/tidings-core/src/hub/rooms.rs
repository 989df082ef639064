//! The local half of presence: which of this node's sessions are under a subscription name
//! and which of them watch it, so joins and leaves are told to local watchers. Membership as
//! a cluster sees it is the engine's `PresenceStore`.

use crate::config::SlowConsumerPolicy;
use crate::outbox::{Delivery, Outbox, PresenceEvent, SessionId};
use std::collections::HashMap;
use std::sync::Arc;

/// Local sessions of one subscription name.
#[derive(Default)]
struct Room {
    members: HashMap<SessionId, RoomMember>,
    /// Members watching presence (`watchers > 0`). Without anyone watching, a join or a
    /// leave tells no one, and skipping the walk over every member keeps a storm of 15k
    /// (re)subscribers to one topic linear instead of quadratic.
    watching: usize,
}

struct RoomMember {
    /// User and presence info, told to watchers on join and leave.
    who: Who,
    /// Subscriptions of this session under the name.
    count: usize,
    /// How many of them watch presence.
    watchers: usize,
    outbox: Arc<Outbox>,
}

/// Every subscription name with a local member. Bounded by the sessions' subscriptions.
#[derive(Default)]
pub(super) struct Rooms {
    rooms: HashMap<Arc<str>, Room>,
}

impl Rooms {
    /// Adds one subscription of `id` under `name`. True when `id` is new there (and local
    /// watchers were told).
    pub(super) fn join(
        &mut self,
        name: &Arc<str>,
        id: SessionId,
        who: Who,
        watch: bool,
        outbox: &Arc<Outbox>,
    ) -> bool {
        let room = self.rooms.entry(name.clone()).or_default();
        let is_new = !room.members.contains_key(&id);
        let member = room.members.entry(id).or_insert_with(|| RoomMember {
            who: who.clone(),
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
            announce(room, name, id, who, true);
        }
        is_new
    }

    /// Removes one subscription of `id` under `name`. True when it was its last there (and
    /// local watchers were told).
    pub(super) fn leave(&mut self, name: &Arc<str>, id: SessionId, watched: bool) -> bool {
        let Some(room) = self.rooms.get_mut(name) else {
            return false;
        };
        let Some(member) = room.members.get_mut(&id) else {
            return false;
        };
        member.count -= 1;
        member.watchers -= usize::from(watched);
        if watched && member.watchers == 0 {
            room.watching -= 1;
        }
        let last = member.count == 0;
        if last {
            let who = room.members.remove(&id).map(|m| m.who).unwrap_or_default();
            announce(room, name, id, who, false);
        }
        if room.members.is_empty() {
            self.rooms.remove(name);
        }
        last
    }

    /// Tells local watchers of a join or leave that happened on another node.
    pub(super) fn announce_remote(&self, ev: &PresenceEvent) {
        if let Some(room) = self.rooms.get(&ev.topic) {
            let who = (ev.user.clone(), ev.info.clone());
            announce(room, &ev.topic, ev.client, who, ev.joined);
        }
    }

    pub(super) fn names(&self) -> impl Iterator<Item = &Arc<str>> {
        self.rooms.keys()
    }
}

/// Tells the other watching members of a room that `id` joined or left.
/// A member's user and presence info.
pub(super) type Who = (Option<Arc<str>>, Option<Arc<str>>);

fn announce(room: &Room, name: &Arc<str>, id: SessionId, who: Who, joined: bool) {
    if room.watching == 0 {
        return;
    }
    for (other, m) in &room.members {
        if *other != id && m.watchers > 0 {
            let ev = PresenceEvent {
                topic: name.clone(),
                joined,
                client: id,
                user: who.0.clone(),
                info: who.1.clone(),
            };
            m.outbox
                .push(Delivery::Presence(ev), SlowConsumerPolicy::Disconnect);
        }
    }
}
