//! Checkers over a merged history (design note §4.2).
//!
//! | check | what must hold |
//! |---|---|
//! | `lease` | per resource, mutex holders' leases `[acquire-ok, min(release-invoke, last granted deadline)]` never overlap |
//! | `writers` | per resource, a writer's lease never overlaps another writer's or a mutex holder's |
//! | `reader-writer` | per resource, no reader's lease overlaps a writer's or a mutex holder's |
//! | `permits` | per semaphore, never more than k permit leases at once |
//! | `multi-exclusive` | a multi-resource lock's lease is exclusive on every member (against mutexes, writers, readers and other sets) |
//! | `multi-partial` | a multi-resource grant covers exactly the set asked for, and no probe during its validity finds a member free or held by another |
//! | `cs-overlap` | per resource, critical sections `[cs-enter, cs-exit]` never overlap incompatibly (the same rules) |
//! | `cs-deadline` | every `cs-exit` is before the holder's last granted deadline |
//! | `grant-bounds` | every grant's deadline ≤ acquire-ok + TTL − drift, and had not passed when it was returned |
//! | `token-unique` | fencing tokens are present and unique per resource |
//! | `token-order` | if A's grant returned before B's acquisition was invoked, token(A) < token(B) |
//! | `register-aba` | the fenced register never accepts A, B, A (holders' accepted writes form blocks) |
//! | `register-order` | the register's accepted tokens never go down |
//! | `liveness-no-fault` | with no fault, every acquisition succeeds within its budget |
//! | `liveness-after-heal` | after a fault heals, every resource is granted (or held) again within TTL + retry budget |
//! | `grant-during-outage` | no grant while a majority of masters cannot grant |
//! | `leftover-key` | no lock key left after the run (fencing counters excepted) |
//! | `leak` | no background task or release subscription left in any manager |
//! | `noscript` | no `NOSCRIPT` error ever reaches the caller |
//!
//! A process that was frozen — SIGSTOPped by the nemesis (a `lock-worker`), or kept off the
//! CPU by the shared machine (seen by [`crate::stall`]) — may overrun its deadline: that is
//! the failure no lease can prevent. Such overruns are *excused* for `cs-deadline` and
//! `cs-overlap` (and counted apart), and the fencing checks must then show the stale writes
//! rejected. The lease check is never relaxed: a freeze cannot make a master forget a key.
//! Liveness is not judged across a stall (its timeouts are the machine's, not the library's).
//!
//! The exclusion checks (`lease`, `writers`, `reader-writer`, `permits`, `multi-exclusive`,
//! `cs-overlap`) are one sweep over hold intervals per key (`check/exclusion.rs`): a hold
//! counts from its grant to the end of its validity or its release, and what may overlap
//! depends on how each hold occupies the key. A multi-resource lock holds each member's key; a violation is
//! named after the primitives involved (any multi-resource lock: `multi-exclusive`; else a
//! reader: `reader-writer`; else a writer: `writers`; else `lease`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::time::Duration;

use serde::Serialize;

mod exclusion;

use crate::clock::{ms_between, nanos};
use crate::history::{Event, History, Mode, Op, Phase, Seen, show};
use exclusion::{Claim, Conflict, Span, conflicts};

/// A check of the table above.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Check {
    /// Lease intervals overlap.
    Lease,
    /// Critical sections overlap.
    CsOverlap,
    /// A critical section ended after its deadline.
    CsDeadline,
    /// A grant's deadline is out of bounds.
    GrantBounds,
    /// A fencing token is missing or was issued twice.
    TokenUnique,
    /// Tokens went backwards in real time.
    TokenOrder,
    /// The register accepted A, B, A.
    RegisterAba,
    /// The register's accepted tokens went down.
    RegisterOrder,
    /// An acquisition failed or was slow with no fault.
    LivenessNoFault,
    /// Grants did not resume after a heal.
    LivenessAfterHeal,
    /// A grant during a majority outage.
    GrantDuringOutage,
    /// A lock key outlived the run.
    LeftoverKey,
    /// A manager leaked a task or subscription.
    Leak,
    /// NOSCRIPT reached the caller.
    Noscript,
    /// Two writers (or a writer and a mutex holder) at once.
    Writers,
    /// A reader beside an exclusive holder.
    ReaderWriter,
    /// More than k semaphore holders at once.
    Permits,
    /// A multi-resource lock not exclusive on one of its members.
    MultiExclusive,
    /// A multi-resource lock held only part of its set.
    MultiPartial,
}

impl Check {
    /// Every check.
    pub const ALL: [Self; 19] = [
        Self::Lease,
        Self::CsOverlap,
        Self::CsDeadline,
        Self::GrantBounds,
        Self::TokenUnique,
        Self::TokenOrder,
        Self::RegisterAba,
        Self::RegisterOrder,
        Self::LivenessNoFault,
        Self::LivenessAfterHeal,
        Self::GrantDuringOutage,
        Self::LeftoverKey,
        Self::Leak,
        Self::Noscript,
        Self::Writers,
        Self::ReaderWriter,
        Self::Permits,
        Self::MultiExclusive,
        Self::MultiPartial,
    ];

    /// The mutual-exclusion family: what a lease-violating fault is expected to trip.
    pub const LEASE_FAMILY: [Self; 8] = [
        Self::Lease,
        Self::CsOverlap,
        Self::CsDeadline,
        Self::Writers,
        Self::ReaderWriter,
        Self::Permits,
        Self::MultiExclusive,
        Self::MultiPartial,
    ];

    /// The checks of the primitives beyond the mutex (read-write lock, semaphore,
    /// multi-resource lock).
    pub const PRIMITIVES: [Self; 5] = [
        Self::Writers,
        Self::ReaderWriter,
        Self::Permits,
        Self::MultiExclusive,
        Self::MultiPartial,
    ];

    /// The fencing family.
    pub const TOKEN_FAMILY: [Self; 4] = [
        Self::TokenUnique,
        Self::TokenOrder,
        Self::RegisterAba,
        Self::RegisterOrder,
    ];

    /// Kebab-case name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Lease => "lease",
            Self::CsOverlap => "cs-overlap",
            Self::CsDeadline => "cs-deadline",
            Self::GrantBounds => "grant-bounds",
            Self::TokenUnique => "token-unique",
            Self::TokenOrder => "token-order",
            Self::RegisterAba => "register-aba",
            Self::RegisterOrder => "register-order",
            Self::LivenessNoFault => "liveness-no-fault",
            Self::LivenessAfterHeal => "liveness-after-heal",
            Self::GrantDuringOutage => "grant-during-outage",
            Self::LeftoverKey => "leftover-key",
            Self::Leak => "leak",
            Self::Noscript => "noscript",
            Self::Writers => "writers",
            Self::ReaderWriter => "reader-writer",
            Self::Permits => "permits",
            Self::MultiExclusive => "multi-exclusive",
            Self::MultiPartial => "multi-partial",
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One violation, with the events that show it.
#[derive(Clone, Debug, Serialize)]
pub struct Violation {
    /// Which check.
    pub check: Check,
    /// What went wrong.
    pub message: String,
    /// Relevant events, rendered.
    pub excerpt: Vec<String>,
}

/// Parameters of the checks.
#[derive(Clone, Debug)]
pub struct CheckOptions {
    /// Drift factor of the managers (for `grant-bounds`).
    pub drift_factor: f64,
    /// Fencing was on: every grant must carry a token.
    pub fencing: bool,
    /// Check `liveness-no-fault` (only for runs without faults).
    pub no_fault_liveness: bool,
    /// Budget of one acquisition for `liveness-no-fault`.
    pub acquire_budget: Duration,
    /// TTL + retry budget + slack: how soon grants must resume after a heal.
    pub recovery_bound: Duration,
    /// Grace after a majority outage starts before a grant counts as a violation (replies
    /// already on their way when it started).
    pub outage_grace: Duration,
    /// Stamp at which the workload was told to stop (liveness is not judged past it).
    pub run_end: u64,
}

/// Lock keys found after the run: `(node, key, pttl)`.
pub type Leftovers = Vec<(usize, String, i64)>;

/// Figures of a run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Stats {
    /// `acquire-invoke` events.
    pub acquire_invokes: u64,
    /// Grants.
    pub acquisitions: u64,
    /// Failed acquisitions by reason.
    pub acquire_failures: BTreeMap<String, u64>,
    /// Successful extensions (explicit, or seen on a guard).
    pub extends: u64,
    /// Failed extensions.
    pub extend_failures: u64,
    /// Guards reported lost.
    pub lost: u64,
    /// Successful releases.
    pub releases: u64,
    /// Failed releases by reason.
    pub release_failures: BTreeMap<String, u64>,
    /// Critical sections.
    pub critical_sections: u64,
    /// Critical sections cut short at the deadline.
    pub cs_cut: u64,
    /// Fenced writes accepted by the register.
    pub writes_accepted: u64,
    /// Fenced writes rejected by the register (stale holders fenced off).
    pub writes_rejected: u64,
    /// Deadline overruns of processes the nemesis paused (excused, must be fenced).
    pub excused_overruns: u64,
    /// Deadline overruns during involuntary stalls of the process (excused, must be fenced).
    pub stall_overruns: u64,
    /// Stalls seen by the stall detector (gaps over its threshold).
    pub stalls: u64,
    /// Longest stall, ms.
    pub max_stall_ms: f64,
    /// Faults injected, by kind.
    pub faults: BTreeMap<String, u64>,
    /// Heals after which recovery was measured.
    pub heals_measured: u64,
    /// Longest time from a heal to the first new grant, ms.
    pub max_recovery_ms: f64,
    /// Nemesis events (fault starts, heals, ends).
    pub nemesis_events: u64,
    /// Probes of a member's state by multi-resource lock holders, and how many of them
    /// answered (`ours`, `other`, `free`, `shared`; the rest were inconclusive).
    pub probes: u64,
    /// Probes that answered.
    pub probes_conclusive: u64,
    /// What the exclusion checks examined, per check.
    pub checked: BTreeMap<Check, Checked>,
}

/// What one exclusion check examined in a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Checked {
    /// Acquisitions (holders) of the primitives the check is about.
    pub holders: u64,
    /// History operations of those holders (invoke, grant, failure, sections, writes,
    /// extensions, probes, releases).
    pub operations: u64,
    /// Grants among them.
    pub grants: u64,
}

impl Checked {
    /// Adds `other` to these figures.
    pub fn add(&mut self, other: &Self) {
        self.holders = self.holders.saturating_add(other.holders);
        self.operations = self.operations.saturating_add(other.operations);
        self.grants = self.grants.saturating_add(other.grants);
    }
}

/// The verdict material of one run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    /// Every violation found (messages capped at 20 per check; `counts` has the totals).
    pub violations: Vec<Violation>,
    /// Violations per check.
    pub counts: BTreeMap<Check, u64>,
    /// Figures.
    pub stats: Stats,
}

impl Report {
    /// Violations of `check`.
    pub fn count(&self, check: Check) -> u64 {
        self.counts.get(&check).copied().unwrap_or(0)
    }

    /// Violations of any check in `checks`.
    pub fn count_any(&self, checks: &[Check]) -> u64 {
        checks.iter().map(|c| self.count(*c)).sum()
    }

    fn add(&mut self, check: Check, message: String, excerpt: Vec<String>) {
        let n = self.counts.entry(check).or_insert(0);
        *n = n.saturating_add(1);
        if *n <= 20 {
            self.violations.push(Violation {
                check,
                message,
                excerpt,
            });
        }
    }
}

/// What one holder (one acquisition) did.
#[derive(Clone, Debug, Default)]
struct Holder {
    process: String,
    id: u64,
    res: String,
    invoke: Option<u64>,
    ok: Option<u64>,
    ttl_ms: u64,
    fence: Option<u64>,
    /// Granted deadlines with the stamp at which each became known.
    grants: Vec<(u64, u64)>,
    cs: Vec<(u64, Option<u64>)>,
    release: Option<u64>,
    /// A failed acquisition: the event.
    fail: Option<Event>,
    /// What was asked for.
    mode: Mode,
    /// A semaphore's permits.
    permits: Option<u32>,
    /// A multi-resource lock's members as asked for.
    requested: Vec<String>,
    /// A multi-resource lock's members as granted.
    granted: Vec<String>,
    /// A multi-resource lock's fencing tokens, by granted member.
    fences: Vec<u64>,
    /// Probes: (sent, answered, member, what a majority said).
    probes: Vec<(u64, u64, String, Seen)>,
    /// History operations of this holder.
    operations: u64,
}

impl Holder {
    fn name(&self) -> String {
        format!("{}#{}", self.process, self.id)
    }

    /// The name with the primitive, for messages: `w3#17 (writer)`.
    fn label(&self) -> String {
        match self.mode {
            Mode::Mutex => self.name(),
            Mode::Permit => format!("{} (permit of {})", self.name(), self.permits.unwrap_or(1)),
            mode => format!("{} ({})", self.name(), mode.name()),
        }
    }

    /// The last deadline granted at or before `t`.
    fn deadline_at(&self, t: u64) -> Option<u64> {
        self.grants
            .iter()
            .filter(|(at, _)| *at <= t)
            .map(|(_, d)| *d)
            .max()
    }

    /// The keys it holds (a multi-resource lock: each member), with how it holds them.
    fn claims(&self) -> Vec<(&str, Claim)> {
        let claim = Claim::of(self.mode, self.permits);
        if self.mode == Mode::Multi {
            let members = if self.granted.is_empty() {
                &self.requested
            } else {
                &self.granted
            };
            members.iter().map(|m| (m.as_str(), claim)).collect()
        } else {
            vec![(self.res.as_str(), claim)]
        }
    }

    /// The fencing tokens it should carry, by key: one for a mutex or a writer, one per
    /// member for a multi-resource lock, none for readers and permits.
    fn tokens(&self) -> Vec<(&str, Option<u64>)> {
        match self.mode {
            Mode::Mutex | Mode::Writer => vec![(self.res.as_str(), self.fence)],
            Mode::Multi => self
                .claims()
                .into_iter()
                .enumerate()
                .map(|(i, (k, _))| (k, self.fences.get(i).copied()))
                .collect(),
            Mode::Reader | Mode::Permit => Vec::new(),
        }
    }

    /// The lease: from the grant to the release or the last granted deadline.
    fn lease(&self) -> Option<(u64, u64)> {
        let ok = self.ok?;
        let until = self.release.unwrap_or(u64::MAX);
        let deadline = self.deadline_at(until)?;
        Some((ok, deadline.min(until)))
    }
}

/// A fault interval from the nemesis events.
#[derive(Clone, Debug)]
struct Fault {
    kind: String,
    start: u64,
    heal: Option<u64>,
    end: Option<u64>,
    targets: Vec<String>,
    outage: bool,
}

fn faults_of(history: &History) -> Vec<Fault> {
    let mut open: HashMap<(String, Vec<String>), usize> = HashMap::new();
    let mut out: Vec<Fault> = Vec::new();
    for e in &history.events {
        if let Op::Nemesis {
            fault,
            phase,
            targets,
            outage,
            ..
        } = &e.op
        {
            let key = (fault.clone(), targets.clone());
            match phase {
                Phase::Start => {
                    open.insert(key, out.len());
                    out.push(Fault {
                        kind: fault.clone(),
                        start: e.t,
                        heal: None,
                        end: None,
                        targets: targets.clone(),
                        outage: *outage,
                    });
                }
                Phase::Heal => {
                    if let Some(f) = open.get(&key).and_then(|i| out.get_mut(*i)) {
                        f.heal = Some(e.t);
                    }
                }
                Phase::End => {
                    if let Some(f) = open.remove(&key).and_then(|i| out.get_mut(i)) {
                        f.end = Some(e.t);
                    }
                }
            }
        }
    }
    out
}

fn holders_of(history: &History) -> BTreeMap<(String, u64), Holder> {
    let mut holders: BTreeMap<(String, u64), Holder> = BTreeMap::new();
    for e in &history.events {
        let Some((res, id)) = e.op.holder_op() else {
            continue;
        };
        let h = holders
            .entry((e.process.clone(), id))
            .or_insert_with(|| Holder {
                process: e.process.clone(),
                id,
                res: res.to_owned(),
                ..Holder::default()
            });
        h.operations = h.operations.saturating_add(1);
        match &e.op {
            Op::AcquireInvoke {
                mode,
                members,
                permits,
                ..
            } => {
                h.invoke = Some(e.t);
                h.mode = *mode;
                h.requested.clone_from(members);
                h.permits = *permits;
            }
            Op::AcquireOk {
                deadline,
                ttl_ms,
                fence,
                members,
                fences,
                ..
            } => {
                h.ok = Some(e.t);
                h.ttl_ms = *ttl_ms;
                h.fence = *fence;
                h.granted.clone_from(members);
                h.fences.clone_from(fences);
                h.grants.push((e.t, *deadline));
            }
            Op::Probe {
                res, invoked, seen, ..
            } => h.probes.push((*invoked, e.t, res.clone(), *seen)),
            Op::ExtendOk { deadline, .. } => h.grants.push((e.t, *deadline)),
            Op::AcquireFail { .. } => h.fail = Some(e.clone()),
            Op::CsEnter { .. } => h.cs.push((e.t, None)),
            Op::CsExit { .. } => {
                if let Some(last) = h.cs.last_mut() {
                    last.1 = Some(e.t);
                }
            }
            Op::ReleaseInvoke { .. } if h.release.is_none() => h.release = Some(e.t),
            _ => {}
        }
    }
    holders
}

fn excerpt(history: &History, holders: &[&Holder], origin: u64) -> Vec<String> {
    holders
        .iter()
        .flat_map(|h| history.of_holder(&h.process, h.id))
        .map(|e| show(&e, origin))
        .collect()
}

/// A stall of some processes, seen by the stall detector.
#[derive(Clone, Debug)]
struct Stall {
    from: u64,
    to: u64,
    processes: Vec<String>,
}

fn stalls_of(history: &History) -> Vec<Stall> {
    history
        .events
        .iter()
        .filter_map(|e| match &e.op {
            Op::Stall {
                from,
                to,
                processes,
            } => Some(Stall {
                from: *from,
                to: *to,
                processes: processes.clone(),
            }),
            _ => None,
        })
        .collect()
}

/// Why a process did not run for a while.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Frozen {
    /// The nemesis SIGSTOPped it.
    ClientPause,
    /// The machine did (stall detector).
    Stall,
}

/// Whether `process` was frozen at some point in `[from, to]`, and why.
fn frozen_during(
    faults: &[Fault],
    stalls: &[Stall],
    process: &str,
    from: u64,
    to: u64,
) -> Option<Frozen> {
    let paused = faults.iter().any(|f| {
        f.kind == "client-pause"
            && f.targets.iter().any(|t| t == process)
            && f.start <= to
            && f.end.unwrap_or(u64::MAX) >= from
    });
    if paused {
        return Some(Frozen::ClientPause);
    }
    stalls
        .iter()
        .any(|s| s.from <= to && s.to >= from && s.processes.iter().any(|p| p == process))
        .then_some(Frozen::Stall)
}

/// Runs every check over `history` (which includes the register's log and the leak
/// checks) and the keys left after the run.
pub fn check(history: &History, leftovers: &Leftovers, opts: &CheckOptions) -> Report {
    let mut report = Report::default();
    let origin = history.events.first().map_or(0, |e| e.t);
    let holders = holders_of(history);
    let faults = faults_of(history);
    let stalls = stalls_of(history);
    stats(history, &holders, &faults, &mut report.stats);
    report.stats.stalls = u64::try_from(stalls.len()).unwrap_or(u64::MAX);
    report.stats.max_stall_ms = stalls
        .iter()
        .map(|s| ms_between(s.from, s.to))
        .fold(0.0, f64::max);
    // Per key: the holders that hold it, with how (a multi-resource lock holds each member).
    let mut by_res: BTreeMap<&str, Vec<(&Holder, Claim)>> = BTreeMap::new();
    let mut tokens_by_res: BTreeMap<&str, Vec<(&Holder, Option<u64>)>> = BTreeMap::new();
    for h in holders.values() {
        for (key, claim) in h.claims() {
            by_res.entry(key).or_default().push((h, claim));
        }
        for (key, fence) in h.tokens() {
            tokens_by_res.entry(key).or_default().push((h, fence));
        }
    }
    for (res, hs) in &by_res {
        check_leases(history, res, hs, origin, &mut report);
        check_sections(history, res, hs, &faults, &stalls, origin, &mut report);
    }
    for (res, hs) in &tokens_by_res {
        check_tokens(history, res, hs, opts, origin, &mut report);
    }
    check_multi_partial(history, &holders, origin, &mut report);
    check_grant_bounds(history, &holders, opts, origin, &mut report);
    check_register(history, origin, &mut report);
    check_liveness(
        history,
        &holders,
        &by_res,
        (&faults, &stalls),
        opts,
        origin,
        &mut report,
    );
    check_hygiene(history, leftovers, origin, &mut report);
    report
}

fn stats(
    history: &History,
    holders: &BTreeMap<(String, u64), Holder>,
    faults: &[Fault],
    s: &mut Stats,
) {
    for e in &history.events {
        match &e.op {
            Op::AcquireInvoke { .. } => s.acquire_invokes = s.acquire_invokes.saturating_add(1),
            Op::AcquireOk { .. } => s.acquisitions = s.acquisitions.saturating_add(1),
            Op::AcquireFail { reason, .. } => bump(&mut s.acquire_failures, reason),
            Op::ExtendOk { .. } => s.extends = s.extends.saturating_add(1),
            Op::ExtendFail { .. } => s.extend_failures = s.extend_failures.saturating_add(1),
            Op::Lost { .. } => s.lost = s.lost.saturating_add(1),
            Op::ReleaseOk { .. } => s.releases = s.releases.saturating_add(1),
            Op::ReleaseFail { reason, .. } => bump(&mut s.release_failures, reason),
            Op::CsExit { cut, .. } => {
                s.critical_sections = s.critical_sections.saturating_add(1);
                if *cut {
                    s.cs_cut = s.cs_cut.saturating_add(1);
                }
            }
            Op::RegisterWrite { accepted, .. } => {
                if *accepted {
                    s.writes_accepted = s.writes_accepted.saturating_add(1);
                } else {
                    s.writes_rejected = s.writes_rejected.saturating_add(1);
                }
            }
            _ => {}
        }
    }
    for f in faults {
        bump(&mut s.faults, &f.kind);
    }
    s.nemesis_events = history
        .events
        .iter()
        .filter(|e| matches!(e.op, Op::Nemesis { .. }))
        .count()
        .try_into()
        .unwrap_or(u64::MAX);
    for h in holders.values() {
        s.probes = s
            .probes
            .saturating_add(u64::try_from(h.probes.len()).unwrap_or(u64::MAX));
        let conclusive = h.probes.iter().filter(|p| p.3 != Seen::Unknown).count();
        s.probes_conclusive = s
            .probes_conclusive
            .saturating_add(u64::try_from(conclusive).unwrap_or(u64::MAX));
        let mine = Checked {
            holders: 1,
            operations: h.operations,
            grants: u64::from(h.ok.is_some()),
        };
        let checks: &[Check] = match h.mode {
            Mode::Mutex => &[Check::Lease],
            Mode::Writer => &[Check::Writers, Check::ReaderWriter],
            Mode::Reader => &[Check::ReaderWriter],
            Mode::Permit => &[Check::Permits],
            Mode::Multi => &[Check::MultiExclusive, Check::MultiPartial],
        };
        for c in checks {
            s.checked.entry(*c).or_default().add(&mine);
        }
    }
}

/// The check a conflict between holds of `a` and `b` violates.
fn conflict_check(a: Mode, b: Mode, conflict: Conflict) -> Check {
    match conflict {
        Conflict::OverLimit { .. } => Check::Permits,
        _ if a == Mode::Multi || b == Mode::Multi => Check::MultiExclusive,
        Conflict::Shared => Check::ReaderWriter,
        Conflict::Exclusive if a == Mode::Writer || b == Mode::Writer => Check::Writers,
        Conflict::Exclusive => Check::Lease,
    }
}

/// How a conflict reads in a message.
fn conflict_text(conflict: Conflict) -> String {
    match conflict {
        Conflict::Exclusive => "exclusive holds overlap".to_owned(),
        Conflict::Shared => "a reader beside an exclusive holder".to_owned(),
        Conflict::OverLimit { holders, limit } => {
            format!("{holders} permit holders at once for {limit} permit(s)")
        }
    }
}

fn bump(map: &mut BTreeMap<String, u64>, key: &str) {
    let n = map.entry(key.to_owned()).or_insert(0);
    *n = n.saturating_add(1);
}

fn check_leases(
    history: &History,
    res: &str,
    hs: &[(&Holder, Claim)],
    origin: u64,
    report: &mut Report,
) {
    let mut spans: Vec<Span<&Holder>> = hs
        .iter()
        .filter_map(|(h, claim)| {
            h.lease().map(|(start, end)| Span {
                start,
                end,
                claim: *claim,
                who: *h,
            })
        })
        .collect();
    let found = conflicts(&mut spans, |a, b| a.who.name() != b.who.name());
    for (i, j, conflict) in found {
        let (Some(new), Some(old)) = (spans.get(i), spans.get(j)) else {
            continue;
        };
        let (h, prev) = (new.who, old.who);
        report.add(
            conflict_check(h.mode, prev.mode, conflict),
            format!(
                "{res}: {} was granted at {:+.3}ms while {} held its lease until {:+.3}ms ({}; {:.3}ms of overlap; tokens {:?} and {:?})",
                h.label(),
                ms_between(origin, new.start),
                prev.label(),
                ms_between(origin, old.end),
                conflict_text(conflict),
                ms_between(new.start, old.end.min(new.end)),
                prev.fence,
                h.fence,
            ),
            excerpt(history, &[prev, h], origin),
        );
    }
}

fn check_sections(
    history: &History,
    res: &str,
    hs: &[(&Holder, Claim)],
    faults: &[Fault],
    stalls: &[Stall],
    origin: u64,
    report: &mut Report,
) {
    // Spans of sections; `who` is (holder, excused overrun).
    let mut spans: Vec<Span<(&Holder, bool)>> = Vec::new();
    for (h, claim) in hs {
        let first = h.claims().first().is_none_or(|(k, _)| *k == res);
        for (enter, exit) in &h.cs {
            let Some(deadline) = h.deadline_at(exit.unwrap_or(u64::MAX)) else {
                continue;
            };
            let exit = exit.unwrap_or(deadline);
            let frozen =
                (exit > deadline).then(|| frozen_during(faults, stalls, &h.process, *enter, exit));
            let excused = frozen.is_some_and(|f| f.is_some());
            // Counted (and reported) once per section, on the hold's first key.
            match frozen {
                Some(_) if !first => {}
                None => {}
                Some(Some(Frozen::ClientPause)) => {
                    report.stats.excused_overruns = report.stats.excused_overruns.saturating_add(1);
                }
                Some(Some(Frozen::Stall)) => {
                    report.stats.stall_overruns = report.stats.stall_overruns.saturating_add(1);
                }
                Some(None) => report.add(
                    Check::CsDeadline,
                    format!(
                        "{res}: {} left its critical section {:.3}ms after its deadline",
                        h.label(),
                        ms_between(deadline, exit)
                    ),
                    excerpt(history, &[h], origin),
                ),
            }
            spans.push(Span {
                start: *enter,
                end: exit,
                claim: *claim,
                who: (*h, excused),
            });
        }
    }
    // An overlap is excused when it lies past a paused (or stalled) stale holder's deadline.
    let judged = |new: &Span<(&Holder, bool)>, old: &Span<(&Holder, bool)>| {
        let stale_past_deadline =
            |x: &Holder, ex: bool| ex && x.deadline_at(u64::MAX).is_some_and(|d| d <= new.start);
        new.who.0.name() != old.who.0.name()
            && !stale_past_deadline(new.who.0, new.who.1)
            && !stale_past_deadline(old.who.0, old.who.1)
    };
    let found = conflicts(&mut spans, judged);
    for (i, j, conflict) in found {
        let (Some(new), Some(old)) = (spans.get(i), spans.get(j)) else {
            continue;
        };
        let (h, prev) = (new.who.0, old.who.0);
        report.add(
            Check::CsOverlap,
            format!(
                "{res}: {} entered its critical section at {:+.3}ms while {} was inside until {:+.3}ms ({})",
                h.label(),
                ms_between(origin, new.start),
                prev.label(),
                ms_between(origin, old.end),
                conflict_text(conflict),
            ),
            excerpt(history, &[prev, h], origin),
        );
    }
}

fn check_tokens(
    history: &History,
    res: &str,
    hs: &[(&Holder, Option<u64>)],
    opts: &CheckOptions,
    origin: u64,
    report: &mut Report,
) {
    let granted: Vec<(&Holder, Option<u64>)> =
        hs.iter().filter(|(h, _)| h.ok.is_some()).copied().collect();
    let mut seen: HashMap<u64, &Holder> = HashMap::new();
    for (h, fence) in &granted {
        match fence {
            None if opts.fencing => report.add(
                Check::TokenUnique,
                format!("{res}: {} was granted without a fencing token", h.label()),
                excerpt(history, &[h], origin),
            ),
            None => {}
            Some(f) => {
                if let Some(other) = seen.insert(*f, h) {
                    report.add(
                        Check::TokenUnique,
                        format!(
                            "{res}: fencing token {f} was issued to both {} and {}",
                            other.label(),
                            h.label()
                        ),
                        excerpt(history, &[other, h], origin),
                    );
                }
            }
        }
    }
    // Real-time order: a grant returned before another acquisition was invoked has a
    // smaller token.
    let mut by_ok: Vec<(u64, u64, &Holder)> = granted
        .iter()
        .filter_map(|(h, f)| Some((h.ok?, (*f)?, *h)))
        .collect();
    by_ok.sort_by_key(|(ok, _, _)| *ok);
    let mut by_invoke: Vec<(u64, u64, &Holder)> = granted
        .iter()
        .filter_map(|(h, f)| Some((h.invoke?, (*f)?, *h)))
        .collect();
    by_invoke.sort_by_key(|(inv, _, _)| *inv);
    let mut i = 0usize;
    let mut best: Option<(u64, &Holder)> = None;
    for (invoke, fence, b) in by_invoke {
        while let Some((ok, f, a)) = by_ok.get(i) {
            if *ok >= invoke {
                break;
            }
            if best.is_none_or(|(bf, _)| *f > bf) {
                best = Some((*f, *a));
            }
            i = i.saturating_add(1);
        }
        if let Some((bf, a)) = best
            && bf >= fence
            && a.name() != b.name()
        {
            report.add(
                    Check::TokenOrder,
                    format!(
                        "{res}: {} got token {fence} although {} had been granted token {bf} before it was invoked",
                        b.name(),
                        a.name()
                    ),
                    excerpt(history, &[a, b], origin),
                );
        }
    }
}

/// All or nothing: a multi-resource grant covers exactly the set asked for, and while it is
/// valid no member is seen free, shared or held by another token on a majority. A probe
/// counts only when its answer came back before the holder's deadline: every read then
/// happened while the granting quorum still held the token (Lemma L of the design note),
/// so any majority answer other than "ours" is a member the lock did not hold.
fn check_multi_partial(
    history: &History,
    holders: &BTreeMap<(String, u64), Holder>,
    origin: u64,
    report: &mut Report,
) {
    for h in holders.values().filter(|h| h.mode == Mode::Multi) {
        if h.ok.is_some() && !h.requested.is_empty() && h.granted != h.requested {
            report.add(
                Check::MultiPartial,
                format!(
                    "{}: asked for {:?}, granted {:?}",
                    h.label(),
                    h.requested,
                    h.granted
                ),
                excerpt(history, &[h], origin),
            );
        }
        for (sent, answered, member, seen) in &h.probes {
            let Some(deadline) = h.deadline_at(*sent) else {
                continue;
            };
            let judged = matches!(seen, Seen::Other | Seen::Free | Seen::Shared);
            let in_hold = h.ok.is_some_and(|ok| ok <= *sent)
                && h.release.is_none_or(|r| *answered <= r)
                && *answered < deadline;
            if judged && in_hold {
                report.add(
                    Check::MultiPartial,
                    format!(
                        "{}: member {member} was {} at {:+.3}ms, inside the lock's validity (deadline {:+.3}ms)",
                        h.label(),
                        match seen {
                            Seen::Other => "held by another token",
                            Seen::Free => "free",
                            _ => "held by readers",
                        },
                        ms_between(origin, *answered),
                        ms_between(origin, deadline)
                    ),
                    excerpt(history, &[h], origin),
                );
            }
        }
    }
}

fn check_grant_bounds(
    history: &History,
    holders: &BTreeMap<(String, u64), Holder>,
    opts: &CheckOptions,
    origin: u64,
    report: &mut Report,
) {
    // Stamps are taken around the library call, and the deadline is converted between two
    // clock reads: 1 ms of tolerance on the upper bound, 5 ms on "not already passed".
    let tolerance = 1_000_000u64;
    for h in holders.values() {
        let (Some(ok), Some((_, deadline))) = (h.ok, h.grants.first()) else {
            continue;
        };
        let ttl = Duration::from_millis(h.ttl_ms);
        let drift = ttl
            .mul_f64(opts.drift_factor)
            .saturating_add(Duration::from_millis(2));
        let lease = nanos(ttl.saturating_sub(drift));
        let max = ok.saturating_add(lease).saturating_add(tolerance);
        if *deadline > max {
            report.add(
                Check::GrantBounds,
                format!(
                    "{}: deadline {:.3}ms after the grant returned, more than TTL − drift ({:.3}ms)",
                    h.name(),
                    ms_between(ok, *deadline),
                    ms_between(0, lease)
                ),
                excerpt(history, &[h], origin),
            );
        }
        if deadline.saturating_add(5_000_000) < ok {
            report.add(
                Check::GrantBounds,
                format!(
                    "{}: the grant was returned {:.3}ms after its deadline had passed",
                    h.name(),
                    ms_between(*deadline, ok)
                ),
                excerpt(history, &[h], origin),
            );
        }
    }
}

fn check_register(history: &History, origin: u64, report: &mut Report) {
    let mut writes: Vec<(u64, &Event)> = history
        .events
        .iter()
        .filter_map(|e| match &e.op {
            Op::RegisterWrite { seq, .. } => Some((*seq, e)),
            _ => None,
        })
        .collect();
    writes.sort_by_key(|(seq, _)| *seq);
    // Per resource: current holder, holders whose block ended, largest accepted token.
    let mut state: HashMap<&str, (Option<&str>, HashSet<&str>, u64)> = HashMap::new();
    for (_, e) in writes {
        let Op::RegisterWrite {
            res,
            holder,
            fence,
            accepted,
            ..
        } = &e.op
        else {
            continue;
        };
        if !accepted {
            continue;
        }
        let (current, ended, max) = state.entry(res.as_str()).or_default();
        if *fence < *max {
            report.add(
                Check::RegisterOrder,
                format!("{res}: the register accepted token {fence} after {max}"),
                vec![show(e, origin)],
            );
        }
        *max = (*max).max(*fence);
        if *current != Some(holder.as_str()) {
            if ended.contains(holder.as_str()) {
                report.add(
                    Check::RegisterAba,
                    format!(
                        "{res}: the register accepted a write of {holder} (token {fence}) after another holder's writes had followed its own"
                    ),
                    vec![show(e, origin)],
                );
            }
            if let Some(prev) = current.take() {
                ended.insert(prev);
            }
            *current = Some(holder.as_str());
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn check_liveness(
    history: &History,
    holders: &BTreeMap<(String, u64), Holder>,
    by_res: &BTreeMap<&str, Vec<(&Holder, Claim)>>,
    (faults, stalls): (&[Fault], &[Stall]),
    opts: &CheckOptions,
    origin: u64,
    report: &mut Report,
) {
    if opts.no_fault_liveness {
        let budget = nanos(opts.acquire_budget);
        for h in holders.values() {
            let Some(invoke) = h.invoke else { continue };
            // A stall of the process (timeouts while it had no CPU) is no fault of the library.
            let end = h.fail.as_ref().map(|e| e.t).or(h.ok).unwrap_or(invoke);
            if frozen_during(faults, stalls, &h.process, invoke, end).is_some() {
                continue;
            }
            let failed = h.fail.as_ref().filter(
                |e| !matches!(&e.op, Op::AcquireFail { reason, .. } if reason == "cancelled"),
            );
            if let Some(e) = failed {
                report.add(
                    Check::LivenessNoFault,
                    format!("{}: acquisition failed with no fault injected", h.name()),
                    vec![show(e, origin)],
                );
            } else if let Some(ok) = h.ok
                && ok.saturating_sub(invoke) > budget
            {
                report.add(
                    Check::LivenessNoFault,
                    format!(
                        "{}: acquisition took {:.3}ms, over its {:?} budget",
                        h.name(),
                        ms_between(invoke, ok),
                        opts.acquire_budget
                    ),
                    excerpt(history, &[h], origin),
                );
            }
        }
    }
    // Recovery after heals.
    let bound = nanos(opts.recovery_bound);
    let mut max_recovery = 0u64;
    for f in faults {
        let Some(heal) = f.end else { continue };
        let until = heal.saturating_add(bound);
        // The window closes early when the next fault starts (or the run ends): a grant in
        // the shorter window still shows recovery; none in it proves nothing either way.
        let next = faults
            .iter()
            .filter(|g| g.start > heal)
            .map(|g| g.start)
            .min()
            .unwrap_or(u64::MAX)
            .min(opts.run_end);
        let window = until.min(next);
        // A stall inside the window delays everything by its length: only a grant counts.
        let stalled = stalls.iter().any(|s| s.from < window && s.to > heal);
        let complete = window == until && !stalled;
        let mut measured = false;
        for (res, hs) in by_res {
            if res.starts_with("victim") {
                continue;
            }
            let first = hs
                .iter()
                .filter_map(|(h, _)| h.ok)
                .filter(|ok| *ok > heal)
                .min();
            let held_through = hs
                .iter()
                .filter_map(|(h, _)| h.lease())
                .any(|(s, e)| s <= window && e > heal);
            match first {
                Some(ok) if ok <= window => {
                    measured = true;
                    max_recovery = max_recovery.max(ok.saturating_sub(heal));
                }
                _ if held_through => measured = true,
                _ if !complete => {}
                _ => report.add(
                    Check::LivenessAfterHeal,
                    format!(
                        "{res}: no grant within {:?} after `{}` on {:?} healed at {:+.3}ms (first grant after: {})",
                        opts.recovery_bound,
                        f.kind,
                        f.targets,
                        ms_between(origin, heal),
                        first.map_or("none".to_owned(), |t| format!("{:+.3}ms", ms_between(origin, t)))
                    ),
                    Vec::new(),
                ),
            }
        }
        if measured {
            report.stats.heals_measured = report.stats.heals_measured.saturating_add(1);
        }
    }
    report.stats.max_recovery_ms = ms_between(0, max_recovery);
    // No grant while a majority cannot grant.
    let grace = nanos(opts.outage_grace);
    for f in faults.iter().filter(|f| f.outage) {
        let from = f.start.saturating_add(grace);
        // Until healing begins: a healed node may complete a quorum before `end` is stamped.
        let to = f.heal.or(f.end).unwrap_or(opts.run_end);
        for h in holders.values() {
            if let Some(ok) = h.ok
                && ok > from
                && ok < to
                && frozen_during(faults, stalls, &h.process, f.start, ok).is_none()
            {
                report.add(
                        Check::GrantDuringOutage,
                        format!(
                            "{} was granted at {:+.3}ms while `{}` on {:?} left no quorum ({:+.3}ms..{:+.3}ms)",
                            h.name(),
                            ms_between(origin, ok),
                            f.kind,
                            f.targets,
                            ms_between(origin, f.start),
                            ms_between(origin, to)
                        ),
                        excerpt(history, &[h], origin),
                    );
            }
        }
    }
}

fn check_hygiene(history: &History, leftovers: &Leftovers, origin: u64, report: &mut Report) {
    for (node, key, pttl) in leftovers {
        report.add(
            Check::LeftoverKey,
            format!("lock key {key:?} still on n{node} after the run (pttl {pttl} ms)"),
            Vec::new(),
        );
    }
    for e in &history.events {
        match &e.op {
            Op::LeakCheck {
                background_tasks,
                subscribed,
            } if *background_tasks > 0 || *subscribed > 0 => report.add(
                Check::Leak,
                format!(
                    "{}: {background_tasks} background task(s) and {subscribed} subscribed resource(s) left after the run",
                    e.process
                ),
                vec![show(e, origin)],
            ),
            Op::AcquireFail { detail, .. } | Op::ReleaseFail { detail, .. }
                if detail.contains("NOSCRIPT") =>
            {
                report.add(
                    Check::Noscript,
                    format!("{}: NOSCRIPT reached the caller", e.process),
                    vec![show(e, origin)],
                );
            }
            _ => {}
        }
    }
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn ev(t: u64, process: &str, op: Op) -> Event {
        Event {
            t: t * MS,
            process: process.to_owned(),
            op,
        }
    }

    fn grant(t: u64, p: &str, id: u64, deadline: u64, fence: u64) -> Vec<Event> {
        vec![
            ev(
                t.saturating_sub(1),
                p,
                Op::AcquireInvoke {
                    res: "r".into(),
                    id,
                    mode: Mode::Mutex,
                    members: Vec::new(),
                    permits: None,
                },
            ),
            ev(
                t,
                p,
                Op::AcquireOk {
                    res: "r".into(),
                    id,
                    start: (t - 1) * MS,
                    deadline: deadline * MS,
                    ttl_ms: 1_000,
                    token: "x".into(),
                    fence: Some(fence),
                    members: Vec::new(),
                    fences: Vec::new(),
                },
            ),
        ]
    }

    fn cs(enter: u64, exit: u64, p: &str, id: u64) -> Vec<Event> {
        vec![
            ev(
                enter,
                p,
                Op::CsEnter {
                    res: "r".into(),
                    id,
                },
            ),
            ev(
                exit,
                p,
                Op::CsExit {
                    res: "r".into(),
                    id,
                    deadline: 0,
                    cut: false,
                },
            ),
        ]
    }

    fn release(t: u64, p: &str, id: u64) -> Event {
        ev(
            t,
            p,
            Op::ReleaseInvoke {
                res: "r".into(),
                id,
            },
        )
    }

    fn reg(t: u64, seq: u64, holder: &str, fence: u64, accepted: bool) -> Event {
        ev(
            t,
            "register",
            Op::RegisterWrite {
                res: "r".into(),
                holder: holder.into(),
                fence,
                accepted,
                seq,
            },
        )
    }

    fn opts() -> CheckOptions {
        CheckOptions {
            drift_factor: 0.01,
            fencing: true,
            no_fault_liveness: false,
            acquire_budget: Duration::from_secs(5),
            recovery_bound: Duration::from_secs(2),
            outage_grace: Duration::from_millis(100),
            run_end: u64::MAX,
        }
    }

    fn run(parts: Vec<Vec<Event>>) -> Report {
        check(&History::merge(parts), &Vec::new(), &opts())
    }

    #[test]
    fn a_clean_hand_off_passes() {
        let r = run(vec![
            grant(10, "a", 1, 900, 1),
            cs(11, 50, "a", 1),
            vec![release(51, "a", 1)],
            grant(60, "b", 1, 1000, 2),
            cs(61, 100, "b", 1),
            vec![release(101, "b", 1)],
            vec![reg(20, 1, "a#1", 1, true), reg(70, 2, "b#1", 2, true)],
        ]);
        assert!(r.violations.is_empty(), "{:#?}", r.violations);
        assert_eq!(r.stats.acquisitions, 2);
    }

    #[test]
    fn overlapping_leases_and_sections_are_flagged() {
        let r = run(vec![
            grant(10, "a", 1, 900, 1),
            cs(11, 300, "a", 1),
            vec![release(301, "a", 1)],
            grant(200, "b", 1, 1000, 2),
            cs(201, 250, "b", 1),
            vec![release(251, "b", 1)],
        ]);
        assert_eq!(r.count(Check::Lease), 1, "{:#?}", r.violations);
        assert_eq!(r.count(Check::CsOverlap), 1);
        assert_eq!(r.count_any(&Check::TOKEN_FAMILY), 0);
    }

    #[test]
    fn a_lease_ends_at_its_deadline_or_release() {
        // b is granted after a's deadline although a never released: fine for the lease,
        // but a's section overran its deadline.
        let r = run(vec![
            grant(10, "a", 1, 500, 1),
            cs(11, 700, "a", 1),
            grant(600, "b", 1, 1500, 2),
            vec![release(601, "b", 1)],
        ]);
        assert_eq!(r.count(Check::Lease), 0, "{:#?}", r.violations);
        assert_eq!(r.count(Check::CsDeadline), 1);
    }

    #[test]
    fn a_paused_process_overrun_is_excused_but_counted() {
        let mut parts = vec![
            grant(10, "p0", 1, 500, 1),
            cs(11, 1_200, "p0", 1),
            grant(600, "b", 1, 1500, 2),
            cs(601, 700, "b", 1),
        ];
        parts.push(vec![
            ev(
                100,
                "nemesis",
                Op::Nemesis {
                    fault: "client-pause".into(),
                    phase: Phase::Start,
                    targets: vec!["p0".into()],
                    outage: false,
                    detail: String::new(),
                },
            ),
            ev(
                1_100,
                "nemesis",
                Op::Nemesis {
                    fault: "client-pause".into(),
                    phase: Phase::End,
                    targets: vec!["p0".into()],
                    outage: false,
                    detail: String::new(),
                },
            ),
            reg(20, 1, "p0#1", 1, true),
            reg(650, 2, "b#1", 2, true),
            reg(1_150, 3, "p0#1", 1, false),
        ]);
        let r = run(parts);
        assert!(r.violations.is_empty(), "{:#?}", r.violations);
        assert_eq!(r.stats.excused_overruns, 1);
        assert_eq!(r.stats.writes_rejected, 1);
    }

    #[test]
    fn a_machine_stall_excuses_an_overrun_but_never_a_lease_overlap() {
        let stall = ev(
            900,
            "watchdog",
            Op::Stall {
                from: 300 * MS,
                to: 900 * MS,
                processes: vec!["a".into(), "b".into()],
            },
        );
        let r = run(vec![
            grant(10, "a", 1, 500, 1),
            cs(11, 950, "a", 1),
            vec![stall.clone()],
        ]);
        assert!(r.violations.is_empty(), "{:#?}", r.violations);
        assert_eq!(r.stats.stall_overruns, 1);
        assert_eq!(r.stats.stalls, 1);
        let r = run(vec![
            grant(10, "a", 1, 500, 1),
            vec![release(450, "a", 1)],
            grant(400, "b", 1, 900, 2),
            vec![release(410, "b", 1), stall],
        ]);
        assert_eq!(r.count(Check::Lease), 1, "{:#?}", r.violations);
    }

    #[test]
    fn duplicate_and_regressing_tokens_are_flagged() {
        let r = run(vec![
            grant(10, "a", 1, 100, 5),
            vec![release(20, "a", 1)],
            grant(30, "b", 1, 120, 5),
            vec![release(40, "b", 1)],
            grant(50, "c", 1, 140, 4),
            vec![release(60, "c", 1)],
        ]);
        assert_eq!(r.count(Check::TokenUnique), 1, "{:#?}", r.violations);
        assert!(r.count(Check::TokenOrder) >= 2);
        assert_eq!(r.count(Check::Lease), 0);
    }

    #[test]
    fn the_register_never_accepts_a_b_a() {
        let r = run(vec![vec![
            reg(1, 1, "a#1", 3, true),
            reg(2, 2, "b#1", 3, true),
            reg(3, 3, "a#1", 3, true),
        ]]);
        assert_eq!(r.count(Check::RegisterAba), 1, "{:#?}", r.violations);
        let r = run(vec![vec![
            reg(1, 1, "a#1", 3, true),
            reg(2, 2, "b#1", 2, true),
        ]]);
        assert_eq!(r.count(Check::RegisterOrder), 1);
    }

    #[test]
    fn grants_must_resume_after_a_heal_and_not_happen_during_an_outage() {
        let nem = |t, phase, outage| {
            ev(
                t,
                "nemesis",
                Op::Nemesis {
                    fault: "pause".into(),
                    phase,
                    targets: vec!["n0".into(), "n1".into(), "n2".into()],
                    outage,
                    detail: String::new(),
                },
            )
        };
        let mut o = opts();
        o.run_end = 10_000 * MS;
        let history = History::merge(vec![
            grant(10, "a", 1, 900, 1),
            vec![release(20, "a", 1)],
            vec![nem(100, Phase::Start, true), nem(1_000, Phase::End, true)],
            grant(500, "b", 1, 1_400, 2),
            vec![release(510, "b", 1)],
            grant(4_000, "c", 1, 4_900, 3),
            vec![release(4_010, "c", 1)],
        ]);
        let r = check(&history, &Vec::new(), &o);
        assert_eq!(r.count(Check::GrantDuringOutage), 1, "{:#?}", r.violations);
        assert_eq!(r.count(Check::LivenessAfterHeal), 1);
    }

    #[test]
    fn leftovers_leaks_and_noscript_are_flagged() {
        let history = History::merge(vec![vec![
            ev(
                1,
                "w0",
                Op::LeakCheck {
                    background_tasks: 1,
                    subscribed: 0,
                },
            ),
            ev(
                2,
                "w0",
                Op::AcquireFail {
                    res: "r".into(),
                    id: 1,
                    reason: "other".into(),
                    detail: "NOSCRIPT No matching script".into(),
                },
            ),
        ]]);
        let r = check(&history, &vec![(0, "r".into(), 300)], &opts());
        assert_eq!(r.count(Check::LeftoverKey), 1);
        assert_eq!(r.count(Check::Leak), 1);
        assert_eq!(r.count(Check::Noscript), 1);
    }

    // Checker self-tests for the primitives: each planted violation is caught by its check
    // (and by no other exclusion check), and the clean history next to it passes.

    /// A grant of `mode` on `res` (a multi-resource lock: on `members`), invoked 1 ms
    /// before `t`, valid until `deadline`, released at `release`, with a critical section
    /// from `t + 1` to `release − 1`.
    #[allow(clippy::too_many_arguments)]
    fn hold(
        p: &str,
        id: u64,
        mode: Mode,
        res: &str,
        members: &[&str],
        permits: Option<u32>,
        (t, deadline, release): (u64, u64, u64),
        fences: &[u64],
    ) -> Vec<Event> {
        let members: Vec<String> = members.iter().map(|m| (*m).to_owned()).collect();
        let single = members.is_empty();
        vec![
            ev(
                t - 1,
                p,
                Op::AcquireInvoke {
                    res: res.into(),
                    id,
                    mode,
                    members: members.clone(),
                    permits,
                },
            ),
            ev(
                t,
                p,
                Op::AcquireOk {
                    res: res.into(),
                    id,
                    start: (t - 1) * MS,
                    deadline: deadline * MS,
                    ttl_ms: 1_000,
                    token: "x".into(),
                    fence: if single {
                        fences.first().copied()
                    } else {
                        None
                    },
                    members,
                    fences: if single { Vec::new() } else { fences.to_vec() },
                },
            ),
            ev(
                t + 1,
                p,
                Op::CsEnter {
                    res: res.into(),
                    id,
                },
            ),
            ev(
                release - 1,
                p,
                Op::CsExit {
                    res: res.into(),
                    id,
                    deadline: deadline * MS,
                    cut: false,
                },
            ),
            ev(
                release,
                p,
                Op::ReleaseInvoke {
                    res: res.into(),
                    id,
                },
            ),
        ]
    }

    fn writer(p: &str, id: u64, times: (u64, u64, u64), fence: u64) -> Vec<Event> {
        hold(p, id, Mode::Writer, "rw", &[], None, times, &[fence])
    }

    fn reader(p: &str, id: u64, times: (u64, u64, u64)) -> Vec<Event> {
        hold(p, id, Mode::Reader, "rw", &[], None, times, &[])
    }

    fn permit(p: &str, id: u64, times: (u64, u64, u64)) -> Vec<Event> {
        hold(p, id, Mode::Permit, "sem", &[], Some(2), times, &[])
    }

    fn multi(
        p: &str,
        id: u64,
        members: &[&str],
        times: (u64, u64, u64),
        fences: &[u64],
    ) -> Vec<Event> {
        let res = members.join("+");
        hold(p, id, Mode::Multi, &res, members, None, times, fences)
    }

    fn mutex(p: &str, id: u64, res: &str, times: (u64, u64, u64), fence: u64) -> Vec<Event> {
        hold(p, id, Mode::Mutex, res, &[], None, times, &[fence])
    }

    /// Only `check` (and the section check that mirrors it) fired among the exclusion checks.
    fn only(r: &Report, check: Check) {
        assert_eq!(r.count(check), 1, "{:#?}", r.violations);
        for other in Check::PRIMITIVES.iter().chain([&Check::Lease]) {
            if *other != check {
                assert_eq!(r.count(*other), 0, "{other}: {:#?}", r.violations);
            }
        }
    }

    #[test]
    fn two_writers_at_once_are_flagged_one_after_the_other_pass() {
        let r = run(vec![
            writer("a", 1, (10, 900, 300), 1),
            writer("b", 1, (200, 1_000, 400), 2),
        ]);
        only(&r, Check::Writers);
        assert_eq!(r.count(Check::CsOverlap), 1);
        // A writer and a mutex on the same resource exclude each other too.
        let r = run(vec![
            writer("a", 1, (10, 900, 300), 1),
            mutex("b", 1, "rw", (200, 1_000, 400), 2),
        ]);
        only(&r, Check::Writers);
        let r = run(vec![
            writer("a", 1, (10, 900, 300), 1),
            writer("b", 1, (310, 1_000, 400), 2),
            mutex("c", 1, "rw", (410, 1_000, 500), 3),
        ]);
        assert!(r.violations.is_empty(), "{:#?}", r.violations);
        assert_eq!(r.stats.checked[&Check::Writers].grants, 2);
    }

    #[test]
    fn a_writer_beside_a_reader_is_flagged_readers_together_pass() {
        let r = run(vec![
            reader("a", 1, (10, 900, 300)),
            writer("b", 1, (200, 1_000, 400), 1),
        ]);
        only(&r, Check::ReaderWriter);
        assert_eq!(r.count(Check::CsOverlap), 1);
        // The other way round: a reader granted while a writer holds.
        let r = run(vec![
            writer("a", 1, (10, 900, 300), 1),
            reader("b", 1, (200, 1_000, 400)),
        ]);
        only(&r, Check::ReaderWriter);
        // A writer's lease ends at its deadline: a reader after it is fine.
        let r = run(vec![
            reader("a", 1, (10, 900, 300)),
            reader("b", 1, (20, 900, 350)),
            reader("c", 1, (30, 900, 320)),
            writer("d", 1, (360, 1_000, 500), 1),
            writer("e", 1, (10, 8, 9), 0),
        ]);
        assert_eq!(r.count(Check::ReaderWriter), 0, "{:#?}", r.violations);
        assert_eq!(r.stats.checked[&Check::ReaderWriter].grants, 5);
    }

    #[test]
    fn k_plus_one_permit_holders_are_flagged_k_pass() {
        // k = 2: a, b, c all hold at 250.
        let r = run(vec![
            permit("a", 1, (10, 900, 300)),
            permit("b", 1, (100, 900, 400)),
            permit("c", 1, (250, 900, 500)),
        ]);
        only(&r, Check::Permits);
        assert_eq!(r.count(Check::CsOverlap), 1);
        assert!(
            r.violations[0].message.contains("3 permit holders"),
            "{:#?}",
            r.violations
        );
        // Never more than two at once (c starts when a has released).
        let r = run(vec![
            permit("a", 1, (10, 900, 300)),
            permit("b", 1, (100, 900, 400)),
            permit("c", 1, (300, 900, 500)),
            permit("d", 1, (401, 900, 600)),
        ]);
        assert!(r.violations.is_empty(), "{:#?}", r.violations);
        // A holder whose validity ended without a release no longer counts.
        let r = run(vec![
            permit("a", 1, (10, 200, 900)),
            permit("b", 1, (100, 900, 400)),
            permit("c", 1, (250, 900, 500)),
        ]);
        assert_eq!(r.count(Check::Permits), 0, "{:#?}", r.violations);
    }

    #[test]
    fn a_multi_lock_must_be_exclusive_on_every_member() {
        // {m0, m1} and a mutex on m1 at once.
        let r = run(vec![
            multi("a", 1, &["m0", "m1"], (10, 900, 300), &[1, 1]),
            mutex("b", 1, "m1", (200, 1_000, 400), 2),
        ]);
        only(&r, Check::MultiExclusive);
        assert_eq!(r.count(Check::CsOverlap), 1);
        // Two overlapping sets at once.
        let r = run(vec![
            multi("a", 1, &["m0", "m1"], (10, 900, 300), &[1, 1]),
            multi("b", 1, &["m1", "m2"], (200, 1_000, 400), &[2, 1]),
        ]);
        only(&r, Check::MultiExclusive);
        // A reader of a member while the set holds it.
        let r = run(vec![
            multi("a", 1, &["m0", "m1"], (10, 900, 300), &[1, 1]),
            hold(
                "b",
                1,
                Mode::Reader,
                "m0",
                &[],
                None,
                (200, 1_000, 400),
                &[],
            ),
        ]);
        only(&r, Check::MultiExclusive);
        // Disjoint sets and a mutex on a third member run side by side; overlapping ones
        // take turns; the tokens of each member increase across kinds.
        let r = run(vec![
            multi("a", 1, &["m0", "m1"], (10, 900, 300), &[1, 1]),
            mutex("b", 1, "m2", (20, 900, 250), 1),
            multi("c", 1, &["m1", "m2"], (301, 1_000, 400), &[2, 2]),
            mutex("d", 1, "m0", (301, 1_000, 450), 2),
        ]);
        assert!(r.violations.is_empty(), "{:#?}", r.violations);
        assert_eq!(r.stats.checked[&Check::MultiExclusive].grants, 2);
    }

    #[test]
    fn a_partial_multi_lock_is_flagged() {
        // Asked for {m0, m1}, granted only m0.
        let mut events = multi("a", 1, &["m0", "m1"], (10, 900, 300), &[1]);
        if let Op::AcquireOk { members, .. } = &mut events[1].op {
            members.truncate(1);
        }
        let r = run(vec![events]);
        assert_eq!(r.count(Check::MultiPartial), 1, "{:#?}", r.violations);
        // A probe inside the validity finds a member free (or another token on it).
        let probe = |t: u64, res: &str, seen: Seen| {
            ev(
                t,
                "a",
                Op::Probe {
                    res: res.into(),
                    id: 1,
                    invoked: (t - 5) * MS,
                    seen,
                },
            )
        };
        let r = run(vec![
            multi("a", 1, &["m0", "m1"], (10, 900, 300), &[1, 1]),
            vec![
                probe(50, "m0", Seen::Ours),
                probe(60, "m1", Seen::Free),
                probe(70, "m1", Seen::Other),
            ],
        ]);
        // Each probe that saw a member not held is one finding.
        assert_eq!(r.count(Check::MultiPartial), 2, "{:#?}", r.violations);
        assert_eq!(r.counts.values().sum::<u64>(), 2, "{:#?}", r.violations);
        let r = run(vec![
            multi("a", 1, &["m0", "m1"], (10, 900, 300), &[1, 1]),
            vec![probe(70, "m1", Seen::Other)],
        ]);
        assert_eq!(r.count(Check::MultiPartial), 1, "{:#?}", r.violations);
        // Clean: every probe says "ours", or proves nothing (no majority answer, or it
        // came back after the deadline or the release).
        // b never released: its lease ends at its deadline (500).
        let mut b = multi("b", 1, &["m2", "m3"], (10, 500, 900), &[1, 1]);
        b.truncate(2);
        b.push(ev(
            600,
            "b",
            Op::Probe {
                res: "m2".into(),
                id: 1,
                invoked: 590 * MS,
                seen: Seen::Free,
            },
        ));
        let r = run(vec![
            multi("a", 1, &["m0", "m1"], (10, 900, 880), &[1, 1]),
            vec![
                probe(50, "m0", Seen::Ours),
                probe(60, "m1", Seen::Ours),
                probe(70, "m1", Seen::Unknown),
                probe(890, "m0", Seen::Free),
            ],
            b,
        ]);
        assert!(r.violations.is_empty(), "{:#?}", r.violations);
        assert_eq!(r.stats.probes, 5);
        assert_eq!(r.stats.probes_conclusive, 4);
    }

    #[test]
    fn a_multi_lock_needs_a_fencing_token_per_member_ordered_with_the_mutex() {
        // One token missing, and m1's token going backwards after a mutex on m1.
        let r = run(vec![
            mutex("a", 1, "m1", (10, 900, 300), 5),
            multi("b", 1, &["m0", "m1"], (400, 1_000, 500), &[1]),
            multi("c", 1, &["m0", "m1"], (600, 1_500, 700), &[2, 4]),
        ]);
        assert_eq!(r.count(Check::TokenUnique), 1, "{:#?}", r.violations);
        assert_eq!(r.count(Check::TokenOrder), 1, "{:#?}", r.violations);
        assert_eq!(r.count(Check::MultiExclusive), 0);
    }
}
