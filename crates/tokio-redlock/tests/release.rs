//! Release (`LockManager::unlock`): compare-and-delete on every master, typed "not held" and
//! "no quorum" outcomes, cancel safety, and no key ever left behind without a TTL.
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

use support::checks::{
    RELAXED, assert_no_key_without_ttl, held_everywhere, manager, millis, within,
};
use support::servers::{Masters, command_calls_in};
use tokio::time::Instant;
use tokio_redlock::{Lock, LockError, LockManager, NodeStatus};

/// Waits until `key` is gone from every server (requests to slower masters finish in the
/// background after `unlock` returned).
async fn assert_gone_everywhere(masters: &Masters, key: &[u8]) {
    let gone = support::eventually(Duration::from_secs(3), || {
        masters.iter().all(|s| s.get(key).is_none())
    })
    .await;
    assert!(
        gone,
        "`{}` must be deleted on every master",
        String::from_utf8_lossy(key)
    );
}

/// Asserts a `NotHeld` from a release: per-master answers name why (held by another or
/// absent), never success and never "unreachable".
fn assert_not_held(result: Result<(), LockError>, why: fn(&NodeStatus) -> bool) -> LockError {
    let err = result.expect_err("a release of a lapsed lock must not report success");
    assert!(err.is_not_held(), "expected NotHeld, got {err:?}");
    assert!(!err.is_unavailable() && !err.is_conflict(), "{err:?}");
    let answered: Vec<_> = err
        .outcomes()
        .iter()
        .filter(|o| *o.status() != NodeStatus::NotAwaited)
        .collect();
    assert!(
        !answered.is_empty(),
        "NotHeld carries per-master answers: {err:?}"
    );
    for o in &answered {
        assert!(why(o.status()), "unexpected per-master answer {o}");
    }
    err
}

fn held_by_other(s: &NodeStatus) -> bool {
    matches!(s, NodeStatus::HeldByOther { .. })
}

fn absent(s: &NodeStatus) -> bool {
    matches!(s, NodeStatus::Absent)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c01_stale_unlock_does_not_touch_new_holder() {
    let masters = Masters::start(3);
    let a = manager(masters.urls(), RELAXED);
    let b = manager(masters.urls(), RELAXED);

    let mut a_lock = a.lock("r").ttl(Duration::from_millis(500)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    for s in masters.iter() {
        assert_eq!(s.get(b"r"), None, "A's keys have expired everywhere");
    }

    let b_started = Instant::now();
    let mut b_lock = b
        .lock("r")
        .ttl(Duration::from_millis(10_000))
        .await
        .unwrap();
    held_everywhere(masters.iter(), b"r", b_lock.token()).await;

    // The API reports "not held" as an error (the case's "an error or `false`").
    let err = assert_not_held(a.unlock(&mut a_lock).await, held_by_other);
    assert!(
        err.outcomes()
            .iter()
            .filter(|o| held_by_other(o.status()))
            .count()
            >= 2,
        "a quorum answered \"held by another\": {err:?}"
    );
    assert!(!a_lock.is_valid());

    let elapsed = millis(b_started.elapsed());
    for s in masters.iter() {
        assert_eq!(
            s.get(b"r").as_deref(),
            Some(b_lock.token().as_bytes()),
            "B's token is intact on {}",
            s.url()
        );
        let pttl = s.pttl(b"r");
        assert!(
            pttl <= 10_000 && pttl >= 10_000 - elapsed - 300,
            "PTTL {pttl} should be about 10 000 - {elapsed}"
        );
    }

    b.unlock(&mut b_lock).await.expect("B's unlock succeeds");
    assert_gone_everywhere(&masters, b"r").await;
    assert_eq!(b.background_tasks(), 0);
    assert_no_key_without_ttl(masters.iter());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c05_release_of_expired_lock_is_final_and_fast() {
    let masters = Masters::start(1);
    // "Unlimited acquire retries": the most the API allows. Release never uses them.
    let manager = LockManager::builder()
        .servers(masters.urls())
        .retry_count(u32::MAX)
        .node_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let mut lock = manager
        .lock("r")
        .ttl(Duration::from_millis(1_000))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1_500)).await;

    let s = &masters[0];
    s.cmd(&["CONFIG", "RESETSTAT"]);
    let started = Instant::now();
    let result = within(
        Duration::from_secs(3),
        "the release",
        manager.unlock(&mut lock),
    )
    .await;
    let took = started.elapsed();

    assert_not_held(result, absent);
    // One round trip on loopback (≤ 100 ms); ×3 slack for a loaded CI box.
    assert!(took < Duration::from_millis(300), "release took {took:?}");
    // Not retried: exactly one release request reached the server (one EVALSHA, plus at most
    // one EVAL if the script had to be loaded).
    let stats = s.info("commandstats");
    let calls = |cmd: &str| command_calls_in(&stats, cmd);
    assert_eq!(
        calls("evalsha"),
        1,
        "one release request, no retry:\n{stats}"
    );
    assert!(calls("eval") <= 1, "{stats}");

    assert!(!s.exists(b"r"), "`r` still exists after the release");
    assert_no_key_without_ttl(masters.iter());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c06b_unlock_after_foreign_overwrite_is_not_held() {
    let masters = Masters::start(1);
    let manager = manager(masters.urls(), RELAXED);
    let s = &masters[0];
    let mut lock = manager
        .lock("r")
        .ttl(Duration::from_millis(5_000))
        .await
        .unwrap();
    s.cmd(&["SET", "r", "other", "EX", "60"]);

    // "not held (value changed)": NotHeld, the master answering "held by another".
    let err = assert_not_held(manager.unlock(&mut lock).await, held_by_other);
    // A typed error of this crate; its message is ours, with no internal error text.
    let shown = err.to_string();
    assert!(shown.contains("not held"), "{shown}");
    assert!(!lock.is_valid());

    assert_eq!(s.get(b"r"), Some(b"other".to_vec()));
    let pttl = s.pttl(b"r");
    assert!(
        (55_000..=60_000).contains(&pttl),
        "PTTL {pttl} should be about 60 s"
    );
    assert_no_key_without_ttl(masters.iter());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlock_after_foreign_overwrite_on_3_masters_is_not_held() {
    let masters = Masters::start(3);
    let manager = manager(masters.urls(), RELAXED);
    let mut lock = manager
        .lock("r")
        .ttl(Duration::from_millis(5_000))
        .await
        .unwrap();
    for s in masters.iter() {
        s.cmd(&["SET", "r", "other", "EX", "60"]);
    }
    assert_not_held(manager.unlock(&mut lock).await, held_by_other);
    tokio::time::sleep(Duration::from_millis(100)).await; // let any straggler land
    for s in masters.iter() {
        assert_eq!(s.get(b"r"), Some(b"other".to_vec()));
        let pttl = s.pttl(b"r");
        assert!((55_000..=60_000).contains(&pttl), "PTTL {pttl}");
    }
    assert_no_key_without_ttl(masters.iter());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c12_stale_unlock_reports_expired_or_taken() {
    let masters = Masters::start(3);
    let a = manager(masters.urls(), RELAXED);
    let b = manager(masters.urls(), RELAXED);
    let mut a_lock = a.lock("r").ttl(Duration::from_millis(500)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let mut b_lock = b
        .lock("r")
        .ttl(Duration::from_millis(10_000))
        .await
        .unwrap();
    held_everywhere(masters.iter(), b"r", b_lock.token()).await;

    // Explicit outcome: NotHeld ("expired or held by another client"), with the masters'
    // answers — not `Ok`, not a silent no-op.
    let err = assert_not_held(a.unlock(&mut a_lock).await, held_by_other);
    let shown = err.to_string();
    assert!(
        shown.contains("expired or another holder took it"),
        "{shown}"
    );

    for s in masters.iter() {
        assert_eq!(s.get(b"r").as_deref(), Some(b_lock.token().as_bytes()));
        assert!(s.pttl(b"r") > 9_000, "B's TTL is intact");
    }
    b.unlock(&mut b_lock).await.unwrap();
    assert_gone_everywhere(&masters, b"r").await;
    assert_no_key_without_ttl(masters.iter());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c12_unlock_without_quorum_reports_causes_and_deletes_reachable_key() {
    let mut masters = Masters::start(3);
    let manager = manager(masters.urls(), RELAXED);
    let mut lock = manager
        .lock("r2")
        .ttl(Duration::from_millis(10_000))
        .await
        .unwrap();
    held_everywhere(masters.iter(), b"r2", lock.token()).await;
    masters[1].kill();
    masters[2].kill();

    // "could not reach quorum": NoQuorum, with per-master causes.
    let err = manager
        .unlock(&mut lock)
        .await
        .expect_err("2 of 3 masters are dead");
    assert!(matches!(err, LockError::NoQuorum { .. }), "{err:?}");
    assert!(err.is_unavailable() && !err.is_not_held(), "{err:?}");
    let outcomes = err.outcomes();
    assert_eq!(outcomes.len(), 3, "{err:?}");
    assert_eq!(outcomes[0].master(), masters[0].url());
    assert!(
        matches!(
            outcomes[0].status(),
            NodeStatus::Done | NodeStatus::NotAwaited
        ),
        "S1 deleted the key (or was not awaited): {}",
        outcomes[0]
    );
    for (o, s) in outcomes[1..].iter().zip(&masters.0[1..]) {
        assert_eq!(o.master(), s.url());
        assert!(
            matches!(o.status(), NodeStatus::Failed(_)),
            "the cause is named per master: {o}"
        );
    }
    let shown = err.to_string();
    assert!(shown.contains("no quorum"), "{shown}");

    // The reachable master deleted A2's key (possibly just after the verdict).
    assert!(
        support::eventually(Duration::from_secs(3), || masters[0].get(b"r2").is_none()).await,
        "A2's key on S1 is deleted"
    );
    assert_no_key_without_ttl([&masters[0]]);
}

/// C24 check after the release future was dropped: the key and the handle agree.
async fn assert_consistent_after_dropped_unlock(
    masters: &Masters,
    manager: &LockManager,
    lock: &mut Lock,
) {
    let s = &masters[0];
    let token = lock.token().as_bytes().to_vec();
    // At once: never "handle says not owner" while `r` holds A's token.
    if s.get(b"r").as_deref() == Some(&token[..]) {
        assert!(
            lock.is_valid(),
            "the handle gave up ownership while r holds its token"
        );
    }
    // Once any request already sent has landed, one of the two allowed states holds.
    tokio::time::sleep(Duration::from_millis(100)).await;
    match s.get(b"r") {
        None => {} // `r` is gone.
        Some(v) => {
            assert_eq!(v, token, "only A ever held r");
            assert!(
                lock.is_valid(),
                "r holds A's token, so the handle must still own it"
            );
            assert!(manager.is_locked("r").await.unwrap().is_held_by(lock));
            manager
                .unlock(lock)
                .await
                .expect("a second release succeeds");
            assert_eq!(s.get(b"r"), None);
        }
    }
    assert!(!lock.is_valid() || s.get(b"r").is_none());
    assert_no_key_without_ttl(masters.iter());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c24_dropped_unlock_never_loses_the_token() {
    let masters = Masters::start(1);
    let manager = manager(masters.urls(), RELAXED);

    // Run 1: the release future is polled once, then dropped.
    let mut lock = manager
        .lock("r")
        .ttl(Duration::from_millis(5_000))
        .await
        .unwrap();
    {
        let mut unlock = std::pin::pin!(manager.unlock(&mut lock));
        let _ = futures_util::poll!(unlock.as_mut());
    }
    assert_consistent_after_dropped_unlock(&masters, &manager, &mut lock).await;

    // Run 2: the release future is dropped after 1 ms (unless it finished by then).
    let mut lock = manager
        .lock("r")
        .ttl(Duration::from_millis(5_000))
        .await
        .unwrap();
    let finished = tokio::select! {
        result = manager.unlock(&mut lock) => {
            result.expect("a completed release of a held lock succeeds");
            true
        }
        () = tokio::time::sleep(Duration::from_millis(1)) => false,
    };
    if finished {
        assert!(!lock.is_valid());
        assert_eq!(masters[0].get(b"r"), None);
    }
    assert_consistent_after_dropped_unlock(&masters, &manager, &mut lock).await;

    // In every case `r` is gone well before its 5 s TTL.
    assert_eq!(masters[0].dbsize(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlock_on_1_3_5_masters_deletes_every_key() {
    for n in [1, 3, 5] {
        let masters = Masters::start(n);
        let manager = manager(masters.urls(), RELAXED);
        let mut lock = manager
            .lock("r")
            .ttl(Duration::from_millis(10_000))
            .await
            .unwrap();
        held_everywhere(masters.iter(), b"r", lock.token()).await;
        manager
            .unlock(&mut lock)
            .await
            .unwrap_or_else(|e| panic!("{n} masters: {e}"));
        assert!(!lock.is_valid());
        assert_gone_everywhere(&masters, b"r").await;
        for s in masters.iter() {
            assert_eq!(s.dbsize(), 0, "{n} masters: nothing left on {}", s.url());
        }
        assert_no_key_without_ttl(masters.iter());
        manager.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_unlock_of_same_handle_is_not_held_and_touches_nothing() {
    let masters = Masters::start(3);
    let a = manager(masters.urls(), RELAXED);
    let b = manager(masters.urls(), RELAXED);
    let mut a_lock = a
        .lock("r")
        .ttl(Duration::from_millis(10_000))
        .await
        .unwrap();
    held_everywhere(masters.iter(), b"r", a_lock.token()).await;
    a.unlock(&mut a_lock).await.unwrap();
    assert_gone_everywhere(&masters, b"r").await;

    // Nothing there: the second release says so and writes nothing.
    assert_not_held(a.unlock(&mut a_lock).await, absent);
    tokio::time::sleep(Duration::from_millis(50)).await;
    for s in masters.iter() {
        assert_eq!(s.dbsize(), 0);
    }

    // Another holder now: a third release of the old handle leaves its key alone.
    let mut b_lock = b
        .lock("r")
        .ttl(Duration::from_millis(10_000))
        .await
        .unwrap();
    held_everywhere(masters.iter(), b"r", b_lock.token()).await;
    assert_not_held(a.unlock(&mut a_lock).await, held_by_other);
    tokio::time::sleep(Duration::from_millis(50)).await;
    for s in masters.iter() {
        assert_eq!(s.get(b"r").as_deref(), Some(b_lock.token().as_bytes()));
        assert!(s.pttl(b"r") > 9_000);
    }
    b.unlock(&mut b_lock).await.unwrap();
    assert_gone_everywhere(&masters, b"r").await;
    assert_no_key_without_ttl(masters.iter());
}

/// A release whose reply is late (past the node timeout) is resent; by then another client
/// may hold the key our first try freed. The resend's "another token" is no evidence that
/// our hold had lapsed: unlock answers "unknown" (NoQuorum naming the timeout) or success,
/// never NotHeld, and the other holder's key is untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_resent_after_a_timeout_and_taken_by_another_is_not_reported_not_held() {
    let masters = Masters::start(1);
    let server = &masters[0];
    let proxy = support::proxy::FaultProxy::start(server.addr()).await;
    let a = manager([proxy.url()], Duration::from_millis(200));
    let b = manager(masters.urls(), RELAXED);
    let mut lock = a
        .lock("r")
        .ttl(Duration::from_millis(10_000))
        .await
        .unwrap();
    // The first release runs at once; its reply is held back 300 ms (past the 200 ms timeout).
    proxy.set_reply_latency(Duration::from_millis(300));
    let releasing = tokio::spawn(async move {
        let t = Instant::now();
        let result = a.unlock(&mut lock).await;
        println!("unlock took {:?}", t.elapsed());
        (a, lock, result)
    });
    assert!(
        support::eventually(Duration::from_secs(2), || !server.exists(b"r")).await,
        "the first release ran on the server"
    );
    // Another client takes the freed key; later replies come back without delay.
    let mut other = b
        .lock("r")
        .ttl(Duration::from_millis(10_000))
        .await
        .unwrap();
    proxy.set_reply_latency(Duration::ZERO);
    let (_a, lock, result) = within(Duration::from_secs(5), "unlock", releasing)
        .await
        .unwrap();
    println!("unlock after a late reply -> {result:?}");
    assert!(
        !result.as_ref().is_err_and(LockError::is_not_held),
        "our own release freed the key, yet unlock says: {result:?}"
    );
    if let Err(e) = &result {
        assert!(
            e.failures().all(tokio_redlock::NodeError::is_timeout),
            "unknown, because of the timeout: {e:?}"
        );
    }
    assert!(!lock.is_valid(), "a release marks the handle invalid");
    assert!(
        server.holds(b"r", other.token()),
        "the other holder keeps its key"
    );
    b.unlock(&mut other).await.unwrap();
    assert_eq!(server.dbsize(), 0);
}

/// F4: the one resend on a fresh connection must not turn our own successful DEL into
/// "not held". The DEL runs on the server, the connection dies before its reply comes back,
/// and the resent release finds no key: that is no evidence that the hold had lapsed, so the
/// API answers "unknown" (NoQuorum with a connection cause) — or success — but never NotHeld.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f4_release_resent_after_reset_is_not_reported_not_held() {
    let masters = Masters::start(1);
    let server = &masters[0];
    let proxy = support::proxy::FaultProxy::start(server.addr()).await;
    let a = manager([proxy.url()], Duration::from_millis(1_000));
    let mut lock = a
        .lock("r")
        .ttl(Duration::from_millis(10_000))
        .await
        .unwrap();
    assert!(server.holds(b"r", lock.token()));

    // The DEL runs at once; its reply is held back 300 ms.
    proxy.set_reply_latency(Duration::from_millis(300));
    let releasing = tokio::spawn(async move {
        let result = a.unlock(&mut lock).await;
        (a, lock, result)
    });
    assert!(
        support::eventually(Duration::from_secs(2), || !server.exists(b"r")).await,
        "the DEL ran on the server"
    );
    // The connection dies before the reply came back; the library resends on a new one.
    proxy.reset_all();
    let (_a, lock, result) = within(Duration::from_secs(5), "unlock", releasing)
        .await
        .unwrap();

    println!("unlock after the reset -> {result:?}");
    match &result {
        Ok(()) => {}
        Err(e @ LockError::NoQuorum { .. }) => {
            assert!(
                e.outcomes().iter().any(|o| matches!(
                    o.status(),
                    NodeStatus::Failed(tokio_redlock::NodeError::Connection(_))
                )),
                "NoQuorum must name the dead connection: {e:?}"
            );
        }
        Err(e) => panic!("our own DEL removed our key, yet unlock says: {e:?}"),
    }
    assert!(
        !result.as_ref().is_err_and(LockError::is_not_held),
        "{result:?}"
    );
    assert!(!lock.is_valid(), "a release marks the handle invalid");
    assert!(!server.exists(b"r"), "the key is gone");
    assert_eq!(server.dbsize(), 0);
    proxy.heal();
}

/// A `Lock` dropped while held is released in the background, like a dropped guard;
/// `keep_until_expiry` leaves the keys on purpose; `close()` releases every plain lock still
/// held, and their handles then report themselves released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_lock_is_released_kept_lock_is_not_and_close_releases_the_rest() {
    let masters = Masters::start(3);
    let manager = LockManager::builder()
        .servers(masters.urls())
        .build()
        .unwrap();
    let lock = manager.lock("dropped").await.unwrap();
    drop(lock);
    assert!(
        support::eventually(Duration::from_secs(2), || masters
            .iter()
            .all(|m| !m.exists(b"dropped")))
        .await,
        "a dropped lock is released"
    );
    // Taken again at once by someone else.
    let other = LockManager::builder()
        .servers(masters.urls())
        .build()
        .unwrap();
    let mut again = other.try_lock("dropped").await.unwrap();
    other.unlock(&mut again).await.unwrap();

    let kept = manager
        .lock("kept")
        .ttl(Duration::from_secs(5))
        .await
        .unwrap();
    kept.keep_until_expiry();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        masters.iter().filter(|m| m.exists(b"kept")).count() >= 2,
        "a kept lock stays until its TTL"
    );

    let mut open = manager.lock("open").await.unwrap();
    manager.close().await;
    for m in masters.iter() {
        assert!(!m.exists(b"open"), "close() released the plain lock");
    }
    assert!(
        masters.iter().filter(|m| m.exists(b"kept")).count() >= 2,
        "close() leaves a kept lock alone"
    );
    assert!(matches!(
        manager.unlock(&mut open).await,
        Err(LockError::Closed)
    ));
    other.close().await;
}
