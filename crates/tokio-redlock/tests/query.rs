//! Query (`LockManager::is_locked`): the quorum view of a resource — free, held (by me or by
//! someone else, with the remaining time) or unsettled — read-only, and typed errors.
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

use support::checks::{RELAXED, held_everywhere, manager};
use support::servers::Masters;
use tokio::time::Instant;
use tokio_redlock::{KeyState, LockError, LockState, NodeError, NodeStatus, Operation};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c19_query_tells_mine_from_someone_elses_and_stale_release_is_refused() {
    // API choice (the case's first alternative): `is_locked` distinguishes "free",
    // "held by someone else (remaining ≈ 60 s)" and — with `is_held_by(&lock)` — "held by me".
    let masters = Masters::start(1);
    let s = &masters[0];
    let a = manager(masters.urls(), RELAXED);
    let b = manager(masters.urls(), RELAXED);

    // B cannot forge a handle for A's lock (a `Lock` is only obtained by acquiring), so B's
    // release uses B's own handle for `r`, acquired earlier with a short TTL that expired
    // before A acquired.
    let mut b_stale = b.lock("r").ttl(Duration::from_millis(100)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(s.get(b"r"), None, "B's short lock expired");

    let a_lock = a
        .lock("r")
        .ttl(Duration::from_millis(60_000))
        .await
        .unwrap();

    // B's view: held by someone else, for about 60 s more.
    let state = b.is_locked("r").await.unwrap();
    match &state {
        LockState::Held { holder, remaining } => {
            assert_eq!(holder.as_bytes(), a_lock.token().as_bytes());
            let remaining = remaining.expect("a lock key has a TTL");
            assert!(
                remaining > Duration::from_secs(55) && remaining <= Duration::from_secs(60),
                "remaining {remaining:?} should be about 60 s"
            );
        }
        other => panic!("expected Held, got {other:?}"),
    }
    assert!(state.is_locked() && !state.is_free());
    assert!(!state.is_held_by(&b_stale), "not held by B");
    // A's view: held by me.
    let mine = a.is_locked("r").await.unwrap();
    assert!(mine.is_held_by(&a_lock));

    // B's release is refused with the typed "not owner" error, and A's key is intact.
    let err = b.unlock(&mut b_stale).await.expect_err("B does not own r");
    assert!(err.is_not_held(), "expected NotHeld, got {err:?}");
    assert!(
        matches!(
            err,
            LockError::NotHeld {
                operation: Operation::Release,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(matches!(
        err.outcomes()[0].status(),
        NodeStatus::HeldByOther { .. }
    ));
    assert_eq!(s.get(b"r").as_deref(), Some(a_lock.token().as_bytes()));
    assert!(s.pttl(b"r") > 55_000, "A's TTL is intact");
    assert!(b.is_locked("r").await.unwrap().is_held_by(&a_lock));

    // Free once A releases.
    let mut a_lock = a_lock;
    a.unlock(&mut a_lock).await.unwrap();
    assert_eq!(b.is_locked("r").await.unwrap(), LockState::Free);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn is_locked_is_free_after_release() {
    let masters = Masters::start(3);
    let manager = manager(masters.urls(), RELAXED);
    assert_eq!(manager.is_locked("r").await.unwrap(), LockState::Free);

    let mut lock = manager
        .lock("r")
        .ttl(Duration::from_secs(10))
        .await
        .unwrap();
    let state = manager.is_locked("r").await.unwrap();
    assert!(state.is_held_by(&lock), "{state:?}");

    manager.unlock(&mut lock).await.unwrap();
    let state = manager.is_locked("r").await.unwrap();
    assert_eq!(state, LockState::Free);
    assert!(state.is_free() && !state.is_locked() && !state.is_held_by(&lock));
    assert_eq!(state.remaining(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_key_on_one_of_three_masters_is_never_held() {
    let masters = Masters::start(3);
    let manager = manager(masters.urls(), Duration::from_millis(200));
    masters[0].cmd(&["SET", "r", "foreign", "PX", "10000"]);

    // Two of three masters have no key: a majority agrees nobody holds `r`, which is what
    // `LockState::Free` documents ("no key on a majority of masters"); the minority key can
    // never be a valid lock, and an acquisition would succeed on the other two.
    let state = manager.is_locked("r").await.unwrap();
    assert_eq!(state, LockState::Free, "1 of 3 is not a quorum");

    // With the third master unreachable the answers (1 held, 1 absent) settle nothing:
    // Unsettled, with the per-master answers.
    masters[2].pause();
    let state = manager.is_locked("r").await;
    masters[2].resume();
    match state.unwrap() {
        LockState::Unsettled { outcomes } => {
            assert_eq!(outcomes.len(), 3);
            assert_eq!(outcomes[0].master(), masters[0].url());
            assert!(
                matches!(outcomes[0].status(), NodeStatus::HeldByOther { remaining: Some(r) } if *r <= Duration::from_secs(10)),
                "{}",
                outcomes[0]
            );
            assert_eq!(*outcomes[1].status(), NodeStatus::Absent);
            assert!(
                matches!(
                    outcomes[2].status(),
                    NodeStatus::Failed(NodeError::Timeout(_))
                ),
                "{}",
                outcomes[2]
            );
        }
        other => panic!("expected Unsettled, got {other:?}"),
    }

    // Two different holders on two masters and no key on the third: no majority agrees on
    // anything, so Unsettled.
    masters[1].cmd(&["SET", "r", "foreign-2", "PX", "10000"]);
    let state = manager.is_locked("r").await.unwrap();
    assert!(
        matches!(&state, LockState::Unsettled { outcomes } if outcomes.len() == 3),
        "{state:?}"
    );
    assert!(!state.is_locked() && !state.is_free());
    for s in masters.iter() {
        s.cmd(&["DEL", "r"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn is_locked_without_quorum_is_no_quorum_error() {
    let masters = Masters::start(3);
    let manager = manager(masters.urls(), Duration::from_millis(200));
    // Connections open, then two masters freeze. `inspect` waits for every master (a
    // quorum-settled `is_locked` may leave the third connection still opening, and a frozen
    // master then costs the connect timeout, 1 s, instead of the 200 ms budget).
    let views = manager.inspect("r").await.unwrap();
    assert!(
        views.iter().all(|v| v.state == KeyState::Absent),
        "{views:?}"
    );
    assert_eq!(manager.is_locked("r").await.unwrap(), LockState::Free);
    masters[1].pause();
    masters[2].pause();
    let started = Instant::now();
    let result = manager.is_locked("r").await;
    let took = started.elapsed();
    masters[1].resume();
    masters[2].resume();

    let err = result.expect_err("1 of 3 masters cannot give a quorum view");
    assert!(
        matches!(
            err,
            LockError::NoQuorum {
                operation: Operation::Query,
                quorum: 2,
                masters: 3,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_unavailable() && !err.is_conflict());
    let outcomes = err.outcomes();
    assert_eq!(*outcomes[0].status(), NodeStatus::Absent);
    for o in &outcomes[1..] {
        assert!(
            matches!(o.status(), NodeStatus::Failed(NodeError::Timeout(_))),
            "{o}"
        );
    }
    // Bounded by the per-master budget (200 ms), not hanging; ×5 slack for CI.
    assert!(took < Duration::from_secs(1), "took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn is_locked_answers_while_masters_pause_writes() {
    let masters = Masters::start(3);
    let manager = manager(masters.urls(), RELAXED);
    let lock = manager
        .lock("r")
        .ttl(Duration::from_secs(10))
        .await
        .unwrap();
    held_everywhere(masters.iter(), b"r", lock.token()).await;
    // A second client whose connections open during the pause.
    let other = self::manager(masters.urls(), RELAXED);

    for s in masters.iter() {
        s.cmd(&["CLIENT", "PAUSE", "2000", "WRITE"]);
    }
    let started = Instant::now();
    let mine = manager.is_locked("r").await;
    let theirs = other.is_locked("r").await;
    let took = started.elapsed();
    for s in masters.iter() {
        s.cmd(&["CLIENT", "UNPAUSE"]);
    }

    let mine = mine.expect("read-only: answers while writes are paused");
    assert!(mine.is_held_by(&lock), "{mine:?}");
    let theirs = theirs.expect("read-only: answers while writes are paused");
    assert!(theirs.is_locked() && theirs.is_held_by(&lock), "{theirs:?}");
    assert!(
        took < Duration::from_millis(1_000),
        "took {took:?}: far below the 2 s pause, so it did not wait for it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_without_ttl_is_held_with_no_remaining_time() {
    let masters = Masters::start(3);
    let manager = manager(masters.urls(), RELAXED);
    for s in masters.iter() {
        s.cmd(&["SET", "r", "foreign"]);
    }
    let state = manager.is_locked("r").await.unwrap();
    match &state {
        LockState::Held { holder, remaining } => {
            assert_eq!(holder.as_bytes(), b"foreign");
            assert_eq!(*remaining, None, "no TTL on the keys");
        }
        other => panic!("expected Held, got {other:?}"),
    }
    assert!(state.is_locked());
    assert_eq!(state.remaining(), None);
    // Its `Debug` shows the holder without crashing on any value.
    assert!(format!("{state:?}").contains("HolderToken"));
    // And nobody of ours holds it.
    let err = manager
        .try_lock("r")
        .await
        .expect_err("the foreign key excludes us");
    assert!(err.is_conflict(), "{err:?}");
    for s in masters.iter() {
        assert_eq!(s.get(b"r"), Some(b"foreign".to_vec()));
        assert_eq!(s.pttl(b"r"), -1, "the query changed nothing");
        s.cmd(&["DEL", "r"]);
    }
}

/// A hash under the resource's name on every master is not a lock: the quorum view is
/// `Unsettled` with `NotALock` per master — never a false "no quorum".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_lock_value_is_unsettled_not_unavailable() {
    let masters = Masters::start(3);
    for s in masters.iter() {
        s.cmd(&["HSET", "h", "f", "v"]);
    }
    let m = manager(masters.urls(), RELAXED);
    let state = m.is_locked("h").await.expect("every master answered");
    match &state {
        LockState::Unsettled { outcomes } => {
            assert_eq!(outcomes.len(), 3);
            assert!(
                outcomes.iter().all(|o| *o.status() == NodeStatus::NotALock),
                "{outcomes:?}"
            );
        }
        other => panic!("expected Unsettled, got {other:?}"),
    }
    assert!(!state.is_free() && !state.is_locked());
}

/// A reported remaining time is a safe lower bound when the caller gets it: A acquires with a
/// 1 s TTL, one master is paused at 800 ms, and `is_locked` at 850 ms may not promise the
/// keys past their expiry; `inspect`, which waits for the paused master, returns after the
/// keys expired and must then report nothing left on the masters that answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn is_locked_and_inspect_never_report_time_past_the_keys_expiry() {
    let masters = Masters::start(3);
    let manager = tokio_redlock::LockManager::builder()
        .servers(masters.urls())
        .node_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let asked = Instant::now();
    let _lock = manager.lock("r").ttl(Duration::from_secs(1)).await.unwrap();
    // The keys were set after `asked`: they exist at least until `asked + 1 s`, and a
    // reported remaining time may promise no more than that.
    let deadline = asked + Duration::from_secs(1);
    let acquired = Instant::now();
    tokio::time::sleep_until(acquired + Duration::from_millis(800)).await;
    masters[2].pause();
    tokio::time::sleep_until(acquired + Duration::from_millis(850)).await;
    let state = manager.is_locked("r").await.unwrap();
    let returned = Instant::now();
    match state {
        LockState::Held {
            remaining: Some(remaining),
            ..
        } => assert!(
            returned + remaining <= deadline,
            "is_locked promises {remaining:?} from {returned:?}, past the keys' expiry {deadline:?}"
        ),
        other => panic!("held by A expected, got {other:?}"),
    }
    let views = manager.inspect("r").await.unwrap();
    let returned = Instant::now();
    for view in &views[..2] {
        if let KeyState::Held {
            remaining: Some(remaining),
            ..
        } = view.state
        {
            assert!(
                remaining.is_zero() || returned + remaining <= deadline,
                "{}: {remaining:?} left reported at {returned:?}, keys expired by {deadline:?}",
                view.master
            );
        }
    }
    masters[2].resume();
    manager.close().await;
}

/// One's own lock never shows as "held by another holder" in per-master outcomes: a query
/// compares no token, so the key may well be ours. A holds `r`; master 2 lost the key and
/// master 3 holds a foreign value, so `is_locked` is `Unsettled`, and master 1's outcome —
/// A's own key — reads "held", nothing more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_lock_never_shows_as_held_by_another_holder() {
    let masters = Masters::start(3);
    let m = manager(masters.urls(), RELAXED);
    let lock = m.lock("r").ttl(Duration::from_secs(30)).await.unwrap();
    held_everywhere(masters.iter(), b"r", lock.token()).await;
    masters[1].cmd(&["DEL", "r"]);
    masters[2].cmd(&["SET", "r", "foreign", "PX", "30000"]);
    let state = m.is_locked("r").await.unwrap();
    let LockState::Unsettled { outcomes } = &state else {
        panic!("expected Unsettled, got {state:?}");
    };
    let ours = outcomes[0].to_string();
    assert!(
        ours.ends_with(": held") || ours.contains(": held, expires in "),
        "{ours}"
    );
    for o in outcomes {
        let shown = o.to_string();
        assert!(!shown.contains("another"), "{shown}");
        assert!(!shown.contains("other holder"), "{shown}");
    }
    // The holder handle itself tells whose it is.
    assert!(!state.is_held_by(&lock));
}

/// A non-lock value under the key on 2 of 3 masters is said as such: the masters agree, on
/// something that is not a lock. `try_lock` fails as `NotALock` (not a conflict, not
/// "unavailable"), `is_locked` is `Unsettled` with the two `NotALock` outcomes, and no
/// message says the masters disagree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_lock_value_on_two_of_three_is_not_called_a_disagreement() {
    let masters = Masters::start(3);
    masters[0].cmd(&["HSET", "h", "f", "v"]);
    masters[1].cmd(&["HSET", "h", "f", "v"]);
    let m = manager(masters.urls(), RELAXED);
    let err = m.try_lock("h").await.unwrap_err();
    assert!(err.is_not_a_lock(), "{err}");
    assert!(!err.is_conflict() && !err.is_unavailable(), "{err}");
    let shown = err.to_string();
    assert!(
        shown.contains("holds a value that is not a lock"),
        "{shown}"
    );
    assert!(!shown.contains("disagree"), "{shown}");
    let state = m.is_locked("h").await.unwrap();
    let LockState::Unsettled { outcomes } = &state else {
        panic!("expected Unsettled, got {state:?}");
    };
    let not_a_lock = outcomes
        .iter()
        .filter(|o| *o.status() == NodeStatus::NotALock)
        .count();
    assert_eq!(not_a_lock, 2, "{outcomes:?}");
    for o in outcomes {
        assert!(!o.to_string().contains("disagree"), "{o}");
    }
    for s in masters.iter().take(2) {
        assert_eq!(
            s.cmd(&["TYPE", "h"]),
            redis::Value::SimpleString("hash".into())
        );
    }
}
