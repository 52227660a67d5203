//! Model check of the semaphore's safety: at most k holders at once.
//!
//! In-memory masters, clients whose acquire requests reach each master in an arbitrary
//! order, no fault at all. Two designs are modelled:
//! - **per-master counting under a majority** (a master grants while it counts fewer than k
//!   holders; a client holds once a majority granted): known unsafe for k > 1 — with 3
//!   masters and k = 2, holders granted on {1,2}, {2,3}, {1,3} are three. The checks below
//!   must find such a case, and shrink it to 3 masters, k = 2, 3 clients;
//! - **S1, the library's design** (k slots, each a Redlock mutex; a master grants the first
//!   free slot of the client's rotation; a client holds once one slot was granted by a
//!   majority; slots granted elsewhere go back): never more than k holders, in the exhaustive
//!   3-master case and under proptest's schedules with releases and cleanups interleaved.
//!
//! The library's verdict (`quorum::slots`) is crate-private; `slot_winner` below is its rule
//! (a slot granted by a quorum), line for line.
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]
#![allow(clippy::arithmetic_side_effects, clippy::print_stdout)]

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestError, TestRng, TestRunner};

/// Masters needed for a majority of `n`.
fn quorum(n: usize) -> usize {
    n / 2 + 1
}

/// The slot granted by a quorum, if any (`quorum::slots::slot_verdict` with nothing pending).
fn slot_winner(n: usize, granted: &[Option<usize>]) -> Option<usize> {
    let mut counts = std::collections::BTreeMap::new();
    for slot in granted.iter().flatten() {
        *counts.entry(*slot).or_insert(0usize) += 1;
    }
    counts
        .into_iter()
        .find(|(_, c)| *c >= quorum(n))
        .map(|(s, _)| s)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Design {
    /// Per-master counting, majority quorum.
    Counting,
    /// k slots, each a Redlock mutex (the library).
    Slots,
}

/// One master's state.
#[derive(Clone, Debug)]
enum Master {
    /// Holders counted here (clients granted and not yet released or cleaned up).
    Counting(Vec<usize>),
    /// Slot i holds this client.
    Slots(Vec<Option<usize>>),
}

/// A run: clients' requests delivered per `schedule`, decisions as soon as a client has all
/// its answers (losers clean up at once), holders released per `schedule` too.
struct World {
    design: Design,
    n: usize,
    k: usize,
    masters: Vec<Master>,
    /// Per client: the answer of each master (`None`: not delivered yet; `Some(None)`:
    /// refused; `Some(Some(slot))`: granted, the slot for S1 or 0 for counting).
    answers: Vec<Vec<Option<Option<usize>>>>,
    rotations: Vec<usize>,
    /// Per client: holding (and since which step), done.
    holding: Vec<bool>,
    done: Vec<bool>,
    most: usize,
}

impl World {
    fn new(design: Design, n: usize, k: usize, rotations: Vec<usize>) -> Self {
        let c = rotations.len();
        let master = match design {
            Design::Counting => Master::Counting(Vec::new()),
            Design::Slots => Master::Slots(vec![None; k]),
        };
        Self {
            design,
            n,
            k,
            masters: vec![master; n],
            answers: vec![vec![None; n]; c],
            rotations,
            holding: vec![false; c],
            done: vec![false; c],
            most: 0,
        }
    }

    /// Client `c`'s request reaches master `m`.
    fn deliver(&mut self, c: usize, m: usize) {
        let k = self.k;
        let rotation = self.rotations[c];
        let answer = match &mut self.masters[m] {
            Master::Counting(holders) => {
                if holders.len() < k {
                    holders.push(c);
                    Some(0)
                } else {
                    None
                }
            }
            Master::Slots(slots) => (0..k).map(|j| (rotation + j) % k).find(|&i| {
                if slots[i].is_none() {
                    slots[i] = Some(c);
                    true
                } else {
                    false
                }
            }),
        };
        self.answers[c][m] = Some(answer);
        if self.answers[c].iter().all(Option::is_some) {
            self.decide(c);
        }
    }

    /// Client `c` has every answer: it holds, or cleans up.
    fn decide(&mut self, c: usize) {
        let granted: Vec<Option<usize>> = self.answers[c].iter().map(|a| a.flatten()).collect();
        let won = match self.design {
            Design::Counting => granted.iter().flatten().count() >= quorum(self.n),
            Design::Slots => slot_winner(self.n, &granted).is_some(),
        };
        let keep = if won {
            slot_winner(self.n, &granted)
        } else {
            None
        };
        // Cleanup: a loser gives back everything; an S1 winner gives back other slots.
        if !won || self.design == Design::Slots {
            self.give_back(c, keep, won);
        }
        if won {
            self.holding[c] = true;
            let now = self.holding.iter().filter(|h| **h).count();
            self.most = self.most.max(now);
        } else {
            self.done[c] = true;
        }
    }

    /// Removes client `c` from every master, but its slot `keep` (S1 winners).
    fn give_back(&mut self, c: usize, keep: Option<usize>, won: bool) {
        for master in &mut self.masters {
            match master {
                Master::Counting(holders) => {
                    if !won {
                        holders.retain(|h| *h != c);
                    }
                }
                Master::Slots(slots) => {
                    for (i, s) in slots.iter_mut().enumerate() {
                        if *s == Some(c) && Some(i) != keep {
                            *s = None;
                        }
                    }
                }
            }
        }
    }

    /// Holder `c` releases.
    fn release(&mut self, c: usize) {
        self.holding[c] = false;
        self.done[c] = true;
        self.give_back(c, None, false);
    }

    /// The actions possible now: deliveries not made, releases of holders.
    fn actions(&self) -> Vec<(usize, Option<usize>)> {
        let mut actions = Vec::new();
        for (c, answers) in self.answers.iter().enumerate() {
            for (m, a) in answers.iter().enumerate() {
                if a.is_none() {
                    actions.push((c, Some(m)));
                }
            }
            if self.holding[c] {
                actions.push((c, None));
            }
        }
        actions
    }

    /// Runs `schedule` (each entry picks one of the possible actions), then the rest in
    /// order; returns the most holders seen at once.
    fn run(mut self, schedule: &[usize]) -> usize {
        let mut picks = schedule.iter();
        loop {
            let actions = self.actions();
            if actions.is_empty() {
                return self.most;
            }
            let pick = picks.next().map_or(0, |p| p % actions.len());
            match actions[pick] {
                (c, Some(m)) => self.deliver(c, m),
                (c, None) => self.release(c),
            }
        }
    }
}

/// Every permutation of `0..n`.
fn permutations(n: usize) -> Vec<Vec<usize>> {
    if n == 0 {
        return vec![Vec::new()];
    }
    let mut out = Vec::new();
    for p in permutations(n - 1) {
        for i in 0..=p.len() {
            let mut q = p.clone();
            q.insert(i, n - 1);
            out.push(q);
        }
    }
    out
}

/// One wave, no release: master m receives the clients in `orders[m]`; decisions once all
/// requests are in. The most holders at once.
fn one_wave(design: Design, k: usize, orders: &[Vec<usize>], rotations: &[usize]) -> usize {
    let n = orders.len();
    let mut world = World::new(design, n, k, rotations.to_vec());
    // Deliver master by master, each in its order, deciding at the end (the decision of a
    // client whose last answer comes early happens then: same grants, so same verdict).
    for (m, order) in orders.iter().enumerate() {
        for &c in order {
            world.deliver(c, m);
        }
    }
    world.most
}

/// The exhaustive twin: 3 masters, k = 2, 3 clients, all (3!)³ = 216 delivery orders (and
/// for S1 every combination of rotations). Counting admits 3 holders for some order (the
/// one from the docs among them); S1 never more than 2.
#[test]
fn exhaustive_three_masters_two_permits_three_clients() {
    let perms = permutations(3);
    let mut counting_violations = 0;
    let mut slots_worst = 0;
    for a in &perms {
        for b in &perms {
            for c in &perms {
                let orders = [a.clone(), b.clone(), c.clone()];
                if one_wave(Design::Counting, 2, &orders, &[0, 0, 0]) > 2 {
                    counting_violations += 1;
                }
                for r in 0..8usize {
                    let rotations = [r & 1, (r >> 1) & 1, (r >> 2) & 1];
                    slots_worst = slots_worst.max(one_wave(Design::Slots, 2, &orders, &rotations));
                }
            }
        }
    }
    // The docs' case: master 1 gets A, C, B; master 2 A, B, C; master 3 B, C, A.
    let docs = [vec![0, 2, 1], vec![0, 1, 2], vec![1, 2, 0]];
    assert_eq!(one_wave(Design::Counting, 2, &docs, &[0, 0, 0]), 3);
    println!(
        "counting admits 3 holders in {counting_violations} of 216 orders; S1 at most {slots_worst}"
    );
    assert!(counting_violations > 0);
    assert_eq!(slots_worst, 2, "S1 admits at most k, and reaches it");
}

/// A schedule: masters (3, 5 or 7), permits, clients with their rotations, and the picks
/// that interleave deliveries and releases.
fn case() -> impl Strategy<Value = (usize, usize, Vec<usize>, Vec<usize>)> {
    (0usize..3, 1usize..5, 1usize..7).prop_flat_map(|(ni, k, c)| {
        let n = [3, 5, 7][ni];
        (
            Just(n),
            Just(k),
            proptest::collection::vec(0..k, c),
            proptest::collection::vec(0usize..64, 0..120),
        )
    })
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new_with_rng(
        Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        },
        TestRng::deterministic_rng(RngAlgorithm::ChaCha),
    )
}

/// S1 never admits k + 1 holders, whatever the delivery orders, the rotations and the
/// releases in between.
#[test]
fn slots_never_admit_more_than_k() {
    let result = runner(4_000).run(&case(), |(n, k, rotations, schedule)| {
        let most = World::new(Design::Slots, n, k, rotations).run(&schedule);
        prop_assert!(most <= k, "{most} holders with k = {k} on {n} masters");
        Ok(())
    });
    result.unwrap();
}

/// The same search finds per-master counting admitting k + 1 holders, and shrinks it to the
/// smallest case: 3 masters, k = 2, 3 clients.
#[test]
fn counting_is_caught_and_shrinks_to_the_known_counterexample() {
    let result = runner(4_000).run(&case(), |(n, k, rotations, schedule)| {
        let most = World::new(Design::Counting, n, k, rotations).run(&schedule);
        prop_assert!(most <= k, "{most} holders with k = {k} on {n} masters");
        Ok(())
    });
    match result {
        Err(TestError::Fail(why, (n, k, rotations, _))) => {
            println!("counting caught: {why}");
            assert_eq!((n, k, rotations.len()), (3, 2, 3), "minimal case");
        }
        other => panic!("per-master counting was not caught: {other:?}"),
    }
}
