//! # tidings-core
//!
//! The hub of tidings: topics with exact and wildcard subscriptions (`*` one token, `>` the
//! rest), per-topic offsets and epochs, bounded history with resume, presence, and per-session
//! bounded outboxes with slow-consumer policies (`disconnect`, `drop-oldest`, `conflate`),
//! point-to-point queues (competing consumers, round-robin, prefetch, ack/nack, redelivery)
//! and transactions (staged publishes and acks applied all at once).
//! Every session has an [`Identity`] that carries its rights, checked on every publish and
//! subscribe.
//!
//! Layers, each module importing only those above it in this list:
//!
//! ```text
//! topic, epoch        names and patterns; epoch ids
//! message, auth       Message / Draft; Identity, Rights, Access
//! config, error       HubConfig; HubError
//! outbox, history     per-session bounded outbox (Delivery, Gap); a topic's bounded history
//! engine              what a cluster shares, behind traits: TopicLog, PresenceStore,
//!                     QueueStore, with the in-memory Engine
//! merge, routing      route-first subscribe's buffer and merge; the trie router with
//!                     interest events
//! txn                 staged transactions
//! hub                 local to a node: sessions, routes, presence watchers, `deliver`;
//!                     publish / subscribe (one call or begin + complete) over the engine
//! ```
//!
//! What it does not do: I/O of any kind, clocks (callers pass `now` in milliseconds), wire
//! formats (see tidings-proto) or async runtimes: a remote engine is driven from above (the
//! server appends to it, then calls [`Hub::deliver`]; it reads a subscribe's history between
//! [`Hub::begin_subscribe`] and [`Hub::complete_subscribe`]).
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
    hash_argon2, verify_argon2, Access, AuthConfig, AuthError, AuthMethod, Identity,
    IdentityFields, Rights, RightsConfig, TokenRefusal, UserConfig,
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
    SessionMeta, SlowConsumerClose, SubscribeOptions, Subscribed, TopicInfo, MAX_POSITIONS,
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
