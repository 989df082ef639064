//! What offsets tell a UDP subscriber: gaps (lost datagrams), duplicates, late arrivals.
//!
//! Per topic, the highest offset seen and a 64-offset window below it (as IPsec's
//! anti-replay window): an offset seen before is a duplicate and dropped; one above the
//! highest plus one reveals a gap; one inside the window not seen yet arrived late (it is
//! delivered: the gap reported earlier was partly reordering, not loss).

use std::collections::HashMap;

/// Width of the duplicate window.
const WINDOW: u64 = 64;
/// Topics tracked at once; beyond it the table starts over (a duplicate may then slip
/// through once per topic), so a subscription to `>` cannot grow it without bound.
const MAX_TOPICS: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Deliver it. `gap`: offsets `since + 1 .. earliest` were not seen (yet).
    Deliver { gap: Option<(u64, u64)> },
    /// Seen already: drop it.
    Duplicate,
}

struct Track {
    epoch: String,
    highest: u64,
    /// Bit `i` set: offset `highest - i` was seen.
    seen: u64,
}

#[derive(Default)]
pub(crate) struct Order {
    topics: HashMap<String, Track>,
}

impl Order {
    /// Starts `topic` at `last_offset` of `epoch` (from a subscribe's answer), so a gap
    /// before the first message is noticed too.
    pub(crate) fn start(&mut self, topic: &str, epoch: &str, last_offset: u64) {
        self.make_room();
        self.topics.insert(
            topic.to_owned(),
            Track {
                epoch: epoch.to_owned(),
                highest: last_offset,
                seen: u64::MAX,
            },
        );
    }

    fn make_room(&mut self) {
        if self.topics.len() >= MAX_TOPICS {
            self.topics.clear();
        }
    }

    pub(crate) fn observe(&mut self, topic: &str, epoch: &str, offset: u64) -> Verdict {
        let Some(t) = self.topics.get_mut(topic).filter(|t| t.epoch == epoch) else {
            // First message of a topic (or of a new epoch: history was lost): no baseline.
            self.make_room();
            self.topics.insert(
                topic.to_owned(),
                Track {
                    epoch: epoch.to_owned(),
                    highest: offset,
                    seen: 1,
                },
            );
            return Verdict::Deliver { gap: None };
        };
        if offset > t.highest {
            let shift = offset - t.highest;
            let gap = (shift > 1).then_some((t.highest, offset));
            t.seen = if shift >= WINDOW {
                1
            } else {
                (t.seen << shift) | 1
            };
            t.highest = offset;
            return Verdict::Deliver { gap };
        }
        let back = t.highest - offset;
        if back >= WINDOW {
            return Verdict::Deliver { gap: None }; // too old to tell: deliver
        }
        let bit = 1u64 << back;
        if t.seen & bit != 0 {
            return Verdict::Duplicate;
        }
        t.seen |= bit;
        Verdict::Deliver { gap: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deliver(gap: Option<(u64, u64)>) -> Verdict {
        Verdict::Deliver { gap }
    }

    #[test]
    fn gaps_duplicates_and_late_arrivals() {
        let mut o = Order::default();
        o.start("t", "e", 10);
        assert_eq!(o.observe("t", "e", 11), deliver(None));
        assert_eq!(o.observe("t", "e", 11), Verdict::Duplicate);
        assert_eq!(
            o.observe("t", "e", 10),
            Verdict::Duplicate,
            "before the start"
        );
        assert_eq!(o.observe("t", "e", 14), deliver(Some((11, 14))));
        assert_eq!(o.observe("t", "e", 12), deliver(None), "late, not lost");
        assert_eq!(o.observe("t", "e", 12), Verdict::Duplicate);
        assert_eq!(o.observe("t", "e", 200), deliver(Some((14, 200))));
        assert_eq!(o.observe("t", "e", 100), deliver(None), "beyond the window");
        // A new epoch starts over without a gap.
        assert_eq!(o.observe("t", "f", 1), deliver(None));
        assert_eq!(o.observe("t", "f", 2), deliver(None));
        // Unknown topics (pattern subscriptions) start at their first message.
        assert_eq!(o.observe("u", "e", 50), deliver(None));
        assert_eq!(o.observe("u", "e", 52), deliver(Some((50, 52))));
    }

    #[test]
    fn the_table_is_bounded() {
        let mut o = Order::default();
        for i in 0..MAX_TOPICS * 2 {
            o.observe(&format!("t{i}"), "e", 1);
        }
        assert!(o.topics.len() <= MAX_TOPICS);
    }
}
