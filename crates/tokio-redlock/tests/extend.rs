//! Extension (`LockManager::extend`): compare-and-`PEXPIRE` on a quorum, an honest new
//! deadline measured from before the requests, and never re-creating an expired key.
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

use support::checks::{drift, held_everywhere, manager, millis, proxies_for};
use support::proxy::FaultProxy;
use support::servers::Masters;
use tokio::time::Instant;
use tokio_redlock::{LockError, LockManager, NodeStatus, Operation};

/// 3 masters, each behind a proxy; the manager talks to the proxies with a per-master
/// budget well above the injected latency.
async fn proxied_masters() -> (Masters, Vec<FaultProxy>, LockManager) {
    let masters = Masters::start(3);
    let proxies = proxies_for(&masters).await;
    let manager = manager(proxies.iter().map(FaultProxy::url), Duration::from_secs(3));
    (masters, proxies, manager)
}

/// Waits 50 ms (for any straggler to land), then asserts that no master has `r`.
async fn nothing_recreated(masters: &Masters) {
    tokio::time::sleep(Duration::from_millis(50)).await;
    for s in masters.iter() {
        assert!(!s.exists(b"r"), "extend re-created the key on {}", s.url());
    }
}

/// `manager` locks `r` for 10 s; returns once every master holds it.
async fn held_for_10s(manager: &LockManager, masters: &Masters) -> tokio_redlock::Lock {
    let lock = manager
        .lock("r")
        .ttl(Duration::from_millis(10_000))
        .await
        .unwrap();
    held_everywhere(masters.iter(), b"r", lock.token()).await;
    lock
}

/// 3 masters, each behind a proxy; A talks to the proxies with `a_node_timeout`, B to the
/// masters directly with 500 ms.
async fn a_proxied_b_direct(
    a_node_timeout: Duration,
) -> (Masters, Vec<FaultProxy>, LockManager, LockManager) {
    let masters = Masters::start(3);
    let proxies = proxies_for(&masters).await;
    let a = manager(proxies.iter().map(FaultProxy::url), a_node_timeout);
    let b = manager(masters.urls(), Duration::from_millis(500));
    (masters, proxies, a, b)
}

/// B takes `r` over once A's handle is invalid ([`b_acquires_and_a_is_invalid`]), releases
/// it, and the proxies are healed.
async fn b_takes_over_then_heal(
    b: &LockManager,
    a_lock: &tokio_redlock::Lock,
    proxies: &[FaultProxy],
) {
    let mut b_lock = b_acquires_and_a_is_invalid(b, "r", a_lock, Duration::from_secs(3)).await;
    b.unlock(&mut b_lock).await.unwrap();
    for p in proxies {
        p.heal();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c02_extend_validity_counts_700ms_reply_latency() {
    let (masters, proxies, manager) = proxied_masters().await;
    let ttl = Duration::from_millis(1_000);
    // Acquire with the proxies adding nothing.
    let mut lock = manager.lock("r").ttl(ttl).await.unwrap();
    held_everywhere(masters.iter(), b"r", lock.token()).await;
    let acquired = Instant::now();

    for p in &proxies {
        p.set_reply_latency(Duration::from_millis(700));
    }
    tokio::time::sleep_until(acquired + Duration::from_millis(200)).await;
    let before = Instant::now();
    manager
        .extend(&mut lock, ttl)
        .await
        .expect("with 700 ms of reply latency a 1 000 ms extension still leaves validity");
    let after = Instant::now();
    let validity = lock.validity();

    assert!(
        after - before >= Duration::from_millis(700),
        "{:?}",
        after - before
    );
    // The new deadline counts from before the requests left: start + ttl − drift.
    let lease = ttl - drift(ttl); // 988 ms
    let from_start = lock.deadline() - before;
    assert!(
        from_start >= lease - Duration::from_millis(1)
            && from_start < lease + Duration::from_millis(50),
        "deadline is {from_start:?} after the extend started, expected ≈ {lease:?}"
    );
    // Remaining validity ≈ 1 000 − 700 − 12 = 288 ms: the 700 ms are not given back, and it
    // is never ≈ 1 000 ms.
    assert!(
        validity > Duration::ZERO && validity <= Duration::from_millis(290),
        "validity {validity:?} should be about 288 ms"
    );
    assert!(lock.is_valid());
    // Redis holds A's token with the reset TTL.
    for s in masters.iter() {
        assert_eq!(s.get(b"r").as_deref(), Some(lock.token().as_bytes()));
        let pttl = s.pttl(b"r");
        assert!(pttl > 0 && pttl <= 1_000, "PTTL {pttl}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c02_extend_with_1100ms_reply_latency_is_validity_exhausted() {
    let (masters, proxies, manager) = proxied_masters().await;
    let ttl = Duration::from_millis(1_000);
    let mut lock = manager.lock("r").ttl(ttl).await.unwrap();
    held_everywhere(masters.iter(), b"r", lock.token()).await;
    let acquired = Instant::now();
    let old_deadline = lock.deadline();

    for p in &proxies {
        p.set_reply_latency(Duration::from_millis(1_100));
    }
    tokio::time::sleep_until(acquired + Duration::from_millis(200)).await;

    // While the replies are on their way, read PTTL directly on the masters: it must be
    // above anything the acquisition's TTL could still show, so Redis applied the PEXPIRE.
    let extend = async {
        let before = Instant::now();
        let result = manager.extend(&mut lock, ttl).await;
        (before, result, Instant::now())
    };
    let probe = async {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let probe_start = Instant::now();
        let pttls: Vec<i64> = masters.iter().map(|s| s.pttl(b"r")).collect();
        (probe_start, pttls)
    };
    let ((before, result, after), (probe_start, pttls)) = tokio::join!(extend, probe);

    // Reported as failed: the quorum's replies came after the 988 ms lease ran out.
    let err = result.expect_err("1 100 ms of reply latency leaves no validity of 1 000 ms");
    assert!(
        matches!(
            err,
            LockError::ValidityExhausted {
                operation: Operation::Extend,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_validity_exhausted());
    assert!(after - before >= Duration::from_millis(1_100));
    // The old deadline stands (and has passed by now).
    assert_eq!(lock.deadline(), old_deadline);
    assert!(!lock.is_valid());

    // ... even though Redis applied the PEXPIRE: without it, PTTL could be at most
    // 1 000 − (probe_start − acquired) ≈ 650 ms; extended, it is ≈ 850 ms.
    let unextended_max = 1_000 - millis(probe_start - acquired);
    for (s, pttl) in masters.iter().zip(pttls) {
        assert!(
            pttl > unextended_max && pttl <= 1_000,
            "PTTL {pttl} on {} shows no extension (an unextended key has at most {unextended_max})",
            s.url()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c03_extend_succeeds_with_one_master_dead() {
    let mut masters = Masters::start(3);
    let manager = manager(masters.urls(), Duration::from_millis(500));
    let ttl = Duration::from_millis(3_000);
    let mut lock = manager.lock("r").ttl(ttl).await.unwrap();
    held_everywhere(masters.iter(), b"r", lock.token()).await;
    masters[2].kill();

    let before = Instant::now();
    manager
        .extend(&mut lock, ttl)
        .await
        .expect("2 of 3 masters extend: success");
    let elapsed = millis(before.elapsed());
    assert!(lock.is_valid());
    assert!(lock.validity() > ttl - drift(ttl) - Duration::from_millis(300));

    // Nothing deleted: S1 and S2 hold A's token with a fresh 3 000 ms TTL.
    for s in &masters.0[..2] {
        assert_eq!(s.get(b"r").as_deref(), Some(lock.token().as_bytes()));
        let pttl = s.pttl(b"r");
        assert!(
            pttl <= 3_000 && pttl >= 3_000 - elapsed - 300,
            "PTTL {pttl} should be about 3 000"
        );
    }

    // The API chose "if at all" for a successful extend: `Ok(())` carries no per-master
    // detail. S3's error shows up as per-master detail in the outcomes of a round that fails
    // because of it: with S2 gone too, the extend reports S3's (and S2's) cause, and still
    // deletes nothing and keeps the old deadline.
    let deadline = lock.deadline();
    masters[1].kill();
    let err = manager.extend(&mut lock, ttl).await.expect_err("1 of 3");
    assert!(err.is_unavailable(), "{err:?}");
    let s3 = &err.outcomes()[2];
    assert_eq!(s3.master(), masters[2].url());
    assert!(matches!(s3.status(), NodeStatus::Failed(_)), "{s3}");
    assert_eq!(lock.deadline(), deadline);
    assert_eq!(
        masters[0].get(b"r").as_deref(),
        Some(lock.token().as_bytes())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c23a_extend_after_expiry_is_not_held_and_recreates_nothing() {
    let masters = Masters::start(3);
    let manager = manager(masters.urls(), Duration::from_millis(500));
    let ttl = Duration::from_millis(500);
    let mut lock = manager.lock("r").ttl(ttl).await.unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;

    let err = manager.extend(&mut lock, ttl).await.expect_err("expired");
    assert!(err.is_not_held(), "expected NotHeld, got {err:?}");
    for o in err.outcomes() {
        assert!(
            matches!(o.status(), NodeStatus::Absent | NodeStatus::NotAwaited),
            "{o}"
        );
    }
    nothing_recreated(&masters).await; // let any straggler land
    assert!(!lock.is_valid());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c23b_extend_after_another_holder_came_and_went_is_not_held() {
    let masters = Masters::start(3);
    let a = manager(masters.urls(), Duration::from_millis(500));
    let b = manager(masters.urls(), Duration::from_millis(500));
    let ttl = Duration::from_millis(500);
    let t0 = Instant::now();
    let mut a_lock = a.lock("r").ttl(ttl).await.unwrap();

    tokio::time::sleep_until(t0 + Duration::from_millis(550)).await;
    let mut b_lock = b
        .lock("r")
        .ttl(Duration::from_millis(10_000))
        .await
        .unwrap();
    b.unlock(&mut b_lock).await.unwrap();
    assert!(
        support::eventually(Duration::from_secs(2), || masters
            .iter()
            .all(|s| s.get(b"r").is_none()))
        .await
    );

    tokio::time::sleep_until(t0 + Duration::from_millis(700)).await;
    let err = a
        .extend(&mut a_lock, ttl)
        .await
        .expect_err("A's lock lapsed");
    assert!(err.is_not_held(), "expected NotHeld, got {err:?}");
    nothing_recreated(&masters).await;
    assert!(!a_lock.is_valid());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extend_never_recreates_a_deleted_key() {
    let masters = Masters::start(3);
    let manager = manager(masters.urls(), Duration::from_millis(500));
    let ttl = Duration::from_millis(10_000);
    let mut lock = manager.lock("r").ttl(ttl).await.unwrap();
    held_everywhere(masters.iter(), b"r", lock.token()).await;
    for s in masters.iter() {
        s.cmd(&["DEL", "r"]);
    }
    assert!(lock.is_valid(), "the handle cannot know yet");

    let err = manager
        .extend(&mut lock, ttl)
        .await
        .expect_err("no key left");
    assert!(err.is_not_held(), "expected NotHeld, got {err:?}");
    nothing_recreated(&masters).await;
    // Its deadline was 10 s away: the NotHeld answer itself invalidated the handle.
    assert!(!lock.is_valid());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extend_on_5_masters_with_2_paused_succeeds_with_honest_deadline() {
    let masters = Masters::start(5);
    let manager = manager(masters.urls(), Duration::from_millis(200));
    let mut lock = manager
        .lock("r")
        .ttl(Duration::from_millis(2_000))
        .await
        .unwrap();
    held_everywhere(masters.iter(), b"r", lock.token()).await;
    masters[3].pause();
    masters[4].pause();

    let ttl = Duration::from_millis(3_000);
    let before = Instant::now();
    let result = manager.extend(&mut lock, ttl).await;
    let after = Instant::now();
    masters[3].resume();
    masters[4].resume();
    result.expect("3 of 5 masters extend: success");

    // deadline = start + ttl − drift, start between `before` and `after`.
    let lease = ttl - drift(ttl); // 2 968 ms
    let slack = Duration::from_millis(1);
    assert!(
        lock.deadline() + slack >= before + lease && lock.deadline() <= after + lease + slack,
        "deadline {:?} after the extend started, expected ≈ {lease:?}",
        lock.deadline() - before
    );
    assert_eq!(lock.ttl(), ttl);
    let elapsed = millis(after - before);
    for s in &masters.0[..3] {
        assert_eq!(s.get(b"r").as_deref(), Some(lock.token().as_bytes()));
        let pttl = s.pttl(b"r");
        assert!(
            pttl <= 3_000 && pttl >= 2_000_i64.max(3_000 - elapsed - 300),
            "PTTL {pttl} should be about 3 000"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extend_with_zero_ttl_is_invalid_argument_and_sends_nothing() {
    let masters = Masters::start(3);
    let manager = manager(masters.urls(), Duration::from_millis(500));
    let mut lock = held_for_10s(&manager, &masters).await;
    let deadline = lock.deadline();
    for s in masters.iter() {
        s.cmd(&["CONFIG", "RESETSTAT"]);
    }

    let err = manager
        .extend(&mut lock, Duration::ZERO)
        .await
        .expect_err("a zero TTL is rejected");
    assert!(matches!(err, LockError::InvalidArgument(_)), "{err:?}");
    assert!(err.is_invalid_input());
    assert!(err.outcomes().is_empty(), "no request was sent: {err:?}");

    tokio::time::sleep(Duration::from_millis(50)).await;
    for s in masters.iter() {
        assert_eq!(
            s.command_calls("evalsha"),
            0,
            "no request reached {}",
            s.url()
        );
        assert_eq!(s.command_calls("eval"), 0, "no request reached {}", s.url());
        assert_eq!(s.get(b"r").as_deref(), Some(lock.token().as_bytes()));
        assert!(s.pttl(b"r") > 9_000, "the key's TTL is untouched");
    }
    assert_eq!(lock.deadline(), deadline, "the handle is untouched");
    assert!(lock.is_valid());
    manager.unlock(&mut lock).await.unwrap();
}

// ---------------------------------------------------------------------------------------
// F1: an extension to a SHORTER TTL that fails (or is cancelled) still shortens the handle's
// deadline: the masters may have applied the shorter TTL, so the old deadline would outlive
// the keys and two clients would each hold a valid handle.
// ---------------------------------------------------------------------------------------

/// The lease a TTL gives with the default drift factor: `ttl − (ttl × 0.01 + 2 ms)`, zero when
/// nothing is left.
fn lease(ttl: Duration) -> Duration {
    ttl.saturating_sub(drift(ttl))
}

/// Polls `b.try_lock(resource)` until it succeeds (within `limit`), then checks that `a_lock`
/// is invalid at that moment: never two valid handles. Returns B's lock.
async fn b_acquires_and_a_is_invalid(
    b: &LockManager,
    resource: &str,
    a_lock: &tokio_redlock::Lock,
    limit: Duration,
) -> tokio_redlock::Lock {
    let started = Instant::now();
    let b_lock = loop {
        match b.try_lock(resource).await {
            Ok(lock) => break lock,
            Err(e) => {
                assert!(e.is_conflict(), "B: {e:?}");
                assert!(
                    started.elapsed() < limit,
                    "B could not acquire within {limit:?}: {e}"
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let now = Instant::now();
    assert!(b_lock.is_valid());
    assert!(
        !a_lock.is_valid() && a_lock.deadline() <= now,
        "TWO HOLDERS: B acquired while A's handle is still valid for {:?}",
        a_lock.validity()
    );
    b_lock
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f1_failed_extend_to_1ms_shortens_the_deadline() {
    let masters = Masters::start(3);
    let a = manager(masters.urls(), Duration::from_millis(500));
    let b = manager(masters.urls(), Duration::from_millis(500));
    let mut lock = held_for_10s(&a, &masters).await;

    // No fault: every master applies PX 1, but 1 ms is below its 2 ms drift, so the extension
    // reports ValidityExhausted.
    let err = a
        .extend(&mut lock, Duration::from_millis(1))
        .await
        .expect_err("1 ms leaves no validity");
    assert!(
        matches!(
            err,
            LockError::ValidityExhausted {
                operation: Operation::Extend,
                ..
            }
        ),
        "{err:?}"
    );
    // The 10 s deadline did not survive: a 1 ms TTL has no lease at all.
    assert_eq!(lock.validity(), Duration::ZERO);
    assert!(!lock.is_valid());

    let mut b_lock = b_acquires_and_a_is_invalid(&b, "r", &lock, Duration::from_secs(3)).await;
    // A quorum holds B's token (a master may still have shown A's key with PTTL 0 to B).
    let holding = masters
        .iter()
        .filter(|s| s.holds(b"r", b_lock.token()))
        .count();
    assert!(holding >= b.quorum(), "{holding} masters hold B's token");
    b.unlock(&mut b_lock).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f1_no_quorum_extend_to_shorter_ttl_shortens_the_deadline() {
    let (masters, proxies, a, b) = a_proxied_b_direct(Duration::from_millis(100)).await;
    let mut lock = held_for_10s(&a, &masters).await;

    // S2 and S3 execute the PEXPIRE at once, but their replies arrive after node_timeout.
    proxies[1].set_reply_latency(Duration::from_millis(300));
    proxies[2].set_reply_latency(Duration::from_millis(300));
    let ttl = Duration::from_millis(400);
    let err = a
        .extend(&mut lock, ttl)
        .await
        .expect_err("only S1 answers in time");
    assert!(
        matches!(
            err,
            LockError::NoQuorum {
                operation: Operation::Extend,
                ..
            }
        ),
        "{err:?}"
    );
    let validity = lock.validity();
    assert!(
        validity <= lease(ttl),
        "validity {validity:?} after a failed extension to {ttl:?} (lease {:?})",
        lease(ttl)
    );
    // Every master did apply the shorter TTL.
    for s in masters.iter() {
        let pttl = s.pttl(b"r");
        assert!(pttl > 0 && pttl <= 400, "PTTL {pttl} on {}", s.url());
    }

    b_takes_over_then_heal(&b, &lock, &proxies).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f1_cancelled_extend_to_shorter_ttl_shortens_the_deadline() {
    let (masters, proxies, a, b) = a_proxied_b_direct(Duration::from_millis(1_000)).await;
    let mut lock = held_for_10s(&a, &masters).await;

    // The requests reach the masters at once; the replies take 200 ms, and the extend future
    // is dropped after 20 ms, mid-flight.
    for p in &proxies {
        p.set_reply_latency(Duration::from_millis(200));
    }
    let ttl = Duration::from_millis(300);
    let cut = tokio::time::timeout(Duration::from_millis(20), a.extend(&mut lock, ttl)).await;
    assert!(cut.is_err(), "the extension should have been cut off");
    let validity = lock.validity();
    assert!(
        validity <= lease(ttl),
        "validity {validity:?} after a cancelled extension to {ttl:?} (lease {:?})",
        lease(ttl)
    );
    // The masters applied the shorter TTL although nobody heard back.
    assert!(
        support::eventually(Duration::from_secs(1), || masters
            .iter()
            .all(|s| (1..=300).contains(&s.pttl(b"r"))))
        .await,
        "PTTLs {:?}",
        masters.iter().map(|s| s.pttl(b"r")).collect::<Vec<_>>()
    );

    b_takes_over_then_heal(&b, &lock, &proxies).await;
}
