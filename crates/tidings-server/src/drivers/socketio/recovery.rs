//! Connection state recovery backed by topic history and offsets.
//!
//! Socket.IO's client keeps the `offset` (last argument) of the last event it received and
//! sends it back with the session's `pid` when it reconnects. Our offset names a message,
//! `"<offset>:<topic>"`, so one encoding serves every subscriber. To turn "the last message I
//! got" into a resume point per topic, each session keeps a [`Tracker`]: the order in which
//! it was sent messages, as runs of consecutive offsets per topic (bounded), and per
//! subscription the offset before the first of those runs. On reconnect, each exact-topic
//! subscription is resumed from the hub's history after the last offset the client got.
//! Wildcard subscriptions cannot be resumed (history is per topic), so a session with one
//! is not recovered: the client sees `socket.recovered === false` and starts over.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Most runs remembered per session: a client's last offset is nearly always among the
/// newest few, and a busy session's runs must not cost memory per message.
const MAX_RUNS: usize = 64;

/// Consecutive offsets of one topic, in the order they were sent.
#[derive(Debug, Clone)]
struct Run {
    topic: Arc<str>,
    from: u64,
    to: u64,
}

/// A subscription as recovery needs it.
#[derive(Debug, Clone)]
pub(crate) struct Sub {
    /// The full pattern (namespace prefix included).
    pub(crate) pattern: Arc<str>,
    pub(crate) presence: bool,
    /// Exact topics only: the epoch and the last offset known sent before the runs.
    pub(crate) epoch: Option<Arc<str>>,
    base: u64,
    exact: bool,
}

/// What one session sent, for recovery (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    runs: VecDeque<Run>,
    /// Runs were forgotten: a client that got none of the remembered ones cannot be placed.
    evicted: bool,
    subs: HashMap<Arc<str>, Sub>,
}

impl Tracker {
    /// A message of `topic` at `offset` was handed to the transport.
    pub(crate) fn sent(&mut self, topic: &Arc<str>, offset: u64) {
        if let Some(last) = self.runs.back_mut() {
            let same = Arc::ptr_eq(&last.topic, topic) || *last.topic == **topic;
            if same && offset == last.to + 1 {
                last.to = offset;
                return;
            }
        }
        if self.runs.len() == MAX_RUNS {
            if let Some(old) = self.runs.pop_front() {
                if let Some(sub) = self.subs.get_mut(&old.topic) {
                    sub.base = sub.base.max(old.to);
                }
                self.evicted = true;
            }
        }
        self.runs.push_back(Run {
            topic: topic.clone(),
            from: offset,
            to: offset,
        });
    }

    /// A subscription was made; `base` is the offset delivery starts after.
    pub(crate) fn subscribed(
        &mut self,
        pattern: &str,
        presence: bool,
        exact: bool,
        epoch: Option<Arc<str>>,
        base: u64,
    ) {
        let pattern: Arc<str> = pattern.into();
        self.subs.insert(
            pattern.clone(),
            Sub {
                pattern,
                presence,
                epoch,
                base,
                exact,
            },
        );
    }

    pub(crate) fn unsubscribed(&mut self, pattern: &str) {
        self.subs.remove(pattern);
    }

    /// Where each subscription resumes, given the client's last offset (`"<offset>:<topic>"`),
    /// or `None` when that cannot be known exactly.
    pub(crate) fn resume_points(&self, client_offset: Option<&str>) -> Option<Vec<(Sub, u64)>> {
        if self.subs.values().any(|s| !s.exact) {
            return None;
        }
        let mut got: HashMap<&str, u64> = self.subs.iter().map(|(k, s)| (&**k, s.base)).collect();
        match client_offset {
            None if self.evicted => return None,
            None => {}
            Some(text) => {
                let (offset, topic) = text.split_once(':')?;
                let offset: u64 = offset.parse().ok()?;
                let at = self
                    .runs
                    .iter()
                    .rposition(|r| &*r.topic == topic && r.from <= offset && offset <= r.to)?;
                for run in self.runs.iter().take(at) {
                    if let Some(v) = got.get_mut(&*run.topic) {
                        *v = (*v).max(run.to);
                    }
                }
                if let Some(v) = got.get_mut(topic) {
                    *v = (*v).max(offset);
                }
            }
        }
        Some(
            self.subs
                .iter()
                .map(|(k, s)| (s.clone(), got.get(&**k).copied().unwrap_or(s.base)))
                .collect(),
        )
    }
}

/// A disconnected session waiting for its client.
#[derive(Debug)]
pub(crate) struct Record {
    pub(crate) namespace: Arc<str>,
    pub(crate) sid: String,
    pub(crate) tracker: Tracker,
}

/// Disconnected sessions by `pid`, bounded in count and age.
#[derive(Debug)]
pub(crate) struct Store {
    max_age: Duration,
    max: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    map: HashMap<String, (Instant, Record)>,
    /// Insertion order, for expiry and eviction (entries already taken are skipped).
    order: VecDeque<(Instant, String)>,
}

impl Store {
    pub(crate) fn new(max_age: Duration, max: usize) -> Self {
        Store {
            max_age,
            max,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn put(&self, pid: String, record: Record) {
        if self.max == 0 || self.max_age.is_zero() {
            return;
        }
        let now = Instant::now();
        let mut inner = self.lock();
        while let Some((at, pid)) = inner.order.front().cloned() {
            let expired = now.duration_since(at) >= self.max_age;
            if !expired && inner.map.len() < self.max {
                break;
            }
            inner.order.pop_front();
            if inner.map.get(&pid).is_some_and(|(t, _)| *t == at) {
                inner.map.remove(&pid);
            }
        }
        inner.order.push_back((now, pid.clone()));
        inner.map.insert(pid, (now, record));
    }

    pub(crate) fn take(&self, pid: &str) -> Option<Record> {
        let (at, record) = self.lock().map.remove(pid)?;
        (at.elapsed() < self.max_age).then_some(record)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points(t: &Tracker, offset: Option<&str>) -> Option<Vec<(String, u64)>> {
        let mut v: Vec<(String, u64)> = t
            .resume_points(offset)?
            .into_iter()
            .map(|(s, o)| (s.pattern.to_string(), o))
            .collect();
        v.sort();
        Some(v)
    }

    #[test]
    fn resumes_each_topic_after_what_the_client_got() {
        let a: Arc<str> = "a".into();
        let b: Arc<str> = "b".into();
        let mut t = Tracker::default();
        t.subscribed("a", false, true, Some("e".into()), 10);
        t.subscribed("b", false, true, Some("e".into()), 0);
        for (topic, off) in [(&a, 11), (&a, 12), (&b, 1), (&a, 13), (&b, 2)] {
            t.sent(topic, off);
        }
        assert_eq!(t.runs.len(), 4);
        assert_eq!(
            points(&t, Some("1:b")).unwrap(),
            vec![("a".into(), 12), ("b".into(), 1)]
        );
        assert_eq!(
            points(&t, Some("2:b")).unwrap(),
            vec![("a".into(), 13), ("b".into(), 2)]
        );
        assert_eq!(
            points(&t, None).unwrap(),
            vec![("a".into(), 10), ("b".into(), 0)]
        );
        assert!(points(&t, Some("9:b")).is_none(), "never sent");
        assert!(points(&t, Some("junk")).is_none());
    }

    #[test]
    fn forgets_old_runs_and_refuses_what_it_cannot_place() {
        let a: Arc<str> = "a".into();
        let b: Arc<str> = "b".into();
        let mut t = Tracker::default();
        t.subscribed("a", false, true, None, 0);
        t.subscribed("b", false, true, None, 0);
        for i in 1..=(MAX_RUNS as u64) {
            t.sent(&a, i);
            t.sent(&b, i);
        }
        assert_eq!(t.runs.len(), MAX_RUNS);
        assert!(points(&t, None).is_none());
        assert!(points(&t, Some("1:a")).is_none(), "forgotten");
        let last = format!("{}:b", MAX_RUNS);
        assert_eq!(
            points(&t, Some(&last)).unwrap(),
            vec![("a".into(), MAX_RUNS as u64), ("b".into(), MAX_RUNS as u64)]
        );
        t.subscribed("c.*", false, false, None, 0);
        assert!(points(&t, Some(&last)).is_none(), "wildcards cannot resume");
    }

    #[test]
    fn store_is_bounded() {
        let s = Store::new(Duration::from_secs(60), 2);
        for i in 0..3 {
            s.put(
                format!("p{i}"),
                Record {
                    namespace: "/".into(),
                    sid: String::new(),
                    tracker: Tracker::default(),
                },
            );
        }
        assert_eq!(s.len(), 2);
        assert!(s.take("p0").is_none());
        assert!(s.take("p2").is_some());
        assert!(s.take("p2").is_none());
    }
}
