//! `redlock exec`: acquire (waiting per `-n`/`-w`), run the command in its own process group
//! under the auto-extended lock, watch the lock's validity, forward signals, release, and
//! exit with the command's status.
//!
//! # Loss
//!
//! The guard's `lost()` resolves at the lock's deadline at the latest, which is too late to
//! tell the command to stop *before* the validity ends. So this module watches
//! `guard.deadline()` itself: when less than a safety margin of validity is left and no
//! extension has moved the deadline, or when `lost()` resolves, whichever comes first, the
//! command's group gets `--kill-signal`, then SIGKILL after `--kill-after`.
//!
//! The margin is `max(node_timeout + drift, 100 ms)`, capped at `ttl / 4`, where
//! `drift = ttl × 1 % + 2 ms` (the library's default drift). `node_timeout + drift` is the
//! time the last extension attempt may still be in flight plus the clock allowance; the
//! 100 ms floor leaves the command time to act on the signal; the cap keeps the alarm after
//! the next scheduled extension (at most `ttl / 2` after the last one), so a healthy lock
//! never trips it.

use std::ffi::{OsStr, OsString};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use serde::Serialize;
use tokio::time::Instant;
use tokio_redlock::{
    DEFAULT_DRIFT_FACTOR, HolderInfo, LockError, LockGuard, LockManager, LossCause, NodeError,
    NodeStatus, Printable,
};

use crate::child::{self, CommandLine};
use crate::cli::{Common, ExecArgs};
use crate::exit;
use crate::probe::{self, KeyState, MasterJson, MasterKey, show_duration};
use crate::report::Report;
use crate::signals::Signals;
use crate::terminal::Terminal;

/// The smallest safety margin before the deadline at which a lock without a fresh extension
/// counts as lost.
const MIN_MARGIN: Duration = Duration::from_millis(100);
/// How often the group is checked for leftover processes after a loss.
const GROUP_POLL: Duration = Duration::from_millis(20);

/// How long to wait for the lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wait {
    /// One attempt (`-n`, `-w 0`).
    No,
    /// Until this much time has passed (`-w DUR`).
    For(Duration),
    /// Until the lock is acquired (the default).
    Forever,
}

impl Wait {
    fn from_args(args: &ExecArgs) -> Self {
        match args.wait {
            _ if args.nonblock => Self::No,
            Some(Duration::ZERO) => Self::No,
            Some(d) => Self::For(d),
            None => Self::Forever,
        }
    }
}

/// Which lock `redlock exec` takes (`--shared`, `-x`, `--also`, `--permits`, or none).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A plain lock on one resource (the default).
    Mutex,
    /// A reader of the read-write lock (`--shared`).
    Reader,
    /// The writer of the read-write lock (`-x`).
    Writer,
    /// Every resource, all or nothing (`--also`): RESOURCE first, then the others as given.
    Several(Vec<String>),
    /// One permit of a semaphore with this many (`--permits K`).
    Permit(u32),
}

impl Kind {
    /// The kind the options ask for, or why the combination is refused (bad usage, before
    /// any request).
    pub(crate) fn from_args(args: &ExecArgs) -> Result<Self, String> {
        let several = !args.also.is_empty();
        if let Some(k) = args.permits {
            let other = if args.shared {
                Some("--shared")
            } else if args.exclusive {
                Some("--exclusive")
            } else if several {
                Some("--also")
            } else {
                None
            };
            if let Some(other) = other {
                return Err(format!(
                    "--permits takes no {other}: a semaphore is one name whose permits are all \
                     alike (no readers, no writer, no other resources); drop {other}, or drop \
                     --permits for a lock"
                ));
            }
            if args.fencing {
                return Err(
                    "--fencing with --permits: a semaphore's permits carry no fencing \
                            token (several holders at once write nothing in turn); drop --fencing"
                        .to_owned(),
                );
            }
            return Ok(Self::Permit(k));
        }
        if args.shared {
            if several {
                return Err(
                    "--shared takes one resource: there is no shared lock of several \
                            resources; drop --also, or take each in its own redlock"
                        .to_owned(),
                );
            }
            if args.fencing {
                return Err(
                    "--fencing with --shared: readers carry no fencing token (they do \
                            not write); drop --fencing, or use --exclusive"
                        .to_owned(),
                );
            }
            return Ok(Self::Reader);
        }
        if args.exclusive {
            if several {
                return Err(
                    "--exclusive takes one resource: a lock of several resources \
                            (--also) is exclusive already and excludes --shared holders of \
                            each, but without the writer's priority over new readers; drop \
                            --exclusive"
                        .to_owned(),
                );
            }
            return Ok(Self::Writer);
        }
        if several {
            let mut all = vec![args.resource.clone()];
            all.extend(args.also.iter().cloned());
            return Ok(Self::Several(all));
        }
        Ok(Self::Mutex)
    }

    /// The kind's name in the `--json` report and in `REDLOCK_LOCK_KIND`.
    pub(crate) fn as_str(&self) -> &'static str {
        match self {
            Self::Mutex => "mutex",
            Self::Reader => "reader",
            Self::Writer => "writer",
            Self::Several(_) => "multi",
            Self::Permit(_) => "permit",
        }
    }

    /// What was acquired, for messages: "`r`", "a shared lock on `r`", "`a` and `b`", "a
    /// permit of `s`".
    fn what(&self, resource: &str) -> String {
        let shown = Printable::new(resource);
        match self {
            Self::Mutex => format!("`{shown}`"),
            Self::Reader => format!("a shared lock on `{shown}`"),
            Self::Writer => format!("the exclusive lock on `{shown}`"),
            Self::Several(all) => {
                let names: Vec<String> = all
                    .iter()
                    .map(|r| format!("`{}`", Printable::new(r)))
                    .collect();
                names.join(" + ")
            }
            Self::Permit(k) => format!("a permit of `{shown}` ({k} permits)"),
        }
    }

    /// Why an attempt was refused, for the conflict message.
    fn held_by(&self) -> &'static str {
        match self {
            Self::Mutex | Self::Writer => "it is held by another holder",
            Self::Reader => "it is held exclusively, or an exclusive holder waits for it",
            Self::Several(_) => "one of them is held by another holder",
            Self::Permit(_) => "every permit is taken",
        }
    }
}

/// What one acquisition attempt asks for.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AcquireSpec {
    /// The lock's TTL.
    pub(crate) ttl: Duration,
    /// The watchdog's extension period.
    pub(crate) extend_every: Duration,
}

/// An acquired lock.
pub(crate) struct Acquired {
    /// The lock, extended by its watchdog.
    pub(crate) guard: LockGuard,
}

/// Acquires `resource`, waiting per `wait` with the library's waiting acquisition: a waiter
/// is woken by the holder's release notification (one round trip after the release, across
/// processes and hosts) or by the expiry of the holder's keys, and waiters of one process take
/// turns in arrival order. `-n` makes one attempt. A conflict keeps waiting, and so does a
/// quorum out of reach (`-w` within its budget; a wait without end once a quorum was
/// reached); a permanent cause or a non-lock value returns at once.
///
/// The lock carries a holder record (this host, redlock's pid, the command, the start time)
/// for `redlock status` to show; it lives and dies with the lock.
///
/// Every kind goes through this one path, only the request differs: a reader
/// ([`LockManager::read`]), a writer ([`LockManager::write`]), several resources
/// ([`LockManager::acquire_all`]) or a permit ([`LockManager::semaphore`]). The holder record
/// is a plain lock's only (the library keeps none for the others).
pub(crate) async fn acquire_waiting(
    manager: &LockManager,
    resource: &str,
    kind: &Kind,
    spec: AcquireSpec,
    wait: Wait,
    holder: HolderInfo,
) -> Result<Acquired, LockError> {
    let request = match kind {
        Kind::Mutex => manager.acquire(resource).holder_info(holder),
        Kind::Reader => manager.read(resource),
        Kind::Writer => manager.write(resource),
        Kind::Several(all) => manager.acquire_all(all),
        Kind::Permit(k) => manager.semaphore(resource, *k).acquire(),
    };
    let request = request.ttl(spec.ttl).extend_every(spec.extend_every);
    let request = match wait {
        Wait::No => request.retry_count(0),
        Wait::For(d) => request.wait(d),
        Wait::Forever => request.wait_forever(),
    };
    request.await.map(|guard| Acquired { guard })
}

/// Who holds the lock, for `redlock status`: this host's name, redlock's own pid (the
/// process that holds the lock; its command dies with it), and the command as given, its
/// arguments joined by spaces (`sh -c STR` for `-c`).
fn holder_info(args: &ExecArgs) -> HolderInfo {
    let host = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    let command = match &args.shell_command {
        Some(cmd) => format!("sh -c {cmd}"),
        None => args.command.join(" "),
    };
    HolderInfo::new(host, command)
}

/// `REDLOCK_RESOURCES`: every resource the lock holds, sorted by their bytes, one per line
/// (as given: a resource name is passed to the command as it is, not escaped).
fn resources_env<'a>(resources: impl Iterator<Item = &'a [u8]>) -> OsString {
    use std::os::unix::ffi::OsStrExt;
    let mut all = Vec::new();
    for (i, r) in resources.enumerate() {
        if i > 0 {
            all.push(b'\n');
        }
        all.extend_from_slice(r);
    }
    OsStr::from_bytes(&all).to_os_string()
}

/// Errors that waiting can cure: held elsewhere, a quorum that came too late, contending
/// fencing counters.
fn worth_waiting(e: &LockError) -> bool {
    e.is_conflict() || e.is_validity_exhausted() || matches!(e, LockError::FencingContention { .. })
}

/// The shortest remaining TTL of another holder's key among the masters that refused us.
fn holder_remaining(e: &LockError) -> Option<Duration> {
    e.outcomes()
        .iter()
        .filter_map(|o| match o.status() {
            NodeStatus::HeldByOther { remaining } => *remaining,
            _ => None,
        })
        .min()
}

/// The safety margin before the deadline (see the module docs).
pub(crate) fn safety_margin(ttl: Duration, node_timeout: Duration) -> Duration {
    let drift = ttl
        .mul_f64(DEFAULT_DRIFT_FACTOR)
        .saturating_add(Duration::from_millis(2));
    node_timeout
        .saturating_add(drift)
        .max(MIN_MARGIN)
        .min(ttl.checked_div(4).unwrap_or_default())
}

/// How `redlock exec` ended, for the exit code and the `--json` report.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Ending {
    /// What happened: `ran` (the command ran under the lock and exited), `conflict`,
    /// `wait_expired`, `validity_exhausted`, `unavailable`, `not_a_lock`, `lost`, `signal`
    /// (redlock got a signal while waiting), `usage`, `error`.
    outcome: &'static str,
    /// redlock's exit code.
    exit_code: u8,
    /// The resource, escaped for printing (with --permits, the semaphore).
    resource: String,
    /// The lock's kind: `mutex`, `reader` (--shared), `writer` (-x), `multi` (--also) or
    /// `permit` (--permits).
    kind: &'static str,
    /// With --also: every resource, escaped, in the order given.
    #[serde(skip_serializing_if = "Option::is_none")]
    resources: Option<Vec<String>>,
    /// With --permits: the semaphore's number of permits.
    #[serde(skip_serializing_if = "Option::is_none")]
    permits: Option<u32>,
    /// Time spent acquiring the lock (waiting included).
    wait_ms: Option<u64>,
    /// Time the lock was held while the command ran.
    held_ms: Option<u64>,
    /// The fencing token, with `--fencing` (of one resource).
    fencing_token: Option<u64>,
    /// With `--fencing --also`: one fencing token per resource, in the order of the
    /// resources sorted by their bytes (as `REDLOCK_RESOURCES`).
    #[serde(skip_serializing_if = "Option::is_none")]
    fencing_tokens: Option<Vec<u64>>,
    /// The command's exit code, when it exited.
    command_exit_code: Option<i32>,
    /// The signal that killed the command, when one did.
    command_signal: Option<String>,
    /// The signal redlock received and forwarded (or that ended the wait).
    signal_received: Option<String>,
    /// What went wrong, when something did (no password, no whole token).
    error: Option<String>,
    /// On a lost lock: each master's state when the loss was noticed.
    masters: Option<Vec<MasterJson>>,
}

impl Ending {
    fn new(outcome: &'static str, exit_code: u8, resource: &str) -> Self {
        Self {
            outcome,
            exit_code,
            resource: Printable::new(resource).to_string(),
            kind: Kind::Mutex.as_str(),
            ..Self::default()
        }
    }

    /// The same, naming the lock's kind.
    fn of(kind: &Kind, outcome: &'static str, exit_code: u8, resource: &str) -> Self {
        let mut ending = Self::new(outcome, exit_code, resource);
        ending.kind = kind.as_str();
        match kind {
            Kind::Several(all) => {
                ending.resources =
                    Some(all.iter().map(|r| Printable::new(r).to_string()).collect());
            }
            Kind::Permit(k) => ending.permits = Some(*k),
            Kind::Mutex | Kind::Reader | Kind::Writer => {}
        }
        ending
    }

    fn error(mut self, e: impl std::fmt::Display) -> Self {
        self.error = Some(e.to_string());
        self
    }
}

/// Whole milliseconds, for the JSON report.
fn millis(d: Duration) -> Option<u64> {
    Some(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Runs `redlock exec` and returns the exit code.
pub(crate) async fn run(args: ExecArgs, common: &Common, report: Report) -> u8 {
    let ending = run_checked(&args, common, report).await;
    if args.json {
        match serde_json::to_string(&ending) {
            Ok(line) => crate::report::say_raw(line),
            Err(e) => report.error(format_args!("cannot write the JSON report: {e}")),
        }
    }
    ending.exit_code
}

/// The shortest `--ttl` without `--extend-every`: a third of it (the default extension
/// period) must be at least a millisecond.
const MIN_TTL: Duration = Duration::from_millis(3);

async fn run_checked(args: &ExecArgs, common: &Common, report: Report) -> Ending {
    let resource = args.resource.as_str();
    let usage = |e: &dyn std::fmt::Display| {
        report.error(e);
        Ending::new("usage", exit::USAGE, resource).error(e)
    };
    let mut signals = match Signals::install() {
        Ok(s) => s,
        Err(e) => {
            let e = format!("cannot handle signals: {e}");
            report.error(&e);
            return Ending::new("error", exit::SOFTWARE, resource).error(e);
        }
    };
    let kind = match Kind::from_args(args) {
        Ok(kind) => kind,
        Err(e) => return usage(&e),
    };
    let usage = |e: &dyn std::fmt::Display| {
        report.error(e);
        Ending::of(&kind, "usage", exit::USAGE, resource).error(e)
    };
    if args.extend_every.is_none() && args.ttl < MIN_TTL {
        // Said in the option the user gave: the extension period is derived from it.
        return usage(&format_args!(
            "--ttl {} is too short: a lock needs at least {} so that it can be extended \
             (every third of the TTL) before it runs out",
            show_duration(args.ttl),
            show_duration(MIN_TTL)
        ));
    }
    let extend_every = args
        .extend_every
        .unwrap_or_else(|| args.ttl.checked_div(3).unwrap_or_default());
    if extend_every.is_zero() || extend_every > args.ttl.checked_div(2).unwrap_or_default() {
        return usage(&format_args!(
            "--extend-every {} must be above zero and at most half the TTL ({}), so a failed \
             extension can be retried before the lock runs out",
            show_duration(extend_every),
            show_duration(args.ttl)
        ));
    }
    let manager = match crate::build_manager(common, args.ttl, args.fencing) {
        Ok(m) => m,
        Err(e) => return usage(&e),
    };
    let spec = AcquireSpec {
        ttl: args.ttl,
        extend_every,
    };
    let ending = run_with(&manager, args, &kind, spec, common, report, &mut signals).await;
    // Awaits the background work (releases of dropped attempts), bounded by the timeouts.
    manager.close().await;
    ending
}

async fn run_with(
    manager: &LockManager,
    args: &ExecArgs,
    kind: &Kind,
    spec: AcquireSpec,
    common: &Common,
    report: Report,
    signals: &mut Signals,
) -> Ending {
    let resource = args.resource.as_str();
    let shown = Printable::new(resource);
    let wait = Wait::from_args(args);
    let terminal = Terminal::of_stdin();
    let started = Instant::now();
    let acquiring = acquire_waiting(manager, resource, kind, spec, wait, holder_info(args));
    tokio::pin!(acquiring);
    let acquired = loop {
        tokio::select! {
            r = &mut acquiring => break r,
            signal = signals.recv() => {
                if signal == Signal::SIGTSTP {
                    // No command yet: stop as the default action would have.
                    stop(terminal.as_ref());
                    continue;
                }
                if !crate::signals::ends_redlock(signal) {
                    continue;
                }
                report.info(format_args!(
                    "got {signal} while waiting for {}: giving up",
                    kind.what(resource)
                ));
                let mut ending = Ending::of(kind, "signal", exit::signal_code(signal), resource);
                ending.signal_received = Some(signal.to_string());
                ending.wait_ms = millis(started.elapsed());
                return ending;
            }
        }
    };
    let Acquired { guard } = match acquired {
        Ok(a) => a,
        Err(e) => {
            let mut ending = acquire_failed(&e, resource, kind, wait, started, args, report);
            ending.wait_ms = millis(started.elapsed());
            return ending;
        }
    };
    let wait_time = started.elapsed();
    let acquired_what = match kind {
        Kind::Mutex => format!("`{shown}`"),
        _ => kind.what(resource),
    };
    report.info(format_args!(
        "acquired {acquired_what} in {}; validity {}; token {}…{}",
        show_duration(wait_time),
        show_duration(guard.validity()),
        probe::token_prefix(guard.token().as_bytes()),
        guard
            .fencing_token()
            .map(|t| format!("; fencing token {t}"))
            .unwrap_or_default(),
    ));
    for outcome in guard.outcomes() {
        report.info(format_args!("  {outcome}"));
    }
    // A master that cannot count until its configuration is fixed (credentials, TLS
    // certificates): said even without -v, since the quorum is now one failure from lost.
    for outcome in guard.outcomes() {
        if let NodeStatus::Failed(e) = outcome.status()
            && e.is_permanent()
        {
            report.warn(format_args!(
                "master {} does not count toward the quorum until fixed: {e}",
                outcome.master()
            ));
        }
    }
    let mut ending = Ending::of(kind, "ran", exit::OK, resource);
    ending.wait_ms = millis(wait_time);
    ending.fencing_token = guard.fencing_token().map(|t| t.get());
    if matches!(kind, Kind::Several(_)) && !guard.fencing_tokens().is_empty() {
        ending.fencing_tokens = Some(guard.fencing_tokens().iter().map(|t| t.get()).collect());
    }

    let (program, rest): (&OsStr, Vec<OsString>) =
        match (&args.shell_command, args.command.split_first()) {
            (Some(cmd), _) => (OsStr::new("/bin/sh"), vec!["-c".into(), cmd.into()]),
            (None, Some((p, rest))) => (OsStr::new(p), rest.iter().map(OsString::from).collect()),
            (None, None) => {
                report.error("no command given");
                drop(guard.release().await);
                return Ending::of(kind, "usage", exit::USAGE, resource).error("no command given");
            }
        };
    let take_terminal = terminal.as_ref().is_some_and(Terminal::is_foreground);
    let mut command = child::command(
        &CommandLine {
            program,
            args: &rest,
        },
        take_terminal,
    );
    command
        .env("REDLOCK_RESOURCE", resource)
        .env("REDLOCK_TOKEN", guard.token())
        .env(
            "REDLOCK_VALIDITY_MS",
            guard.validity().as_millis().to_string(),
        )
        .env("REDLOCK_LOCK_KIND", kind.as_str())
        .env("REDLOCK_RESOURCES", resources_env(guard.resources()))
        .env_remove("REDLOCK_FENCING_TOKEN")
        .env_remove("REDLOCK_FENCING_TOKENS")
        .env_remove("REDLOCK_PERMITS");
    if let Some(token) = guard.fencing_token() {
        command.env("REDLOCK_FENCING_TOKEN", token.to_string());
    }
    if matches!(kind, Kind::Several(_)) && !guard.fencing_tokens().is_empty() {
        let tokens: Vec<String> = guard
            .fencing_tokens()
            .iter()
            .map(|t| t.to_string())
            .collect();
        command.env("REDLOCK_FENCING_TOKENS", tokens.join("\n"));
    }
    if let Kind::Permit(k) = kind {
        command.env("REDLOCK_PERMITS", k.to_string());
    }
    // Spawned on this, the main, thread (the runtime is single-threaded): the command's
    // parent-death signal follows the thread that forked it (see `child.rs`).
    let held_from = Instant::now();
    let child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            let e = format!("cannot start the command through redlock itself: {e}");
            report.error(&e);
            release(guard, resource, report).await;
            return Ending::of(kind, "error", exit::SOFTWARE, resource).error(e);
        }
    };
    let Ok(pid) = i32::try_from(child.id()).map(Pid::from_raw) else {
        report.error("the command's process id is out of range");
        release(guard, resource, report).await;
        return Ending::of(kind, "error", exit::SOFTWARE, resource);
    };
    // The std handle is not used to wait: redlock waits with `waitpid` to see stops too.
    drop(child);
    if take_terminal && let Some(t) = &terminal {
        t.give_to(pid);
    }
    let watch = Watch {
        margin: safety_margin(spec.ttl, common.node_timeout),
        kill_signal: args.kill_signal,
        kill_after: args.kill_after,
        probe_timeout: probe::budget(common.node_timeout),
    };
    let outcome = supervise(
        &guard,
        kind,
        pid,
        &watch,
        terminal.as_ref(),
        manager,
        resource,
        signals,
        report,
    )
    .await;
    if let Some(t) = &terminal {
        t.take_back_from(pid);
    }
    ending.held_ms = millis(held_from.elapsed());
    match &outcome.status {
        Ok(WaitStatus::Exited(_, code)) => ending.command_exit_code = Some(*code),
        Ok(WaitStatus::Signaled(_, sig, _)) => ending.command_signal = Some(sig.to_string()),
        _ => {}
    }
    ending.signal_received = outcome.received.map(|s| s.to_string());

    match outcome {
        Supervised {
            loss: Some(mut loss),
            ..
        } => {
            // The reads started when the loss was noticed; the release would delete the keys
            // they look for, so it waits for them (bounded by the probe budget).
            let masters = (&mut loss.probe).await.unwrap_or_default();
            let token = guard.token().to_owned();
            drop(guard.release().await);
            report_masters(&masters, &token, report);
            ending.outcome = "lost";
            ending.exit_code = args.lost_exit_code;
            ending.error = Some(loss.why);
            ending.masters = Some(masters.iter().map(MasterJson::from).collect());
            ending
        }
        Supervised {
            status, received, ..
        } => {
            if let Some(why) = release(guard, resource, report).await {
                // Found out only at the release: the command has ended, nothing to signal.
                ending.outcome = "lost";
                ending.exit_code = args.lost_exit_code;
                ending.error = Some(why);
                return ending;
            }
            ending.exit_code = match (received, status) {
                (Some(signal), _) => exit::signal_code(signal),
                (None, Ok(status)) => exit::from_wait(&status).unwrap_or(exit::SOFTWARE),
                (None, Err(e)) => {
                    let e = format!("cannot wait for the command: {e}");
                    report.error(&e);
                    ending.outcome = "error";
                    ending.error = Some(e);
                    exit::SOFTWARE
                }
            };
            ending
        }
    }
}

/// Stops redlock as a job would be stopped: its whole job in a terminal, itself otherwise;
/// returns when continued.
fn stop(terminal: Option<&Terminal>) {
    match terminal {
        Some(t) => t.stop_job(),
        None => crate::terminal::stop_self(),
    }
}

/// The exit code, message and report for a failed acquisition.
fn acquire_failed(
    e: &LockError,
    resource: &str,
    kind: &Kind,
    wait: Wait,
    started: Instant,
    args: &ExecArgs,
    report: Report,
) -> Ending {
    let shown = Printable::new(resource);
    if e.is_validity_exhausted() {
        // Not a conflict: a quorum granted the lock, but the round took so long that the
        // TTL minus the clock-drift allowance left nothing.
        report.error(format_args!(
            "could not lock `{shown}`: {e}; nobody else holds it, but the TTL ({}) is too short \
             for the masters' round-trip time and the clock-drift allowance: use a longer --ttl",
            show_duration(args.ttl)
        ));
        return Ending::of(
            kind,
            "validity_exhausted",
            exit::VALIDITY_EXHAUSTED,
            resource,
        )
        .error(e);
    }
    if worth_waiting(e) {
        let held = holder_remaining(e)
            .map(|r| {
                format!(
                    " (its keys expire in {} unless the holder extends them)",
                    show_duration(r)
                )
            })
            .unwrap_or_default();
        let outcome = match wait {
            Wait::No if *kind == Kind::Mutex => {
                report.warn(format_args!("`{shown}` is held by another holder{held}"));
                "conflict"
            }
            Wait::No => {
                report.warn(format_args!(
                    "could not take {}: {}{held}",
                    kind.what(resource),
                    kind.held_by()
                ));
                "conflict"
            }
            _ => {
                let what = match kind {
                    Kind::Mutex => format!("`{shown}`"),
                    _ => kind.what(resource),
                };
                report.warn(format_args!(
                    "gave up waiting for {what} after {}: {}{held}",
                    show_duration(started.elapsed()),
                    kind.held_by()
                ));
                "wait_expired"
            }
        };
        for outcome in e.outcomes() {
            report.info(format_args!("  {outcome}"));
        }
        return Ending::of(kind, outcome, args.conflict_exit_code, resource).error(e);
    }
    if e.is_unavailable() {
        report.error(e);
        if e.is_auth() {
            report.error("check the credentials and ACL permissions in the server URLs");
        }
        let tls_failed = e
            .outcomes()
            .iter()
            .any(|o| matches!(o.status(), NodeStatus::Failed(NodeError::Tls(_))));
        if tls_failed {
            report.error(
                "check --tls-ca-cert (the CA that signed the servers' certificates) and, for \
                 servers that require client certificates, --tls-cert and --tls-key",
            );
        }
        return Ending::of(kind, "unavailable", exit::UNAVAILABLE, resource).error(e);
    }
    report.error(e);
    let (outcome, code) = if e.is_not_a_lock() {
        ("not_a_lock", exit::DATA)
    } else if e.is_permits_mismatch() {
        if matches!(e, LockError::PermitsMismatch { found: None, .. }) {
            report.error(
                "the semaphore's record of its number of permits holds a value redlock did not \
                 write (another type, or a number written otherwise); it stays until it expires \
                 or someone removes it",
            );
        } else {
            report.error(
                "every user of a semaphore must give the same --permits; the number recorded \
                 stays until the last permit taken with it expires",
            );
        }
        ("permits_mismatch", exit::DATA)
    } else if e.is_invalid_input() {
        ("usage", exit::USAGE)
    } else {
        ("error", exit::SOFTWARE)
    };
    Ending::of(kind, outcome, code, resource).error(e)
}

/// Releases after a normal end. An incomplete release is a warning (the keys expire by
/// their TTL). A release that a quorum answered with "not ours" (the keys expired, or were
/// deleted or taken by someone else) means the lock was not held the whole time: that is
/// returned, as the text of the loss, for the caller to report as one.
async fn release(guard: LockGuard, resource: &str, report: Report) -> Option<String> {
    let shown = Printable::new(resource);
    match guard.release().await {
        Ok(()) => {
            report.info(format_args!("released `{shown}`"));
            None
        }
        Err(e) if e.is_not_held() => {
            let why = format!(
                "the lock on `{shown}` was no longer held when released (it expired, or was \
                 deleted or taken by someone else, before any extension noticed): the command \
                 may have run without it: {e}"
            );
            report.error(&why);
            Some(why)
        }
        Err(e) => {
            report.warn(format_args!(
                "release of `{shown}` incomplete; the remaining keys expire by their TTL: {e}"
            ));
            None
        }
    }
}

/// Settings of the watch over a running command.
struct Watch {
    margin: Duration,
    kill_signal: Signal,
    kill_after: Duration,
    /// The outer bound of the loss report's per-master reads.
    probe_timeout: Duration,
}

/// Why the lock counts as lost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cause {
    /// No extension moved the deadline and less than the margin was left.
    Margin,
    /// The library declared the lock lost (a majority shows it expired or taken, or the
    /// deadline passed).
    Declared,
    /// The job was stopped (Ctrl-Z) for so long that the lock ran out, or nearly.
    WhileStopped,
}

/// A loss in progress: the per-master reads started when it was noticed.
struct Loss {
    probe: tokio::task::JoinHandle<Vec<MasterKey>>,
    /// Why, for the JSON report.
    why: String,
}

/// How the command ended.
struct Supervised {
    status: nix::Result<WaitStatus>,
    received: Option<Signal>,
    loss: Option<Loss>,
}

/// How often the command is checked for a state change when no SIGCHLD came (a safety net:
/// SIGCHLD is what normally wakes the check).
const CHILD_POLL: Duration = Duration::from_millis(200);

/// What `waitpid` says of the command: ended (with its status), stopped, or nothing new.
enum ChildState {
    Ended(nix::Result<WaitStatus>),
    Stopped,
    Running,
}

/// Collects the command's state changes without blocking.
fn check_child(pid: Pid) -> ChildState {
    let flags = WaitPidFlag::WNOHANG | WaitPidFlag::WUNTRACED | WaitPidFlag::WCONTINUED;
    let mut stopped = false;
    loop {
        match waitpid(pid, Some(flags)) {
            Ok(WaitStatus::StillAlive) => break,
            Ok(WaitStatus::Stopped(..)) => stopped = true,
            Ok(WaitStatus::Continued(_)) => stopped = false,
            Ok(status @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..))) => {
                return ChildState::Ended(Ok(status));
            }
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return ChildState::Ended(Err(e)),
        }
    }
    if stopped {
        ChildState::Stopped
    } else {
        ChildState::Running
    }
}

/// Waits for the command while forwarding signals, watching the lock, and following job
/// control (a stopped command stops redlock's job; see `terminal.rs`).
#[allow(clippy::too_many_arguments)]
async fn supervise(
    guard: &LockGuard,
    kind: &Kind,
    pgid: Pid,
    watch: &Watch,
    terminal: Option<&Terminal>,
    manager: &LockManager,
    resource: &str,
    signals: &mut Signals,
    report: Report,
) -> Supervised {
    let shown = Printable::new(resource);
    let mut received = None;
    let mut loss: Option<Loss> = None;
    let mut kill_at: Option<Instant> = None;
    let start_loss = |cause: Cause, signal: Signal, kill_at: &mut Option<Instant>| {
        let left = guard.deadline().saturating_duration_since(Instant::now());
        signal_group(pgid, signal);
        let why = why(cause, left, watch.margin, guard.loss_cause());
        if signal == Signal::SIGKILL {
            *kill_at = None;
            report.error(format_args!(
                "lost the lock on `{shown}`: {why}; sent SIGKILL to process group {pgid} \
                 instead of resuming it"
            ));
        } else {
            *kill_at = Instant::now().checked_add(watch.kill_after);
            report.error(format_args!(
                "lost the lock on `{shown}` while the command ran: {why}; sent {signal} to \
                 process group {pgid} (SIGKILL follows after {} if it is still running)",
                show_duration(watch.kill_after),
            ));
        }
        let (manager, resource, timeout) =
            (manager.clone(), resource.to_owned(), watch.probe_timeout);
        // A permit is a slot beside the semaphore's name; the other kinds hold the key of
        // RESOURCE (a lock of several resources holds each key with the same token).
        let permit_token = matches!(kind, Kind::Permit(_)).then(|| guard.token().to_owned());
        Loss {
            probe: tokio::spawn(async move {
                match permit_token {
                    Some(token) => probe::read_permit(&manager, &resource, &token, timeout).await,
                    None => probe::read_all(&manager, &resource, timeout).await,
                }
            }),
            why,
        }
    };
    let kill_group = || {
        signal_group(pgid, Signal::SIGKILL);
        report.error(format_args!(
            "process group {pgid} still running {} after {}: sent SIGKILL",
            show_duration(watch.kill_after),
            watch.kill_signal
        ));
    };
    let status = loop {
        let deadline = guard.deadline();
        let alarm = deadline.checked_sub(watch.margin).unwrap_or(deadline);
        let watching = loss.is_none();
        tokio::select! {
            biased;
            () = tokio::time::sleep(CHILD_POLL) => {}
            event = signals.next() => {
                if let Some(signal) = event {
                    report.info(format_args!("got {signal}: forwarding it to process group {pgid}"));
                    signal_group(pgid, signal);
                    if crate::signals::ends_redlock(signal) {
                        received.get_or_insert(signal);
                    }
                    continue;
                }
            }
            () = guard.lost(), if watching => {
                loss = Some(start_loss(Cause::Declared, watch.kill_signal, &mut kill_at));
                continue;
            }
            () = tokio::time::sleep_until(alarm), if watching => {
                if guard.deadline() > deadline {
                    continue; // an extension moved the deadline
                }
                loss = Some(start_loss(Cause::Margin, watch.kill_signal, &mut kill_at));
                continue;
            }
            () = sleep_until_opt(kill_at), if kill_at.is_some() => {
                kill_group();
                kill_at = None;
                continue;
            }
        }
        match check_child(pgid) {
            ChildState::Ended(status) => break status,
            ChildState::Running => {}
            ChildState::Stopped if loss.is_some() => {
                // Being killed already: let it go on to its end.
                signal_group(pgid, Signal::SIGCONT);
            }
            ChildState::Stopped => {
                report.info(
                    "the command stopped: stopping redlock too (the lock is not extended while \
                     stopped)",
                );
                stop(terminal);
                // Continued (`fg`, `bg`, SIGCONT). A command must never run on after its
                // lock was lost: resume it only with time left on the lock.
                let left = guard.deadline().saturating_duration_since(Instant::now());
                if guard.is_lost() || left <= watch.margin {
                    loss = Some(start_loss(
                        Cause::WhileStopped,
                        Signal::SIGKILL,
                        &mut kill_at,
                    ));
                    continue;
                }
                report.info(format_args!("continued: resuming process group {pgid}"));
                match terminal {
                    Some(t) if t.is_foreground() => t.give_to(pgid),
                    _ => signal_group(pgid, Signal::SIGCONT),
                }
            }
        }
    };
    // The command ended just as the lock was declared lost: it may have outrun the lock.
    if loss.is_none() && guard.is_lost() {
        loss = Some(start_loss(Cause::Declared, watch.kill_signal, &mut kill_at));
    }
    if loss.is_some() {
        // The rest of the group got the signal too: give it until --kill-after to go.
        while group_alive(pgid) {
            let Some(at) = kill_at else { break };
            if Instant::now() >= at {
                kill_group();
                break;
            }
            tokio::select! {
                () = tokio::time::sleep(GROUP_POLL) => {}
                signal = signals.recv() => signal_group(pgid, signal),
            }
        }
    }
    Supervised {
        status,
        received,
        loss,
    }
}

/// Sends `signal` to the process group; a group that is gone is not an error.
fn signal_group(pgid: Pid, signal: Signal) {
    // ESRCH (the group is gone) is the only error to expect for our own child's group.
    let _ = killpg(pgid, signal);
}

/// Whether any process is left in the group.
fn group_alive(pgid: Pid) -> bool {
    killpg(pgid, None::<Signal>).is_ok()
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Why the lock counts as lost, for the report.
fn why(cause: Cause, left: Duration, margin: Duration, declared: Option<LossCause>) -> String {
    match cause {
        Cause::Margin => format!(
            "no extension moved the deadline and only {} of validity was left (safety margin {})",
            show_duration(left),
            show_duration(margin)
        ),
        Cause::Declared => declared.map_or_else(
            || "the lock expired, was taken, or ran out without a successful extension".to_owned(),
            |cause| cause.to_string(),
        ),
        Cause::WhileStopped => format!(
            "the job was stopped and the lock could not be extended meanwhile ({} of validity \
             left, safety margin {})",
            show_duration(left),
            show_duration(margin)
        ),
    }
}

/// The masters' side of a loss report: which failed, and where the lock was still ours.
fn report_masters(masters: &[MasterKey], token: &str, report: Report) {
    if masters.is_empty() {
        report.error("the masters could not be checked");
        return;
    }
    let failed: Vec<String> = masters
        .iter()
        .filter(|m| !is_ours(m, token))
        .map(|m| format!("{} ({})", m.master, describe_for_loss(m)))
        .collect();
    let ours: Vec<String> = masters
        .iter()
        .filter(|m| is_ours(m, token))
        .map(|m| m.master.clone())
        .collect();
    report.error(format_args!(
        "failed masters: {}{}",
        if failed.is_empty() {
            "none (all answered with our lock just now)".to_owned()
        } else {
            failed.join(", ")
        },
        if ours.is_empty() {
            String::new()
        } else {
            format!("; still ours on: {}", ours.join(", "))
        }
    ));
}

fn is_ours(m: &MasterKey, token: &str) -> bool {
    matches!(&m.state, KeyState::Held { value, .. } if value.as_slice() == token.as_bytes())
}

fn describe_for_loss(m: &MasterKey) -> String {
    match &m.state {
        KeyState::Absent => "the key is gone: expired or deleted".to_owned(),
        KeyState::Shared { readers, .. } => {
            format!("shared by {readers} reader(s); whether this lease is among them is not read")
        }
        KeyState::Held { value, .. } => {
            format!("held by another holder, {}…", probe::token_prefix(value))
        }
        KeyState::NotALock => "the key holds a value that is not a lock".to_owned(),
        KeyState::Failed(e) => e.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_margin_has_a_floor_and_a_cap() {
        let ms = Duration::from_millis;
        // 30 s: 50 ms + 302 ms of drift.
        assert_eq!(safety_margin(ms(30_000), ms(50)), ms(352));
        // 1 s: the 100 ms floor.
        assert_eq!(safety_margin(ms(1_000), ms(50)), ms(100));
        // 200 ms: capped at a quarter of the TTL.
        assert_eq!(safety_margin(ms(200), ms(50)), ms(50));
    }
}
