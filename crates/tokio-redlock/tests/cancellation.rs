//! Cancellation: dropping a lock manager, an acquisition or an extension at any point leaves
//! no key of the dropped attempt behind, no background task running, no panic and no error
//! log (field cases C08, C13 without auto-extend, C14 without auto-extend, C24 for `extend`).
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

use std::collections::BTreeSet;
use std::time::Duration;

use rand::{RngExt, SeedableRng, rngs::StdRng};
use support::{
    checks::{Observation, assert_no_key_without_ttl, proxies_for, settle_within, spawn_poller},
    eventually,
    proxy::FaultProxy,
    servers::Masters,
};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_redlock::{LockError, LockManager};

// ---------------------------------------------------------------------------------------
// Diagnostics: ERROR events and panics on runtime threads, for the whole test binary.
//
// A tracing subscriber set with `set_default` is thread-local and would not see events
// emitted on tokio's worker threads (where the library's background tasks run), so the
// recorder is installed as the global default, once. Panics of spawned tasks (which nobody
// joins: "unobserved task failures") happen on tokio's threads (`tokio-rt-worker`, formerly
// `tokio-runtime-worker`), while a test's own assertions fail on its libtest thread; the
// panic hook records the former. No test in this file panics on purpose in a spawned task, so any
// entry is a failure of the cancellation contract.
// ---------------------------------------------------------------------------------------

use support::diagnostics::{
    assert_no_error_log_and_no_worker_panic, install as install_diagnostics,
};

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// Opens the manager's connections to every master and caches the acquire and release
/// scripts there (one lock/unlock cycle), then waits until the cycle's stragglers are done.
async fn warm_up(manager: &LockManager) {
    let mut lock = manager.lock("warm-up").await.expect("warm-up lock");
    manager.unlock(&mut lock).await.expect("warm-up unlock");
    assert!(
        eventually(Duration::from_secs(2), || manager.background_tasks() == 0).await,
        "warm-up stragglers did not finish"
    );
}

// ---------------------------------------------------------------------------------------
// C08 — a manager dropped or closed right after "not acquired"
// ---------------------------------------------------------------------------------------

async fn c08_case(close: bool) {
    install_diagnostics();
    let masters = Masters::start(1);
    let server = &masters[0];
    let b = LockManager::builder()
        .servers(masters.urls())
        .build()
        .unwrap();
    let mut b_lock = b.lock("r").ttl(Duration::from_secs(10)).await.unwrap();

    let a = LockManager::builder()
        .servers(masters.urls())
        .build()
        .unwrap();
    // "Not acquired" is `LockError::Conflict` in this API: the resource stayed held by B.
    let err = a.lock("r").retry_count(1).await.unwrap_err();
    assert!(err.is_conflict(), "expected Conflict, got {err:?}");
    if close {
        // `close` awaits every background cleanup, so nothing of A's is left running.
        a.close().await;
        assert_eq!(
            a.background_tasks(),
            0,
            "close() must await background tasks"
        );
    }
    drop(a);

    // Keep the runtime alive for 1 s: any straggler of A's would run (and fail) now.
    tokio::time::sleep(Duration::from_secs(1)).await;

    // A's attempt tokens were never handed out, so "no key or value carrying A's token" is
    // checked as: the only key on the server is `r`, holding B's token.
    let keys = server.dump();
    assert_eq!(
        keys,
        vec![("r".to_owned(), Some(b_lock.token().as_bytes().to_vec()))],
        "only B's key may exist"
    );
    let pttl = server.pttl(b"r");
    assert!(
        (7_000..=10_000).contains(&pttl),
        "B's key keeps its TTL: {pttl}"
    );
    assert_no_error_log_and_no_worker_panic();

    b.unlock(&mut b_lock).await.unwrap();
    assert_eq!(server.dbsize(), 0);
    b.close().await;
    assert_no_error_log_and_no_worker_panic();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c08_manager_dropped_after_conflict_leaves_nothing() {
    c08_case(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c08_manager_closed_after_conflict_leaves_nothing() {
    c08_case(true).await;
}

// ---------------------------------------------------------------------------------------
// C14 — acquire dropped after the requests left, before the replies came back
// ---------------------------------------------------------------------------------------

/// C14 without auto-extend (a later issue): 3 masters behind proxies delaying replies by
/// 50 ms; A's acquire (ttl 1 000 ms) is dropped at t = 25 ms. A's keys must disappear within
/// the TTL (≤ 1 050 ms), and — since the library sends a best-effort release on drop — far
/// sooner; no background task survives; B acquires `r` by t ≤ 1 100 ms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c14_acquire_dropped_in_flight_leaves_no_key_and_no_task() {
    install_diagnostics();
    let masters = Masters::start(3);
    let proxies = proxies_for(&masters).await;
    let a = LockManager::builder()
        .servers(proxies.iter().map(FaultProxy::url))
        // Above the 50 ms reply latency, so the latency alone never fails a request.
        .node_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    // Connections open and scripts cached: at t = 25 ms the acquire requests have surely
    // left (no NOSCRIPT round trip, no connection handshake behind the latency).
    warm_up(&a).await;
    for proxy in &proxies {
        proxy.set_reply_latency(Duration::from_millis(50));
    }
    let b = LockManager::builder()
        .servers(masters.urls())
        .retry_count(1_000)
        .retry_delay(Duration::from_millis(20))
        .retry_jitter(Duration::from_millis(10))
        .build()
        .unwrap();

    let t0 = std::time::Instant::now();
    let poller = spawn_poller(
        &masters,
        "r",
        t0,
        Duration::from_secs(3),
        Duration::from_millis(5),
    );
    let dropped = tokio::time::timeout(
        Duration::from_millis(25),
        a.lock("r").ttl(Duration::from_millis(1_000)),
    )
    .await;
    let t_drop = t0.elapsed();
    assert!(
        dropped.is_err(),
        "the acquire must still be pending at t = 25 ms (replies are delayed 50 ms): {dropped:?}"
    );

    let mut b_lock = b
        .lock("r")
        .ttl(Duration::from_secs(10))
        .await
        .expect("B acquires r");
    let t_b = t0.elapsed();

    assert!(
        eventually(Duration::from_secs(1), || a.background_tasks() == 0).await,
        "the cleanup of the dropped acquire must end: {} background tasks left",
        a.background_tasks()
    );

    let observations = tokio::task::spawn_blocking(move || poller.join().unwrap())
        .await
        .unwrap();
    let b_token = b_lock.token().as_bytes().to_vec();
    // Before the drop only A writes `r` (B starts after it), so A's token is whatever the
    // masters held then: one attempt, one token. (B's own failed attempts, if any, write
    // tokens of their own later; they are neither A's nor B's final one, and are ignored.)
    let a_tokens: BTreeSet<&Vec<u8>> = observations
        .iter()
        .filter(|o| o.at < t_drop)
        .filter_map(|o| o.value.as_ref())
        .collect();
    assert_eq!(
        a_tokens.len(),
        1,
        "A's acquire requests must have reached the masters before the drop (premise), \
         with one token"
    );
    let a_token = *a_tokens.first().unwrap();
    let a_seen: Vec<&Observation> = observations
        .iter()
        .filter(|o| o.value.as_ref() == Some(a_token))
        .collect();
    let nodes_before_drop: BTreeSet<usize> = a_seen
        .iter()
        .filter(|o| o.at < t_drop)
        .map(|o| o.node)
        .collect();
    let last_a = a_seen.iter().map(|o| o.at).max();
    println!(
        "dropped at {t_drop:?}; A's key seen before the drop on masters {nodes_before_drop:?}; \
         last seen at {last_a:?}; B acquired at {t_b:?}; {} polls",
        observations.len()
    );
    let last_a = last_a.unwrap();
    // The case's bound: gone within the TTL, 1 050 ms at the latest.
    assert!(
        last_a <= Duration::from_millis(1_050),
        "A's keys outlived the TTL: last seen at {last_a:?}"
    );
    // The library's promise (cancel safety of `lock`): a release is sent on drop, so the keys
    // go after one cleanup round trip (~50 ms here), far sooner than the 1 000 ms TTL.
    assert!(
        last_a < Duration::from_millis(500),
        "A's keys were not released on drop, only expired: last seen at {last_a:?}"
    );
    assert!(
        t_b <= Duration::from_millis(1_100),
        "B acquired r only at {t_b:?}"
    );
    // B holds `r` on a quorum until it unlocks (not necessarily on all three: a master whose
    // cleanup release came after B's attempt refused B), and no master holds anything else.
    let values: Vec<Option<Vec<u8>>> = masters.iter().map(|s| s.get(b"r")).collect();
    let b_keys = values
        .iter()
        .filter(|v| v.as_ref() == Some(&b_token))
        .count();
    assert!(b_keys >= 2, "B must hold r on a quorum: {values:?}");
    assert!(
        values
            .iter()
            .all(|v| v.is_none() || v.as_ref() == Some(&b_token)),
        "only B's token may remain: {values:?}"
    );
    b.unlock(&mut b_lock).await.unwrap();
    assert_no_error_log_and_no_worker_panic();
}

// ---------------------------------------------------------------------------------------
// C13 (without auto-extend) — acquisitions dropped at random points
// ---------------------------------------------------------------------------------------

enum Outcome {
    Dropped,
    Acquired(Result<(), LockError>),
    Failed(LockError),
}

/// C13's kind without auto-extend (a later issue): 200 acquisitions over 3 masters (replies
/// delayed 1 ms by proxies), each dropped after a random 0–5 ms, in batches of 20 concurrent
/// ones; a quarter of them contend for one shared resource (and so fail attempts, clean up and
/// retry), the others use their own. After each batch every background task ends within a
/// second and no key is left on any master (every lock actually returned was unlocked); a
/// fresh client then acquires every resource at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c13_acquire_dropped_at_random_points_leaves_no_key() {
    const SEED: u64 = 0x5EED_C013;
    const ITERATIONS: usize = 200;
    const BATCH: usize = 20;
    let resource_of = |i: usize| {
        if i.is_multiple_of(4) {
            "drop-shared".to_owned()
        } else {
            format!("drop-{i}")
        }
    };
    install_diagnostics();
    let masters = Masters::start(3);
    let proxies = proxies_for(&masters).await;
    let manager = LockManager::builder()
        .servers(proxies.iter().map(FaultProxy::url))
        .node_timeout(Duration::from_millis(500))
        .retry_delay(Duration::from_millis(3))
        .retry_jitter(Duration::from_millis(2))
        .build()
        .unwrap();
    warm_up(&manager).await;
    for proxy in &proxies {
        proxy.set_reply_latency(Duration::from_millis(1));
    }

    let mut rng = StdRng::seed_from_u64(SEED);
    let (mut dropped, mut acquired, mut failed) = (0usize, 0usize, Vec::new());
    for batch in 0..ITERATIONS / BATCH {
        let mut set = JoinSet::new();
        for j in 0..BATCH {
            let i = batch * BATCH + j;
            let delay = Duration::from_micros(rng.random_range(0..=5_000));
            let resource = resource_of(i);
            let m = manager.clone();
            set.spawn(async move {
                match tokio::time::timeout(delay, m.lock(&resource)).await {
                    Err(_) => Outcome::Dropped,
                    Ok(Ok(mut lock)) => Outcome::Acquired(m.unlock(&mut lock).await),
                    Ok(Err(e)) => Outcome::Failed(e),
                }
            });
        }
        while let Some(outcome) = set.join_next().await {
            match outcome.expect("task of the batch") {
                Outcome::Dropped => dropped += 1,
                Outcome::Acquired(unlocked) => {
                    acquired += 1;
                    unlocked.expect("a lock just returned unlocks");
                }
                Outcome::Failed(e) => failed.push(e.to_string()),
            }
        }
        let settled = Instant::now();
        assert!(
            eventually(Duration::from_secs(1), || manager.background_tasks() == 0).await,
            "batch {batch}: {} background tasks still running 1 s after the batch",
            manager.background_tasks()
        );
        let settle = settled.elapsed();
        for (i, server) in masters.iter().enumerate() {
            assert_eq!(
                server.dbsize(),
                0,
                "batch {batch} (settled in {settle:?}): keys left on master {i}: {:?}",
                server.dump()
            );
        }
    }
    println!(
        "seed {SEED:#x}: {dropped} dropped, {acquired} acquired and unlocked, {} failed {failed:?}",
        failed.len()
    );
    assert_eq!(dropped + acquired + failed.len(), ITERATIONS);
    assert!(
        dropped > 0,
        "no acquisition was dropped: the test proves nothing"
    );

    let fresh = LockManager::builder()
        .servers(masters.urls())
        .build()
        .unwrap();
    let names: BTreeSet<String> = (0..ITERATIONS).map(resource_of).collect();
    for name in names {
        let mut lock = fresh
            .try_lock(&name)
            .await
            .unwrap_or_else(|e| panic!("a fresh client must acquire {name} at once: {e}"));
        fresh.unlock(&mut lock).await.unwrap();
    }
    assert_no_error_log_and_no_worker_panic();
}

// ---------------------------------------------------------------------------------------
// C14's kind — acquire dropped while it sleeps between retries
// ---------------------------------------------------------------------------------------

/// B holds `r` on S1 and S2 only (its own 2-master manager), so A's first attempt is granted
/// on S3 and loses (1/3); A's failed attempt must release S3 before it sleeps 400 ms. A is
/// dropped 150 ms in, during that sleep: no key of A's may remain, and no second attempt may
/// happen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c14_acquire_dropped_during_retry_sleep_leaves_no_key() {
    install_diagnostics();
    let masters = Masters::start(3);
    let urls = masters.urls();
    let b = LockManager::builder()
        .servers(urls[..2].to_vec())
        .build()
        .unwrap();
    let mut b_lock = b.lock("r").ttl(Duration::from_secs(10)).await.unwrap();
    let b_token = b_lock.token().as_bytes().to_vec();

    // Polling mode: this test is about the sleep between retries. (With notifications, the
    // first confirmed subscription wakes A for one more attempt, which would blur the count
    // of scripts below; dropping a notified wait is covered in wait.rs.)
    let a = LockManager::builder()
        .servers(urls.clone())
        .notifications(false)
        .retry_count(5)
        .retry_delay(Duration::from_millis(400))
        .retry_jitter(Duration::ZERO)
        .build()
        .unwrap();
    warm_up(&a).await;
    // An acquisition is a plain `SET NX PX` once the connection has run a script; the
    // release is a script.
    let s3_calls = || masters[2].command_calls("evalsha") + masters[2].command_calls("set");
    let s3_calls_before = s3_calls();

    // Boxed (owned), so `drop` below really drops the future.
    let mut acquire = a.lock("r").ttl(Duration::from_secs(10)).into_future();
    tokio::select! {
        result = &mut acquire => panic!("A must not finish within 150 ms: {result:?}"),
        () = tokio::time::sleep(Duration::from_millis(150)) => {}
    }
    // The first attempt is over and A is asleep between attempts: S3 ran A's acquire (granted)
    // and then the failed attempt's cleanup release (2 commands), and holds no key.
    assert_eq!(
        s3_calls() - s3_calls_before,
        2,
        "S3 must have run A's acquire and its cleanup release before A sleeps"
    );
    assert_eq!(
        masters[2].get(b"r"),
        None,
        "A's failed attempt must release its key on S3 before sleeping"
    );
    let dropped_at = Instant::now();
    drop(acquire);

    assert!(
        eventually(Duration::from_secs(1), || a.background_tasks() == 0).await,
        "background tasks left after the drop: {}",
        a.background_tasks()
    );
    // Past the moment the second attempt would have started (400 ms after the first).
    tokio::time::sleep_until(dropped_at + Duration::from_millis(450)).await;
    assert_eq!(masters[2].get(b"r"), None, "no key of A's on S3");
    assert_eq!(masters[2].dbsize(), 0, "S3: {:?}", masters[2].dump());
    for i in 0..2 {
        assert_eq!(
            masters[i].dump(),
            vec![("r".to_owned(), Some(b_token.clone()))],
            "S{}: only B's key",
            i + 1
        );
    }
    b.unlock(&mut b_lock).await.unwrap();
    assert_no_error_log_and_no_worker_panic();
}

// ---------------------------------------------------------------------------------------
// C24's kind for `extend` — a dropped extension leaves the handle as it was
// ---------------------------------------------------------------------------------------

/// A dropped `extend` future (polled once, then dropped; and dropped after 20 ms) leaves the
/// handle's deadline and TTL unchanged, and a later unlock succeeds and removes every key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c24_dropped_extend_keeps_deadline_and_unlock_succeeds() {
    install_diagnostics();
    let masters = Masters::start(3);
    let proxies = proxies_for(&masters).await;
    let a = LockManager::builder()
        .servers(proxies.iter().map(FaultProxy::url))
        .node_timeout(Duration::from_millis(1_000))
        .build()
        .unwrap();
    let mut lock = a.lock("r").ttl(Duration::from_secs(5)).await.unwrap();
    let (deadline, ttl) = (lock.deadline(), lock.ttl());
    // Replies take 200 ms, so the extension cannot complete before it is dropped.
    for proxy in &proxies {
        proxy.set_reply_latency(Duration::from_millis(200));
    }

    // Polled once, then dropped.
    {
        let mut extend = std::pin::pin!(a.extend(&mut lock, Duration::from_secs(30)));
        assert!(
            futures_util::poll!(extend.as_mut()).is_pending(),
            "extend must be pending after one poll"
        );
    }
    assert_eq!(
        lock.deadline(),
        deadline,
        "deadline unchanged after a dropped extend"
    );
    assert_eq!(lock.ttl(), ttl);
    assert!(lock.is_valid());

    // Dropped after 20 ms, with its requests surely on the wire.
    let dropped = tokio::time::timeout(
        Duration::from_millis(20),
        a.extend(&mut lock, Duration::from_secs(30)),
    )
    .await;
    assert!(
        dropped.is_err(),
        "extend must still be pending: {dropped:?}"
    );
    assert_eq!(
        lock.deadline(),
        deadline,
        "deadline unchanged after a dropped extend"
    );
    assert_eq!(lock.ttl(), ttl);
    assert!(lock.is_valid());

    for proxy in &proxies {
        proxy.heal();
    }
    a.unlock(&mut lock)
        .await
        .expect("unlock after a dropped extend succeeds");
    assert!(
        !lock.is_valid(),
        "released handles report themselves invalid"
    );
    settle_within(&a, Duration::from_secs(2)).await;
    for (i, server) in masters.iter().enumerate() {
        assert_eq!(server.dbsize(), 0, "master {i}: {:?}", server.dump());
    }
    assert_no_error_log_and_no_worker_panic();
}

/// Connections on `server` other than the one asking (`INFO clients`).
fn other_clients(server: &support::servers::RedisServer) -> i64 {
    server
        .info("clients")
        .lines()
        .find_map(|l| l.trim().strip_prefix("connected_clients:"))
        .and_then(|n| n.trim().parse::<i64>().ok())
        .expect("connected_clients in INFO")
        - 1
}

/// `close()` racing acquisitions leaves no connection and no task: rounds still in flight
/// when the manager closes do not reconnect after it dropped its connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_racing_acquisitions_leaves_no_connection() {
    let masters = Masters::start(3);
    for round in 0..5 {
        let manager = LockManager::builder()
            .servers(masters.urls())
            .build()
            .unwrap();
        warm_up(&manager).await;
        let mut racing = JoinSet::new();
        for i in 0..50 {
            let manager = manager.clone();
            racing.spawn(async move {
                let _ = manager
                    .lock(format!("close-{round}-{i}"))
                    .wait(Duration::from_millis(200))
                    .await;
            });
        }
        tokio::time::sleep(Duration::from_millis(rand::random_range(0..3))).await;
        manager.close().await;
        while racing.join_next().await.is_some() {}
        assert!(
            eventually(Duration::from_secs(2), || masters
                .iter()
                .all(|m| other_clients(m) == 0))
            .await,
            "round {round}: connections left after close: {:?}",
            masters.iter().map(other_clients).collect::<Vec<_>>()
        );
        assert_eq!(manager.pending_master_work(), 0, "round {round}");
    }
}

/// Waiters of every kind (a mutex, a guard, a semaphore's permit, a reader) behind held
/// locks, when their manager is closed: each call ends with `LockError::Closed` — what
/// happened — not with `NoQuorum` from the connections that `close()` dropped under its
/// round, and nothing is left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_of_every_kind_end_with_closed_when_the_manager_closes() {
    let masters = Masters::start(3);
    let holder = LockManager::builder()
        .servers(masters.urls())
        .build()
        .unwrap();
    let (mutex, sem, rw) = ("closing-mutex", "closing-sem", "closing-rw");
    let mut held = vec![
        holder
            .lock(mutex)
            .ttl(Duration::from_secs(20))
            .await
            .unwrap(),
        holder
            .semaphore(sem, 1)
            .lock()
            .ttl(Duration::from_secs(20))
            .await
            .unwrap(),
        holder
            .write_lock(rw)
            .ttl(Duration::from_secs(20))
            .await
            .unwrap(),
    ];
    let waiter = LockManager::builder()
        .servers(masters.urls())
        .retry_delay(Duration::from_millis(5))
        .retry_jitter(Duration::from_millis(5))
        .build()
        .unwrap();
    warm_up(&waiter).await;
    let mut waiting = JoinSet::new();
    for i in 0..400 {
        let waiter = waiter.clone();
        waiting.spawn(async move {
            match i % 4 {
                0 => waiter.lock(mutex).wait_forever().await.map(drop),
                1 => waiter
                    .acquire(mutex)
                    .auto_extend()
                    .wait_forever()
                    .await
                    .map(drop),
                2 => waiter
                    .semaphore(sem, 1)
                    .lock()
                    .wait_forever()
                    .await
                    .map(drop),
                _ => waiter.read_lock(rw).wait_forever().await.map(drop),
            }
        });
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    waiter.close().await;
    let mut others = Vec::new();
    while let Some(result) = waiting.join_next().await {
        match result.unwrap() {
            Err(LockError::Closed) => {}
            other => others.push(format!("{other:?}")),
        }
    }
    assert!(
        others.is_empty(),
        "{} of 400 waiters ended otherwise, such as {:?}",
        others.len(),
        &others[..others.len().min(3)]
    );
    assert_eq!(waiter.pending_master_work(), 0);
    for lock in &mut held {
        holder.unlock(lock).await.unwrap();
    }
    holder.close().await;
    assert_no_key_without_ttl(masters.iter());
}

/// Waiters queued behind each other for their turn, at the default retry pace (a turn every
/// retry pause or so), all end with `Closed` as soon as the manager closes: none sits out the
/// turns of those ahead of it, and none reaches its deadline and reports `Conflict`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_waiters_end_with_closed_at_once_when_the_manager_closes() {
    let masters = Masters::start(3);
    let holder = LockManager::builder()
        .servers(masters.urls())
        .build()
        .unwrap();
    let mut held = holder
        .lock("queued")
        .ttl(Duration::from_secs(30))
        .await
        .unwrap();
    let waiter = LockManager::builder()
        .servers(masters.urls())
        .build()
        .unwrap();
    warm_up(&waiter).await;
    let mut waiting = JoinSet::new();
    for i in 0..600 {
        let waiter = waiter.clone();
        waiting.spawn(async move {
            let request = waiter.lock("queued");
            if i % 2 == 0 {
                request.wait(Duration::from_secs(20)).await.map(drop)
            } else {
                request.wait_forever().await.map(drop)
            }
        });
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let closed_at = Instant::now();
    waiter.close().await;
    let mut others = Vec::new();
    while let Some(result) = waiting.join_next().await {
        match result.unwrap() {
            Err(LockError::Closed) => {}
            other => others.push(format!("{other:?}")),
        }
    }
    let took = closed_at.elapsed();
    assert!(
        others.is_empty(),
        "{} of 600 waiters ended otherwise, such as {:?}",
        others.len(),
        &others[..others.len().min(3)]
    );
    // Before, the last ones ended a turn at a time, 12 s and more after `close()`.
    assert!(
        took < Duration::from_secs(3),
        "the last waiter ended {took:?} after close()"
    );
    holder.unlock(&mut held).await.unwrap();
    holder.close().await;
    assert_no_key_without_ttl(masters.iter());
}

/// A cancelled `unlock` still releases: replies come 30 ms late, and one master's
/// connection is cut (and refused) just before the `unlock`, which is dropped after 5 ms —
/// its handle already marked released, the cut master's release not sent. Once that master
/// takes connections again, its key is deleted too: not left for the TTL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_unlock_still_releases() {
    let masters = Masters::start(3);
    let proxies = proxies_for(&masters).await;
    let manager = LockManager::builder()
        .servers(proxies.iter().map(FaultProxy::url))
        .node_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    warm_up(&manager).await;
    for proxy in &proxies {
        proxy.set_reply_latency(Duration::from_millis(30));
    }
    for i in 0..3 {
        let resource = format!("cancelled-unlock-{i}");
        let key = resource.as_bytes();
        let mut lock = manager
            .lock(&resource)
            .ttl(Duration::from_secs(20))
            .await
            .unwrap();
        assert!(
            eventually(Duration::from_secs(2), || masters[1].exists(key)).await,
            "round {i}: the lock is on master 1"
        );
        proxies[1].refuse(true);
        proxies[1].reset_all();
        let cancelled =
            tokio::time::timeout(Duration::from_millis(5), manager.unlock(&mut lock)).await;
        assert!(
            cancelled.is_err(),
            "the unlock must still be waiting at 5 ms"
        );
        drop(lock);
        proxies[1].refuse(false);
        assert!(
            eventually(Duration::from_secs(3), || masters
                .iter()
                .all(|m| !m.exists(key)))
            .await,
            "round {i}: keys left after a cancelled unlock: {:?}",
            masters.iter().map(|m| m.pttl(key)).collect::<Vec<_>>()
        );
    }
    manager.close().await;
}
