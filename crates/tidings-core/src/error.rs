//! The error every hub operation returns. It sits below the hub, the queues and the
//! transactions (they all refuse work with it), so none of them imports another for it.

use crate::auth::AuthError;
use crate::topic::TopicError;

/// Why a hub operation was refused. Each protocol maps it to its own error reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HubError {
    #[error(transparent)]
    Topic(#[from] TopicError),
    #[error(transparent)]
    Denied(#[from] AuthError),
    /// What was missed is no longer (or never was) in history; the client must start over.
    #[error("cannot resume {topic} after offset {since}: {reason} (epoch {epoch}, history holds {earliest}..={last})")]
    ResumeUnavailable {
        topic: String,
        since: u64,
        epoch: String,
        earliest: u64,
        last: u64,
        reason: &'static str,
    },
    #[error("resuming needs an exact topic, not the pattern {0}")]
    ResumeNeedsExactTopic(String),
    /// A per-topic position of a pattern subscribe is unusable (not matching, too many).
    #[error("bad position for {topic}: {reason}")]
    BadPosition { topic: String, reason: &'static str },
    /// The session's outbox was closed (slow consumer, shutdown) before the operation ended.
    #[error("the session is closed")]
    SessionClosed,
    #[error("too many subscriptions (at most {0} per session)")]
    TooManySubscriptions(usize),
    #[error("not subscribed to {0}")]
    NotSubscribed(String),
    #[error("too many topics (at most {0}); publish to an existing topic")]
    TooManyTopics(usize),
    #[error("the server is shutting down")]
    ShuttingDown,
    /// The shared engine (Redis) did not answer: nothing was published, try again later.
    #[error("the engine is unavailable: {0}")]
    EngineUnavailable(String),
    #[error("queue {queue} is full (at most {max_messages} messages, {max_bytes} bytes waiting); try again later")]
    QueueFull {
        queue: String,
        max_messages: usize,
        max_bytes: usize,
    },
    #[error("too many queues (at most {0})")]
    TooManyQueues(usize),
    #[error("the server holds all the queued messages it may ({0} bytes, hub.queues.max_total_bytes); try again later")]
    QueuesFull(usize),
    #[error("transaction too large (at most {max_operations} operations, {max_bytes} bytes)")]
    TransactionTooLarge {
        max_operations: usize,
        max_bytes: usize,
    },
}
