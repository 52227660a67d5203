//! `redlock status` (text and `--json`) for the read-write lock and the semaphore: the
//! count of `--shared` holders, an `-x` holder waiting for them, and a semaphore's permits
//! (taken of total, with their holders); `release --force` leaves readers and permits alone
//! and says so. Real `redis-server` masters.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::time::Duration;

use predicates::prelude::*;
use support::{Masters, file_exists, finish, name, recorded, redlock, spawn_exec, wait_for_events};

const LIMIT: Duration = Duration::from_secs(30);

fn status(masters: &Masters, resource: &str) -> (Option<i32>, String) {
    let out = redlock(masters)
        .args(["status", resource])
        .output()
        .unwrap();
    (out.status.code(), String::from_utf8(out.stdout).unwrap())
}

fn status_json(masters: &Masters, resource: &str) -> serde_json::Value {
    let out = redlock(masters)
        .args(["status", "--json", resource])
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    doc["resources"][0].clone()
}

#[test]
fn status_shows_the_readers_and_a_waiting_writer() {
    let masters = Masters::start(3);
    let r = name("status-rw");
    let dir = tempfile::tempdir().unwrap();
    let (log, go) = (dir.path().join("log"), dir.path().join("go"));
    let hold = file_exists(&go);
    let readers: Vec<_> = ["r1", "r2"]
        .iter()
        .map(|t| {
            spawn_exec(
                &masters,
                &["--shared", "--ttl", "5s"],
                &r,
                &recorded(&log, t, &hold),
            )
        })
        .collect();
    wait_for_events(&log, "start", 2, LIMIT);

    let (code, text) = status(&masters, &r);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("shared by 2 reader(s) for"), "{text}");
    assert!(!text.contains("waits"), "{text}");
    let json = status_json(&masters, &r);
    assert_eq!(json["state"], "shared", "{json}");
    assert_eq!(json["readers"], 2, "{json}");
    assert_eq!(json["writer_waiting"], false, "{json}");
    assert!(json["remaining_ms"].as_u64().unwrap() > 0, "{json}");
    assert_eq!(json["masters"][0]["readers"], 2, "{json}");

    // A writer waiting behind them shows, in both forms.
    let writer = spawn_exec(&masters, &["-x", "-w", "25s"], &r, "true");
    let mut shown = String::new();
    for _ in 0..100 {
        let (_, text) = status(&masters, &r);
        if text.contains("an exclusive holder waits for it") {
            shown = text;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        shown.contains("shared by 2 reader(s)"),
        "no waiting writer shown: {shown}"
    );
    assert!(shown.contains("; an exclusive holder waits"), "{shown}");
    let mut json = serde_json::Value::Null;
    for _ in 0..100 {
        json = status_json(&masters, &r);
        if json["writer_waiting"] == true {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(json["writer_waiting"], true, "{json}");

    // release --force leaves readers alone, and says so.
    redlock(&masters)
        .args(["release", "--force", "--yes", &r])
        .assert()
        .code(65)
        .stdout(predicate::str::contains(
            "shared by 2 reader(s): left alone",
        ));
    assert!(
        masters
            .iter()
            .all(|m| m.get(r.as_bytes()).as_deref() == Some(&b"redlock:shared"[..]))
    );

    std::fs::write(&go, "").unwrap();
    for child in readers.into_iter().chain([writer]) {
        let (code, err) = finish(child, LIMIT);
        assert_eq!(code, Some(0), "{err}");
    }
    let (code, text) = status(&masters, &r);
    assert_eq!(code, Some(1), "{text}");
}

#[test]
fn status_shows_the_permits_taken_and_their_holders() {
    let masters = Masters::start(3);
    let s = name("status-sem");
    let dir = tempfile::tempdir().unwrap();
    let (log, go) = (dir.path().join("log"), dir.path().join("go"));
    let hold = file_exists(&go);
    let holders: Vec<_> = ["p1", "p2"]
        .iter()
        .map(|t| {
            spawn_exec(
                &masters,
                &["--permits", "3", "--ttl", "5s"],
                &s,
                &recorded(&log, t, &hold),
            )
        })
        .collect();
    wait_for_events(&log, "start", 2, LIMIT);

    // The name's own key is free, but permits are held: status counts that as held.
    let (code, text) = status(&masters, &s);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("no lock, but 2 of its semaphore's permits taken")
            && text.contains("semaphore: 2 of 3 permits taken (2 of 3 masters needed)"),
        "{text}"
    );
    assert_eq!(text.matches("    permit ").count(), 2, "{text}");
    assert!(text.contains("permits 3, 2 held: slot "), "{text}");
    let json = status_json(&masters, &s);
    assert_eq!(json["state"], "free", "{json}");
    let permits = &json["permits"];
    assert_eq!(permits["total"], 3, "{json}");
    assert_eq!(permits["taken"], 2, "{json}");
    assert_eq!(permits["holders"].as_array().unwrap().len(), 2, "{json}");
    assert!(
        permits["holders"][0]["remaining_ms"].as_u64().unwrap() > 0,
        "{json}"
    );
    assert_eq!(
        permits["holders"][0]["token_prefix"]
            .as_str()
            .unwrap()
            .len(),
        8,
        "{json}"
    );
    assert_eq!(permits["masters"].as_array().unwrap().len(), 3, "{json}");
    assert_eq!(permits["masters"][0]["permits"], 3, "{json}");

    // release --force does not clear permits, and says so.
    redlock(&masters)
        .args(["release", "--force", "--yes", &s])
        .assert()
        .code(65)
        .stderr(predicate::str::contains("does not clear permits"));

    std::fs::write(&go, "").unwrap();
    for child in holders {
        let (code, err) = finish(child, LIMIT);
        assert_eq!(code, Some(0), "{err}");
    }
    let json = status_json(&masters, &s);
    // The permits record outlives the permits by at most their TTL; no permit is taken.
    assert!(
        json["permits"].is_null() || json["permits"]["taken"] == 0,
        "{json}"
    );
}
