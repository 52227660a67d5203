//! Pure quorum arithmetic: vote tallies, early verdicts, drift and validity.
//!
//! Nothing here touches a socket or a clock: callers pass replies and instants as values, so
//! unit and property tests can drive every interleaving.
//!
//! Source: Redlock, "The Redlock algorithm" steps 3–4,
//! <https://redis.io/docs/latest/develop/clients/patterns/distributed-locks/>.

use std::time::Duration;

/// The fixed part of the drift allowance: Redis expires keys with 1 ms precision, and very
/// small TTLs need a floor (the reference client adds 2 ms).
pub(crate) const DRIFT_FLOOR: Duration = Duration::from_millis(2);

/// Masters needed for a majority of `n`: `n / 2 + 1`.
pub(crate) const fn quorum(n: usize) -> usize {
    (n / 2).saturating_add(1)
}

/// How one master's reply counts in a round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Vote {
    /// The master did what was asked (granted, extended, released).
    Yes,
    /// The master answered, and the answer was a definite no (held by another, absent).
    No,
    /// The request failed: timeout, connection error, server error.
    Failed,
}

/// Why a round can no longer succeed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// A quorum said yes.
    Won,
    /// Too few yes votes are still possible.
    Lost,
}

/// Running count of the votes of one round over `n` masters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Tally {
    n: usize,
    yes: usize,
    no: usize,
    failed: usize,
}

impl Tally {
    /// An empty tally for `n` masters.
    pub(crate) const fn new(n: usize) -> Self {
        Self {
            n,
            yes: 0,
            no: 0,
            failed: 0,
        }
    }

    /// Counts one reply. Extra votes past `n` are ignored (they cannot happen: one reply per master).
    pub(crate) fn record(&mut self, vote: Vote) {
        if self.pending() == 0 {
            return;
        }
        let slot = match vote {
            Vote::Yes => &mut self.yes,
            Vote::No => &mut self.no,
            Vote::Failed => &mut self.failed,
        };
        *slot = slot.saturating_add(1);
    }

    /// Masters that have not answered yet.
    pub(crate) const fn pending(&self) -> usize {
        self.n
            .saturating_sub(self.yes)
            .saturating_sub(self.no)
            .saturating_sub(self.failed)
    }

    /// Yes votes so far.
    pub(crate) const fn yes(&self) -> usize {
        self.yes
    }

    /// Definite "no" votes so far.
    pub(crate) const fn no(&self) -> usize {
        self.no
    }

    /// The verdict as soon as it is known: `Won` once a quorum said yes, `Lost` once the yes
    /// votes still possible cannot reach a quorum; `None` while it is open.
    pub(crate) const fn verdict(&self) -> Option<Verdict> {
        let q = quorum(self.n);
        if self.yes >= q {
            Some(Verdict::Won)
        } else if self.yes.saturating_add(self.pending()) < q {
            Some(Verdict::Lost)
        } else {
            None
        }
    }

    /// True when definite "no" answers alone rule out a quorum: the masters that answered
    /// show the round was refused by a majority, whatever the others would have said.
    pub(crate) const fn refused_by_majority(&self) -> bool {
        self.no > self.n.saturating_sub(quorum(self.n))
    }

    /// True when failures alone rule out a quorum: too few masters are reachable at all.
    pub(crate) const fn unreachable_majority(&self) -> bool {
        self.failed > self.n.saturating_sub(quorum(self.n))
    }
}

/// Drift allowance for a TTL: `ttl × drift_factor + 2 ms` (saturating).
///
/// `drift_factor` is validated by the builder to lie in `[0, 1)`, which keeps the product
/// finite and below `ttl`.
pub(crate) fn drift(ttl: Duration, drift_factor: f64) -> Duration {
    let factor = if drift_factor.is_finite() {
        drift_factor.clamp(0.0, 1.0)
    } else {
        0.0
    };
    ttl.mul_f64(factor).saturating_add(DRIFT_FLOOR)
}

/// A remaining TTL a master reported, as a safe lower bound at the moment the answer is
/// handed to the caller: the master's count (`pttl`) less the time since the request was
/// sent (`elapsed`, measured from before it left) and less the drift allowance. Zero once
/// the key may have expired.
pub(crate) fn remaining_bound(pttl: Duration, elapsed: Duration, drift_factor: f64) -> Duration {
    pttl.saturating_sub(elapsed)
        .saturating_sub(drift(pttl, drift_factor))
}

/// How long a lock granted with `ttl` stays safe, counted from the instant taken before the
/// first request: `ttl − drift`, or `None` when nothing is left.
///
/// The deadline is `start + lease(ttl)`; the validity at time `t` is `deadline − t`.
pub(crate) fn lease(ttl: Duration, drift_factor: f64) -> Option<Duration> {
    ttl.checked_sub(drift(ttl, drift_factor))
        .filter(|lease| !lease.is_zero())
}

#[cfg(test)]
/// Remaining validity after `elapsed` of a `ttl` lease: `ttl − elapsed − drift`, `None` when ≤ 0.
pub(crate) fn validity(ttl: Duration, elapsed: Duration, drift_factor: f64) -> Option<Duration> {
    lease(ttl, drift_factor)
        .and_then(|lease| lease.checked_sub(elapsed))
        .filter(|v| !v.is_zero())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn quorum_is_a_strict_majority() {
        assert_eq!(quorum(1), 1);
        assert_eq!(quorum(2), 2);
        assert_eq!(quorum(3), 2);
        assert_eq!(quorum(4), 3);
        assert_eq!(quorum(5), 3);
    }

    #[test]
    fn reported_remaining_time_is_a_lower_bound() {
        let ms = Duration::from_millis;
        // A's key: TTL 1 s, read 800 ms in with 200 ms left; the answer reaches the caller
        // 50 ms after the request left: at most 200 − 50 − (2 + 2) = 146 ms are certain.
        assert_eq!(remaining_bound(ms(200), ms(50), 0.01), ms(146));
        // Never positive once the key may have expired.
        assert_eq!(remaining_bound(ms(200), ms(250), 0.01), Duration::ZERO);
        assert_eq!(remaining_bound(ms(2), ms(0), 0.01), Duration::ZERO);
    }

    #[test]
    fn drift_matches_the_reference_client() {
        // redlock-rb: (ttl * 0.01).to_i + 2 ms
        assert_eq!(
            drift(Duration::from_secs(10), 0.01),
            Duration::from_millis(102)
        );
        assert_eq!(
            drift(Duration::from_millis(1), 0.01),
            Duration::from_micros(2010)
        );
    }

    #[test]
    fn tiny_ttls_have_no_lease_and_never_underflow() {
        assert_eq!(lease(Duration::from_millis(1), 0.01), None);
        assert_eq!(lease(Duration::from_millis(2), 0.0), None);
        assert_eq!(validity(Duration::ZERO, Duration::ZERO, 0.01), None);
        assert_eq!(
            validity(Duration::from_millis(50), Duration::from_millis(60), 0.01),
            None
        );
    }

    #[test]
    fn validity_subtracts_elapsed_and_drift() {
        let v = validity(Duration::from_secs(1), Duration::from_millis(700), 0.01);
        assert_eq!(v, Some(Duration::from_millis(1000 - 700 - 12)));
    }

    #[test]
    fn early_verdicts() {
        let mut t = Tally::new(3);
        t.record(Vote::Yes);
        assert_eq!(t.verdict(), None);
        t.record(Vote::Yes);
        assert_eq!(
            t.verdict(),
            Some(Verdict::Won),
            "a frozen third master must not delay"
        );

        let mut t = Tally::new(3);
        t.record(Vote::No);
        t.record(Vote::Failed);
        assert_eq!(t.verdict(), Some(Verdict::Lost));
        assert!(!t.refused_by_majority());
        assert!(!t.unreachable_majority());

        let mut t = Tally::new(5);
        t.record(Vote::Failed);
        t.record(Vote::Failed);
        assert_eq!(t.verdict(), None);
        t.record(Vote::Failed);
        assert_eq!(t.verdict(), Some(Verdict::Lost));
        assert!(t.unreachable_majority());
    }

    #[test]
    fn with_two_masters_both_causes_can_hold() {
        let mut t = Tally::new(2);
        t.record(Vote::No);
        t.record(Vote::Failed);
        assert!(t.refused_by_majority() && t.unreachable_majority());
        assert_eq!(t.verdict(), Some(Verdict::Lost));
    }

    fn vote() -> impl Strategy<Value = Vote> {
        prop_oneof![Just(Vote::Yes), Just(Vote::No), Just(Vote::Failed)]
    }

    proptest! {
        /// The early verdict never contradicts the verdict over all replies, and it is
        /// reached no later than the last reply.
        #[test]
        fn early_verdict_is_final(votes in proptest::collection::vec(vote(), 1..9)) {
            let n = votes.len();
            let mut t = Tally::new(n);
            let mut first = None;
            for v in &votes {
                t.record(*v);
                if first.is_none() {
                    first = t.verdict();
                }
            }
            let yes = votes.iter().filter(|v| **v == Vote::Yes).count();
            let expected = if yes >= quorum(n) { Verdict::Won } else { Verdict::Lost };
            prop_assert_eq!(t.verdict(), Some(expected));
            prop_assert_eq!(first, Some(expected));
        }

        /// Each loss cause implies a lost round, and with an odd number of masters the two
        /// causes exclude each other (with an even number both can hold, e.g. one refusal
        /// and one failure of two; callers then check them in a fixed order).
        #[test]
        fn loss_causes_imply_loss(votes in proptest::collection::vec(vote(), 1..9)) {
            let mut t = Tally::new(votes.len());
            for v in &votes { t.record(*v); }
            if votes.len() % 2 == 1 {
                prop_assert!(!(t.refused_by_majority() && t.unreachable_majority()));
            }
            if t.refused_by_majority() || t.unreachable_majority() {
                prop_assert_eq!(t.verdict(), Some(Verdict::Lost));
            }
        }

        /// Validity is never more than the TTL minus the drift, never negative, and shrinks
        /// as elapsed grows; no input panics.
        #[test]
        fn validity_is_bounded(ttl_ms in 0u64..(1u64 << 42), elapsed_ms in 0u64..(1u64 << 42), f in 0.0f64..1.0) {
            let ttl = Duration::from_millis(ttl_ms);
            let elapsed = Duration::from_millis(elapsed_ms);
            match validity(ttl, elapsed, f) {
                Some(v) => {
                    prop_assert!(v > Duration::ZERO);
                    prop_assert!(v.saturating_add(elapsed).saturating_add(drift(ttl, f)) <= ttl);
                    let later = validity(ttl, elapsed.saturating_add(Duration::from_millis(1)), f);
                    prop_assert!(later.is_none_or(|l| l < v));
                }
                None => prop_assert!(elapsed.saturating_add(drift(ttl, f)) >= ttl),
            }
        }
    }
}
