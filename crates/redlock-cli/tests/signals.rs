//! Signals to `redlock exec` while its command runs: every signal it can catch reaches the
//! command, and a redlock killed by SIGKILL takes the command with it, before anyone else can
//! take the lock. Real `redis-server` masters.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::as_conversions
)]

mod support;

use std::fs;
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use support::{
    Masters, held_anywhere, name, process_runs, redlock, redlock_std, wait_for_line, wait_gone,
    wait_timeout,
};

/// The command: records its pid, traps every signal under test (recording which it got),
/// and sleeps in the foreground of its shell.
const TRAPPING: &str = r#"
for s in QUIT ALRM USR1 USR2 TERM INT HUP; do trap "echo got-$s >> \"\$F\"; kill \$!; exit 0" $s; done
echo "pid $$" >> "$F"
sleep 20 & wait
"#;

#[test]
fn every_catchable_signal_reaches_the_command_and_ends_redlock_with_128_plus_n() {
    let masters = Masters::start(3);
    let dir = tempfile::tempdir().unwrap();
    for signal in [
        Signal::SIGQUIT,
        Signal::SIGALRM,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
    ] {
        let r = name(&format!("sig-{signal}"));
        let log = dir.path().join(format!("log-{signal}"));
        let mut child = redlock_std(&masters)
            .args(["exec", "--ttl", "2s", &r, "--", "bash", "-c", TRAPPING])
            .env("F", &log)
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let text = wait_for_line(&log, "pid ", Duration::from_secs(10));
        let command: i32 = text.trim().strip_prefix("pid ").unwrap().parse().unwrap();
        kill(Pid::from_raw(child.id() as i32), signal).unwrap();
        let status = wait_timeout(&mut child, Duration::from_secs(10));
        let text = fs::read_to_string(&log).unwrap();
        let short = signal.as_str().trim_start_matches("SIG");
        assert!(text.contains(&format!("got-{short}")), "{signal}: {text}");
        assert_eq!(status.code(), Some(128 + signal as i32), "{signal}");
        assert!(
            !process_runs(command),
            "{signal}: the command outlived redlock"
        );
        assert!(
            !held_anywhere(&masters, &r),
            "{signal}: the lock is released"
        );
    }
}

#[test]
fn a_window_size_change_is_forwarded_without_ending_anything() {
    let masters = Masters::start(3);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let r = name("winch");
    let mut child = redlock_std(&masters)
        .args(["exec", &r, "--", "bash", "-c"])
        .arg(r#"trap 'echo got-WINCH >> "$F"' WINCH; echo ready >> "$F"; for i in $(seq 50); do sleep 0.1; done; exit 4"#)
        .env("F", &log)
        .spawn()
        .unwrap();
    wait_for_line(&log, "ready", Duration::from_secs(10));
    kill(Pid::from_raw(child.id() as i32), Signal::SIGWINCH).unwrap();
    wait_for_line(&log, "got-WINCH", Duration::from_secs(5));
    // The command's own status, not 128+28.
    assert_eq!(
        wait_timeout(&mut child, Duration::from_secs(15)).code(),
        Some(4)
    );
}

#[test]
fn sigkill_of_redlock_kills_the_command_before_the_lock_can_be_taken_again() {
    let masters = Masters::start(3);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let r = name("sigkill");
    // The command ignores every signal it can; only SIGKILL ends it.
    let mut child = redlock_std(&masters)
        .args(["exec", "--ttl", "3s", &r, "--", "sh", "-c"])
        .arg(r#"trap '' HUP INT QUIT TERM USR1 USR2 ALRM; echo "pid $$" >> "$F"; exec sleep 30"#)
        .env("F", &log)
        .spawn()
        .unwrap();
    let text = wait_for_line(&log, "pid ", Duration::from_secs(10));
    let command: i32 = text.trim().strip_prefix("pid ").unwrap().parse().unwrap();
    assert!(process_runs(command));
    let killed_at = Instant::now();
    kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).unwrap();
    let status = wait_timeout(&mut child, Duration::from_secs(5));
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );
    // The kernel's parent-death signal: the command is gone at once…
    assert!(
        wait_gone(command, Duration::from_millis(500)),
        "the command outlived a SIGKILLed redlock"
    );
    // …while the lock is still held (3 s TTL): nobody could have taken it yet.
    redlock(&masters)
        .args(["exec", "-n", &r, "--", "true"])
        .assert()
        .code(1);
    assert!(killed_at.elapsed() < Duration::from_secs(3));
    // Once the keys expire, the next holder runs.
    redlock(&masters)
        .args(["exec", "-w", "10s", &r, "--", "true"])
        .assert()
        .code(0);
}
