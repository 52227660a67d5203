//! The README's least-privilege ACL user ("Supported servers") is enough for every feature:
//! the rules are read from the README itself, set on three real masters, and every operation
//! runs as that user — then no master may have logged a denied command, key or channel
//! (`ACL LOG`), since the library falls back quietly where a permission is missing.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::as_conversions,
    clippy::print_stdout,
    clippy::print_stderr,
    unreachable_pub
)]

mod support;

use std::time::Duration;

use redis::Value;
use support::checks::{RELAXED, settle, watchdog};
use support::servers::Masters;
use tokio::time::Instant;
use tokio_redlock::{KeyState, LockManager, LockState};

const README: &str = include_str!("../../../README.md");

/// The README's `user locker on >… ~* …` line, as `ACL SETUSER` arguments, and its password.
fn readme_acl_user() -> (Vec<&'static str>, &'static str) {
    let line = README
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("user locker "))
        .expect("the README has a `user locker …` ACL line");
    let rules: Vec<&str> = line.split_whitespace().skip(1).collect();
    let password = rules
        .iter()
        .find_map(|r| r.strip_prefix('>'))
        .expect("the ACL line sets a password");
    (rules, password)
}

fn acl_log(master: &support::servers::RedisServer) -> Vec<Value> {
    match master.cmd(&["ACL", "LOG"]) {
        Value::Array(entries) => entries,
        other => panic!("unexpected ACL LOG reply {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_least_privilege_user_can_do_everything() {
    let masters = Masters::start(3);
    let (rules, password) = readme_acl_user();
    let mut setuser = vec!["ACL", "SETUSER"];
    setuser.extend(rules.iter().copied());
    for master in masters.iter() {
        master.cmd(&setuser);
        master.cmd(&["ACL", "LOG", "RESET"]);
    }
    let urls: Vec<String> = masters
        .iter()
        .map(|m| format!("redis://locker:{password}@127.0.0.1:{}", m.port()))
        .collect();
    let build = || {
        LockManager::builder()
            .servers(urls.iter().cloned())
            .node_timeout(RELAXED)
            // A waiter that polled would sleep 8 s: only a notification wakes it sooner.
            .retry_delay(Duration::from_secs(8))
            .retry_jitter(Duration::ZERO)
            .fencing(true)
            .build()
            .unwrap()
    };
    let a = build();
    let b = build();

    // Several resources, a semaphore permit, readers and a writer.
    let mut set = watchdog("lock_all", a.lock_all(["acl:m1", "acl:m2"]))
        .await
        .unwrap();
    watchdog("extend set", a.extend(&mut set, Duration::from_secs(20)))
        .await
        .unwrap();
    watchdog("unlock set", a.unlock(&mut set)).await.unwrap();
    let mut permit = watchdog("permit", a.semaphore("acl:s", 2).lock())
        .await
        .unwrap();
    watchdog(
        "extend permit",
        a.extend(&mut permit, Duration::from_secs(20)),
    )
    .await
    .unwrap();
    watchdog("unlock permit", a.unlock(&mut permit))
        .await
        .unwrap();
    let mut reader = watchdog("read", a.read_lock("acl:rw")).await.unwrap();
    let shared = watchdog("is_locked shared", b.is_locked("acl:rw"))
        .await
        .unwrap();
    assert!(shared.is_shared(), "{shared:?}");
    watchdog(
        "extend reader",
        a.extend(&mut reader, Duration::from_secs(20)),
    )
    .await
    .unwrap();
    watchdog("unlock reader", a.unlock(&mut reader))
        .await
        .unwrap();
    let mut writer = watchdog("write", a.write_lock("acl:rw")).await.unwrap();
    watchdog("unlock writer", a.unlock(&mut writer))
        .await
        .unwrap();

    // Acquire (with a fencing token), query, inspect, extend, release.
    let mut lock = watchdog("lock", a.lock("acl:r")).await.unwrap();
    assert!(lock.fencing_token().is_some());
    let state = watchdog("is_locked", b.is_locked("acl:r")).await.unwrap();
    assert!(matches!(state, LockState::Held { .. }), "{state:?}");
    // Granted at a quorum: the last master's key lands with the stragglers.
    settle(&a).await;
    for m in watchdog("inspect", b.inspect("acl:r")).await.unwrap() {
        assert!(matches!(m.state, KeyState::Held { .. }), "{m:?}");
    }
    watchdog("extend", a.extend(&mut lock, Duration::from_secs(20)))
        .await
        .unwrap();
    let conflict = watchdog("try_lock", b.try_lock("acl:r")).await.unwrap_err();
    assert!(conflict.is_conflict(), "{conflict}");

    // A waiter woken by the release notification (publish and subscribe on the channel):
    // polling, it would sleep the 8 s retry delay (the TTL is 20 s).
    let releaser = {
        let a = a.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            a.unlock(&mut lock).await
        })
    };
    let started = Instant::now();
    let mut waited = watchdog("wait", b.lock("acl:r").wait(Duration::from_secs(10)))
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the release notification woke the waiter: {:?}",
        started.elapsed()
    );
    releaser.await.unwrap().unwrap();
    watchdog("unlock", b.unlock(&mut waited)).await.unwrap();

    // An empty script cache: the scripts are loaded again (or sent whole).
    for master in masters.iter() {
        master.flush_scripts();
    }
    let mut again = watchdog("lock", a.lock("acl:r")).await.unwrap();
    watchdog("unlock", a.unlock(&mut again)).await.unwrap();
    // An auto-extending guard.
    let guard = watchdog(
        "acquire",
        a.acquire("acl:g")
            .ttl(Duration::from_millis(600))
            .auto_extend(),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(guard.is_valid());
    watchdog("release", guard.release()).await.unwrap();

    // A holder record (as `redlock exec` stores one): written at acquisition, rewritten by
    // extensions, read by `inspect`, deleted at release. Its script reads the key's
    // `PEXPIRETIME`, which the line must allow (a denial is logged in `ACL LOG`).
    let mut recorded = watchdog(
        "lock with a holder record",
        a.lock("acl:h")
            .holder_info(tokio_redlock::HolderInfo::new("host", "job")),
    )
    .await
    .unwrap();
    watchdog("extend", a.extend(&mut recorded, Duration::from_secs(20)))
        .await
        .unwrap();
    let shown = watchdog("inspect", b.inspect("acl:h")).await.unwrap();
    assert!(
        shown.iter().any(|m| m.holder_info.is_some()),
        "the record is shown: {shown:?}"
    );
    watchdog("unlock", a.unlock(&mut recorded)).await.unwrap();

    a.close().await;
    b.close().await;
    for master in masters.iter() {
        let log = acl_log(master);
        assert!(
            log.is_empty(),
            "{}: the README's ACL user was denied something: {log:#?}",
            master.url()
        );
    }
}
