//! Property tests: the trie router agrees with straightforward pattern matching, resume
//! delivers exactly the missing offsets, and outboxes stay within their bounds under every policy.
mod common;
use common::*;
use proptest::prelude::*;
use tidings_core::*;

fn token() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["a", "b", "c"]).prop_map(str::to_owned)
}

fn topic() -> impl Strategy<Value = String> {
    prop::collection::vec(token(), 1..4).prop_map(|t| t.join("."))
}

fn pattern() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(prop::sample::select(vec!["a", "b", "*"]), 1..4),
        any::<bool>(),
    )
        .prop_map(|(toks, rest)| {
            let mut p = toks.join(".");
            if rest {
                p.push_str(".>");
            }
            p
        })
}

proptest! {
    #[test]
    fn router_agrees_with_pattern_matching(patterns in prop::collection::vec(pattern(), 1..8), topics in prop::collection::vec(topic(), 1..10)) {
        let hub = hub();
        let sessions: Vec<_> = patterns.iter().map(|p| { let s = session(&hub); sub(&hub, &s, p); s }).collect();
        for t in &topics { publish(&hub, t, t, 0); }
        for (p, s) in patterns.iter().zip(&sessions) {
            let pat = Pattern::parse(p).unwrap();
            let want: Vec<&String> = topics.iter().filter(|t| pat.matches(t)).collect();
            let got: Vec<String> = messages(s).into_iter().map(|m| m.0).collect();
            prop_assert_eq!(got.iter().collect::<Vec<_>>(), want);
        }
    }

    #[test]
    fn resume_gives_exactly_the_missing_offsets_or_an_error(n in 0u64..40, keep in 1usize..20, since in 0u64..45) {
        let mut cfg = HubConfig::default();
        cfg.history.max_messages = keep;
        let hub = hub_with(cfg);
        for i in 0..n { publish(&hub, "t", &i.to_string(), 0); }
        let s = session(&hub);
        let opts = SubscribeOptions { resume: Some(Resume { since, epoch: None }), presence: false, ..Default::default() };
        let earliest = n.saturating_sub(keep as u64) + 1;
        match hub.subscribe(&s, &anon(), "t", "t", opts, |_| None) {
            Ok(info) => {
                prop_assert!(since <= n && since + 1 >= earliest);
                let got: Vec<u64> = messages(&s).iter().map(|m| m.1).collect();
                prop_assert_eq!(got, ((since + 1)..=n).collect::<Vec<_>>());
                prop_assert_eq!(info.last_offset, n);
            }
            Err(HubError::ResumeUnavailable { .. }) => prop_assert!(since > n || since + 1 < earliest),
            Err(e) => prop_assert!(false, "unexpected {e}"),
        }
    }

    #[test]
    fn outbox_stays_bounded_and_ordered(policy in prop::sample::select(vec![SlowConsumerPolicy::DropOldest, SlowConsumerPolicy::Conflate, SlowConsumerPolicy::Disconnect]),
                                        max in 1usize..16, pubs in prop::collection::vec((0usize..3, 0usize..200), 1..200)) {
        let cfg = HubConfig { outbox: OutboxLimits { max_messages: max, max_bytes: 4096 }, slow_consumer: policy, ..Default::default() };
        let hub = hub_with(cfg);
        let s = session(&hub);
        sub(&hub, &s, "t.*");
        for (i, (t, size)) in pubs.iter().enumerate() {
            publish(&hub, &format!("t.{t}"), &"x".repeat(*size), i as u64);
            let st = s.outbox().stats();
            prop_assert!(st.queued <= max && st.queued_bytes <= 4096);
            if policy == SlowConsumerPolicy::Conflate {
                prop_assert!(st.queued <= 3);
            }
        }
        let closed = s.outbox().is_closed();
        let got = messages(&s);
        if policy == SlowConsumerPolicy::Disconnect && pubs.len() > max {
            prop_assert!(closed);
        }
        if !closed {
            prop_assert!(!got.is_empty());
            // Per topic, offsets only increase.
            for t in 0..3 {
                let offs: Vec<u64> = got.iter().filter(|m| m.0 == format!("t.{t}")).map(|m| m.1).collect();
                prop_assert!(offs.windows(2).all(|w| w[0] < w[1]));
            }
        }
    }
}

#[derive(Debug, Clone)]
enum QueueOp {
    Publish,
    /// Consumer i settles its oldest outstanding message (ack or nack, one or cumulative).
    Settle {
        consumer: usize,
        nack: bool,
        cumulative: bool,
    },
    /// Consumer i goes away and comes back (a new session).
    Reconnect(usize),
}

fn queue_op() -> impl Strategy<Value = QueueOp> {
    prop_oneof![
        3 => Just(QueueOp::Publish),
        3 => (0usize..3, any::<bool>(), any::<bool>()).prop_map(|(consumer, nack, cumulative)| QueueOp::Settle { consumer, nack, cumulative }),
        1 => (0usize..3).prop_map(QueueOp::Reconnect),
    ]
}

proptest! {
    /// Whatever consumers do, a queue message is held by at most one consumer at a time, every
    /// message is acknowledged at most once, prefetch holds, and once everyone acks everything
    /// every published message was acknowledged exactly once.
    #[test]
    fn queue_messages_are_never_lost_nor_shared(ops in prop::collection::vec(queue_op(), 1..120), prefetch in 1usize..4) {
        use std::collections::{BTreeMap, BTreeSet};
        let hub = hub();
        let consume = |s: &Session| {
            hub.consume(s, &anon(), "k", "q", ConsumeOptions { prefetch: Some(prefetch) }, |_| None).unwrap();
        };
        let mut sessions: Vec<Session> = (0..3).map(|_| { let s = session(&hub); consume(&s); s }).collect();
        // Outstanding messages per consumer, in delivery order.
        let mut held: Vec<Vec<u64>> = vec![Vec::new(); 3];
        let mut acked: BTreeSet<u64> = BTreeSet::new();
        let mut published = 0u64;
        let collect = |sessions: &[Session], held: &mut Vec<Vec<u64>>| {
            for (i, s) in sessions.iter().enumerate() {
                for d in drain(s) {
                    if let Delivery::Message { msg, .. } = d {
                        held[i].push(msg.offset);
                    }
                }
            }
        };
        for op in ops {
            match op {
                QueueOp::Publish => {
                    hub.publish_queue(&anon(), "q", PayloadKind::Text, "x".into(), vec![], 0).unwrap();
                    published += 1;
                }
                QueueOp::Settle { consumer, nack, cumulative } => {
                    if let Some(&seq) = held[consumer].first() {
                        let how = if nack { Settle::Requeue } else { Settle::Ack };
                        // Settle the first one (cumulative covers just it) or the last one.
                        let target = if cumulative { *held[consumer].last().unwrap() } else { seq };
                        let n = hub.settle(&sessions[consumer], "k", target, cumulative, how);
                        let settled: Vec<u64> = if cumulative { held[consumer].drain(..).collect() } else { vec![held[consumer].remove(0)] };
                        prop_assert_eq!(n, settled.len());
                        if !nack {
                            for s in settled { prop_assert!(acked.insert(s), "acked twice: {}", s); }
                        }
                    }
                }
                QueueOp::Reconnect(i) => {
                    held[i].clear();
                    sessions[i] = session(&hub);
                    consume(&sessions[i]);
                }
            }
            collect(&sessions, &mut held);
            let mut owners: BTreeMap<u64, usize> = BTreeMap::new();
            for (i, h) in held.iter().enumerate() {
                prop_assert!(h.len() <= prefetch);
                for s in h { prop_assert!(owners.insert(*s, i).is_none(), "{} held twice", s); prop_assert!(!acked.contains(s)); }
            }
        }
        // Everyone acks until nothing is left.
        for _ in 0..(published as usize + 3) {
            for i in 0..3 {
                if let Some(&last) = held[i].last() {
                    hub.settle(&sessions[i], "k", last, true, Settle::Ack);
                    for s in held[i].drain(..) { prop_assert!(acked.insert(s)); }
                }
            }
            collect(&sessions, &mut held);
        }
        prop_assert_eq!(acked, (1..=published).collect::<BTreeSet<u64>>());
    }
}

proptest! {
    /// Route-first subscribe: whatever is published before the begin, between the begin and
    /// the history read, and between the read and the complete, and however short the page,
    /// the subscriber gets each offset after its position at most once, in order, and every
    /// offset it misses is covered by an explicit gap.
    #[test]
    fn route_first_subscribe_never_duplicates_nor_silently_skips(
        before in 0u64..10, during in 0u64..10, after_read in 0u64..10,
        since in 0u64..10, limit in 0usize..25,
    ) {
        let hub = hub();
        for i in 0..before { publish(&hub, "t", &i.to_string(), 0); }
        let since = since.min(before);
        let s = session(&hub);
        let opts = SubscribeOptions { resume: Some(Resume { since, epoch: None }), ..Default::default() };
        let pending = hub.begin_subscribe(&s, &anon(), "t", "t", opts).unwrap();
        for i in 0..during { publish(&hub, "t", &i.to_string(), 0); }
        let pages = vec![hub.history(&anon(), "t", since, limit).unwrap()];
        for i in 0..after_read { publish(&hub, "t", &i.to_string(), 0); }
        hub.complete_subscribe(&s, pending, &pages, |_| None).unwrap();
        let last = before + during + after_read;
        let mut expect = since + 1;
        for d in drain(&s) {
            match d {
                Delivery::Message { msg, .. } => {
                    prop_assert_eq!(msg.offset, expect);
                    expect += 1;
                }
                Delivery::Gap(g) => {
                    prop_assert_eq!(g.reason, GapReason::Incomplete);
                    prop_assert_eq!(g.since + 1, expect);
                    let next = g.next.unwrap();
                    prop_assert!(next > expect);
                    expect = next;
                }
                other => prop_assert!(false, "unexpected {:?}", other),
            }
        }
        prop_assert_eq!(expect, last + 1);
    }
}
