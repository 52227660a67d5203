//! Scenarios: a fault family (or a targeted schedule), what it must and must not do to the
//! checks, and the orchestration of one run — masters, proxies, workers (tasks and
//! `lock-worker` processes), the nemesis, teardown, the checks and the verdict.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_redlock::{LockManager, LockManagerBuilder};

use crate::check::{Check, CheckOptions, Checked, Leftovers, Report, check};
use crate::clock::{instant_ns, mono_ns};
use crate::harness::{ClientLink, Cluster, HResult, HarnessError, Persistence};
use crate::history::{Event, History, Op, Phase, Recorder};
use crate::nemesis::{Family, Nemesis, Proc, ScheduleParams, Step, schedule};
use crate::register::{self, FencedRegister, RegisterHandle};
use crate::rng::SeededRng;
use crate::stall::StallDetector;
use crate::worker::{
    Target, WorkerConfig, WorkerMode, Workload, detail, leak_check, reason, release_done,
    run_worker,
};

/// Gaps longer than this in a process's scheduling are recorded as stalls (below every
/// critical-section margin, so every stall that can make a holder overrun is seen).
pub const STALL_THRESHOLD: Duration = Duration::from_millis(50);

/// What a scenario may do to the lease checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LeaseExpect {
    /// Must be safe: any lease, section or deadline violation fails the run.
    Safe,
    /// The checker self-test: the checks of [`Spec::must_flag`] **must** flag the run.
    MustViolate,
    /// Outside the library's assumptions: violations are reported, not judged.
    MayViolate,
}

/// Targeted schedules of the checker self-test (design note §4.3, F4 and F9).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Targeted {
    /// A holds {3 of 5}; one of them is killed and restarted at once without persistence;
    /// B then locks that node and the two A never reached.
    Amnesia,
    /// The same, with the victim's clock jumping forward past the TTL (TTL-skew emulation)
    /// instead of a restart.
    ClockJump,
}

/// How a scenario injects its faults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Contending workers under a random schedule of one family.
    Workload(Family),
    /// A deterministic two-client schedule.
    Targeted(Targeted),
}

/// A scenario of the suite.
#[derive(Clone, Debug)]
pub struct Spec {
    /// Name (`pause-majority`).
    pub name: &'static str,
    /// Catalogue entries it covers (`F2`).
    pub catalogue: &'static str,
    /// One-line description.
    pub about: &'static str,
    /// Persistence of the masters.
    pub persistence: Persistence,
    /// Expectation on the lease checks.
    pub lease: LeaseExpect,
    /// Whether the fencing promise applies (masters lose no data).
    pub tokens_promised: bool,
    /// The faults.
    pub kind: Kind,
    /// The workers take the primitives beyond the mutex (see [`PRIMITIVE_ROLES`]) instead
    /// of mutexes.
    pub primitives: bool,
}

/// Permits of the semaphore of the primitives workload (fewer than its workers).
pub const SEMAPHORE_PERMITS: u32 = 2;

/// What the workers of one client group take in a primitives scenario, and on which
/// resources: multi-resource locks on random subsets of `m0..m2` (a single member is a plain
/// mutex, so both meet on the same keys); readers and writers (30 %) of `rw0`; permits of
/// the semaphore `sem0` with [`SEMAPHORE_PERMITS`] permits. With 3 groups: 3 multi-resource
/// workers, 6 reader/writer workers, 6 workers for 2 permits.
pub const PRIMITIVE_ROLES: [(Workload, &[&str]); 5] = [
    (Workload::Multi, &["m0", "m1", "m2"]),
    (Workload::ReadWrite { write_chance: 0.3 }, &["rw0"]),
    (Workload::ReadWrite { write_chance: 0.3 }, &["rw0"]),
    (
        Workload::Semaphore {
            permits: SEMAPHORE_PERMITS,
        },
        &["sem0"],
    ),
    (
        Workload::Semaphore {
            permits: SEMAPHORE_PERMITS,
        },
        &["sem0"],
    ),
];

impl Spec {
    /// The checks a self-test ([`LeaseExpect::MustViolate`]) must see fire: the lease
    /// checker for mutexes; for the primitives, each exclusion check a round plants a
    /// violation of.
    pub fn must_flag(&self) -> &'static [Check] {
        if self.primitives {
            &[
                Check::Writers,
                Check::ReaderWriter,
                Check::MultiExclusive,
                Check::Permits,
            ]
        } else {
            &[Check::Lease]
        }
    }
}

/// Every scenario, in catalogue order.
pub fn catalogue() -> Vec<Spec> {
    use Family as F;
    use LeaseExpect::{MayViolate, MustViolate, Safe};
    let w = |name, catalogue, about, persistence, lease, tokens_promised, family| Spec {
        name,
        catalogue,
        about,
        persistence,
        lease,
        tokens_promised,
        kind: Kind::Workload(family),
        primitives: false,
    };
    let p = |name, catalogue, about, persistence, family| Spec {
        name,
        catalogue,
        about,
        persistence,
        lease: Safe,
        tokens_promised: true,
        kind: Kind::Workload(family),
        primitives: true,
    };
    vec![
        w(
            "baseline",
            "F0",
            "no fault: every acquisition succeeds within its budget",
            Persistence::None,
            Safe,
            true,
            F::None,
        ),
        w(
            "pause-minority",
            "F1",
            "SIGSTOP of 1–2 of 5 masters, shorter and longer than the TTL",
            Persistence::None,
            Safe,
            true,
            F::PauseMinority,
        ),
        w(
            "pause-majority",
            "F2",
            "SIGSTOP of 3–4 of 5 masters",
            Persistence::None,
            Safe,
            true,
            F::PauseMajority,
        ),
        w(
            "kill-restart-aof",
            "F3",
            "SIGKILL and restart of 1–5 masters with AOF `always`",
            Persistence::AofAlways,
            Safe,
            true,
            F::KillRestartAof,
        ),
        w(
            "restart-delayed",
            "F4",
            "SIGKILL, restart without persistence after TTL + 100–300 ms",
            Persistence::None,
            Safe,
            false,
            F::RestartDelayed,
        ),
        w(
            "restart-immediate",
            "F4",
            "SIGKILL, immediate restart without persistence (outside the assumptions)",
            Persistence::None,
            MayViolate,
            false,
            F::RestartImmediate,
        ),
        w(
            "partition",
            "F6 F16 F17",
            "proxy faults: replies dropped, stalls, refused and reset connections",
            Persistence::None,
            Safe,
            true,
            F::Proxy,
        ),
        w(
            "latency",
            "F7",
            "proxy latency of 0.3–1.0 × TTL with a per-master timeout of 0.9 × TTL",
            Persistence::None,
            Safe,
            true,
            F::Latency,
        ),
        w(
            "client-pause",
            "F8",
            "SIGSTOP of a lock-worker process inside its critical section",
            Persistence::None,
            Safe,
            true,
            F::ClientPause,
        ),
        w(
            "clock-skew",
            "F9",
            "TTL-skew clock steps within the drift allowance, backward jumps, fast clocks",
            Persistence::None,
            Safe,
            true,
            F::ClockSkew,
        ),
        w(
            "script-flush",
            "F11",
            "SCRIPT FLUSH every 0.1–0.4 s",
            Persistence::None,
            Safe,
            true,
            F::ScriptFlush,
        ),
        w(
            "acl",
            "F12",
            "the library's ACL user loses EVAL on a minority or a majority",
            Persistence::None,
            Safe,
            true,
            F::Acl,
        ),
        w(
            "oom",
            "F13",
            "maxmemory below usage (noeviction) on a minority or a majority",
            Persistence::None,
            Safe,
            true,
            F::Oom,
        ),
        w(
            "client-pause-write",
            "F14",
            "CLIENT PAUSE WRITE on a minority or a majority",
            Persistence::None,
            Safe,
            true,
            F::ClientPauseWrite,
        ),
        w(
            "debug-sleep",
            "F15",
            "DEBUG SLEEP on a minority or a majority",
            Persistence::None,
            Safe,
            true,
            F::DebugSleep,
        ),
        w(
            "mixed",
            "F1–F3 F6–F9 F11–F17",
            "a random mix of every safe fault, AOF `always`",
            Persistence::AofAlways,
            Safe,
            true,
            F::Mixed,
        ),
        Spec {
            name: "selftest-amnesia",
            catalogue: "F4",
            about: "A holds 3 of 5; one is restarted empty at once; B takes it and the other two",
            persistence: Persistence::None,
            lease: MustViolate,
            tokens_promised: true,
            kind: Kind::Targeted(Targeted::Amnesia),
            primitives: false,
        },
        Spec {
            name: "selftest-clock-jump",
            catalogue: "F9",
            about: "A holds 3 of 5; one master's clock jumps past the TTL; B takes it and the other two",
            persistence: Persistence::None,
            lease: MustViolate,
            tokens_promised: true,
            kind: Kind::Targeted(Targeted::ClockJump),
            primitives: false,
        },
        Spec {
            name: "selftest-amnesia-primitives",
            catalogue: "F4",
            about: "as selftest-amnesia, with A and B as two writers, a reader and a writer, a multi-resource lock and a mutex on a member, two holders of a 1-permit semaphore",
            persistence: Persistence::None,
            lease: MustViolate,
            tokens_promised: true,
            kind: Kind::Targeted(Targeted::Amnesia),
            primitives: true,
        },
        p(
            "primitives-baseline",
            "F0",
            "multi-resource locks, readers and writers, a 2-permit semaphore; no fault",
            Persistence::None,
            F::None,
        ),
        p(
            "primitives-pause-minority",
            "F1",
            "the primitives under SIGSTOP of 1–2 of 5 masters",
            Persistence::None,
            F::PauseMinority,
        ),
        p(
            "primitives-pause-majority",
            "F2",
            "the primitives under SIGSTOP of 3–4 of 5 masters",
            Persistence::None,
            F::PauseMajority,
        ),
        p(
            "primitives-kill-restart-aof",
            "F3",
            "the primitives under SIGKILL and restart of 1–5 masters, AOF `always`",
            Persistence::AofAlways,
            F::KillRestartAof,
        ),
        p(
            "primitives-partition",
            "F6 F16 F17",
            "the primitives under proxy faults: dropped replies, stalls, refused and reset connections",
            Persistence::None,
            F::Proxy,
        ),
        p(
            "primitives-clock-skew",
            "F9",
            "the primitives under TTL-skew clock steps within the drift allowance",
            Persistence::None,
            F::ClockSkew,
        ),
        p(
            "primitives-mixed",
            "F1–F3 F6–F9 F11–F17",
            "the primitives under a random mix of every safe fault, AOF `always`; paused client processes lock members as mutexes",
            Persistence::AofAlways,
            F::Mixed,
        ),
    ]
}

/// The scenario called `name`.
pub fn find(name: &str) -> Option<Spec> {
    catalogue().into_iter().find(|s| s.name == name)
}

/// Size and timing of a run.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// Seed of the schedule and of the workers' choices.
    pub seed: u64,
    /// Length of the workload (extended if the nemesis runs late).
    pub duration: Duration,
    /// Lock TTL.
    pub ttl: Duration,
    /// Per-master timeout (the latency scenario raises it to 0.9 × TTL).
    pub node_timeout: Duration,
    /// Masters.
    pub nodes: usize,
    /// In-process client groups (one manager and one set of proxies each).
    pub groups: usize,
    /// Worker tasks per group.
    pub workers_per_group: usize,
    /// `lock-worker` processes, for the families that pause clients.
    pub processes: usize,
    /// Contended resources.
    pub resources: usize,
    /// Scheduling slack added to the recovery bound (a loaded 2-core box).
    pub slack: Duration,
    /// The `lock-worker` binary (client-pause scenarios are skipped without it).
    pub lock_worker: Option<PathBuf>,
    /// Where histories are written: always when `keep_history`, else only on failure.
    pub artifacts: Option<PathBuf>,
    /// Write every history, not only failing ones.
    pub keep_history: bool,
    /// Rounds of a targeted schedule.
    pub rounds: usize,
}

impl RunConfig {
    /// The CI tier: a few seconds per scenario on 2 cores, debug build.
    pub fn ci(seed: u64) -> Self {
        Self {
            seed,
            duration: Duration::from_millis(6_500),
            ttl: Duration::from_millis(600),
            node_timeout: Duration::from_millis(100),
            nodes: 5,
            groups: 3,
            workers_per_group: 2,
            processes: 2,
            resources: 3,
            slack: Duration::from_millis(1_000),
            lock_worker: None,
            artifacts: None,
            keep_history: false,
            rounds: 2,
        }
    }

    /// One soak episode of `duration`.
    pub fn soak(seed: u64, duration: Duration) -> Self {
        Self {
            seed,
            duration,
            ttl: Duration::from_millis(800),
            node_timeout: Duration::from_millis(100),
            nodes: 5,
            groups: 3,
            workers_per_group: 3,
            processes: 2,
            resources: 3,
            slack: Duration::from_millis(1_500),
            lock_worker: None,
            artifacts: None,
            keep_history: false,
            rounds: 6,
        }
    }
}

/// Manager settings derived from a run's configuration.
#[derive(Clone, Debug)]
struct Settings {
    ttl: Duration,
    node_timeout: Duration,
    connect_timeout: Duration,
    retry_delay: Duration,
    retry_jitter: Duration,
    backoff: (Duration, Duration),
    acquire_wait: Duration,
    margin: Duration,
    recovery_bound: Duration,
}

impl Settings {
    fn new(cfg: &RunConfig, family: Family) -> Self {
        let ttl = cfg.ttl;
        let node_timeout = match family {
            Family::Latency => ttl.mul_f64(0.9),
            // No fault to time out on: a per-master budget that CPU starvation on a shared
            // 2-core box cannot exhaust, since every acquisition must succeed.
            Family::None => cfg.node_timeout.max(ttl.mul_f64(0.4)),
            _ => cfg.node_timeout,
        };
        let connect_timeout = node_timeout
            .saturating_mul(2)
            .max(Duration::from_millis(200));
        let retry_delay = ttl.checked_div(10).unwrap_or_default();
        let retry_jitter = ttl.checked_div(20).unwrap_or_default();
        let backoff = (Duration::from_millis(10), Duration::from_millis(50));
        // TTL (ghost keys of the fault expire) + one failed round and reconnect + a retry
        // sleep + the worker's backoff + scheduling slack.
        let recovery_bound = ttl
            .saturating_add(node_timeout.saturating_mul(2))
            .saturating_add(connect_timeout)
            .saturating_add(retry_delay)
            .saturating_add(retry_jitter)
            .saturating_add(backoff.1)
            .saturating_add(cfg.slack);
        Self {
            ttl,
            node_timeout,
            connect_timeout,
            retry_delay,
            retry_jitter,
            backoff,
            acquire_wait: ttl.saturating_mul(8),
            margin: ttl
                .checked_div(8)
                .unwrap_or_default()
                .max(Duration::from_millis(30)),
            recovery_bound,
        }
    }

    fn builder(&self, urls: Vec<String>) -> LockManagerBuilder {
        LockManager::builder()
            .servers(urls)
            .ttl(self.ttl)
            .node_timeout(self.node_timeout)
            .connect_timeout(self.connect_timeout)
            .retry_delay(self.retry_delay)
            .retry_jitter(self.retry_jitter)
            .fencing(true)
    }

    fn manager(&self, link: &ClientLink) -> HResult<LockManager> {
        self.builder(link.urls())
            .build()
            .map_err(|e| HarnessError(format!("manager for {}: {e}", link.name)))
    }
}

/// Pass or fail, and why.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Verdict {
    /// True when every must-hold check held and every must-fire check fired.
    pub pass: bool,
    /// Why it failed.
    pub problems: Vec<String>,
    /// Violations that were expected (self-tests, scenarios outside the assumptions).
    pub expected: Vec<String>,
}

/// The result of one run.
#[derive(Clone, Debug, Serialize)]
pub struct Outcome {
    /// Scenario name.
    pub scenario: String,
    /// Catalogue entries.
    pub catalogue: String,
    /// Seed (replays the schedule).
    pub seed: u64,
    /// The schedule, rendered.
    pub schedule: Vec<String>,
    /// Checks and figures.
    pub report: Report,
    /// Verdict.
    pub verdict: Verdict,
    /// Lost updates of the unfenced counter (demonstration; expected under client pauses).
    pub lost_updates: u64,
    /// Where the history was written, if it was.
    pub history: Option<PathBuf>,
    /// Wall time of the run.
    pub elapsed_ms: u128,
    /// Harness notes (skipped parts, slow teardown).
    pub notes: Vec<String>,
}

impl Outcome {
    /// A human-readable summary: figures, schedule, violations with excerpts.
    pub fn summary(&self) -> String {
        let s = &self.report.stats;
        let mut out = format!(
            "scenario {} ({}) seed {}: {} in {:.1}s\n  acquisitions {} of {} invocations; failures {:?}\n  \
             critical sections {} ({} cut at the deadline); extends {} ({} failed); lost guards {}\n  \
             fenced writes {} accepted, {} rejected; overruns excused: {} paused, {} stalled ({} stalls, longest {:.0} ms); unfenced lost updates {}\n  \
             faults {:?}; heals measured {}, slowest recovery {:.0} ms\n",
            self.scenario,
            self.catalogue,
            self.seed,
            if self.verdict.pass { "PASS" } else { "FAIL" },
            Duration::from_millis(u64::try_from(self.elapsed_ms).unwrap_or(0)).as_secs_f64(),
            s.acquisitions,
            s.acquire_invokes,
            s.acquire_failures,
            s.critical_sections,
            s.cs_cut,
            s.extends,
            s.extend_failures,
            s.lost,
            s.writes_accepted,
            s.writes_rejected,
            s.excused_overruns,
            s.stall_overruns,
            s.stalls,
            s.max_stall_ms,
            self.lost_updates,
            s.faults,
            s.heals_measured,
            s.max_recovery_ms,
        );
        let judged: Vec<String> = Check::PRIMITIVES
            .iter()
            .chain([&Check::Lease])
            .filter_map(|c| {
                let f = s.checked.get(c)?;
                Some(format!(
                    "{c} {} ops / {} grants / {} violations",
                    f.operations,
                    f.grants,
                    self.report.count(*c)
                ))
            })
            .collect();
        if !judged.is_empty() {
            out.push_str(&format!(
                "  exclusion checks: {}; member probes {} ({} conclusive); nemesis events {}\n",
                judged.join(", "),
                s.probes,
                s.probes_conclusive,
                s.nemesis_events
            ));
        }
        if !self.schedule.is_empty() {
            out.push_str("  schedule:\n");
            for line in &self.schedule {
                out.push_str(&format!("    {line}\n"));
            }
        }
        for n in &self.notes {
            out.push_str(&format!("  note: {n}\n"));
        }
        for e in &self.verdict.expected {
            out.push_str(&format!("  expected: {e}\n"));
        }
        for p in &self.verdict.problems {
            out.push_str(&format!("  PROBLEM: {p}\n"));
        }
        for v in &self.report.violations {
            let expected = self
                .verdict
                .expected
                .iter()
                .any(|e| e.starts_with(v.check.name()));
            out.push_str(&format!(
                "  {}[{}] {}\n",
                if expected { "(expected) " } else { "" },
                v.check,
                v.message
            ));
            for line in v.excerpt.iter().take(16) {
                out.push_str(&format!("      {line}\n"));
            }
        }
        if let Some(path) = &self.history {
            out.push_str(&format!("  history: {}\n", path.display()));
        }
        out
    }
}

/// Runs one scenario.
///
/// # Errors
///
/// When the harness itself fails (a server does not start or restart). Violations are not
/// errors: they are in the outcome.
pub async fn run(spec: &Spec, cfg: &RunConfig) -> HResult<Outcome> {
    let started = std::time::Instant::now();
    let mut outcome = match spec.kind {
        Kind::Workload(family) => run_workload(spec, family, cfg).await?,
        Kind::Targeted(t) => run_targeted(spec, t, cfg).await?,
    };
    outcome.elapsed_ms = started.elapsed().as_millis();
    Ok(outcome)
}

/// Judges a report against the scenario's expectations.
pub fn judge(spec: &Spec, report: &Report) -> Verdict {
    let mut v = Verdict::default();
    for check in Check::ALL {
        let n = report.count(check);
        let lease_family = Check::LEASE_FAMILY.contains(&check);
        let token_family = Check::TOKEN_FAMILY.contains(&check);
        let allowed = (lease_family && spec.lease != LeaseExpect::Safe)
            || (token_family && !spec.tokens_promised);
        if n == 0 {
            continue;
        }
        if allowed {
            v.expected.push(format!("{check}: {n} violation(s)"));
        } else {
            v.problems.push(format!("{check}: {n} violation(s)"));
        }
    }
    if spec.lease == LeaseExpect::MustViolate {
        for check in spec.must_flag() {
            if report.count(*check) == 0 {
                v.problems.push(format!(
                    "self-test: the {check} checker did not flag a run that must violate it"
                ));
            }
        }
    }
    v.pass = v.problems.is_empty();
    v
}

fn check_options(settings: &Settings, no_fault: bool, run_end: u64) -> CheckOptions {
    CheckOptions {
        drift_factor: tokio_redlock::DEFAULT_DRIFT_FACTOR,
        fencing: true,
        no_fault_liveness: no_fault,
        acquire_budget: settings
            .acquire_wait
            .saturating_add(Duration::from_millis(500)),
        recovery_bound: settings.recovery_bound,
        outage_grace: settings
            .node_timeout
            .saturating_add(Duration::from_millis(150)),
        run_end,
    }
}

/// A `lock-worker` child process.
struct WorkerProcess {
    name: String,
    child: Child,
    history: PathBuf,
}

impl WorkerProcess {
    fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).unwrap_or(0)
    }

    /// Closes its stdin (its stop signal) and waits up to 10 s before killing it.
    async fn stop(mut self) -> (Vec<Event>, Option<String>) {
        drop(self.child.stdin.take());
        let until = Instant::now()
            .checked_add(Duration::from_secs(10))
            .unwrap_or_else(Instant::now);
        let mut note = None;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    if !status.success() {
                        note = Some(format!("{} exited with {status}", self.name));
                    }
                    break;
                }
                Ok(None) if Instant::now() < until => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    note = Some(format!("{} did not stop in 10 s and was killed", self.name));
                    break;
                }
            }
        }
        match History::read_jsonl(&self.history) {
            Ok((events, 0)) => (events, note),
            Ok((events, bad)) => (
                events,
                Some(format!("{}: {bad} unreadable history line(s)", self.name)),
            ),
            Err(e) => (
                Vec::new(),
                Some(format!("{}: history unreadable: {e}", self.name)),
            ),
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn spawn_process(
    bin: &Path,
    name: &str,
    link: &ClientLink,
    settings: &Settings,
    register: std::net::SocketAddr,
    resources: &[String],
    seed: u64,
    dir: &Path,
) -> HResult<WorkerProcess> {
    let history = dir.join(format!("{name}.jsonl"));
    let stderr = std::fs::File::create(dir.join(format!("{name}.stderr")))
        .map_err(|e| HarnessError(format!("stderr file: {e}")))?;
    let ms = |d: Duration| d.as_millis().to_string();
    let mut cmd = Command::new(bin);
    if bin
        .file_name()
        .is_some_and(|f| f.to_string_lossy().starts_with("redlock-soak"))
    {
        cmd.arg("lock-worker");
    }
    cmd.args(["--name", name])
        .args(["--servers", &link.urls().join(",")])
        .args(["--register", &register.to_string()])
        .arg("--history")
        .arg(&history)
        .args(["--resources", &resources.join(",")])
        .args(["--ttl-ms", &ms(settings.ttl)])
        .args(["--node-timeout-ms", &ms(settings.node_timeout)])
        .args(["--connect-timeout-ms", &ms(settings.connect_timeout)])
        .args(["--retry-delay-ms", &ms(settings.retry_delay)])
        .args(["--retry-jitter-ms", &ms(settings.retry_jitter)])
        .args(["--acquire-wait-ms", &ms(settings.acquire_wait)])
        .args(["--margin-ms", &ms(settings.margin)])
        .args(["--work-ms", &ms(settings.ttl.mul_f64(0.35))])
        .args(["--seed", &seed.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(stderr);
    let child = cmd
        .spawn()
        .map_err(|e| HarnessError(format!("spawn {}: {e}", bin.display())))?;
    Ok(WorkerProcess {
        name: name.to_owned(),
        child,
        history,
    })
}

/// Polls until no lock key is left (ghost keys of faults expire within the TTL); returns
/// what is still there after `limit`.
async fn leftover_keys(cluster: &Cluster, limit: Duration) -> HResult<Leftovers> {
    let until = Instant::now()
        .checked_add(limit)
        .unwrap_or_else(Instant::now);
    loop {
        let keys = cluster.lock_keys().await?;
        if keys.is_empty() || Instant::now() >= until {
            return Ok(keys);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn finish(
    spec: &Spec,
    cfg: &RunConfig,
    steps: &[Step],
    history: &History,
    report: Report,
    lost_updates: u64,
    notes: Vec<String>,
) -> Outcome {
    let verdict = judge(spec, &report);
    let mut path = None;
    if let Some(dir) = &cfg.artifacts
        && (cfg.keep_history || !verdict.pass)
    {
        let _ = std::fs::create_dir_all(dir);
        let p = dir.join(format!("{}-{}.jsonl", spec.name, cfg.seed));
        if history.write_jsonl(&p).is_ok() {
            path = Some(p);
        }
    }
    Outcome {
        scenario: spec.name.to_owned(),
        catalogue: spec.catalogue.to_owned(),
        seed: cfg.seed,
        schedule: steps.iter().map(ToString::to_string).collect(),
        report,
        verdict,
        lost_updates,
        history: path,
        elapsed_ms: 0,
        notes,
    }
}

async fn run_workload(spec: &Spec, family: Family, cfg: &RunConfig) -> HResult<Outcome> {
    let settings = Settings::new(cfg, family);
    let mut notes = Vec::new();
    let acl = matches!(family, Family::Acl | Family::Mixed);
    let mut cluster = Cluster::start(cfg.nodes, spec.persistence, acl).await?;
    let rec = Recorder::memory("orchestrator");
    let register = Arc::new(FencedRegister::new(&rec));
    let local = Arc::new(RegisterHandle::Local(Arc::clone(&register)));
    // Per group: each worker's workload and resources.
    let roles: Vec<(Workload, Vec<String>)> = if spec.primitives {
        PRIMITIVE_ROLES
            .iter()
            .map(|(w, rs)| (*w, rs.iter().map(|r| (*r).to_owned()).collect()))
            .collect()
    } else {
        let resources: Vec<String> = (0..cfg.resources.max(1)).map(|i| format!("r{i}")).collect();
        (0..cfg.workers_per_group)
            .map(|_| (Workload::Mutex, resources.clone()))
            .collect()
    };
    // Client processes lock the (first role's) resources as mutexes.
    let resources: Vec<String> = roles.first().map(|r| r.1.clone()).unwrap_or_default();
    let per_group = roles.len();
    let mut managers = Vec::with_capacity(cfg.groups);
    for g in 0..cfg.groups.max(1) {
        let link = cluster.link(&format!("g{g}")).await;
        managers.push(settings.manager(&link)?);
    }
    let wants_procs = matches!(family, Family::ClientPause | Family::Mixed) && cfg.processes > 0;
    let bin = if wants_procs {
        if cfg.lock_worker.is_none() {
            notes.push("no lock-worker binary: client processes skipped".to_owned());
        }
        cfg.lock_worker.clone()
    } else {
        None
    };
    let mut proc_links = Vec::new();
    if bin.is_some() {
        for i in 0..cfg.processes {
            proc_links.push(cluster.link(&format!("p{i}")).await);
        }
    }
    let cluster = Arc::new(cluster);
    let dir = tempfile::Builder::new()
        .prefix("redlock-faults-")
        .tempdir()
        .map_err(|e| HarnessError(format!("temp dir: {e}")))?;
    let server = match &bin {
        Some(_) => Some(
            register::serve(Arc::clone(&register))
                .await
                .map_err(|e| HarnessError(format!("register service: {e}")))?,
        ),
        None => None,
    };
    let mut procs = Vec::new();
    if let (Some(bin), Some(server)) = (&bin, &server) {
        for (i, link) in proc_links.iter().enumerate() {
            let name = format!("p{i}");
            let seed = SeededRng::new(cfg.seed).fork(&name).next_u64();
            procs.push(spawn_process(
                bin,
                &name,
                link,
                &settings,
                server.addr(),
                &resources,
                seed,
                dir.path(),
            )?);
        }
    }

    // Every in-process name, for the stall detector.
    let mut names: Vec<String> = ["nemesis", "register", "orchestrator"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    for g in 0..managers.len() {
        names.push(format!("g{g}"));
        for k in 0..per_group {
            names.push(format!(
                "w{}",
                g.saturating_mul(per_group).saturating_add(k)
            ));
        }
    }
    let stall = StallDetector::start(rec.named("watchdog"), names, STALL_THRESHOLD);

    // Workers.
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    let root = SeededRng::new(cfg.seed);
    for (g, manager) in managers.iter().enumerate() {
        for (k, (workload, resources)) in roles.iter().enumerate() {
            let w = g.saturating_mul(per_group).saturating_add(k);
            let name = format!("w{w}");
            let mode = if w % 3 == 2 {
                WorkerMode::Guard
            } else {
                WorkerMode::Plain
            };
            let wcfg = WorkerConfig {
                name: name.clone(),
                resources: resources.clone(),
                workload: *workload,
                ttl: settings.ttl,
                acquire_wait: settings.acquire_wait,
                hold: (
                    Duration::from_millis(1),
                    settings.ttl.checked_div(20).unwrap_or_default(),
                ),
                overrun_chance: 0.02,
                extend_chance: 0.2,
                mode,
                margin: settings.margin,
                backoff: settings.backoff,
                seed: root.fork(&name).next_u64(),
            };
            tasks.spawn(run_worker(
                manager.clone(),
                wcfg,
                Arc::clone(&local),
                rec.named(&name),
                stop_rx.clone(),
            ));
        }
    }

    // The nemesis, on this task.
    let origin = Instant::now();
    let tail = settings
        .recovery_bound
        .saturating_add(Duration::from_millis(300));
    let params = ScheduleParams {
        nodes: cfg.nodes,
        ttl: settings.ttl,
        node_timeout: settings.node_timeout,
        links: cluster.links.len(),
        processes: procs.len(),
        from: Duration::from_millis(400),
        to: cfg.duration.saturating_sub(tail),
    };
    let steps = schedule(family, cfg.seed, &params);
    let nemesis = Nemesis {
        cluster: Arc::clone(&cluster),
        rec: rec.named("nemesis"),
        processes: procs
            .iter()
            .map(|p| Proc {
                name: p.name.clone(),
                pid: p.pid(),
            })
            .collect(),
        register: Some(Arc::clone(&register)),
    };
    let nemesis_result = nemesis.run(origin, &steps).await;
    let planned_end = origin.checked_add(cfg.duration).unwrap_or(origin);
    let after_tail = Instant::now().checked_add(tail).unwrap_or(planned_end);
    tokio::time::sleep_until(planned_end.max(after_tail)).await;

    // Teardown.
    let run_end = mono_ns();
    let _ = stop_tx.send(true);
    let joined = tokio::time::timeout(Duration::from_secs(15), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if joined.is_err() {
        notes.push("workers did not stop within 15 s and were aborted".to_owned());
        tasks.abort_all();
    }
    let mut parts = Vec::new();
    for p in procs {
        let (events, note) = p.stop().await;
        parts.push(events);
        notes.extend(note);
    }
    nemesis.heal_all().await;
    for (g, manager) in managers.iter().enumerate() {
        leak_check(
            manager,
            &rec.named(&format!("g{g}")),
            Duration::from_secs(3),
        )
        .await;
        manager.close().await;
    }
    let leftovers = leftover_keys(
        &cluster,
        settings.ttl.saturating_add(Duration::from_secs(1)),
    )
    .await?;
    drop(server);
    drop(stall);
    nemesis_result?;
    parts.push(rec.take());
    let history = History::merge(parts);
    let opts = check_options(&settings, family == Family::None, run_end);
    let report = check(&history, &leftovers, &opts);
    Ok(finish(
        spec,
        cfg,
        &steps,
        &history,
        report,
        register.lost_updates(),
        notes,
    ))
}

/// A client of the targeted schedule: a manager, a recorder, a counter of acquisitions.
struct Client {
    manager: LockManager,
    rec: Recorder,
    next: u64,
}

/// A held lock of the targeted schedule.
struct Held {
    lock: tokio_redlock::Lock,
    res: String,
    id: u64,
}

impl Client {
    async fn acquire(&mut self, target: &Target) -> Option<Held> {
        self.next = self.next.saturating_add(1);
        let id = self.next;
        let res = target.res();
        self.rec.record(target.invoke(id));
        match target.lock(&self.manager).retry_count(2).await {
            Ok(lock) => {
                let ttl = lock.ttl();
                let deadline = instant_ns(lock.deadline());
                let lease = ttl.saturating_sub(
                    ttl.mul_f64(tokio_redlock::DEFAULT_DRIFT_FACTOR)
                        .saturating_add(Duration::from_millis(2)),
                );
                let multi = matches!(target, Target::Multi(_));
                self.rec.record(Op::AcquireOk {
                    res: res.clone(),
                    id,
                    start: deadline.saturating_sub(crate::clock::nanos(lease)),
                    deadline,
                    ttl_ms: u64::try_from(ttl.as_millis()).unwrap_or(0),
                    token: lock.token().chars().take(8).collect(),
                    fence: lock.fencing_token().map(tokio_redlock::FencingToken::get),
                    members: if multi {
                        lock.resources()
                            .map(|r| String::from_utf8_lossy(r).into_owned())
                            .collect()
                    } else {
                        Vec::new()
                    },
                    fences: if multi {
                        lock.fencing_tokens().iter().map(|t| t.get()).collect()
                    } else {
                        Vec::new()
                    },
                });
                self.rec.record(Op::CsEnter {
                    res: res.clone(),
                    id,
                });
                Some(Held { lock, res, id })
            }
            Err(e) => {
                self.rec.record(Op::AcquireFail {
                    res,
                    id,
                    reason: reason(&e).to_owned(),
                    detail: detail(&e),
                });
                None
            }
        }
    }

    fn write(&self, held: &Held, register: &FencedRegister) -> bool {
        let Some(fence) = held
            .lock
            .fencing_token()
            .map(tokio_redlock::FencingToken::get)
        else {
            return false;
        };
        let holder = format!("{}#{}", self.rec.process(), held.id);
        let (accepted, max) = register.write(&held.res, &holder, fence);
        self.rec.record(Op::Write {
            res: held.res.clone(),
            id: held.id,
            fence,
            accepted,
            max,
        });
        accepted
    }

    async fn release(&self, mut held: Held) {
        self.rec.record(Op::CsExit {
            res: held.res.clone(),
            id: held.id,
            deadline: instant_ns(held.lock.deadline()),
            cut: false,
        });
        self.rec.record(Op::ReleaseInvoke {
            res: held.res.clone(),
            id: held.id,
        });
        let result = self.manager.unlock(&mut held.lock).await;
        self.rec.record(release_done(&held.res, held.id, &result));
    }
}

async fn run_targeted(spec: &Spec, targeted: Targeted, cfg: &RunConfig) -> HResult<Outcome> {
    let nodes = cfg.nodes.max(3);
    let mut cluster = Cluster::start(nodes, Persistence::None, false).await?;
    let quorum = cluster.quorum();
    let rec = Recorder::memory("orchestrator");
    let register = FencedRegister::new(&rec);
    // A long TTL, so that A is still well inside its lease while B acquires and writes.
    let mut tcfg = cfg.clone();
    tcfg.ttl = Duration::from_secs(3);
    tcfg.node_timeout = Duration::from_millis(500);
    let settings = Settings::new(&tcfg, Family::None);
    let link_a = cluster.link("A").await;
    let link_b = cluster.link("B").await;
    let mut a = Client {
        manager: settings.manager(&link_a)?,
        rec: rec.named("A"),
        next: 0,
    };
    let mut b = Client {
        manager: settings.manager(&link_b)?,
        rec: rec.named("B"),
        next: 0,
    };
    let cluster = Arc::new(cluster);
    let nemesis_rec = rec.named("nemesis");
    let stall = StallDetector::start(
        rec.named("watchdog"),
        vec!["A".to_owned(), "B".to_owned()],
        STALL_THRESHOLD,
    );
    let mut rng = SeededRng::new(cfg.seed).fork("targeted");
    let mut notes = Vec::new();
    let mut steps_shown = Vec::new();
    // The primitives self-test plants each of its four violations at least once.
    let rounds = if spec.primitives {
        cfg.rounds.max(4)
    } else {
        cfg.rounds.max(1)
    };
    for round in 0..rounds {
        let res = format!("victim-{round}");
        let (target_a, target_b) = targeted_pair(round, &res, spec.primitives);
        let m = rng.subset(nodes, quorum);
        let Some(&v) = rng.pick(&m) else { break };
        let others: Vec<usize> = (0..nodes).filter(|i| !m.contains(i)).collect();
        let warm = rng.range(1, 4);
        let plan = format!(
            "round {round} on {res}: A ({}) reaches only {m:?}; victim n{v}; {warm} warm-up grant(s) by B; then B ({})",
            target_a.mode().name(),
            target_b.mode().name(),
        );
        rec.record(Op::Note { text: plan.clone() });
        steps_shown.push(plan);
        // Warm-up: counters equal and ≥ 1 on every master.
        for _ in 0..warm {
            for key in warm_up_keys(&target_a) {
                if let Some(held) = b.acquire(&Target::Mutex(key)).await {
                    b.write(&held, &register);
                    b.release(held).await;
                }
            }
        }
        // A reaches only its majority M.
        let targets: Vec<String> = others.iter().map(|i| format!("n{i}")).collect();
        for i in &others {
            if let Some(p) = link_a.proxy(*i) {
                p.refuse(true);
                p.reset_all();
            }
        }
        nemesis_rec.record(Op::Nemesis {
            fault: "refuse".to_owned(),
            phase: Phase::Start,
            targets: targets.clone(),
            outage: false,
            detail: "client A only".to_owned(),
        });
        let Some(held_a) = a.acquire(&target_a).await else {
            notes.push(format!("round {round}: A could not acquire; round skipped"));
            heal_a(&link_a, &others, &nemesis_rec, &targets);
            continue;
        };
        a.write(&held_a, &register);
        // The fault on the victim.
        let (fault, detail) = match targeted {
            Targeted::Amnesia => {
                cluster
                    .nodes
                    .get(v)
                    .ok_or_else(|| HarnessError("victim".to_owned()))?
                    .kill_restart(Duration::ZERO)
                    .await?;
                (
                    "kill-restart",
                    "no persistence, immediate restart".to_owned(),
                )
            }
            Targeted::ClockJump => {
                let delta = i64::try_from(settings.ttl.as_millis())
                    .unwrap_or(3_000)
                    .saturating_add(500);
                let n = cluster
                    .nodes
                    .get(v)
                    .ok_or_else(|| HarnessError("victim".to_owned()))?
                    .skew_ttls(delta)
                    .await?;
                ("clock-jump", format!("forward {delta}ms, {n} key(s)"))
            }
        };
        for phase in [Phase::Start, Phase::End] {
            nemesis_rec.record(Op::Nemesis {
                fault: fault.to_owned(),
                phase,
                targets: vec![format!("n{v}")],
                outage: false,
                detail: detail.clone(),
            });
        }
        // B takes the victim and the two masters A never reached.
        let held_b = b.acquire(&target_b).await;
        if let Some(held_b) = &held_b {
            b.write(held_b, &register);
        } else {
            notes.push(format!(
                "round {round}: B could not acquire after the fault"
            ));
        }
        // A, still inside its lease, writes again: the register must refuse it.
        a.write(&held_a, &register);
        a.release(held_a).await;
        if let Some(held_b) = held_b {
            b.release(held_b).await;
        }
        heal_a(&link_a, &others, &nemesis_rec, &targets);
    }
    let run_end = mono_ns();
    for (name, client) in [("A", &a), ("B", &b)] {
        leak_check(&client.manager, &rec.named(name), Duration::from_secs(3)).await;
        client.manager.close().await;
    }
    cluster.heal_links();
    let leftovers = leftover_keys(
        &cluster,
        settings.ttl.saturating_add(Duration::from_secs(1)),
    )
    .await?;
    drop(stall);
    let history = History::merge([rec.take()]);
    let opts = check_options(&settings, false, run_end);
    let report = check(&history, &leftovers, &opts);
    let mut outcome = finish(
        spec,
        cfg,
        &[],
        &history,
        report,
        register.lost_updates(),
        notes,
    );
    outcome.schedule = steps_shown;
    Ok(outcome)
}

/// What A and then B take in round `round` of a targeted schedule on `res`: mutexes; or,
/// for the primitives self-test, in turn two writers, a reader then a writer, a
/// multi-resource lock then a mutex on one of its members, and two holders of a 1-permit
/// semaphore — each pair one that must never hold at once.
fn targeted_pair(round: usize, res: &str, primitives: bool) -> (Target, Target) {
    if !primitives {
        return (Target::Mutex(res.to_owned()), Target::Mutex(res.to_owned()));
    }
    match round % 4 {
        0 => (
            Target::Writer(res.to_owned()),
            Target::Writer(res.to_owned()),
        ),
        1 => (
            Target::Reader(res.to_owned()),
            Target::Writer(res.to_owned()),
        ),
        2 => (
            Target::Multi(vec![format!("{res}-a"), format!("{res}-b")]),
            Target::Mutex(format!("{res}-b")),
        ),
        _ => {
            let permit = Target::Permit {
                name: res.to_owned(),
                permits: 1,
            };
            (permit.clone(), permit)
        }
    }
}

/// The keys whose fencing counters B's warm-up raises before A's grant.
fn warm_up_keys(target: &Target) -> Vec<String> {
    match target {
        Target::Multi(members) => members.clone(),
        other => vec![other.res()],
    }
}

fn heal_a(link: &ClientLink, others: &[usize], rec: &Recorder, targets: &[String]) {
    for i in others {
        if let Some(p) = link.proxy(*i) {
            p.refuse(false);
        }
    }
    rec.record(Op::Nemesis {
        fault: "refuse".to_owned(),
        phase: Phase::End,
        targets: targets.to_vec(),
        outage: false,
        detail: "client A only".to_owned(),
    });
}

/// Totals over many outcomes (the soak's summary).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Totals {
    /// Runs.
    pub runs: u64,
    /// Runs that failed their verdict.
    pub failed_runs: u64,
    /// Acquire invocations.
    pub acquire_invokes: u64,
    /// Grants.
    pub acquisitions: u64,
    /// Failed acquisitions by reason.
    pub acquire_failures: BTreeMap<String, u64>,
    /// Critical sections.
    pub critical_sections: u64,
    /// Fenced writes accepted / rejected.
    pub writes_accepted: u64,
    /// Fenced writes rejected.
    pub writes_rejected: u64,
    /// Unfenced lost updates.
    pub lost_updates: u64,
    /// Overruns of holders the nemesis paused (excused, fenced).
    pub paused_overruns: u64,
    /// Overruns of holders during involuntary stalls (excused, fenced).
    pub stall_overruns: u64,
    /// Involuntary stalls seen, and the longest (ms).
    pub stalls: u64,
    /// Longest involuntary stall, ms.
    pub max_stall_ms: f64,
    /// Faults by kind.
    pub faults: BTreeMap<String, u64>,
    /// Runs per scenario.
    pub runs_by_scenario: BTreeMap<String, u64>,
    /// Violations in scenarios that must be safe (must stay 0).
    pub violations_must_be_safe: BTreeMap<String, u64>,
    /// Violations found where expected (self-tests, runs outside the assumptions).
    pub violations_expected: BTreeMap<String, u64>,
    /// Self-test runs flagged by every check they must trip.
    pub selftests_flagged: u64,
    /// Self-test runs.
    pub selftests: u64,
    /// Heals measured, and the slowest recovery (ms).
    pub heals_measured: u64,
    /// Slowest recovery after a heal, ms.
    pub max_recovery_ms: f64,
    /// Seeds of failed runs, with the scenario.
    pub failures: Vec<String>,
    /// What the exclusion checks examined, by check name (summed over runs).
    pub checked: BTreeMap<String, Checked>,
    /// Violations by check name, over every run (expected or not).
    pub violations_by_check: BTreeMap<String, u64>,
    /// Nemesis events (fault starts, heals, ends) of the primitives scenarios.
    pub primitives_nemesis_events: u64,
    /// Probes of multi-resource lock members, and how many answered conclusively.
    pub probes: u64,
    /// Conclusive probes.
    pub probes_conclusive: u64,
}

impl Totals {
    /// Adds one outcome.
    pub fn add(&mut self, spec: &Spec, o: &Outcome) {
        let s = &o.report.stats;
        self.runs = self.runs.saturating_add(1);
        self.acquire_invokes = self.acquire_invokes.saturating_add(s.acquire_invokes);
        self.acquisitions = self.acquisitions.saturating_add(s.acquisitions);
        for (k, v) in &s.acquire_failures {
            let n = self.acquire_failures.entry(k.clone()).or_insert(0);
            *n = n.saturating_add(*v);
        }
        self.critical_sections = self.critical_sections.saturating_add(s.critical_sections);
        self.writes_accepted = self.writes_accepted.saturating_add(s.writes_accepted);
        self.writes_rejected = self.writes_rejected.saturating_add(s.writes_rejected);
        self.lost_updates = self.lost_updates.saturating_add(o.lost_updates);
        self.paused_overruns = self.paused_overruns.saturating_add(s.excused_overruns);
        self.stall_overruns = self.stall_overruns.saturating_add(s.stall_overruns);
        self.stalls = self.stalls.saturating_add(s.stalls);
        if s.max_stall_ms > self.max_stall_ms {
            self.max_stall_ms = s.max_stall_ms;
        }
        for (k, v) in &s.faults {
            let n = self.faults.entry(k.clone()).or_insert(0);
            *n = n.saturating_add(*v);
        }
        let n = self.runs_by_scenario.entry(o.scenario.clone()).or_insert(0);
        *n = n.saturating_add(1);
        for (check, figures) in &s.checked {
            self.checked
                .entry(check.name().to_owned())
                .or_default()
                .add(figures);
        }
        for (check, n) in &o.report.counts {
            let m = self
                .violations_by_check
                .entry(check.name().to_owned())
                .or_insert(0);
            *m = m.saturating_add(*n);
        }
        if spec.primitives {
            self.primitives_nemesis_events = self
                .primitives_nemesis_events
                .saturating_add(s.nemesis_events);
        }
        self.probes = self.probes.saturating_add(s.probes);
        self.probes_conclusive = self.probes_conclusive.saturating_add(s.probes_conclusive);
        let expected_only = spec.lease != LeaseExpect::Safe || !spec.tokens_promised;
        for (check, n) in &o.report.counts {
            let lease_family = Check::LEASE_FAMILY.contains(check);
            let token_family = Check::TOKEN_FAMILY.contains(check);
            let allowed = expected_only
                && ((lease_family && spec.lease != LeaseExpect::Safe)
                    || (token_family && !spec.tokens_promised));
            let map = if allowed {
                &mut self.violations_expected
            } else {
                &mut self.violations_must_be_safe
            };
            let m = map.entry(check.name().to_owned()).or_insert(0);
            *m = m.saturating_add(*n);
        }
        if spec.lease == LeaseExpect::MustViolate {
            self.selftests = self.selftests.saturating_add(1);
            if spec.must_flag().iter().all(|c| o.report.count(*c) > 0) {
                self.selftests_flagged = self.selftests_flagged.saturating_add(1);
            }
        }
        self.heals_measured = self.heals_measured.saturating_add(s.heals_measured);
        if s.max_recovery_ms > self.max_recovery_ms {
            self.max_recovery_ms = s.max_recovery_ms;
        }
        if !o.verdict.pass {
            self.failed_runs = self.failed_runs.saturating_add(1);
            self.failures.push(format!(
                "{} seed {}: {}",
                o.scenario,
                o.seed,
                o.verdict.problems.join("; ")
            ));
        }
    }
}
