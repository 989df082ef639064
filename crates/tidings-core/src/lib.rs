//! # tidings-core
//!
//! The hub of tidings: topics with exact and wildcard subscriptions (`*` one token, `>` the
//! rest), per-topic offsets and epochs, bounded history with resume, presence, and per-session
//! bounded outboxes with slow-consumer policies (`disconnect`, `drop-oldest`, `conflate`),
//! point-to-point queues (competing consumers, round-robin, prefetch, ack/nack, redelivery)
//! and transactions (staged publishes and acks applied all at once).
//! Every session has an [`Identity`] and every publish and subscribe passes [`Access`].
//!
//! What it does not do: I/O of any kind, clocks (callers pass `now` in milliseconds), wire
//! formats (see tidings-proto) or async runtimes. Drivers in tidings-server join the two.
//!
//! ```
//! use tidings_core::{Hub, HubConfig, PayloadKind, SessionMeta, SubscribeOptions, Delivery};
//! let hub = Hub::new(HubConfig::default(), 7).unwrap();
//! let session = hub.open_session(Box::new(|| {}), SessionMeta::new("doc", None)).unwrap();
//! let anon = hub.access().anonymous();
//! hub.subscribe(&session, &anon, "chat.*", "chat.*", SubscribeOptions::default(), |_| None).unwrap();
//! hub.publish(&anon, "chat.lobby", PayloadKind::Text, "hi".into(), vec![], 0).unwrap();
//! let mut out = Vec::new();
//! session.outbox().drain_into(&mut out);
//! assert!(matches!(&out[0], Delivery::Message { msg, .. } if msg.offset == 1));
//! ```

pub mod auth;
pub mod config;
pub mod engine;
mod epoch;
mod error;
mod history;
pub mod hub;
mod merge;
pub mod message;
pub mod outbox;
mod routing;
pub mod topic;
pub mod txn;

pub use auth::{
    Access, AuthConfig, AuthError, AuthMethod, Identity, Rights, RightsConfig, UserConfig,
};
pub use config::{
    ConfigError, HistoryLimits, HubConfig, OutboxLimits, QueueLimits, SlowConsumerPolicy,
    TopicRule, TransactionLimits,
};
pub use engine::{
    ConsumerId, Engine, HistoryPage, LogInfo, Member, MemoryLog, MemoryPresence, MemoryQueues,
    PresenceStore, QueueStats, QueueStore, Settle, TopicLog,
};
pub use error::HubError;
pub use hub::{
    ConsumeOptions, Hub, HubStats, PendingSubscribe, Published, Resume, Session, SessionInfo,
    SessionMeta, SubscribeOptions, Subscribed, TopicInfo, MAX_POSITIONS,
};
pub use merge::{HistoryWant, TopicResume};
pub use message::{Draft, EncodingSlot, Message, PayloadKind};
pub use outbox::{
    CloseReason, Delivery, Gap, GapReason, Outbox, OutboxStats, PresenceEvent, PushOutcome,
    SessionId,
};
pub use routing::{InterestEvent, MAX_INTEREST_EVENTS};
pub use topic::{validate_topic, Pattern, TopicError};
pub use txn::{Committed, Staged, Target, Transaction};
