//! Helpers shared by the CLI's test files: the `redlock` binary pointed at real
//! `redis-server` masters (started by the library's test harness, with its Sentinel and TLS
//! servers), resource names, and waiting for files and processes.
#![allow(
    dead_code,
    unused_imports,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::as_conversions,
    clippy::print_stdout,
    clippy::print_stderr
)]

#[path = "../../../tokio-redlock/tests/support/servers.rs"]
#[macro_use]
pub mod servers;
#[path = "../../../tokio-redlock/tests/support/sentinel.rs"]
pub mod sentinel;
#[path = "../../../tokio-redlock/tests/support/tls.rs"]
pub mod tls;

#[path = "../../../tokio-redlock/tests/support/cluster.rs"]
pub mod cluster;

use std::fs;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command as StdCommand, ExitStatus};
use std::thread;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use predicates::prelude::*;
pub use servers::{Masters, RedisServer, ServerOptions};

/// The `redlock` binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_redlock");

/// The per-master budget of tests that are not about timeouts (a loaded machine can keep a
/// request from its CPU longer than the 200 ms default).
pub const RELAXED_NODE_TIMEOUT: &str = "1s";

/// The environment variables redlock reads; the tests' own runs start without them.
pub const REDLOCK_ENV: &[&str] = &[
    "REDLOCK_SERVERS",
    "REDLOCK_LOG",
    "REDLOCK_TLS_CA_CERT",
    "REDLOCK_TLS_CERT",
    "REDLOCK_TLS_KEY",
    "REDLOCK_TTL",
    "REDLOCK_WAIT",
    "REDLOCK_NODE_TIMEOUT",
    "REDLOCK_EXTEND_EVERY",
    "REDLOCK_KILL_SIGNAL",
    "REDLOCK_KILL_AFTER",
    "REDLOCK_LOST_EXIT_CODE",
    "REDLOCK_CONFLICT_EXIT_CODE",
    "REDLOCK_NONBLOCK",
    "REDLOCK_FENCING",
];

/// `redlock` without any of [`REDLOCK_ENV`], with a 20 s limit.
pub fn redlock_bare() -> Command {
    let mut cmd = Command::new(BIN);
    for var in REDLOCK_ENV {
        cmd.env_remove(var);
    }
    cmd.timeout(Duration::from_secs(20));
    cmd
}

/// `redlock` with `-s` for every master and `--node-timeout 1s`.
pub fn redlock(masters: &Masters) -> Command {
    let mut cmd = redlock_bare();
    for url in masters.urls() {
        cmd.arg("-s").arg(url);
    }
    cmd.args(["--node-timeout", RELAXED_NODE_TIMEOUT]);
    cmd
}

/// The same as a `std::process::Command`, for tests that signal or time the process.
pub fn redlock_std(masters: &Masters) -> StdCommand {
    redlock_std_with(masters, RELAXED_NODE_TIMEOUT)
}

/// [`redlock_std`] with the given `--node-timeout`.
pub fn redlock_std_with(masters: &Masters, node_timeout: &str) -> StdCommand {
    let mut cmd = StdCommand::new(BIN);
    for var in REDLOCK_ENV {
        cmd.env_remove(var);
    }
    for url in masters.urls() {
        cmd.arg("-s").arg(url);
    }
    cmd.args(["--node-timeout", node_timeout]);
    cmd
}

/// Runs `cmd` and checks that it is refused as bad usage (exit 64) with `says` in its stderr.
pub fn assert_usage_error(cmd: &mut Command, says: &str) -> assert_cmd::assert::Assert {
    cmd.assert().code(64).stderr(predicate::str::contains(says))
}

/// Loopback ports where nothing listens.
pub fn closed_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

/// A resource name unique to this process and call site.
pub fn name(prefix: &str) -> String {
    format!("{prefix}-{}", std::process::id())
}

/// Whether the key exists on any master.
pub fn held_anywhere(masters: &Masters, key: &str) -> bool {
    masters.iter().any(|m| m.exists(key.as_bytes()))
}

/// Sets `key` to another holder's token on every master.
pub fn hold_elsewhere(masters: &Masters, key: &str, ttl_ms: u64) {
    for m in masters.iter() {
        m.cmd(&[
            "SET",
            key,
            "0ther0holder0token0000000000000",
            "PX",
            &ttl_ms.to_string(),
        ]);
    }
}

/// Waits for `child` up to `limit`; kills it and panics when it does not exit.
pub fn wait_timeout(child: &mut Child, limit: Duration) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("redlock did not exit within {limit:?}");
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Waits until `file` contains `needle`; returns its text.
pub fn wait_for_line(file: &Path, needle: &str, limit: Duration) -> String {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Ok(text) = fs::read_to_string(file)
            && text.contains(needle)
        {
            return text;
        }
        thread::sleep(Duration::from_millis(10));
    }
    panic!(
        "{} never contained {needle:?}: {:?}",
        file.display(),
        fs::read_to_string(file)
    );
}

/// Whether process `pid` still runs: it exists and is not a zombie (a dead process not yet
/// reaped by whoever inherited it).
pub fn process_runs(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name in parentheses: `pid (comm) S …`.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Waits until `cond` holds, checking every 5 ms; false when it still does not after
/// `limit`. For what a call leaves behind after it returns: a lock is granted at a quorum,
/// and its request to the last master lands a moment later.
pub fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if cond() {
            return true;
        }
        if start.elapsed() >= limit {
            return false;
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// Waits until process `pid` no longer runs; false when it still runs after `limit`.
pub fn wait_gone(pid: i32, limit: Duration) -> bool {
    eventually(limit, || !process_runs(pid))
}

/// Deletes `key` on every master.
pub fn delete_everywhere(masters: &Masters, key: &str) {
    for m in masters.iter() {
        m.cmd(&["DEL", key]);
    }
}

/// A shell command for `redlock exec -c` that records when it ran: it appends
/// `start TAG <ns>` to `log` (wall-clock nanoseconds, from `date +%s%N`), waits until
/// `until` (a shell condition) holds — at most 20 s —, then appends `end TAG <ns>`. The
/// lock is held from before the first line to after the last.
pub fn recorded(log: &Path, tag: &str, until: &str) -> String {
    let log = log.display();
    format!(
        "echo \"start {tag} $(date +%s%N)\" >> '{log}'; i=0; \
         while ! {{ {until}; }} && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done; \
         echo \"end {tag} $(date +%s%N)\" >> '{log}'"
    )
}

/// The shell condition "the file `go` exists", for [`recorded`].
pub fn file_exists(go: &Path) -> String {
    format!("[ -e '{}' ]", go.display())
}

/// The shell condition "`log` has at least `n` start lines", for [`recorded`].
pub fn started_at_least(log: &Path, n: usize) -> String {
    format!(
        "[ \"$(grep -c '^start' '{}' 2>/dev/null)\" -ge {n} ]",
        log.display()
    )
}

/// One line of a [`recorded`] log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// `start` (true) or `end`.
    pub start: bool,
    /// The command's tag.
    pub tag: String,
    /// Wall-clock nanoseconds.
    pub at: u128,
}

/// The events of a [`recorded`] log, in file order.
pub fn events(log: &Path) -> Vec<Event> {
    fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|line| {
            let parts: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(parts.len(), 3, "bad log line {line:?}");
            Event {
                start: parts[0] == "start",
                tag: parts[1].to_owned(),
                at: parts[2].parse().unwrap(),
            }
        })
        .collect()
}

/// The most commands of the log that ran at once (an end and a start at the same
/// nanosecond do not overlap).
pub fn max_overlap(events: &[Event]) -> usize {
    let mut sorted: Vec<&Event> = events.iter().collect();
    sorted.sort_by_key(|e| (e.at, e.start));
    let (mut now, mut most) = (0usize, 0usize);
    for e in sorted {
        if e.start {
            now += 1;
            most = most.max(now);
        } else {
            now = now.saturating_sub(1);
        }
    }
    most
}

/// When the command tagged `tag` started and ended.
pub fn interval(events: &[Event], tag: &str) -> (u128, u128) {
    let at = |start: bool| {
        events
            .iter()
            .find(|e| e.tag == tag && e.start == start)
            .unwrap_or_else(|| {
                panic!(
                    "no {} of {tag} in {events:?}",
                    if start { "start" } else { "end" }
                )
            })
            .at
    };
    (at(true), at(false))
}

/// Waits until the log has `n` lines starting with `prefix` (`start`, `end`).
pub fn wait_for_events(log: &Path, prefix: &str, n: usize, limit: Duration) {
    let start = Instant::now();
    while start.elapsed() < limit {
        let count = fs::read_to_string(log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with(prefix))
            .count();
        if count >= n {
            return;
        }
        thread::sleep(Duration::from_millis(10));
    }
    panic!(
        "{} never had {n} `{prefix}` lines: {:?}",
        log.display(),
        fs::read_to_string(log)
    );
}

/// `redlock exec ARGS… RESOURCE -c SHELL` as a background process, stdout and stderr to
/// null unless piped by the caller afterwards.
pub fn spawn_exec(masters: &Masters, args: &[&str], resource: &str, shell: &str) -> Child {
    redlock_std(masters)
        .arg("exec")
        .args(args)
        .arg(resource)
        .arg("-c")
        .arg(shell)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for `child` (up to `limit`) and returns its exit code and stderr.
pub fn finish(mut child: Child, limit: Duration) -> (Option<i32>, String) {
    use std::io::Read;
    let status = wait_timeout(&mut child, limit);
    let mut err = String::new();
    if let Some(mut stderr) = child.stderr.take() {
        let _ = stderr.read_to_string(&mut err);
    }
    (status.code(), err)
}
