//! The `redlock` binary against real `redis-server` masters (started by the library's test
//! harness): exit codes, the command's environment and stdio, waiting, signals, loss of the
//! lock while the command runs, concurrency, `status --json`, `bench`, `--help`, server lists
//! (`-s a,b`, `REDLOCK_SERVERS`), the TLS options, and Unix-socket, TLS and Sentinel members.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::as_conversions,
    clippy::print_stdout,
    clippy::print_stderr
)]

mod support;

use std::fs;
use std::path::Path;
use std::process::{Child, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use assert_cmd::Command;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use predicates::prelude::*;
use support::sentinel::SentinelSet;
use support::tls::{self, TlsMaster, TlsOptions};
use support::{
    BIN, Masters, RELAXED_NODE_TIMEOUT, RedisServer, ServerOptions, assert_usage_error,
    closed_ports, held_anywhere, hold_elsewhere, name, redlock, redlock_bare,
    redlock_std_with as redlock_std, wait_for_line, wait_timeout,
};

/// The budget of the loss tests: short enough that paused masters are noticed well within
/// the test's TTL, and long enough to widen the safety margin (max(node timeout + drift,
/// 100 ms), capped at ttl/4) to 422 ms with `--ttl 2s`. The test times the command's *trap*,
/// which on a loaded machine can run a few hundred milliseconds after the signal arrived.
const LOSS_NODE_TIMEOUT: &str = "400ms";

/// Serialises the tests whose timing matters (the loss tests) with the one that loads the
/// machine most (twenty concurrent processes).
static HEAVY: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Takes [`HEAVY`], also after another test panicked while holding it.
fn heavy() -> std::sync::MutexGuard<'static, ()> {
    HEAVY
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Wall-clock nanoseconds since the epoch, as `date +%s%N` prints them.
fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// The nanosecond timestamp on the first line of `text` that starts with `tag`.
fn stamp(text: &str, tag: &str) -> u128 {
    text.lines()
        .find_map(|l| l.strip_prefix(tag))
        .unwrap_or_else(|| panic!("no {tag:?} line in:\n{text}"))
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn help_for_every_subcommand_and_version_exit_0() {
    for args in [
        &["--help"][..],
        &["-h"],
        &["exec", "--help"],
        &["status", "--help"],
        &["bench", "--help"],
        &["help", "exec"],
    ] {
        Command::new(BIN)
            .args(args)
            .assert()
            .code(0)
            .stdout(predicate::str::contains("Usage: redlock"))
            .stdout(predicate::str::contains("Examples:"));
    }
    Command::new(BIN)
        .args(["exec", "--help"])
        .assert()
        .stdout(predicate::str::contains("--kill-after"))
        .stdout(predicate::str::contains("Exit codes"));
    Command::new(BIN)
        .arg("--version")
        .assert()
        .code(0)
        .stdout(predicate::str::starts_with("redlock "));
}

#[test]
fn bad_usage_exits_64() {
    let cases: &[&[&str]] = &[
        &[],
        &["bogus"],
        &["exec"],
        &["exec", "r"],
        &["exec", "--ttl", "abc", "r", "true"],
        &["exec", "-w", "soon", "r", "true"],
        &["exec", "-c", "true", "r", "ls"],
        &["exec", "--kill-signal", "NOPE", "r", "true"],
        &["exec", "-E", "300", "r", "true"],
        &["exec", "-q", "-v", "r", "true"],
        &["exec", "--ttl", "30s", "--extend-every", "20s", "r", "true"],
        &["exec", "--ttl", "1s", "--node-timeout", "1m", "r", "true"],
        &["status"],
    ];
    for args in cases {
        Command::new(BIN)
            .env_remove("REDLOCK_SERVERS")
            .args(*args)
            .timeout(Duration::from_secs(10))
            .assert()
            .code(64)
            .stderr(predicate::str::is_empty().not());
    }
    // An unparsable server URL is a usage error, and its password is not shown.
    Command::new(BIN)
        .args(["exec", "-s", "redis://:hunter2@[bad", "r", "true"])
        .assert()
        .code(64)
        .stderr(predicate::str::contains("hunter2").not());
}

#[test]
fn command_gets_env_and_stdio_and_its_status_is_passed_through() {
    let masters = Masters::start(3);
    let r = name("env");
    let out = redlock(&masters)
        .args(["exec", "-v", "--fencing", &r, "--", "sh", "-c"])
        .arg(
            "echo res=$REDLOCK_RESOURCE; echo toklen=${#REDLOCK_TOKEN}; \
             echo validity=$REDLOCK_VALIDITY_MS; echo fence=$REDLOCK_FENCING_TOKEN; \
             read line; echo stdin=$line; echo to-stderr >&2; exit 3",
        )
        .write_stdin("hello\n")
        .assert()
        .code(3)
        .get_output()
        .clone();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stdout.contains(&format!("res={r}\n")), "{stdout}");
    assert!(stdout.contains("toklen=32\n"), "{stdout}");
    assert!(stdout.contains("fence=1\n"), "{stdout}");
    assert!(stdout.contains("stdin=hello\n"), "{stdout}");
    let validity: u64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("validity="))
        .unwrap()
        .parse()
        .unwrap();
    assert!((25_000..=30_000).contains(&validity), "{validity}");
    // -v: acquisition time and per-master outcomes; never the whole token.
    assert!(stderr.contains("to-stderr"), "{stderr}");
    assert!(stderr.contains(&format!("acquired `{r}` in")), "{stderr}");
    for url in masters.urls() {
        assert!(stderr.contains(&url), "{stderr}");
    }
    assert!(stderr.contains(": ok"), "{stderr}");
    assert!(!held_anywhere(&masters, &r), "released after the command");

    // -c runs a shell command; REDLOCK_SERVERS (comma-separated) names the masters; no
    // fencing token without --fencing.
    Command::new(BIN)
        .env("REDLOCK_SERVERS", masters.urls().join(","))
        .args(["--node-timeout", RELAXED_NODE_TIMEOUT])
        .args([
            "exec",
            &r,
            "-c",
            "echo \"[$REDLOCK_FENCING_TOKEN]\"; exit 0",
        ])
        .assert()
        .code(0)
        .stdout("[]\n");
    // A second fencing run gets a larger token.
    redlock(&masters)
        .args(["exec", "--fencing", &r, "-c", "echo $REDLOCK_FENCING_TOKEN"])
        .assert()
        .code(0)
        .stdout("2\n");
}

#[test]
fn command_killed_by_a_signal_gives_128_plus_n() {
    let masters = Masters::start(3);
    let r = name("sig");
    redlock(&masters)
        .args(["exec", &r, "--", "sh", "-c", "kill -USR1 $$"])
        .assert()
        .code(128 + 10);
    redlock(&masters)
        .args(["exec", &r, "-c", "kill -KILL $$"])
        .assert()
        .code(128 + 9);
    assert!(!held_anywhere(&masters, &r));
}

#[test]
fn command_not_found_127_and_not_executable_126() {
    let masters = Masters::start(3);
    let r = name("run");
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("not-executable.sh");
    fs::write(&script, "#!/bin/sh\necho hi\n").unwrap();
    redlock(&masters)
        .args(["exec", &r, "--", "redlock-no-such-command-xyz"])
        .assert()
        .code(127)
        .stderr(predicate::str::contains("redlock-no-such-command-xyz"));
    redlock(&masters)
        .args(["exec", &r, "--"])
        .arg(dir.path().join("missing"))
        .assert()
        .code(127);
    redlock(&masters)
        .args(["exec", &r, "--"])
        .arg(&script)
        .assert()
        .code(126);
    redlock(&masters)
        .args(["exec", &r, "--"])
        .arg(dir.path())
        .assert()
        .code(126);
    // The shell form reports the shell's own 127.
    redlock(&masters)
        .args(["exec", &r, "-c", "redlock-no-such-command-xyz"])
        .assert()
        .code(127);
    assert!(!held_anywhere(&masters, &r), "the lock is released");
}

#[test]
fn conflict_exits_1_or_the_e_code_and_the_wait_gives_up() {
    let masters = Masters::start(3);
    let r = name("conflict");
    hold_elsewhere(&masters, &r, 20_000);
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let touch = format!("touch {}", marker.display());

    redlock(&masters)
        .args(["exec", "-n", &r, "-c", &touch])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("held by another holder"));
    redlock(&masters)
        .args(["exec", "-n", "-E", "7", &r, "-c", &touch])
        .assert()
        .code(7);
    redlock(&masters)
        .args(["exec", "-w", "0", &r, "-c", &touch])
        .assert()
        .code(1);
    redlock(&masters)
        .args(["exec", "-q", "-n", &r, "-c", &touch])
        .assert()
        .code(1)
        .stderr("");

    let start = Instant::now();
    redlock(&masters)
        .args(["exec", "-w", "300ms", &r, "-c", &touch])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("gave up waiting"));
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    // A bare number means seconds; -E applies to wait expiry too.
    redlock(&masters)
        .args(["exec", "-w", "0.2", "-E", "9", &r, "-c", &touch])
        .assert()
        .code(9);
    assert!(!marker.exists(), "the command never ran");
    // The other holder's key is untouched.
    assert!(masters.iter().all(|m| m.exists(r.as_bytes())));
}

#[test]
fn waiting_acquires_once_the_holder_lets_go() {
    let masters = Masters::start(3);
    let r = name("wait");
    hold_elsewhere(&masters, &r, 600);
    let start = Instant::now();
    redlock(&masters)
        .args(["exec", "-w", "5s", &r, "-c", "echo ran"])
        .assert()
        .code(0)
        .stdout("ran\n");
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(450) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    // Without -w: waits as long as it takes.
    hold_elsewhere(&masters, &r, 400);
    redlock(&masters)
        .args(["exec", &r, "-c", "echo ran"])
        .assert()
        .code(0)
        .stdout("ran\n");
}

#[test]
fn no_master_reachable_exits_69_without_showing_passwords() {
    let ports = closed_ports(3);
    let mut cmd = Command::new(BIN);
    cmd.env_remove("REDLOCK_SERVERS")
        .timeout(Duration::from_secs(20));
    for p in &ports {
        cmd.arg("-s")
            .arg(format!("redis://:s3cretpw@127.0.0.1:{p}"));
    }
    cmd.args(["exec", "r", "--", "true"])
        .assert()
        .code(69)
        .stderr(predicate::str::contains("no quorum"))
        .stderr(predicate::str::contains("s3cretpw").not());
    // When waiting, a lost quorum is ridden out until the budget is spent, then exit 69.
    let start = Instant::now();
    Command::new(BIN)
        .env(
            "REDLOCK_SERVERS",
            ports
                .iter()
                .map(|p| format!("redis://127.0.0.1:{p}"))
                .collect::<Vec<_>>()
                .join(","),
        )
        .args(["exec", "-w", "1s", "r", "--", "true"])
        .timeout(Duration::from_secs(20))
        .assert()
        .code(69);
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "{took:?}"
    );
    for sub in [&["status", "r"][..], &["bench", "--cycles", "5"]] {
        let mut cmd = Command::new(BIN);
        cmd.env_remove("REDLOCK_SERVERS")
            .timeout(Duration::from_secs(20));
        for p in &ports {
            cmd.arg("-s")
                .arg(format!("redis://:s3cretpw@127.0.0.1:{p}"));
        }
        cmd.args(sub)
            .assert()
            .code(69)
            .stdout(predicate::str::contains("s3cretpw").not())
            .stderr(predicate::str::contains("s3cretpw").not());
    }
}

/// The command of the loss tests: records its start, starts a grandchild that records
/// SIGTERM, records its own SIGTERM, and says when it is ready.
const LOSS_CHILD: &str = r#"
echo "start $(date +%s%N)" >> "$F"
sh -c 'trap "echo grandchild-term \$(date +%s%N) >> \"\$F\"; exit 143" TERM; echo gc-ready >> "$F"; sleep 30 & wait' &
trap 'echo child-term $(date +%s%N) >> "$F"; exit 143' TERM
echo ready >> "$F"
sleep 30 & wait
"#;

#[test]
fn majority_paused_signals_child_and_grandchild_before_validity_ends_and_exits_75() {
    let masters = Masters::start(3);
    let r = name("lost");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let ttl = Duration::from_secs(2);
    let _serial = heavy();
    let mut child = redlock_std(&masters, LOSS_NODE_TIMEOUT)
        .args([
            "exec", "--ttl", "2s", "-k", "2s", &r, "--", "sh", "-c", LOSS_CHILD,
        ])
        .env("F", &log)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_line(&log, "\nready", Duration::from_secs(10));
    wait_for_line(&log, "gc-ready", Duration::from_secs(10));
    // Let at least one extension happen, then freeze a majority.
    thread::sleep(Duration::from_millis(800));
    let paused_at = now_ns();
    masters[1].pause();
    masters[2].pause();
    let status = wait_timeout(&mut child, Duration::from_secs(10));
    let exited_at = now_ns();
    masters[1].resume();
    masters[2].resume();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    let text = fs::read_to_string(&log).unwrap();

    assert_eq!(status.code(), Some(75), "{stderr}\n{text}");
    let child_term = stamp(&text, "child-term ");
    let grandchild_term = stamp(&text, "grandchild-term ");
    // The last extension that succeeded started before the pause, so the validity ended
    // no later than pause + ttl: both got SIGTERM before that, and after the pause.
    let validity_end = paused_at + ttl.as_nanos();
    for (who, at) in [("child", child_term), ("grandchild", grandchild_term)] {
        assert!(
            at > paused_at && at < validity_end,
            "{who} got SIGTERM {} ms after the pause (validity ended by {} ms)\n{text}\n{stderr}",
            (at as i128 - paused_at as i128) / 1_000_000,
            ttl.as_millis()
        );
    }
    // After the signal: the command exits at once (its trap), then redlock reads the
    // masters' state for the report (bounded by the probe timeout) and exits. The bound is
    // the TTL, the kill grace (2 s) and the probe, with slack for a loaded machine: it
    // catches a hang, not a slow scheduler.
    let exit_bound = ttl + Duration::from_secs(2) + Duration::from_secs(4);
    assert!(
        exited_at - paused_at < exit_bound.as_nanos(),
        "redlock exited {} ms after the pause (bound {} ms)\n{text}\n{stderr}",
        (exited_at - paused_at) / 1_000_000,
        exit_bound.as_millis()
    );
    // stderr says what happened and names the paused masters.
    assert!(stderr.contains("lost the lock"), "{stderr}");
    assert!(stderr.contains("SIGTERM"), "{stderr}");
    let failed = stderr
        .lines()
        .find(|l| l.contains("failed masters:"))
        .unwrap_or_else(|| panic!("no failed masters line:\n{stderr}"));
    let (failed_part, ours_part) = failed.split_once("still ours on:").unwrap_or((failed, ""));
    assert!(failed_part.contains(&masters[1].url()), "{stderr}");
    assert!(failed_part.contains(&masters[2].url()), "{stderr}");
    assert!(ours_part.contains(&masters[0].url()), "{stderr}");
}

#[test]
fn lost_lock_sigkills_a_group_that_ignores_the_signal() {
    let masters = Masters::start(3);
    let r = name("lost-kill");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let _serial = heavy();
    let mut child = redlock_std(&masters, LOSS_NODE_TIMEOUT)
        .args([
            "exec",
            "--ttl",
            "1s",
            "-k",
            "300ms",
            "--kill-signal",
            "INT",
            "--lost-exit-code",
            "9",
            &r,
            "-c",
            r#"trap '' INT TERM; echo ready >> "$F"; sleep 30 & wait; sleep 30"#,
        ])
        .env("F", &log)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_line(&log, "ready", Duration::from_secs(10));
    let paused_at = Instant::now();
    masters[0].pause();
    masters[1].pause();
    let status = wait_timeout(&mut child, Duration::from_secs(10));
    let took = paused_at.elapsed();
    masters[0].resume();
    masters[1].resume();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(9), "{stderr}");
    assert!(stderr.contains("sent SIGINT"), "{stderr}");
    assert!(stderr.contains("sent SIGKILL"), "{stderr}");
    // Loss within ~1 s, SIGKILL 300 ms later.
    assert!(took < Duration::from_secs(4), "{took:?}");
}

#[test]
fn signals_to_redlock_reach_the_child_group_and_the_lock_is_released() {
    let masters = Masters::start(3);
    let dir = tempfile::tempdir().unwrap();
    for signal in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        let r = name(&format!("fwd-{signal}"));
        let log = dir.path().join(format!("log-{signal}"));
        // A non-interactive sh starts background jobs with SIGINT ignored (and then cannot
        // trap it), so the grandchild can only show SIGTERM and SIGHUP.
        let script = r#"
            echo "pgid $(ps -o pgid= $$) pid $$" >> "$F"
            sh -c 'trap "echo grandchild-got >> \"\$F\"; exit 1" TERM HUP; echo gc-ready >> "$F"; sleep 10 & wait' &
            trap 'echo child-got >> "$F"; exit 0' TERM INT HUP
            echo ready >> "$F"
            sleep 10 & wait
        "#;
        let mut child = redlock_std(&masters, RELAXED_NODE_TIMEOUT)
            .args(["exec", &r, "-c", script])
            .env("F", &log)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for_line(&log, "\nready", Duration::from_secs(10));
        wait_for_line(&log, "gc-ready", Duration::from_secs(10));
        assert!(held_anywhere(&masters, &r), "held while the command runs");
        kill(Pid::from_raw(child.id() as i32), signal).unwrap();
        let status = wait_timeout(&mut child, Duration::from_secs(10));
        let text = fs::read_to_string(&log).unwrap();
        // 128+N even though the command itself exited 0 after handling the signal.
        assert_eq!(status.code(), Some(128 + signal as i32), "{signal}: {text}");
        assert!(text.contains("child-got"), "{signal}: {text}");
        if signal != Signal::SIGINT {
            // The grandchild got it too (its trap may finish after redlock exited: redlock
            // waits for the command, not for what the command left behind).
            wait_for_line(&log, "grandchild-got", Duration::from_secs(10));
        }
        // The command ran in its own process group, led by itself.
        let line = text.lines().find(|l| l.starts_with("pgid")).unwrap();
        let parts: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(parts[1], parts[3], "{line}");
        assert_ne!(parts[1], child.id().to_string(), "{line}");
        // What ignored the signal (the SIGINT case) is not redlock's to clean up: the test's.
        let _ = nix::sys::signal::killpg(Pid::from_raw(parts[1].parse().unwrap()), Signal::SIGKILL);
        assert!(
            !held_anywhere(&masters, &r),
            "{signal}: the lock is released"
        );
    }
}

#[test]
fn twenty_concurrent_execs_append_without_interleaving() {
    let masters = Masters::start(3);
    let r = name("append");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out");
    fs::write(&file, "").unwrap();
    // Read-modify-write: read the last number, pause, append begin and end lines.
    let section = r#"last=$(tail -n 1 "$F" | cut -d' ' -f1); n=$(( ${last:-0} + 1 ));
        echo "$n begin $$" >> "$F"; sleep 0.02; echo "$n end $$" >> "$F""#;
    let _serial = heavy();
    let children: Vec<Child> = (0..20)
        .map(|_| {
            redlock_std(&masters, RELAXED_NODE_TIMEOUT)
                .args(["exec", "-w", "30s", &r, "-c", section])
                .env("F", &file)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        let status = wait_timeout(&mut child, Duration::from_secs(40));
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
        assert!(status.success(), "{status}: {stderr}");
    }
    let text = fs::read_to_string(&file).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 40, "{text}");
    let mut pids = std::collections::HashSet::new();
    for (k, pair) in lines.chunks(2).enumerate() {
        let n = k + 1;
        let begin: Vec<&str> = pair[0].split(' ').collect();
        let end: Vec<&str> = pair[1].split(' ').collect();
        assert_eq!(begin[..2], [n.to_string().as_str(), "begin"], "{text}");
        assert_eq!(end[..2], [n.to_string().as_str(), "end"], "{text}");
        assert_eq!(begin[2], end[2], "interleaved at {n}:\n{text}");
        assert!(pids.insert(begin[2].to_owned()), "{text}");
    }
    assert!(!held_anywhere(&masters, &r));
}

#[test]
fn status_shows_each_master_and_the_quorum_view_as_json() {
    let masters = Masters::start(3);
    let held = name("status-held");
    let free = name("status-free");
    let token = "abcdef0123456789abcdef0123456789";
    for m in [&masters[0], &masters[1]] {
        m.cmd(&["SET", &held, token, "PX", "20000"]);
    }
    // Exit 1: one of them is free (see reports.rs for the exit codes).
    let out = redlock(&masters)
        .args(["status", "--json", &held, &free])
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let doc: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(doc["masters"], 3);
    assert_eq!(doc["quorum"], 2);
    let h = &doc["resources"][0];
    assert_eq!(h["resource"], held.as_str());
    assert_eq!(h["state"], "held");
    assert_eq!(h["holder_prefix"], "abcdef01");
    let remaining = h["remaining_ms"].as_u64().unwrap();
    assert!((15_000..=20_000).contains(&remaining), "{remaining}");
    let per_master = h["masters"].as_array().unwrap();
    assert_eq!(per_master.len(), 3);
    for (i, m) in per_master.iter().enumerate() {
        assert_eq!(m["master"], masters[i].url().as_str());
        assert_eq!(m["reachable"], true);
    }
    assert_eq!(per_master[0]["exists"], true);
    assert_eq!(per_master[0]["token_prefix"], "abcdef01");
    assert!(per_master[0]["pttl_ms"].as_i64().unwrap() > 15_000);
    assert_eq!(per_master[2]["exists"], false);
    assert_eq!(per_master[2]["pttl_ms"], -2);
    assert_eq!(doc["resources"][1]["state"], "free");
    // The full token never appears.
    assert!(!String::from_utf8_lossy(&out).contains(token));

    // Text form.
    redlock(&masters)
        .args(["status", &held])
        .assert()
        .code(0)
        .stdout(predicate::str::contains(format!(
            "{held}: held by abcdef01…"
        )))
        .stdout(predicate::str::contains("PTTL"))
        .stdout(predicate::str::contains("no key"))
        .stdout(predicate::str::contains(token).not());
}

#[test]
fn bench_prints_latency_percentiles_and_throughput() {
    let masters = Masters::start(3);
    redlock(&masters)
        .args(["bench", "--cycles", "50"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("p50"))
        .stdout(predicate::str::contains("p99"))
        .stdout(predicate::str::contains("cycles/s"));
    let out = redlock(&masters)
        .args(["bench", "--cycles", "20", "--json"])
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let doc: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(doc["cycles"], 20);
    assert!(doc["lock_p99_us"].as_u64().unwrap() >= doc["lock_p50_us"].as_u64().unwrap());
    assert!(doc["cycles_per_sec"].as_f64().unwrap() > 0.0);
}

/// `status --json` of one resource through `cmd`: the resource's object.
fn status_json(cmd: &mut Command, resource: &str) -> serde_json::Value {
    let out = cmd
        .args(["status", "--json", resource])
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let doc: serde_json::Value = serde_json::from_slice(&out).unwrap();
    doc["resources"][0].clone()
}

/// The `master` fields of a resource's per-master objects.
fn shown_masters(resource: &serde_json::Value) -> Vec<String> {
    resource["masters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["master"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn server_lists_in_s_and_redlock_servers_are_split_by_the_library_parser() {
    let masters = Masters::start(3);
    let urls = masters.urls();
    let r = name("lists");
    hold_elsewhere(&masters, &r, 20_000);

    // `-s` given a comma list (and another -s), REDLOCK_SERVERS given one with spaces: the
    // same three members, in order, each shown holding the key.
    let mut by_flag = redlock_bare();
    by_flag
        .args(["-s", &format!("{},{}", urls[0], urls[1]), "-s", &urls[2]])
        .args(["--node-timeout", RELAXED_NODE_TIMEOUT]);
    let mut by_env = redlock_bare();
    by_env
        .env(
            "REDLOCK_SERVERS",
            format!(" {} , {},{} ", urls[0], urls[1], urls[2]),
        )
        .args(["--node-timeout", RELAXED_NODE_TIMEOUT]);
    for (how, cmd) in [("-s", &mut by_flag), ("REDLOCK_SERVERS", &mut by_env)] {
        let res = status_json(cmd, &r);
        assert_eq!(shown_masters(&res), urls, "{how}: {res}");
        assert_eq!(res["state"], "held", "{how}: {res}");
        for m in res["masters"].as_array().unwrap() {
            assert_eq!(m["exists"], true, "{how}: {res}");
            assert_eq!(m["token_prefix"], "0ther0ho", "{how}: {res}");
        }
    }
    // exec takes the lock on the three members of an env list (with a quorum of 2, a list
    // read as one bogus member, or as two, would not need all three keys).
    let free = name("lists-exec");
    let check = format!(
        "test \"$({BIN} status --json {free} | grep -c '\"exists\": true')\" = 3 && echo all-three"
    );
    redlock_bare()
        .env("REDLOCK_SERVERS", urls.join(","))
        .args([
            "--node-timeout",
            RELAXED_NODE_TIMEOUT,
            "exec",
            &free,
            "-c",
            &check,
        ])
        .assert()
        .code(0)
        .stdout("all-three\n");

    // An empty entry, a trailing comma, or a part without a scheme is bad usage (64), with
    // the password redacted, whether it comes from -s or from REDLOCK_SERVERS; the command
    // never runs.
    let with_password = format!("redis://:hunter2@127.0.0.1:{}", masters[0].port());
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let touch = format!("touch {}", marker.display());
    for (list, says) in [
        (format!("{with_password},,{}", urls[1]), "empty entry"),
        (format!("{},{with_password},", urls[1]), "empty entry"),
        (
            format!("{with_password},127.0.0.1:{}", masters[1].port()),
            "no scheme",
        ),
    ] {
        assert_usage_error(
            redlock_bare().args(["-s", &list, "exec", &r, "-c", &touch]),
            says,
        )
        .stderr(predicate::str::contains("hunter2").not());
        assert_usage_error(
            redlock_bare()
                .env("REDLOCK_SERVERS", &list)
                .args(["status", &r]),
            says,
        )
        .stdout("")
        .stderr(predicate::str::contains("hunter2").not());
    }
    // A blank REDLOCK_SERVERS or -s is an error too, never a silent fall-back to a local
    // server (which the other hosts would not be using).
    for blank in ["", " ", " , "] {
        let env_says = if blank.contains(',') {
            "empty entry"
        } else {
            "REDLOCK_SERVERS"
        };
        assert_usage_error(
            redlock_bare()
                .env("REDLOCK_SERVERS", blank)
                .args(["exec", &r, "-c", &touch]),
            env_says,
        );
    }
    assert_usage_error(
        redlock_bare().args(["-s", " ", "exec", &r, "-c", &touch]),
        "no masters given",
    );
    assert!(!marker.exists(), "the command never ran");
}

#[test]
fn tls_options_are_checked_before_anything_connects() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    let not_pem = dir.path().join("ca.der");
    fs::write(&ca, &tls::pki().ca_pem).unwrap();
    fs::write(&not_pem, [0x30, 0x82, 0x01, 0x0a]).unwrap();
    let missing = dir.path().join("missing.pem");
    let marker = dir.path().join("ran");
    let touch = format!("touch {}", marker.display());
    // Nothing listens there: only a check made before connecting gives 64.
    let tls_server = format!("rediss://127.0.0.1:{}", closed_ports(1)[0]);

    let refused = |args: &[&Path], env: &[(&str, &Path)], says: &str| {
        let mut cmd = redlock_bare();
        for (k, v) in env {
            cmd.env(k, v);
        }
        assert_usage_error(
            cmd.args(args)
                .args(["-s", &tls_server, "exec", "r", "-c", &touch]),
            says,
        );
    };
    let (cert_opt, key_opt, ca_opt) = (
        Path::new("--tls-cert"),
        Path::new("--tls-key"),
        Path::new("--tls-ca-cert"),
    );
    // A client certificate without its key, and the reverse, by option or variable.
    refused(&[cert_opt, &ca], &[], "--tls-key");
    refused(&[key_opt, &ca], &[], "--tls-cert");
    refused(&[], &[("REDLOCK_TLS_CERT", &ca)], "--tls-key");
    refused(&[], &[("REDLOCK_TLS_KEY", &ca)], "--tls-cert");
    // A file that cannot be read, or holds no PEM block of the right kind.
    refused(
        &[ca_opt, &missing],
        &[],
        "cannot read the --tls-ca-cert file",
    );
    refused(
        &[],
        &[("REDLOCK_TLS_CA_CERT", &not_pem)],
        "holds no PEM certificate",
    );
    refused(
        &[cert_opt, &ca, key_opt, &ca],
        &[],
        "holds no PEM private key",
    );
    // TLS settings without a TLS member would silently be plaintext: refused.
    assert_usage_error(
        redlock_bare().args(["--tls-ca-cert"]).arg(&ca).args([
            "-s",
            "redis://127.0.0.1:6379",
            "status",
            "r",
        ]),
        "no server URL uses TLS",
    );
    assert!(!marker.exists(), "the command never ran");
}

#[test]
fn unix_socket_tls_and_sentinel_members_are_locked_and_shown_by_status() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("redis.sock");
    let unix = RedisServer::start(
        ServerOptions::default().args(&["--unixsocket", socket.to_str().unwrap()]),
    );
    let tls_master = TlsMaster::start(TlsOptions {
        mutual: true,
        ..TlsOptions::default()
    });
    let sentinels = SentinelSet::start();
    let files = [
        ("ca.pem", tls::pki().ca_pem.as_str()),
        ("client.pem", tls::pki().client_cert_pem.as_str()),
        ("client.key", tls::pki().client_key_pem.as_str()),
    ];
    for (file, pem) in files {
        fs::write(dir.path().join(file), pem).unwrap();
    }
    // One list in REDLOCK_SERVERS: the Sentinel URL keeps its commas.
    let members = [
        format!("redis+unix://{}", socket.display()),
        tls_master.url(),
        sentinels.url(),
    ];
    let list = members.join(",");
    let with_env = |cmd: &mut Command| {
        cmd.env("REDLOCK_SERVERS", &list)
            .env("REDLOCK_TLS_CA_CERT", dir.path().join("ca.pem"))
            .env("REDLOCK_TLS_CERT", dir.path().join("client.pem"))
            .env("REDLOCK_TLS_KEY", dir.path().join("client.key"))
            .args(["--node-timeout", RELAXED_NODE_TIMEOUT]);
    };
    let r = name("members");

    // While exec holds the lock, a nested status (same environment) shows it on each of the
    // three members, under our token.
    let mut cmd = redlock_bare();
    with_env(&mut cmd);
    let out = cmd
        .args(["exec", &r, "-c"])
        .arg(format!(
            "echo \"$REDLOCK_TOKEN\"; {BIN} status --json \"$REDLOCK_RESOURCE\""
        ))
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let out = String::from_utf8(out).unwrap();
    let (token, json) = out.split_once('\n').unwrap();
    let doc: serde_json::Value = serde_json::from_str(json).unwrap();
    assert_eq!(doc["masters"], 3, "{out}");
    let res = &doc["resources"][0];
    assert_eq!(res["state"], "held", "{out}");
    assert_eq!(res["holder_prefix"], &token[..8], "{out}");
    assert_eq!(shown_masters(res), members, "{out}");
    for m in res["masters"].as_array().unwrap() {
        assert_eq!(m["reachable"], true, "{out}");
        assert_eq!(m["token_prefix"], &token[..8], "{out}");
        assert!(m["pttl_ms"].as_i64().unwrap() > 20_000, "{out}");
    }
    // Released on every member afterwards.
    assert!(!unix.exists(r.as_bytes()));
    assert!(tls_master.get(r.as_bytes()).is_none());
    assert!(!sentinels.current_master().exists(r.as_bytes()));

    // Text status of a held key names each member.
    hold_elsewhere_on(&unix, &tls_master, &sentinels, &r);
    let mut cmd = redlock_bare();
    with_env(&mut cmd);
    let text = cmd
        .args(["status", &r])
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(text).unwrap();
    assert!(text.contains(&format!("{r}: held by 0ther0ho…")), "{text}");
    for member in &members {
        assert!(
            text.contains(&format!("  {member}: held by 0ther0ho…, PTTL ")),
            "{text}"
        );
    }

    // Without the CA the TLS member's certificate is not trusted: status still answers from
    // the other two (a quorum) and shows the TLS failure on that member's line.
    let mut cmd = redlock_bare();
    with_env(&mut cmd);
    let out = cmd
        .env_remove("REDLOCK_TLS_CA_CERT")
        .args(["status", "--json", &r])
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let doc: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let tls_line = &doc["resources"][0]["masters"][1];
    assert_eq!(tls_line["reachable"], false, "{doc}");
    let error = tls_line["error"].as_str().unwrap();
    assert!(error.contains("TLS handshake failed"), "{error}");
    // --danger-accept-invalid-certs trusts it anyway (the client certificate still goes).
    let mut cmd = redlock_bare();
    with_env(&mut cmd);
    let res = status_json(
        cmd.env_remove("REDLOCK_TLS_CA_CERT")
            .arg("--danger-accept-invalid-certs"),
        &r,
    );
    assert_eq!(res["masters"][1]["reachable"], true, "{res}");
    assert_eq!(res["masters"][1]["token_prefix"], "0ther0ho", "{res}");
}

/// Sets `key` to another holder's token on the three kinds of member.
fn hold_elsewhere_on(unix: &RedisServer, tls: &TlsMaster, sentinels: &SentinelSet, key: &str) {
    let set = ["SET", key, "0ther0holder0token0000000000000", "PX", "20000"];
    unix.cmd(&set);
    tls.cmd(&set);
    sentinels.current_master().cmd(&set);
}

/// A master that fails permanently (here, a wrong password) is named on stderr even without
/// -v when the lock is taken anyway: the quorum is one more failure from lost, and only a fix
/// of the configuration brings that master back. The password is not shown.
#[test]
fn a_permanently_failing_master_is_reported_without_verbose() {
    let masters = Masters::start(2);
    let locked = RedisServer::start(ServerOptions::default().args(&["--requirepass", "right"]));
    let wrong = format!("redis://:n0tTheP4ss@127.0.0.1:{}", locked.port());
    let list = format!("{},{},{wrong}", masters[0].url(), masters[1].url());
    // Held elsewhere for a moment: the first attempt is refused, and by the attempt that
    // wins, the wrong password is known (on a first attempt the two fast masters can decide
    // before the third master's connection has failed: it then had "no answer before the
    // verdict", which is all that was known).
    let r = name("permanent");
    hold_elsewhere(&masters, &r, 400);
    redlock_bare()
        .env("REDLOCK_SERVERS", &list)
        .args(["--node-timeout", RELAXED_NODE_TIMEOUT])
        .args(["exec", "-w", "10s", &r, "-c", "true"])
        .assert()
        .code(0)
        .stderr(predicate::str::contains(
            "does not count toward the quorum until fixed",
        ))
        .stderr(predicate::str::contains("authentication failed"))
        .stderr(predicate::str::contains("n0tTheP4ss").not());
}
