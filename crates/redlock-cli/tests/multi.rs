//! `redlock exec RESOURCE --also OTHER…`: several resources, all or nothing, against a lock
//! the library holds on one of them: refused with `-n` leaving no key behind; with `-w` it
//! waits, runs once the library's lock is released, and then excludes plain, shared and
//! library locks on each of its resources. With `--fencing`, one fencing token per resource
//! in the command's environment and the JSON report. Real `redis-server` masters.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::future::IntoFuture;
use std::time::Duration;

use predicates::prelude::*;
use support::{
    Masters, events, eventually, file_exists, finish, name, recorded, redlock, spawn_exec,
    wait_for_events,
};
use tokio_redlock::LockManager;

const LIMIT: Duration = Duration::from_secs(30);

#[test]
fn several_resources_are_all_or_nothing_against_a_library_lock_on_one() {
    let masters = Masters::start(3);
    let (a, b) = (name("multi-a"), name("multi-b"));
    // A worker thread drives the manager between calls, as in an application: the request
    // to the master that was not awaited for the quorum lands while the test runs commands.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let manager = LockManager::builder()
        .servers(masters.urls())
        .ttl(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut held = rt.block_on(manager.lock(&b).into_future()).unwrap();
    let token = held.token().to_owned();
    let held_everywhere = || masters.iter().all(|m| m.holds(b.as_bytes(), &token));
    assert!(
        eventually(Duration::from_secs(3), held_everywhere),
        "the library's lock on `b` never reached every master"
    );

    // Nonblocking: refused, and nothing of the attempt is left on `a`.
    redlock(&masters)
        .args(["exec", "-n", &a, "--also", &b, "--", "true"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "one of them is held by another holder",
        ));
    assert!(masters.iter().all(|m| !m.exists(a.as_bytes())));
    assert!(
        held_everywhere(),
        "the refused attempt touched the library's lock"
    );

    // Waiting: it runs once the library lets go of `b`, holding both.
    let dir = tempfile::tempdir().unwrap();
    let (log, go, env) = (
        dir.path().join("log"),
        dir.path().join("go"),
        dir.path().join("env"),
    );
    let script = format!(
        "printf '%s|%s' \"$REDLOCK_RESOURCES\" \"$REDLOCK_LOCK_KIND\" > '{}'; {}",
        env.display(),
        recorded(&log, "m", &file_exists(&go))
    );
    let waiter = spawn_exec(
        &masters,
        &["-w", "20s", "--ttl", "5s", "--also", &b],
        &a,
        &script,
    );
    std::thread::sleep(Duration::from_millis(600));
    assert!(events(&log).is_empty(), "ran while `b` was held elsewhere");
    assert!(
        masters.iter().all(|m| !m.exists(a.as_bytes())),
        "`a` taken alone"
    );
    rt.block_on(manager.unlock(&mut held)).unwrap();
    wait_for_events(&log, "start", 1, LIMIT);

    // All or nothing on each master: both keys with one token, or neither. A quorum holds
    // them; a master may hold neither, when the library's release reached it after the
    // waiter's request did.
    let pairs: Vec<_> = masters
        .iter()
        .map(|m| (m.get(a.as_bytes()), m.get(b.as_bytes())))
        .collect();
    let holders: Vec<_> = pairs.iter().filter_map(|(va, _)| va.as_ref()).collect();
    assert!(pairs.iter().all(|(va, vb)| va == vb), "{pairs:?}");
    assert!(
        holders.len() >= 2 && holders.iter().all(|t| *t == holders[0]),
        "{pairs:?}"
    );
    assert_eq!(
        std::fs::read_to_string(&env).unwrap(),
        format!("{a}\n{b}|multi")
    );
    // Each member is excluded for a plain lock, a shared one, and the library.
    for (resource, kind) in [(&a, None), (&b, Some("--shared")), (&b, None)] {
        redlock(&masters)
            .args(["exec", "-n"])
            .args(kind)
            .args([resource.as_str(), "--", "true"])
            .assert()
            .code(1);
    }
    assert!(rt.block_on(manager.try_lock(&a)).unwrap_err().is_conflict());

    std::fs::write(&go, "").unwrap();
    let (code, err) = finish(waiter, LIMIT);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        masters
            .iter()
            .all(|m| !m.exists(a.as_bytes()) && !m.exists(b.as_bytes()))
    );
    rt.block_on(manager.close());
}

#[test]
fn fencing_tokens_come_one_per_resource_in_the_order_of_the_resources() {
    let masters = Masters::start(3);
    let (a, b) = (name("fence-a"), name("fence-b"));
    // `b`'s counter is ahead: its token must be the larger one, and on the second line.
    for m in masters.iter() {
        m.cmd(&["SET", &format!("{{{b}}}:fence"), "41"]);
    }
    let out = redlock(&masters)
        .args(["exec", "--json", "--fencing", &b, "--also", &a, "-c"])
        .arg(r#"printf '%s|%s|%s' "$REDLOCK_RESOURCES" "$REDLOCK_FENCING_TOKENS" "${REDLOCK_FENCING_TOKEN-unset}""#)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let parts: Vec<&str> = text.split('|').collect();
    assert_eq!(parts[0], format!("{a}\n{b}"), "{text}");
    let tokens: Vec<u64> = parts[1].lines().map(|t| t.parse().unwrap()).collect();
    assert_eq!(tokens.len(), 2, "{text}");
    assert!(tokens[1] > 41 && tokens[0] < tokens[1], "{text}");
    assert_eq!(
        parts[2], "unset",
        "one token per resource, no single one: {text}"
    );
    let stderr = String::from_utf8(out.stderr).unwrap();
    let report: serde_json::Value = serde_json::from_str(stderr.lines().last().unwrap()).unwrap();
    assert_eq!(report["kind"], "multi", "{report}");
    assert_eq!(report["resources"], serde_json::json!([b, a]), "{report}");
    assert_eq!(
        report["fencing_tokens"],
        serde_json::json!(tokens),
        "{report}"
    );
}
