//! Faults of masters and of their configuration — script cache loss, restarts, unreachable or
//! unresolvable masters, wrong credentials and ACLs, frozen masters, a full master, killed
//! client connections, a master demoted to a replica while connected — and a closed manager:
//! field cases C07, C16, C17 (b) and C18.
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
    RELAXED, RELEASE_SCRIPT, builder, held_everywhere_within, is_replica_failure, ms, render,
    settle, watchdog,
};
use support::proxy::FaultProxy;
use support::sentinel::{link_up, role};
use support::servers::{Masters, Persistence, RedisServer, ServerOptions};
use support::{eventually, unique_name};
use tokio::time::Instant;
use tokio_redlock::{LockError, LockManager, NodeError, NodeStatus};

// ---------------------------------------------------------------------------------------
// C07: lost script cache (SCRIPT FLUSH) and restarted masters
// ---------------------------------------------------------------------------------------

async fn script_flush_is_transparent_on(n: usize) {
    let masters = Masters::start(n);
    let manager = builder(&masters.urls()).build().unwrap();
    let resource = unique_name("c07");
    let key = resource.as_bytes();

    // Cache the three scripts on every master.
    let mut lock = manager.lock(&resource).await.unwrap();
    manager.extend(&mut lock, ms(5_000)).await.unwrap();
    manager.unlock(&mut lock).await.unwrap();
    settle(&manager).await;

    for s in masters.iter() {
        s.flush_scripts();
        s.cmd(&["CONFIG", "RESETSTAT"]);
    }

    let mut lock = watchdog("lock", manager.lock(&resource).ttl(ms(2_000)))
        .await
        .unwrap();
    let token = lock.token().to_owned();
    assert!(masters.iter().filter(|s| s.holds(key, &token)).count() >= manager.quorum());
    watchdog("extend", manager.extend(&mut lock, ms(2_000)))
        .await
        .unwrap();
    assert!(lock.is_valid());
    watchdog("unlock", manager.unlock(&mut lock)).await.unwrap();
    settle(&manager).await;
    for s in masters.iter() {
        assert_eq!(s.dbsize(), 0);
        // One EVAL per script after the flush (the NOSCRIPT fallback), no more.
        let evals = s.command_calls("eval");
        let evalshas = s.command_calls("evalsha");
        assert!(evals <= 3, "{evals} EVALs after the flush");
        assert!(
            evals + evalshas <= 6,
            "{evals} EVAL + {evalshas} EVALSHA for three operations"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c07_script_flush_is_transparent_on_one_master() {
    script_flush_is_transparent_on(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c07_script_flush_is_transparent_on_three_masters() {
    script_flush_is_transparent_on(3).await;
}

/// C07, restart: S1 is killed and restarted (same port, AOF so it keeps the key) while A
/// holds the lock. Extend and unlock still succeed, and the unlock reaches the restarted
/// master too (its key is deleted, through a new connection and a reloaded script).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c07_master_restarted_mid_hold_extend_and_unlock_succeed() {
    let mut masters = Masters::start_with(3, ServerOptions::persistence(Persistence::AofAlways));
    let manager = builder(&masters.urls()).build().unwrap();
    let resource = unique_name("c07-restart");
    let key = resource.as_bytes();
    let mut warm = manager.lock(unique_name("c07-warm")).await.unwrap();
    manager.unlock(&mut warm).await.unwrap();

    let mut lock = manager.lock(&resource).ttl(ms(5_000)).await.unwrap();
    let token = lock.token().to_owned();
    held_everywhere_within(ms(2_000), masters.iter(), key, &token).await;

    masters[0].restart();
    assert!(masters[0].holds(key, &token), "AOF kept the key");

    watchdog("extend", manager.extend(&mut lock, ms(5_000)))
        .await
        .unwrap();
    assert!(lock.is_valid());
    for s in &masters.0[1..] {
        assert!(s.pttl(key) > 4_000);
    }
    watchdog("unlock", manager.unlock(&mut lock)).await.unwrap();
    settle(&manager).await;
    for (i, s) in masters.iter().enumerate() {
        assert_eq!(s.get(key), None, "S{} still holds the key", i + 1);
    }
}

/// C07, restart on a single master (AOF keeps the key): "works the same on a node restarted
/// mid-hold, for extend and unlock" — both succeed on the only master.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c07_single_master_restarted_mid_hold_extend_and_unlock_succeed() {
    let mut masters = Masters::start_with(1, ServerOptions::persistence(Persistence::AofAlways));
    let manager = builder(&masters.urls()).build().unwrap();
    let resource = unique_name("c07-restart1");
    let key = resource.as_bytes();
    let mut lock = manager.lock(&resource).ttl(ms(5_000)).await.unwrap();
    let token = lock.token().to_owned();
    masters[0].restart();
    assert!(masters[0].holds(key, &token), "AOF kept the key");

    let extended = watchdog("extend", manager.extend(&mut lock, ms(8_000))).await;
    assert!(
        extended.is_ok(),
        "extend after the restart: {}",
        render(&extended.unwrap_err())
    );
    assert!(masters[0].pttl(key) > 5_000);
    let released = watchdog("unlock", manager.unlock(&mut lock)).await;
    assert!(
        released.is_ok(),
        "unlock after the restart: {}",
        render(&released.unwrap_err())
    );
    assert_eq!(masters[0].get(key), None);
}

// ---------------------------------------------------------------------------------------
// C16: a master addressed by hostname is down or unresolvable
// ---------------------------------------------------------------------------------------

/// Lock, extend and unlock with S2 unavailable: all succeed on S1 + S3, and S2's failure
/// does not turn a conflict into "unavailable" for another client.
async fn cycle_without_s2(masters: &Masters, manager: &LockManager, other: &LockManager) {
    let resource = unique_name("c16");
    let key = resource.as_bytes();

    let mut lock = watchdog("lock", manager.lock(&resource).ttl(ms(5_000)))
        .await
        .unwrap();
    let token = lock.token().to_owned();
    assert!(masters[0].holds(key, &token));
    assert!(masters[2].holds(key, &token));
    assert!(lock.validity() > ms(4_000));

    // S2's failure is non-fatal per-master detail of the successful acquisition: S1 and S3
    // granted (the quorum), S2 failed or had not answered when the quorum was reached.
    let detail = lock.outcomes();
    assert_eq!(detail.len(), 3);
    assert_eq!(detail[0].status(), &NodeStatus::Done);
    assert_eq!(detail[2].status(), &NodeStatus::Done);
    assert!(
        matches!(
            detail[1].status(),
            NodeStatus::Failed(
                NodeError::Refused(_) | NodeError::Connection(_) | NodeError::Timeout(_)
            ) | NodeStatus::NotAwaited
        ),
        "S2: {:?}",
        detail[1]
    );
    // Another client's failed attempt sees a conflict (not "unavailable"), with S2's
    // failure as a per-node outcome.
    let err = watchdog("try_lock", other.try_lock(&resource))
        .await
        .unwrap_err();
    let shown = render(&err);
    assert!(err.is_conflict(), "{shown}");
    assert!(!err.is_unavailable(), "{shown}");
    assert!(
        matches!(
            err.outcomes()[1].status(),
            NodeStatus::Failed(
                NodeError::Refused(_) | NodeError::Connection(_) | NodeError::Timeout(_)
            ) | NodeStatus::NotAwaited
        ),
        "S2: {shown}"
    );

    let t1 = Instant::now();
    watchdog("extend", manager.extend(&mut lock, ms(5_000)))
        .await
        .unwrap();
    for s in [&masters[0], &masters[2]] {
        let pttl = s.pttl(key);
        assert!(
            pttl <= 5_000 && pttl > 5_000 - t1.elapsed().as_millis() as i64 - 5,
            "PTTL {pttl}"
        );
    }
    watchdog("unlock", manager.unlock(&mut lock)).await.unwrap();
    assert_eq!(masters[0].get(key), None);
    assert_eq!(masters[2].get(key), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c16_stopped_master_addressed_by_hostname_is_non_fatal_and_used_again() {
    let mut masters = Masters::start(3);
    let urls = vec![
        masters[0].url(),
        format!("redis://localhost:{}", masters[1].port()),
        masters[2].url(),
    ];
    let manager = builder(&urls).node_timeout(RELAXED).build().unwrap();
    let other = builder(&urls).node_timeout(RELAXED).build().unwrap();
    masters[1].kill();
    cycle_without_s2(&masters, &manager, &other).await;
    settle(&manager).await;

    // When S2 returns, the manager reconnects in the background and uses it again.
    masters[1].restart();
    support::checks::reachable_again(&manager, 1).await;
    let resource = unique_name("c16-back");
    let key = resource.as_bytes();
    let mut lock = watchdog("lock", manager.lock(&resource)).await.unwrap();
    let token = lock.token().to_owned();
    assert!(
        eventually(ms(2_000), || masters[1].holds(key, &token)).await,
        "S2 is used again once it is back"
    );
    manager.unlock(&mut lock).await.unwrap();
    settle(&manager).await;
    assert!(masters.iter().all(|s| s.dbsize() == 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c16_unresolvable_hostname_is_non_fatal() {
    let masters = Masters::start(3);
    let urls = vec![
        masters[0].url(),
        "redis://no-such-host.invalid:6379".to_owned(),
        masters[2].url(),
    ];
    let manager = builder(&urls).build().unwrap();
    let other = builder(&urls).build().unwrap();
    cycle_without_s2(&masters, &manager, &other).await;
    // The unresolvable master's failures end within the connect timeout.
    watchdog("close", manager.close()).await;
    watchdog("close", other.close()).await;
    assert_eq!(manager.background_tasks(), 0);
}

/// A name that does not resolve says so, and nothing about TLS: the hint "if this port only
/// speaks TLS, use rediss://" is for a connection that opened and was then dropped, never for
/// a failed name resolution (nor a refusal: see `refused_port_gives_no_tls_hint`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_failure_gives_no_tls_hint() {
    let manager = LockManager::builder()
        .server("redis://no-such-host.invalid:6379")
        .node_timeout(RELAXED)
        .build()
        .unwrap();
    let err = watchdog("lock", manager.try_lock("r")).await.unwrap_err();
    let shown = render(&err);
    assert!(err.is_unavailable(), "{shown}");
    match err.outcomes()[0].status() {
        // The resolver's own words ("failed to lookup address information", "No address
        // found"); a resolver that cannot answer in time is a timeout.
        NodeStatus::Failed(NodeError::Connection(_) | NodeError::Timeout(_)) => {}
        other => panic!("expected a connection failure, got {other:?}: {shown}"),
    }
    for word in ["rediss", "TLS"] {
        assert!(
            !shown.contains(word),
            "no TLS hint for a DNS failure: {shown}"
        );
    }
}

/// A refused connection is no evidence of a TLS-only port either: no TLS hint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_port_gives_no_tls_hint() {
    let mut masters = Masters::start(1);
    let url = masters[0].url();
    masters[0].kill();
    let manager = builder(&[url]).build().unwrap();
    let err = watchdog("lock", manager.try_lock("r")).await.unwrap_err();
    let shown = render(&err);
    assert!(
        matches!(
            err.outcomes()[0].status(),
            NodeStatus::Failed(NodeError::Refused(_))
        ),
        "{shown}"
    );
    for word in ["rediss", "TLS"] {
        assert!(!shown.contains(word), "no TLS hint for a refusal: {shown}");
    }
}

// ---------------------------------------------------------------------------------------
// Error chains: `source()` leads from a `LockError` to each level of the cause
// ---------------------------------------------------------------------------------------

/// Every level of `err`'s `source()` chain, outermost first.
fn chain(err: &LockError) -> Vec<&(dyn std::error::Error + 'static)> {
    std::iter::successors(Some(err as &(dyn std::error::Error + 'static)), |e| {
        e.source()
    })
    .collect()
}

/// Whether a level of a chain is an I/O error (redis-rs keeps its own behind an `Arc`).
fn is_io(level: &(dyn std::error::Error + 'static)) -> bool {
    level.is::<std::io::Error>()
        || level
            .downcast_ref::<std::sync::Arc<dyn std::error::Error + Send + Sync>>()
            .is_some_and(|arc| arc.is::<std::io::Error>())
}

/// Asserts that no level of `err`'s chain shows `password`, in `Display` or `Debug`.
fn assert_chain_hides(err: &LockError, password: &str) {
    for (i, level) in chain(err).into_iter().enumerate() {
        for shown in [level.to_string(), format!("{level:?}")] {
            assert!(
                !shown.contains(password),
                "level {i} of the chain shows the password: {shown}"
            );
        }
    }
}

/// `LockError::source()` leads to the first failed master's `NodeError`, and that to the
/// client library's error and its own cause (the I/O error): a refused port, wrong
/// credentials (a password of odd characters, in no level of the chain), and a frozen master
/// (a timeout is the library's own finding: the chain ends at the `NodeError`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_error_source_chain_reaches_the_redis_cause() {
    let odd = "Pw/?#@%:&= SeCrEt";
    let encoded: String =
        percent_encoding::utf8_percent_encode(odd, percent_encoding::NON_ALPHANUMERIC).to_string();

    // A refused port: NodeError::Refused, then redis-rs's error, then the I/O error.
    let mut gone = Masters::start(1);
    let port = gone[0].port();
    gone[0].kill();
    let manager = LockManager::builder()
        .server(format!("redis://default:{encoded}@127.0.0.1:{port}"))
        .build()
        .unwrap();
    let err = watchdog("lock", manager.try_lock("r")).await.unwrap_err();
    let levels = chain(&err);
    assert!(
        matches!(
            levels[1].downcast_ref::<NodeError>(),
            Some(NodeError::Refused(_))
        ),
        "{levels:?}"
    );
    assert!(levels[2].is::<redis::RedisError>(), "{levels:?}");
    assert!(levels.iter().any(|l| is_io(*l)), "{levels:?}");
    assert_chain_hides(&err, odd);
    assert_chain_hides(&err, &encoded);

    // Wrong credentials: NodeError::Auth, then redis-rs's error (which reports WRONGPASS as
    // its own kind).
    let protected = password_protected();
    let manager = LockManager::builder()
        .server(format!(
            "redis://default:{encoded}@127.0.0.1:{}",
            protected[0].port()
        ))
        .build()
        .unwrap();
    let err = watchdog("lock", manager.try_lock("r")).await.unwrap_err();
    let levels = chain(&err);
    assert!(
        matches!(
            levels[1].downcast_ref::<NodeError>(),
            Some(NodeError::Auth(_))
        ),
        "{levels:?}"
    );
    let redis = levels[2]
        .downcast_ref::<redis::RedisError>()
        .unwrap_or_else(|| panic!("redis-rs's error after the NodeError: {levels:?}"));
    assert_eq!(
        redis.kind(),
        redis::ErrorKind::AuthenticationFailed,
        "{levels:?}"
    );
    assert_chain_hides(&err, odd);
    assert_chain_hides(&err, &encoded);

    // A frozen master: the library's own timeout ends the chain.
    let frozen = Masters::start(1);
    let manager = LockManager::builder()
        .server(format!(
            "redis://default:{encoded}@127.0.0.1:{}",
            frozen[0].port()
        ))
        .connect_timeout(ms(300))
        .build()
        .unwrap();
    frozen[0].pause();
    let err = watchdog("lock", manager.try_lock("r")).await.unwrap_err();
    frozen[0].resume();
    let levels = chain(&err);
    assert!(
        matches!(
            levels[1].downcast_ref::<NodeError>(),
            Some(NodeError::Timeout(_))
        ),
        "{levels:?}"
    );
    assert_eq!(levels.len(), 2, "{levels:?}");
    assert_chain_hides(&err, odd);
    assert_chain_hides(&err, &encoded);
}

// ---------------------------------------------------------------------------------------
// C17 (b): credentials
// ---------------------------------------------------------------------------------------

const PASSWORD: &str = "s3cret";
const WRONG_PASSWORD: &str = "wr0ng-Pa55";

/// An acquire that must fail at once with a typed, non-retried auth error.
async fn assert_auth_failure(server: &RedisServer, url: String, expect: fn(&NodeError) -> bool) {
    let retry_delay = ms(500);
    let manager = LockManager::builder()
        .server(url)
        .retry_count(3)
        .retry_delay(retry_delay)
        .retry_jitter(Duration::ZERO)
        .build()
        .unwrap();
    let resource = unique_name("c17");
    let t = Instant::now();
    let err = watchdog("lock", manager.lock(&resource).ttl(ms(2_000)))
        .await
        .unwrap_err();
    let took = t.elapsed();
    let shown = render(&err);
    assert!(err.is_unavailable(), "{shown}");
    assert!(err.is_auth(), "{shown}");
    assert!(!err.is_conflict(), "{shown}");
    match err.outcomes() {
        [o] => match o.status() {
            NodeStatus::Failed(e) => {
                assert!(expect(e), "{e:?}");
                assert!(e.is_permanent());
            }
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
    // A single retry would have slept 500 ms; three, 1.5 s.
    assert!(took < retry_delay, "took {took:?}: retried");
    for secret in [PASSWORD, WRONG_PASSWORD] {
        assert!(!shown.contains(secret), "secret leaked: {shown}");
        assert!(!format!("{manager:?}").contains(secret));
    }
    assert_eq!(server.dbsize(), 0, "no key written");
}

fn password_protected() -> Masters {
    Masters::start_with(
        1,
        ServerOptions::default().args(&["--requirepass", PASSWORD]),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c17_missing_password_fails_fast_typed_and_unretried() {
    let masters = password_protected();
    let server = &masters[0];
    assert_auth_failure(server, server.url(), |e| matches!(e, NodeError::Auth(_))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c17_wrong_password_fails_fast_typed_and_unretried() {
    let masters = password_protected();
    let server = &masters[0];
    let port = server.port();
    assert_auth_failure(
        server,
        format!("redis://:{WRONG_PASSWORD}@127.0.0.1:{port}"),
        |e| matches!(e, NodeError::Auth(_)),
    )
    .await;
    // The wrong password of an ACL user.
    server.cmd(&["ACL", "SETUSER", "locker", "on", ">pw", "~*", "+@all"]);
    assert_auth_failure(
        server,
        format!("redis://locker:{WRONG_PASSWORD}@127.0.0.1:{port}"),
        |e| matches!(e, NodeError::Auth(_)),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c17_right_password_and_acl_user_work() {
    let masters = password_protected();
    let server = &masters[0];
    let port = server.port();
    server.cmd(&["ACL", "SETUSER", "locker", "on", ">pw", "~*", "+@all"]);
    for url in [
        format!("redis://:{PASSWORD}@127.0.0.1:{port}"),
        format!("redis://locker:pw@127.0.0.1:{port}"),
    ] {
        let manager = LockManager::builder().server(url).build().unwrap();
        assert!(!format!("{manager:?}").contains(PASSWORD));
        let resource = unique_name("c17-ok");
        let mut lock = watchdog("lock", manager.lock(&resource).ttl(ms(2_000)))
            .await
            .unwrap();
        assert!(server.holds(resource.as_bytes(), lock.token()));
        watchdog("extend", manager.extend(&mut lock, ms(3_000)))
            .await
            .unwrap();
        watchdog("unlock", manager.unlock(&mut lock)).await.unwrap();
        assert_eq!(server.dbsize(), 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acl_user_without_eval_gets_no_permission_unretried() {
    let masters = Masters::start(1);
    let server = &masters[0];
    server.cmd(&[
        "ACL", "SETUSER", "noeval", "on", ">pw", "~*", "+@all", "-eval", "-evalsha",
    ]);
    assert_auth_failure(
        server,
        format!("redis://noeval:pw@127.0.0.1:{}", server.port()),
        |e| matches!(e, NodeError::NoPermission(_)),
    )
    .await;
}

// ---------------------------------------------------------------------------------------
// C18: a majority is dead or frozen
// ---------------------------------------------------------------------------------------

/// One acquire with the given manager under the watchdog; returns the error and the time.
async fn failed_acquire(manager: &LockManager) -> (LockError, Duration) {
    let t = Instant::now();
    let err = watchdog("lock", manager.lock(unique_name("c18")))
        .await
        .unwrap_err();
    (err, t.elapsed())
}

fn assert_unavailable(err: &LockError) {
    let shown = render(err);
    assert!(err.is_unavailable(), "{shown}");
    assert!(!err.is_conflict(), "{shown}");
    assert!(
        matches!(
            err,
            LockError::NoQuorum {
                quorum: 2,
                masters: 3,
                ..
            }
        ),
        "{shown}"
    );
    for o in &err.outcomes()[1..] {
        assert!(
            matches!(o.status(), NodeStatus::Failed(_) | NodeStatus::NotAwaited),
            "{shown}"
        );
    }
    assert!(
        err.outcomes()[1..]
            .iter()
            .any(|o| matches!(o.status(), NodeStatus::Failed(_))),
        "{shown}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c18_killed_majority_fails_fast_as_unavailable() {
    let mut masters = Masters::start(3);
    let urls = masters.urls();
    masters[1].kill();
    masters[2].kill();

    // Default retries (3 × 200 ms ± 100 ms): the case allows about 200 ms; ×3 for CI.
    let defaults = builder(&urls).build().unwrap();
    let (err, took) = failed_acquire(&defaults).await;
    assert_unavailable(&err);
    assert!(took < ms(600), "took {took:?}");
    for o in &err.outcomes()[1..] {
        assert!(
            matches!(
                o.status(),
                NodeStatus::Failed(NodeError::Refused(_) | NodeError::Connection(_))
                    | NodeStatus::NotAwaited
            ),
            "{o}"
        );
    }

    // With a 2 s retry delay a single retry would show: it is not retried at all.
    let slow_retry = builder(&urls)
        .retry_delay(ms(2_000))
        .retry_jitter(Duration::ZERO)
        .build()
        .unwrap();
    let (err, took) = failed_acquire(&slow_retry).await;
    assert_unavailable(&err);
    assert!(took < ms(600), "took {took:?}: retried");
}

/// C18's scenario, checked for SPEC §4 step 4: an attempt that failed for lack of a quorum
/// releases on every master that may hold its key, so the live master S1 is left without a
/// key (it would otherwise block every client for the whole 10 s TTL). S2 and S3 refuse at
/// once, so the verdict is known while S1's acquire request is still in flight: S1 is 20 ms
/// away and its script cache was flushed (C07), after which another client of ours released
/// a lock there (release script cached, acquire script not).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c18_failed_acquire_leaves_no_key_on_the_live_master() {
    let mut masters = Masters::start(3);
    let proxy = FaultProxy::start(masters[0].addr()).await;
    let mut urls = masters.urls();
    urls[0] = proxy.url();
    let manager = builder(&urls).node_timeout(ms(200)).build().unwrap();
    let mut warm = manager.lock(unique_name("c18-warm")).await.unwrap();
    settle(&manager).await;
    manager.unlock(&mut warm).await.unwrap();
    settle(&manager).await;

    masters[1].kill();
    masters[2].kill();
    proxy.set_reply_latency(ms(20));
    for _ in 0..3 {
        masters[0].flush_scripts();
        masters[0].cmd(&["SCRIPT", "LOAD", RELEASE_SCRIPT]);
        let (err, _) = failed_acquire(&manager).await;
        assert_unavailable(&err);
        settle(&manager).await;
    }
    let left = masters[0].keys_with_pttl();
    assert!(left.is_empty(), "keys left on S1 (name, PTTL ms): {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c18_frozen_majority_fails_within_the_node_timeout() {
    let masters = Masters::start(3);
    let urls = masters.urls();
    let node_timeout = ms(50); // the default
    let warm = builder(&urls).build().unwrap();
    let mut lock = warm.lock(unique_name("c18-warm")).await.unwrap();
    settle(&warm).await; // the third master's acquire is done: connections are open
    warm.unlock(&mut lock).await.unwrap();
    settle(&warm).await;

    masters[1].pause();
    masters[2].pause();
    // A client that connects only now: opening a connection is bounded by the connect
    // timeout (documented as kept apart from the per-request budget).
    let connect_timeout = ms(200);
    let cold = builder(&urls)
        .connect_timeout(connect_timeout)
        .retry_delay(ms(2_000))
        .retry_jitter(Duration::ZERO)
        .build()
        .unwrap();
    // Warm connections: the requests time out after the node timeout. Cold ones: the
    // kernel accepts the connection, the frozen server never answers the handshake. Either
    // way: one attempt plus the budget, never a hang, never a retry.
    for (manager, budget) in [(&warm, node_timeout), (&cold, connect_timeout)] {
        let (err, took) = failed_acquire(manager).await;
        assert_unavailable(&err);
        for o in &err.outcomes()[1..] {
            assert!(
                matches!(
                    o.status(),
                    NodeStatus::Failed(NodeError::Timeout(_)) | NodeStatus::NotAwaited
                ),
                "{o}"
            );
        }
        // The case allows the budget plus a little; ×3 for CI. A retry would add 2 s (cold)
        // or 100–300 ms per retry (warm, default schedule).
        assert!(
            took < (budget + ms(50)) * 3,
            "took {took:?} (budget {budget:?})"
        );
    }
    masters[1].resume();
    masters[2].resume();
    settle(&warm).await;
    settle(&cold).await;
    for (i, s) in masters.iter().enumerate() {
        let empty = eventually(ms(2_000), || s.dbsize() == 0).await;
        assert!(empty, "keys left on S{}: {:?}", i + 1, s.keys_with_pttl());
    }
}

// ---------------------------------------------------------------------------------------
// A full master, killed client connections, a closed manager
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_master_still_extends_and_releases_but_refuses_new_locks() {
    let masters = Masters::start_with(
        1,
        ServerOptions::default().args(&["--maxmemory", "1mb", "--maxmemory-policy", "noeviction"]),
    );
    let server = &masters[0];
    let manager = builder(&masters.urls()).build().unwrap();
    let resource = unique_name("oom");
    let key = resource.as_bytes();
    let mut lock = manager.lock(&resource).ttl(ms(5_000)).await.unwrap();

    // Fill memory until writes fail with OOM. SETRANGE allocates 256 KiB from a tiny
    // command, so the last successful one leaves used memory well above maxmemory.
    let mut oom = None;
    for i in 0..100 {
        match server.try_cmd(&["SETRANGE", &format!("fill:{i}"), "262144", "x"]) {
            Ok(_) => {}
            Err(e) => {
                oom = Some(e);
                break;
            }
        }
    }
    let oom = oom.expect("memory never filled up");
    assert_eq!(oom.code(), Some("OOM"), "{oom}");
    assert!(matches!(
        server.try_cmd(&["SET", "probe", "1"]),
        Err(e) if e.code() == Some("OOM")
    ));

    let t1 = Instant::now();
    watchdog("extend", manager.extend(&mut lock, ms(8_000)))
        .await
        .unwrap();
    let pttl = server.pttl(key);
    assert!(pttl > 8_000 - t1.elapsed().as_millis() as i64 - 5 && pttl <= 8_000);
    watchdog("unlock", manager.unlock(&mut lock)).await.unwrap();
    assert_eq!(server.get(key), None);

    let err = watchdog("lock", manager.try_lock(unique_name("oom-new")))
        .await
        .unwrap_err();
    let shown = render(&err);
    assert!(err.is_unavailable(), "{shown}");
    assert!(!err.is_conflict(), "{shown}");
    assert!(
        matches!(
            err.outcomes()[0].status(),
            NodeStatus::Failed(NodeError::OutOfMemory(_))
        ),
        "{shown}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_kill_on_a_master_is_survived_and_reconnected() {
    let masters = Masters::start(3);
    let manager = builder(&masters.urls())
        .node_timeout(RELAXED)
        .build()
        .unwrap();
    let mut warm = manager.lock(unique_name("kill-warm")).await.unwrap();
    manager.unlock(&mut warm).await.unwrap();
    settle(&manager).await;

    masters[0].cmd(&["CLIENT", "KILL", "TYPE", "normal"]);
    // The next operation succeeds on a quorum...
    let resource = unique_name("kill");
    let key = resource.as_bytes();
    let mut lock = watchdog("lock", manager.lock(&resource)).await.unwrap();
    let holding = masters
        .iter()
        .filter(|s| s.holds(key, lock.token()))
        .count();
    assert!(
        holding >= manager.quorum(),
        "{holding} masters hold the key"
    );
    watchdog("unlock", manager.unlock(&mut lock)).await.unwrap();
    settle(&manager).await;

    // ...and a later one on all three: S1 was reconnected.
    let mut lock = watchdog("lock", manager.lock(&resource)).await.unwrap();
    let token = lock.token().to_owned();
    assert!(
        eventually(ms(2_000), || masters.iter().all(|s| s.holds(key, &token))).await,
        "S1 is used again after its connection was killed"
    );
    watchdog("unlock", manager.unlock(&mut lock)).await.unwrap();
    settle(&manager).await;
    for s in masters.iter() {
        assert_eq!(s.dbsize(), 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_manager_refuses_every_operation() {
    let masters = Masters::start(1);
    let server = &masters[0];
    let manager = builder(&masters.urls()).build().unwrap();
    let resource = unique_name("closed");
    let key = resource.as_bytes();
    let mut lock = manager.lock(&resource).ttl(ms(10_000)).await.unwrap();
    let token = lock.token().to_owned();
    let mut other = manager.lock(unique_name("closed-2")).await.unwrap();
    manager.unlock(&mut other).await.unwrap();

    watchdog("close", manager.close()).await;
    assert_eq!(manager.background_tasks(), 0);

    let closed = |what: &str, r: Result<(), LockError>| {
        let Err(err) = r else {
            panic!("{what} after close() succeeded: it sent requests to the masters");
        };
        assert!(matches!(err, LockError::Closed), "{what}: {err:?}");
        assert!(err.is_unavailable(), "{what}");
    };
    closed("lock", manager.lock(&resource).await.map(drop));
    closed("try_lock", manager.try_lock("fresh").await.map(drop));
    closed("is_locked", manager.is_locked(&resource).await.map(drop));
    closed("extend", manager.extend(&mut lock, ms(5_000)).await);
    let clone = manager.clone();
    closed("lock on a clone", clone.lock("via-clone").await.map(drop));
    assert_eq!(manager.background_tasks(), 0);
    // close() released the plain lock still held…
    assert!(
        !server.holds(key, &token),
        "close() releases every lock still held"
    );
    // …and `LockError::Closed` means no new request is sent, releasing included.
    let calls = server.command_calls("evalsha");
    closed("unlock", manager.unlock(&mut lock).await);
    drop(lock);
    assert_eq!(manager.background_tasks(), 0);
    assert_eq!(
        server.command_calls("evalsha"),
        calls,
        "nothing sent after close()"
    );
}

/// A master that hangs while we connect is reported with the budget that ran out: the
/// connect timeout, not the per-request timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_timeout_is_reported_as_such() {
    let masters = Masters::start(3);
    masters[1].pause();
    masters[2].pause();
    // A fresh manager: no connection exists yet, so the paused masters hang in the connect.
    let manager = builder(&masters.urls())
        .connect_timeout(ms(300))
        .build()
        .unwrap();
    let started = Instant::now();
    let err = watchdog("lock", manager.lock("r")).await.unwrap_err();
    let elapsed = started.elapsed();
    masters[1].resume();
    masters[2].resume();
    assert!(err.is_unavailable(), "{}", render(&err));
    for i in [1, 2] {
        assert_eq!(
            err.outcomes()[i].status(),
            &NodeStatus::Failed(NodeError::Timeout(ms(300))),
            "{}",
            render(&err)
        );
    }
    assert!(
        elapsed >= ms(300) && elapsed < ms(3_000),
        "took {elapsed:?}"
    );
}

/// One server listed under two names (`127.0.0.1` and `localhost`) must never count twice
/// toward a quorum: the second name is refused with `SameServer`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_server_under_two_names_counts_once() {
    let mut masters = Masters::start(2);
    let port = masters[0].port();
    let urls = vec![
        masters[0].url(),
        format!("redis://localhost:{port}"),
        masters[1].url(),
    ];
    // With the third master down, one real server cannot make a quorum of 2 by itself.
    masters[1].kill();
    let manager = builder(&urls).build().unwrap();
    let err = watchdog("lock", manager.lock("r").retry_count(0))
        .await
        .unwrap_err();
    assert!(err.is_unavailable(), "{}", render(&err));
    let same: Vec<_> = err
        .outcomes()
        .iter()
        .filter(|o| matches!(o.status(), NodeStatus::Failed(NodeError::SameServer(_))))
        .collect();
    assert_eq!(same.len(), 1, "{}", render(&err));
    settle(&manager).await;
    assert_eq!(
        masters[0].dbsize(),
        0,
        "the failed attempt released its key"
    );

    // With the third master back, locks work on two real servers, and the duplicate name
    // still does not count.
    masters[1].restart();
    support::checks::reachable_again(&manager, 2).await;
    let mut lock = watchdog("lock", manager.lock("r")).await.unwrap();
    let done = lock
        .outcomes()
        .iter()
        .filter(|o| *o.status() == NodeStatus::Done)
        .count();
    assert_eq!(done, 2, "{:?}", lock.outcomes());
    manager.unlock(&mut lock).await.unwrap();
}

/// The masters in `outcomes` refused as the same server as another; each names the other
/// name of that server.
fn refused_as_same_server<'a>(
    outcomes: impl IntoIterator<Item = (&'a str, &'a NodeStatus)>,
    names: [&str; 2],
) -> usize {
    outcomes
        .into_iter()
        .filter(|(master, status)| match status {
            NodeStatus::Failed(NodeError::SameServer(other)) => {
                assert!(
                    names.contains(master) && names.contains(&other.as_str()) && other != master,
                    "{master}: same server as {other}"
                );
                true
            }
            _ => false,
        })
        .count()
}

/// One server under two names (`127.0.0.1` and `localhost`) is always reported as such, by
/// the existing typed cause (`NodeError::SameServer` on exactly one of the two names),
/// whichever name connected first and however early the verdict came: a failed `lock` or
/// `is_locked` names it among its outcomes (never "not awaited" instead), `inspect` shows it,
/// and once known it is every later round's outcome for that master. Each case on a fresh
/// manager, many times over, in both orders of the names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_server_is_always_reported() {
    const ROUNDS: usize = 25;
    let mut masters = Masters::start(3);
    let port = masters[0].port();
    let (ip, host) = (masters[0].url(), format!("redis://localhost:{port}"));
    let names = [ip.as_str(), host.as_str()];
    let other = masters[1].url();
    let gone = masters[2].url();
    masters[2].kill();
    let same = |outcomes: &[tokio_redlock::NodeOutcome]| {
        refused_as_same_server(outcomes.iter().map(|o| (o.master(), o.status())), names)
    };
    // Relaxed budgets: a slow answer under load must not pass for the cause.
    let fresh = |urls: &[String]| builder(urls).node_timeout(RELAXED).build().unwrap();
    for round in 0..ROUNDS {
        let pair = if round % 2 == 0 {
            vec![ip.clone(), host.clone()]
        } else {
            vec![host.clone(), ip.clone()]
        };
        let resource = unique_name("dup");
        // Only the one server (and a stopped one): every call fails, naming the duplicate.
        for urls in [pair.clone(), [pair.clone(), vec![gone.clone()]].concat()] {
            let manager = fresh(&urls);
            let err = watchdog("lock", manager.try_lock(&resource))
                .await
                .unwrap_err();
            assert!(
                err.is_unavailable() && err.has_permanent_failure(),
                "{}",
                render(&err)
            );
            assert_eq!(same(err.outcomes()), 1, "{}", render(&err));
            watchdog("close", manager.close()).await;
            let manager = fresh(&urls);
            let err = watchdog("is_locked", manager.is_locked(&resource))
                .await
                .unwrap_err();
            assert!(err.is_unavailable(), "{}", render(&err));
            assert_eq!(same(err.outcomes()), 1, "{}", render(&err));
            watchdog("close", manager.close()).await;
            let manager = fresh(&urls);
            let views = watchdog("inspect", manager.inspect(&resource))
                .await
                .unwrap();
            let shown: Vec<(&str, NodeStatus)> = views
                .iter()
                .map(|v| {
                    let status = match &v.state {
                        tokio_redlock::KeyState::Failed(e) => NodeStatus::Failed(e.clone()),
                        _ => NodeStatus::Done,
                    };
                    (&*v.master, status)
                })
                .collect();
            assert_eq!(
                refused_as_same_server(shown.iter().map(|(m, s)| (*m, s)), names),
                1,
                "{views:?}"
            );
            watchdog("close", manager.close()).await;
        }
        // With a second real server, a quorum is there: the first lock on a fresh manager
        // may be granted before the duplicate's connection is checked (its outcome then says
        // "no answer before the verdict", which is true), and it is granted once on the one
        // server; once known, the duplicate is the outcome of every round.
        let urls = [pair.clone(), vec![other.clone()]].concat();
        let manager = fresh(&urls);
        let mut first = watchdog("lock", manager.lock(&resource)).await.unwrap();
        let statuses: Vec<&NodeStatus> = first.outcomes()[..2].iter().map(|o| o.status()).collect();
        assert_eq!(
            statuses.iter().filter(|s| ***s == NodeStatus::Done).count(),
            1,
            "one server, one grant: {statuses:?}"
        );
        assert!(
            statuses.iter().all(|s| matches!(
                s,
                NodeStatus::Done
                    | NodeStatus::NotAwaited
                    | NodeStatus::Failed(NodeError::SameServer(_))
            )),
            "{statuses:?}"
        );
        watchdog("unlock", manager.unlock(&mut first))
            .await
            .unwrap();
        watchdog("close", manager.close()).await;
        let manager = fresh(&urls);
        let views = watchdog("inspect", manager.inspect(&resource))
            .await
            .unwrap();
        assert_eq!(
            views
                .iter()
                .filter(|v| matches!(
                    v.state,
                    tokio_redlock::KeyState::Failed(NodeError::SameServer(_))
                ))
                .count(),
            1,
            "{views:?}"
        );
        for _ in 0..2 {
            let mut lock = watchdog("lock", manager.lock(&resource)).await.unwrap();
            assert_eq!(same(lock.outcomes()), 1, "{:?}", lock.outcomes());
            watchdog("unlock", manager.unlock(&mut lock)).await.unwrap();
        }
        watchdog("close", manager.close()).await;
    }
}

/// Asserts that one server listed under two names (`urls[0]` and `urls[1]`, `masters[0]`)
/// counts once toward a quorum: with the other master (`masters[1]`, `urls[2]`) down there is
/// no quorum, exactly one of the two names is refused as the same server, and with it back a
/// lock is granted on exactly two masters.
async fn one_server_counts_once(masters: &mut Masters, urls: &[String]) {
    masters[1].kill();
    let manager = builder(urls).node_timeout(RELAXED).build().unwrap();
    let err = watchdog("lock", manager.lock("r").retry_count(0))
        .await
        .expect_err("one server under two names is no quorum of two");
    assert!(err.is_unavailable(), "{}", render(&err));
    let same = err
        .outcomes()
        .iter()
        .filter(|o| matches!(o.status(), NodeStatus::Failed(NodeError::SameServer(_))))
        .count();
    assert_eq!(same, 1, "{}", render(&err));
    assert!(
        err.outcomes()[..2]
            .iter()
            .any(|o| matches!(o.status(), NodeStatus::Failed(NodeError::SameServer(_)))),
        "{}",
        render(&err)
    );
    settle(&manager).await;
    assert_eq!(
        masters[0].dbsize(),
        0,
        "the failed attempt released its key"
    );
    assert!(
        !masters[0].info("keyspace").contains("keys="),
        "no key in any db: {}",
        masters[0].info("keyspace")
    );

    masters[1].restart();
    support::checks::reachable_again(&manager, 2).await;
    let mut lock = watchdog("lock", manager.lock("r")).await.unwrap();
    let done = lock
        .outcomes()
        .iter()
        .filter(|o| *o.status() == NodeStatus::Done)
        .count();
    assert_eq!(done, 2, "{:?}", lock.outcomes());
    assert!(masters[1].holds(b"r", lock.token()));
    manager.unlock(&mut lock).await.unwrap();
}

/// F2 (variant): db 0 and db 1 of one server are one server: one failure takes both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f2_same_server_as_db0_and_db1_counts_once() {
    let mut masters = Masters::start(2);
    let port = masters[0].port();
    let urls = vec![
        format!("redis://127.0.0.1:{port}/0"),
        format!("redis://127.0.0.1:{port}/1"),
        masters[1].url(),
    ];
    one_server_counts_once(&mut masters, &urls).await;
}

/// F2 (variant): one server reached over its unix socket and over TCP is one server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f2_same_server_over_unix_socket_and_tcp_counts_once() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("s1.sock");
    let s1 = RedisServer::start(
        ServerOptions::default().args(&["--unixsocket", socket.to_str().unwrap()]),
    );
    let s2 = RedisServer::start(ServerOptions::default());
    let urls = vec![
        s1.url(),
        format!("redis+unix://{}", socket.display()),
        s2.url(),
    ];
    let mut masters = Masters(vec![s1, s2]);
    one_server_counts_once(&mut masters, &urls).await;
}

// ---------------------------------------------------------------------------------------
// A fixed-address master demoted to a replica while connected
// ---------------------------------------------------------------------------------------

/// Makes `server` a replica of `of` and waits until its replication link is up.
async fn demote(server: &RedisServer, of: &RedisServer) {
    server.cmd(&["REPLICAOF", "127.0.0.1", &of.port().to_string()]);
    assert!(
        eventually(ms(10_000), || role(server) == "slave" && link_up(server)).await,
        "redis {} did not become a replica of {} with its link up",
        server.port(),
        of.port()
    );
}

/// Asserts that S1's outcome in `lock` is an `Auth` failure or not awaited (the quorum may be
/// reached before its NOAUTH arrives).
fn assert_s1_refused_auth_or_not_awaited(lock: &tokio_redlock::Lock) {
    assert!(
        matches!(
            lock.outcomes()[0].status(),
            NodeStatus::Failed(NodeError::Auth(_)) | NodeStatus::NotAwaited
        ),
        "{:?}",
        lock.outcomes()
    );
}

/// A manager over `masters` with a 300 ms per-master budget.
fn manager_300(masters: &Masters) -> LockManager {
    builder(&masters.urls())
        .node_timeout(ms(300))
        .build()
        .unwrap()
}

/// A [`manager_300`] whose connections are open (one warm-up lock and unlock).
async fn connected_manager_300(masters: &Masters) -> LockManager {
    let m = manager_300(masters);
    let mut warm = watchdog("warm-up lock", m.try_lock(unique_name("warm")))
        .await
        .unwrap();
    m.unlock(&mut warm).await.unwrap();
    m
}

/// Whether a member's outcome is the failure of a replica (`ReadOnly` or `NotMaster`).
fn failed_as_replica(status: &NodeStatus) -> bool {
    matches!(status, NodeStatus::Failed(e) if is_replica_failure(e))
}

/// A fixed-address master that becomes a (read-only, the default) replica while the manager
/// holds a connection to it is not counted: its `READONLY` makes the library reconnect, where
/// `ROLE` refuses it; the lock comes from the two real masters and nothing is written on the
/// replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_demoted_to_a_read_only_replica_while_connected_is_not_counted() {
    let masters = Masters::start(3);
    let upstream = RedisServer::start(ServerOptions::default());
    let m = connected_manager_300(&masters).await;
    demote(&masters[0], &upstream).await;

    let resource = unique_name("ro-replica");
    let lock = watchdog("lock", m.try_lock(&resource)).await.unwrap();
    let status = lock.outcomes()[0].status();
    assert!(
        failed_as_replica(status) || status == &NodeStatus::NotAwaited,
        "{status:?}"
    );
    assert_eq!(masters[0].get(resource.as_bytes()), None);
}

/// A fixed-address master that becomes a replica while the manager is connected — with
/// `replica-read-only no`, so no `READONLY` error comes back — stops counting toward the
/// quorum within a second, as the crate promises ("a replica never counts toward a quorum";
/// "a server that is (or just became) a replica is never used as a master"): at most a
/// second after the last check, `ROLE` goes along with the next request on the same
/// connection, and the member fails (`NotMaster`) as it does on a fresh connection. Checking
/// `ROLE` only when a connection opens would let the writable replica grant locks on the
/// cached connection and count until the next reconnection, although keys written on a
/// replica are local and vanish at its next full resync.
///
/// With the third master stopped, the quorum (2 of 3) needs the demoted one, so its outcome
/// is always awaited: the lock is refused and the replica's failure is in the outcomes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_demoted_to_a_writable_replica_while_connected_stops_counting() {
    let mut masters = Masters::start(3);
    let upstream = RedisServer::start(ServerOptions::default());
    let m = connected_manager_300(&masters).await;
    masters[0].cmd(&["CONFIG", "SET", "replica-read-only", "no"]);
    demote(&masters[0], &upstream).await;

    // A fresh manager refuses it (ROLE on connect).
    let fresh = manager_300(&masters);
    let probe = watchdog("fresh lock", fresh.try_lock(unique_name("fresh")))
        .await
        .unwrap();
    let status = probe.outcomes()[0].status();
    assert!(
        failed_as_replica(status) || status == &NodeStatus::NotAwaited,
        "fresh manager: {:?}",
        probe.outcomes()[0]
    );

    // The connected manager asks ROLE again at most a second after its last check (with the
    // next request, on the same connection): past that, the replica no longer counts.
    masters[2].kill();
    tokio::time::sleep(ms(1_100)).await;
    let resource = unique_name("rw-replica");
    let err = match watchdog("lock", m.try_lock(&resource)).await {
        Ok(lock) => panic!(
            "a replica (ROLE slave) granted the lock and counted toward the quorum: {:?}",
            lock.outcomes()
        ),
        Err(e) => e,
    };
    assert_eq!(role(&masters[0]), "slave");
    // The script may have run there (a writable replica accepts it; the key expires by its
    // TTL and the failed attempt's cleanup deletes it), but the replica does not count.
    assert!(
        failed_as_replica(err.outcomes()[0].status()),
        "{}",
        render(&err)
    );
}

// ---------------------------------------------------------------------------------------
// Review findings F3, F6, F8, F10, F11
// ---------------------------------------------------------------------------------------

/// F3: a unix-socket URL carrying its password in the query (`?pass=`) works, and the
/// password shows in no Display or Debug of the builder, the manager, its masters, or any
/// error — from a running master, a stopped one, or a bad configuration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f3_unix_socket_query_password_works_and_is_never_shown() {
    const SECRET: &str = "hunter2";
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("r.sock");
    let mut masters = Masters::start_with(
        1,
        ServerOptions::default().args(&[
            "--unixsocket",
            socket.to_str().unwrap(),
            "--requirepass",
            SECRET,
        ]),
    );
    let url = format!("redis+unix://{}?pass={SECRET}", socket.display());
    let mut shown = Vec::new();

    let builder = LockManager::builder()
        .server(url.clone())
        .node_timeout(RELAXED);
    shown.push(format!("builder: {builder:?}"));
    let manager = builder.build().unwrap();
    shown.push(format!("manager: {manager:?}"));
    shown.push(format!(
        "masters(): {:?}",
        manager.masters().collect::<Vec<_>>()
    ));
    assert!(
        manager.masters().all(|m| m.contains("r.sock")),
        "the master is still named: {:?}",
        manager.masters().collect::<Vec<_>>()
    );

    // It works: lock, extend, unlock over the socket with the query password.
    let resource = unique_name("f3");
    let key = resource.as_bytes();
    let mut lock = watchdog("lock", manager.lock(&resource).ttl(ms(5_000)))
        .await
        .unwrap();
    assert!(masters[0].holds(key, lock.token()));
    watchdog("extend", manager.extend(&mut lock, ms(5_000)))
        .await
        .unwrap();
    watchdog("unlock", manager.unlock(&mut lock)).await.unwrap();
    assert_eq!(masters[0].dbsize(), 0);

    // An error from the running master (a hash under the key) names the master.
    masters[0].cmd(&["HSET", "h", "f", "v"]);
    let err = watchdog("lock", manager.try_lock("h")).await.unwrap_err();
    assert!(err.is_not_a_lock(), "{}", render(&err));
    shown.push(format!("NotALock: {}", render(&err)));

    // A wrong password over the socket.
    let wrong = LockManager::builder()
        .server(format!("redis+unix://{}?pass=n0tTheP4ss", socket.display()))
        .node_timeout(RELAXED)
        .build()
        .unwrap();
    let err = watchdog("lock", wrong.try_lock("r")).await.unwrap_err();
    assert!(err.is_auth(), "{}", render(&err));
    assert!(!render(&err).contains("n0tTheP4ss"), "{}", render(&err));

    // A stopped master: NoQuorum.
    masters[0].kill();
    let err = watchdog("lock", manager.try_lock("r")).await.unwrap_err();
    assert!(err.is_unavailable(), "{}", render(&err));
    shown.push(format!("NoQuorum: {}", render(&err)));
    shown.push(format!("manager after: {manager:?}"));

    // Bad configurations that quote the URL.
    let err = LockManager::builder()
        .server(format!("{url}&db=abc"))
        .build()
        .unwrap_err();
    shown.push(format!("bad db: {err} / {err:?}"));
    let err = LockManager::builder()
        .servers([url.clone(), url.clone()])
        .build()
        .unwrap_err();
    shown.push(format!("duplicate: {err} / {err:?}"));

    for text in &shown {
        assert!(!text.contains(SECRET), "password shown in {text}");
    }
}

/// F6: one master with wrong credentials (1 of 3, a failure a quorum tolerates) does not turn
/// contention into "unavailable": A waits out B's 500 ms hold on the two healthy masters and
/// gets the lock there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f6_one_master_with_wrong_credentials_does_not_end_contention() {
    let auth = password_protected();
    let masters = Masters::start(2);
    // No password for S1: NOAUTH there, on every attempt.
    let a = LockManager::builder()
        .server(auth[0].url())
        .servers(masters.urls())
        .retry_delay(ms(100))
        .retry_jitter(ms(20))
        .node_timeout(RELAXED)
        .build()
        .unwrap();
    // Sanity: without contention A locks on the two healthy masters.
    let mut warm = watchdog("lock", a.try_lock(unique_name("f6-warm")))
        .await
        .unwrap();
    assert_s1_refused_auth_or_not_awaited(&warm);
    a.unlock(&mut warm).await.unwrap();
    settle(&a).await;

    let b = builder(&masters.urls())
        .node_timeout(RELAXED)
        .build()
        .unwrap();
    let resource = unique_name("f6");
    let key = resource.as_bytes();
    let tb = Instant::now();
    let b_lock = b.lock(&resource).ttl(ms(500)).await.unwrap();
    let mut lock = watchdog("lock", a.lock(&resource).retry_count(20))
        .await
        .unwrap_or_else(|e| {
            panic!("2 of 3 masters are free once B's 500 ms hold ends; A had 20 retries: {e}")
        });
    let waited = tb.elapsed();
    assert_ne!(lock.token(), b_lock.token());
    assert!(
        waited >= ms(490),
        "A got the lock after {waited:?}, before B's 500 ms keys expired"
    );
    for s in masters.iter() {
        assert!(s.holds(key, lock.token()), "{}", s.url());
    }
    // S1 never grants; the quorum may be reached before its NOAUTH arrives.
    assert_s1_refused_auth_or_not_awaited(&lock);
    a.unlock(&mut lock).await.unwrap();
    assert_eq!(auth[0].dbsize(), 0);
}

/// Panics on tokio worker threads (background tasks included), recorded by a panic hook.
static WORKER_PANICS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

fn record_worker_panics() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let on_worker = std::thread::current()
                .name()
                .is_some_and(|n| n.starts_with("tokio-"));
            if on_worker {
                WORKER_PANICS.lock().unwrap().push(info.to_string());
            }
            previous(info);
        }));
    });
}

/// The command (array of bulk strings) at the start of `buf`, and the bytes it used.
fn parse_command(buf: &[u8]) -> Option<(Vec<Vec<u8>>, usize)> {
    fn line(buf: &[u8], at: usize) -> Option<(&[u8], usize)> {
        let rest = buf.get(at..)?;
        let end = rest.windows(2).position(|w| w == b"\r\n")?;
        Some((&rest[..end], at + end + 2))
    }
    let (l, mut at) = line(buf, 0)?;
    let n: usize = std::str::from_utf8(l.strip_prefix(b"*")?)
        .ok()?
        .parse()
        .ok()?;
    let mut args = Vec::with_capacity(n);
    for _ in 0..n {
        let (l, next) = line(buf, at)?;
        let len: usize = std::str::from_utf8(l.strip_prefix(b"$")?)
            .ok()?
            .parse()
            .ok()?;
        let data = buf.get(next..next + len)?.to_vec();
        at = next + len + 2;
        if buf.len() < at {
            return None;
        }
        args.push(data);
    }
    Some((args, at))
}

/// A RESP bulk string.
fn bulk(text: &str) -> Vec<u8> {
    format!("${}\r\n{text}\r\n", text.len()).into_bytes()
}

/// A fake Redis master on 127.0.0.1: plausible replies to the connection set-up (HELLO,
/// CLIENT, SCRIPT LOAD, INFO, PING, SELECT) and `script_reply` to every EVALSHA and EVAL.
async fn fake_master(script_reply: Vec<u8>) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let script_reply = script_reply.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0_u8; 4096];
                loop {
                    while let Some((args, used)) = parse_command(&buf) {
                        buf.drain(..used);
                        let name = args
                            .first()
                            .map(|a| String::from_utf8_lossy(a).to_uppercase())
                            .unwrap_or_default();
                        let reply = match name.as_str() {
                            "EVALSHA" | "EVAL" => script_reply.clone(),
                            // Refused, so the acquisition asks the script who holds the key.
                            "SET" => b"$-1\r\n".to_vec(),
                            "PING" => b"+PONG\r\n".to_vec(),
                            "SCRIPT" => bulk(&"0".repeat(40)),
                            "INFO" => bulk(&format!(
                                "# Server\r\nredis_version:7.0.15\r\nrun_id:{}\r\n",
                                "f".repeat(40)
                            )),
                            "HELLO" => {
                                let mut r = b"*6\r\n".to_vec();
                                for part in ["server", "redis", "version", "7.0.15", "proto"] {
                                    r.extend(bulk(part));
                                }
                                r.extend(b":2\r\n");
                                r
                            }
                            _ => b"+OK\r\n".to_vec(), // CLIENT SETINFO, SELECT, ...
                        };
                        if socket.write_all(&reply).await.is_err() {
                            return;
                        }
                    }
                    match socket.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            });
        }
    });
    addr
}

/// F8: a reply of an unexpected shape whose text has a multi-byte character where the
/// library cuts it for the message (a 2-byte `é` straddling the cut, at every offset from 100
/// to 125 bytes) is a typed `UnexpectedReply`, never a panic — also not in the background
/// release that follows the failed attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f8_odd_reply_with_multibyte_char_is_unexpected_reply_not_panic() {
    record_worker_panics();
    let panics_before = WORKER_PANICS.lock().unwrap().len();
    for n in 100..=125 {
        let body = format!("{}é", "a".repeat(n));
        let addr = fake_master(bulk(&body)).await;
        let manager = LockManager::builder()
            .server(format!("redis://{addr}"))
            .node_timeout(ms(500))
            .build()
            .unwrap();
        let m = manager.clone();
        let result = watchdog(
            "try_lock",
            tokio::spawn(async move { m.try_lock("r").await }),
        )
        .await
        .unwrap_or_else(|e| panic!("{n} 'a': try_lock panicked: {e:?}"));
        let err = result.expect_err("the fake master grants nothing");
        let shown = render(&err);
        assert!(err.is_unavailable(), "{n} 'a': {shown}");
        match err.outcomes()[0].status() {
            NodeStatus::Failed(NodeError::UnexpectedReply(text)) => {
                assert!(text.contains("aaaa"), "{n} 'a': {text}");
                assert!(text.chars().count() <= 120, "{n} 'a': {text}");
            }
            other => panic!("{n} 'a': expected UnexpectedReply, got {other:?}"),
        }
        // The release sent after the failed attempt meets the same reply in the background.
        settle(&manager).await;
        manager.close().await;
        assert_eq!(manager.background_tasks(), 0);
    }
    let panics = WORKER_PANICS.lock().unwrap()[panics_before..].to_vec();
    assert!(panics.is_empty(), "panics on runtime threads: {panics:#?}");
}

/// F10: a connection that stays open but silently swallows every byte (a flow a NAT or
/// firewall forgot) is replaced after several timeouts in a row (the library's bound is 8),
/// so a master becomes usable again within a few seconds while a new connection would work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f10_silent_connection_is_replaced_after_timeouts_in_a_row() {
    let masters = Masters::start(1);
    let server = &masters[0];
    let proxy = FaultProxy::start(server.addr()).await;
    let manager = builder(&[proxy.url()])
        .node_timeout(ms(250))
        .build()
        .unwrap();
    let mut warm = watchdog("lock", manager.try_lock("warm")).await.unwrap();
    manager.unlock(&mut warm).await.unwrap();
    settle(&manager).await;

    // The manager's connection now swallows everything; new connections work.
    proxy.blackhole_existing();
    let resource = unique_name("f10");
    let started = Instant::now();
    let mut failures = 0;
    let mut lock = loop {
        match watchdog("try_lock", manager.try_lock(&resource)).await {
            Ok(lock) => break lock,
            Err(e) => {
                assert!(e.is_unavailable(), "{}", render(&e));
                assert!(
                    matches!(
                        e.outcomes()[0].status(),
                        NodeStatus::Failed(NodeError::Timeout(_))
                    ),
                    "{}",
                    render(&e)
                );
                failures += 1;
                assert!(
                    started.elapsed() < Duration::from_secs(5),
                    "still failing after {failures} timeouts in {:?} although a new \
                     connection works",
                    started.elapsed()
                );
            }
        }
        tokio::time::sleep(ms(20)).await;
    };
    println!(
        "usable again after {failures} failed attempts, {:?}",
        started.elapsed()
    );
    assert!(
        (1..=8).contains(&failures),
        "{failures} failed attempts before the connection was replaced"
    );
    assert!(server.holds(resource.as_bytes(), lock.token()));
    watchdog("unlock", manager.unlock(&mut lock)).await.unwrap();
    settle(&manager).await;
    assert_eq!(server.dbsize(), 0);
    proxy.heal();
}

/// A paused master (its port still accepts connections, nothing answers): once its connection
/// is replaced after timeouts in a row, a request waits for the new one at most the node
/// timeout, not the connect timeout. A round that needs that master's answer (a split vote)
/// is then decided within a node timeout, as while the old connection was up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_being_reopened_is_waited_for_the_node_timeout_only() {
    let masters = Masters::start(1);
    let proxy = FaultProxy::start(masters[0].addr()).await;
    let manager = builder(&[proxy.url()])
        .node_timeout(ms(100))
        .connect_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut warm = watchdog("lock", manager.try_lock("warm")).await.unwrap();
    manager.unlock(&mut warm).await.unwrap();
    settle(&manager).await;

    // Paused: the existing connection and every new one deliver nothing.
    proxy.stall(true);
    let resource = unique_name("reopen");
    for attempt in 0..16 {
        let started = Instant::now();
        let e = watchdog("try_lock", manager.try_lock(&resource))
            .await
            .unwrap_err();
        let took = started.elapsed();
        assert!(e.is_unavailable(), "{}", render(&e));
        assert!(
            matches!(
                e.outcomes()[0].status(),
                NodeStatus::Failed(NodeError::Timeout(t)) if *t == ms(100)
            ),
            "attempt {attempt}: {}",
            render(&e)
        );
        // Far below the 5 s connect timeout, whatever the machine's load.
        assert!(
            took < Duration::from_secs(2),
            "attempt {attempt} took {took:?}: it waited for the reconnect's connect timeout"
        );
    }
    proxy.stall(false);
    let mut lock = watchdog("lock after the pause", manager.lock(&resource))
        .await
        .unwrap();
    manager.unlock(&mut lock).await.unwrap();
    manager.close().await;
}

/// F11: an ACL user without the SCRIPT command (`+@all -script`) can still lock, extend and
/// unlock: EVAL and EVALSHA are allowed, so the library skips SCRIPT LOAD and its first EVALSHA
/// of each script pays the NOSCRIPT round trip (EVAL) instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f11_acl_user_without_script_command_can_lock_extend_unlock() {
    let masters = Masters::start(1);
    let server = &masters[0];
    server.cmd(&[
        "ACL", "SETUSER", "locker", "on", ">pw", "~*", "&*", "+@all", "-script",
    ]);
    server.cmd(&["CONFIG", "RESETSTAT"]);
    let manager = LockManager::builder()
        .server(format!("redis://locker:pw@127.0.0.1:{}", server.port()))
        .node_timeout(RELAXED)
        .build()
        .unwrap();
    let resource = unique_name("f11");
    let key = resource.as_bytes();
    let mut lock = watchdog("lock", manager.lock(&resource).ttl(ms(2_000)))
        .await
        .unwrap();
    assert!(server.holds(key, lock.token()));
    watchdog("extend", manager.extend(&mut lock, ms(5_000)))
        .await
        .unwrap();
    assert!(server.pttl(key) > 2_000, "extended");
    watchdog("unlock", manager.unlock(&mut lock)).await.unwrap();
    assert_eq!(server.dbsize(), 0);
    assert!(
        server.command_calls("eval") >= 1,
        "the scripts went by EVAL after NOSCRIPT: {}",
        server.info("commandstats")
    );
}
