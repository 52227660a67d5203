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

use std::ffi::OsString;
use std::process::ExitStatus;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::time::Instant;
use tokio_redlock::{
    DEFAULT_DRIFT_FACTOR, LockError, LockGuard, LockManager, NodeError, NodeStatus,
};

use crate::cli::{Common, ExecArgs};
use crate::exit;
use crate::probe::{self, KeyState, MasterKey, show_duration};
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
/// turns in arrival order. `-n` makes one attempt. A conflict keeps waiting; any other error
/// (no quorum, a non-lock value) returns at once.
pub(crate) async fn acquire_waiting(
    manager: &LockManager,
    resource: &str,
    spec: AcquireSpec,
    wait: Wait,
) -> Result<Acquired, LockError> {
    let request = manager
        .acquire(resource)
        .ttl(spec.ttl)
        .extend_every(spec.extend_every);
    let request = match wait {
        Wait::No => request.retry_count(0),
        Wait::For(d) => request.wait(d),
        Wait::Forever => request.wait_forever(),
    };
    request.await.map(|guard| Acquired { guard })
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

/// Runs `redlock exec` and returns the exit code.
pub(crate) async fn run(args: ExecArgs, common: &Common, report: Report) -> u8 {
    let mut signals = match Signals::install() {
        Ok(s) => s,
        Err(e) => {
            report.error(format_args!("cannot handle signals: {e}"));
            return exit::SOFTWARE;
        }
    };
    let extend_every = args
        .extend_every
        .unwrap_or_else(|| args.ttl.checked_div(3).unwrap_or_default());
    if extend_every.is_zero() || extend_every > args.ttl.checked_div(2).unwrap_or_default() {
        report.error(format_args!(
            "--extend-every {} must be above zero and at most half the TTL ({}), so a failed \
             extension can be retried before the lock runs out",
            show_duration(extend_every),
            show_duration(args.ttl)
        ));
        return exit::USAGE;
    }
    let manager = match crate::build_manager(common, args.ttl, args.fencing) {
        Ok(m) => m,
        Err(e) => {
            report.error(e);
            return exit::USAGE;
        }
    };
    let spec = AcquireSpec {
        ttl: args.ttl,
        extend_every,
    };
    let code = run_with(&manager, &args, spec, common, report, &mut signals).await;
    // Awaits the background work (releases of dropped attempts), bounded by the timeouts.
    manager.close().await;
    code
}

async fn run_with(
    manager: &LockManager,
    args: &ExecArgs,
    spec: AcquireSpec,
    common: &Common,
    report: Report,
    signals: &mut Signals,
) -> u8 {
    let resource = args.resource.as_str();
    let wait = Wait::from_args(args);
    let started = Instant::now();
    let acquired = tokio::select! {
        r = acquire_waiting(manager, resource, spec, wait) => r,
        signal = signals.recv() => {
            report.info(format_args!("got {signal} while waiting for `{resource}`: giving up"));
            return exit::signal_code(signal);
        }
    };
    let Acquired { guard } = match acquired {
        Ok(a) => a,
        Err(e) => return acquire_failed(&e, resource, wait, started, args, report),
    };
    report.info(format_args!(
        "acquired `{resource}` in {}; validity {}; token {}…{}",
        show_duration(started.elapsed()),
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

    let mut command = match build_command(args) {
        Some(c) => c,
        None => {
            report.error("no command given");
            drop(guard.release().await);
            return exit::USAGE;
        }
    };
    command
        .env("REDLOCK_RESOURCE", resource)
        .env("REDLOCK_TOKEN", guard.token())
        .env(
            "REDLOCK_VALIDITY_MS",
            guard.validity().as_millis().to_string(),
        )
        .env_remove("REDLOCK_FENCING_TOKEN")
        .process_group(0)
        .kill_on_drop(false);
    if let Some(token) = guard.fencing_token() {
        command.env("REDLOCK_FENCING_TOKEN", token.to_string());
    }
    let terminal = Terminal::foreground();
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            report.error(format_args!(
                "cannot run `{}`: {e}",
                program_name(args).to_string_lossy()
            ));
            release(guard, resource, report).await;
            return exit::from_spawn_error(&e);
        }
    };
    let Some(pgid) = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .map(Pid::from_raw)
    else {
        report.error("the command exited before its process group was known");
        release(guard, resource, report).await;
        return exit::SOFTWARE;
    };
    if let Some(t) = &terminal {
        t.give_to(pgid);
    }
    let watch = Watch {
        margin: safety_margin(spec.ttl, common.node_timeout),
        kill_signal: args.kill_signal,
        kill_after: args.kill_after,
        probe_timeout: probe::budget(common.node_timeout),
    };
    let outcome = supervise(
        &guard, &mut child, pgid, &watch, manager, resource, signals, report,
    )
    .await;
    if let Some(t) = &terminal {
        t.take_back();
    }

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
            args.lost_exit_code
        }
        Supervised {
            status, received, ..
        } => {
            release(guard, resource, report).await;
            match (received, status) {
                (Some(signal), _) => exit::signal_code(signal),
                (None, Ok(status)) => exit::from_status(status),
                (None, Err(e)) => {
                    report.error(format_args!("cannot wait for the command: {e}"));
                    exit::SOFTWARE
                }
            }
        }
    }
}

/// The exit code and message for a failed acquisition.
fn acquire_failed(
    e: &LockError,
    resource: &str,
    wait: Wait,
    started: Instant,
    args: &ExecArgs,
    report: Report,
) -> u8 {
    if worth_waiting(e) {
        let held = holder_remaining(e)
            .map(|r| format!(" (for up to {} more)", show_duration(r)))
            .unwrap_or_default();
        match wait {
            Wait::No => report.warn(format_args!("`{resource}` is held by another holder{held}")),
            _ => report.warn(format_args!(
                "gave up waiting for `{resource}` after {}: it is held by another holder{held}",
                show_duration(started.elapsed())
            )),
        }
        for outcome in e.outcomes() {
            report.info(format_args!("  {outcome}"));
        }
        return args.conflict_exit_code;
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
        return exit::UNAVAILABLE;
    }
    report.error(e);
    if e.is_not_a_lock() {
        exit::DATA
    } else if e.is_invalid_input() {
        exit::USAGE
    } else {
        exit::SOFTWARE
    }
}

/// The command to run: COMMAND ARGS…, or `/bin/sh -c SHELL_COMMAND`.
fn build_command(args: &ExecArgs) -> Option<tokio::process::Command> {
    if let Some(shell) = &args.shell_command {
        let mut c = tokio::process::Command::new("/bin/sh");
        c.arg("-c").arg(shell);
        return Some(c);
    }
    let (program, rest) = args.command.split_first()?;
    let mut c = tokio::process::Command::new(program);
    c.args(rest);
    Some(c)
}

fn program_name(args: &ExecArgs) -> OsString {
    match (&args.shell_command, args.command.first()) {
        (Some(_), _) => "/bin/sh".into(),
        (None, Some(p)) => p.into(),
        (None, None) => OsString::new(),
    }
}

/// Releases after a normal end; a failure is a warning (the command's status still stands).
async fn release(guard: LockGuard, resource: &str, report: Report) {
    match guard.release().await {
        Ok(()) => report.info(format_args!("released `{resource}`")),
        Err(e) if e.is_not_held() => report.warn(format_args!(
            "the lock on `{resource}` was no longer held when released (it expired or was \
             deleted by someone else): {e}"
        )),
        Err(e) => report.warn(format_args!(
            "release of `{resource}` incomplete; the remaining keys expire by their TTL: {e}"
        )),
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
}

/// A loss in progress: the per-master reads started when it was noticed.
struct Loss {
    probe: tokio::task::JoinHandle<Vec<MasterKey>>,
}

/// How the command ended.
struct Supervised {
    status: std::io::Result<ExitStatus>,
    received: Option<Signal>,
    loss: Option<Loss>,
}

/// Waits for the command while forwarding signals and watching the lock.
#[allow(clippy::too_many_arguments)]
async fn supervise(
    guard: &LockGuard,
    child: &mut tokio::process::Child,
    pgid: Pid,
    watch: &Watch,
    manager: &LockManager,
    resource: &str,
    signals: &mut Signals,
    report: Report,
) -> Supervised {
    let mut received = None;
    let mut loss: Option<Loss> = None;
    let mut kill_at: Option<Instant> = None;
    let start_loss = |cause: Cause, kill_at: &mut Option<Instant>| {
        let left = guard.deadline().saturating_duration_since(Instant::now());
        signal_group(pgid, watch.kill_signal);
        *kill_at = Instant::now().checked_add(watch.kill_after);
        report.error(format_args!(
            "lost the lock on `{resource}` while the command ran: {}; sent {} to process group \
             {pgid} (SIGKILL follows after {} if it is still running)",
            why(cause, left, watch.margin),
            watch.kill_signal,
            show_duration(watch.kill_after),
        ));
        let (manager, resource, timeout) =
            (manager.clone(), resource.to_owned(), watch.probe_timeout);
        Loss {
            probe: tokio::spawn(async move { probe::read_all(&manager, &resource, timeout).await }),
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
            status = child.wait() => break status,
            signal = signals.recv() => {
                report.info(format_args!("got {signal}: forwarding it to process group {pgid}"));
                signal_group(pgid, signal);
                received.get_or_insert(signal);
            }
            () = guard.lost(), if watching => {
                loss = Some(start_loss(Cause::Declared, &mut kill_at));
            }
            () = tokio::time::sleep_until(alarm), if watching => {
                if guard.deadline() > deadline {
                    continue; // an extension moved the deadline
                }
                loss = Some(start_loss(Cause::Margin, &mut kill_at));
            }
            () = sleep_until_opt(kill_at), if kill_at.is_some() => {
                kill_group();
                kill_at = None;
            }
        }
    };
    // The command ended just as the lock was declared lost: it may have outrun the lock.
    if loss.is_none() && guard.is_lost() {
        loss = Some(start_loss(Cause::Declared, &mut kill_at));
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
fn why(cause: Cause, left: Duration, margin: Duration) -> String {
    match cause {
        Cause::Margin => format!(
            "no extension reached a quorum and only {} of validity was left (safety margin {})",
            show_duration(left),
            show_duration(margin)
        ),
        Cause::Declared => {
            "the lock expired, was taken, or ran out without a successful extension".to_owned()
        }
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
