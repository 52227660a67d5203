//! Holder records (`LockRequest::holder_info`, `AcquireRequest::holder_info`): stored beside
//! the lock key while the lock is held and shown by `inspect`, gone after `unlock`, expired
//! with the lock, refreshed by an extension, never shown for another token, and never
//! written by acquisitions that did not opt in. The lock key stays a plain token. Real
//! `redis-server` masters.
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

use std::time::{Duration, SystemTime};

use support::checks::{RELAXED, assert_no_key_without_ttl, manager, settle};
use support::servers::Masters;
use support::{eventually, unique_name};
use tokio_redlock::{HolderInfo, KeyState, LockManager, MasterKey};

/// The holder record key of `resource` (no key prefix, no hash tag).
fn record_key(resource: &str) -> String {
    format!("{{{resource}}}:holder")
}

/// Waits until every master has the key `r` (a lock is granted once a quorum answered; the
/// last master may set its key a moment later).
async fn all_hold(masters: &Masters, r: &str) {
    assert!(
        eventually(Duration::from_secs(5), || masters
            .iter()
            .all(|s| s.exists(r.as_bytes())))
        .await,
        "every master has the key"
    );
}

/// The holder shown on each master.
async fn shown(manager: &LockManager, resource: &str) -> Vec<Option<HolderInfo>> {
    manager
        .inspect(resource)
        .await
        .unwrap()
        .into_iter()
        .map(|m: MasterKey| m.holder_info)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_record_is_shown_while_held_and_gone_after_unlock() {
    let masters = Masters::start(3);
    let m = manager(masters.urls(), RELAXED);
    let r = unique_name("holder-held");
    let before = SystemTime::now() - Duration::from_secs(1);
    let mut lock = m
        .lock(&r)
        .ttl(Duration::from_secs(20))
        .holder_info(HolderInfo::new("host-a", "deploy.sh --prod\nrm -rf /"))
        .await
        .unwrap();
    // Granted once a quorum answered: the last master may set its key a moment later.
    all_hold(&masters, &r).await;
    // The lock key is a plain token, as every Redlock client expects.
    for s in masters.iter() {
        assert_eq!(s.get(r.as_bytes()).unwrap(), lock.token().as_bytes());
        let record = s
            .get(record_key(&r).as_bytes())
            .expect("a record on every master");
        let text = String::from_utf8(record).unwrap();
        assert!(
            text.starts_with(&format!("token={}\n", lock.token())),
            "{text}"
        );
        assert!(
            text.contains("command=deploy.sh --prod%0Arm -rf /\n"),
            "{text}"
        );
        // The record expires at the very millisecond the lock key does.
        assert_eq!(
            s.cmd(&["PEXPIRETIME", &record_key(&r)]),
            s.cmd(&["PEXPIRETIME", &r]),
            "record and key expire together"
        );
        assert!(s.pttl(record_key(&r).as_bytes()) > 0);
    }
    for info in shown(&m, &r).await {
        let info = info.expect("shown on every master");
        assert_eq!(info.host(), "host-a");
        assert_eq!(info.pid(), std::process::id());
        assert_eq!(info.command(), "deploy.sh --prod\nrm -rf /");
        assert!(info.since() >= before && info.since() <= SystemTime::now());
    }
    m.unlock(&mut lock).await.unwrap();
    // Released once a quorum answered: the last master's delete lands with the stragglers.
    settle(&m).await;
    for s in masters.iter() {
        assert!(!s.exists(r.as_bytes()));
        assert!(
            !s.exists(record_key(&r).as_bytes()),
            "unlock deletes the record"
        );
    }
    assert!(shown(&m, &r).await.iter().all(Option::is_none));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_record_expires_with_the_lock() {
    let masters = Masters::start(3);
    let m = manager(masters.urls(), RELAXED);
    let r = unique_name("holder-expiry");
    let lock = m
        .lock(&r)
        .ttl(Duration::from_millis(600))
        .holder_info(HolderInfo::new("host-b", "job"))
        .await
        .unwrap();
    lock.keep_until_expiry();
    assert_no_key_without_ttl(masters.iter());
    tokio::time::sleep(Duration::from_millis(900)).await;
    for s in masters.iter() {
        assert!(!s.exists(r.as_bytes()));
        assert!(
            !s.exists(record_key(&r).as_bytes()),
            "expired with the lock"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_is_not_shown_once_the_key_holds_another_token() {
    let masters = Masters::start(3);
    let m = manager(masters.urls(), RELAXED);
    let r = unique_name("holder-foreign");
    let lock = m
        .lock(&r)
        .ttl(Duration::from_secs(20))
        .holder_info(HolderInfo::new("host-c", "job"))
        .await
        .unwrap();
    // Someone else (another library, an operator) overwrites the key: the record left
    // behind names a token the key no longer holds, so nobody is shown as its holder.
    for s in masters.iter() {
        s.cmd(&["SET", &r, "someone-else", "PX", "20000"]);
    }
    for (k, info) in m.inspect(&r).await.unwrap().iter().zip(shown(&m, &r).await) {
        assert!(
            matches!(&k.state, KeyState::Held { holder, .. } if holder.as_bytes() == b"someone-else")
        );
        assert!(info.is_none(), "no stale holder: {info:?}");
    }
    lock.keep_until_expiry();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_extension_gives_the_record_the_new_ttl() {
    let masters = Masters::start(3);
    let m = manager(masters.urls(), RELAXED);
    let r = unique_name("holder-extend");
    let mut lock = m
        .lock(&r)
        .ttl(Duration::from_secs(2))
        .holder_info(HolderInfo::new("host-d", "job"))
        .await
        .unwrap();
    all_hold(&masters, &r).await;
    m.extend(&mut lock, Duration::from_secs(30)).await.unwrap();
    settle(&m).await;
    for s in masters.iter() {
        // The key's TTL first: read later, the record's can only be lower or equal.
        let key_ttl = s.pttl(r.as_bytes());
        let record_ttl = s.pttl(record_key(&r).as_bytes());
        assert!(
            record_ttl > 20_000 && record_ttl <= key_ttl,
            "record {record_ttl} ms, key {key_ttl} ms after extending to 30 s"
        );
        assert_eq!(
            s.cmd(&["PEXPIRETIME", &record_key(&r)]),
            s.cmd(&["PEXPIRETIME", &r]),
            "record and key expire together"
        );
    }
    // Past the first TTL, it is still shown: the extension kept it.
    tokio::time::sleep(Duration::from_millis(2_300)).await;
    assert!(shown(&m, &r).await.iter().all(Option::is_some));
    m.unlock(&mut lock).await.unwrap();
    settle(&m).await;
    assert!(masters.iter().all(|s| s.dbsize() == 0), "nothing left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watchdog_keeps_the_record_as_long_as_the_guard() {
    let masters = Masters::start(3);
    let m = manager(masters.urls(), RELAXED);
    let r = unique_name("holder-guard");
    let guard = m
        .acquire(&r)
        .ttl(Duration::from_millis(900))
        .auto_extend()
        .holder_info(HolderInfo::new("host-e", "guarded"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    assert!(guard.is_valid());
    for info in shown(&m, &r).await {
        assert_eq!(info.expect("kept by the watchdog").command(), "guarded");
    }
    guard.release().await.unwrap();
    settle(&m).await;
    assert!(masters.iter().all(|s| s.dbsize() == 0), "nothing left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_opting_in_nothing_but_the_lock_key_is_written() {
    let masters = Masters::start(3);
    let m = manager(masters.urls(), RELAXED);
    let r = unique_name("holder-none");
    let mut lock = m.lock(&r).await.unwrap();
    all_hold(&masters, &r).await;
    for s in masters.iter() {
        assert_eq!(s.keys(), vec![r.as_bytes().to_vec()]);
    }
    assert!(shown(&m, &r).await.iter().all(Option::is_none));
    m.unlock(&mut lock).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resource_whose_key_is_a_holder_record_is_refused() {
    let masters = Masters::start(3);
    let m = manager(masters.urls(), RELAXED);
    for reserved in ["{orders}:holder", "a{b}c:holder"] {
        let e = m.lock(reserved).await.unwrap_err();
        assert!(e.is_reserved_key() && e.is_invalid_input(), "{e}");
        assert!(e.to_string().contains("holder record"), "{e}");
    }
    assert!(
        masters.iter().all(|s| s.dbsize() == 0),
        "nothing was written"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_releases_take_the_record_too() {
    let masters = Masters::start(3);
    let m = manager(masters.urls(), RELAXED);
    // A dropped lock is released in the background, record included.
    let r = unique_name("holder-dropped");
    let lock = m
        .lock(&r)
        .ttl(Duration::from_secs(20))
        .holder_info(HolderInfo::new("host-f", "dropped"))
        .await
        .unwrap();
    drop(lock);
    assert!(
        eventually(Duration::from_secs(5), || masters
            .iter()
            .all(|s| s.dbsize() == 0))
        .await,
        "the dropped lock's key and record are gone: {:?}",
        masters.iter().map(|s| s.keys()).collect::<Vec<_>>()
    );
    // A failed attempt (granted on one master, held elsewhere on the others) cleans up the
    // record it wrote with its key.
    let r = unique_name("holder-failed");
    for s in masters.iter().skip(1) {
        s.cmd(&["SET", &r, "someone-else", "PX", "20000"]);
    }
    let e = m
        .lock(&r)
        .retry_count(0)
        .holder_info(HolderInfo::new("host-f", "failed"))
        .await
        .unwrap_err();
    assert!(e.is_conflict(), "{e}");
    assert!(
        eventually(Duration::from_secs(5), || masters[0].dbsize() == 0).await,
        "the failed attempt's key and record are gone: {:?}",
        masters[0].keys()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_foreign_value_at_the_record_key_is_never_read_whole() {
    // A value at `{key}:holder` is untrusted input. Read whole, 32 MiB on each master came
    // down the connection shared with the lock traffic at every `inspect` (and held up the
    // requests behind it); only the first bytes a record may hold are read now.
    let masters = Masters::start(3);
    let m = manager(masters.urls(), RELAXED);
    let r = unique_name("holder-huge");
    let sent = |s: &support::servers::RedisServer| -> u64 {
        s.info("stats")
            .lines()
            .find_map(|l| l.strip_prefix("total_net_output_bytes:"))
            .and_then(|v| v.trim().parse().ok())
            .expect("INFO stats has total_net_output_bytes")
    };
    for s in masters.iter() {
        s.cmd(&["SET", &r, "tok-1", "PX", "20000"]);
        s.cmd(&["SETRANGE", &record_key(&r), "33554432", "x"]);
    }
    let before: Vec<u64> = masters.iter().map(sent).collect();
    let states = m.inspect(&r).await.unwrap();
    for (s, was) in masters.iter().zip(&before) {
        let out = sent(s) - was;
        assert!(
            out < 1_000_000,
            "{} sent {out} bytes for one inspect",
            s.url()
        );
    }
    for state in &states {
        assert!(
            matches!(state.state, KeyState::Held { .. }) && state.holder_info.is_none(),
            "{state:?}"
        );
    }
    // A record of ours is still read in full.
    for s in masters.iter() {
        s.cmd(&["DEL", &r, &record_key(&r)]);
    }
    let mut lock = m
        .lock(&r)
        .holder_info(HolderInfo::new("h".repeat(300), "c".repeat(2_000)))
        .await
        .unwrap();
    all_hold(&masters, &r).await;
    for info in shown(&m, &r).await {
        let info = info.expect("a record of ours is shown");
        assert_eq!(info.command().len(), 1024, "cut as written, read whole");
    }
    m.unlock(&mut lock).await.unwrap();
}

/// A holder record is for a lock of one resource: several resources, a semaphore's permit,
/// a reader and a writer refuse it before any request (nothing written).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_record_is_for_a_lock_of_one_resource() {
    let masters = Masters::start(1);
    let m = manager(masters.urls(), RELAXED);
    let info = || HolderInfo::new("host-1", "job");
    let refused = [
        m.lock_all(["a", "b"])
            .holder_info(info())
            .await
            .unwrap_err(),
        m.semaphore("s", 2)
            .lock()
            .holder_info(info())
            .await
            .unwrap_err(),
        m.read_lock("rw").holder_info(info()).await.unwrap_err(),
        m.write_lock("rw").holder_info(info()).await.unwrap_err(),
    ];
    for err in refused {
        assert!(err.is_invalid_input(), "{err:?}");
        assert!(err.to_string().contains("holder record"), "{err}");
    }
    assert_eq!(masters.get(0).unwrap().dbsize(), 0, "nothing was written");
    m.close().await;
}
