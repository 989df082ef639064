//! The engine seam and what sits around it: local `deliver`, a custom engine, interest events,
//! identities with their rights, session meta in presence and the admin view.
#![allow(clippy::field_reassign_with_default)] // tests tweak one field of a default config
mod common;
use common::*;
use std::sync::{Arc, Mutex};
use tidings_core::*;

fn numbered(topic: &str, offset: u64, epoch: &str) -> Arc<Message> {
    Arc::new(
        Draft {
            kind: PayloadKind::Text,
            payload: "remote".into(),
            headers: vec![],
        }
        .into_message(topic.into(), offset, epoch.into(), 0),
    )
}

#[test]
fn deliver_fans_out_a_numbered_message_locally_without_touching_the_log() {
    let hub = hub();
    let (a, b) = (session(&hub), session(&hub));
    sub(&hub, &a, "room.*");
    sub(&hub, &b, "room.1");
    assert_eq!(hub.deliver(numbered("room.1", 41, "e1")), 2);
    assert_eq!(messages(&a), [("room.1".into(), 41, "remote".into())]);
    assert_eq!(messages(&b).len(), 1);
    // The exact subscription gave the topic state, but nothing was appended to it.
    let page = hub.history(&anon(), "room.1", 0, 10).unwrap();
    assert_eq!((page.last_offset, page.messages.len()), (0, 0));
}

/// A log that records what the hub asks of it, around the in-memory one: the seam is
/// pluggable through `Hub::with_engine`.
struct Recording {
    inner: MemoryLog,
    calls: Arc<Mutex<Vec<String>>>,
}

impl TopicLog for Recording {
    fn append(&mut self, topic: &str, draft: Draft, now: u64) -> Result<Arc<Message>, HubError> {
        self.calls.lock().unwrap().push(format!("append {topic}"));
        self.inner.append(topic, draft, now)
    }
    fn touch(&mut self, topic: &str, now: u64) -> Result<(), HubError> {
        self.calls.lock().unwrap().push(format!("touch {topic}"));
        self.inner.touch(topic, now)
    }
    fn read(&self, topic: &str, since: u64, limit: usize) -> HistoryPage {
        self.calls.lock().unwrap().push(format!("read {topic}"));
        self.inner.read(topic, since, limit)
    }
    fn info(&self, topic: &str) -> Option<LogInfo> {
        self.inner.info(topic)
    }
    fn topics(&self) -> Vec<LogInfo> {
        self.inner.topics()
    }
    fn len(&self) -> usize {
        self.inner.len()
    }
    fn sweep(&mut self, now: u64, in_use: &dyn Fn(&str) -> bool) {
        self.inner.sweep(now, in_use)
    }
}

#[test]
fn a_hub_runs_on_any_engine() {
    let cfg = HubConfig::default();
    let calls = Arc::new(Mutex::new(Vec::new()));
    let engine = Engine {
        log: Box::new(Recording {
            inner: MemoryLog::new(&cfg, 1),
            calls: calls.clone(),
        }),
        presence: Box::new(MemoryPresence::default()),
        queues: Box::new(MemoryQueues::new(cfg.queues, 1)),
    };
    let hub = Hub::with_engine(cfg, engine).unwrap();
    let s = session(&hub);
    sub(&hub, &s, "t");
    publish(&hub, "t", "x", 0);
    assert_eq!(*calls.lock().unwrap(), ["touch t", "read t", "append t"]);
    assert_eq!(messages(&s).len(), 1);
}

#[test]
fn an_exact_subscribe_without_resume_says_where_live_delivery_starts() {
    let hub = hub();
    publish(&hub, "t", "1", 0);
    let s = session(&hub);
    let pending = hub
        .begin_subscribe(&s, &anon(), "t", "t", SubscribeOptions::default())
        .unwrap();
    publish(&hub, "t", "2", 0);
    // The page is read after 2 was published, so it says last offset 2; 2 is delivered live.
    let pages: Vec<HistoryPage> = vec![hub.history(&anon(), "t", 0, 0).unwrap()];
    let info = hub
        .complete_subscribe(&s, pending, &pages, |_| None)
        .unwrap();
    assert_eq!(info.last_offset, 1);
    assert_eq!(messages(&s), [("t".into(), 2, "2".into())]);
}

#[test]
fn interest_is_reported_for_the_first_and_last_local_subscriber_of_a_pattern() {
    let hub = hub();
    let (a, b) = (session(&hub), session(&hub));
    let mut ev = Vec::new();
    sub(&hub, &a, "chat.*");
    sub(&hub, &b, "chat.*");
    sub(&hub, &b, "news");
    hub.drain_interest(&mut ev);
    assert_eq!(
        ev,
        [
            InterestEvent::Gained("chat.*".into()),
            InterestEvent::Gained("news".into())
        ]
    );
    ev.clear();
    sub(&hub, &a, "chat.*"); // a re-subscribe is no change
    hub.unsubscribe(&a, "chat.*").unwrap(); // b still wants it
    hub.drain_interest(&mut ev);
    assert!(ev.is_empty(), "{ev:?}");
    drop(b);
    hub.drain_interest(&mut ev);
    ev.sort_by_key(|e| format!("{e:?}"));
    assert_eq!(
        ev,
        [
            InterestEvent::Lost("chat.*".into()),
            InterestEvent::Lost("news".into())
        ]
    );
    assert!(hub.interests().is_empty());
}

#[test]
fn the_interest_wake_fires_once_per_batch_outside_the_lock() {
    let hub = hub();
    let wakes = Arc::new(Mutex::new(0));
    let (w, h) = (wakes.clone(), Arc::downgrade(&hub));
    assert!(hub.on_interest(Box::new(move || {
        // Outside the lock: the hub may be called from here.
        if let Some(hub) = h.upgrade() {
            let _ = hub.interests();
        }
        *w.lock().unwrap() += 1;
    })));
    let s = session(&hub);
    sub(&hub, &s, "a");
    sub(&hub, &s, "b");
    assert_eq!(*wakes.lock().unwrap(), 1);
    let mut ev = Vec::new();
    hub.drain_interest(&mut ev);
    assert_eq!(ev.len(), 2);
    drop(s);
    assert_eq!(*wakes.lock().unwrap(), 2);
}

#[test]
fn undrained_interest_events_are_bounded_and_end_in_a_resync() {
    let mut cfg = HubConfig::default();
    cfg.max_subscriptions_per_session = MAX_INTEREST_EVENTS + 10;
    let hub = hub_with(cfg);
    let s = session(&hub);
    for i in 0..MAX_INTEREST_EVENTS + 5 {
        sub(&hub, &s, &format!("p{i}.*"));
    }
    let mut ev = Vec::new();
    hub.drain_interest(&mut ev);
    assert!(ev.len() <= MAX_INTEREST_EVENTS + 1);
    assert_eq!(ev[0], InterestEvent::Resync);
    assert_eq!(hub.interests().len(), MAX_INTEREST_EVENTS + 5);
}

#[test]
fn identities_carry_their_rights_and_anonymous_gets_the_configured_ones() {
    let mut cfg = HubConfig::default();
    cfg.auth.users.push(UserConfig {
        name: "alice".into(),
        password: Some("pw".into()),
        password_hash: None,
        rights: RightsConfig {
            publish: vec!["chat.>".into()],
            subscribe: vec!["chat.>".into()],
        },
    });
    cfg.auth.anonymous.subscribe = vec!["public.*".into()];
    let hub = hub_with(cfg);
    let anon = hub.access().anonymous();
    assert_eq!(
        (anon.user.clone(), anon.method),
        (None, AuthMethod::Anonymous)
    );
    let s = session(&hub);
    assert!(hub
        .subscribe(
            &s,
            &anon,
            "p",
            "public.news",
            SubscribeOptions::default(),
            |_| None
        )
        .is_ok());
    assert!(hub
        .subscribe(
            &s,
            &anon,
            "c",
            "chat.x",
            SubscribeOptions::default(),
            |_| None
        )
        .is_err());
    // A token's claims: rights the config table does not know, and an expiry.
    let claims = Rights::new(vec![Pattern::parse("jobs.*").unwrap()], vec![]);
    let token = Identity::new(Some("bot"), Arc::new(claims), AuthMethod::Token, Some(1000));
    assert!(hub
        .publish(&token, "jobs.a", PayloadKind::Text, "x".into(), vec![], 999)
        .is_ok());
    assert!(matches!(
        hub.publish(&token, "chat.x", PayloadKind::Text, "x".into(), vec![], 999),
        Err(HubError::Denied(AuthError::PublishDenied { .. }))
    ));
    assert!(matches!(
        hub.publish(
            &token,
            "jobs.a",
            PayloadKind::Text,
            "x".into(),
            vec![],
            1000
        ),
        Err(HubError::Denied(AuthError::Expired { .. }))
    ));
}

#[test]
fn sessions_record_protocol_peer_and_identity_for_presence_and_the_admin_view() {
    let hub = hub();
    let peer = "127.0.0.1:5000".parse().ok();
    let s = hub
        .open_session(Box::new(|| {}), SessionMeta::new("stomp", peer))
        .unwrap();
    assert_eq!(s.identity().method, AuthMethod::Anonymous);
    let ann = hub.authenticate("ann", "").unwrap();
    s.set_identity(ann.clone());
    hub.subscribe(
        &s,
        &ann,
        "room",
        "room",
        SubscribeOptions::default(),
        |_| None,
    )
    .unwrap();
    let members = hub.presence(&anon(), "room").unwrap();
    assert_eq!(
        members,
        [Member {
            client: s.id(),
            user: Some("ann".into()),
            info: None,
            protocol: "stomp"
        }]
    );
    let rows = hub.sessions();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].meta.peer, peer);
    assert_eq!(rows[0].identity.user.as_deref(), Some("ann"));
    assert_eq!(rows[0].subscriptions, 1);
}

#[test]
fn presence_from_another_node_reaches_local_watchers() {
    let hub = hub();
    let w = session(&hub);
    hub.subscribe(
        &w,
        &anon(),
        "room",
        "room",
        SubscribeOptions {
            presence: true,
            ..Default::default()
        },
        |_| None,
    )
    .unwrap();
    hub.deliver_presence(&PresenceEvent {
        topic: "room".into(),
        joined: true,
        client: SessionId(9999),
        user: Some("far".into()),
        info: None,
    });
    assert!(matches!(&drain(&w)[..], [Delivery::Presence(p)] if p.client == SessionId(9999)));
}

#[test]
fn a_gap_from_the_engine_reaches_every_local_subscription_of_the_topic() {
    let hub = hub();
    let (a, b, other) = (session(&hub), session(&hub), session(&hub));
    sub(&hub, &a, "room.*");
    sub(&hub, &b, "room.1");
    sub(&hub, &other, "room.2");
    let told = hub.deliver_gap(
        &"room.1".into(),
        7,
        Some("e2".into()),
        GapReason::EpochChanged,
    );
    assert_eq!(told, 2);
    for (s, key) in [(&a, "room.*"), (&b, "room.1")] {
        let got = drain(s);
        assert!(
            matches!(&got[..], [Delivery::Gap(g)] if &*g.sub == key && &*g.topic == "room.1"
                && g.since == 7 && g.epoch.as_deref() == Some("e2")),
            "{got:?}"
        );
    }
    assert!(drain(&other).is_empty());
}

#[test]
fn session_ids_start_where_the_engine_says() {
    let config = HubConfig::default();
    let engine = Engine::memory(&config, 1);
    let hub = Hub::with_engine_numbered(config, engine, 5 << 32).unwrap();
    assert_eq!(session(&hub).id(), SessionId(5 << 32));
}
