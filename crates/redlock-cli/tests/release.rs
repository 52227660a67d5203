//! `redlock release --force`: an operator clears a stuck lock. Without `--yes` nothing is
//! deleted; with it, each master's lock value is deleted and reported, waiters are woken, a
//! value that is not a lock and the fencing counter are left alone. Real `redis-server`
//! masters.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use predicates::prelude::*;
use support::{Masters, hold_elsewhere, name, redlock, redlock_std, wait_timeout};

#[test]
fn force_release_needs_yes_and_then_removes_the_lock_on_every_master() {
    let masters = Masters::start(3);
    let r = name("stuck");
    hold_elsewhere(&masters, &r, 60_000);
    // A fencing counter beside it must survive.
    masters[0].cmd(&["SET", &format!("{{{r}}}:fence"), "41"]);
    // `release` without --force is refused.
    redlock(&masters)
        .args(["release", &r])
        .assert()
        .code(64)
        .stderr(predicate::str::contains("--force"));
    // Without --yes: shows what it would remove, deletes nothing.
    redlock(&masters)
        .args(["release", "--force", &r])
        .assert()
        .code(64)
        .stdout(predicate::str::contains(
            "would remove the lock of 0ther0ho…",
        ))
        .stderr(predicate::str::contains("add --yes"));
    assert!(masters.iter().all(|m| m.exists(r.as_bytes())));

    // A waiter wakes when the lock is cleared, long before the 60 s TTL.
    let mut waiter = redlock_std(&masters)
        .args(["exec", "-w", "30s", &r, "--", "true"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let cleared = Instant::now();
    let out = redlock(&masters)
        .args(["release", "--force", "--yes", &r])
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    for url in masters.urls() {
        assert!(
            text.contains(&format!("{url}: removed the lock of 0ther0ho… (PTTL")),
            "{text}"
        );
    }
    assert!(
        !text.contains("0ther0holder0token"),
        "no whole token: {text}"
    );
    assert!(wait_timeout(&mut waiter, Duration::from_secs(10)).success());
    assert!(cleared.elapsed() < Duration::from_secs(5));
    assert!(masters.iter().all(|m| !m.exists(r.as_bytes())));
    assert_eq!(
        masters[0].get(format!("{{{r}}}:fence").as_bytes()),
        Some(b"41".to_vec())
    );
}

#[test]
fn force_release_reports_each_master_and_leaves_non_locks_alone() {
    let masters = Masters::start(3);
    let r = name("mixed");
    masters[0].cmd(&["SET", &r, "aaaaaaaaaaaa", "PX", "60000"]);
    masters[1].cmd(&["HSET", &r, "f", "v"]);
    let out = redlock(&masters)
        .args(["release", "--force", "--yes", "--json", &r])
        .assert()
        .code(65)
        .get_output()
        .stdout
        .clone();
    let doc: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(doc["deleted"], true);
    let actions: Vec<&str> = doc["masters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["removed", "not_a_lock", "absent"]);
    assert!(!masters[0].exists(r.as_bytes()));
    assert!(masters[1].exists(r.as_bytes()), "the hash is left alone");

    // A master that is down: reported, and the exit code says so.
    let mut masters = masters;
    masters[1].cmd(&["DEL", &r]);
    hold_elsewhere(&masters, &r, 60_000);
    masters[2].kill();
    let mut cmd = support::redlock_bare();
    for url in masters.urls() {
        cmd.arg("-s").arg(url);
    }
    cmd.args(["--node-timeout", "200ms", "release", "--force", "--yes", &r])
        .assert()
        .code(69)
        .stdout(predicate::str::contains("removed the lock"))
        .stdout(predicate::str::contains("not changed"));
}

#[test]
fn force_release_refuses_a_fencing_counter_or_a_holder_record() {
    // `{r}:fence` is the fencing counter of `r`: deleted as if it were a lock, the next
    // fenced acquisition of `r` restarted at 1 and fencing tokens went backwards.
    let masters = Masters::start(3);
    let r = name("reserved");
    redlock(&masters)
        .args(["exec", "--fencing", &r, "--", "true"])
        .assert()
        .code(0);
    let counter = format!("{{{r}}}:fence");
    let record = format!("{{{r}}}:holder");
    for m in masters.iter() {
        m.cmd(&[
            "SET",
            &record,
            "token=t\nhost=h\npid=1\nsince_ms=1\ncommand=c\n",
            "PX",
            "60000",
        ]);
    }
    for reserved in [&counter, &record] {
        redlock(&masters)
            .args(["release", "--force", "--yes", reserved])
            .assert()
            .code(64)
            .stderr(predicate::str::contains("no forced release"))
            .stderr(predicate::str::contains("reserved"));
    }
    for m in masters.iter() {
        assert!(m.exists(counter.as_bytes()), "the counter is left alone");
        assert!(m.exists(record.as_bytes()), "the record is left alone");
    }
}

#[test]
fn json_setup_errors_still_print_json_on_stdout() {
    // A script that reads `--json` from stdout gets JSON even when nothing was asked of the
    // masters: a bad server list, a reserved name.
    let check = |out: &std::process::Output| {
        assert_eq!(out.status.code(), Some(64), "{out:?}");
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {out:?}"));
        assert_eq!(doc["exit_code"], 64, "{doc}");
        assert!(
            doc["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{doc}"
        );
    };
    let bad_server = support::redlock_bare()
        .args(["-s", "not a url", "status", "--json", "r"])
        .output()
        .unwrap();
    check(&bad_server);
    let bad_server = support::redlock_bare()
        .args([
            "-s",
            "not a url",
            "release",
            "--force",
            "--yes",
            "--json",
            "r",
        ])
        .output()
        .unwrap();
    check(&bad_server);
    let masters = Masters::start(1);
    let reserved = redlock(&masters)
        .args(["release", "--force", "--yes", "--json", "{r}:fence"])
        .output()
        .unwrap();
    check(&reserved);
    assert!(
        String::from_utf8_lossy(&reserved.stdout).contains("reserved"),
        "{reserved:?}"
    );
}

/// A lock cleared by an operator while its command runs, before any extension noticed:
/// the release at the end finds the keys gone on every master, so the command did not run
/// under the lock the whole time. That is a loss (exit 75, `"outcome":"lost"` in the JSON
/// report), never the command's own status 0.
#[test]
fn a_lock_cleared_while_its_command_ran_is_reported_lost_at_the_release() {
    let masters = Masters::start(3);
    let r = name("cleared");
    let dir = tempfile::tempdir().unwrap();
    let started = dir.path().join("started");
    // The default TTL (30 s) plans the first extension after 10 s: the command ends before.
    let mut run = redlock_std(&masters)
        .args(["exec", "--json", &r, "--", "sh", "-c"])
        .arg(format!("touch '{}'; sleep 2", started.display()))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let until = Instant::now() + Duration::from_secs(10);
    while !started.exists() {
        assert!(Instant::now() < until, "the command did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    redlock(&masters)
        .args(["release", "--force", "--yes", &r])
        .assert()
        .code(0);
    let status = wait_timeout(&mut run, Duration::from_secs(15));
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut run.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(75), "{stderr}");
    assert!(stderr.contains("no longer held when released"), "{stderr}");
    let json = stderr.lines().last().unwrap();
    assert!(json.contains(r#""outcome":"lost""#), "{json}");
    assert!(json.contains(r#""exit_code":75"#), "{json}");
    assert!(json.contains(r#""command_exit_code":0"#), "{json}");
    assert!(masters.iter().all(|m| !m.exists(r.as_bytes())));
}
