//! The subscription index: a trie over topic tokens with `*` and `>` branches.
//!
//! Matching a topic walks one path per literal token plus the `*` branches, so the cost is
//! proportional to the topic's depth and the number of matches, not to the number of
//! subscriptions.
//!
//! The router also counts routes per pattern and reports [`InterestEvent`]s when the node
//! gains its first subscriber to a pattern or loses its last, so a node can follow a cluster
//! backplane only for what its own clients want.

use crate::merge::LiveBuffer;
use crate::outbox::{Outbox, SessionId};
use crate::topic::{Pattern, Token};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// Most interest events kept undrained. Beyond it the queue is replaced by one
/// [`InterestEvent::Resync`]: whoever drains it re-reads the whole set, so a consumer that
/// stopped draining costs a bounded amount of memory.
pub const MAX_INTEREST_EVENTS: usize = 4096;

/// A change in what this node's sessions subscribe to, by pattern text (an exact topic is a
/// pattern without wildcards).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum InterestEvent {
    /// The first local subscription to this pattern.
    Gained(Arc<str>),
    /// The last local subscription to this pattern went.
    Lost(Arc<str>),
    /// Events were lost (nobody drained them): read the whole set with `Hub::interests`.
    Resync,
}

/// A subscription as the router knows it: who, under which key, where to deliver.
#[derive(Debug)]
pub(crate) struct Route {
    pub(crate) key: Arc<str>,
    pub(crate) outbox: Arc<Outbox>,
    /// `Some` while the subscribe is pending: live messages wait here for the history.
    pub(crate) pending: Option<LiveBuffer>,
    /// An exact subscription's position once subscribed: (epoch, last offset it has or was
    /// counted in its history read). A message at or below it is skipped: with a shared
    /// engine, pub/sub may deliver it after the read that already counted it.
    pub(crate) floor: Option<(Arc<str>, u64)>,
}

type Routes = HashMap<(SessionId, Arc<str>), Route>;

#[derive(Debug, Default)]
pub(crate) struct Router {
    root: Node,
    len: usize,
    /// Routes per pattern text, for interest events.
    interest: HashMap<Arc<str>, usize>,
    events: VecDeque<InterestEvent>,
}

#[derive(Debug, Default)]
struct Node {
    literal: HashMap<Box<str>, Node>,
    one: Option<Box<Node>>,
    /// Subscriptions ending in `>` at this depth.
    rest: Routes,
    /// Subscriptions ending exactly here.
    here: Routes,
}

impl Node {
    fn is_empty(&self) -> bool {
        self.literal.is_empty()
            && self.one.is_none()
            && self.rest.is_empty()
            && self.here.is_empty()
    }
}

impl Router {
    pub(crate) fn insert(&mut self, pattern: &Pattern, session: SessionId, route: Route) {
        if self.insert_route(pattern, session, route) {
            self.len += 1;
            let n = self.interest.entry(pattern.text().clone()).or_default();
            *n += 1;
            if *n == 1 {
                self.report(InterestEvent::Gained(pattern.text().clone()));
            }
        }
    }

    /// True when the route is new (not a replacement).
    fn insert_route(&mut self, pattern: &Pattern, session: SessionId, route: Route) -> bool {
        let mut node = &mut self.root;
        for token in pattern.tokens() {
            node = match token {
                Token::Literal(t) => node.literal.entry(t.clone()).or_default(),
                Token::One => node.one.get_or_insert_with(Default::default),
                Token::Rest => {
                    return node
                        .rest
                        .insert((session, route.key.clone()), route)
                        .is_none();
                }
            };
        }
        node.here
            .insert((session, route.key.clone()), route)
            .is_none()
    }

    pub(crate) fn remove(&mut self, pattern: &Pattern, session: SessionId, key: &Arc<str>) {
        if remove_in(&mut self.root, pattern.tokens(), &(session, key.clone())) {
            self.len -= 1;
            if let Some(n) = self.interest.get_mut(pattern.as_str()) {
                *n -= 1;
                if *n == 0 {
                    self.interest.remove(pattern.as_str());
                    self.report(InterestEvent::Lost(pattern.text().clone()));
                }
            }
        }
    }

    /// Queues an event, bounded (see [`MAX_INTEREST_EVENTS`]). A gain right after the loss of
    /// the same pattern (a re-subscribe) cancels out.
    fn report(&mut self, ev: InterestEvent) {
        if let (InterestEvent::Gained(p), Some(InterestEvent::Lost(q))) = (&ev, self.events.back())
        {
            if p == q {
                self.events.pop_back();
                return;
            }
        }
        if self.events.len() >= MAX_INTEREST_EVENTS {
            self.events.clear();
            self.events.push_back(InterestEvent::Resync);
        }
        self.events.push_back(ev);
    }

    /// Moves the undrained interest events into `out`, oldest first.
    pub(crate) fn drain_interest(&mut self, out: &mut Vec<InterestEvent>) {
        out.extend(self.events.drain(..));
    }

    pub(crate) fn has_interest_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// Every pattern with at least one local subscription, sorted.
    pub(crate) fn interests(&self) -> Vec<Arc<str>> {
        let mut all: Vec<Arc<str>> = self.interest.keys().cloned().collect();
        all.sort();
        all
    }

    /// The route of `session`'s subscription `key` to `pattern`.
    pub(crate) fn get_mut(
        &mut self,
        pattern: &Pattern,
        session: SessionId,
        key: &Arc<str>,
    ) -> Option<&mut Route> {
        let id = (session, key.clone());
        let mut node = &mut self.root;
        for token in pattern.tokens() {
            node = match token {
                Token::Literal(t) => node.literal.get_mut(t)?,
                Token::One => node.one.as_deref_mut()?,
                Token::Rest => return node.rest.get_mut(&id),
            };
        }
        node.here.get_mut(&id)
    }

    /// Calls `f` for every subscription whose pattern matches `topic`, mutably (a pending
    /// route buffers).
    pub(crate) fn for_each_match_mut(&mut self, topic: &str, mut f: impl FnMut(&mut Route)) {
        let tokens: Vec<&str> = topic.split('.').collect();
        walk_mut(&mut self.root, &tokens, &mut f);
    }

    /// Calls `f` for every subscription whose pattern matches `topic`.
    pub(crate) fn for_each_match(&self, topic: &str, mut f: impl FnMut(SessionId, &Route)) {
        let tokens: Vec<&str> = topic.split('.').collect();
        walk(&self.root, &tokens, &mut f);
    }

    pub(crate) fn count_matches(&self, topic: &str) -> usize {
        let mut n = 0;
        self.for_each_match(topic, |_, _| n += 1);
        n
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

fn walk(node: &Node, tokens: &[&str], f: &mut impl FnMut(SessionId, &Route)) {
    let Some((first, rest)) = tokens.split_first() else {
        for ((s, _), r) in &node.here {
            f(*s, r);
        }
        return;
    };
    for ((s, _), r) in &node.rest {
        f(*s, r);
    }
    if let Some(child) = node.literal.get(*first) {
        walk(child, rest, f);
    }
    if let Some(child) = &node.one {
        walk(child, rest, f);
    }
}

fn walk_mut(node: &mut Node, tokens: &[&str], f: &mut impl FnMut(&mut Route)) {
    let Some((first, rest)) = tokens.split_first() else {
        node.here.values_mut().for_each(&mut *f);
        return;
    };
    node.rest.values_mut().for_each(&mut *f);
    if let Some(child) = node.literal.get_mut(*first) {
        walk_mut(child, rest, f);
    }
    if let Some(child) = &mut node.one {
        walk_mut(child, rest, f);
    }
}

/// Removes the route and prunes nodes left empty. True when something was removed.
fn remove_in(node: &mut Node, tokens: &[Token], id: &(SessionId, Arc<str>)) -> bool {
    let Some((first, rest)) = tokens.split_first() else {
        return node.here.remove(id).is_some();
    };
    match first {
        Token::Rest => node.rest.remove(id).is_some(),
        Token::Literal(t) => {
            let Some(child) = node.literal.get_mut(t) else {
                return false;
            };
            let removed = remove_in(child, rest, id);
            if child.is_empty() {
                node.literal.remove(t);
            }
            removed
        }
        Token::One => {
            let Some(child) = node.one.as_mut() else {
                return false;
            };
            let removed = remove_in(child, rest, id);
            if child.is_empty() {
                node.one = None;
            }
            removed
        }
    }
}
