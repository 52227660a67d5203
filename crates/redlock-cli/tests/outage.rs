//! Waiting through a loss of quorum: `exec -w DUR` keeps trying while a majority of masters
//! is unreachable and runs the command once they are back within the budget; it exits 69
//! when the budget is spent while they are still unreachable, and at once when the cause is
//! permanent (wrong credentials). Real `redis-server` masters, stopped with SIGSTOP or killed
//! and restarted on the same port.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::fs;
use std::process::Stdio;
use std::thread;
use std::time::{Duration, Instant};

use support::{Masters, RedisServer, ServerOptions, name, redlock_bare, redlock_std_with};

/// Per-master budget: a stopped master costs this much per attempt.
const NODE_TIMEOUT: &str = "300ms";

/// How long the majority stays unreachable.
const OUTAGE: Duration = Duration::from_millis(1_500);

/// Starts `redlock exec -w 20s --ttl 5s RESOURCE -- sh -c 'echo ran > FILE'` against
/// `masters`; returns the child and the marker file.
fn exec_waiting(
    masters: &Masters,
    resource: &str,
    dir: &tempfile::TempDir,
) -> (std::process::Child, std::path::PathBuf) {
    let marker = dir.path().join("ran");
    let child = redlock_std_with(masters, NODE_TIMEOUT)
        .args(["exec", "-w", "20s", "--ttl", "5s", "--json", resource, "-c"])
        .arg(format!("echo ran > '{}'", marker.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    (child, marker)
}

/// The last line of `stderr`, parsed as JSON.
fn last_json_line(stderr: &[u8]) -> serde_json::Value {
    let text = String::from_utf8_lossy(stderr);
    let line = text.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// Waits for `child` up to `limit` and returns its output; kills it and panics when it does
/// not exit.
fn finish(child: std::process::Child, limit: Duration) -> std::process::Output {
    let pid = child.id();
    let (done, result) = std::sync::mpsc::channel();
    thread::spawn(move || drop(done.send(child.wait_with_output())));
    match result.recv_timeout(limit) {
        Ok(output) => output.unwrap(),
        Err(_) => {
            drop(
                std::process::Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status(),
            );
            panic!("redlock did not exit within {limit:?}");
        }
    }
}

#[test]
fn a_wait_rides_out_a_majority_stopped_and_continued_within_its_budget() {
    let masters = Masters::start(3);
    let resource = name("outage-paused");
    let dir = tempfile::tempdir().unwrap();
    masters[1].pause();
    masters[2].pause();
    let (child, marker) = exec_waiting(&masters, &resource, &dir);
    thread::sleep(OUTAGE);
    assert!(
        !marker.exists(),
        "the command ran without a quorum of masters"
    );
    masters[1].resume();
    masters[2].resume();
    let out = finish(child, Duration::from_secs(25));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(fs::read_to_string(&marker).unwrap().trim(), "ran");
    let report = last_json_line(&out.stderr);
    assert_eq!(report["outcome"], "ran");
    assert!(
        report["wait_ms"].as_u64().unwrap() >= 1_000,
        "it waited through the outage: {report}"
    );
}

#[test]
fn a_wait_rides_out_a_majority_killed_and_restarted_within_its_budget() {
    let mut masters = Masters::start(3);
    let resource = name("outage-restarted");
    let dir = tempfile::tempdir().unwrap();
    masters[0].kill();
    masters[1].kill();
    let (child, marker) = exec_waiting(&masters, &resource, &dir);
    thread::sleep(OUTAGE);
    assert!(
        !marker.exists(),
        "the command ran without a quorum of masters"
    );
    masters[0].restart();
    masters[1].restart();
    let out = finish(child, Duration::from_secs(25));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(fs::read_to_string(&marker).unwrap().trim(), "ran");
    assert_eq!(last_json_line(&out.stderr)["outcome"], "ran");
}

#[test]
fn a_budget_spent_while_the_quorum_is_unreachable_exits_69() {
    let masters = Masters::start(3);
    let resource = name("outage-spent");
    masters[0].pause();
    masters[1].pause();
    let started = Instant::now();
    let out = redlock_bare()
        .args(["--node-timeout", NODE_TIMEOUT])
        .args(["-s", &masters.urls().join(",")])
        .args(["exec", "-w", "2s", "--json", &resource, "--", "true"])
        .timeout(Duration::from_secs(20))
        .output()
        .unwrap();
    let took = started.elapsed();
    masters[0].resume();
    masters[1].resume();
    assert_eq!(
        out.status.code(),
        Some(69),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        took >= Duration::from_secs(2),
        "it kept trying for the whole budget: {took:?}"
    );
    let report = last_json_line(&out.stderr);
    assert_eq!(report["outcome"], "unavailable", "{report}");
    assert!(
        !masters.iter().any(|m| m.exists(resource.as_bytes())),
        "no key left behind"
    );
}

#[test]
fn a_permanent_cause_ends_the_wait_without_spending_the_budget() {
    // Every master wants a password that redlock does not give: waiting cannot cure it.
    let masters = Masters(
        (0..3)
            .map(|_| RedisServer::start(ServerOptions::default().args(&["--requirepass", "right"])))
            .collect(),
    );
    let resource = name("outage-permanent");
    let servers: Vec<String> = masters
        .iter()
        .map(|m| format!("redis://:n0t-the-pass@127.0.0.1:{}", m.port()))
        .collect();
    let started = Instant::now();
    let out = redlock_bare()
        .args(["--node-timeout", NODE_TIMEOUT])
        .args(["-s", &servers.join(",")])
        .args(["exec", "-w", "20s", "--json", &resource, "--", "true"])
        .timeout(Duration::from_secs(25))
        .output()
        .unwrap();
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(69), "{stderr}");
    assert!(
        took < Duration::from_secs(10),
        "a wrong password ended the 20 s wait at once, not after {took:?}"
    );
    assert!(
        !stderr.contains("n0t-the-pass"),
        "no password shown: {stderr}"
    );
    assert_eq!(last_json_line(&out.stderr)["outcome"], "unavailable");
}
