//! Counting semaphores (`semaphore(name, k)`) against real masters: k slot keys, at most k
//! holders under contention, permits released, extended and lost one by one, waiting woken
//! by a release, users disagreeing on k refused, cancellation, a dead master.
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

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rand::{RngExt, SeedableRng, rngs::StdRng};
use support::checks::{
    FOREIGN_FORMS, RELAXED, assert_no_key_without_ttl, builder, ms, plant_foreign, remove_foreign,
    render, settle, watchdog, within,
};
use support::diagnostics::{
    assert_no_error_log_and_no_worker_panic, install as install_diagnostics,
};
use support::drops::{drop_storm, dropping_manager};
use support::servers::{Masters, RedisServer};
use support::{eventually, unique_name};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_redlock::{LockError, LockManager, LossCause, MAX_PERMITS, NodeStatus};

/// The slot key of permit `i` of the semaphore `name` (no prefix, no hash tag).
fn slot(name: &str, i: u32) -> String {
    format!("{{{name}}}:permit:{i}")
}

/// The slot keys that hold a value on `server`.
fn taken_slots(server: &RedisServer, name: &str, k: u32) -> Vec<u32> {
    (0..k)
        .filter(|i| server.exists(slot(name, *i).as_bytes()))
        .collect()
}

/// Only the permits key (with a TTL) may be left of the semaphore once every permit is gone.
fn assert_only_permits_key_left(masters: &Masters, name: &str, k: u32) {
    for (m, server) in masters.iter().enumerate() {
        assert!(
            taken_slots(server, name, k).is_empty(),
            "master {m}: slots left {:?}",
            server.dump()
        );
    }
    assert_no_key_without_ttl(masters.iter());
}

/// k = 3 on `n` masters: three permits on three distinct slots, a fourth refused, one
/// released and taken again, one extended on its own.
async fn cycle_on(n: usize) {
    let masters = Masters::start(n);
    let manager = builder(&masters.urls()).retry_count(0).build().unwrap();
    let name = unique_name("sem");
    let sem = manager.semaphore(&name, 3);
    assert_eq!(sem.permits(), 3);
    assert_eq!(sem.name(), name.as_bytes());
    let mut permits = Vec::new();
    for _ in 0..3 {
        permits.push(sem.lock().ttl(ms(5_000)).await.unwrap());
    }
    let tokens: HashSet<String> = permits.iter().map(|p| p.token().to_owned()).collect();
    assert_eq!(tokens.len(), 3);
    assert!(permits.iter().all(|p| p.resource() == name.as_bytes()));
    // Each permit holds its own slot on a quorum; together they hold the three slots.
    let mut slots_held = HashSet::new();
    for p in &permits {
        let holding: Vec<u32> = (0..3)
            .filter(|i| {
                masters
                    .iter()
                    .filter(|s| s.holds(slot(&name, *i).as_bytes(), p.token()))
                    .count()
                    >= manager.quorum()
            })
            .collect();
        assert_eq!(holding.len(), 1, "one slot per permit: {holding:?}");
        slots_held.insert(holding[0]);
    }
    assert_eq!(slots_held.len(), 3);
    let e = sem.try_lock().await.unwrap_err();
    assert!(e.is_conflict(), "{}", render(&e));
    // The permits key records k.
    for server in masters.iter() {
        assert_eq!(
            server
                .get(format!("{{{name}}}:permits").as_bytes())
                .unwrap(),
            b"3"
        );
    }
    assert_no_key_without_ttl(masters.iter());

    // Extend one: its slot's TTL alone moves.
    manager.extend(&mut permits[0], ms(20_000)).await.unwrap();
    assert!(permits[0].validity() > ms(15_000));
    assert!(permits[1].validity() < ms(5_000));
    // Release one: a new permit is granted.
    manager.unlock(&mut permits[1]).await.unwrap();
    let mut again = sem.try_lock().await.unwrap();
    assert!(sem.try_lock().await.unwrap_err().is_conflict());
    manager.unlock(&mut again).await.unwrap();
    for p in &mut permits {
        if p.is_valid() {
            manager.unlock(p).await.unwrap();
        }
    }
    settle(&manager).await;
    assert_only_permits_key_left(&masters, &name, 3);
    manager.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permits_cycle_on_1_3_and_5_masters() {
    for n in [1, 3, 5] {
        watchdog(&format!("cycle on {n}"), cycle_on(n)).await;
    }
}

/// 30 tasks on two managers each take a permit of a k = 3 semaphore 4 times, waiting for
/// it, and count the holders while they hold: never more than 3, and 3 at some point.
async fn at_most_k_on(n: usize) {
    const K: u32 = 3;
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
    let name = unique_name("k-holders");
    let holders = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let mut tasks = JoinSet::new();
    for t in 0..30u64 {
        let m = managers[(t % 2) as usize].clone();
        let (name, holders, most) = (name.clone(), Arc::clone(&holders), Arc::clone(&most));
        tasks.spawn(async move {
            let mut rng = StdRng::seed_from_u64(t);
            let mut held = 0;
            for _ in 0..4 {
                let sem = m.semaphore(&name, K);
                let Ok(mut permit) = sem.lock().ttl(ms(5_000)).wait(ms(30_000)).await else {
                    continue;
                };
                let now = holders.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(ms(rng.random_range(2..10))).await;
                holders.fetch_sub(1, Ordering::SeqCst);
                assert!(permit.is_valid());
                m.unlock(&mut permit).await.unwrap();
                held += 1;
            }
            held
        });
    }
    let mut total = 0;
    while let Some(held) = tasks.join_next().await {
        total += held.unwrap();
    }
    let most = most.load(Ordering::SeqCst);
    println!("{n} masters: {total} permits held, at most {most} at once");
    assert!(most <= K as usize, "{most} holders at once, k = {K}");
    assert_eq!(
        most, K as usize,
        "the k permits were all in use at some point"
    );
    assert!(total >= 100, "only {total} of 120 permits");
    for m in &managers {
        settle(m).await;
    }
    assert_only_permits_key_left(&masters, &name, K);
    for m in &managers {
        m.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_more_than_k_holders_on_1_3_and_5_masters() {
    for n in [1, 3, 5] {
        within(ms(120_000), &format!("contention on {n}"), at_most_k_on(n)).await;
    }
}

/// Users disagreeing on k: the second is refused with a typed error, nothing taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_disagreeing_on_the_number_of_permits_are_refused() {
    let masters = Masters::start(3);
    let manager = builder(&masters.urls()).build().unwrap();
    let name = unique_name("mismatch");
    let mut two = manager.semaphore(&name, 2).lock().await.unwrap();
    let e = manager.semaphore(&name, 3).lock().await.unwrap_err();
    assert!(e.is_permits_mismatch(), "{}", render(&e));
    assert!(
        matches!(
            &e,
            LockError::PermitsMismatch {
                permits: 3,
                found: Some(2),
                ..
            }
        ),
        "{e:?}"
    );
    assert!(render(&e).contains("2 permits"));
    // Each master that answered says what it recorded, not that the key is no lock.
    let shown = e.to_string();
    assert!(
        shown.contains("the semaphore is recorded with 2 permits") && !shown.contains("non-lock"),
        "{shown}"
    );
    assert!(
        e.outcomes()
            .iter()
            .any(|o| matches!(o.status(), NodeStatus::OtherPermits { recorded: Some(2) })),
        "{e:?}"
    );
    settle(&manager).await;
    // The first lock returned at a quorum: the slowest master's grant may land just after.
    let each_one = || masters.iter().all(|s| taken_slots(s, &name, 3).len() == 1);
    assert!(
        eventually(ms(5_000), each_one).await,
        "only the first user's slot, on every master: {:?}",
        masters
            .iter()
            .map(|s| taken_slots(s, &name, 3))
            .collect::<Vec<_>>()
    );
    manager.unlock(&mut two).await.unwrap();

    // Bad numbers and reserved names: refused before any request.
    for k in [0, MAX_PERMITS + 1] {
        let e = manager.semaphore("x", k).lock().await.unwrap_err();
        assert!(matches!(e, LockError::InvalidArgument(_)), "{}", render(&e));
    }
    for reserved in [slot(&name, 0), format!("{{{name}}}:permits")] {
        let e = manager.try_lock(&reserved).await.unwrap_err();
        assert!(e.is_reserved_key(), "{}", render(&e));
    }
    manager.close().await;
}

/// Another application's value where a semaphore records its number of permits (a hash, a
/// string that is no number, or the right number written otherwise, such as `2.0`) is not a
/// record of this semaphore: the permit is refused as a disagreement on the number, naming
/// no number (never "used with 2 permits elsewhere, not 2"), with nothing written, and the
/// value stays as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_value_at_the_permits_key_is_refused_and_kept() {
    let masters = Masters::start(1);
    let manager = builder(&masters.urls()).retry_count(0).build().unwrap();
    for foreign in ["hash", "text", "2.0", " 2", "+2"] {
        let name = unique_name(foreign);
        let permits_key = format!("{{{name}}}:permits");
        if foreign == "hash" {
            masters[0].cmd(&["HSET", &permits_key, "owner", "billing"]);
        } else if foreign == "text" {
            masters[0].cmd(&["SET", &permits_key, "not-a-number"]);
        } else {
            masters[0].cmd(&["SET", &permits_key, foreign]);
        }
        let e = manager.semaphore(&name, 2).lock().await.unwrap_err();
        assert!(
            matches!(&e, LockError::PermitsMismatch { found: None, .. }),
            "{}",
            render(&e)
        );
        assert!(
            e.outcomes()
                .iter()
                .any(|o| matches!(o.status(), NodeStatus::OtherPermits { recorded: None })),
            "{e:?}"
        );
        assert_eq!(masters[0].dbsize(), 1, "{:?}", masters[0].dump());
        assert_eq!(
            masters[0].pttl(permits_key.as_bytes()),
            -1,
            "its TTL is untouched"
        );
        if foreign == "hash" {
            let kept = masters[0].cmd(&["HGET", &permits_key, "owner"]);
            assert_eq!(kept, redis::Value::BulkString(b"billing".to_vec()));
        } else {
            let written = if foreign == "text" {
                "not-a-number"
            } else {
                foreign
            };
            assert_eq!(
                masters[0].get(permits_key.as_bytes()).as_deref(),
                Some(written.as_bytes())
            );
        }
        assert!(!e.to_string().contains("with 2 permits elsewhere"), "{e}");
        masters[0].cmd(&["DEL", &permits_key]);
    }
    manager.close().await;
}

/// A slot holding a value no permit holder wrote (a hash, or a string without a TTL) is
/// never freed. While the other slots are taken, a permit is refused at once with the typed
/// `NotALock`, not a conflict that a wait would sit out to its end; the value is left as it
/// was, and a free slot beside it is still granted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_value_in_a_slot_is_not_a_permit_holder() {
    let masters = Masters::start(3);
    let manager = builder(&masters.urls()).retry_count(0).build().unwrap();
    for form in FOREIGN_FORMS {
        let name = unique_name(form);
        plant_foreign(&masters, &slot(&name, 0), form);
        // k = 2: the other slot is free and granted.
        let mut held = manager.semaphore(&name, 2).lock().await.unwrap();
        let both = || masters.iter().all(|m| taken_slots(m, &name, 2) == [0, 1]);
        assert!(
            eventually(ms(5_000), both).await,
            "slot 1 granted beside the value"
        );
        // Both taken now: refused at once as not a lock, also by a waiting call.
        let started = Instant::now();
        let e = manager
            .semaphore(&name, 2)
            .lock()
            .wait(ms(5_000))
            .await
            .unwrap_err();
        assert!(e.is_not_a_lock(), "{}", render(&e));
        assert!(
            started.elapsed() < ms(2_000),
            "not waited out: {:?}",
            started.elapsed()
        );
        manager.unlock(&mut held).await.unwrap();
        remove_foreign(&masters, &slot(&name, 0));
    }
    settle(&manager).await;
    manager.close().await;
}

/// Every permit held (60 s TTL): a waiter with a 10 s retry delay is woken by a release
/// notification and gets the freed permit at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_is_woken_by_a_released_permit() {
    let masters = Masters::start(3);
    let holder = builder(&masters.urls()).build().unwrap();
    let waiter = builder(&masters.urls())
        .retry_delay(ms(10_000))
        .retry_jitter(ms(0))
        .build()
        .unwrap();
    let name = unique_name("wake");
    let mut a = holder
        .semaphore(&name, 2)
        .lock()
        .ttl(ms(60_000))
        .await
        .unwrap();
    let mut b = holder
        .semaphore(&name, 2)
        .lock()
        .ttl(ms(60_000))
        .await
        .unwrap();
    let (w, n) = (waiter.clone(), name.clone());
    let waiting = tokio::spawn(async move { w.semaphore(&n, 2).lock().wait(ms(30_000)).await });
    assert!(
        eventually(ms(3_000), || waiter.subscribed_resources() == 1).await,
        "the waiter subscribes to the semaphore's channel"
    );
    tokio::time::sleep(ms(200)).await;
    let released = Instant::now();
    holder.unlock(&mut a).await.unwrap();
    let mut permit = within(ms(5_000), "woken waiter", waiting)
        .await
        .unwrap()
        .unwrap();
    let woke = released.elapsed();
    assert!(woke < ms(5_000), "woken {woke:?} after the release");
    waiter.unlock(&mut permit).await.unwrap();
    holder.unlock(&mut b).await.unwrap();
    holder.close().await;
    waiter.close().await;
}

/// A permit as a guard extends its own slot; when its slot vanishes on a majority the guard
/// is lost, and the other permit is untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permit_guards_extend_and_are_lost_one_by_one() {
    let masters = Masters::start(3);
    let manager = builder(&masters.urls()).build().unwrap();
    let name = unique_name("guard");
    let sem = manager.semaphore(&name, 2);
    let first = sem.acquire().ttl(ms(900)).auto_extend().await.unwrap();
    let second = sem.acquire().ttl(ms(900)).auto_extend().await.unwrap();
    tokio::time::sleep(ms(2_000)).await;
    assert!(
        first.is_valid() && second.is_valid(),
        "extended past the TTL"
    );
    // Find the first guard's slot and delete it on two masters.
    let mine = (0..2)
        .find(|i| masters.0[0].holds(slot(&name, *i).as_bytes(), first.token()))
        .expect("the first guard's slot");
    for server in &masters.0[..2] {
        server.cmd(&["DEL", &slot(&name, mine)]);
    }
    within(ms(3_000), "loss", first.lost()).await;
    assert_eq!(first.loss_cause(), Some(LossCause::ExpiredOrTaken));
    tokio::time::sleep(ms(1_000)).await;
    assert!(second.is_valid(), "the other permit lives on");
    drop(first);
    second.release().await.unwrap();
    settle(&manager).await;
    assert!(
        eventually(ms(2_000), || masters
            .iter()
            .all(|s| taken_slots(s, &name, 2).is_empty()))
        .await
    );
    manager.close().await;
}

/// One master of three killed: permits are still taken, extended and released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_master_is_tolerated() {
    let mut masters = Masters::start(3);
    let manager = builder(&masters.urls())
        .node_timeout(ms(300))
        .retry_count(0)
        .build()
        .unwrap();
    let name = unique_name("dead");
    let sem = manager.semaphore(&name, 2);
    let mut warm = sem.lock().await.unwrap();
    manager.unlock(&mut warm).await.unwrap();
    masters.0[1].kill();
    let mut a = watchdog("permit a", sem.lock()).await.unwrap();
    let mut b = watchdog("permit b", sem.lock()).await.unwrap();
    assert!(
        watchdog("third", sem.lock())
            .await
            .unwrap_err()
            .is_conflict()
    );
    watchdog("extend", manager.extend(&mut a, ms(5_000)))
        .await
        .unwrap();
    watchdog("unlock a", manager.unlock(&mut a)).await.unwrap();
    watchdog("unlock b", manager.unlock(&mut b)).await.unwrap();
    for i in [0, 2] {
        assert!(taken_slots(&masters.0[i], &name, 2).is_empty());
    }
    manager.close().await;
}

/// 200 permit acquisitions (k = 2, replies delayed 1 ms), each dropped after a random
/// 0–10 ms, 20 at a time: after each batch no slot is taken anywhere and no background task
/// runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_acquisitions_leave_no_slot() {
    const SEED: u64 = 0x5EED_5E4A;
    install_diagnostics();
    let masters = Masters::start(3);
    let name = unique_name("drop");
    let warm = name.clone();
    let (manager, _proxies) =
        dropping_manager(
            &masters,
            |m| async move { m.semaphore(&warm, 2).lock().await },
        )
        .await;
    drop_storm(
        &manager,
        SEED,
        |m, _, _| {
            let name = name.clone();
            async move { m.semaphore(&name, 2).lock().await }
        },
        || match masters
            .iter()
            .find(|s| !taken_slots(s, &name, 2).is_empty())
        {
            Some(server) => Err(format!("slots taken: {:?}", server.dump())),
            None => Ok(()),
        },
    )
    .await;
    assert_no_key_without_ttl(masters.iter());
    manager.close().await;
    assert_no_error_log_and_no_worker_panic();
}

/// A name serves as a lock or as a semaphore: the two do not exclude each other (documented),
/// and neither disturbs the other's keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_and_a_semaphore_on_one_name_are_separate() {
    let masters = Masters::start(3);
    let manager = builder(&masters.urls()).retry_count(0).build().unwrap();
    let name = unique_name("both");
    let mut lock = manager.lock(&name).await.unwrap();
    let mut permit = manager.semaphore(&name, 1).lock().await.unwrap();
    assert!(manager.is_locked(&name).await.unwrap().is_held_by(&lock));
    manager.unlock(&mut permit).await.unwrap();
    manager.unlock(&mut lock).await.unwrap();
    manager.close().await;
}

/// The semaphore `{X}` (a name in braces) would keep its slots and permits key where the
/// semaphore `X` keeps them (`{X}:permit:<n>`, `{X}:permits`): two differently named
/// semaphores sharing their permits. It is refused before any request, with a typed error
/// that names the key it would share; `X` itself and a name with braces inside work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_semaphore_on_a_braced_name_is_refused_before_any_request() {
    let masters = Masters::start(1);
    let manager = builder(&masters.urls()).retry_count(0).build().unwrap();
    let name = unique_name("brace");
    let braced = format!("{{{name}}}");
    let e = manager.semaphore(&braced, 2).lock().await.unwrap_err();
    assert!(e.is_invalid_input(), "{e:?}");
    let message = e.to_string();
    assert!(message.contains("no semaphore on the key"), "{message}");
    assert!(message.contains(&format!("`{name}`")), "{message}");
    let e = manager.semaphore(&braced, 2).acquire().await.unwrap_err();
    assert!(e.is_invalid_input(), "{e:?}");
    assert_eq!(masters[0].dbsize(), 0, "{:?}", masters[0].dump());

    let mut plain = manager.semaphore(&name, 2).lock().await.unwrap();
    let inner = format!("{{{name}}}:sem");
    let mut tagged = manager.semaphore(&inner, 2).lock().await.unwrap();
    manager.unlock(&mut tagged).await.unwrap();
    manager.unlock(&mut plain).await.unwrap();
    manager.close().await;
}

/// `inspect_permits` shows each master's record: the number of permits, the slots held with
/// the holders' tokens and their remaining TTL; a dead master is its own error, not the
/// call's; after the releases no slot is held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspect_permits_shows_each_masters_slots_and_holders() {
    let mut masters = Masters::start(3);
    let manager = builder(&masters.urls()).build().unwrap();
    let name = unique_name("inspect-permits");

    // Nothing recorded before any permit is taken.
    for m in manager.inspect_permits(&name).await.unwrap() {
        let slots = m.state.unwrap();
        assert_eq!((slots.permits, slots.held.len()), (None, 0), "{slots:?}");
    }
    let semaphore = manager.semaphore(&name, 3);
    let mut a = semaphore.lock().ttl(ms(10_000)).await.unwrap();
    let mut b = semaphore.lock().ttl(ms(10_000)).await.unwrap();
    settle(&manager).await;
    let seen = manager.inspect_permits(&name).await.unwrap();
    assert_eq!(seen.len(), 3);
    for m in &seen {
        let slots = m.state.as_ref().unwrap();
        assert_eq!(slots.permits, Some(3), "{m:?}");
        assert_eq!(slots.held.len(), 2, "{m:?}");
        let mut tokens: Vec<&[u8]> = slots.held.iter().map(|h| h.holder.as_bytes()).collect();
        tokens.sort_unstable();
        let mut expected = [a.token().as_bytes(), b.token().as_bytes()];
        expected.sort_unstable();
        assert_eq!(tokens, expected, "{m:?}");
        for h in &slots.held {
            assert!(h.slot < 3, "{h:?}");
            let left = h.remaining.unwrap();
            assert!(left > ms(5_000) && left <= ms(10_000), "{h:?}");
        }
        assert!(
            !format!("{m:?}").contains(a.token()),
            "a token is never shown whole"
        );
    }

    // A dead master reports its failure; the others still answer.
    masters[2].kill();
    let seen = manager.inspect_permits(&name).await.unwrap();
    assert!(seen[0].state.is_ok() && seen[1].state.is_ok(), "{seen:?}");
    assert!(seen[2].state.is_err(), "{seen:?}");

    manager.unlock(&mut a).await.unwrap();
    manager.unlock(&mut b).await.unwrap();
    for m in manager.inspect_permits(&name).await.unwrap().iter().take(2) {
        assert!(m.state.as_ref().unwrap().held.is_empty(), "{m:?}");
    }
    manager.close().await;
    assert!(
        manager
            .inspect_permits(&name)
            .await
            .is_err_and(|e| matches!(e, LockError::Closed))
    );
}

/// The number of permits is checked while permits are held, extended ones included: a
/// holder of a 1-permit semaphore that extends its permit past the first TTL still keeps a
/// user who says 2 permits out (else that user takes slot 1 beside the holder of slot 0, and
/// the 1-permit user is no longer alone).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_extended_permit_keeps_the_number_of_permits_checked() {
    let masters = Masters::start(3);
    let manager = builder(&masters.urls()).retry_count(0).build().unwrap();
    let name = unique_name("mismatch-extended");
    let mut one = manager
        .semaphore(&name, 1)
        .lock()
        .ttl(ms(1_000))
        .await
        .unwrap();
    manager.extend(&mut one, ms(20_000)).await.unwrap();
    // The first grant's TTL has run out; the permit, extended, is held.
    tokio::time::sleep(ms(1_500)).await;
    assert!(one.is_valid());
    match manager.semaphore(&name, 2).lock().await {
        Ok(mut other) => {
            let slots: Vec<Vec<u32>> = masters.iter().map(|s| taken_slots(s, &name, 2)).collect();
            manager.unlock(&mut other).await.unwrap();
            panic!("a 2-permit user got a permit beside the 1-permit holder: slots {slots:?}");
        }
        Err(e) => assert!(e.is_permits_mismatch(), "{}", render(&e)),
    }
    manager.unlock(&mut one).await.unwrap();
    settle(&manager).await;
    manager.close().await;
}

/// A thousand waiters on a 3-permit semaphore on 3 masters, each holding its permit for
/// about a millisecond: permits keep being granted (a plain lock under the same load hands
/// over hundreds of times a second), every waiter that gives up gets a typed conflict, and
/// nothing is left. A release wakes every waiter at once; if they all try together, each
/// master gives the freed slot to another of them, no slot reaches a quorum, and the
/// permits go round without a holder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_waiters_keep_getting_permits() {
    let masters = Masters::start(3);
    let managers: Vec<LockManager> = (0..3)
        .map(|_| {
            builder(&masters.urls())
                .node_timeout(RELAXED)
                .retry_delay(ms(10))
                .retry_jitter(ms(10))
                .build()
                .unwrap()
        })
        .collect();
    let name = unique_name("herd");
    let granted = Arc::new(AtomicUsize::new(0));
    let holders = Arc::new(AtomicUsize::new(0));
    let mut tasks = JoinSet::new();
    let start = Instant::now();
    for t in 0..1_000usize {
        let m = managers[t % 3].clone();
        let (name, granted, holders) = (name.clone(), Arc::clone(&granted), Arc::clone(&holders));
        tasks.spawn(async move {
            match m
                .semaphore(&name, 3)
                .lock()
                .ttl(ms(10_000))
                .wait(ms(20_000))
                .await
            {
                Ok(mut permit) => {
                    assert!(holders.fetch_add(1, Ordering::SeqCst) < 3, "a 4th holder");
                    tokio::time::sleep(ms(1)).await;
                    holders.fetch_sub(1, Ordering::SeqCst);
                    granted.fetch_add(1, Ordering::SeqCst);
                    m.unlock(&mut permit).await.unwrap();
                }
                Err(e) => assert!(
                    e.is_conflict(),
                    "after {:?}: {}",
                    start.elapsed(),
                    render(&e)
                ),
            }
        });
    }
    within(ms(90_000), "the waiters", async {
        while let Some(done) = tasks.join_next().await {
            done.unwrap();
        }
    })
    .await;
    let granted = granted.load(Ordering::SeqCst);
    println!("{granted} of 1000 permits granted in {:?}", start.elapsed());
    for m in &managers {
        settle(m).await;
    }
    assert_only_permits_key_left(&masters, &name, 3);
    for m in &managers {
        m.close().await;
        assert_eq!(m.background_tasks(), 0);
    }
    assert!(
        granted >= 500,
        "only {granted} of 1000 waiters got a permit in 20 s"
    );
}
