//! Fencing tokens agreed by a majority: the pure decisions of the protocol.
//!
//! Each resource has a counter beside its lock key on every master, never expiring. The
//! acquire script increments it where it grants the lock and reports it where it refuses.
//! - **Fast path** (one round trip): when one value was returned by a quorum of the granting
//!   masters, that value is the token.
//! - **Slow path** (counters drifted apart): propose `t = 1 + max(every value seen)`; the FENCE
//!   script raises the counter to `t` on each master where our lock still holds, only upward.
//!   A quorum of acceptances issues `t`; otherwise retry once with `1 + max(refusals)`.
//!
//! Why it is safe (per resource, as long as masters keep their data): a counter only rises,
//! and each value a master ever holds was written by one script run for one owner. A token
//! is issued only when its owner wrote it on a majority; two majorities intersect, so no
//! value is issued twice, and a grant that starts after a token was issued meets a master
//! whose counter is already at least that token, so it gets a larger one. No clock appears
//! in this argument.

use std::fmt;

/// A fencing token: a number that grows with every acquisition of a resource, agreed by a
/// majority of masters. Pass it to the resource you protect and have the resource refuse any
/// write whose token is lower than one it has already seen.
///
/// Guarantees, per resource: tokens are unique, and a grant that begins after another's token
/// was issued gets a larger token, whatever the clocks do — as long as masters do not lose
/// data (run them with `appendonly yes` and `appendfsync always`, and never delete the
/// `…:fence` keys). Extending a lock keeps its token; releasing never lowers a counter.
///
/// # Examples
///
/// A resource checks the token in the same statement that writes (SQL):
///
/// ```text
/// UPDATE accounts SET balance = $1, fence = $2 WHERE id = $3 AND fence <= $2
/// -- 0 rows updated: a newer holder wrote already; stop.
/// ```
///
/// ```no_run
/// # async fn demo(manager: tokio_redlock::LockManager) -> Result<(), tokio_redlock::LockError> {
/// let mut lock = manager.lock("accounts:7").await?;
/// if let Some(token) = lock.fencing_token() {
///     let fence: u64 = token.get(); // pass to the store with every write
///     # let _ = fence;
/// }
/// manager.unlock(&mut lock).await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FencingToken(pub(crate) u64);

impl FencingToken {
    /// The token's value.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for FencingToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The fast path: the value returned by at least `quorum` of the granting masters, if any.
pub(crate) fn agreed(granted: &[u64], quorum: usize) -> Option<u64> {
    granted
        .iter()
        .copied()
        .find(|v| granted.iter().filter(|w| *w == v).count() >= quorum)
}

/// The slow path's proposal: one more than the largest counter value seen.
pub(crate) fn proposal(seen: impl IntoIterator<Item = u64>) -> u64 {
    seen.into_iter().max().unwrap_or(0).saturating_add(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn fast_path_needs_a_quorum_of_equal_values() {
        assert_eq!(agreed(&[6, 6], 2), Some(6));
        assert_eq!(agreed(&[1, 6], 2), None);
        assert_eq!(agreed(&[3, 3, 4], 2), Some(3));
        assert_eq!(agreed(&[], 1), None);
    }

    #[test]
    fn proposal_exceeds_everything_seen() {
        assert_eq!(proposal([0, 0, 5]), 6);
        assert_eq!(proposal([]), 1);
        assert_eq!(proposal([u64::MAX]), u64::MAX);
    }

    proptest! {
        /// A fast-path value is returned by at least a quorum, and a proposal is above all.
        #[test]
        fn decisions_hold(values in proptest::collection::vec(0u64..5, 0..6), q in 1usize..4) {
            if let Some(v) = agreed(&values, q) {
                prop_assert!(values.iter().filter(|w| **w == v).count() >= q);
            }
            let p = proposal(values.iter().copied());
            prop_assert!(values.iter().all(|v| *v < p));
        }
    }
}
