//! Deterministic tests of route-first subscribe: the route goes in first and buffers, the
//! history is read later (as an async caller would), and the two are merged by offset.
#![allow(clippy::field_reassign_with_default)] // tests tweak one field of a default config
mod common;
use common::*;
use std::sync::Arc;
use tidings_core::*;

fn resume(since: u64, epoch: Option<&str>) -> SubscribeOptions {
    SubscribeOptions {
        resume: Some(Resume {
            since,
            epoch: epoch.map(str::to_owned),
        }),
        ..Default::default()
    }
}

fn at(topic: &str, since: u64, epoch: Option<&str>) -> (String, Resume) {
    (
        topic.to_owned(),
        Resume {
            since,
            epoch: epoch.map(str::to_owned),
        },
    )
}

/// What the caller of the two-phase API does: read each wanted page from the log (here the
/// hub's own, with the caller's limit, as a remote log would be read).
fn read(hub: &Hub, pending: &PendingSubscribe, limit: usize) -> Vec<HistoryPage> {
    pending
        .history_wanted()
        .iter()
        .map(|w| {
            hub.history(&anon(), &w.topic, w.since.unwrap_or(0), limit)
                .unwrap()
        })
        .collect()
}

/// A compact view of a session's outbox: "R" reply, "t:3" message, "gap t 3..6 incomplete".
fn trace(s: &Session) -> Vec<String> {
    drain(s)
        .into_iter()
        .map(|d| match d {
            Delivery::Reply(b) => format!("R{}", String::from_utf8_lossy(&b)),
            Delivery::Message { msg, .. } => format!("{}:{}", msg.topic, msg.offset),
            Delivery::Gap(g) => format!(
                "gap {} {}..{} {:?}",
                g.topic,
                g.since,
                g.next.map_or("?".into(), |n| n.to_string()),
                g.reason
            ),
            Delivery::Presence(p) => format!("presence {} {}", p.topic, p.joined),
        })
        .collect()
}

fn epoch_of(hub: &Hub, topic: &str) -> String {
    hub.history(&anon(), topic, 0, 0)
        .unwrap()
        .epoch
        .unwrap()
        .to_string()
}

#[test]
fn live_messages_during_a_pending_subscribe_wait_and_merge_with_overlapping_history() {
    let hub = hub();
    for i in 1..=3 {
        publish(&hub, "t", &i.to_string(), 0);
    }
    let s = session(&hub);
    let pending = hub
        .begin_subscribe(&s, &anon(), "t", "t", resume(1, None))
        .unwrap();
    assert_eq!(
        pending.history_wanted(),
        [HistoryWant {
            topic: "t".into(),
            since: Some(1),
            create: true
        }]
    );
    // Published while the history is being read: held back, not in the outbox yet.
    publish(&hub, "t", "4", 0);
    publish(&hub, "t", "5", 0);
    assert!(drain(&s).is_empty(), "nothing before the reply");
    // The history read now overlaps the held-back messages (4 and 5 are in both).
    let pages = read(&hub, &pending, 100);
    let info = hub
        .complete_subscribe(&s, pending, &pages, |_| Some("ok".into()))
        .unwrap();
    publish(&hub, "t", "6", 0);
    assert_eq!(trace(&s), ["Rok", "t:2", "t:3", "t:4", "t:5", "t:6"]);
    assert_eq!(info.replayed, 4);
    assert_eq!(info.last_offset, 5);
}

#[test]
fn history_read_before_the_live_messages_joins_them_without_a_gap() {
    let hub = hub();
    publish(&hub, "t", "1", 0);
    let s = session(&hub);
    let pending = hub
        .begin_subscribe(&s, &anon(), "t", "t", resume(0, None))
        .unwrap();
    let pages = read(&hub, &pending, 100); // ends at 1
    publish(&hub, "t", "2", 0); // buffered
    hub.complete_subscribe(&s, pending, &pages, |_| Some("".into()))
        .unwrap();
    assert_eq!(trace(&s), ["R", "t:1", "t:2"]);
}

#[test]
fn history_ending_before_the_live_messages_is_an_explicit_gap() {
    let hub = hub();
    for i in 1..=5 {
        publish(&hub, "t", &i.to_string(), 0);
    }
    let s = session(&hub);
    let pending = hub
        .begin_subscribe(&s, &anon(), "t", "t", resume(2, None))
        .unwrap();
    publish(&hub, "t", "6", 0);
    // A short page (a limit, or a lagging replica): only offset 3 of 3..=6.
    let pages = read(&hub, &pending, 1);
    let info = hub
        .complete_subscribe(&s, pending, &pages, |_| Some("".into()))
        .unwrap();
    assert_eq!(trace(&s), ["R", "t:3", "gap t 3..6 Incomplete", "t:6"]);
    assert_eq!(info.topics[0].gap, Some(GapReason::Incomplete));
    // Live delivery goes on normally.
    publish(&hub, "t", "7", 0);
    assert_eq!(trace(&s), ["t:7"]);
}

#[test]
fn a_short_page_with_no_live_message_after_it_is_still_an_explicit_gap() {
    // Found by the route-first property test: nothing published while pending, so no live
    // message revealed the hole, and offsets 4..=5 were skipped without a word.
    let hub = hub();
    for i in 1..=5 {
        publish(&hub, "t", &i.to_string(), 0);
    }
    let s = session(&hub);
    let pending = hub
        .begin_subscribe(&s, &anon(), "t", "t", resume(2, None))
        .unwrap();
    let pages = read(&hub, &pending, 1);
    let info = hub
        .complete_subscribe(&s, pending, &pages, |_| Some("".into()))
        .unwrap();
    assert_eq!(trace(&s), ["R", "t:3", "gap t 3..6 Incomplete"]);
    assert_eq!(info.topics[0].gap, Some(GapReason::Incomplete));
    publish(&hub, "t", "6", 0);
    assert_eq!(trace(&s), ["t:6"]);
}

#[test]
fn an_epoch_change_between_history_and_live_is_a_gap_then_the_new_epoch() {
    let hub = hub();
    for i in 1..=3 {
        publish(&hub, "t", &i.to_string(), 0);
    }
    let e = epoch_of(&hub, "t");
    let s = session(&hub);
    let pending = hub
        .begin_subscribe(&s, &anon(), "t", "t", resume(1, Some(&e)))
        .unwrap();
    let pages = read(&hub, &pending, 100);
    // The shared log lost the topic and numbers again from 1 in a new epoch; the backplane
    // hands the node its first message.
    let reborn = Draft {
        kind: PayloadKind::Text,
        payload: "new".into(),
        headers: vec![],
    }
    .into_message("t".into(), 1, "beef".into(), 0);
    assert_eq!(hub.deliver(Arc::new(reborn)), 1);
    hub.complete_subscribe(&s, pending, &pages, |_| None)
        .unwrap();
    assert_eq!(trace(&s), ["t:2", "t:3", "gap t 3..1 EpochChanged", "t:1"]);
}

#[test]
fn an_exact_resume_in_a_lost_epoch_fails_and_removes_the_route() {
    let hub = hub();
    publish(&hub, "t", "1", 0);
    let s = session(&hub);
    let pending = hub
        .begin_subscribe(&s, &anon(), "t", "t", resume(1, Some("gone")))
        .unwrap();
    assert_eq!(hub.stats().subscriptions, 1);
    let pages = read(&hub, &pending, 100);
    let r = hub.complete_subscribe(&s, pending, &pages, |_| Some("no".into()));
    assert!(
        matches!(&r, Err(HubError::ResumeUnavailable { reason, .. }) if reason.contains("epoch")),
        "{r:?}"
    );
    assert_eq!(hub.stats().subscriptions, 0);
    assert!(drain(&s).is_empty());
}

#[test]
fn unsubscribing_or_resubscribing_while_pending_voids_the_completion() {
    let hub = hub();
    let s = session(&hub);
    let pending = hub
        .begin_subscribe(&s, &anon(), "t", "t", resume(0, None))
        .unwrap();
    publish(&hub, "t", "1", 0);
    hub.unsubscribe(&s, "t").unwrap();
    let pages = read(&hub, &pending, 100);
    assert!(matches!(
        hub.complete_subscribe(&s, pending, &pages, |_| Some("x".into())),
        Err(HubError::NotSubscribed(_))
    ));
    assert!(drain(&s).is_empty());

    let first = hub
        .begin_subscribe(&s, &anon(), "k", "t", SubscribeOptions::default())
        .unwrap();
    let second = hub
        .begin_subscribe(&s, &anon(), "k", "t", SubscribeOptions::default())
        .unwrap();
    let pages = read(&hub, &first, 0);
    assert!(matches!(
        hub.complete_subscribe(&s, first, &pages, |_| None),
        Err(HubError::NotSubscribed(_))
    ));
    let pages = read(&hub, &second, 0);
    hub.complete_subscribe(&s, second, &pages, |_| None)
        .unwrap();
    publish(&hub, "t", "2", 0);
    assert_eq!(trace(&s), ["t:2"]);
    // Cancelling a pending subscribe removes its route.
    let third = hub
        .begin_subscribe(&s, &anon(), "other", "u", SubscribeOptions::default())
        .unwrap();
    assert_eq!(hub.stats().subscriptions, 2);
    hub.cancel_subscribe(third);
    assert_eq!(hub.stats().subscriptions, 1);
}

#[test]
fn a_session_dropped_while_pending_leaves_nothing_behind() {
    let hub = hub();
    let s = session(&hub);
    let _pending = hub
        .begin_subscribe(&s, &anon(), "t", "t.*", SubscribeOptions::default())
        .unwrap();
    publish(&hub, "t.a", "1", 0);
    drop(s);
    assert_eq!(hub.stats().subscriptions, 0);
    assert!(hub.interests().is_empty());
    assert_eq!(publish(&hub, "t.a", "2", 0).receivers, 0);
}

#[test]
fn a_pending_buffer_that_overflows_closes_a_disconnect_session() {
    let mut cfg = HubConfig::default();
    cfg.outbox = OutboxLimits {
        max_messages: 4,
        max_bytes: 1 << 20,
    };
    let hub = hub_with(cfg);
    let s = session(&hub);
    let pending = hub
        .begin_subscribe(&s, &anon(), "t", "t", resume(0, None))
        .unwrap();
    for i in 1..=5 {
        publish(&hub, "t", &i.to_string(), 0);
    }
    assert!(s.outbox().is_closed());
    assert_eq!(hub.stats().slow_consumers_closed, 1);
    let pages = read(&hub, &pending, 100);
    assert!(matches!(
        hub.complete_subscribe(&s, pending, &pages, |_| None),
        Err(HubError::SessionClosed)
    ));
    let mut out = Vec::new();
    assert_eq!(
        s.outbox().drain_into(&mut out),
        Some(CloseReason::SlowConsumer)
    );
}

#[test]
fn a_pending_buffer_under_drop_oldest_keeps_the_newest_and_history_fills_in() {
    let mut cfg = HubConfig::default();
    cfg.outbox = OutboxLimits {
        max_messages: 4,
        max_bytes: 1 << 20,
    };
    cfg.slow_consumer = SlowConsumerPolicy::DropOldest;
    let hub = hub_with(cfg);
    let s = session(&hub);
    let pending = hub
        .begin_subscribe(&s, &anon(), "t", "t", resume(0, None))
        .unwrap();
    for i in 1..=10 {
        publish(&hub, "t", &i.to_string(), 0);
    }
    assert!(!s.outbox().is_closed());
    let pages = read(&hub, &pending, 100);
    hub.complete_subscribe(&s, pending, &pages, |_| None)
        .unwrap();
    let got: Vec<u64> = messages(&s).iter().map(|m| m.1).collect();
    assert_eq!(got, (1..=10).collect::<Vec<_>>(), "no gap, no duplicate");
}

#[test]
fn a_pattern_resumes_per_topic_with_a_gap_where_it_cannot() {
    let mut cfg = HubConfig::default();
    cfg.history.max_messages = 3;
    let hub = hub_with(cfg);
    for i in 1..=3 {
        publish(&hub, "chat.a", &i.to_string(), 0);
    }
    for i in 1..=10 {
        publish(&hub, "chat.b", &i.to_string(), 0);
    }
    publish(&hub, "chat.c", "1", 0);
    let (ea, eb) = (epoch_of(&hub, "chat.a"), epoch_of(&hub, "chat.b"));
    let s = session(&hub);
    let opts = SubscribeOptions {
        positions: vec![
            at("chat.a", 1, Some(&ea)),     // 2, 3 missed: replayed
            at("chat.b", 2, Some(&eb)),     // 3..=7 evicted: a gap
            at("chat.c", 0, Some("other")), // another epoch: a gap
        ],
        ..Default::default()
    };
    let info = hub
        .subscribe(&s, &anon(), "chat.*", "chat.*", opts, |_| Some("".into()))
        .unwrap();
    publish(&hub, "chat.b", "11", 0);
    assert_eq!(
        trace(&s),
        [
            "R",
            "chat.a:2",
            "chat.a:3",
            "gap chat.b 2..8 Evicted",
            "chat.b:8",
            "chat.b:9",
            "chat.b:10",
            "gap chat.c 0..? EpochChanged",
            "chat.b:11"
        ]
    );
    assert_eq!(info.replayed, 5);
    let gaps: Vec<_> = info.topics.iter().map(|t| (&*t.topic, t.gap)).collect();
    assert_eq!(
        gaps,
        [
            ("chat.a", None),
            ("chat.b", Some(GapReason::Evicted)),
            ("chat.c", Some(GapReason::EpochChanged))
        ]
    );
}

#[test]
fn a_pattern_resume_merges_live_messages_of_each_topic_in_two_phases() {
    let hub = hub();
    publish(&hub, "p.a", "1", 0);
    publish(&hub, "p.b", "1", 0);
    let s = session(&hub);
    let opts = SubscribeOptions {
        positions: vec![at("p.a", 0, None), at("p.b", 1, None)],
        ..Default::default()
    };
    let pending = hub
        .begin_subscribe(&s, &anon(), "p.*", "p.*", opts)
        .unwrap();
    publish(&hub, "p.a", "2", 0);
    publish(&hub, "p.c", "1", 0); // no position: passes straight through after the replay
    publish(&hub, "p.b", "2", 0);
    let pages = read(&hub, &pending, 100);
    hub.complete_subscribe(&s, pending, &pages, |_| None)
        .unwrap();
    assert_eq!(trace(&s), ["p.a:1", "p.a:2", "p.b:2", "p.c:1"]);
}

#[test]
fn positions_must_lie_inside_the_pattern_and_resume_still_needs_an_exact_topic() {
    let hub = hub();
    let s = session(&hub);
    let bad = SubscribeOptions {
        positions: vec![at("other.a", 0, None)],
        ..Default::default()
    };
    assert!(matches!(
        hub.subscribe(&s, &anon(), "k", "chat.*", bad, |_| None),
        Err(HubError::BadPosition { .. })
    ));
    assert!(matches!(
        hub.subscribe(&s, &anon(), "k", "chat.*", resume(1, None), |_| None),
        Err(HubError::ResumeNeedsExactTopic(_))
    ));
    let many = SubscribeOptions {
        positions: (0..=MAX_POSITIONS)
            .map(|i| at(&format!("chat.t{i}"), 0, None))
            .collect(),
        ..Default::default()
    };
    assert!(matches!(
        hub.subscribe(&s, &anon(), "k", "chat.*", many, |_| None),
        Err(HubError::BadPosition { .. })
    ));
    assert_eq!(hub.stats().subscriptions, 0);
}

#[test]
fn read_wanted_serves_a_two_phase_subscribe_from_the_hubs_own_engine() {
    let hub = hub();
    publish(&hub, "t", "1", 0);
    let s = session(&hub);
    let pending = hub
        .begin_subscribe(&s, &anon(), "new", "new", SubscribeOptions::default())
        .unwrap();
    let pages = hub.read_wanted(&pending).unwrap();
    let info = hub
        .complete_subscribe(&s, pending, &pages, |_| None)
        .unwrap();
    assert!(info.epoch.is_some(), "the exact topic got state");
    assert_eq!(publish(&hub, "new", "x", 0).receivers, 1);
}
