//! `redlock exec RESOURCE --also OTHER…`: several resources, all or nothing, against a lock
//! the library holds on one of them: refused with `-n` leaving no key behind; with `-w` it
//! waits, runs once the library's lock is released, and then excludes plain, shared and
//! library locks on each of its resources. Real `redis-server` masters.
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
    Masters, events, file_exists, finish, name, recorded, redlock, spawn_exec, wait_for_events,
};
use tokio_redlock::LockManager;

const LIMIT: Duration = Duration::from_secs(30);

#[test]
fn several_resources_are_all_or_nothing_against_a_library_lock_on_one() {
    let masters = Masters::start(3);
    let (a, b) = (name("multi-a"), name("multi-b"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let manager = LockManager::builder()
        .servers(masters.urls())
        .ttl(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut held = rt.block_on(manager.lock(&b).into_future()).unwrap();

    // Nonblocking: refused, and nothing of the attempt is left on `a`.
    redlock(&masters)
        .args(["exec", "-n", &a, "--also", &b, "--", "true"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "one of them is held by another holder",
        ));
    assert!(masters.iter().all(|m| !m.exists(a.as_bytes())));
    assert!(masters.iter().all(|m| m.holds(b.as_bytes(), held.token())));

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

    // One token on both keys, on every master.
    for m in masters.iter() {
        let (va, vb) = (m.get(a.as_bytes()), m.get(b.as_bytes()));
        assert!(va.is_some() && va == vb, "{va:?} {vb:?}");
    }
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
