//! Acquisition, extension and release against real masters: keys, tokens, TTLs and validity
//! on the servers, and the typed results of field cases C04 (retry part), C06 (a), C10, C11,
//! C20 and C21.
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
use std::time::Duration;

use redis::Value;
use support::checks::{
    RELAXED, RELEASE_SCRIPT, assert_no_key_without_ttl, builder, drift, held_everywhere_within,
    millis, ms, render, settle, settle_within, watchdog,
};
use support::proxy::FaultProxy;
use support::servers::{Masters, RedisServer};
use support::{eventually, unique_name};
use tokio::time::Instant;
use tokio_redlock::{ConfigError, LockError, LockManager, MAX_TTL, NodeStatus};

/// `PTTL key` lies in `(requested − elapsed − 5 ms, requested]`, where `elapsed` is the time
/// since `since` (taken before the request that set the TTL left): the key cannot have aged
/// more than that, and Redis counts whole milliseconds.
fn assert_pttl(server: &RedisServer, key: &[u8], requested: Duration, since: Instant) -> i64 {
    let pttl = server.pttl(key);
    let upper = millis(since.elapsed());
    let requested = millis(requested);
    assert!(
        pttl <= requested && pttl > requested - upper - 5,
        "PTTL {pttl} ms not in ({}, {requested}] (request started {upper} ms ago)",
        requested - upper - 5
    );
    pttl
}

fn is_token(t: &str) -> bool {
    t.len() == 32 && t.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Lock, extend and unlock on `n` masters, checking every master's key, value and PTTL.
async fn lock_extend_unlock_on(n: usize) {
    let masters = Masters::start(n);
    let manager = builder(&masters.urls()).build().unwrap();
    let resource = unique_name("cycle");
    let key = resource.as_bytes();

    let ttl = ms(5_000);
    let t0 = Instant::now();
    let mut lock = manager.lock(&resource).ttl(ttl).await.unwrap();
    let validity = lock.validity();
    let t_end = Instant::now();
    assert_eq!(lock.resource(), key);
    assert_eq!(lock.ttl(), ttl);
    assert!(is_token(lock.token()), "token {:?}", lock.token());
    assert!(lock.is_valid());
    assert!(
        validity > Duration::ZERO && validity <= ttl - drift(ttl),
        "validity {validity:?} for a {ttl:?} TTL"
    );
    // deadline = start + ttl − drift, with start taken during the call.
    assert!(
        lock.deadline() >= t0 + ttl - drift(ttl) && lock.deadline() <= t_end + ttl - drift(ttl)
    );
    let token = lock.token().as_bytes().to_vec();

    // A quorum granted before `lock` returned; the other masters answer in the background.
    let holding = masters.iter().filter(|s| s.holds(key, &token)).count();
    assert!(
        holding >= manager.quorum(),
        "{holding} of {n} masters hold the key"
    );
    held_everywhere_within(ms(2_000), masters.iter(), key, &token).await;
    for s in masters.iter() {
        assert_pttl(s, key, ttl, t0);
    }

    let new_ttl = ms(8_000);
    let t1 = Instant::now();
    manager.extend(&mut lock, new_ttl).await.unwrap();
    assert_eq!(lock.ttl(), new_ttl);
    let validity = lock.validity();
    assert!(
        validity > ttl && validity <= new_ttl - drift(new_ttl),
        "validity {validity:?} after extending to {new_ttl:?}"
    );
    assert!(
        eventually(ms(2_000), || masters.iter().all(|s| s.pttl(key) > 5_000)).await,
        "every master must end up extended"
    );
    for s in masters.iter() {
        assert_eq!(s.get(key).as_deref(), Some(&token[..]));
        assert_pttl(s, key, new_ttl, t1);
    }

    manager.unlock(&mut lock).await.unwrap();
    assert!(!lock.is_valid());
    assert_eq!(lock.validity(), Duration::ZERO);
    let gone = masters.iter().filter(|s| s.get(key).is_none()).count();
    assert!(gone >= manager.quorum(), "{gone} of {n} masters deleted");
    assert!(
        eventually(ms(2_000), || masters.iter().all(|s| s.dbsize() == 0)).await,
        "every master must end up empty"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_extend_unlock_on_one_master() {
    lock_extend_unlock_on(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_extend_unlock_on_three_masters() {
    lock_extend_unlock_on(3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_extend_unlock_on_five_masters() {
    lock_extend_unlock_on(5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_32_hex_digits_and_distinct_per_acquisition() {
    let masters = Masters::start(1);
    let manager = builder(&masters.urls()).build().unwrap();
    let resource = unique_name("tokens");
    let mut seen = HashSet::new();
    for i in 0..20 {
        // The same resource over and over, and a fresh one each time.
        for name in [resource.clone(), format!("{resource}-{i}")] {
            let mut lock = manager.lock(&name).await.unwrap();
            let token = lock.token().to_owned();
            assert!(is_token(&token), "token {token:?}");
            assert_eq!(
                masters[0].get(name.as_bytes()).as_deref(),
                Some(token.as_bytes())
            );
            assert!(seen.insert(token), "token reused");
            manager.unlock(&mut lock).await.unwrap();
        }
    }
    assert_eq!(seen.len(), 40);
    assert_eq!(masters[0].dbsize(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validity_is_positive_and_at_most_ttl_minus_drift() {
    let masters = Masters::start(3);
    let manager = builder(&masters.urls()).build().unwrap();
    for ttl in [ms(100), ms(2_000), ms(10_000), ms(60_000)] {
        let resource = unique_name("validity");
        let t0 = Instant::now();
        let mut lock = manager.lock(&resource).ttl(ttl).await.unwrap();
        let validity = lock.validity();
        let elapsed = t0.elapsed();
        assert!(validity > Duration::ZERO, "{ttl:?}: validity {validity:?}");
        assert!(
            validity <= ttl - drift(ttl),
            "{ttl:?}: validity {validity:?} exceeds ttl − drift"
        );
        // Validity = ttl − (time of the winning attempt) − drift, so it loses no more than
        // the time the call took.
        assert!(
            validity + elapsed + ms(1) >= ttl - drift(ttl),
            "{ttl:?}: validity {validity:?} after {elapsed:?}"
        );
        manager.unlock(&mut lock).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_turns_invalid_by_itself_at_its_deadline() {
    let mut masters = Masters::start(1);
    let manager = builder(&masters.urls())
        .node_timeout(RELAXED)
        .build()
        .unwrap();
    // Long enough that killing the server (slow on a loaded box) surely ends before it.
    let ttl = ms(2_000);
    let t0 = Instant::now();
    let lock = manager
        .lock(unique_name("deadline"))
        .ttl(ttl)
        .await
        .unwrap();
    let t_end = Instant::now();
    assert!(lock.is_valid());
    assert!(
        lock.deadline() >= t0 + ttl - drift(ttl) && lock.deadline() <= t_end + ttl - drift(ttl)
    );
    // From here on no server is involved: the deadline is a monotonic instant.
    masters[0].kill();
    assert!(lock.is_valid(), "still valid before the deadline");
    tokio::time::sleep_until(lock.deadline()).await;
    assert!(!lock.is_valid(), "invalid once the deadline has passed");
    assert_eq!(lock.validity(), Duration::ZERO);
    tokio::time::sleep_until(t0 + ttl + ms(50)).await;
    assert!(!lock.is_valid(), "and it stays invalid past the TTL");
    assert_eq!(lock.validity(), Duration::ZERO);
}

/// C10, first run: B holds `r` on all three masters; A's single attempt is a typed
/// conflict, not "unavailable".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c10_conflict_when_b_holds_all_three() {
    let masters = Masters::start(3);
    let a = builder(&masters.urls()).build().unwrap();
    let b = builder(&masters.urls()).build().unwrap();
    let resource = unique_name("c10-all");
    let key = resource.as_bytes();
    let b_lock = b.lock(&resource).ttl(ms(10_000)).await.unwrap();
    let b_token = b_lock.token().as_bytes().to_vec();
    held_everywhere_within(ms(2_000), masters.iter(), key, &b_token).await;

    let err = a.try_lock(&resource).await.unwrap_err();
    render(&err);
    assert!(err.is_conflict(), "{err}");
    assert!(!err.is_unavailable(), "{err}");
    assert!(!err.is_auth() && !err.is_not_a_lock(), "{err}");
    let outcomes = err.outcomes();
    assert_eq!(outcomes.len(), 3);
    let held = outcomes
        .iter()
        .filter(|o| {
            matches!(o.status(), NodeStatus::HeldByOther { remaining: Some(r) }
                if *r <= ms(10_000) && *r > ms(5_000))
        })
        .count();
    assert!(held >= 2, "{err}");
    assert!(
        outcomes.iter().all(|o| matches!(
            o.status(),
            NodeStatus::HeldByOther { .. } | NodeStatus::NotAwaited
        )),
        "{err}"
    );
    if let LockError::Conflict { attempts, .. } = &err {
        assert_eq!(*attempts, 1);
    }
    for s in masters.iter() {
        assert_eq!(s.get(key).as_deref(), Some(&b_token[..]), "B's key intact");
        assert_eq!(s.dbsize(), 1);
    }
}

/// C10, second run: B holds `r` on S1 and S2 only, S3 is healthy and free. A still gets the
/// typed conflict, and A's key on S3 is released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c10_conflict_when_b_holds_s1_and_s2_only() {
    let masters = Masters::start(3);
    let urls = masters.urls();
    let b = builder(&urls[..2]).build().unwrap();
    // Each run starts as right after start-up: a fresh client A (its first request to each
    // master opens a connection) and masters that have not cached the scripts yet.
    for run in 0..5 {
        let a = builder(&urls).build().unwrap();
        for s in masters.iter() {
            s.flush_scripts();
        }
        let resource = unique_name("c10-two");
        let key = resource.as_bytes();
        let b_lock = b.lock(&resource).ttl(ms(10_000)).await.unwrap();
        let b_token = b_lock.token().as_bytes().to_vec();
        assert_eq!(masters[0].get(key).as_deref(), Some(&b_token[..]));
        assert_eq!(masters[1].get(key).as_deref(), Some(&b_token[..]));
        assert_eq!(masters[2].get(key), None);

        let err = a.try_lock(&resource).await.unwrap_err();
        render(&err);
        assert!(err.is_conflict(), "run {run}: {err}");
        assert!(!err.is_unavailable(), "run {run}: {err}");
        let outcomes = err.outcomes();
        assert_eq!(outcomes.len(), 3);
        for o in &outcomes[..2] {
            assert!(
                matches!(o.status(), NodeStatus::HeldByOther { .. }),
                "run {run}: {err}"
            );
        }
        assert!(
            matches!(
                outcomes[2].status(),
                NodeStatus::Done | NodeStatus::NotAwaited
            ),
            "run {run}: {err}"
        );
        // A's token is absent from S3 afterwards: released at once, or by the background
        // cleanup, which must be over once no background task is left.
        assert!(
            eventually(ms(2_000), || a.background_tasks() == 0).await,
            "run {run}: background cleanup still running"
        );
        assert_eq!(
            masters[2].get(key),
            None,
            "run {run}: A's key is on S3 after A's failed attempt (PTTL {} ms); A saw: {err}",
            masters[2].pttl(key)
        );
        assert_eq!(masters[2].dbsize(), 0, "run {run}");
        assert_eq!(masters[0].get(key).as_deref(), Some(&b_token[..]));
        assert_eq!(masters[1].get(key).as_deref(), Some(&b_token[..]));
    }
}

/// C10, second run, with the timing made deterministic: S3 is healthy but 20 ms away, and
/// its script cache was flushed (C07: `SCRIPT FLUSH` or a restart) after which another client
/// of ours released a lock there, so it has our release script cached but not the acquire
/// script. A's acquire request to S3 is still in flight (`NOSCRIPT` → `EVAL`) when S1 and S2
/// have refused, so A's cleanup release on S3 is sent while that request is pending.
/// Expected, as in C10: a typed conflict, and no key carrying A's token on S3 once A's
/// cleanup is over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c10_conflict_leaves_no_key_on_a_slow_third_master() {
    let masters = Masters::start(3);
    let proxy = FaultProxy::start(masters[2].addr()).await;
    let urls = masters.urls();
    let b = builder(&urls[..2]).build().unwrap();
    let a = builder(&[urls[0].clone(), urls[1].clone(), proxy.url()])
        .node_timeout(ms(200))
        .build()
        .unwrap();
    // A is connected to every master.
    let mut warm = a.lock(unique_name("c10-warm")).await.unwrap();
    a.unlock(&mut warm).await.unwrap();
    settle_within(&a, ms(2_000)).await;
    proxy.set_reply_latency(ms(20));

    let resource = unique_name("c10-slow");
    let key = resource.as_bytes();
    let b_lock = b.lock(&resource).ttl(ms(10_000)).await.unwrap();
    masters[2].flush_scripts();
    masters[2].cmd(&["SCRIPT", "LOAD", RELEASE_SCRIPT]);

    let err = a.try_lock(&resource).await.unwrap_err();
    render(&err);
    assert!(err.is_conflict(), "{err}");
    assert!(!err.is_unavailable(), "{err}");
    settle(&a).await;
    assert_eq!(
        masters[2].get(key),
        None,
        "A's key is on S3 after A's failed attempt (PTTL {} ms); A saw: {err}",
        masters[2].pttl(key)
    );
    assert_eq!(
        masters[0].get(key).as_deref(),
        Some(b_lock.token().as_bytes())
    );
}

/// C11: 60 ms of reply latency. 50 ms and 1 ms TTLs leave no validity: the API's choice
/// for "not acquired / validity exhausted" is `LockError::ValidityExhausted`, and the key
/// is removed. 0 ms is an invalid argument before any I/O. `MAX_TTL` is accepted with the
/// exact PX; one millisecond more is rejected, never wrapped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c11_tiny_zero_and_huge_ttls_behind_60ms_latency() {
    let masters = Masters::start(1);
    let server = &masters[0];
    let proxy = FaultProxy::start(server.addr()).await;
    let manager = LockManager::builder()
        .server(proxy.url())
        .ttl(ms(2_000))
        .node_timeout(ms(200))
        .retry_count(1)
        .retry_delay(ms(20))
        .retry_jitter(Duration::ZERO)
        .build()
        .unwrap();
    // Connect and load the scripts before adding the latency.
    let mut warm = manager.lock(unique_name("c11-warm")).await.unwrap();
    manager.unlock(&mut warm).await.unwrap();
    proxy.set_reply_latency(ms(60));

    for ttl in [ms(50), ms(1)] {
        let resource = unique_name("c11-tiny");
        let err = manager.lock(&resource).ttl(ttl).await.unwrap_err();
        render(&err);
        assert!(err.is_validity_exhausted(), "{ttl:?}: {err}");
        assert!(!err.is_conflict() && !err.is_unavailable(), "{err}");
        match &err {
            LockError::ValidityExhausted {
                ttl: t,
                elapsed,
                attempts,
                ..
            } => {
                assert_eq!(*t, ttl);
                // 50 ms leaves a lease after the drift, so the retry runs too; 1 ms is at or
                // below its 2 ms drift, can never give a valid lock, and is not retried.
                let expected = if ttl > ms(3) { 2 } else { 1 };
                assert_eq!(*attempts, expected, "{ttl:?}: attempts made");
                assert!(
                    *elapsed >= ms(55),
                    "round took {elapsed:?} through the proxy"
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            server.get(resource.as_bytes()),
            None,
            "{ttl:?}: key removed"
        );
    }

    // 0 ms: rejected before any request, on this manager...
    let t = Instant::now();
    let err = manager
        .lock(unique_name("c11-zero"))
        .ttl(Duration::ZERO)
        .await
        .unwrap_err();
    render(&err);
    assert!(err.is_invalid_input(), "{err}");
    assert!(matches!(err, LockError::InvalidArgument(_)), "{err:?}");
    assert!(err.outcomes().is_empty());
    assert!(
        t.elapsed() < ms(60),
        "no round trip through the 60 ms proxy"
    );

    // ...and on a manager whose masters are a closed port and a listener that never
    // answers: any I/O would give NoQuorum (or hang for the connect timeout), and the
    // listener would see a connection.
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let offline = LockManager::builder()
        .servers([
            format!("redis://127.0.0.1:{closed_port}"),
            format!("redis://127.0.0.1:{silent_port}"),
        ])
        .connect_timeout(ms(3_000))
        .build()
        .unwrap();
    let t = Instant::now();
    let err = offline.lock("r").ttl(Duration::ZERO).await.unwrap_err();
    assert!(t.elapsed() < ms(500), "took {:?}", t.elapsed());
    assert!(matches!(err, LockError::InvalidArgument(_)), "{err:?}");
    assert!(
        tokio::time::timeout(ms(100), silent.accept())
            .await
            .is_err(),
        "the library connected although the TTL was invalid"
    );

    // The largest TTL accepted: exact PX on the server, no wrap-around.
    let resource = unique_name("c11-max");
    let key = resource.as_bytes();
    let t0 = Instant::now();
    let mut lock = manager.lock(&resource).ttl(MAX_TTL).await.unwrap();
    assert_pttl(server, key, MAX_TTL, t0);
    assert!(lock.is_valid());
    assert!(lock.validity() > MAX_TTL - drift(MAX_TTL) - ms(5_000));
    assert!(lock.validity() <= MAX_TTL - drift(MAX_TTL));

    // One millisecond more is rejected, for acquire and for extend.
    let too_big = MAX_TTL + ms(1);
    let err = manager.lock(unique_name("c11-big")).ttl(too_big).await;
    let err = err.unwrap_err();
    render(&err);
    assert!(matches!(err, LockError::InvalidArgument(_)), "{err:?}");
    let err = manager.extend(&mut lock, too_big).await.unwrap_err();
    assert!(matches!(err, LockError::InvalidArgument(_)), "{err:?}");
    let err = manager.extend(&mut lock, Duration::ZERO).await.unwrap_err();
    assert!(matches!(err, LockError::InvalidArgument(_)), "{err:?}");
    assert!(
        lock.is_valid(),
        "a rejected extend leaves the lock as it was"
    );
    assert_pttl(server, key, MAX_TTL, t0);

    manager.unlock(&mut lock).await.unwrap();
    assert_eq!(server.get(key), None);
    assert_eq!(server.dbsize(), 0);
}

/// C20: the TTL reaches the server as exact milliseconds (no rounding to seconds, no ×1000),
/// and the reported validity is in the same unit and never above PTTL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c20_pttl_equals_requested_ttl_in_milliseconds() {
    let masters = Masters::start(1);
    let server = &masters[0];
    let manager = builder(&masters.urls()).build().unwrap();
    // Warm up the connection so the timed calls measure one round trip.
    let mut warm = manager.lock(unique_name("c20-warm")).await.unwrap();
    manager.unlock(&mut warm).await.unwrap();

    for requested in [ms(1_500), ms(999), ms(86_400_000)] {
        let resource = unique_name("c20");
        let key = resource.as_bytes();
        let t0 = Instant::now();
        let mut lock = manager.lock(&resource).ttl(requested).await.unwrap();
        let pttl = assert_pttl(server, key, requested, t0);
        let validity = lock.validity();
        assert!(
            millis(validity) <= pttl,
            "{requested:?}: validity {validity:?} > PTTL {pttl}"
        );
        assert!(
            validity + t0.elapsed() + ms(1) >= requested - drift(requested),
            "{requested:?}: validity {validity:?} is not in milliseconds of the TTL"
        );
        if requested == ms(1_500) {
            assert!(pttl != 1_000 && pttl != 2_000, "rounded to seconds: {pttl}");
        }

        let extended = ms(2_500);
        let t1 = Instant::now();
        manager.extend(&mut lock, extended).await.unwrap();
        let pttl = assert_pttl(server, key, extended, t1);
        let validity = lock.validity();
        assert!(
            millis(validity) <= pttl,
            "extend: validity {validity:?} > PTTL {pttl}"
        );
        assert!(validity + t1.elapsed() + ms(1) >= extended - drift(extended));
        assert_eq!(lock.ttl(), extended);

        manager.unlock(&mut lock).await.unwrap();
        assert_eq!(server.get(key), None);
    }

    // 1 ms is below the 2 ms drift floor: the API reports the typed "validity exhausted"
    // (not acquired), and no key is left behind.
    let resource = unique_name("c20-1ms");
    let err = manager
        .lock(&resource)
        .ttl(ms(1))
        .retry_count(0)
        .await
        .unwrap_err();
    render(&err);
    assert!(err.is_validity_exhausted(), "{err}");
    assert_eq!(server.get(resource.as_bytes()), None);
    assert_eq!(server.dbsize(), 0);
}

/// C21: Unicode, invalid UTF-8 with NUL, hash-tag-looking and 64 KiB names lock, extend and
/// unlock, and the key on the server is exactly (prefix +) the name bytes. A non-UTF-8
/// foreign value is a typed conflict and renders without panicking.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c21_binary_unicode_and_huge_resource_names() {
    let masters = Masters::start(1);
    let server = &masters[0];
    let long: Vec<u8> = (0..65_536usize).map(|i| (i % 251) as u8).collect();
    let names: Vec<Vec<u8>> = vec![
        "ключ-🔒".as_bytes().to_vec(),
        b"\xff\xfe\x00r".to_vec(),
        b"a:b{c}d".to_vec(),
        long,
    ];
    assert_eq!(names[3].len(), 65_536);
    for prefix in [&b""[..], &b"app:"[..]] {
        let manager = builder(&masters.urls()).key_prefix(prefix).build().unwrap();
        for name in &names {
            let key: Vec<u8> = [prefix, &name[..]].concat();
            let mut lock = manager.lock(name).ttl(ms(3_000)).await.unwrap();
            assert_eq!(lock.resource(), &name[..]);
            assert_eq!(server.keys(), vec![key.clone()], "key bytes on the server");
            assert_eq!(server.get(&key).as_deref(), Some(lock.token().as_bytes()));
            let t1 = Instant::now();
            manager.extend(&mut lock, ms(6_000)).await.unwrap();
            assert_pttl(server, &key, ms(6_000), t1);
            let _ = format!("{lock:?}");
            manager.unlock(&mut lock).await.unwrap();
            assert!(server.keys().is_empty());
        }
    }

    // A foreign, non-UTF-8 value under the key: "locked by someone else".
    let manager = builder(&masters.urls()).build().unwrap();
    let resource = unique_name("c21-foreign");
    let key = resource.as_bytes();
    assert_eq!(server.cmd_bytes(&[b"SET", key, b"\xec\x00"]), Value::Okay);
    let err = manager.try_lock(&resource).await.unwrap_err();
    render(&err);
    assert!(err.is_conflict(), "{err}");
    assert!(
        matches!(
            err.outcomes()[0].status(),
            NodeStatus::HeldByOther { remaining: None }
        ),
        "{err:?}"
    );
    for o in err.outcomes() {
        let _ = format!("{o} {o:?}");
    }
    let state = manager.is_locked(&resource).await.unwrap();
    let _ = format!("{state:?}");
    match &state {
        tokio_redlock::LockState::Held { holder, remaining } => {
            assert_eq!(holder.as_bytes(), b"\xec\x00");
            assert_eq!(*remaining, None);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(server.get(key).as_deref(), Some(&b"\xec\x00"[..]));
    assert_eq!(server.pttl(key), -1);
}

/// An empty resource name (most often an unset variable) is refused before any request,
/// for every kind of lock and every query, with and without a key prefix: two such callers would otherwise
/// exclude each other on the key of nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_resource_name_is_refused_before_any_request() {
    let masters = Masters::start(1);
    for prefix in [&b""[..], &b"app:"[..]] {
        let manager = builder(&masters.urls()).key_prefix(prefix).build().unwrap();
        let results = [
            manager.lock("").await.map(drop),
            manager.try_lock("").await.map(drop),
            manager.acquire("").await.map(drop),
            manager.lock_all(["a", ""]).await.map(drop),
            manager.read_lock("").await.map(drop),
            manager.write_lock("").await.map(drop),
            manager.semaphore("", 2).lock().await.map(drop),
        ];
        for (i, result) in results.into_iter().enumerate() {
            let e = result.expect_err("an empty name is refused");
            assert!(
                matches!(&e, LockError::InvalidArgument(m) if m.contains("empty")),
                "call {i}: {}",
                render(&e)
            );
        }
        assert!(tokio_redlock::check_resource(prefix, b"").is_err());
        // The queries too: they would read the key of nothing (or the bare prefix).
        let queries = [
            manager.is_locked("").await.map(drop),
            manager.inspect("").await.map(drop),
            manager.inspect_permits("").await.map(drop),
        ];
        for (i, result) in queries.into_iter().enumerate() {
            let e = result.expect_err("an empty name is refused");
            assert!(e.is_invalid_input(), "query {i}: {}", render(&e));
        }
        assert_eq!(masters[0].dbsize(), 0, "{:?}", masters[0].dump());
        manager.close().await;
    }
}

/// C06 (a): a hash under the resource's key is a distinct, typed error, reported at once
/// without retrying, and the hash is untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c06_hash_under_the_key_fails_fast_as_not_a_lock() {
    let masters = Masters::start(1);
    let server = &masters[0];
    let retry_delay = ms(500);
    let manager = builder(&masters.urls())
        .retry_count(3)
        .retry_delay(retry_delay)
        .retry_jitter(Duration::ZERO)
        .build()
        .unwrap();
    let resource = unique_name("c06");
    let key = resource.as_bytes();
    assert_eq!(server.cmd_bytes(&[b"HSET", key, b"f", b"v"]), Value::Int(1));

    let t = Instant::now();
    let err = manager.lock(&resource).await.unwrap_err();
    let took = t.elapsed();
    render(&err);
    assert!(err.is_not_a_lock(), "{err}");
    assert!(!err.is_conflict() && !err.is_unavailable(), "{err}");
    assert!(matches!(err.outcomes()[0].status(), NodeStatus::NotALock));
    // One retry alone would sleep 500 ms; three would sleep 1.5 s.
    assert!(took < retry_delay, "took {took:?}: it was retried");

    assert_eq!(
        server.cmd_bytes(&[b"HGETALL", key]),
        Value::Array(vec![
            Value::BulkString(b"f".to_vec()),
            Value::BulkString(b"v".to_vec())
        ])
    );
    assert_eq!(server.pttl(key), -1, "the hash got no TTL");
    assert_eq!(server.dbsize(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_prefix_is_put_before_the_resource() {
    let masters = Masters::start(1);
    let server = &masters[0];
    let manager = builder(&masters.urls()).key_prefix("app:").build().unwrap();
    let resource = unique_name("prefixed");
    let key = format!("app:{resource}");
    let mut lock = manager.lock(&resource).await.unwrap();
    assert_eq!(lock.resource(), resource.as_bytes());
    assert_eq!(server.keys(), vec![key.as_bytes().to_vec()]);
    assert_eq!(
        server.get(key.as_bytes()).as_deref(),
        Some(lock.token().as_bytes())
    );
    assert_eq!(server.get(resource.as_bytes()), None);
    assert!(
        manager
            .is_locked(&resource)
            .await
            .unwrap()
            .is_held_by(&lock)
    );
    manager.extend(&mut lock, ms(20_000)).await.unwrap();
    assert!(server.pttl(key.as_bytes()) > 10_000);
    manager.unlock(&mut lock).await.unwrap();
    assert_eq!(server.dbsize(), 0);
}

/// C04 (the part without auto-extend): B holds `r` for 300 ms; A, retrying every 100 ms,
/// gets it once B's key expires, and A's validity is then about 1 000 ms minus one round
/// trip minus the drift: more than 900 ms, never ≤ 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c04_retry_acquires_after_holder_expires_with_full_validity() {
    let masters = Masters::start(1);
    let server = &masters[0];
    // Not a timeout test: a relaxed per-master budget keeps a loaded CI box from failing it.
    let a = builder(&masters.urls())
        .node_timeout(RELAXED)
        .retry_count(10)
        .retry_delay(ms(100))
        .retry_jitter(ms(20))
        .build()
        .unwrap();
    let b = builder(&masters.urls())
        .node_timeout(RELAXED)
        .build()
        .unwrap();
    let resource = unique_name("c04");
    let key = resource.as_bytes();
    // Warm A's connection so its attempts are one round trip each.
    let mut warm = a.lock(unique_name("c04-warm")).await.unwrap();
    a.unlock(&mut warm).await.unwrap();

    let tb = Instant::now();
    let b_lock = b.lock(&resource).ttl(ms(300)).await.unwrap();
    let ttl = ms(1_000);
    let mut lock = a.lock(&resource).ttl(ttl).await.unwrap();
    let validity = lock.validity();
    let waited = tb.elapsed();
    assert_ne!(lock.token(), b_lock.token());
    assert!(
        waited >= ms(290),
        "A got the lock after {waited:?}, before B's 300 ms key expired"
    );
    assert!(
        validity > ms(900) && validity <= ttl - drift(ttl),
        "validity {validity:?}"
    );
    assert!(lock.is_valid());
    assert_eq!(server.get(key).as_deref(), Some(lock.token().as_bytes()));
    assert!(server.pttl(key) > 900);
    a.unlock(&mut lock).await.unwrap();
    assert_eq!(server.dbsize(), 0);
}

// ---------------------------------------------------------------------------------------
// Review findings (F5, F7, F9, bidi controls)
// ---------------------------------------------------------------------------------------

/// F5: a TTL at or below its drift (`ttl × drift_factor + 2 ms`) can never give a valid lock:
/// `build()` refuses it as a default, and a per-call TTL like that makes one attempt and is not
/// retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f5_ttl_not_above_drift_is_refused_at_build_and_not_retried() {
    let masters = Masters::start(1);
    let server = &masters[0];
    // 2 ms with drift factor 0: the 2 ms drift floor leaves nothing. (A node timeout below the
    // TTL, so that this is the only thing wrong.)
    let err = builder(&masters.urls())
        .ttl(ms(2))
        .drift_factor(0.0)
        .node_timeout(Duration::from_micros(500))
        .build()
        .unwrap_err();
    assert_eq!(
        err,
        ConfigError::TtlNotAboveDrift {
            ttl: ms(2),
            drift: ms(2)
        },
        "{err}"
    );
    // 1 ms with the default drift factor.
    let err = builder(&masters.urls())
        .ttl(ms(1))
        .node_timeout(Duration::from_micros(500))
        .build()
        .unwrap_err();
    assert!(
        matches!(err, ConfigError::TtlNotAboveDrift { ttl, .. } if ttl == ms(1)),
        "{err:?}"
    );
    // The default 10 s TTL with a drift factor that eats all of it.
    let err = builder(&masters.urls())
        .drift_factor(0.9999)
        .build()
        .unwrap_err();
    match err {
        ConfigError::TtlNotAboveDrift { ttl, drift } => {
            assert_eq!(ttl, ms(10_000));
            assert!(drift >= ttl, "drift {drift:?}");
        }
        other => panic!("expected TtlNotAboveDrift, got {other:?}"),
    }
    assert!(!err.to_string().is_empty());

    // Per call: one attempt, no retry (a retry alone would sleep 1 s).
    let retry_delay = ms(1_000);
    let manager = builder(&masters.urls())
        .retry_count(3)
        .retry_delay(retry_delay)
        .retry_jitter(Duration::ZERO)
        .node_timeout(RELAXED)
        .build()
        .unwrap();
    let resource = unique_name("f5");
    let t = Instant::now();
    let err = manager.lock(&resource).ttl(ms(2)).await.unwrap_err();
    let took = t.elapsed();
    render(&err);
    match &err {
        LockError::ValidityExhausted { ttl, attempts, .. } => {
            assert_eq!(*ttl, ms(2));
            assert_eq!(*attempts, 1, "a TTL at its drift is not retried");
        }
        other => panic!("expected ValidityExhausted, got {other:?}"),
    }
    assert!(err.is_validity_exhausted());
    assert!(took < retry_delay, "took {took:?}: it was retried");
    settle(&manager).await;
    assert!(
        eventually(ms(1_000), || server.dbsize() == 0).await,
        "nothing is left behind"
    );
}

/// F7: a non-lock value (a hash) under the key on ONE of three masters does not end a
/// contended acquisition: that master alone cannot rule out a quorum, so A waits out B's
/// 500 ms hold on the other two and then gets the lock there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f7_hash_on_one_master_does_not_end_contention() {
    let masters = Masters::start(3);
    let resource = unique_name("f7");
    let key = resource.as_bytes();
    assert_eq!(
        masters[0].cmd_bytes(&[b"HSET", key, b"f", b"v"]),
        Value::Int(1)
    );
    let a = builder(&masters.urls())
        .retry_delay(ms(100))
        .retry_jitter(ms(20))
        .node_timeout(RELAXED)
        .build()
        .unwrap();
    let b = builder(&masters.urls()[1..])
        .node_timeout(RELAXED)
        .build()
        .unwrap();

    let tb = Instant::now();
    let b_lock = b.lock(&resource).ttl(ms(500)).await.unwrap();
    let mut lock = a.lock(&resource).retry_count(20).await.unwrap_or_else(|e| {
        panic!("S2 and S3 are free once B's 500 ms hold ends; A had 20 retries: {e}")
    });
    let waited = tb.elapsed();
    assert_ne!(lock.token(), b_lock.token());
    assert!(
        waited >= ms(490),
        "A got the lock after {waited:?}, before B's 500 ms keys expired"
    );
    assert!(lock.is_valid());
    // S1 never grants; the quorum may be reached before its answer arrives.
    assert!(
        matches!(
            lock.outcomes()[0].status(),
            NodeStatus::NotALock | NodeStatus::NotAwaited
        ),
        "{:?}",
        lock.outcomes()
    );
    for s in &masters.0[1..] {
        assert!(s.holds(key, lock.token()), "{}", s.url());
    }
    assert_eq!(masters[0].pttl(key), -1, "the hash is untouched");
    a.unlock(&mut lock).await.unwrap();
    settle(&a).await;
    for s in &masters.0[1..] {
        assert_eq!(s.dbsize(), 0);
    }
    assert_eq!(masters[0].dbsize(), 1, "only the hash is left");
}

/// F9: a lock is tied to the manager that issued it (and its clones). Another manager —
/// whether over a subset of the masters or over the same ones — refuses to extend or release
/// it with `InvalidArgument`, sends nothing, and leaves the keys and the deadline alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f9_lock_of_another_manager_is_invalid_argument_and_untouched() {
    let masters = Masters::start(3);
    let m1 = builder(&masters.urls())
        .node_timeout(RELAXED)
        .build()
        .unwrap();
    let only_s1 = builder(&[masters[0].url()])
        .node_timeout(RELAXED)
        .build()
        .unwrap();
    let same_masters = builder(&masters.urls())
        .node_timeout(RELAXED)
        .build()
        .unwrap();
    let resource = unique_name("f9");
    let key = resource.as_bytes();
    let mut lock = m1.lock(&resource).ttl(ms(5_000)).await.unwrap();
    let token = lock.token().to_owned();
    held_everywhere_within(ms(3_000), masters.iter(), key, &token).await;
    settle(&m1).await;
    let deadline = lock.deadline();
    for s in masters.iter() {
        s.cmd(&["CONFIG", "RESETSTAT"]);
    }

    for (name, other) in [("only S1", &only_s1), ("same masters", &same_masters)] {
        let err = other.extend(&mut lock, ms(60_000)).await.unwrap_err();
        assert!(
            matches!(err, LockError::InvalidArgument(_)),
            "{name}: extend: {err:?}"
        );
        assert!(err.is_invalid_input() && err.outcomes().is_empty());
        let err = other.unlock(&mut lock).await.unwrap_err();
        assert!(
            matches!(err, LockError::InvalidArgument(_)),
            "{name}: unlock: {err:?}"
        );
        assert!(err.is_invalid_input() && err.outcomes().is_empty());
        assert_eq!(lock.deadline(), deadline, "{name}: the deadline moved");
        assert!(lock.is_valid(), "{name}");
    }
    tokio::time::sleep(ms(50)).await;
    for s in masters.iter() {
        assert!(s.holds(key, &token), "{}", s.url());
        let pttl = s.pttl(key);
        assert!(pttl > 0 && pttl <= 5_000, "PTTL {pttl} on {}", s.url());
        assert_eq!(
            s.command_calls("evalsha"),
            0,
            "a request reached {}",
            s.url()
        );
        assert_eq!(s.command_calls("eval"), 0, "a request reached {}", s.url());
    }

    // The issuing manager, and a clone of it, still can.
    m1.clone().extend(&mut lock, ms(5_000)).await.unwrap();
    m1.unlock(&mut lock).await.unwrap();
    settle(&m1).await;
    for s in masters.iter() {
        assert_eq!(s.dbsize(), 0);
    }
}

/// A bidi control (U+202E, right-to-left override) in a resource name is shown escaped in
/// error messages, so a name cannot reorder the text of a log line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bidi_control_in_resource_name_is_escaped_in_messages() {
    let masters = Masters::start(1);
    let manager = builder(&masters.urls())
        .node_timeout(RELAXED)
        .build()
        .unwrap();
    let other = builder(&masters.urls())
        .node_timeout(RELAXED)
        .build()
        .unwrap();

    // NotALock: a hash under the key.
    let hashed = "\u{202E}evil";
    masters[0].cmd_bytes(&[b"HSET", hashed.as_bytes(), b"f", b"v"]);
    let err = manager.try_lock(hashed).await.unwrap_err();
    assert!(err.is_not_a_lock(), "{err:?}");
    let shown = err.to_string();
    assert!(!shown.contains('\u{202E}'), "raw bidi control in {shown:?}");
    assert!(shown.contains("\\u{202e}evil"), "{shown:?}");

    // Conflict: another holder.
    let held = "txt\u{202E}gpj.exe";
    let mut b_lock = other.lock(held).await.unwrap();
    let err = manager.try_lock(held).await.unwrap_err();
    assert!(err.is_conflict(), "{err:?}");
    let shown = render(&err);
    assert!(!shown.contains('\u{202E}'), "raw bidi control in {shown:?}");
    assert!(shown.contains("txt\\u{202e}gpj.exe"), "{shown:?}");
    other.unlock(&mut b_lock).await.unwrap();
}

/// "Not awaited" never reaches users: a master that had not answered when the verdict came
/// (here a frozen one) is shown as "no answer before the verdict", in a granted lock's
/// outcomes and in another client's error alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_awaited_never_reaches_users() {
    let masters = Masters::start(3);
    let ours = builder(&masters.urls())
        .node_timeout(RELAXED)
        .build()
        .unwrap();
    let theirs = builder(&masters.urls())
        .node_timeout(RELAXED)
        .build()
        .unwrap();
    // Connections up first, so that the frozen master's request is sent and left pending.
    for m in [&ours, &theirs] {
        let mut warm = watchdog("lock", m.lock("warm")).await.unwrap();
        watchdog("unlock", m.unlock(&mut warm)).await.unwrap();
    }
    masters[2].pause();
    let lock = watchdog("lock", ours.lock("r").ttl(ms(10_000))).await;
    let err = watchdog("try_lock", theirs.try_lock("r")).await;
    masters[2].resume();
    let lock = lock.unwrap();
    let frozen = &lock.outcomes()[2];
    assert_eq!(frozen.status(), &NodeStatus::NotAwaited, "{frozen}");
    assert!(
        frozen
            .to_string()
            .ends_with(": no answer before the verdict"),
        "{frozen}"
    );
    let err = err.unwrap_err();
    assert!(err.is_conflict(), "{}", render(&err));
    for shown in lock
        .outcomes()
        .iter()
        .map(ToString::to_string)
        .chain([err.to_string()])
    {
        assert!(!shown.to_lowercase().contains("awaited"), "{shown}");
    }
}

/// A fresh manager's first lock reaches every master that was reachable all along, even when
/// a connection opens just as the round is decided: the request then leaves on the new
/// connection instead of being dropped with the round (seen as a lock held on two masters of
/// three, about once in 150 fresh managers on a busy machine).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_lock_of_a_fresh_manager_reaches_every_master() {
    let masters = Masters::start(3);
    for i in 0..150 {
        let m = LockManager::builder()
            .servers(masters.urls())
            .node_timeout(RELAXED)
            .build()
            .unwrap();
        let resource = format!("fresh-{i}");
        let lock = m.lock(&resource).ttl(ms(10_000)).await.unwrap();
        held_everywhere_within(ms(1_500), masters.iter(), resource.as_bytes(), lock.token()).await;
        m.close().await;
    }
    assert_no_key_without_ttl(masters.iter());
}
