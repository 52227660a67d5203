//! The primitives together, against real masters: one exclusion and sharing table over
//! overlapping names (mutex × reader × writer × semaphore permit × multi-resource lock) on 1,
//! 3 and 5 masters; each primitive under contention while a master is paused (SIGSTOP)
//! mid-run, with no overlap and no key left without a TTL; waiters of the read-write lock
//! (and a mutex behind a reader or a set) handed the lock by the release notification.
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

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rand::{RngExt, SeedableRng, rngs::StdRng};
use support::checks::{
    assert_no_key_without_ttl, assert_no_key_without_ttl_on, builder, ms, render, settle, within,
};
use support::servers::Masters;
use support::{eventually, unique_name};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_redlock::{Lock, LockError, LockManager};

// ---------------------------------------------------------------------------------------
// The exclusion and sharing table
// ---------------------------------------------------------------------------------------

/// What a cell of the table holds or asks for, on the names `a`, `b`, `c`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Take {
    /// A plain lock on `a`.
    Mutex,
    /// A read lock on `a`.
    Reader,
    /// The write lock on `a`.
    Writer,
    /// A permit of the semaphore named `a`, k = 2.
    Permit,
    /// A multi-resource lock on `[a, b]`.
    MultiAb,
    /// A multi-resource lock on `[b, c]`: overlaps `[a, b]` only.
    MultiBc,
}

const ALL: [Take; 6] = [
    Take::Mutex,
    Take::Reader,
    Take::Writer,
    Take::Permit,
    Take::MultiAb,
    Take::MultiBc,
];

/// Whether `asked` is granted while `held` is: readers share with readers; a semaphore's
/// slots are keys of their own (a name serves as a lock or as a semaphore, the two do not
/// exclude each other) and admit a second permit of two; `[b, c]` does not touch `a`;
/// everything else on one name excludes everything else on it.
fn compatible_on(held: Take, asked: Take) -> bool {
    use Take::{MultiAb, MultiBc, Mutex, Permit, Reader, Writer};
    match (held, asked) {
        (Permit, _) | (_, Permit) | (Reader, Reader) => true,
        (MultiBc, Mutex | Reader | Writer) | (Mutex | Reader | Writer, MultiBc) => true,
        (Mutex | Reader | Writer | MultiAb | MultiBc, _) => false,
    }
}

/// One attempt (the managers have `retry_count(0)`; a writer that cannot retry leaves no
/// intent behind).
async fn take(manager: &LockManager, what: Take, names: &[String; 3]) -> Result<Lock, LockError> {
    let [a, b, c] = names;
    let ttl = ms(10_000);
    match what {
        Take::Mutex => manager.lock(a).ttl(ttl).await,
        Take::Reader => manager.read_lock(a).ttl(ttl).await,
        Take::Writer => manager.write_lock(a).ttl(ttl).await,
        Take::Permit => manager.semaphore(a, 2).lock().ttl(ttl).await,
        Take::MultiAb => manager.lock_all([a, b]).ttl(ttl).await,
        Take::MultiBc => manager.lock_all([b, c]).ttl(ttl).await,
    }
}

/// Every pair (held by one manager, asked by another) on `n` masters: granted exactly when
/// [`compatible_on`] says so, refused as a conflict otherwise; then the asking side's lock is
/// released and the next pair starts from a clean slate.
async fn table_on(n: usize) {
    let masters = Masters::start(n);
    let one = builder(&masters.urls()).retry_count(0).build().unwrap();
    let two = builder(&masters.urls()).retry_count(0).build().unwrap();
    let stem = unique_name("table");
    let names = [
        format!("{stem}:a"),
        format!("{stem}:b"),
        format!("{stem}:c"),
    ];
    let mut cells = Vec::new();
    for held in ALL {
        let mut holding = take(&one, held, &names)
            .await
            .unwrap_or_else(|e| panic!("{n} masters: holding {held:?}: {}", render(&e)));
        for asked in ALL {
            let expected = compatible_on(held, asked);
            match take(&two, asked, &names).await {
                Ok(mut lock) => {
                    assert!(
                        expected,
                        "{n} masters: {asked:?} granted while {held:?} is held"
                    );
                    two.unlock(&mut lock).await.unwrap();
                }
                Err(e) => {
                    assert!(
                        !expected,
                        "{n} masters: {asked:?} refused beside {held:?}: {}",
                        render(&e)
                    );
                    assert!(
                        e.is_conflict(),
                        "{n} masters: {asked:?} beside {held:?}: {}",
                        render(&e)
                    );
                }
            }
            cells.push((held, asked, expected));
        }
        assert_no_key_without_ttl(masters.iter());
        one.unlock(&mut holding).await.unwrap();
    }
    settle(&one).await;
    settle(&two).await;
    // Everything released: only the semaphore's permits key (with its TTL) may be left.
    let permits = format!("{{{}}}:permits", names[0]);
    for (i, server) in masters.iter().enumerate() {
        let left: Vec<String> = server
            .keys_with_pttl()
            .into_iter()
            .map(|(k, pttl)| {
                assert!(pttl > 0, "master {i}: {k} without TTL");
                k
            })
            .filter(|k| *k != permits)
            .collect();
        assert!(left.is_empty(), "master {i}: keys left {left:?}");
    }
    let granted = cells.iter().filter(|c| c.2).count();
    println!(
        "{n} masters: {} cells, {granted} granted, {} refused",
        cells.len(),
        cells.len() - granted
    );
    one.close().await;
    two.close().await;
}

#[test]
fn the_table_is_symmetric() {
    for held in ALL {
        for asked in ALL {
            assert_eq!(
                compatible_on(held, asked),
                compatible_on(asked, held),
                "{held:?} / {asked:?}"
            );
        }
    }
    assert!(compatible_on(Take::Reader, Take::Reader));
    assert!(!compatible_on(Take::Writer, Take::Writer));
    assert!(!compatible_on(Take::MultiAb, Take::MultiBc));
    assert!(compatible_on(Take::Mutex, Take::MultiBc));
    assert!(compatible_on(Take::Permit, Take::Permit));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exclusion_and_sharing_across_primitives_on_1_3_and_5_masters() {
    for n in [1, 3, 5] {
        within(ms(60_000), &format!("table on {n}"), table_on(n)).await;
    }
}

// ---------------------------------------------------------------------------------------
// A master paused mid-run
// ---------------------------------------------------------------------------------------

/// The primitive a paused-master run contends on.
#[derive(Clone, Copy, Debug)]
enum Contended {
    /// Sets of two of three resources: `[0, 1]`, `[1, 2]`, `[0, 2]`.
    Multi,
    /// One name, one task in three writing, the others reading.
    ReadWrite,
    /// A semaphore of two permits.
    Semaphore,
}

/// Permits in the semaphore run.
const K: usize = 2;

/// What the tasks saw, counted while they hold (one process, so one set of counters is
/// the ground truth of who holds what).
#[derive(Default)]
struct Census {
    /// Holders of each resource (multi-resource run), readers and writers (read-write
    /// run: [readers, writers, _]), permit holders (semaphore run: [holders, _, _]).
    holding: [AtomicUsize; 3],
    /// Overlaps seen: two holders of one resource, a writer beside anyone, k + 1 permits.
    violations: AtomicUsize,
    /// The most readers (or permit holders) seen at once.
    most: AtomicUsize,
    /// Acquisitions before the pause, while the master was paused, after it woke.
    acquired: [AtomicUsize; 3],
}

/// A 3-master run: 2 managers × 3 tasks contend on `what` for 3.5 s (TTL 2 s, node timeout
/// 100 ms); master 0 is frozen (SIGSTOP) from 0.8 s to 2.3 s. Every hold is checked
/// against the others while it lasts; afterwards every key has a TTL, and once the
/// managers are closed every key is gone. (With two masters left, both must grant: many
/// more contenders would mostly split the votes while the master is paused, and the run
/// would show little of the paused phase.) Holds are in flight when the master freezes, so
/// it wakes with keys whose releases were parked meanwhile.
async fn paused_master_run(what: Contended) {
    const RUN: Duration = Duration::from_millis(3_500);
    let masters = Masters::start(3);
    let managers: Vec<LockManager> = (0..2)
        .map(|_| {
            builder(&masters.urls())
                .node_timeout(ms(100))
                .retry_delay(ms(20))
                .retry_jitter(ms(10))
                .build()
                .unwrap()
        })
        .collect();
    let stem = unique_name("paused");
    let census = Arc::new(Census::default());
    // 0 before the pause, 1 while master 0 is paused, 2 after it woke.
    let phase = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = JoinSet::new();
    for t in 0..6usize {
        let m = managers[t % 2].clone();
        let (stem, census, phase) = (stem.clone(), Arc::clone(&census), Arc::clone(&phase));
        tasks.spawn(async move {
            let mut rng = StdRng::seed_from_u64(t as u64);
            let mut unlock_errors = Vec::new();
            while start.elapsed() < RUN {
                let set = [[0, 1], [1, 2], [0, 2]][t % 3];
                let write = t % 3 == 0;
                let ttl = ms(2_000);
                let patience = ms(1_500);
                let acquired = match what {
                    Contended::Multi => {
                        m.lock_all(set.map(|r| format!("{stem}:{r}")))
                            .ttl(ttl)
                            .wait(patience)
                            .await
                    }
                    Contended::ReadWrite if write => {
                        m.write_lock(&stem).ttl(ttl).wait(patience).await
                    }
                    Contended::ReadWrite => m.read_lock(&stem).ttl(ttl).wait(patience).await,
                    Contended::Semaphore => {
                        m.semaphore(&stem, K as u32)
                            .lock()
                            .ttl(ttl)
                            .wait(patience)
                            .await
                    }
                };
                let Ok(mut lock) = acquired else {
                    continue;
                };
                census.acquired[phase.load(Ordering::SeqCst)].fetch_add(1, Ordering::SeqCst);
                let h = &census.holding;
                // Enter: count ourselves in and look at the others.
                let overlap = match what {
                    Contended::Multi => set
                        .iter()
                        .map(|&r| h[r].fetch_add(1, Ordering::SeqCst))
                        .any(|before| before != 0),
                    Contended::ReadWrite if write => {
                        h[1].fetch_add(1, Ordering::SeqCst) != 0 || h[0].load(Ordering::SeqCst) != 0
                    }
                    Contended::ReadWrite => {
                        let now = h[0].fetch_add(1, Ordering::SeqCst) + 1;
                        census.most.fetch_max(now, Ordering::SeqCst);
                        h[1].load(Ordering::SeqCst) != 0
                    }
                    Contended::Semaphore => {
                        let now = h[0].fetch_add(1, Ordering::SeqCst) + 1;
                        census.most.fetch_max(now, Ordering::SeqCst);
                        now > K
                    }
                };
                if overlap {
                    census.violations.fetch_add(1, Ordering::SeqCst);
                }
                tokio::time::sleep(ms(rng.random_range(2..8))).await;
                assert!(lock.is_valid(), "task {t}: the hold outlived its validity");
                // Leave.
                match what {
                    Contended::Multi => {
                        for &r in &set {
                            h[r].fetch_sub(1, Ordering::SeqCst);
                        }
                    }
                    Contended::ReadWrite if write => {
                        h[1].fetch_sub(1, Ordering::SeqCst);
                    }
                    Contended::ReadWrite | Contended::Semaphore => {
                        h[0].fetch_sub(1, Ordering::SeqCst);
                    }
                }
                if let Err(e) = m.unlock(&mut lock).await {
                    unlock_errors.push(e);
                }
            }
            unlock_errors
        });
    }
    tokio::time::sleep_until(start + ms(800)).await;
    masters[0].pause();
    phase.store(1, Ordering::SeqCst);
    tokio::time::sleep_until(start + ms(2_300)).await;
    masters[0].resume();
    phase.store(2, Ordering::SeqCst);
    let mut unlock_errors = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        unlock_errors.extend(joined.expect("a contending task panicked"));
    }
    let [before, while_paused, after] =
        census.acquired.each_ref().map(|n| n.load(Ordering::SeqCst));
    let most = census.most.load(Ordering::SeqCst);
    println!(
        "{what:?}: holds taken {before} before, {while_paused} while master 0 was paused, \
         {after} after it woke; up to \
         {most} readers or permit holders at once; {} unlock errors {:?}",
        unlock_errors.len(),
        unlock_errors
            .iter()
            .take(3)
            .map(ToString::to_string)
            .collect::<Vec<_>>()
    );
    assert_eq!(
        census.violations.load(Ordering::SeqCst),
        0,
        "{what:?}: holds overlapped"
    );
    // Progress before the pause and after it: the woken master's stale keys (releases
    // parked while it slept) delay nobody for good. Grants while it is paused are counted
    // but not required: with two masters left both must grant, and contenders mostly split
    // the votes.
    assert!(before > 0, "{what:?}: nothing acquired before the pause");
    assert!(
        after > 0,
        "{what:?}: nothing acquired after the master woke"
    );
    // A hold that was valid when released cannot have lapsed on a majority. `NoQuorum` is
    // legitimate: granted by exactly two masters, one of them then paused.
    assert!(
        unlock_errors.iter().all(|e| !e.is_not_held()),
        "{what:?}: an unlock found its hold lapsed: {unlock_errors:?}"
    );
    for (i, server) in masters.iter().enumerate() {
        assert_no_key_without_ttl_on(server, &format!("master {i}"));
    }
    for m in &managers {
        m.close().await;
    }
    // Closed: every release landed (the paused master's too, resent after it woke), or
    // the key ran out its TTL (a grant the paused master executed after its requester had
    // given up on it).
    assert!(
        eventually(ms(8_000), || masters.iter().all(|s| s.dbsize() == 0)).await,
        "{what:?}: keys left: {:?}",
        masters
            .iter()
            .map(|s| s.keys_with_pttl())
            .collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_master_lets_no_multi_lock_overlap() {
    within(ms(60_000), "multi", paused_master_run(Contended::Multi)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_master_lets_no_writer_beside_anyone() {
    within(
        ms(60_000),
        "read-write",
        paused_master_run(Contended::ReadWrite),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_master_lets_no_more_than_k_hold_permits() {
    within(
        ms(60_000),
        "semaphore",
        paused_master_run(Contended::Semaphore),
    )
    .await;
}

// ---------------------------------------------------------------------------------------
// Waiting hand-off by notification
// ---------------------------------------------------------------------------------------

/// A waiting manager whose retry delay (10 s, no jitter) is far longer than the bounds
/// below: a waiter that gets the lock within them was woken by the release notification.
fn patient_waiter(masters: &Masters) -> LockManager {
    builder(&masters.urls())
        .retry_delay(ms(10_000))
        .retry_jitter(ms(0))
        .build()
        .unwrap()
}

/// Waits until `waiter` subscribed to `channels` release channels, lets it settle into its
/// sleep, runs `release`, and returns how long after the release `waiting` ended, with its
/// result.
async fn hand_off(
    waiter: &LockManager,
    channels: usize,
    waiting: tokio::task::JoinHandle<Result<Lock, LockError>>,
    release: impl std::future::Future<Output = ()>,
) -> (Lock, Duration) {
    assert!(
        eventually(ms(3_000), || waiter.subscribed_resources() == channels).await,
        "the waiter subscribes to {channels} release channel(s), has {}",
        waiter.subscribed_resources()
    );
    tokio::time::sleep(ms(200)).await;
    assert!(
        !waiting.is_finished(),
        "the waiter went through a held lock"
    );
    let released = Instant::now();
    release.await;
    let lock = within(ms(5_000), "woken waiter", waiting)
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("the waiter failed: {}", render(&e)));
    (lock, released.elapsed())
}

/// A reader waiting behind a writer is handed the lock by the writer's release.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_waiting_behind_a_writer_is_woken_by_its_release() {
    let masters = Masters::start(3);
    let holder = builder(&masters.urls()).build().unwrap();
    let waiter = patient_waiter(&masters);
    let name = unique_name("reader-wakes");
    let mut writer = holder.write_lock(&name).ttl(ms(60_000)).await.unwrap();
    let (w, n) = (waiter.clone(), name.clone());
    let waiting = tokio::spawn(async move { w.read_lock(&n).wait(ms(30_000)).await });
    let (mut reader, woke) = hand_off(&waiter, 1, waiting, async {
        holder.unlock(&mut writer).await.unwrap();
    })
    .await;
    assert!(woke < ms(5_000), "woken {woke:?} after the release");
    assert!(reader.is_valid());
    waiter.unlock(&mut reader).await.unwrap();
    assert!(
        eventually(ms(2_000), || waiter.subscribed_resources() == 0).await,
        "subscriptions end with the wait"
    );
    holder.close().await;
    waiter.close().await;
}

/// A writer waiting behind two readers stays out while one is left, and is handed the lock
/// by the last reader's release.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_waiting_behind_readers_is_woken_by_the_last_one() {
    let masters = Masters::start(3);
    let holder = builder(&masters.urls()).build().unwrap();
    let waiter = patient_waiter(&masters);
    let name = unique_name("writer-wakes");
    let mut first = holder.read_lock(&name).ttl(ms(60_000)).await.unwrap();
    let mut second = holder.read_lock(&name).ttl(ms(60_000)).await.unwrap();
    let (w, n) = (waiter.clone(), name.clone());
    let waiting = tokio::spawn(async move { w.write_lock(&n).wait(ms(30_000)).await });
    let (mut writer, woke) = hand_off(&waiter, 1, waiting, async {
        holder.unlock(&mut first).await.unwrap();
        // One reader left: the writer stays out.
        tokio::time::sleep(ms(300)).await;
        assert!(
            holder.is_locked(&name).await.unwrap().is_shared(),
            "the second reader still holds"
        );
        holder.unlock(&mut second).await.unwrap();
    })
    .await;
    assert!(woke < ms(5_300), "woken {woke:?} after the first release");
    assert!(holder.is_locked(&name).await.unwrap().is_held_by(&writer));
    waiter.unlock(&mut writer).await.unwrap();
    holder.close().await;
    waiter.close().await;
}

/// A plain lock waiting behind a reader, and one waiting behind a set that contains its
/// resource, are handed the lock by the release.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mutex_waiting_behind_a_reader_or_a_set_is_woken_by_its_release() {
    let masters = Masters::start(3);
    let holder = builder(&masters.urls()).build().unwrap();
    let waiter = patient_waiter(&masters);
    let stem = unique_name("mutex-wakes");
    let (a, b) = (format!("{stem}:a"), format!("{stem}:b"));

    let mut reader = holder.read_lock(&a).ttl(ms(60_000)).await.unwrap();
    let (w, n) = (waiter.clone(), a.clone());
    let waiting = tokio::spawn(async move { w.lock(&n).wait(ms(30_000)).await });
    let (mut lock, woke) = hand_off(&waiter, 1, waiting, async {
        holder.unlock(&mut reader).await.unwrap();
    })
    .await;
    assert!(woke < ms(5_000), "behind a reader: woken {woke:?} after");
    waiter.unlock(&mut lock).await.unwrap();

    let mut set = holder.lock_all([&a, &b]).ttl(ms(60_000)).await.unwrap();
    let (w, n) = (waiter.clone(), b.clone());
    let waiting = tokio::spawn(async move { w.lock(&n).wait(ms(30_000)).await });
    let (mut lock, woke) = hand_off(&waiter, 1, waiting, async {
        holder.unlock(&mut set).await.unwrap();
    })
    .await;
    assert!(woke < ms(5_000), "behind a set: woken {woke:?} after");
    waiter.unlock(&mut lock).await.unwrap();
    holder.close().await;
    waiter.close().await;
}
