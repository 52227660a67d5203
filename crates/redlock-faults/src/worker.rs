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
//!
//! **Primitives.** A worker's [`Workload`] says what it takes each round: a mutex on one
//! resource, a multi-resource lock on a random subset (one member: a plain mutex, so both
//! kinds meet on the same keys), a reader or a writer of one resource, or one permit of a
//! k-permit semaphore. Holders that exclude (mutex, writer, multi-resource lock) write their
//! fencing token(s) to the register — a multi-resource lock once per member with that
//! member's token; readers and permit holders share their resource and do not write. A
//! multi-resource lock holder also asks the masters who holds each member while it is valid
//! ([`Op::Probe`]), which the all-or-nothing check judges.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_redlock::{
    AcquireRequest, FencingToken, Lock, LockError, LockGuard, LockManager, LockRequest, LockState,
};

use crate::clock::instant_ns;
use crate::history::{Mode, Op, Recorder, Seen};
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

/// What a worker takes each round, among its `resources`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Workload {
    /// A mutex on one resource.
    Mutex,
    /// A multi-resource lock on a random non-empty subset (a single resource is a mutex).
    Multi,
    /// A reader of one resource, or with `write_chance` a writer.
    ReadWrite {
        /// Chance that a round takes the write lock.
        write_chance: f64,
    },
    /// One permit of the semaphore named after one resource.
    Semaphore {
        /// Its number of permits.
        permits: u32,
    },
}

/// What one round acquires.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// `lock(res)`.
    Mutex(String),
    /// `lock_all(members)`, members canonical (sorted, distinct), at least two.
    Multi(Vec<String>),
    /// `read(res)`.
    Reader(String),
    /// `write(res)`.
    Writer(String),
    /// `semaphore(name, permits)`.
    Permit {
        /// Semaphore name.
        name: String,
        /// Its permits.
        permits: u32,
    },
}

impl Target {
    /// The history's resource: the name, or a multi-resource lock's members joined by `+`.
    pub fn res(&self) -> String {
        match self {
            Self::Mutex(r) | Self::Reader(r) | Self::Writer(r) => r.clone(),
            Self::Multi(members) => members.join("+"),
            Self::Permit { name, .. } => name.clone(),
        }
    }

    /// The history's mode.
    pub fn mode(&self) -> Mode {
        match self {
            Self::Mutex(_) => Mode::Mutex,
            Self::Multi(_) => Mode::Multi,
            Self::Reader(_) => Mode::Reader,
            Self::Writer(_) => Mode::Writer,
            Self::Permit { .. } => Mode::Permit,
        }
    }

    /// The `acquire-invoke` event of acquisition `id`.
    pub fn invoke(&self, id: u64) -> Op {
        Op::AcquireInvoke {
            res: self.res(),
            id,
            mode: self.mode(),
            members: match self {
                Self::Multi(m) => m.clone(),
                _ => Vec::new(),
            },
            permits: match self {
                Self::Permit { permits, .. } => Some(*permits),
                _ => None,
            },
        }
    }

    /// The request for a [`Lock`].
    pub fn lock<'a>(&self, manager: &'a LockManager) -> LockRequest<'a> {
        match self {
            Self::Mutex(r) => manager.lock(r),
            Self::Multi(members) => manager.lock_all(members),
            Self::Reader(r) => manager.read_lock(r),
            Self::Writer(r) => manager.write_lock(r),
            Self::Permit { name, permits } => manager.semaphore(name, *permits).lock(),
        }
    }

    /// The request for a [`LockGuard`].
    pub fn acquire<'a>(&self, manager: &'a LockManager) -> AcquireRequest<'a> {
        match self {
            Self::Mutex(r) => manager.acquire(r),
            Self::Multi(members) => manager.acquire_all(members),
            Self::Reader(r) => manager.read(r),
            Self::Writer(r) => manager.write(r),
            Self::Permit { name, permits } => manager.semaphore(name, *permits).acquire(),
        }
    }

    /// Whether holders write to the fenced register and its unfenced counter (they exclude
    /// everyone else on their keys).
    fn exclusive(&self) -> bool {
        matches!(self, Self::Mutex(_) | Self::Writer(_) | Self::Multi(_))
    }
}

/// What a grant holds, as recorded: the members and fencing tokens by member.
struct Granted {
    members: Vec<String>,
    fences: Vec<(String, u64)>,
}

impl Granted {
    fn new<'a>(
        target: &Target,
        resources: impl Iterator<Item = &'a [u8]>,
        tokens: &[FencingToken],
    ) -> Self {
        let names: Vec<String> = resources
            .map(|r| String::from_utf8_lossy(r).into_owned())
            .collect();
        let fences = if target.exclusive() {
            names
                .iter()
                .cloned()
                .zip(tokens.iter().map(|t| t.get()))
                .collect()
        } else {
            Vec::new()
        };
        let members = if matches!(target, Target::Multi(_)) {
            names
        } else {
            Vec::new()
        };
        Self { members, fences }
    }

    /// The one token of a single-resource hold.
    fn fence(&self) -> Option<u64> {
        match self.fences.as_slice() {
            [(_, f)] if self.members.is_empty() => Some(*f),
            _ => None,
        }
    }
}

/// What one worker does.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// Process name in the history (`w3`, `p0`).
    pub name: String,
    /// Resources it contends for.
    pub resources: Vec<String>,
    /// What it takes each round. Default: [`Workload::Mutex`].
    pub workload: Workload,
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
        let Some(target) = w.pick_target() else {
            return;
        };
        let ok = match w.cfg.mode {
            WorkerMode::Guard => w.guard_round(&target, id).await,
            WorkerMode::Plain | WorkerMode::Unchecked { .. } => w.plain_round(&target, id).await,
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
    /// What this round takes, by the worker's workload.
    fn pick_target(&mut self) -> Option<Target> {
        let res = self.rng.pick(&self.cfg.resources).cloned()?;
        Some(match self.cfg.workload {
            Workload::Mutex => Target::Mutex(res),
            Workload::Multi => {
                let n = self.cfg.resources.len();
                let size =
                    usize::try_from(self.rng.range(1, u64::try_from(n).unwrap_or(1))).unwrap_or(1);
                let mut members: Vec<String> = self
                    .rng
                    .subset(n, size)
                    .into_iter()
                    .filter_map(|i| self.cfg.resources.get(i).cloned())
                    .collect();
                members.sort();
                members.dedup();
                match <[String; 1]>::try_from(members) {
                    Ok([one]) => Target::Mutex(one),
                    Err(members) => Target::Multi(members),
                }
            }
            Workload::ReadWrite { write_chance } => {
                if self.rng.chance(write_chance) {
                    Target::Writer(res)
                } else {
                    Target::Reader(res)
                }
            }
            Workload::Semaphore { permits } => Target::Permit { name: res, permits },
        })
    }

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
        (deadline, ttl): (Instant, Duration),
        token: &str,
        granted: &Granted,
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
            fence: granted.fence(),
            members: granted.members.clone(),
            fences: if granted.members.is_empty() {
                Vec::new()
            } else {
                granted.fences.iter().map(|(_, f)| *f).collect()
            },
        });
    }

    /// The fenced writes of a hold (one per member with that member's token), recorded with
    /// their answers.
    async fn fenced_writes(&self, id: u64, granted: &Granted) {
        for (res, fence) in &granted.fences {
            if let Some((accepted, max)) = self.register.write(res, &self.holder(id), *fence).await
            {
                self.rec.record(Op::Write {
                    res: res.clone(),
                    id,
                    fence: *fence,
                    accepted,
                    max,
                });
            }
        }
    }

    /// The unfenced counter of an exclusive single-resource hold (a multi-resource lock
    /// uses its first member's).
    fn counter_key(granted: &Granted) -> Option<&str> {
        granted.fences.first().map(|(r, _)| r.as_str())
    }

    /// A multi-resource lock holder asks the masters who holds each member, while at least
    /// `margin` is left before its deadline (each probe races that bound).
    async fn probe_members(&self, target: &Target, id: u64, token: &str, deadline: Instant) {
        let Target::Multi(members) = target else {
            return;
        };
        let limit = deadline.checked_sub(self.cfg.margin).unwrap_or(deadline);
        for member in members {
            if !self.before(deadline) {
                return;
            }
            let invoked = crate::clock::mono_ns();
            let state = tokio::select! {
                r = self.manager.is_locked(member) => r,
                () = tokio::time::sleep_until(limit) => return,
            };
            let seen = match state {
                Ok(LockState::Held { holder, .. }) if holder.as_bytes() == token.as_bytes() => {
                    Seen::Ours
                }
                Ok(LockState::Held { .. }) => Seen::Other,
                Ok(LockState::Free) => Seen::Free,
                Ok(LockState::Shared { .. }) => Seen::Shared,
                Ok(_) | Err(_) => Seen::Unknown,
            };
            self.rec.record(Op::Probe {
                res: member.clone(),
                id,
                invoked,
                seen,
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
    async fn plain_round(&mut self, target: &Target, id: u64) -> bool {
        let res = target.res();
        let res = res.as_str();
        self.rec.record(target.invoke(id));
        let request = target
            .lock(&self.manager)
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
        let granted = Granted::new(target, lock.resources(), lock.fencing_tokens());
        self.record_ok(
            res,
            id,
            (lock.deadline(), lock.ttl()),
            lock.token(),
            &granted,
        );
        self.rec.record(Op::CsEnter {
            res: res.to_owned(),
            id,
        });
        let mut cut = false;
        // First write, and the read of the unfenced counter.
        let mut counter = None;
        if self.before(lock.deadline()) {
            self.fenced_writes(id, &granted).await;
            if let Some(key) = Self::counter_key(&granted) {
                counter = self.register.read_counter(key).await;
            }
        } else {
            cut = true;
        }
        if !cut {
            let token = lock.token().to_owned();
            self.probe_members(target, id, &token, lock.deadline())
                .await;
        }
        if let WorkerMode::Unchecked { work } = self.cfg.mode {
            if !cut {
                // No lease check from here to the second write (see the module docs).
                tokio::time::sleep(work).await;
                self.fenced_writes(id, &granted).await;
                if let (Some(v), Some(key)) = (counter, Self::counter_key(&granted)) {
                    self.register.set_counter(key, v.saturating_add(1)).await;
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
                self.fenced_writes(id, &granted).await;
                if let (Some(v), Some(key)) = (counter, Self::counter_key(&granted)) {
                    self.register.set_counter(key, v.saturating_add(1)).await;
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
    async fn guard_round(&mut self, target: &Target, id: u64) -> bool {
        let res = target.res();
        let res = res.as_str();
        self.rec.record(target.invoke(id));
        let request = target
            .acquire(&self.manager)
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
        let granted = Granted::new(target, guard.resources(), guard.fencing_tokens());
        let mut seen = guard.deadline();
        self.record_ok(res, id, (seen, guard.ttl()), guard.token(), &granted);
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
            self.fenced_writes(id, &granted).await;
            if let Some(key) = Self::counter_key(&granted) {
                counter = self.register.read_counter(key).await;
            }
            let token = guard.token().to_owned();
            self.probe_members(target, id, &token, guard.deadline())
                .await;
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
            self.fenced_writes(id, &granted).await;
            if let (Some(v), Some(key)) = (counter, Self::counter_key(&granted)) {
                self.register.set_counter(key, v.saturating_add(1)).await;
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
