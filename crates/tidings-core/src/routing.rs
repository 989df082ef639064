//! The subscription index: a trie over topic tokens with `*` and `>` branches.
//!
//! Matching a topic walks one path per literal token plus the `*` branches, so the cost is
//! proportional to the topic's depth and the number of matches, not to the number of
//! subscriptions.

use crate::outbox::{Outbox, SessionId};
use crate::topic::{Pattern, Token};
use std::collections::HashMap;
use std::sync::Arc;

/// A subscription as the router knows it: who, under which key, where to deliver.
#[derive(Debug, Clone)]
pub(crate) struct Route {
    pub(crate) key: Arc<str>,
    pub(crate) outbox: Arc<Outbox>,
}

type Routes = HashMap<(SessionId, Arc<str>), Route>;

#[derive(Debug, Default)]
pub(crate) struct Router {
    root: Node,
    len: usize,
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
        let mut node = &mut self.root;
        for token in pattern.tokens() {
            node = match token {
                Token::Literal(t) => node.literal.entry(t.clone()).or_default(),
                Token::One => node.one.get_or_insert_with(Default::default),
                Token::Rest => {
                    if node
                        .rest
                        .insert((session, route.key.clone()), route)
                        .is_none()
                    {
                        self.len += 1;
                    }
                    return;
                }
            };
        }
        if node
            .here
            .insert((session, route.key.clone()), route)
            .is_none()
        {
            self.len += 1;
        }
    }

    pub(crate) fn remove(&mut self, pattern: &Pattern, session: SessionId, key: &Arc<str>) {
        if remove_in(&mut self.root, pattern.tokens(), &(session, key.clone())) {
            self.len -= 1;
        }
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
