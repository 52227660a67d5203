//! Read-write locks (`read`, `write`) against real masters: readers share, a writer
//! excludes readers and writers, plain locks and sets interoperate through the one key,
//! writers are preferred, readers are extended and lost one by one, the quorum view shows a
//! shared state without the sentinel, cancellation leaves nothing, a dead master is
//! tolerated, contention never overlaps.
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

use rand::{RngExt, SeedableRng, rngs::StdRng};
use support::checks::{
    FOREIGN_FORMS, RELAXED, assert_no_key_without_ttl, builder, ms, plant_foreign, remove_foreign,
    render, settle, watchdog, within,
};
use support::drops::{drop_storm, dropping_manager, empty};
use support::servers::{Masters, command_calls_in};
use support::{eventually, unique_name};
use tokio::task::JoinSet;
use tokio_redlock::{KeyState, LockManager, LockState, LossCause};

/// Sharing and exclusion on `n` masters: two readers share; a writer, a plain lock, a set
/// containing the name and a foreign `SET NX` are refused while they read; readers are
/// refused while a writer or a plain lock holds the name.
async fn table_on(n: usize) {
    let masters = Masters::start(n);
    let one = builder(&masters.urls()).retry_count(0).build().unwrap();
    let two = builder(&masters.urls()).retry_count(0).build().unwrap();
    let name = unique_name("table");
    let other = unique_name("other");

    let mut r1 = one.read_lock(&name).ttl(ms(5_000)).await.unwrap();
    let mut r2 = two.read_lock(&name).ttl(ms(8_000)).await.unwrap();
    assert_ne!(r1.token(), r2.token());
    // Granted at a quorum: the requests to the last master land with the stragglers, before
    // every master is read below.
    settle(&one).await;
    settle(&two).await;
    for e in [
        two.write_lock(&name).await.unwrap_err(),
        two.lock(&name).await.unwrap_err(),
        two.lock_all([&name, &other]).await.unwrap_err(),
    ] {
        assert!(e.is_conflict(), "{}", render(&e));
    }
    for server in masters.iter() {
        let set = server.try_cmd(&["SET", &name, "foreign", "NX", "PX", "1000"]);
        assert_eq!(set.unwrap(), redis::Value::Nil, "a foreign SET NX fails");
        // X lives at least as long as the longest reader lease.
        assert!(server.pttl(name.as_bytes()) > 5_000);
    }
    // The quorum view: shared, two readers, the sentinel never shown.
    let state = one.is_locked(&name).await.unwrap();
    assert!(
        state.is_shared() && !state.is_locked() && !state.is_free(),
        "{state:?}"
    );
    assert!(
        matches!(state, LockState::Shared { readers: 2, .. }),
        "{state:?}"
    );
    assert!(!format!("{state:?}").contains("redlock:shared"));
    for m in one.inspect(&name).await.unwrap() {
        assert!(
            matches!(m.state, KeyState::Shared { readers: 2, .. }),
            "{m:?}"
        );
        assert!(!format!("{m:?}").contains("redlock:shared"));
    }
    assert_no_key_without_ttl(masters.iter());
    one.unlock(&mut r1).await.unwrap();
    assert!(two.write_lock(&name).await.unwrap_err().is_conflict());
    two.unlock(&mut r2).await.unwrap();
    settle(&one).await;
    settle(&two).await;
    for server in masters.iter() {
        assert_eq!(
            server.dbsize(),
            0,
            "the last reader deletes everything: {:?}",
            server.dump()
        );
    }

    // A writer excludes readers and writers; a plain lock excludes readers.
    let mut w = one.write_lock(&name).await.unwrap();
    assert!(two.read_lock(&name).await.unwrap_err().is_conflict());
    assert!(two.write_lock(&name).await.unwrap_err().is_conflict());
    assert!(two.lock(&name).await.unwrap_err().is_conflict());
    assert!(one.is_locked(&name).await.unwrap().is_held_by(&w));
    one.unlock(&mut w).await.unwrap();
    let mut plain = one.lock(&name).await.unwrap();
    assert!(two.read_lock(&name).await.unwrap_err().is_conflict());
    one.unlock(&mut plain).await.unwrap();
    let mut set = one.lock_all([&name, &other]).await.unwrap();
    assert!(two.read_lock(&name).await.unwrap_err().is_conflict());
    one.unlock(&mut set).await.unwrap();
    let mut r = two.read_lock(&name).await.unwrap();
    two.unlock(&mut r).await.unwrap();
    settle(&one).await;
    settle(&two).await;
    for server in masters.iter() {
        assert_eq!(server.dbsize(), 0, "{:?}", server.dump());
    }
    one.close().await;
    two.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharing_and_exclusion_on_1_3_and_5_masters() {
    for n in [1, 3, 5] {
        watchdog(&format!("table on {n}"), table_on(n)).await;
    }
}

/// Writer preference: while a writer waits for a reader, a new reader is refused; when the
/// reader leaves the writer is woken and enters; when it leaves, readers come back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_writer_goes_before_new_readers() {
    let masters = Masters::start(3);
    let readers = builder(&masters.urls()).retry_count(0).build().unwrap();
    let writers = builder(&masters.urls())
        .retry_delay(ms(200))
        .retry_jitter(ms(50))
        .build()
        .unwrap();
    let name = unique_name("prefer");
    let mut first = readers.read_lock(&name).ttl(ms(30_000)).await.unwrap();
    let (w, n) = (writers.clone(), name.clone());
    let writer = tokio::spawn(async move { w.write_lock(&n).wait(ms(20_000)).await });
    // Once the writer has tried, its intent blocks new readers.
    let intent = format!("{{{name}}}:wintent");
    assert!(
        eventually(ms(3_000), || masters
            .iter()
            .all(|s| s.exists(intent.as_bytes())))
        .await,
        "the waiting writer's intent is on every master"
    );
    let e = readers.read_lock(&name).await.unwrap_err();
    assert!(e.is_conflict(), "{}", render(&e));
    readers.unlock(&mut first).await.unwrap();
    let mut w = within(ms(5_000), "writer woken", writer)
        .await
        .unwrap()
        .unwrap();
    assert!(w.is_valid());
    // The intent is withdrawn once the writer's call ended.
    assert!(
        eventually(ms(3_000), || masters
            .iter()
            .all(|s| !s.exists(intent.as_bytes())))
        .await,
        "intent withdrawn"
    );
    assert!(readers.read_lock(&name).await.unwrap_err().is_conflict());
    writers.unlock(&mut w).await.unwrap();
    let mut again = readers.read_lock(&name).await.unwrap();
    readers.unlock(&mut again).await.unwrap();
    readers.close().await;
    writers.close().await;
}

/// Two reader guards extend their own leases; one reader's lease vanishing on a majority
/// loses that reader only. A waiting writer enters once both are gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_are_extended_and_lost_one_by_one() {
    let masters = Masters::start(3);
    let manager = builder(&masters.urls()).build().unwrap();
    let name = unique_name("lose");
    let a = manager
        .read(&name)
        .ttl(ms(900))
        .auto_extend()
        .await
        .unwrap();
    let b = manager
        .read(&name)
        .ttl(ms(900))
        .auto_extend()
        .await
        .unwrap();
    tokio::time::sleep(ms(2_000)).await;
    assert!(a.is_valid() && b.is_valid(), "extended past their TTL");
    let lease = format!("{{{name}}}:reader:{}", a.token());
    for server in &masters.0[..2] {
        server.cmd(&["DEL", &lease]);
    }
    within(ms(3_000), "a's loss", a.lost()).await;
    assert_eq!(a.loss_cause(), Some(LossCause::ExpiredOrTaken));
    tokio::time::sleep(ms(1_000)).await;
    assert!(b.is_valid(), "the other reader lives on");
    drop(a);
    b.release().await.unwrap();
    let mut w = manager.write_lock(&name).wait(ms(5_000)).await.unwrap();
    manager.unlock(&mut w).await.unwrap();
    settle(&manager).await;
    assert!(
        eventually(ms(2_000), || masters.iter().all(|s| s.dbsize() == 0)).await,
        "{:?}",
        masters.iter().map(|s| s.dump()).collect::<Vec<_>>()
    );
    manager.close().await;
}

/// Readers and writers dropped at random points (replies delayed 1 ms): after each batch
/// nothing is left — no lock key, reader set, lease or intent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_acquisitions_leave_nothing() {
    let masters = Masters::start(3);
    let name = unique_name("drop");
    let warm = name.clone();
    let (manager, _proxies) =
        dropping_manager(&masters, |m| async move { m.read_lock(&warm).await }).await;
    drop_storm(
        &manager,
        0x5EED_00AA,
        |m, _, j| {
            let name = name.clone();
            async move {
                if j % 3 == 0 {
                    m.write_lock(&name).await
                } else {
                    m.read_lock(&name).await
                }
            }
        },
        || empty(&masters),
    )
    .await;
    manager.close().await;
}

/// One master of three killed: readers and writers still work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_master_is_tolerated() {
    let mut masters = Masters::start(3);
    let manager = builder(&masters.urls())
        .node_timeout(ms(300))
        .retry_count(0)
        .build()
        .unwrap();
    let name = unique_name("dead");
    let mut warm = manager.read_lock(&name).await.unwrap();
    manager.unlock(&mut warm).await.unwrap();
    masters.0[0].kill();
    let mut a = watchdog("reader a", manager.read_lock(&name))
        .await
        .unwrap();
    let mut b = watchdog("reader b", manager.read_lock(&name))
        .await
        .unwrap();
    assert!(
        watchdog("writer", manager.write_lock(&name))
            .await
            .unwrap_err()
            .is_conflict()
    );
    watchdog("extend", manager.extend(&mut a, ms(5_000)))
        .await
        .unwrap();
    watchdog("unlock a", manager.unlock(&mut a)).await.unwrap();
    watchdog("unlock b", manager.unlock(&mut b)).await.unwrap();
    let mut w = watchdog("writer after", manager.write_lock(&name))
        .await
        .unwrap();
    watchdog("unlock w", manager.unlock(&mut w)).await.unwrap();
    settle(&manager).await;
    for server in &masters.0[1..] {
        assert_eq!(server.dbsize(), 0, "{:?}", server.dump());
    }
    manager.close().await;
}

/// Contention on `n` masters: 24 tasks over two managers read (2 in 3) or write, waiting;
/// while holding they count: never a writer with anyone else.
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
    let name = unique_name("contend");
    let readers = Arc::new(AtomicUsize::new(0));
    let writers = Arc::new(AtomicUsize::new(0));
    let violations = Arc::new(AtomicUsize::new(0));
    let most_readers = Arc::new(AtomicUsize::new(0));
    let mut tasks = JoinSet::new();
    for t in 0..24u64 {
        let m = managers[(t % 2) as usize].clone();
        let name = name.clone();
        let (readers, writers, violations, most_readers) = (
            Arc::clone(&readers),
            Arc::clone(&writers),
            Arc::clone(&violations),
            Arc::clone(&most_readers),
        );
        tasks.spawn(async move {
            let mut rng = StdRng::seed_from_u64(t);
            let mut held = 0;
            for _ in 0..4 {
                let write = t % 3 == 0;
                let request = if write {
                    m.write_lock(&name)
                } else {
                    m.read_lock(&name)
                };
                let Ok(mut lock) = request.ttl(ms(5_000)).wait(ms(30_000)).await else {
                    continue;
                };
                if write {
                    if writers.fetch_add(1, Ordering::SeqCst) != 0
                        || readers.load(Ordering::SeqCst) != 0
                    {
                        violations.fetch_add(1, Ordering::SeqCst);
                    }
                } else {
                    let now = readers.fetch_add(1, Ordering::SeqCst) + 1;
                    most_readers.fetch_max(now, Ordering::SeqCst);
                    if writers.load(Ordering::SeqCst) != 0 {
                        violations.fetch_add(1, Ordering::SeqCst);
                    }
                }
                tokio::time::sleep(ms(rng.random_range(2..10))).await;
                if write {
                    writers.fetch_sub(1, Ordering::SeqCst);
                } else {
                    readers.fetch_sub(1, Ordering::SeqCst);
                }
                assert!(lock.is_valid());
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
    let most = most_readers.load(Ordering::SeqCst);
    println!("{n} masters: {total} holds, up to {most} readers at once");
    assert_eq!(violations.load(Ordering::SeqCst), 0, "a writer overlapped");
    assert!(total >= 80, "only {total} of 96 holds");
    assert!(most >= 2, "readers never shared");
    for m in &managers {
        settle(m).await;
    }
    assert!(
        eventually(ms(3_000), || masters.iter().all(|s| s.dbsize() == 0)).await,
        "keys left"
    );
    for m in &managers {
        m.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contention_never_puts_a_writer_beside_anyone_on_1_3_and_5_masters() {
    for n in [1, 3, 5] {
        within(ms(120_000), &format!("contention on {n}"), contention_on(n)).await;
    }
}

/// The read-write lock's helper keys are reserved names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helper_keys_are_reserved() {
    let masters = Masters::start(1);
    let manager = builder(&masters.urls()).build().unwrap();
    let token = "0123456789abcdef0123456789abcdef";
    for reserved in [
        "{doc}:readers".to_owned(),
        "{doc}:wintent".to_owned(),
        format!("{{doc}}:reader:{token}"),
    ] {
        let e = manager.read_lock(&reserved).await.unwrap_err();
        assert!(e.is_reserved_key(), "{}", render(&e));
        assert!(
            manager
                .try_lock(&reserved)
                .await
                .unwrap_err()
                .is_reserved_key()
        );
    }
    assert_eq!(masters.0[0].dbsize(), 0);
    manager.close().await;
}

/// `inspect` shows a writer waiting for readers (its intent, which makes new readers queue
/// behind it) on every master where the readers hold the key, and no more once the writer
/// gave up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspect_shows_a_waiting_writer_until_it_gives_up() {
    let masters = Masters::start(3);
    let readers = builder(&masters.urls()).build().unwrap();
    let writers = Arc::new(builder(&masters.urls()).build().unwrap());
    let name = unique_name("inspect-intent");

    let mut r = readers.read_lock(&name).ttl(ms(10_000)).await.unwrap();
    for m in readers.inspect(&name).await.unwrap() {
        assert!(!m.writer_waiting, "{m:?}");
    }
    let waiting = {
        let (writers, name) = (Arc::clone(&writers), name.clone());
        tokio::spawn(async move { writers.write_lock(&name).wait(ms(20_000)).await })
    };
    let mut all_waiting = false;
    for _ in 0..200 {
        let seen = readers.inspect(&name).await.unwrap();
        if seen.iter().all(|m| m.writer_waiting) {
            all_waiting = true;
            break;
        }
        tokio::time::sleep(ms(20)).await;
    }
    assert!(
        all_waiting,
        "the waiting writer's intent never showed on every master"
    );
    // Giving up withdraws the intent.
    waiting.abort();
    assert!(waiting.await.unwrap_err().is_cancelled());
    let mut withdrawn = false;
    for _ in 0..200 {
        if readers
            .inspect(&name)
            .await
            .unwrap()
            .iter()
            .all(|m| !m.writer_waiting)
        {
            withdrawn = true;
            break;
        }
        tokio::time::sleep(ms(20)).await;
    }
    assert!(withdrawn, "the intent outlived the writer's call");
    readers.unlock(&mut r).await.unwrap();
    // A free key reads no intent.
    for m in readers.inspect(&name).await.unwrap() {
        assert!(!m.writer_waiting, "{m:?}");
    }
}

/// A resource `X` and the resource `{X}` (the same name in braces) map their helper keys to
/// the same names (`{X}:readers`, `{X}:reader:<t>`, `{X}:wintent`). A reader of `{X}` must not
/// make a reader of `X` invisible: while a reader of `X` is valid, no writer of `X` may enter,
/// whatever readers of `{X}` and other readers of `X` did meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_of_the_braced_name_does_not_free_the_name_for_a_writer() {
    let masters = Masters::start(1);
    let manager = builder(&masters.urls()).retry_count(0).build().unwrap();
    let name = unique_name("brace");
    let braced = format!("{{{name}}}");

    let mut first = manager.read_lock(&name).ttl(ms(20_000)).await.unwrap();
    // Whatever happens on `{name}` and among other readers of `name` ...
    match manager.read_lock(&braced).ttl(ms(5_000)).await {
        Ok(mut other) => manager.unlock(&mut other).await.unwrap(),
        Err(e) => assert!(e.is_invalid_input() || e.is_conflict(), "{}", render(&e)),
    }
    let mut second = manager.read_lock(&name).ttl(ms(5_000)).await.unwrap();
    manager.unlock(&mut second).await.unwrap();
    // ... the first reader still holds `name`: a writer is refused.
    assert!(first.is_valid());
    match manager.write_lock(&name).await {
        Ok(writer) => panic!(
            "a writer of {name} entered beside a valid reader (writer token {}, reader token {})",
            writer.token(),
            first.token()
        ),
        Err(e) => assert!(e.is_conflict(), "{}", render(&e)),
    }
    manager.unlock(&mut first).await.unwrap();
    settle(&manager).await;
    manager.close().await;
}

/// Readers keep the marker `redlock:shared` under the key. A mutex given that value as its
/// token would count as granted beside the readers, its unlock would delete their marker,
/// and a writer would then enter beside a valid reader. The token is refused before any
/// request, in either order, and the reader keeps the writer out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mutex_token_equal_to_the_readers_marker_is_refused() {
    let masters = Masters::start(3);
    let manager = builder(&masters.urls()).retry_count(0).build().unwrap();
    let name = unique_name("marker");
    let mut reader = manager.read_lock(&name).ttl(ms(20_000)).await.unwrap();
    let e = manager
        .lock(&name)
        .token("redlock:shared")
        .await
        .expect_err("the readers' marker is no token");
    assert!(e.is_invalid_input(), "{}", render(&e));
    match manager.write_lock(&name).await {
        Ok(writer) => panic!("a writer entered beside a valid reader: {}", writer.token()),
        Err(e) => assert!(e.is_conflict(), "{}", render(&e)),
    }
    assert!(reader.is_valid());
    manager.unlock(&mut reader).await.unwrap();

    // The other order: no mutex with the marker is ever granted, so nothing to read beside.
    let other = unique_name("marker");
    let e = manager
        .lock(&other)
        .token("redlock:shared")
        .await
        .unwrap_err();
    assert!(e.is_invalid_input(), "{}", render(&e));
    assert!(masters.iter().all(|m| !m.exists(other.as_bytes())));
    settle(&manager).await;
    manager.close().await;
}

/// A writer's intent always has a TTL. A value without one at the intent key (another
/// application's, or one set by hand) would hold every reader back for good: a reader is
/// refused at once with the typed `NotALock`, not a conflict waited out to its end, and the
/// value is left as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_writer_intent_is_not_a_waiting_writer() {
    let masters = Masters::start(3);
    let manager = builder(&masters.urls()).retry_count(0).build().unwrap();
    for form in FOREIGN_FORMS {
        let name = unique_name(form);
        let intent = format!("{{{name}}}:wintent");
        plant_foreign(&masters, &intent, form);
        let started = std::time::Instant::now();
        let e = manager.read_lock(&name).wait(ms(5_000)).await.unwrap_err();
        assert!(e.is_not_a_lock(), "{}", render(&e));
        assert!(
            started.elapsed() < ms(2_000),
            "not waited out: {:?}",
            started.elapsed()
        );
        assert!(
            masters.iter().all(|m| !m.exists(name.as_bytes())),
            "nothing written"
        );
        remove_foreign(&masters, &intent);
        // Once it is gone, readers enter.
        let mut reader = manager.read_lock(&name).await.unwrap();
        manager.unlock(&mut reader).await.unwrap();
    }
    settle(&manager).await;
    manager.close().await;
}

/// A writer granted at its first attempt on every master set no intent anywhere, so its call
/// sends no withdrawal: two script calls per master (the acquisition and the release), not
/// three — except where a master answered after the verdict (its reply unknown when the call
/// ended, so it gets the withdrawal). A writer that was refused once withdraws its intent,
/// which then is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_withdraws_its_intent_only_where_it_may_be() {
    const CYCLES: u64 = 20;
    let masters = Masters::start(3);
    let manager = builder(&masters.urls()).build().unwrap();
    let name = unique_name("intent");
    let mut warm = manager.write_lock(&name).await.unwrap();
    manager.unlock(&mut warm).await.unwrap();
    settle(&manager).await;
    for s in masters.iter() {
        s.cmd(&["CONFIG", "RESETSTAT"]);
    }
    for _ in 0..CYCLES {
        let mut lock = manager.write_lock(&name).await.unwrap();
        manager.unlock(&mut lock).await.unwrap();
    }
    settle(&manager).await;
    let scripts: u64 = masters
        .iter()
        .map(|s| {
            let stats = s.info("commandstats");
            command_calls_in(&stats, "evalsha") + command_calls_in(&stats, "eval")
        })
        .sum();
    println!("{CYCLES} uncontended write cycles on 3 masters: {scripts} script calls");
    // Two per cycle and master, plus a withdrawal for a master that answered late; with a
    // withdrawal on every master of every cycle (the old cost) it would be 180.
    assert!(
        (2 * 3 * CYCLES..2 * 3 * CYCLES + CYCLES * 3 / 2).contains(&scripts),
        "{scripts} script calls for {CYCLES} cycles"
    );

    // Refused once by a reader: the intent is set, then withdrawn when the call ends.
    let reader = builder(&masters.urls()).build().unwrap();
    let mut read = reader.read_lock(&name).await.unwrap();
    let writer = {
        let (manager, name) = (manager.clone(), name.clone());
        tokio::spawn(async move { manager.write_lock(&name).wait(ms(5_000)).await })
    };
    let intent = format!("{{{name}}}:wintent");
    assert!(
        eventually(ms(3_000), || masters
            .iter()
            .any(|s| s.exists(intent.as_bytes())))
        .await,
        "the waiting writer's intent is there"
    );
    reader.unlock(&mut read).await.unwrap();
    let mut lock = within(ms(5_000), "the writer", writer)
        .await
        .unwrap()
        .unwrap();
    manager.unlock(&mut lock).await.unwrap();
    settle(&manager).await;
    assert!(
        masters.iter().all(|s| !s.exists(intent.as_bytes())),
        "no intent left"
    );
    assert_no_key_without_ttl(masters.iter());
    reader.close().await;
    manager.close().await;
}
