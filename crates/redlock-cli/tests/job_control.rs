//! Job control in a pseudo-terminal, driven through a real interactive bash: Ctrl-Z stops the
//! command and gives the shell its terminal back, `fg` and `bg` resume, Ctrl-C reaches the
//! command, and a command whose lock ran out while it was stopped is killed, never resumed.
//! Real `redis-server` masters.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod support;

use std::thread;
use std::time::{Duration, Instant};

use rexpect::session::{PtyReplSession, spawn_bash};
use support::{BIN, Masters, held_anywhere, name};

/// An interactive bash in a pseudo-terminal, with redlock's variables set for `masters`.
fn shell(masters: &Masters) -> PtyReplSession {
    let mut sh = spawn_bash(Some(20_000)).unwrap();
    sh.send_line(&format!(
        "export REDLOCK_SERVERS='{}' REDLOCK_NODE_TIMEOUT=1s; unset REDLOCK_TTL REDLOCK_WAIT",
        masters.urls().join(",")
    ))
    .unwrap();
    sh.wait_for_prompt().unwrap();
    sh
}

/// Ends the shell (an interactive bash ignores the SIGTERM the session's drop would send).
fn exit_shell(mut sh: PtyReplSession) {
    sh.send_line("exit").unwrap();
    sh.exp_eof().unwrap();
}

/// The exit status of the last foreground job, as the shell says it.
fn last_status(sh: &mut PtyReplSession) -> String {
    sh.send_line("echo \"rc=$?\"").unwrap();
    let (_, rc) = sh.exp_regex(r"rc=\d+").unwrap();
    sh.wait_for_prompt().unwrap();
    rc
}

/// Waits until the lock on `resource` is on some master.
fn wait_held(masters: &Masters, resource: &str) {
    let start = Instant::now();
    while !held_anywhere(masters, resource) {
        assert!(start.elapsed() < Duration::from_secs(10), "never locked");
        thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn ctrl_z_gives_the_shell_its_terminal_back_and_fg_resumes_the_command() {
    let masters = Masters::start(3);
    let r = name("ctrl-z");
    let mut sh = shell(&masters);
    sh.send_line(&format!(
        "'{BIN}' exec --ttl 10s {r} -- bash -c 'sleep 1; echo first-half; read line; echo \"got $line\"'"
    ))
    .unwrap();
    sh.exp_string("first-half").unwrap();
    sh.send_control('z').unwrap();
    // The shell reports the job stopped and prompts again: the terminal is the shell's.
    sh.exp_string("Stopped").unwrap();
    sh.wait_for_prompt().unwrap();
    sh.send_line("echo shell-has-the-terminal").unwrap();
    sh.exp_string("shell-has-the-terminal").unwrap();
    sh.wait_for_prompt().unwrap();
    assert!(held_anywhere(&masters, &r), "still locked while stopped");
    // `fg` resumes the command in the foreground: it reads the terminal.
    sh.send_line("fg").unwrap();
    thread::sleep(Duration::from_millis(300));
    sh.send_line("hello").unwrap();
    sh.exp_string("got hello").unwrap();
    sh.wait_for_prompt().unwrap();
    assert_eq!(last_status(&mut sh), "rc=0");
    assert!(!held_anywhere(&masters, &r), "released");
    exit_shell(sh);
}

#[test]
fn a_command_stopped_past_its_lock_is_killed_at_fg_not_resumed() {
    let masters = Masters::start(3);
    let r = name("stopped-lost");
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("after");
    let mut sh = shell(&masters);
    sh.send_line(&format!(
        "'{BIN}' exec --ttl 1s --node-timeout 200ms {r} -- bash -c 'echo running; sleep 3; touch {}'",
        marker.display()
    ))
    .unwrap();
    sh.exp_string("running").unwrap();
    wait_held(&masters, &r);
    sh.send_control('z').unwrap();
    sh.exp_string("Stopped").unwrap();
    sh.wait_for_prompt().unwrap();
    // Stopped, redlock cannot extend: the lock runs out and someone else may take it.
    thread::sleep(Duration::from_millis(1500));
    assert!(!held_anywhere(&masters, &r), "the keys expired");
    sh.send_line("fg").unwrap();
    sh.exp_string("lost the lock").unwrap();
    sh.wait_for_prompt().unwrap();
    assert_eq!(last_status(&mut sh), "rc=75");
    // The command never ran on: its last step did not happen.
    thread::sleep(Duration::from_millis(3500));
    assert!(
        !marker.exists(),
        "the command ran on after its lock was lost"
    );
    exit_shell(sh);
}

#[test]
fn a_background_command_that_reads_the_terminal_stops_and_fg_lets_it_read() {
    let masters = Masters::start(3);
    let r = name("bg-cat");
    let mut sh = shell(&masters);
    sh.send_line(&format!("'{BIN}' exec --ttl 10s {r} -- cat &"))
        .unwrap();
    sh.wait_for_prompt().unwrap();
    wait_held(&masters, &r);
    // `cat` reads the terminal from the background: stopped (SIGTTIN), and redlock with it.
    sh.send_line("sleep 0.5; jobs").unwrap();
    sh.exp_string("Stopped").unwrap();
    sh.wait_for_prompt().unwrap();
    sh.send_line("fg").unwrap();
    thread::sleep(Duration::from_millis(300));
    sh.send_line("typed-line").unwrap();
    sh.exp_string("typed-line").unwrap();
    sh.send_control('d').unwrap();
    sh.wait_for_prompt().unwrap();
    assert_eq!(last_status(&mut sh), "rc=0");
    assert!(!held_anywhere(&masters, &r), "released");
    exit_shell(sh);
}

#[test]
fn bg_resumes_a_stopped_job_in_the_background_and_ctrl_c_reaches_the_command() {
    let masters = Masters::start(3);
    let r = name("bg");
    let dir = tempfile::tempdir().unwrap();
    let done = dir.path().join("done");
    let mut sh = shell(&masters);
    sh.send_line(&format!(
        "'{BIN}' exec --ttl 10s {r} -- bash -c 'echo started; sleep 1; touch {}'",
        done.display()
    ))
    .unwrap();
    sh.exp_string("started").unwrap();
    sh.send_control('z').unwrap();
    sh.exp_string("Stopped").unwrap();
    sh.wait_for_prompt().unwrap();
    sh.send_line("bg").unwrap();
    sh.wait_for_prompt().unwrap();
    sh.send_line("wait; echo \"waited rc=$?\"").unwrap();
    sh.exp_string("waited rc=0").unwrap();
    sh.wait_for_prompt().unwrap();
    assert!(done.exists(), "the command finished in the background");
    assert!(!held_anywhere(&masters, &r), "released");

    // Ctrl-C in the foreground ends the command (and redlock with its status).
    sh.send_line(&format!(
        "'{BIN}' exec {r} -- bash -c 'echo waiting; sleep 30'"
    ))
    .unwrap();
    sh.exp_string("waiting").unwrap();
    sh.send_control('c').unwrap();
    sh.wait_for_prompt().unwrap();
    assert_eq!(last_status(&mut sh), "rc=130");
    assert!(!held_anywhere(&masters, &r), "released");
    exit_shell(sh);
}
