//! Several resources locked at once (`lock_all`, `acquire_all`) against real masters: one
//! token and one TTL on every key, exclusion with single-resource locks and overlapping sets,
//! all or nothing on each master and across masters, extension, guards, waiting woken by a
//! release of any member, cancellation, a dead master, contention without overlap.
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

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rand::{RngExt, SeedableRng, rngs::StdRng};
use support::checks::{
    RELAXED, assert_no_key_without_ttl, builder, drift, held_everywhere, ms, render, settle,
    watchdog, within,
};
use support::diagnostics::{
    assert_no_error_log_and_no_worker_panic, install as install_diagnostics,
};
use support::drops::{drop_storm, dropping_manager, empty};
use support::servers::Masters;
use support::{eventually, unique_name};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_redlock::{LockError, LockManager, LossCause, MAX_RESOURCES};

/// `n` resource names sharing a test-unique stem.
fn names(stem: &str, n: usize) -> Vec<String> {
    let stem = unique_name(stem);
    (0..n).map(|i| format!("{stem}:{i}")).collect()
}

/// Lock three resources (named out of order, one twice) on `n` masters: one token on every
/// key of a quorum (then of every master), one PTTL; extend resets every key; unlock
/// deletes every key.
async fn cycle_on(n: usize) {
    let masters = Masters::start(n);
    let manager = builder(&masters.urls()).build().unwrap();
    let set = names("cycle", 3);
    let ttl = ms(5_000);
    let t0 = Instant::now();
    let mut lock = manager
        .lock_all([&set[2], &set[0], &set[1], &set[0]])
        .ttl(ttl)
        .await
        .unwrap();
    assert!(lock.validity() <= ttl - drift(ttl));
    assert!(lock.deadline() >= t0 + ttl - drift(ttl));
    let listed: Vec<&[u8]> = lock.resources().collect();
    let expected: Vec<&[u8]> = set.iter().map(|s| s.as_bytes()).collect();
    assert_eq!(listed, expected, "sorted, each once");
    assert_eq!(lock.resource(), set[0].as_bytes());
    assert_eq!(lock.fencing_token(), None);
    assert!(lock.fencing_tokens().is_empty());
    let token = lock.token().to_owned();
    for name in &set {
        held_everywhere(masters.iter(), name.as_bytes(), &token).await;
    }
    for server in masters.iter() {
        for name in &set {
            let pttl = server.pttl(name.as_bytes());
            assert!(pttl > 0 && pttl <= 5_000, "PTTL {pttl}");
        }
    }
    assert_no_key_without_ttl(masters.iter());

    manager.extend(&mut lock, ms(20_000)).await.unwrap();
    assert!(lock.validity() > ms(15_000));
    // Extended once a quorum answered: the last master's request lands with the stragglers.
    settle(&manager).await;
    for server in masters.iter() {
        for name in &set {
            let pttl = server.pttl(name.as_bytes());
            assert!(pttl > 15_000, "extended PTTL {pttl}");
        }
    }
    manager.unlock(&mut lock).await.unwrap();
    assert!(!lock.is_valid());
    settle(&manager).await;
    for (i, server) in masters.iter().enumerate() {
        assert_eq!(server.dbsize(), 0, "master {i}: {:?}", server.dump());
    }
    // A second unlock finds nothing: the hold had ended.
    let again = manager.unlock(&mut lock).await.unwrap_err();
    assert!(again.is_not_held(), "{}", render(&again));
    manager.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_extend_unlock_on_1_3_and_5_masters() {
    for n in [1, 3, 5] {
        watchdog(&format!("cycle on {n}"), cycle_on(n)).await;
    }
}

/// Exclusion and sharing between single-resource locks and sets, on `n` masters:
/// a lock on `a` and a set `[a, b]` exclude each other both ways; overlapping sets exclude
/// each other; disjoint sets and a lock outside a set coexist.
async fn exclusion_table_on(n: usize) {
    let masters = Masters::start(n);
    let one = builder(&masters.urls()).retry_count(0).build().unwrap();
    let two = builder(&masters.urls()).retry_count(0).build().unwrap();
    let r = names("table", 4);
    let (a, b, c, d) = (&r[0], &r[1], &r[2], &r[3]);

    // mutex a, then multi [a, b]: refused, and the refusal names a.
    let mut held = one.lock(a).await.unwrap();
    let e = two.lock_all([a, b]).await.unwrap_err();
    assert!(e.is_conflict(), "{}", render(&e));
    assert!(matches!(&e, LockError::Conflict { resource, .. } if &**resource == a.as_bytes()));
    // ... while a set without a, and a lock on b alone, are granted.
    let mut disjoint = two.lock_all([c, d]).await.unwrap();
    let mut lone_b = two.lock(b).await.unwrap();
    two.unlock(&mut lone_b).await.unwrap();
    one.unlock(&mut held).await.unwrap();

    // multi [a, b], then mutex b: refused; multi [b, c]: refused (c is held too, by the
    // disjoint set, and b by this one); multi [a]: refused.
    let mut set = one.lock_all([a, b]).await.unwrap();
    assert!(two.lock(b).await.unwrap_err().is_conflict());
    assert!(two.lock(a).await.unwrap_err().is_conflict());
    two.unlock(&mut disjoint).await.unwrap();
    let e = two.lock_all([b, c]).await.unwrap_err();
    assert!(e.is_conflict(), "{}", render(&e));
    assert!(matches!(&e, LockError::Conflict { resource, .. } if &**resource == b.as_bytes()));
    assert!(two.lock_all([a]).await.unwrap_err().is_conflict());
    // Disjoint: granted while [a, b] is held.
    let mut other = two.lock_all([c, d]).await.unwrap();
    one.unlock(&mut set).await.unwrap();
    // Released: the overlapping set is granted now.
    let mut now = two.lock_all([b, a]).await.unwrap();
    two.unlock(&mut now).await.unwrap();
    two.unlock(&mut other).await.unwrap();
    settle(&one).await;
    settle(&two).await;
    for server in masters.iter() {
        assert_eq!(server.dbsize(), 0, "{:?}", server.dump());
    }
    one.close().await;
    two.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exclusion_table_on_1_3_and_5_masters() {
    for n in [1, 3, 5] {
        watchdog(&format!("table on {n}"), exclusion_table_on(n)).await;
    }
}

/// A key held by a foreign client on one master of three: that master grants nothing (the
/// set's other keys are not written there), the other two grant everything, and the set is
/// held. Held on two masters: no master keeps any key of the set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_or_nothing_on_each_master_and_across_masters() {
    let masters = Masters::start(3);
    let manager = builder(&masters.urls()).retry_count(0).build().unwrap();
    let r = names("aon", 3);
    let (a, b, c) = (&r[0], &r[1], &r[2]);

    masters.0[0].cmd(&["SET", b, "foreign", "PX", "10000"]);
    let mut lock = manager.lock_all([a, b, c]).await.unwrap();
    let token = lock.token().to_owned();
    held_everywhere(masters.0[1..].iter(), a.as_bytes(), &token).await;
    held_everywhere(masters.0[1..].iter(), c.as_bytes(), &token).await;
    settle(&manager).await;
    assert!(
        !masters.0[0].exists(a.as_bytes()),
        "{:?}",
        masters.0[0].dump()
    );
    assert!(
        !masters.0[0].exists(c.as_bytes()),
        "{:?}",
        masters.0[0].dump()
    );
    assert_eq!(masters.0[0].get(b.as_bytes()).unwrap(), b"foreign");
    manager.unlock(&mut lock).await.unwrap();
    settle(&manager).await;
    assert_eq!(masters.0[0].get(b.as_bytes()).unwrap(), b"foreign");

    // A majority refuses: nothing of ours anywhere, the foreign keys untouched.
    masters.0[1].cmd(&["SET", b, "foreign", "PX", "10000"]);
    let e = manager.lock_all([a, b, c]).await.unwrap_err();
    assert!(e.is_conflict(), "{}", render(&e));
    settle(&manager).await;
    for (i, server) in masters.iter().enumerate() {
        assert!(
            !server.exists(a.as_bytes()),
            "master {i}: {:?}",
            server.dump()
        );
        assert!(
            !server.exists(c.as_bytes()),
            "master {i}: {:?}",
            server.dump()
        );
    }
    assert_eq!(masters.0[0].get(b.as_bytes()).unwrap(), b"foreign");
    assert_eq!(masters.0[1].get(b.as_bytes()).unwrap(), b"foreign");
    assert!(!masters.0[2].exists(b.as_bytes()));

    // A non-lock value under one member: refused as not a lock, nothing written.
    for server in masters.iter() {
        server.cmd(&["DEL", b]);
        server.cmd(&["HSET", c, "f", "v"]);
    }
    let e = manager.lock_all([a, b, c]).await.unwrap_err();
    assert!(e.is_not_a_lock(), "{}", render(&e));
    assert!(matches!(&e, LockError::NotALock { resource, .. } if &**resource == c.as_bytes()));
    settle(&manager).await;
    for server in masters.iter() {
        assert!(!server.exists(a.as_bytes()) && !server.exists(b.as_bytes()));
    }
    manager.close().await;
}

/// An empty list is refused before any request; one resource is exactly a plain lock; too
/// many is refused; a reserved key among the resources is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_sets_are_refused_before_any_request() {
    let masters = Masters::start(1);
    let manager = builder(&masters.urls()).build().unwrap();
    let e = manager.lock_all(Vec::<String>::new()).await.unwrap_err();
    assert!(e.is_invalid_input(), "{}", render(&e));
    assert!(matches!(e, LockError::InvalidArgument(_)));
    let too_many: Vec<String> = (0..=MAX_RESOURCES).map(|i| format!("r{i}")).collect();
    let e = manager.lock_all(&too_many).await.unwrap_err();
    assert!(matches!(e, LockError::InvalidArgument(_)), "{}", render(&e));
    let e = manager
        .lock_all(["fine", "{fine}:fence"])
        .await
        .unwrap_err();
    assert!(e.is_reserved_key(), "{}", render(&e));
    assert_eq!(masters.0[0].dbsize(), 0, "nothing was sent");

    // One resource (named twice): a plain lock, the same key and the same scripts.
    let name = unique_name("single");
    let mut lock = manager.lock_all([&name, &name]).await.unwrap();
    assert_eq!(lock.resources().len(), 1);
    assert!(masters.0[0].holds(name.as_bytes(), lock.token()));
    assert!(manager.is_locked(&name).await.unwrap().is_held_by(&lock));
    manager.unlock(&mut lock).await.unwrap();
    manager.close().await;
}

/// A waiter on `[a, b]` while `b` is held wakes on `b`'s release notification, long before
/// its retry delay (10 s) would have let it try again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_wakes_on_the_release_of_any_member() {
    let masters = Masters::start(3);
    let holder = builder(&masters.urls()).build().unwrap();
    let waiter = builder(&masters.urls())
        .retry_delay(ms(10_000))
        .retry_jitter(ms(0))
        .build()
        .unwrap();
    let r = names("wake", 2);
    let mut held = holder.lock(&r[1]).ttl(ms(60_000)).await.unwrap();
    let set = r.clone();
    let w = waiter.clone();
    let waiting = tokio::spawn(async move {
        let started = Instant::now();
        let lock = w.lock_all(&set).wait(ms(30_000)).await;
        (lock, started.elapsed())
    });
    // The waiter subscribes after its first refusal.
    assert!(
        eventually(ms(3_000), || waiter.subscribed_resources() == 2).await,
        "the waiter subscribes to every member's channel"
    );
    tokio::time::sleep(ms(200)).await;
    let released = Instant::now();
    holder.unlock(&mut held).await.unwrap();
    let (lock, _) = within(ms(5_000), "woken waiter", waiting).await.unwrap();
    let mut lock = lock.unwrap();
    let woke = released.elapsed();
    assert!(woke < ms(5_000), "woken {woke:?} after the release");
    waiter.unlock(&mut lock).await.unwrap();
    assert!(
        eventually(ms(2_000), || waiter.subscribed_resources() == 0).await,
        "subscriptions end with the wait"
    );
    holder.close().await;
    waiter.close().await;
}

/// A guard over a set extends every key while it lives; when one member's keys vanish on a
/// majority, the next extension finds the set no longer whole and the guard is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guard_extends_the_whole_set_and_is_lost_as_a_whole() {
    let masters = Masters::start(3);
    let manager = builder(&masters.urls()).build().unwrap();
    let r = names("guard", 3);
    let guard = manager
        .acquire_all(&r)
        .ttl(ms(900))
        .auto_extend()
        .await
        .unwrap();
    assert_eq!(guard.resources().len(), 3);
    tokio::time::sleep(ms(2_000)).await;
    assert!(guard.is_valid(), "extended past its first TTL");
    for server in masters.iter() {
        for name in &r {
            assert!(
                server.holds(name.as_bytes(), guard.token()),
                "{:?}",
                server.dump()
            );
        }
    }
    // One member disappears on two masters: extension is all or nothing per master.
    for server in &masters.0[..2] {
        server.cmd(&["DEL", &r[1]]);
    }
    within(ms(3_000), "loss", guard.lost()).await;
    assert_eq!(guard.loss_cause(), Some(LossCause::ExpiredOrTaken));
    // Extension touched no master where the set was not whole: the other keys there keep
    // their last TTL and expire.
    drop(guard);
    settle(&manager).await;
    assert!(
        eventually(ms(2_000), || masters.iter().all(|s| s.dbsize() == 0)).await,
        "keys left: {:?}",
        masters.iter().map(|s| s.dump()).collect::<Vec<_>>()
    );
    manager.close().await;
}

/// With fencing, a set gets one token per resource, from each resource's own counter: a
/// later single-resource lock of a member gets a larger token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fencing_tokens_per_resource_order_with_single_locks() {
    let masters = Masters::start(3);
    let manager = builder(&masters.urls()).fencing(true).build().unwrap();
    let r = names("fence", 2);
    let mut first = manager.lock(&r[1]).await.unwrap();
    let t_b = first.fencing_token().unwrap();
    manager.unlock(&mut first).await.unwrap();
    let mut set = manager.lock_all(&r).await.unwrap();
    let tokens = set.fencing_tokens().to_vec();
    assert_eq!(tokens.len(), 2);
    assert_eq!(set.fencing_token(), None);
    assert!(
        tokens[1] > t_b,
        "b's counter moved on: {tokens:?} after {t_b}"
    );
    manager.unlock(&mut set).await.unwrap();
    let mut after = manager.lock(&r[0]).await.unwrap();
    assert!(after.fencing_token().unwrap() > tokens[0]);
    manager.unlock(&mut after).await.unwrap();
    manager.close().await;
}

/// One master of three killed: sets are still locked, extended and released; the dead
/// master's releases are parked, not awaited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_master_is_tolerated() {
    let mut masters = Masters::start(3);
    let manager = builder(&masters.urls())
        .node_timeout(ms(300))
        .build()
        .unwrap();
    let r = names("dead", 3);
    let mut warm = manager.lock_all(&r).await.unwrap();
    manager.unlock(&mut warm).await.unwrap();
    masters.0[2].kill();
    let mut lock = watchdog("lock with a dead master", manager.lock_all(&r))
        .await
        .unwrap();
    assert!(lock.is_valid());
    watchdog("extend", manager.extend(&mut lock, ms(5_000)))
        .await
        .unwrap();
    watchdog("unlock", manager.unlock(&mut lock)).await.unwrap();
    for server in &masters.0[..2] {
        assert_eq!(server.dbsize(), 0, "{:?}", server.dump());
    }
    manager.close().await;
}

/// 200 acquisitions of overlapping sets over 3 masters (replies delayed 1 ms), each dropped
/// after a random 0–10 ms, 20 at a time: after each batch no key is left anywhere and no
/// background task runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_acquisitions_leave_no_key() {
    const SEED: u64 = 0x5EED_0A11;
    install_diagnostics();
    let masters = Masters::start(3);
    let r = names("drop", 5);
    let warm = r.clone();
    let (manager, _proxies) =
        dropping_manager(&masters, |m| async move { m.lock_all(&warm).await }).await;
    drop_storm(
        &manager,
        SEED,
        |m, rng, _| {
            let start = rng.random_range(0..r.len());
            let len = rng.random_range(1..=3);
            let chosen: Vec<String> = (0..len).map(|k| r[(start + k) % r.len()].clone()).collect();
            async move { m.lock_all(&chosen).await }
        },
        || empty(&masters),
    )
    .await;
    manager.close().await;
    assert_no_error_log_and_no_worker_panic();
}

/// Contention: 40 tasks over two managers take random overlapping sets of 6 resources (and
/// single locks) 5 times each, waiting for them; while held, each resource's occupancy is
/// counted: never two holders of one resource. Afterwards every key is gone.
async fn contention_on(n: usize) {
    let masters = Masters::start(n);
    let managers: Vec<LockManager> = (0..2)
        .map(|_| {
            builder(&masters.urls())
                .node_timeout(RELAXED)
                .retry_delay(ms(20))
                .retry_jitter(ms(15))
                .build()
                .unwrap()
        })
        .collect();
    let r = names("contend", 6);
    let occupancy: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let overlaps = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut tasks = JoinSet::new();
    for t in 0..40u64 {
        let m = managers[(t % 2) as usize].clone();
        let (r, occupancy, overlaps) = (r.clone(), Arc::clone(&occupancy), Arc::clone(&overlaps));
        tasks.spawn(async move {
            let mut rng = StdRng::seed_from_u64(t);
            let mut held = 0;
            for _ in 0..5 {
                let len = rng.random_range(1..=3);
                let chosen: Vec<String> = (0..len)
                    .map(|_| r[rng.random_range(0..r.len())].clone())
                    .collect();
                let Ok(mut lock) = m.lock_all(&chosen).ttl(ms(5_000)).wait(ms(20_000)).await else {
                    continue;
                };
                let mine: Vec<String> = lock
                    .resources()
                    .map(|x| String::from_utf8(x.to_vec()).unwrap())
                    .collect();
                {
                    let mut occ = occupancy.lock().unwrap();
                    for name in &mine {
                        let c = occ.entry(name.clone()).or_default();
                        *c += 1;
                        if *c > 1 {
                            overlaps.lock().unwrap().push(name.clone());
                        }
                    }
                }
                tokio::time::sleep(ms(rng.random_range(1..5))).await;
                {
                    let mut occ = occupancy.lock().unwrap();
                    for name in &mine {
                        *occ.get_mut(name).unwrap() -= 1;
                    }
                }
                assert!(lock.is_valid(), "held past its deadline");
                m.unlock(&mut lock).await.unwrap();
                held += 1;
            }
            held
        });
    }
    let mut total = 0;
    while let Some(held) = tasks.join_next().await {
        total += held.unwrap();
    }
    let overlaps = overlaps.lock().unwrap().clone();
    assert!(overlaps.is_empty(), "two holders at once of {overlaps:?}");
    assert!(total >= 150, "only {total} of 200 acquisitions succeeded");
    for m in &managers {
        settle(m).await;
    }
    for server in masters.iter() {
        assert_eq!(server.dbsize(), 0, "{:?}", server.dump());
    }
    println!("{n} masters: {total} sets held, no overlap");
    for m in &managers {
        m.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contention_never_overlaps_on_1_3_and_5_masters() {
    for n in [1, 3, 5] {
        within(ms(120_000), &format!("contention on {n}"), contention_on(n)).await;
    }
}
