//! Deterministic tests of point-to-point queues (round-robin, prefetch, ack modes, NACK,
//! redelivery, bounds, rights) and transactions.
#![allow(clippy::field_reassign_with_default)] // tests tweak one field of a default config
mod common;
use common::*;
use std::sync::Arc;
use tidings_core::*;

fn consume(hub: &Hub, s: &Session, key: &str, queue: &str, prefetch: Option<usize>) {
    hub.consume(s, &anon(), key, queue, ConsumeOptions { prefetch }, |_| {
        None
    })
    .unwrap();
}

fn put(hub: &Hub, queue: &str, text: &str) -> u64 {
    hub.publish_queue(
        &anon(),
        queue,
        PayloadKind::Text,
        text.to_owned().into(),
        vec![],
        0,
    )
    .unwrap()
}

/// (sequence, payload, redelivered) of each delivered queue message.
fn got(s: &Session) -> Vec<(u64, String, bool)> {
    drain(s)
        .into_iter()
        .filter_map(|d| match d {
            Delivery::Message { msg, .. } => Some((
                msg.offset,
                String::from_utf8_lossy(&msg.payload).into_owned(),
                msg.redelivered,
            )),
            _ => None,
        })
        .collect()
}

fn seqs(s: &Session) -> Vec<u64> {
    got(s).into_iter().map(|m| m.0).collect()
}

#[test]
fn each_message_goes_to_exactly_one_consumer_round_robin() {
    let hub = hub();
    let (a, b) = (session(&hub), session(&hub));
    consume(&hub, &a, "s1", "work", Some(100));
    consume(&hub, &b, "s2", "work", Some(100));
    for i in 1..=6 {
        put(&hub, "work", &i.to_string());
    }
    assert_eq!(seqs(&a), [1, 3, 5]);
    assert_eq!(seqs(&b), [2, 4, 6]);
    let st = hub.queue_stats("work").unwrap();
    assert_eq!((st.ready, st.unacked, st.consumers), (0, 6, 2));
    // Topic subscribers of the same name see nothing: queues are their own namespace.
    let c = session(&hub);
    sub(&hub, &c, "work");
    put(&hub, "work", "7");
    assert!(messages(&c).is_empty());
}

#[test]
fn messages_wait_bounded_while_no_consumer() {
    let mut cfg = HubConfig::default();
    cfg.queues.max_messages = 3;
    let hub = hub_with(cfg);
    for i in 1..=3 {
        put(&hub, "q", &i.to_string());
    }
    let full = hub.publish_queue(&anon(), "q", PayloadKind::Text, "4".into(), vec![], 0);
    assert!(matches!(full, Err(HubError::QueueFull { .. })), "{full:?}");
    let a = session(&hub);
    consume(&hub, &a, "s", "q", None);
    assert_eq!(
        got(&a),
        [
            (1, "1".into(), false),
            (2, "2".into(), false),
            (3, "3".into(), false)
        ]
    );
    // Delivered messages no longer count against the bound.
    put(&hub, "q", "4");
}

#[test]
fn prefetch_limits_unacknowledged_messages_and_acks_give_credit() {
    let hub = hub();
    let a = session(&hub);
    consume(&hub, &a, "s", "q", Some(2));
    for i in 1..=5 {
        put(&hub, "q", &i.to_string());
    }
    assert_eq!(seqs(&a), [1, 2]);
    assert_eq!(hub.queue_stats("q").unwrap().ready, 3);
    // client-individual: one at a time.
    assert_eq!(hub.settle(&a, "s", 2, false, Settle::Ack), 1);
    assert_eq!(seqs(&a), [3]);
    // Settling something not outstanding does nothing.
    assert_eq!(hub.settle(&a, "s", 2, false, Settle::Ack), 0);
    assert_eq!(hub.settle(&a, "s", 99, true, Settle::Ack), 0);
    // client (cumulative): ACK of 3 covers 1 and 3.
    assert_eq!(hub.settle(&a, "s", 3, true, Settle::Ack), 2);
    assert_eq!(seqs(&a), [4, 5]);
}

#[test]
fn nack_gives_the_message_to_another_consumer_marked_redelivered() {
    let hub = hub();
    let (a, b) = (session(&hub), session(&hub));
    consume(&hub, &a, "s", "q", Some(10));
    consume(&hub, &b, "s", "q", Some(10));
    put(&hub, "q", "one");
    assert_eq!(got(&a), [(1, "one".into(), false)]);
    assert_eq!(hub.settle(&a, "s", 1, false, Settle::Requeue), 1);
    assert_eq!(got(&b), [(1, "one".into(), true)]);
    assert!(got(&a).is_empty());
    // With a single consumer, a NACKed message comes back to it.
    drop(b);
    assert_eq!(got(&a), [(1, "one".into(), true)]);
}

#[test]
fn a_consumer_that_goes_away_gives_back_what_it_did_not_ack() {
    let hub = hub();
    let (a, b) = (session(&hub), session(&hub));
    consume(&hub, &a, "s", "q", Some(3));
    for i in 1..=3 {
        put(&hub, "q", &i.to_string());
    }
    assert_eq!(seqs(&a), [1, 2, 3]);
    hub.settle(&a, "s", 1, false, Settle::Ack);
    consume(&hub, &b, "t", "q", Some(10));
    drop(a);
    assert_eq!(got(&b), [(2, "2".into(), true), (3, "3".into(), true)]);
    // Unsubscribing does the same.
    let c = session(&hub);
    consume(&hub, &c, "u", "q", Some(10));
    hub.unsubscribe(&b, "t").unwrap();
    assert_eq!(seqs(&c), [2, 3]);
    drop(c);
    drop(b);
    // Nobody left: the messages wait.
    assert_eq!(hub.queue_stats("q").unwrap().ready, 2);
}

#[test]
fn queue_rights_are_the_topic_rights_of_the_name() {
    let mut cfg = HubConfig::default();
    cfg.auth = AuthConfig {
        users: vec![UserConfig {
            name: "u".into(),
            password: Some("p".into()),
            password_hash: None,
            rights: RightsConfig {
                publish: vec!["jobs.>".into()],
                subscribe: vec!["jobs.>".into()],
            },
        }],
        anonymous: RightsConfig::default(),
    };
    let hub = hub_with(cfg);
    let u = hub.authenticate("u", "p").unwrap();
    let s = session(&hub);
    assert!(hub
        .publish_queue(&u, "jobs.a", PayloadKind::Text, "x".into(), vec![], 0)
        .is_ok());
    assert!(matches!(
        hub.publish_queue(&u, "other", PayloadKind::Text, "x".into(), vec![], 0),
        Err(HubError::Denied(_))
    ));
    assert!(matches!(
        hub.consume(
            &s,
            &hub.access().anonymous(),
            "k",
            "jobs.a",
            ConsumeOptions::default(),
            |_| None
        ),
        Err(HubError::Denied(_))
    ));
    assert!(hub
        .consume(&s, &u, "k", "jobs.a", ConsumeOptions::default(), |_| None)
        .is_ok());
    assert!(matches!(
        hub.consume(&s, &u, "w", "jobs.*", ConsumeOptions::default(), |_| None),
        Err(HubError::Topic(TopicError::Wildcard(_)))
    ));
}

#[test]
fn the_consume_reply_precedes_the_first_message() {
    let hub = hub();
    put(&hub, "q", "waiting");
    let a = session(&hub);
    hub.consume(&a, &anon(), "s", "q", ConsumeOptions::default(), |st| {
        assert_eq!(st.ready, 1);
        Some("OK".into())
    })
    .unwrap();
    let out = drain(&a);
    assert!(matches!(&out[0], Delivery::Reply(b) if &b[..] == b"OK"));
    assert!(matches!(&out[1], Delivery::Message { sub, .. } if &**sub == "s"));
}

fn publish_op(target: Target, name: &str, text: &str) -> Staged {
    Staged::Publish {
        target,
        name: name.into(),
        kind: PayloadKind::Text,
        payload: text.to_owned().into(),
        headers: vec![(Arc::from("k"), Arc::from("v"))],
    }
}

#[test]
fn a_commit_applies_everything_at_once_and_an_abort_nothing() {
    let hub = hub();
    let (a, watcher) = (session(&hub), session(&hub));
    sub(&hub, &watcher, "news");
    consume(&hub, &a, "s", "q", Some(10));
    put(&hub, "q", "1");
    assert_eq!(seqs(&a), [1]);

    let mut tx = Transaction::new(TransactionLimits::default());
    tx.stage(publish_op(Target::Topic, "news", "a")).unwrap();
    tx.stage(publish_op(Target::Queue, "q", "2")).unwrap();
    tx.stage(Staged::Ack {
        key: "s".into(),
        seq: 1,
        cumulative: false,
    })
    .unwrap();
    // Nothing happens before the commit.
    assert!(messages(&watcher).is_empty());
    assert_eq!(hub.queue_stats("q").unwrap().unacked, 1);
    let done = hub.commit(&a, &anon(), tx, 0).unwrap();
    assert_eq!((done.published, done.settled), (2, 1));
    let w = drain(&watcher);
    assert!(
        matches!(&w[0], Delivery::Message { msg, .. } if &msg.payload[..] == b"a" && msg.headers[0].0.as_ref() == "k")
    );
    assert_eq!(seqs(&a), [2]);
    assert_eq!(hub.queue_stats("q").unwrap().unacked, 1);

    // Abort: drop the transaction.
    let mut tx = Transaction::new(TransactionLimits::default());
    tx.stage(publish_op(Target::Topic, "news", "b")).unwrap();
    drop(tx);
    assert!(messages(&watcher).is_empty());
}

#[test]
fn a_commit_that_cannot_apply_everything_applies_nothing() {
    let mut cfg = HubConfig::default();
    cfg.queues.max_messages = 2;
    let hub = hub_with(cfg);
    let (a, watcher) = (session(&hub), session(&hub));
    sub(&hub, &watcher, "news");
    let mut tx = Transaction::new(TransactionLimits::default());
    tx.stage(publish_op(Target::Topic, "news", "a")).unwrap();
    for i in 0..3 {
        tx.stage(publish_op(Target::Queue, "q", &i.to_string()))
            .unwrap();
    }
    let r = hub.commit(&a, &anon(), tx, 0);
    assert!(matches!(r, Err(HubError::QueueFull { .. })), "{r:?}");
    assert!(messages(&watcher).is_empty());
    assert!(hub.queue_stats("q").is_none());

    let mut tx = Transaction::new(TransactionLimits::default());
    tx.stage(publish_op(Target::Topic, "news", "a")).unwrap();
    tx.stage(publish_op(Target::Topic, "bad..name", "b"))
        .unwrap();
    assert!(hub.commit(&a, &anon(), tx, 0).is_err());
    assert!(messages(&watcher).is_empty());
}

#[test]
fn transactions_are_bounded() {
    let limits = TransactionLimits {
        max_operations: 2,
        max_bytes: 1 << 20,
        max_open: 1,
    };
    let mut tx = Transaction::new(limits);
    tx.stage(publish_op(Target::Topic, "t", "1")).unwrap();
    tx.stage(publish_op(Target::Topic, "t", "2")).unwrap();
    assert!(matches!(
        tx.stage(publish_op(Target::Topic, "t", "3")),
        Err(HubError::TransactionTooLarge { .. })
    ));
    assert_eq!(tx.len(), 2);
}

/// Issue 15, finding 8: anonymous STOMP clients parked 30 queues x 16 MB that never expired.
/// All queues together hold at most `queues.max_total_bytes`; past it publishing is refused
/// and nothing accepted is dropped; acknowledged messages give the room back.
#[test]
fn all_queues_together_are_bounded_and_acks_give_room_back() {
    let mut cfg = HubConfig::default();
    cfg.queues.max_total_bytes = 3 * (64 + 2 + 100);
    let hub = hub_with(cfg);
    let body = "x".repeat(100);
    for q in ["q1", "q2", "q3"] {
        put(&hub, q, &body);
    }
    let full = hub.publish_queue(
        &anon(),
        "q4",
        PayloadKind::Text,
        body.clone().into(),
        vec![],
        0,
    );
    assert!(matches!(full, Err(HubError::QueuesFull(_))), "{full:?}");
    assert!(full.unwrap_err().to_string().contains("try again later"));
    // Every accepted message is still delivered; its ack frees room.
    let a = session(&hub);
    hub.consume(
        &a,
        &anon(),
        "s",
        "q1",
        ConsumeOptions { prefetch: None },
        |_| None,
    )
    .unwrap();
    assert_eq!(got(&a).len(), 1);
    let full = hub.publish_queue(
        &anon(),
        "q4",
        PayloadKind::Text,
        body.clone().into(),
        vec![],
        0,
    );
    assert!(full.is_err(), "delivered but unacknowledged still counts");
    hub.settle(&a, &Arc::from("s"), 1, false, Settle::Ack);
    put(&hub, "q4", &body);
}

/// Issue 15, finding 8: a message nobody consumes waits at most `message_ttl_secs`; then it
/// is dropped (counted), its bytes go back to the budget and the empty queue is forgotten.
/// Delivered, unacknowledged messages are not expired.
#[test]
fn messages_waiting_past_the_ttl_are_dropped_and_counted() {
    let mut cfg = HubConfig::default();
    cfg.queues.message_ttl_secs = 10;
    // Room for two messages of 100 bytes (the cost counts the queue name: at most 6 here).
    cfg.queues.max_total_bytes = 2 * (64 + 6 + 100);
    let hub = hub_with(cfg);
    let body = "x".repeat(100);
    let send = |q: &str, now: u64| {
        hub.publish_queue(
            &anon(),
            q,
            PayloadKind::Text,
            body.clone().into(),
            vec![],
            now,
        )
    };
    send("parked", 1_000).unwrap();
    send("held", 1_000).unwrap();
    let a = session(&hub);
    consume(&hub, &a, "s", "held", None);
    assert_eq!(got(&a).len(), 1, "delivered before expiry");
    assert!(matches!(send("q3", 2_000), Err(HubError::QueuesFull(_))));
    hub.sweep(10_999);
    assert_eq!(hub.stats().queue_messages_expired, 0, "not yet 10 s old");
    hub.sweep(11_000);
    assert_eq!(
        hub.stats().queue_messages_expired,
        1,
        "only the waiting one"
    );
    assert_eq!(
        hub.queue_stats("parked"),
        None,
        "the empty queue is forgotten"
    );
    send("q3", 11_000).expect("its bytes are back in the budget");
    // The unacknowledged one is still the consumer's to settle.
    hub.settle(&a, &Arc::from("s"), 1, false, Settle::Ack);
    let b = session(&hub);
    consume(&hub, &b, "s", "parked", None);
    assert!(got(&b).is_empty(), "an expired message is never delivered");
}

#[test]
fn the_admin_lists_queues_and_purges_what_waits_but_not_what_consumers_hold() {
    let hub = hub();
    let a = session(&hub);
    consume(&hub, &a, "s1", "jobs", Some(1));
    for i in 1..=4 {
        put(&hub, "jobs", &i.to_string());
    }
    put(&hub, "idle", "x");
    let names: Vec<String> = hub.queues().iter().map(|(n, _)| n.to_string()).collect();
    assert_eq!(names, ["idle", "jobs"]);
    let jobs = hub.queue_stats("jobs").unwrap();
    assert_eq!((jobs.ready, jobs.unacked), (3, 1));
    assert_eq!(hub.purge_queue("jobs"), Some(3));
    let jobs = hub.queue_stats("jobs").unwrap();
    assert_eq!((jobs.ready, jobs.unacked, jobs.consumers), (0, 1, 1));
    // Without consumers a purged queue is gone; an unknown one is None.
    assert_eq!(hub.purge_queue("idle"), Some(1));
    assert!(hub.queue_stats("idle").is_none());
    assert_eq!(hub.purge_queue("nope"), None);
    // Its bytes went back to the budget: the queue takes messages again.
    put(&hub, "jobs", "5");
}

#[test]
fn the_admin_disconnects_a_session_and_unsubscribes_it() {
    let hub = hub();
    let a = session(&hub);
    sub(&hub, &a, "t");
    let info = hub.sessions();
    assert_eq!(info[0].subscriptions, 1);
    let keys = hub.session_subscriptions(a.id()).unwrap();
    assert_eq!(keys.iter().map(|k| &**k).collect::<Vec<_>>(), ["t"]);
    assert!(hub.session_subscriptions(SessionId(999)).is_none());
    hub.unsubscribe_session(a.id(), "t").unwrap();
    assert!(hub.unsubscribe_session(a.id(), "t").is_err());
    assert_eq!(hub.sessions()[0].subscriptions, 0);
    assert!(hub.close_session(a.id()));
    assert!(a.outbox().is_closed());
    assert!(!hub.close_session(SessionId(999)));
}
