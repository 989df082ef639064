//! Typed hub configuration. The binary reads it from TOML; the core only validates it.

use crate::auth::AuthConfig;
use crate::topic::Pattern;
use serde::Deserialize;

/// What to do when a subscriber's outbox is full.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SlowConsumerPolicy {
    /// Close the session: it was promised every message and cannot keep up. The default.
    #[default]
    Disconnect,
    /// Drop the oldest queued messages of droppable topics to make room.
    DropOldest,
    /// Keep only the newest queued message per topic (tickers), dropping older ones.
    Conflate,
}

/// Bounds of one session's outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboxLimits {
    /// Most queued deliveries. Default 4096.
    pub max_messages: usize,
    /// Most queued bytes (payload + topic + overhead). Default 4 MiB.
    pub max_bytes: usize,
}

impl Default for OutboxLimits {
    fn default() -> Self {
        OutboxLimits {
            max_messages: 4096,
            max_bytes: 4 << 20,
        }
    }
}

/// Bounds of one topic's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HistoryLimits {
    /// Most messages kept. Default 1000. 0 keeps no history.
    pub max_messages: usize,
    /// Most bytes kept. Default 1 MiB.
    pub max_bytes: usize,
    /// Oldest message kept, in milliseconds. Default 1 hour; 0 means no age limit.
    pub max_age_ms: u64,
}

impl Default for HistoryLimits {
    fn default() -> Self {
        HistoryLimits {
            max_messages: 1000,
            max_bytes: 1 << 20,
            max_age_ms: 3_600_000,
        }
    }
}

/// Bounds of point-to-point queues (`[hub.queues]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueLimits {
    /// Most queues at once; publishing to or consuming from a new queue beyond it is refused.
    /// Default 10 000.
    pub max_queues: usize,
    /// Most messages waiting in one queue for a consumer; publishing beyond it is refused
    /// (never dropped silently). Default 10 000.
    pub max_messages: usize,
    /// Most bytes waiting in one queue (payload + name + overhead). Default 16 MiB.
    pub max_bytes: usize,
    /// Most bytes held by all queues together (waiting or unacknowledged): past it a
    /// publish to a queue is refused (RabbitMQ's memory alarm), nothing accepted is dropped.
    /// Default 256 MiB.
    pub max_total_bytes: usize,
    /// Unacknowledged messages per consumer when its subscription does not say
    /// (`prefetch-count`). Default 100.
    pub default_prefetch: usize,
    /// Largest prefetch a subscription may ask for; more is lowered to it. Default 10 000.
    pub max_prefetch: usize,
    /// Seconds a message may wait in a queue for a consumer; older ones are dropped from the
    /// front of the queue (RabbitMQ's `x-message-ttl`). Messages delivered and not yet
    /// acknowledged are not expired. 0 (the default, as in RabbitMQ): they wait until
    /// consumed, within the bounds above.
    pub message_ttl_secs: u64,
}

impl Default for QueueLimits {
    fn default() -> Self {
        QueueLimits {
            max_queues: 10_000,
            max_messages: 10_000,
            max_bytes: 16 << 20,
            max_total_bytes: 256 << 20,
            default_prefetch: 100,
            max_prefetch: 10_000,
            message_ttl_secs: 0,
        }
    }
}

/// Bounds of one open transaction (`[hub.transactions]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TransactionLimits {
    /// Most staged operations (publishes, acks) in one transaction. Default 1000.
    pub max_operations: usize,
    /// Most staged bytes (payloads and headers) in one transaction. Default 4 MiB.
    pub max_bytes: usize,
    /// Most transactions one session may have open at once. Default 16.
    pub max_open: usize,
}

impl Default for TransactionLimits {
    fn default() -> Self {
        TransactionLimits {
            max_operations: 1000,
            max_bytes: 4 << 20,
            max_open: 16,
        }
    }
}

/// Per-topic-pattern settings; the first rule whose pattern matches a topic wins.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicRule {
    /// Which topics this rule applies to, e.g. `prices.>`.
    pub pattern: String,
    /// Slow-consumer policy for these topics. Default: the hub default (`disconnect`).
    #[serde(default)]
    pub slow_consumer: Option<SlowConsumerPolicy>,
    /// History bounds for these topics. Default: the hub default.
    #[serde(default)]
    pub history: Option<HistoryLimits>,
}

impl TopicRule {
    /// `prices.>`: conflate, keep the newest message. Price feeds (the demo ticker) publish
    /// faster than a browser tab may read; a slow tab should see the newest price, not be
    /// disconnected or fall behind.
    pub fn ticker_default() -> TopicRule {
        TopicRule {
            pattern: "prices.>".into(),
            slow_consumer: Some(SlowConsumerPolicy::Conflate),
            history: Some(HistoryLimits {
                max_messages: 1,
                max_bytes: 65536,
                max_age_ms: 0,
            }),
        }
    }
}

/// The hub's configuration (`[hub]` in the TOML file).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HubConfig {
    /// Every session's outbox bounds. Default: 4096 messages, 4 MiB.
    pub outbox: OutboxLimits,
    /// History bounds for topics no rule names. Default: 1000 messages, 1 MiB, 1 hour.
    pub history: HistoryLimits,
    /// Slow-consumer policy for topics no rule names. Default `disconnect`.
    pub slow_consumer: SlowConsumerPolicy,
    /// Per-pattern overrides, first match wins. Default: one rule, `prices.>` conflated with
    /// the newest message kept (see [`TopicRule::ticker_default`]); a config file that lists
    /// `[[hub.topics]]` replaces it.
    pub topics: Vec<TopicRule>,
    /// Most topics with state (offsets, history) at once; publishing to a new topic beyond it
    /// is refused. Default 100 000.
    pub max_topics: usize,
    /// When users are configured: the share of `max_topics`, in percent, that anonymous
    /// sessions may bring into being; the rest stays for users who logged in, so anonymous
    /// clients inventing names cannot lock them out. Default 80.
    pub anonymous_topic_percent: u8,
    /// Seconds a topic with no history and no subscriber here is kept after its last
    /// activity (a topic that holds messages is kept while they last). Default 60.
    pub empty_topic_secs: u64,
    /// Most bytes all topic histories hold together. Past it the publishing topic's own
    /// oldest messages make room (the new one too, if need be): every message is still
    /// numbered and delivered live, and a resume from before what is kept gets an explicit
    /// gap. Default 1 GiB.
    pub max_history_bytes: usize,
    /// Most subscriptions one session may hold. Default 1024.
    pub max_subscriptions_per_session: usize,
    /// Users and rights. Default: allow-all.
    pub auth: AuthConfig,
    /// Point-to-point queue bounds. Default: see [`QueueLimits`].
    pub queues: QueueLimits,
    /// Transaction bounds. Default: see [`TransactionLimits`].
    pub transactions: TransactionLimits,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            outbox: OutboxLimits::default(),
            history: HistoryLimits::default(),
            slow_consumer: SlowConsumerPolicy::Disconnect,
            topics: vec![TopicRule::ticker_default()],
            max_topics: 100_000,
            anonymous_topic_percent: 80,
            empty_topic_secs: 60,
            max_history_bytes: 1 << 30,
            max_subscriptions_per_session: 1024,
            auth: AuthConfig::default(),
            queues: QueueLimits::default(),
            transactions: TransactionLimits::default(),
        }
    }
}

/// A config field that is wrong, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ConfigError {
    pub field: String,
    pub reason: String,
}

impl HubConfig {
    /// Checks every field; the error names the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |field: &str, reason: &str| ConfigError {
            field: field.into(),
            reason: reason.into(),
        };
        if self.outbox.max_messages == 0 {
            return Err(err("hub.outbox.max_messages", "must be at least 1"));
        }
        if self.outbox.max_bytes < 1024 {
            return Err(err("hub.outbox.max_bytes", "must be at least 1024"));
        }
        if self.max_topics == 0 {
            return Err(err("hub.max_topics", "must be at least 1"));
        }
        if self.anonymous_topic_percent > 100 {
            return Err(err("hub.anonymous_topic_percent", "must be at most 100"));
        }
        if self.max_subscriptions_per_session == 0 {
            return Err(err(
                "hub.max_subscriptions_per_session",
                "must be at least 1",
            ));
        }
        let q = &self.queues;
        if q.max_queues == 0 || q.max_messages == 0 {
            return Err(err(
                "hub.queues",
                "max_queues and max_messages must be at least 1",
            ));
        }
        if q.default_prefetch == 0 || q.max_prefetch < q.default_prefetch {
            return Err(err(
                "hub.queues.default_prefetch",
                "must be at least 1 and at most max_prefetch",
            ));
        }
        if self.transactions.max_operations == 0 || self.transactions.max_open == 0 {
            return Err(err(
                "hub.transactions",
                "max_operations and max_open must be at least 1",
            ));
        }
        for (i, rule) in self.topics.iter().enumerate() {
            Pattern::parse(&rule.pattern)
                .map_err(|e| err(&format!("hub.topics[{i}].pattern"), &e.to_string()))?;
        }
        crate::auth::Access::from_config(&self.auth).map_err(|e| err("hub.auth", &e))?;
        Ok(())
    }
}

/// The settings that apply to one topic, resolved once when the topic is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicSettings {
    pub policy: SlowConsumerPolicy,
    pub history: HistoryLimits,
}

#[derive(Debug, Clone)]
pub(crate) struct CompiledRules {
    rules: Vec<(Pattern, TopicRule)>,
    default: TopicSettings,
}

impl CompiledRules {
    pub(crate) fn new(cfg: &HubConfig) -> Self {
        CompiledRules {
            rules: cfg
                .topics
                .iter()
                .filter_map(|r| Pattern::parse(&r.pattern).ok().map(|p| (p, r.clone())))
                .collect(),
            default: TopicSettings {
                policy: cfg.slow_consumer,
                history: cfg.history,
            },
        }
    }

    pub(crate) fn settings(&self, topic: &str) -> TopicSettings {
        match self.rules.iter().find(|(p, _)| p.matches(topic)) {
            Some((_, r)) => TopicSettings {
                policy: r.slow_consumer.unwrap_or(self.default.policy),
                history: r.history.unwrap_or(self.default.history),
            },
            None => self.default,
        }
    }
}
