#![allow(dead_code, unreachable_pub)]
use std::sync::Arc;
use tidings_core::*;

pub fn hub_with(cfg: HubConfig) -> Arc<Hub> {
    Hub::new(cfg, 42).unwrap()
}

pub fn hub() -> Arc<Hub> {
    hub_with(HubConfig::default())
}

/// The anonymous identity of an allow-all hub (the default config).
pub fn anon() -> Identity {
    Access::allow_all().anonymous()
}

pub fn session(hub: &Arc<Hub>) -> Session {
    hub.open_session(Box::new(|| {}), SessionMeta::new("test", None))
        .unwrap()
}

pub fn sub(hub: &Hub, s: &Session, pattern: &str) {
    hub.subscribe(
        s,
        &anon(),
        pattern,
        pattern,
        SubscribeOptions::default(),
        |_| None,
    )
    .unwrap();
}

pub fn publish(hub: &Hub, topic: &str, text: &str, now: u64) -> Published {
    hub.publish(
        &anon(),
        topic,
        PayloadKind::Text,
        text.to_owned().into(),
        vec![],
        now,
    )
    .unwrap()
}

pub fn drain(s: &Session) -> Vec<Delivery> {
    let mut out = Vec::new();
    s.outbox().drain_into(&mut out);
    out
}

/// (topic, offset, payload) of each message delivery.
pub fn messages(s: &Session) -> Vec<(String, u64, String)> {
    drain(s)
        .into_iter()
        .filter_map(|d| match d {
            Delivery::Message { msg, .. } => Some((
                msg.topic.to_string(),
                msg.offset,
                String::from_utf8_lossy(&msg.payload).into_owned(),
            )),
            _ => None,
        })
        .collect()
}
