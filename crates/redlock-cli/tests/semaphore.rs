//! `redlock exec --permits K`: a counting semaphore between CLI processes. Three processes
//! contend for 2 permits: never more than 2 run at once (judged from the timestamps they
//! write), 2 do run together, and the third runs when a permit is released. A user giving
//! another K is refused while permits are held. Real `redis-server` masters.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::time::Duration;

use predicates::prelude::*;
use support::{
    Masters, events, file_exists, finish, interval, max_overlap, name, recorded, redlock,
    spawn_exec, started_at_least, wait_for_events,
};

const LIMIT: Duration = Duration::from_secs(40);

#[test]
fn two_permits_admit_two_of_three_contending_processes_at_once() {
    let masters = Masters::start(3);
    let s = name("sem-two");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    // Each holder stays until two have started (capped at 20 s), then a little more, so
    // that two holders overlap whenever the semaphore admits two.
    let until = format!("{}; sleep 0.2", started_at_least(&log, 2));
    let children: Vec<_> = ["p1", "p2", "p3"]
        .iter()
        .map(|tag| {
            let script = format!(
                "[ \"$REDLOCK_PERMITS\" = 2 ] || exit 9; {}",
                recorded(&log, tag, &until)
            );
            spawn_exec(
                &masters,
                &["--permits", "2", "-w", "30s", "--ttl", "3s"],
                &s,
                &script,
            )
        })
        .collect();
    for child in children {
        let (code, err) = finish(child, LIMIT);
        assert_eq!(code, Some(0), "{err}");
    }
    let ev = events(&log);
    assert_eq!(ev.iter().filter(|e| e.start).count(), 3, "{ev:?}");
    assert_eq!(
        max_overlap(&ev),
        2,
        "more than 2, or never 2, at once: {ev:?}"
    );
    // The last to start began after some holder ended (it waited for a permit).
    let mut starts: Vec<(u128, &str)> = ["p1", "p2", "p3"]
        .iter()
        .map(|t| (interval(&ev, t).0, *t))
        .collect();
    starts.sort_unstable();
    let last = starts[2].0;
    assert!(
        ["p1", "p2", "p3"]
            .iter()
            .any(|t| interval(&ev, t).1 <= last),
        "{ev:?}"
    );
    // Every slot was given back.
    for m in masters.iter() {
        let left: Vec<String> = m
            .keys()
            .iter()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .filter(|k| k.contains(&s) && k.contains(":permit:"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }
}

#[test]
fn a_full_semaphore_refuses_nonblocking_and_another_k_is_refused() {
    let masters = Masters::start(3);
    let s = name("sem-full");
    let dir = tempfile::tempdir().unwrap();
    let (log, go) = (dir.path().join("log"), dir.path().join("go"));
    let holder = spawn_exec(
        &masters,
        &["--permits", "1"],
        &s,
        &recorded(&log, "h", &file_exists(&go)),
    );
    wait_for_events(&log, "start", 1, LIMIT);
    redlock(&masters)
        .args(["exec", "-n", "--permits", "1", &s, "--", "true"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("every permit is taken"));
    redlock(&masters)
        .args(["exec", "-n", "--json", "--permits", "3", &s, "--", "true"])
        .assert()
        .code(65)
        .stderr(predicate::str::contains("same --permits"))
        .stderr(predicate::str::contains("\"outcome\":\"permits_mismatch\""));
    // A plain lock on the name is no permit: the semaphore's name is not a lock.
    redlock(&masters)
        .args(["exec", "-n", &s, "--", "true"])
        .assert()
        .code(0);
    std::fs::write(&go, "").unwrap();
    let (code, err) = finish(holder, LIMIT);
    assert_eq!(code, Some(0), "{err}");
}
