//! The engine: what a cluster of nodes must agree on, behind traits, with the in-memory
//! implementation a single node uses (after centrifuge's `Broker` + `PresenceManager`).
//!
//! ```text
//!            ┌──────────── Hub (local to a node) ────────────┐
//! publish ──>│ engine.log.append ──> Arc<Message> ──> deliver │──> router ──> outboxes
//!            │ subscribe: route first, history from the log,  │
//!            │            merged by offset                    │
//!            │ presence: local watchers <── engine.presence   │
//!            └────────────────────────────────────────────────┘
//! ```
//!
//! * [`TopicLog`]: per topic the next offset, the epoch and a bounded history.
//! * [`PresenceStore`]: who is present under a subscription name.
//! * [`QueueStore`]: point-to-point queues (ready messages, consumers, acks).
//!
//! The traits are synchronous and called under the hub's lock: the in-memory engine answers
//! at once, and publishing must number and fan out under one hold so that every subscriber
//! sees a topic's offsets in order. A remote engine (Redis) is asynchronous and lives above
//! the core, in the server: it appends to the remote log itself, then hands the numbered
//! message to [`Hub::deliver`](crate::Hub::deliver) (locally and on every node that receives
//! it from the backplane), and serves a subscribe's history between
//! [`Hub::begin_subscribe`](crate::Hub::begin_subscribe) and
//! [`Hub::complete_subscribe`](crate::Hub::complete_subscribe).
//!

mod log;
mod memory_log;
mod memory_queue;
mod presence;
mod queue;

pub use log::{HistoryPage, LogInfo, TopicLog};
pub use memory_log::MemoryLog;
pub use memory_queue::MemoryQueues;
pub use presence::{Member, MemoryPresence, PresenceStore};
pub use queue::{take_unacked, ConsumerId, QueueStats, QueueStore, Settle};

use crate::config::HubConfig;

/// The shared half of a hub. Boxed trait objects rather than type parameters: the hub is
/// passed around as `Arc<Hub>` by every driver, and a type parameter would spread into all
/// of them for one virtual call per publish.
pub struct Engine {
    pub log: Box<dyn TopicLog>,
    pub presence: Box<dyn PresenceStore>,
    pub queues: Box<dyn QueueStore>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("topics", &self.log.len())
            .finish()
    }
}

impl Engine {
    /// The in-memory engine of a single node. `epoch_seed` should differ per process start.
    pub fn memory(config: &HubConfig, epoch_seed: u64) -> Engine {
        Engine {
            log: Box::new(MemoryLog::new(config, epoch_seed)),
            presence: Box::new(MemoryPresence::default()),
            queues: Box::new(MemoryQueues::new(config.queues, epoch_seed)),
        }
    }
}
