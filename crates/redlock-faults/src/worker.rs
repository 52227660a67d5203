//! Workers: acquire → critical section (fenced writes, an unfenced read-modify-write, maybe
//! an extension) → release, in a loop, recording every step.
//!
//! The same code runs as tasks in the test process and inside `lock-worker` processes.
//!
//! **Critical-section discipline.** In-process workers never act on the lock after
//! `deadline − margin`: every sleep inside the section is cut at that bound, and each fenced
//! write is preceded by the check in the same synchronous step (the in-process register call
//! does not yield). So `cs-exit ≤ deadline` holds unless the process itself is paused, and
//! the checker can hold them to it. `lock-worker` processes run in [`WorkerMode::Unchecked`]:
//! they sleep `work` between their first and second write *without* re-checking the lease —
//! the window in which Kleppmann's process pause strikes — so a SIGSTOP there produces a
//! stale write that only the fencing token can stop.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_redlock::{Lock, LockError, LockGuard, LockManager};

use crate::clock::instant_ns;
use crate::history::{Op, Recorder};
use crate::register::RegisterHandle;
use crate::rng::SeededRng;

/// How a worker holds its locks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkerMode {
    /// `lock()` / `extend()` / `unlock()` on a [`Lock`], sometimes extending mid-section.
    Plain,
    /// `acquire().auto_extend()`: a [`LockGuard`] whose watchdog extends it; holds run past
    /// the TTL, and the section ends at once when the guard reports the lock lost.
    Guard,
    /// Plain locks, but the second write follows a `work` sleep with no lease check (see the
    /// module docs). For `lock-worker` processes that the nemesis pauses.
    Unchecked {
        /// The unchecked gap between the two writes.
        work: Duration,
    },
}

/// What one worker does.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// Process name in the history (`w3`, `p0`).
    pub name: String,
    /// Resources it contends for.
    pub resources: Vec<String>,
    /// Lock TTL.
    pub ttl: Duration,
    /// Patience of each acquisition (`wait(d)`).
    pub acquire_wait: Duration,
    /// Hold time range of a critical section (plain mode).
    pub hold: (Duration, Duration),
    /// Chance that a hold runs far past the TTL (it is cut at the deadline).
    pub overrun_chance: f64,
    /// Chance of an extension in the middle of a plain section.
    pub extend_chance: f64,
    /// Mode.
    pub mode: WorkerMode,
    /// Safety margin before the deadline.
    pub margin: Duration,
    /// Pause after a failed acquisition.
    pub backoff: (Duration, Duration),
    /// Seed of the worker's choices.
    pub seed: u64,
}

/// Short name of a lock error, as recorded in `reason`.
pub fn reason(e: &LockError) -> &'static str {
    match e {
        LockError::Conflict { .. } => "conflict",
        LockError::NoQuorum { .. } => "no-quorum",
        LockError::ValidityExhausted { .. } => "validity-exhausted",
        LockError::NotHeld { .. } => "not-held",
        LockError::FencingContention { .. } => "fencing-contention",
        LockError::Lost { .. } => "lost",
        LockError::NotALock { .. } => "not-a-lock",
        LockError::InvalidArgument(_) | LockError::Config(_) => "invalid",
        LockError::Closed => "closed",
        _ => "other",
    }
}

/// The error's text, cut to 400 bytes at a character boundary.
pub fn detail(e: &LockError) -> String {
    let mut s = e.to_string();
    if s.len() > 400 {
        let mut cut = 400;
        while !s.is_char_boundary(cut) {
            cut = cut.saturating_sub(1);
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

/// The history entry for the end of a release of acquisition `id` of `res`.
pub fn release_done(res: &str, id: u64, result: &Result<(), LockError>) -> Op {
    match result {
        Ok(()) => Op::ReleaseOk {
            res: res.to_owned(),
            id,
        },
        Err(e) => Op::ReleaseFail {
            res: res.to_owned(),
            id,
            reason: reason(e).to_owned(),
            detail: detail(e),
        },
    }
}

/// The first 8 characters of a token.
fn token_prefix(token: &str) -> String {
    token.chars().take(8).collect()
}

struct Worker {
    manager: LockManager,
    cfg: WorkerConfig,
    register: Arc<RegisterHandle>,
    rec: Recorder,
    rng: SeededRng,
    stop: watch::Receiver<bool>,
}

/// Runs one worker until `stop` turns true. An acquisition in progress at that moment is
/// cancelled (recorded as `acquire-fail` with reason `cancelled`): the library must leave no
/// key behind, which the final key check verifies.
pub async fn run_worker(
    manager: LockManager,
    cfg: WorkerConfig,
    register: Arc<RegisterHandle>,
    rec: Recorder,
    stop: watch::Receiver<bool>,
) {
    let rng = SeededRng::new(cfg.seed);
    let mut w = Worker {
        manager,
        cfg,
        register,
        rec,
        rng,
        stop,
    };
    let mut id = 0u64;
    while !*w.stop.borrow() {
        id = id.saturating_add(1);
        let Some(res) = w.rng.pick(&w.cfg.resources).cloned() else {
            return;
        };
        let ok = match w.cfg.mode {
            WorkerMode::Guard => w.guard_round(&res, id).await,
            WorkerMode::Plain | WorkerMode::Unchecked { .. } => w.plain_round(&res, id).await,
        };
        if !ok {
            let pause = w.rng.duration(w.cfg.backoff.0, w.cfg.backoff.1);
            let mut stop = w.stop.clone();
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                _ = stop.wait_for(|s| *s) => {}
            }
        }
    }
}

impl Worker {
    fn holder(&self, id: u64) -> String {
        format!("{}#{id}", self.rec.process())
    }

    /// True while there is at least `margin` left before `deadline`.
    fn before(&self, deadline: Instant) -> bool {
        Instant::now()
            .checked_add(self.cfg.margin)
            .is_some_and(|t| t < deadline)
    }

    /// Sleeps `d`, but never past `deadline − margin`; false when it had to stop early.
    async fn sleep_within(&self, d: Duration, deadline: Instant) -> bool {
        let limit = deadline.checked_sub(self.cfg.margin).unwrap_or(deadline);
        let target = Instant::now().checked_add(d).unwrap_or(limit);
        if target <= limit {
            tokio::time::sleep_until(target).await;
            true
        } else {
            tokio::time::sleep_until(limit).await;
            false
        }
    }

    fn pick_hold(&mut self) -> Duration {
        if self.rng.chance(self.cfg.overrun_chance) {
            let ttl = self.cfg.ttl;
            self.rng.duration(ttl, ttl.saturating_mul(2))
        } else {
            self.rng.duration(self.cfg.hold.0, self.cfg.hold.1)
        }
    }

    fn record_fail(&self, res: &str, id: u64, e: &LockError) {
        self.rec.record(Op::AcquireFail {
            res: res.to_owned(),
            id,
            reason: reason(e).to_owned(),
            detail: detail(e),
        });
    }

    fn record_cancel(&self, res: &str, id: u64) {
        self.rec.record(Op::AcquireFail {
            res: res.to_owned(),
            id,
            reason: "cancelled".to_owned(),
            detail: "the run ended while waiting".to_owned(),
        });
    }

    fn record_ok(
        &self,
        res: &str,
        id: u64,
        deadline: Instant,
        ttl: Duration,
        token: &str,
        fence: Option<u64>,
    ) {
        let deadline_ns = instant_ns(deadline);
        let lease = ttl.saturating_sub(
            ttl.mul_f64(tokio_redlock::DEFAULT_DRIFT_FACTOR)
                .saturating_add(Duration::from_millis(2)),
        );
        self.rec.record(Op::AcquireOk {
            res: res.to_owned(),
            id,
            start: deadline_ns.saturating_sub(crate::clock::nanos(lease)),
            deadline: deadline_ns,
            ttl_ms: u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX),
            token: token_prefix(token),
            fence,
        });
    }

    /// A fenced write (if the lock carries a token), recorded with its answer.
    async fn fenced_write(&self, res: &str, id: u64, fence: Option<u64>) {
        let Some(fence) = fence else { return };
        if let Some((accepted, max)) = self.register.write(res, &self.holder(id), fence).await {
            self.rec.record(Op::Write {
                res: res.to_owned(),
                id,
                fence,
                accepted,
                max,
            });
        }
    }

    async fn release(&self, mut lock: Lock, res: &str, id: u64) {
        self.rec.record(Op::ReleaseInvoke {
            res: res.to_owned(),
            id,
        });
        let result = self.manager.unlock(&mut lock).await;
        self.rec.record(release_done(res, id, &result));
    }

    /// One plain (or unchecked) round; false when the acquisition failed.
    async fn plain_round(&mut self, res: &str, id: u64) -> bool {
        self.rec.record(Op::AcquireInvoke {
            res: res.to_owned(),
            id,
        });
        let request = self
            .manager
            .lock(res)
            .ttl(self.cfg.ttl)
            .wait(self.cfg.acquire_wait);
        let mut stop = self.stop.clone();
        let result = tokio::select! {
            r = request => Some(r),
            _ = stop.wait_for(|s| *s) => None,
        };
        let mut lock = match result {
            None => {
                self.record_cancel(res, id);
                return true;
            }
            Some(Err(e)) => {
                self.record_fail(res, id, &e);
                return false;
            }
            Some(Ok(lock)) => lock,
        };
        let fence = lock.fencing_token().map(tokio_redlock::FencingToken::get);
        self.record_ok(res, id, lock.deadline(), lock.ttl(), lock.token(), fence);
        self.rec.record(Op::CsEnter {
            res: res.to_owned(),
            id,
        });
        let mut cut = false;
        // First write, and the read of the unfenced counter.
        let mut counter = None;
        if self.before(lock.deadline()) {
            self.fenced_write(res, id, fence).await;
            counter = self.register.read_counter(res).await;
        } else {
            cut = true;
        }
        if let WorkerMode::Unchecked { work } = self.cfg.mode {
            if !cut {
                // No lease check from here to the second write (see the module docs).
                tokio::time::sleep(work).await;
                self.fenced_write(res, id, fence).await;
                if let Some(v) = counter {
                    self.register.set_counter(res, v.saturating_add(1)).await;
                }
            }
        } else {
            let hold = self.pick_hold();
            let extend = self.rng.chance(self.cfg.extend_chance);
            let first = if extend {
                hold.checked_div(2).unwrap_or_default()
            } else {
                hold
            };
            if !cut {
                cut = !self.sleep_within(first, lock.deadline()).await;
            }
            if !cut && extend {
                self.rec.record(Op::ExtendInvoke {
                    res: res.to_owned(),
                    id,
                });
                // The extension races the deadline: a critical section must end by its
                // deadline, and an extension's round may outlast it (its budget is the
                // per-master timeout). The extend future is cancel safe.
                let deadline = lock.deadline();
                let limit = deadline.checked_sub(self.cfg.margin).unwrap_or(deadline);
                let outcome = tokio::select! {
                    result = self.manager.extend(&mut lock, self.cfg.ttl) => Some(result),
                    () = tokio::time::sleep_until(limit) => None,
                };
                match outcome {
                    None => {
                        self.rec.record(Op::ExtendFail {
                            res: res.to_owned(),
                            id,
                            reason: "deadline".to_owned(),
                            deadline: instant_ns(lock.deadline()),
                        });
                        cut = true;
                    }
                    Some(Ok(())) => {
                        self.rec.record(Op::ExtendOk {
                            res: res.to_owned(),
                            id,
                            deadline: instant_ns(lock.deadline()),
                        });
                    }
                    Some(Err(e)) => {
                        self.rec.record(Op::ExtendFail {
                            res: res.to_owned(),
                            id,
                            reason: reason(&e).to_owned(),
                            deadline: instant_ns(lock.deadline()),
                        });
                        if e.is_not_held() {
                            cut = true;
                        }
                    }
                }
                if !cut {
                    cut = !self
                        .sleep_within(hold.saturating_sub(first), lock.deadline())
                        .await;
                }
            }
            // Check and write in one synchronous step for the in-process register.
            if !cut && self.before(lock.deadline()) {
                self.fenced_write(res, id, fence).await;
                if let Some(v) = counter {
                    self.register.set_counter(res, v.saturating_add(1)).await;
                }
            } else {
                cut = true;
            }
        }
        self.rec.record(Op::CsExit {
            res: res.to_owned(),
            id,
            deadline: instant_ns(lock.deadline()),
            cut,
        });
        self.release(lock, res, id).await;
        true
    }

    /// Records an extension made by the guard's watchdog, if the deadline moved.
    fn observe(&self, guard: &LockGuard, res: &str, id: u64, seen: &mut Instant) {
        let now = guard.deadline();
        if now > *seen {
            *seen = now;
            self.rec.record(Op::ExtendOk {
                res: res.to_owned(),
                id,
                deadline: instant_ns(now),
            });
        }
    }

    /// One guard round; false when the acquisition failed.
    async fn guard_round(&mut self, res: &str, id: u64) -> bool {
        self.rec.record(Op::AcquireInvoke {
            res: res.to_owned(),
            id,
        });
        let request = self
            .manager
            .acquire(res)
            .ttl(self.cfg.ttl)
            .wait(self.cfg.acquire_wait)
            .auto_extend();
        let mut stop = self.stop.clone();
        let result = tokio::select! {
            r = request => Some(r),
            _ = stop.wait_for(|s| *s) => None,
        };
        let guard = match result {
            None => {
                self.record_cancel(res, id);
                return true;
            }
            Some(Err(e)) => {
                self.record_fail(res, id, &e);
                return false;
            }
            Some(Ok(guard)) => guard,
        };
        let fence = guard.fencing_token().map(tokio_redlock::FencingToken::get);
        let mut seen = guard.deadline();
        self.record_ok(res, id, seen, guard.ttl(), guard.token(), fence);
        self.rec.record(Op::CsEnter {
            res: res.to_owned(),
            id,
        });
        let ttl = self.cfg.ttl;
        // Mostly short holds; some run past the TTL on the watchdog's extensions.
        let hold = if self.rng.chance(0.1) {
            self.rng
                .duration(ttl.checked_div(2).unwrap_or_default(), ttl.mul_f64(1.5))
        } else {
            self.pick_hold()
        };
        let end = Instant::now()
            .checked_add(hold)
            .unwrap_or_else(Instant::now);
        let step = ttl
            .checked_div(6)
            .unwrap_or_default()
            .max(Duration::from_millis(5));
        let mut cut = false;
        let mut counter = None;
        if !guard.is_lost() && self.before(guard.deadline()) {
            self.fenced_write(res, id, fence).await;
            counter = self.register.read_counter(res).await;
        } else {
            cut = true;
        }
        while !cut {
            self.observe(&guard, res, id, &mut seen);
            let now = Instant::now();
            if now >= end {
                break;
            }
            let limit = guard.deadline().checked_sub(self.cfg.margin).unwrap_or(now);
            if now >= limit || guard.is_lost() {
                cut = true;
                break;
            }
            let wake = end.min(limit).min(now.checked_add(step).unwrap_or(limit));
            tokio::select! {
                () = tokio::time::sleep_until(wake) => {}
                () = guard.lost() => {
                    self.rec.record(Op::Lost {
                        res: res.to_owned(),
                        id,
                        deadline: instant_ns(guard.deadline()),
                    });
                    cut = true;
                }
            }
        }
        self.observe(&guard, res, id, &mut seen);
        if !cut && !guard.is_lost() && self.before(guard.deadline()) {
            self.fenced_write(res, id, fence).await;
            if let Some(v) = counter {
                self.register.set_counter(res, v.saturating_add(1)).await;
            }
        } else {
            cut = true;
        }
        self.rec.record(Op::CsExit {
            res: res.to_owned(),
            id,
            deadline: instant_ns(seen),
            cut,
        });
        self.rec.record(Op::ReleaseInvoke {
            res: res.to_owned(),
            id,
        });
        let result = guard.release().await;
        self.rec.record(release_done(res, id, &result));
        true
    }
}

/// Waits up to `limit` for the manager's background tasks to finish, then records what is
/// left running ([`Op::LeakCheck`]); returns `(background_tasks, subscribed_resources)`.
pub async fn leak_check(manager: &LockManager, rec: &Recorder, limit: Duration) -> (usize, usize) {
    let until = Instant::now()
        .checked_add(limit)
        .unwrap_or_else(Instant::now);
    while (manager.background_tasks() > 0 || manager.subscribed_resources() > 0)
        && Instant::now() < until
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let left = (manager.background_tasks(), manager.subscribed_resources());
    rec.record(Op::LeakCheck {
        background_tasks: left.0,
        subscribed: left.1,
    });
    left
}
