//! Pure verdict of a semaphore round: k slots, each a Redlock mutex, where each master grants
//! at most one slot (the first free one of the attempt's rotation) and different masters may
//! grant different slots.
//!
//! The attempt holds a permit when one slot was granted by a quorum of masters; it has lost
//! once no slot can reach a quorum even if every master still pending granted it. Two slots
//! can never both reach a quorum (each master grants one slot, and two quorums would need
//! more than N masters), so the winner is unique.
//!
//! Why at most k holders: a holder holds its slot on a quorum, and each slot is an ordinary
//! Redlock mutex — two holders of one slot would need two quorums with the slot holding two
//! tokens on their common master. k slots, at most one holder each.

use crate::quorum::quorum;

/// The verdict of a semaphore round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SlotVerdict {
    /// This slot (an index below k) was granted by a quorum.
    Won(usize),
    /// No slot can reach a quorum any more.
    Lost,
}

/// The verdict over `n` masters, given the slot each answering master granted (`None` for an
/// answer that granted nothing: full, refused, failed) and the number of masters still
/// pending; `None` while it is open.
pub(crate) fn slot_verdict(
    n: usize,
    granted: impl IntoIterator<Item = Option<usize>>,
    pending: usize,
) -> Option<SlotVerdict> {
    let q = quorum(n);
    let mut counts: Vec<(usize, usize)> = Vec::new();
    for slot in granted.into_iter().flatten() {
        match counts.iter_mut().find(|(s, _)| *s == slot) {
            Some((_, c)) => *c = c.saturating_add(1),
            None => counts.push((slot, 1)),
        }
    }
    if let Some((slot, _)) = counts.iter().find(|(_, c)| *c >= q) {
        return Some(SlotVerdict::Won(*slot));
    }
    let best = counts.iter().map(|(_, c)| *c).max().unwrap_or(0);
    (best.saturating_add(pending) < q).then_some(SlotVerdict::Lost)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_quorum_on_one_slot_wins_and_split_grants_lose() {
        assert_eq!(
            slot_verdict(3, [Some(1), Some(1)], 1),
            Some(SlotVerdict::Won(1))
        );
        // 3 masters granted 3 different slots: nobody reaches 2 on one slot.
        assert_eq!(
            slot_verdict(3, [Some(0), Some(1), Some(2)], 0),
            Some(SlotVerdict::Lost)
        );
        // Still open: one more grant of slot 0 would win.
        assert_eq!(slot_verdict(3, [Some(0), Some(1)], 1), None);
        assert_eq!(
            slot_verdict(5, [None, None, None], 2),
            Some(SlotVerdict::Lost)
        );
        assert_eq!(slot_verdict(1, [Some(0)], 0), Some(SlotVerdict::Won(0)));
    }

    proptest! {
        /// The early verdict, taken after each reply, never contradicts the verdict with
        /// every reply in, and is reached by the last reply; the winner is unique.
        #[test]
        fn early_verdict_is_final(
            replies in proptest::collection::vec(proptest::option::of(0usize..4), 1..9)
        ) {
            let n = replies.len();
            let mut first = None;
            for seen in 1..=n {
                let v = slot_verdict(n, replies[..seen].iter().copied(), n.saturating_sub(seen));
                if first.is_none() {
                    first = v;
                }
            }
            let full = slot_verdict(n, replies.iter().copied(), 0);
            prop_assert!(full.is_some());
            prop_assert_eq!(first, full);
            if let Some(SlotVerdict::Won(s)) = full {
                let count = replies.iter().filter(|r| **r == Some(s)).count();
                prop_assert!(count >= quorum(n));
                for other in 0..4 {
                    if other != s {
                        prop_assert!(
                            replies.iter().filter(|r| **r == Some(other)).count() < quorum(n)
                        );
                    }
                }
            }
        }
    }
}
