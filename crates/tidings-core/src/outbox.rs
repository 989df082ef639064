//! A session's bounded outbox: what the hub has queued for one connection to write.
//!
//! The hub pushes deliveries; the session's writer drains them all at once and writes them
//! with as few syscalls as possible. Bounds (messages and bytes) are enforced on every push;
//! what happens on overflow is the slow-consumer policy of each message's topic:
//!
//! ```text
//!  push ──> [conflate? replace the queued message of the same subscription+topic in place]
//!       ──> append ──> over a bound? ──> evict the oldest droppable (drop-oldest/conflate)
//!                                     └─> nothing droppable left: close (slow consumer)
//! ```
//! Replies and disconnect-policy messages are never dropped: they are delivered or the
//! session is closed, so nothing a client was promised is lost silently.

use crate::config::{OutboxLimits, SlowConsumerPolicy};
use crate::message::Message;
use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

/// Identifies a session within a hub. Shown to users as `c<N>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u64);

impl std::fmt::Display for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "c{}", self.0)
    }
}

/// A presence change on a subscription name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceEvent {
    pub topic: Arc<str>,
    pub joined: bool,
    pub client: SessionId,
    pub user: Option<Arc<str>>,
    /// The member's presence info (JSON text), if any.
    pub info: Option<Arc<str>>,
}

/// One item for a session's writer.
#[derive(Debug, Clone)]
pub enum Delivery {
    /// A published message for the subscription `sub` (the key the driver subscribed with).
    Message { sub: Arc<str>, msg: Arc<Message> },
    /// Someone joined or left a topic this session watches.
    Presence(PresenceEvent),
    /// A reply already encoded in the session's protocol; written as is, in order.
    Reply(Bytes),
    /// Messages of a topic the subscription `sub` should have had are missing here; the
    /// driver turns it into its protocol's error or gap notice. Boxed: gaps are rare, and
    /// every queued delivery (and every idle session's reused buffers) is as large as the
    /// largest variant.
    Gap(Box<Gap>),
}

/// Why a subscriber cannot have some messages of a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum GapReason {
    /// The topic's epoch is not the one the client saw: its history was lost (restart,
    /// topic forgotten and recreated).
    EpochChanged,
    /// The client's offset is beyond the topic's last offset.
    BeyondLast,
    /// Messages after the client's offset are no longer in history.
    Evicted,
    /// The history read while subscribing ended before the first live message.
    Incomplete,
}

impl GapReason {
    pub fn as_str(self) -> &'static str {
        match self {
            GapReason::EpochChanged => "the topic's history was lost (epoch changed)",
            GapReason::BeyondLast => "that offset is beyond the topic's last offset",
            GapReason::Evicted => "messages after it are no longer in history",
            GapReason::Incomplete => "history ended before the first live message",
        }
    }
}

impl std::fmt::Display for GapReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Messages of `topic` after offset `since` (in the subscriber's epoch) cannot be delivered
/// to the subscription `sub`; delivery goes on with the next message there is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    pub sub: Arc<str>,
    pub topic: Arc<str>,
    /// The last offset the subscriber has (its resume position, or the last one delivered).
    pub since: u64,
    /// The topic's current epoch, when known.
    pub epoch: Option<Arc<str>>,
    /// The offset delivered next, when already known.
    pub next: Option<u64>,
    pub reason: GapReason,
}

impl Delivery {
    fn cost(&self) -> usize {
        match self {
            Delivery::Message { msg, .. } => msg.cost(),
            Delivery::Presence(p) => p.topic.len() + 64,
            Delivery::Reply(b) => b.len() + 16,
            Delivery::Gap(g) => g.topic.len() + 64,
        }
    }
}

/// Why an outbox was closed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// The session could not keep up and a message it was promised could not be queued.
    SlowConsumer,
    /// The server is shutting down: flush what is queued, then say goodbye.
    Shutdown,
    /// The application behind the session ended it (e.g. STOMP after DISCONNECT): flush
    /// what is queued, then close normally.
    Finished,
}

/// What a push did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    Queued,
    /// Replaced an older queued message of the same topic (conflate).
    Conflated,
    /// Queued after dropping this many older droppable messages.
    DroppedOldest(usize),
    /// The outbox overflowed with nothing droppable: it is now closed (slow consumer).
    Overflowed,
    /// The outbox was already closed; nothing was queued.
    Closed,
}

/// Counters for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxStats {
    pub queued: usize,
    pub queued_bytes: usize,
    pub dropped: u64,
    pub conflated: u64,
}

struct Slot {
    delivery: Delivery,
    policy: SlowConsumerPolicy,
    cost: usize,
    /// Replayed history is not counted: it is bounded by the history limits already and its
    /// payloads are shared with the history.
    counted: bool,
}

#[derive(Default)]
struct State {
    /// `None` marks a slot evicted from the middle; leading ones are popped at once.
    slots: VecDeque<Option<Slot>>,
    /// Sequence number of `slots[0]`.
    base: u64,
    occupied: usize,
    counted: usize,
    bytes: usize,
    /// (subscription, topic) -> sequence of its queued message, for conflation.
    latest: HashMap<(Arc<str>, Arc<str>), u64>,
    closed: Option<CloseReason>,
    dropped: u64,
    conflated: u64,
}

/// Called when the outbox goes from empty to non-empty (or closes), to wake the writer.
pub type Wake = Box<dyn Fn() + Send + Sync>;

/// See the module docs.
pub struct Outbox {
    state: Mutex<State>,
    limits: OutboxLimits,
    wake: Wake,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("limits", &self.limits)
            .field("stats", &self.stats())
            .finish()
    }
}

impl Outbox {
    pub fn new(limits: OutboxLimits, wake: Wake) -> Self {
        Outbox {
            state: Mutex::new(State::default()),
            limits,
            wake,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the queue inconsistent in a way that
        // matters more than losing the connection, so poisoning is ignored.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a reply (never dropped; overflow closes the session).
    pub fn push_reply(&self, bytes: Bytes) -> PushOutcome {
        self.push(Delivery::Reply(bytes), SlowConsumerPolicy::Disconnect)
    }

    /// Queues a delivery under its topic's policy, enforcing the bounds.
    pub fn push(&self, delivery: Delivery, policy: SlowConsumerPolicy) -> PushOutcome {
        self.push_inner(delivery, policy, true)
    }

    /// Queues replayed history: kept in order, never dropped, not counted against the bounds.
    pub fn push_replay(&self, delivery: Delivery) -> PushOutcome {
        self.push_inner(delivery, SlowConsumerPolicy::Disconnect, false)
    }

    fn push_inner(
        &self,
        delivery: Delivery,
        policy: SlowConsumerPolicy,
        counted: bool,
    ) -> PushOutcome {
        let mut st = self.lock();
        if st.closed.is_some() {
            return PushOutcome::Closed;
        }
        let was_empty = st.occupied == 0;
        let cost = delivery.cost();
        let conflate_key = match (&delivery, policy, counted) {
            (Delivery::Message { sub, msg }, SlowConsumerPolicy::Conflate, true) => {
                Some((sub.clone(), msg.topic.clone()))
            }
            _ => None,
        };
        if let Some(key) = &conflate_key {
            if let Some(&seq) = st.latest.get(key) {
                let idx = (seq - st.base) as usize;
                let old_cost = match st.slots.get_mut(idx) {
                    Some(Some(slot)) => {
                        let old = slot.cost;
                        slot.delivery = delivery;
                        slot.cost = cost;
                        old
                    }
                    _ => unreachable_slot(),
                };
                st.bytes = st.bytes - old_cost + cost;
                st.conflated += 1;
                let dropped = self.make_room(&mut st);
                return match dropped {
                    Err(()) => self.overflow(st),
                    Ok(_) => PushOutcome::Conflated,
                };
            }
        }
        let seq = st.base + st.slots.len() as u64;
        st.slots.push_back(Some(Slot {
            delivery,
            policy,
            cost,
            counted,
        }));
        st.occupied += 1;
        if counted {
            st.counted += 1;
            st.bytes += cost;
        }
        if let Some(key) = conflate_key {
            st.latest.insert(key, seq);
        }
        let outcome = match self.make_room(&mut st) {
            Err(()) => return self.overflow(st),
            Ok(0) => PushOutcome::Queued,
            Ok(n) => PushOutcome::DroppedOldest(n),
        };
        drop(st);
        if was_empty {
            (self.wake)();
        }
        outcome
    }

    /// Evicts the oldest droppable counted slots until the bounds hold.
    /// `Err` when only undroppable ones are left.
    fn make_room(&self, st: &mut State) -> Result<usize, ()> {
        let mut dropped = 0;
        while st.counted > self.limits.max_messages || st.bytes > self.limits.max_bytes {
            let victim = st.slots.iter().position(|s| {
                matches!(s, Some(slot) if slot.counted && slot.policy != SlowConsumerPolicy::Disconnect)
            });
            let Some(idx) = victim else { return Err(()) };
            let Some(slot) = st.slots[idx].take() else {
                return Err(());
            };
            st.occupied -= 1;
            st.counted -= 1;
            st.bytes -= slot.cost;
            st.dropped += 1;
            if let Delivery::Message { sub, msg } = &slot.delivery {
                let seq = st.base + idx as u64;
                let key = (sub.clone(), msg.topic.clone());
                if st.latest.get(&key) == Some(&seq) {
                    st.latest.remove(&key);
                }
            }
            dropped += 1;
        }
        trim_front(st);
        if st.slots.len() > 2 * st.occupied + 64 {
            compact(st);
        }
        Ok(dropped)
    }

    fn overflow(&self, mut st: MutexGuard<'_, State>) -> PushOutcome {
        clear(&mut st);
        st.closed = Some(CloseReason::SlowConsumer);
        drop(st);
        (self.wake)();
        PushOutcome::Overflowed
    }

    /// Moves everything queued into `out`, in order. Returns the close reason once closed;
    /// the writer then says its protocol's goodbye and ends the session.
    pub fn drain_into(&self, out: &mut Vec<Delivery>) -> Option<CloseReason> {
        let mut st = self.lock();
        out.reserve(st.occupied);
        st.base += st.slots.len() as u64;
        out.extend(st.slots.drain(..).flatten().map(|s| s.delivery));
        st.occupied = 0;
        st.counted = 0;
        st.bytes = 0;
        st.latest.clear();
        st.closed.clone()
    }

    /// Closes the outbox. `Shutdown` and `Finished` keep what is queued so it can be flushed;
    /// a slow consumer's queue is dropped.
    pub fn close(&self, reason: CloseReason) {
        let mut st = self.lock();
        if st.closed.is_some() {
            return;
        }
        if reason == CloseReason::SlowConsumer {
            clear(&mut st);
        }
        st.closed = Some(reason);
        drop(st);
        (self.wake)();
    }

    pub fn is_closed(&self) -> bool {
        self.lock().closed.is_some()
    }

    pub fn stats(&self) -> OutboxStats {
        let st = self.lock();
        OutboxStats {
            queued: st.occupied,
            queued_bytes: st.bytes,
            dropped: st.dropped,
            conflated: st.conflated,
        }
    }
}

fn trim_front(st: &mut State) {
    while let Some(None) = st.slots.front() {
        st.slots.pop_front();
        st.base += 1;
    }
}

/// Removes holes left by evictions in the middle, keeping the conflation index right.
fn compact(st: &mut State) {
    let old = std::mem::take(&mut st.slots);
    st.base += old.len() as u64;
    st.latest.clear();
    for slot in old.into_iter().flatten() {
        let seq = st.base + st.slots.len() as u64;
        if let (Delivery::Message { sub, msg }, SlowConsumerPolicy::Conflate, true) =
            (&slot.delivery, slot.policy, slot.counted)
        {
            st.latest.insert((sub.clone(), msg.topic.clone()), seq);
        }
        st.slots.push_back(Some(slot));
    }
}

fn clear(st: &mut State) {
    st.base += st.slots.len() as u64;
    st.slots.clear();
    st.latest.clear();
    st.occupied = 0;
    st.counted = 0;
    st.bytes = 0;
}

/// The conflation index only ever points at occupied slots (it is updated on every eviction,
/// drain and compaction), so a miss here is a bug in this module, not bad input.
#[cold]
fn unreachable_slot() -> ! {
    panic!("outbox conflation index points at an empty slot")
}
