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
        let opts = SubscribeOptions { resume: Some(Resume { since, epoch: None }), presence: false };
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
