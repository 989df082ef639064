//! Deterministic tests of routing, history/resume, presence, permissions and outbox policies.
#![allow(clippy::field_reassign_with_default)] // tests tweak one field of a default config
mod common;
use common::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tidings_core::*;

#[test]
fn wildcard_and_exact_subscribers_get_matching_messages_in_order() {
    let hub = hub();
    let (a, b, c) = (session(&hub), session(&hub), session(&hub));
    sub(&hub, &a, "chat.lobby");
    sub(&hub, &b, "chat.*");
    sub(&hub, &c, "chat.>");
    publish(&hub, "chat.lobby", "1", 0);
    publish(&hub, "chat.lobby.deep", "2", 0);
    publish(&hub, "other", "3", 0);
    publish(&hub, "chat.lobby", "4", 0);
    assert_eq!(
        messages(&a),
        vec![
            ("chat.lobby".into(), 1, "1".into()),
            ("chat.lobby".into(), 2, "4".into())
        ]
    );
    assert_eq!(messages(&b).len(), 2);
    assert_eq!(
        messages(&c)
            .iter()
            .map(|m| m.2.as_str())
            .collect::<Vec<_>>(),
        ["1", "2", "4"]
    );
}

#[test]
fn payload_is_stored_once_and_shared() {
    let hub = hub();
    let (a, b) = (session(&hub), session(&hub));
    sub(&hub, &a, "t");
    sub(&hub, &b, "t");
    publish(&hub, "t", "shared", 0);
    let (da, db) = (drain(&a), drain(&b));
    match (&da[0], &db[0]) {
        (Delivery::Message { msg: m1, .. }, Delivery::Message { msg: m2, .. }) => {
            assert!(Arc::ptr_eq(m1, m2))
        }
        _ => panic!("expected messages"),
    }
}

#[test]
fn unsubscribe_and_session_drop_stop_delivery() {
    let hub = hub();
    let a = session(&hub);
    sub(&hub, &a, "t");
    hub.unsubscribe(&a, "t").unwrap();
    assert!(matches!(
        hub.unsubscribe(&a, "t"),
        Err(HubError::NotSubscribed(_))
    ));
    publish(&hub, "t", "x", 0);
    assert!(messages(&a).is_empty());
    let b = session(&hub);
    sub(&hub, &b, "t.>");
    assert_eq!(hub.stats().subscriptions, 1);
    drop(b);
    assert_eq!(hub.stats().subscriptions, 0);
    assert_eq!(hub.stats().sessions, 1);
}

#[test]
fn a_narrower_identity_ends_the_subscriptions_it_no_longer_allows() {
    let hub = hub();
    let a = session(&hub);
    sub(&hub, &a, "chat.lobby");
    sub(&hub, &a, "news.>");
    let narrower = Rights::new(vec![], vec![Pattern::parse("chat.>").unwrap()]);
    let who = Identity::new(Some("ann"), Arc::new(narrower), AuthMethod::Token, None);
    let ended = a.reauthorize(who);
    assert_eq!(ended, vec![Arc::<str>::from("news.>")]);
    assert_eq!(a.identity().name(), "ann");
    assert_eq!(hub.stats().subscriptions, 1);
    publish(&hub, "news.x", "gone", 0);
    publish(&hub, "chat.lobby", "kept", 0);
    assert_eq!(messages(&a), vec![("chat.lobby".into(), 1, "kept".into())]);
}

#[test]
fn resume_replays_exactly_what_was_missed_before_live_messages() {
    let hub = hub();
    for i in 1..=5 {
        publish(&hub, "t", &i.to_string(), 0);
    }
    let epoch = hub
        .history(&anon(), "t", 0, 10)
        .unwrap()
        .epoch
        .unwrap()
        .to_string();
    let s = session(&hub);
    let resume = Resume {
        since: 3,
        epoch: Some(epoch),
    };
    let info = hub
        .subscribe(
            &s,
            &anon(),
            "t",
            "t",
            SubscribeOptions {
                resume: Some(resume),
                presence: false,
                ..Default::default()
            },
            |_| Some("ACK".into()),
        )
        .unwrap();
    assert_eq!((info.replayed, info.last_offset), (2, 5));
    publish(&hub, "t", "6", 0);
    let out = drain(&s);
    assert!(
        matches!(&out[0], Delivery::Reply(b) if &b[..] == b"ACK"),
        "ack comes first"
    );
    let offsets: Vec<u64> = out
        .iter()
        .filter_map(|d| match d {
            Delivery::Message { msg, .. } => Some(msg.offset),
            _ => None,
        })
        .collect();
    assert_eq!(offsets, [4, 5, 6]);
}

#[test]
fn resume_beyond_the_window_or_after_epoch_change_says_so() {
    let mut cfg = HubConfig::default();
    cfg.history.max_messages = 3;
    let hub = hub_with(cfg);
    for i in 1..=10 {
        publish(&hub, "t", &i.to_string(), 0);
    }
    let s = session(&hub);
    let opts = |since, epoch: Option<&str>| SubscribeOptions {
        resume: Some(Resume {
            since,
            epoch: epoch.map(str::to_owned),
        }),
        presence: false,
        ..Default::default()
    };
    match hub.subscribe(&s, &anon(), "t", "t", opts(2, None), |_| None) {
        Err(HubError::ResumeUnavailable {
            earliest: 8,
            last: 10,
            ..
        }) => {}
        other => panic!("unexpected {other:?}"),
    }
    assert!(matches!(
        hub.subscribe(
            &s,
            &anon(),
            "t",
            "t",
            opts(9, Some("not-the-epoch")),
            |_| None
        ),
        Err(HubError::ResumeUnavailable { .. })
    ));
    assert!(matches!(
        hub.subscribe(&s, &anon(), "t", "t", opts(11, None), |_| None),
        Err(HubError::ResumeUnavailable { .. })
    ));
    assert!(matches!(
        hub.subscribe(&s, &anon(), "t.*", "t.*", opts(1, None), |_| None),
        Err(HubError::ResumeNeedsExactTopic(_))
    ));
    let ok = hub
        .subscribe(&s, &anon(), "t", "t", opts(7, None), |_| None)
        .unwrap();
    assert_eq!(ok.replayed, 3);
    // A refused resume leaves the subscription under the same key in place.
    assert!(hub
        .subscribe(&s, &anon(), "t", "t", opts(2, None), |_| None)
        .is_err());
    assert_eq!(publish(&hub, "t", "11", 0).receivers, 1);
}

#[test]
fn history_is_bounded_by_count_bytes_and_age() {
    let mut cfg = HubConfig::default();
    cfg.topics.push(TopicRule {
        pattern: "aged.>".into(),
        slow_consumer: None,
        history: Some(HistoryLimits {
            max_messages: 100,
            max_bytes: 1 << 20,
            max_age_ms: 1000,
        }),
    });
    cfg.topics.push(TopicRule {
        pattern: "small.>".into(),
        slow_consumer: None,
        history: Some(HistoryLimits {
            max_messages: 100,
            max_bytes: 300,
            max_age_ms: 0,
        }),
    });
    let hub = hub_with(cfg);
    publish(&hub, "aged.a", "old", 0);
    publish(&hub, "aged.a", "new", 900);
    hub.sweep(1500);
    let page = hub.history(&anon(), "aged.a", 0, 10).unwrap();
    assert_eq!(page.messages.len(), 1);
    assert_eq!(page.earliest, 2);
    for _ in 0..10 {
        publish(&hub, "small.a", &"x".repeat(50), 0);
    }
    let page = hub.history(&anon(), "small.a", 0, 100).unwrap();
    assert!(
        page.messages.len() < 10 && page.messages.iter().map(|m| m.cost()).sum::<usize>() <= 300
    );
    // A topic whose history emptied and that stayed idle is forgotten; it returns with a new epoch.
    let epoch_before = hub.history(&anon(), "aged.a", 0, 1).unwrap().epoch;
    hub.sweep(10_000);
    assert_eq!(hub.history(&anon(), "aged.a", 0, 1).unwrap().epoch, None);
    let again = publish(&hub, "aged.a", "reborn", 10_000);
    assert_eq!(again.offset, 1);
    assert_ne!(Some(again.epoch), epoch_before);
}

#[test]
fn presence_carries_an_identity_s_info() {
    let hub = hub();
    let watcher = session(&hub);
    let opts = SubscribeOptions {
        presence: true,
        ..Default::default()
    };
    hub.subscribe(&watcher, &anon(), "room", "room", opts, |_| None)
        .unwrap();
    let ann = session(&hub);
    let who = Identity::new(
        Some("ann"),
        Arc::new(Rights::all()),
        AuthMethod::Token,
        None,
    )
    .with_info(Some(r#"{"name":"Ann"}"#.into()));
    hub.subscribe(
        &ann,
        &who,
        "room",
        "room",
        SubscribeOptions::default(),
        |_| None,
    )
    .unwrap();
    let members = hub.presence(&anon(), "room").unwrap();
    let info: Vec<_> = members.iter().map(|m| m.info.as_deref()).collect();
    assert!(info.contains(&Some(r#"{"name":"Ann"}"#)), "{info:?}");
    let joined = drain(&watcher);
    assert!(
        matches!(&joined[..], [Delivery::Presence(p)] if p.info.as_deref() == Some(r#"{"name":"Ann"}"#)),
        "{joined:?}"
    );
    drop(ann);
    let left = drain(&watcher);
    assert!(
        matches!(&left[..], [Delivery::Presence(p)] if !p.joined && p.info.is_some()),
        "{left:?}"
    );
}

#[test]
fn presence_lists_members_and_tells_watchers_of_joins_and_leaves() {
    let hub = hub();
    let watcher = session(&hub);
    hub.subscribe(
        &watcher,
        &hub.authenticate("ann", "").unwrap(),
        "room",
        "room",
        SubscribeOptions {
            resume: None,
            presence: true,
            ..Default::default()
        },
        |_| None,
    )
    .unwrap();
    let bob = session(&hub);
    hub.subscribe(
        &bob,
        &hub.authenticate("bob", "").unwrap(),
        "room",
        "room",
        SubscribeOptions::default(),
        |_| None,
    )
    .unwrap();
    let members = hub.presence(&anon(), "room").unwrap();
    assert_eq!(
        members
            .iter()
            .map(|m| m.user.as_deref())
            .collect::<Vec<_>>(),
        [Some("ann"), Some("bob")]
    );
    let bob_id = bob.id();
    drop(bob);
    let events: Vec<(bool, SessionId)> = drain(&watcher)
        .into_iter()
        .filter_map(|d| match d {
            Delivery::Presence(p) => Some((p.joined, p.client)),
            _ => None,
        })
        .collect();
    assert_eq!(events, [(true, bob_id), (false, bob_id)]);
    assert_eq!(hub.presence(&anon(), "room").unwrap().len(), 1);
}

#[test]
fn permissions_apply_to_publish_subscribe_history_and_presence() {
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
    let hub = hub_with(cfg);
    let s = session(&hub);
    assert!(matches!(
        hub.authenticate("alice", "bad"),
        Err(HubError::Denied(AuthError::BadCredentials))
    ));
    let alice = hub.authenticate("alice", "pw").unwrap();
    assert!(hub
        .publish(&alice, "chat.x", PayloadKind::Text, "a".into(), vec![], 0)
        .is_ok());
    assert!(matches!(
        hub.publish(
            &hub.access().anonymous(),
            "chat.x",
            PayloadKind::Text,
            "a".into(),
            vec![],
            0
        ),
        Err(HubError::Denied(_))
    ));
    assert!(hub
        .subscribe(&s, &alice, "k", ">", SubscribeOptions::default(), |_| None)
        .is_err());
    assert!(hub
        .subscribe(
            &s,
            &alice,
            "k",
            "chat.*",
            SubscribeOptions::default(),
            |_| None
        )
        .is_ok());
    assert!(hub
        .history(&hub.access().anonymous(), "chat.x", 0, 1)
        .is_err());
    assert!(hub.presence(&hub.access().anonymous(), "chat.x").is_err());
}

#[test]
fn disconnect_policy_closes_a_slow_consumer_without_holding_back_others() {
    let mut cfg = HubConfig::default();
    cfg.outbox = OutboxLimits {
        max_messages: 10,
        max_bytes: 1 << 20,
    };
    let hub = hub_with(cfg);
    let (slow, fast) = (session(&hub), session(&hub));
    sub(&hub, &slow, "t");
    sub(&hub, &fast, "t");
    for i in 0..25 {
        publish(&hub, "t", &i.to_string(), 0);
        if i % 5 == 0 {
            assert!(messages(&fast).len() <= 5);
        }
    }
    let mut out = Vec::new();
    assert_eq!(
        slow.outbox().drain_into(&mut out),
        Some(CloseReason::SlowConsumer)
    );
    assert!(out.is_empty(), "a closed slow consumer's queue is freed");
    assert!(!fast.outbox().is_closed());
    assert_eq!(hub.stats().slow_consumers_closed, 1);
}

#[test]
fn drop_oldest_keeps_the_newest_within_bounds() {
    let mut cfg = HubConfig::default();
    cfg.outbox = OutboxLimits {
        max_messages: 4,
        max_bytes: 1 << 20,
    };
    cfg.slow_consumer = SlowConsumerPolicy::DropOldest;
    let hub = hub_with(cfg);
    let s = session(&hub);
    sub(&hub, &s, "t");
    for i in 1..=10 {
        publish(&hub, "t", &i.to_string(), 0);
    }
    assert_eq!(s.outbox().stats().dropped, 6);
    let got: Vec<u64> = messages(&s).iter().map(|m| m.1).collect();
    assert_eq!(got, [7, 8, 9, 10]);
}

#[test]
fn conflate_keeps_only_the_newest_per_topic() {
    let mut cfg = HubConfig::default();
    cfg.topics.push(TopicRule {
        pattern: "prices.>".into(),
        slow_consumer: Some(SlowConsumerPolicy::Conflate),
        history: None,
    });
    let hub = hub_with(cfg);
    let s = session(&hub);
    sub(&hub, &s, "prices.*");
    for i in 1..=100 {
        publish(&hub, "prices.AAPL", &format!("a{i}"), 0);
        publish(&hub, "prices.MSFT", &format!("m{i}"), 0);
    }
    let got = messages(&s);
    assert_eq!(
        got,
        vec![
            ("prices.AAPL".into(), 100, "a100".into()),
            ("prices.MSFT".into(), 100, "m100".into())
        ]
    );
}

#[test]
fn replies_are_never_dropped_and_wake_fires_once_per_batch() {
    let wakes = Arc::new(AtomicUsize::new(0));
    let w = wakes.clone();
    let hub = hub();
    let s = hub
        .open_session(
            Box::new(move || {
                w.fetch_add(1, Ordering::SeqCst);
            }),
            SessionMeta::new("test", None),
        )
        .unwrap();
    for _ in 0..3 {
        s.outbox().push_reply("r".into());
    }
    assert_eq!(wakes.load(Ordering::SeqCst), 1);
    assert_eq!(drain(&s).len(), 3);
    s.outbox().push_reply("r".into());
    assert_eq!(wakes.load(Ordering::SeqCst), 2);
}

#[test]
fn shutdown_keeps_queued_messages_for_flushing_and_refuses_new_work() {
    let hub = hub();
    let s = session(&hub);
    sub(&hub, &s, "t");
    publish(&hub, "t", "last words", 0);
    hub.shutdown();
    let mut out = Vec::new();
    assert_eq!(s.outbox().drain_into(&mut out), Some(CloseReason::Shutdown));
    assert_eq!(out.len(), 1);
    assert!(matches!(
        hub.publish(&anon(), "t", PayloadKind::Text, "x".into(), vec![], 0),
        Err(HubError::ShuttingDown)
    ));
}

#[test]
fn limits_on_topics_and_subscriptions_hold() {
    let mut cfg = HubConfig::default();
    cfg.max_topics = 2;
    cfg.max_subscriptions_per_session = 2;
    let hub = hub_with(cfg);
    publish(&hub, "a", "", 0);
    publish(&hub, "b", "", 0);
    assert!(matches!(
        hub.publish(&anon(), "c", PayloadKind::Text, "".into(), vec![], 0),
        Err(HubError::TooManyTopics(2))
    ));
    let s = session(&hub);
    // Subscribing to an exact topic gives it state, so it counts as a topic too.
    assert!(matches!(
        hub.subscribe(&s, &anon(), "c", "c", SubscribeOptions::default(), |_| None),
        Err(HubError::TooManyTopics(2))
    ));
    sub(&hub, &s, "x.*");
    sub(&hub, &s, "y.*");
    sub(&hub, &s, "y.*"); // re-subscribing replaces, does not count twice
    assert!(matches!(
        hub.subscribe(
            &s,
            &anon(),
            "z.*",
            "z.*",
            SubscribeOptions::default(),
            |_| None
        ),
        Err(HubError::TooManySubscriptions(2))
    ));
}

#[test]
fn topics_lists_state_and_subscriber_counts() {
    let hub = hub();
    let s = session(&hub);
    sub(&hub, &s, "a.*");
    sub(&hub, &s, "waiting");
    publish(&hub, "a.b", "x", 0);
    let topics = hub.topics();
    let names: Vec<&str> = topics.iter().map(|t| &*t.name).collect();
    assert_eq!(names, ["a.b", "waiting"]);
    assert_eq!((topics[0].subscribers, topics[0].last_offset), (1, 1));
}

#[test]
fn an_exact_subscription_learns_the_epoch_before_the_first_message_and_keeps_the_topic() {
    let hub = hub();
    let s = session(&hub);
    let info = hub
        .subscribe(
            &s,
            &anon(),
            "new",
            "new",
            SubscribeOptions::default(),
            |_| None,
        )
        .unwrap();
    let first = publish(&hub, "new", "1", 0);
    assert_eq!(
        info.epoch,
        Some(first.epoch.clone()),
        "the epoch given at subscribe is the topic's"
    );
    assert_eq!(first.offset, 1);
    hub.sweep(10 * 3_600_000);
    hub.sweep(20 * 3_600_000);
    let again = publish(&hub, "new", "2", 20 * 3_600_000);
    assert_eq!(
        (again.offset, again.epoch),
        (2, first.epoch),
        "a subscribed topic is not forgotten"
    );
}

/// Issue 15, finding 8: 300 topics x 1 MiB of history were held for an hour. All histories
/// together hold at most `max_history_bytes`; past it the publishing topic's own oldest
/// messages make room, so every message is still delivered live and what history keeps is
/// contiguous (a resume from before it gets a gap, never a silent hole).
#[test]
fn all_histories_together_are_bounded_and_live_delivery_goes_on() {
    let mut cfg = HubConfig::default();
    cfg.max_history_bytes = 2_000;
    let hub = hub_with(cfg);
    let live = session(&hub);
    sub(&hub, &live, "t.>");
    let body = "x".repeat(400);
    for i in 0..10 {
        publish(&hub, &format!("t.{i}"), &body, 0);
    }
    for _ in 0..20 {
        publish(&hub, "t.busy", &body, 0);
    }
    assert_eq!(messages(&live).len(), 30, "every message delivered live");
    let kept = |topic: &str| hub.history(&anon(), topic, 0, 100).unwrap();
    let total: usize = (0..10)
        .map(|i| kept(&format!("t.{i}")).messages.len())
        .sum::<usize>()
        + kept("t.busy").messages.len();
    assert!(total <= 4, "the budget holds: {total} kept");
    assert_eq!(kept("t.0").messages.len(), 1, "what was kept early stays");
    let busy = kept("t.busy");
    let offsets: Vec<u64> = busy.messages.iter().map(|m| m.offset).collect();
    assert_eq!(busy.last_offset, 20);
    assert!(
        offsets.is_empty()
            || offsets.windows(2).all(|w| w[1] == w[0] + 1) && offsets.last() == Some(&20),
        "contiguous and newest: {offsets:?}"
    );
    assert_eq!(busy.earliest, offsets.first().copied().unwrap_or(21));
}

#[test]
fn slow_consumer_closes_are_remembered_for_the_admin_view() {
    let mut cfg = HubConfig::default();
    cfg.outbox.max_messages = 2;
    let hub = hub_with(cfg);
    let s = hub
        .open_session(
            Box::new(|| {}),
            SessionMeta::new("ws", Some("127.0.0.1:4000".parse().unwrap())),
        )
        .unwrap();
    sub(&hub, &s, "slow.t");
    for i in 0..4 {
        publish(&hub, "slow.t", &i.to_string(), 5);
    }
    let closes = hub.recent_slow_consumers();
    assert_eq!(closes.len(), 1);
    assert_eq!(closes[0].session, s.id());
    assert_eq!(closes[0].protocol, "ws");
    assert_eq!(&*closes[0].topic, "slow.t");
}
