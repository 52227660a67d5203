//! Exclusion over hold intervals, for every primitive at once.
//!
//! The mutex checker's reasoning, generalized: a hold of a key counts from its grant to the
//! end of its validity or its release (or, for critical sections, from entry to exit); what
//! may overlap on one key depends on how each hold occupies it ([`Claim`]):
//!
//! | | exclusive | shared | one of k |
//! |---|---|---|---|
//! | **exclusive** (mutex, writer, member of a multi-resource lock) | never | never | — |
//! | **shared** (reader) | never | always | — |
//! | **one of k** (semaphore permit) | — | — | at most k at any instant |
//!
//! (— : different keys in the library's layout; not compared.) A sweep over the spans of
//! one key, in order of start, keeps the spans still running; each new span is compared
//! with them. The number of holders running at an instant is largest at some span's start,
//! so checking "≤ k" at every start is exact.

use crate::history::Mode;

/// How a hold occupies one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Claim {
    /// Alone: a mutex, a writer, each member of a multi-resource lock.
    Exclusive,
    /// With other shared holds only: a reader.
    Shared,
    /// One of at most `k` holders: a semaphore permit.
    Counted(u32),
}

impl Claim {
    /// The claim of a hold of `mode` (with `permits` for a semaphore).
    pub(crate) fn of(mode: Mode, permits: Option<u32>) -> Self {
        match mode {
            Mode::Mutex | Mode::Writer | Mode::Multi => Self::Exclusive,
            Mode::Reader => Self::Shared,
            Mode::Permit => Self::Counted(permits.unwrap_or(1).max(1)),
        }
    }
}

/// A hold of one key over `[start, end)`.
#[derive(Clone, Debug)]
pub(crate) struct Span<T> {
    /// Grant (or section entry), monotonic ns.
    pub(crate) start: u64,
    /// End of validity or release (or section exit), monotonic ns.
    pub(crate) end: u64,
    /// How it occupies the key.
    pub(crate) claim: Claim,
    /// Who holds it.
    pub(crate) who: T,
}

/// Why two spans of one key may not overlap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Conflict {
    /// Two exclusive holds.
    Exclusive,
    /// An exclusive hold and a shared one.
    Shared,
    /// More than `limit` counted holds at once (`holders`, the new one included).
    OverLimit {
        /// Holders at the new span's start.
        holders: usize,
        /// The number of permits.
        limit: u32,
    },
}

/// Sorts `spans` by start and returns, for every span that conflicts with one still running
/// when it starts, `(index of the new span, index of a running one, conflict)` — one triple
/// per offending span, with the earliest-started partner. `judged(new, running)` says
/// whether a pair counts at all (different holders, no excuse).
pub(crate) fn conflicts<T>(
    spans: &mut [Span<T>],
    judged: impl Fn(&Span<T>, &Span<T>) -> bool,
) -> Vec<(usize, usize, Conflict)> {
    spans.sort_by_key(|s| s.start);
    let mut out = Vec::new();
    let mut running: Vec<usize> = Vec::new();
    for (i, span) in spans.iter().enumerate() {
        running.retain(|j| spans.get(*j).is_some_and(|r| r.end > span.start));
        let partners = running
            .iter()
            .filter_map(|j| spans.get(*j).map(|r| (*j, r)))
            .filter(|(_, r)| judged(span, r));
        match span.claim {
            Claim::Exclusive | Claim::Shared => {
                let found = partners
                    .filter_map(|(j, r)| match (span.claim, r.claim) {
                        (Claim::Exclusive, Claim::Exclusive) => Some((j, Conflict::Exclusive)),
                        (Claim::Exclusive, Claim::Shared) | (Claim::Shared, Claim::Exclusive) => {
                            Some((j, Conflict::Shared))
                        }
                        _ => None,
                    })
                    .next();
                if let Some((j, c)) = found {
                    out.push((i, j, c));
                }
            }
            Claim::Counted(limit) => {
                let others: Vec<usize> = partners
                    .filter(|(_, r)| matches!(r.claim, Claim::Counted(_)))
                    .map(|(j, _)| j)
                    .collect();
                let holders = others.len().saturating_add(1);
                if holders > usize::try_from(limit).unwrap_or(usize::MAX)
                    && let Some(j) = others.first()
                {
                    out.push((i, *j, Conflict::OverLimit { holders, limit }));
                }
            }
        }
        running.push(i);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(start: u64, end: u64, claim: Claim, who: &'static str) -> Span<&'static str> {
        Span {
            start,
            end,
            claim,
            who,
        }
    }

    fn run(mut spans: Vec<Span<&'static str>>) -> Vec<(&'static str, &'static str, Conflict)> {
        let found = conflicts(&mut spans, |a, b| a.who != b.who);
        found
            .into_iter()
            .map(|(i, j, c)| (spans[i].who, spans[j].who, c))
            .collect()
    }

    #[test]
    fn readers_share_writers_do_not() {
        use Claim::{Exclusive as X, Shared as S};
        assert!(run(vec![span(0, 10, S, "r1"), span(5, 20, S, "r2")]).is_empty());
        assert_eq!(
            run(vec![span(0, 10, S, "r1"), span(5, 20, X, "w")]),
            [("w", "r1", Conflict::Shared)]
        );
        assert_eq!(
            run(vec![span(0, 10, X, "w1"), span(9, 20, X, "w2")]),
            [("w2", "w1", Conflict::Exclusive)]
        );
        // Touching ends do not overlap: [0, 10) then [10, 20).
        assert!(run(vec![span(0, 10, X, "w1"), span(10, 20, X, "w2")]).is_empty());
        // One holder never conflicts with itself.
        assert!(run(vec![span(0, 10, X, "a"), span(5, 20, X, "a")]).is_empty());
    }

    #[test]
    fn at_most_k_counted_holds_at_any_instant() {
        let c = Claim::Counted(2);
        // Three holders, but never more than two at once.
        assert!(
            run(vec![
                span(0, 10, c, "a"),
                span(5, 20, c, "b"),
                span(10, 30, c, "c")
            ])
            .is_empty()
        );
        // A, B, C all running at 8.
        assert_eq!(
            run(vec![
                span(0, 10, c, "a"),
                span(5, 20, c, "b"),
                span(8, 30, c, "c")
            ]),
            [(
                "c",
                "a",
                Conflict::OverLimit {
                    holders: 3,
                    limit: 2
                }
            )]
        );
    }
}
