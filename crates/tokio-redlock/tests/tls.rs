//! TLS to the masters (feature `tls`) against real TLS-only `redis-server` processes with a
//! throw-away PKI: a custom CA, mutual TLS, `danger_accept_invalid_certificates`, a password
//! over TLS, field case C17 (a) plaintext client against a TLS-only port and (c) a
//! certificate signed by an unknown CA, and certificates of the trusted CA for another name or
//! expired — each failure fast, typed, and with its cause kept. And a Sentinel group over TLS
//! only (`rediss+sentinel://`, sentinels and data servers TLS-only): locking through it, the
//! system roots refusing the test CA, a forced failover followed by the watch, and the watch
//! ending at close. And a Redis Cluster over TLS only (`rediss+cluster://`, the cluster bus
//! over TLS, TLS ports announced): locking on keys in many slots, a waiter woken by the
//! sharded release, the system roots refusing the test CA.
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

use support::checks::{RELAXED, ms, render, settle, watchdog, within};
use support::sentinel::role;
use support::servers::{Masters, RedisServer};
use support::tls::{
    ServerCertificate, TlsCluster, TlsMaster, TlsMasters, TlsOptions, TlsSentinelSet,
    unknown_ca_pem,
};
use support::{eventually, unique_name};
use tokio::time::Instant;
use tokio_redlock::{LockError, LockManager, LockManagerBuilder, NodeError, NodeStatus};

/// Connect budget of the failure tests; "fast" means well under it plus a margin.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// A failing acquire must end before this (connect budget + margin).
const FAST: Duration = Duration::from_secs(5);
/// Outer limit that tells a hang apart from a merely slow failure.
const HANG: Duration = Duration::from_secs(15);

const PASSWORD: &str = "tls-s3cret-Pw";
const WRONG_PASSWORD: &str = "tls-wr0ng-Pw";

/// A builder over `urls` with a relaxed per-master budget (TLS handshakes on a loaded box) and
/// the test connect budget.
fn tls_builder(urls: impl IntoIterator<Item = String>) -> LockManagerBuilder {
    LockManager::builder()
        .servers(urls)
        .node_timeout(RELAXED)
        .connect_timeout(CONNECT_TIMEOUT)
}

/// Waits up to 3 s until every master holds `token` under `key` (a slower master's SET may
/// still be landing when `lock` returns).
async fn held_on_all(masters: &[&TlsMaster], key: &[u8], token: &str) {
    let held = eventually(ms(3_000), || masters.iter().all(|m| m.holds(key, token))).await;
    assert!(
        held,
        "every TLS master must hold the token under `{}`",
        String::from_utf8_lossy(key)
    );
}

/// Lock, extend and unlock `resource` through `manager`, checking the keys on `masters`:
/// value = token, a TTL set (and raised by extend), gone after unlock.
async fn lock_extend_unlock(manager: &LockManager, masters: &[&TlsMaster], resource: &str) {
    let key = resource.as_bytes();
    let mut lock = watchdog("lock", manager.lock(resource).ttl(ms(5_000)))
        .await
        .unwrap_or_else(|e| panic!("lock over TLS: {}", render(&e)));
    let token = lock.token().to_owned();
    held_on_all(masters, key, &token).await;
    for m in masters {
        let pttl = m.pttl(key);
        assert!(0 < pttl && pttl <= 5_000, "PTTL {pttl} after a 5 s lock");
    }

    watchdog("extend", manager.extend(&mut lock, ms(20_000)))
        .await
        .unwrap_or_else(|e| panic!("extend over TLS: {}", render(&e)));
    assert!(lock.is_valid());
    let extended = eventually(ms(3_000), || {
        masters
            .iter()
            .all(|m| m.holds(key, &token) && m.pttl(key) > 5_000)
    })
    .await;
    assert!(extended, "extend must raise the TTL on every master");
    for m in masters {
        assert!(m.pttl(key) <= 20_000);
    }

    watchdog("unlock", manager.unlock(&mut lock))
        .await
        .unwrap_or_else(|e| panic!("unlock over TLS: {}", render(&e)));
    settle(manager).await;
    for (i, m) in masters.iter().enumerate() {
        assert_eq!(m.get(key), None, "S{} still holds the key", i + 1);
        assert_eq!(m.dbsize(), 0, "S{} has keys left", i + 1);
    }
}

/// An acquire of a fresh resource that must fail fast (under [`FAST`]), as "unavailable"
/// and not "locked by someone else", on the single master of `manager`, with the per-master
/// cause. Returns that cause and the rendered error.
async fn single_master_failure(manager: &LockManager) -> (NodeError, String) {
    let resource = unique_name("tls-fail");
    let started = Instant::now();
    let err = within(HANG, "lock", manager.lock(&resource).ttl(ms(2_000)))
        .await
        .unwrap_err();
    let took = started.elapsed();
    let shown = render(&err);
    assert!(took < FAST, "took {took:?} to fail: {shown}");
    assert!(err.is_unavailable(), "{shown}");
    assert!(!err.is_conflict(), "{shown}");
    assert!(matches!(err, LockError::NoQuorum { .. }), "{shown}");
    let cause = match err.outcomes() {
        [o] => match o.status() {
            NodeStatus::Failed(e) => e.clone(),
            other => panic!("expected a failed master, got {other:?}: {shown}"),
        },
        other => panic!("expected one outcome, got {other:?}"),
    };
    println!("failure after {took:?}: {cause:?}\n{shown}");
    (cause, shown)
}

// ---------------------------------------------------------------------------------------
// Working TLS
// ---------------------------------------------------------------------------------------

/// Three TLS-only masters (one addressed as `localhost`, the certificate's DNS name), a
/// custom CA: lock, extend and unlock reach a quorum over TLS; the keys hold the token with
/// a TTL and are gone after unlock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_extend_unlock_over_tls_with_a_custom_ca() {
    let masters = TlsMasters::start(3, TlsOptions::default());
    let urls = vec![
        masters[0].url(),
        masters[1].url(),
        masters[2].localhost_url(),
    ];
    let manager = tls_builder(urls)
        .tls_root_certificate(masters[0].ca_pem())
        .build()
        .unwrap();
    assert_eq!(manager.quorum(), 2);
    let all: Vec<&TlsMaster> = masters.iter().collect();
    lock_extend_unlock(&manager, &all, &unique_name("tls")).await;
    // A second cycle reuses the TLS connections.
    lock_extend_unlock(&manager, &all, &unique_name("tls-again")).await;
    watchdog("close", manager.close()).await;
}

/// Mutual TLS: with the client certificate the server asks for, everything works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_with_a_client_certificate_works() {
    let master = TlsMaster::start(TlsOptions {
        mutual: true,
        ..TlsOptions::default()
    });
    let manager = tls_builder([master.url()])
        .tls_root_certificate(master.ca_pem())
        .tls_client_certificate(master.client_cert_pem(), master.client_key_pem())
        .build()
        .unwrap();
    lock_extend_unlock(&manager, &[&master], &unique_name("mtls")).await;
}

/// Mutual TLS without a client certificate: the server refuses the handshake (TLS 1.3 sends
/// the "certificate required" alert after the client thinks it is done). The acquire fails
/// fast, typed (TLS or connection failure), with the alert kept in the message, and no key
/// is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_without_a_client_certificate_fails_fast_and_typed() {
    let master = TlsMaster::start(TlsOptions {
        mutual: true,
        ..TlsOptions::default()
    });
    let manager = tls_builder([master.url()])
        .tls_root_certificate(master.ca_pem())
        .build()
        .unwrap();
    let (cause, shown) = single_master_failure(&manager).await;
    match &cause {
        NodeError::Tls(m) | NodeError::Connection(m) => assert!(
            m.to_lowercase().contains("certificate"),
            "the cause must name the missing certificate: {m}"
        ),
        other => panic!("expected a TLS or connection failure, got {other:?}: {shown}"),
    }
    assert_eq!(master.dbsize(), 0, "no key written");
}

/// `danger_accept_invalid_certificates(true)` connects to a server whose certificate no
/// trusted CA signed (trusting only the unknown CA, and trusting nothing extra at all).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn danger_accept_invalid_certificates_connects_despite_an_unknown_ca() {
    let master = TlsMaster::start(TlsOptions::default());
    let with_unknown_ca = tls_builder([master.url()])
        .tls_root_certificate(unknown_ca_pem())
        .danger_accept_invalid_certificates(true)
        .build()
        .unwrap();
    lock_extend_unlock(&with_unknown_ca, &[&master], &unique_name("danger")).await;

    let without_roots = tls_builder([master.url()])
        .danger_accept_invalid_certificates(true)
        .build()
        .unwrap();
    lock_extend_unlock(&without_roots, &[&master], &unique_name("danger2")).await;
}

/// A `#insecure` fragment (redis-rs's own switch for skipping verification) is refused by
/// `build()`: the only way to skip verification is the explicit builder method.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insecure_url_fragment_is_rejected_by_build() {
    let master = TlsMaster::start(TlsOptions::default());
    let port = master.port();
    for url in [
        format!("rediss://127.0.0.1:{port}/#insecure"),
        format!("rediss://127.0.0.1:{port}#insecure"),
        format!("rediss://127.0.0.1:{port}/0#insecure"),
    ] {
        let err = LockManager::builder()
            .server(url.clone())
            .danger_accept_invalid_certificates(false)
            .build()
            .expect_err(&format!("{url} must be rejected"));
        let shown = format!("{err}\n{err:?}");
        println!("{url}: {shown}");
        assert!(
            shown.to_lowercase().contains("insecure"),
            "the error must say why: {shown}"
        );
    }
    // Also with the builder's own switch on: the fragment is refused, not merged.
    let err = LockManager::builder()
        .server(format!("rediss://127.0.0.1:{port}/#insecure"))
        .danger_accept_invalid_certificates(true)
        .build()
        .expect_err("#insecure is refused even with danger_accept_invalid_certificates");
    println!("{err}");
    assert_eq!(master.dbsize(), 0);
}

// ---------------------------------------------------------------------------------------
// C17 (a): plaintext against TLS, and TLS against plaintext
// ---------------------------------------------------------------------------------------

/// C17 (a): a plaintext `redis://` client against a TLS-only port. The server drops the
/// connection when the bytes are no TLS handshake: the acquire fails fast as a connection
/// failure with the cause (reset / closed) in the message, never hanging, nothing written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c17a_plaintext_client_against_a_tls_only_port_fails_fast_and_typed() {
    let master = TlsMaster::start(TlsOptions::default());
    let manager = tls_builder([master.plain_url()]).build().unwrap();
    let (cause, shown) = single_master_failure(&manager).await;
    match &cause {
        NodeError::Connection(m) => {
            let m = m.to_lowercase();
            assert!(
                [
                    "reset",
                    "closed",
                    "eof",
                    "broken pipe",
                    "terminated",
                    "aborted"
                ]
                .iter()
                .any(|w| m.contains(w)),
                "the cause must say the connection was dropped: {m}"
            );
        }
        other => panic!("expected a connection failure, got {other:?}: {shown}"),
    }
    assert!(!cause.is_timeout(), "the server answers at once: {cause:?}");
    assert_eq!(master.dbsize(), 0, "no key written");
}

/// The TLS hint stays where the evidence supports it: a plaintext client whose connection to
/// a TLS-only port opened and was dropped at its first command is told "if this port only
/// speaks TLS, use rediss://" (a name that does not resolve is not: see
/// `dns_failure_gives_no_tls_hint` in the failure tests).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_client_at_a_tls_only_port_keeps_the_tls_hint() {
    let master = TlsMaster::start(TlsOptions::default());
    let manager = tls_builder([master.plain_url()]).build().unwrap();
    let (cause, shown) = single_master_failure(&manager).await;
    assert!(
        matches!(&cause, NodeError::Connection(m) if m.contains("if this port only speaks TLS, use rediss://")),
        "{shown}"
    );
}

/// C17 (a), the other way round: a `rediss://` client against a plaintext-only server. Redis
/// reads the ClientHello as the start of an inline command and waits for its end of line, so
/// nothing comes back: the acquire ends at the connect budget as a typed timeout (or, should
/// the server answer, a TLS/connection failure), never hanging, nothing written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c17a_tls_client_against_a_plaintext_port_fails_fast_and_typed() {
    let masters = Masters::start(1);
    let server: &RedisServer = &masters[0];
    let manager = tls_builder([format!("rediss://127.0.0.1:{}", server.port())])
        .tls_root_certificate(support::tls::pki().ca_pem.clone().into_bytes())
        .build()
        .unwrap();
    let (cause, shown) = single_master_failure(&manager).await;
    match &cause {
        NodeError::Timeout(budget) => assert_eq!(*budget, CONNECT_TIMEOUT, "{shown}"),
        NodeError::Tls(m) | NodeError::Connection(m) => assert!(!m.is_empty(), "{shown}"),
        other => panic!("expected a timeout, TLS or connection failure, got {other:?}: {shown}"),
    }
    assert_eq!(server.dbsize(), 0, "no key written");
}

// ---------------------------------------------------------------------------------------
// C17 (c): a certificate signed by an unknown CA
// ---------------------------------------------------------------------------------------

/// A TLS failure's `source()` chain goes from the `LockError` to the master's
/// `NodeError::Tls`, to redis-rs's error, and on to the I/O error that carries rustls's
/// verdict (its text names the unknown issuer).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_failure_source_chain_reaches_the_rustls_cause() {
    let master = TlsMaster::start(TlsOptions::default());
    let manager = tls_builder([master.url()])
        .tls_root_certificate(unknown_ca_pem())
        .build()
        .unwrap();
    let err = within(HANG, "lock", manager.try_lock(unique_name("tls-chain")))
        .await
        .unwrap_err();
    let first: &(dyn std::error::Error + 'static) = &err;
    let levels: Vec<_> = std::iter::successors(Some(first), |l| l.source()).collect();
    assert!(
        matches!(
            levels[1].downcast_ref::<NodeError>(),
            Some(NodeError::Tls(_))
        ),
        "{levels:?}"
    );
    assert!(levels[2].is::<redis::RedisError>(), "{levels:?}");
    assert!(
        levels[2..]
            .iter()
            .any(|l| l.to_string().to_lowercase().contains("unknownissuer")),
        "a level below the NodeError names rustls's verdict: {levels:?}"
    );
}

/// C17 (c): the server's certificate is signed by a CA the client does not trust. The
/// acquire fails fast with `NodeError::Tls` naming the certificate problem (unknown
/// issuer); nothing is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c17c_unknown_ca_fails_fast_with_the_certificate_cause() {
    let master = TlsMaster::start(TlsOptions::default());
    let manager = tls_builder([master.url()])
        .tls_root_certificate(unknown_ca_pem())
        .build()
        .unwrap();
    let (cause, shown) = single_master_failure(&manager).await;
    match &cause {
        NodeError::Tls(m) => {
            let lower = m.to_lowercase();
            assert!(
                lower.contains("certificate") && lower.contains("unknownissuer"),
                "the cause must name the certificate problem: {m}"
            );
        }
        other => panic!("expected NodeError::Tls, got {other:?}: {shown}"),
    }
    assert!(
        shown.contains("UnknownIssuer"),
        "the rendered error keeps it: {shown}"
    );
    assert_eq!(master.dbsize(), 0, "no key written");
}

/// C17 (c), default trust: without `tls_root_certificate` the system roots apply, and they
/// do not know the test CA either: same typed, fast TLS failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c17c_system_roots_do_not_trust_the_test_ca() {
    let master = TlsMaster::start(TlsOptions::default());
    let manager = tls_builder([master.url()]).build().unwrap();
    let (cause, shown) = single_master_failure(&manager).await;
    assert!(
        matches!(cause, NodeError::Tls(_)),
        "expected NodeError::Tls, got {cause:?}: {shown}"
    );
    assert_eq!(master.dbsize(), 0, "no key written");
}

// ---------------------------------------------------------------------------------------
// Certificates of the trusted CA that must not verify
// ---------------------------------------------------------------------------------------

/// A certificate of the trusted CA for another name (the client dials 127.0.0.1, the
/// certificate names only `redis.example.invalid`) and an expired one (valid from 2020 to
/// 2021) both fail the handshake fast with a typed `Tls` error naming the cause; nothing is
/// written. With `danger_accept_invalid_certificates` both connect and lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_name_and_expired_certificates_are_typed_tls_failures() {
    for (certificate, cause) in [
        (ServerCertificate::OtherName, "name"),
        (ServerCertificate::Expired, "expired"),
    ] {
        let master = TlsMaster::start(TlsOptions {
            certificate,
            ..TlsOptions::default()
        });
        let manager = tls_builder([master.url()])
            .tls_root_certificate(master.ca_pem())
            .build()
            .unwrap();
        let (failure, shown) = single_master_failure(&manager).await;
        match &failure {
            NodeError::Tls(m) => {
                let m = m.to_lowercase();
                assert!(
                    m.contains(cause) || m.contains("notvalid"),
                    "{cause}: the cause must name the certificate problem: {m}"
                );
            }
            other => panic!("{cause}: expected NodeError::Tls, got {other:?}: {shown}"),
        }
        assert_eq!(master.dbsize(), 0, "{cause}: no key written");

        let insecure = tls_builder([master.url()])
            .danger_accept_invalid_certificates(true)
            .build()
            .unwrap();
        lock_extend_unlock(&insecure, &[&master], &unique_name("tls-insecure")).await;
    }
}

// ---------------------------------------------------------------------------------------
// Passwords over TLS
// ---------------------------------------------------------------------------------------

/// `--requirepass` over TLS: the right password works; a wrong or missing one is a fast,
/// typed `Auth` failure, and the password appears in no message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_over_tls_right_works_wrong_is_auth_without_the_password() {
    let master = TlsMaster::start(TlsOptions {
        password: Some(PASSWORD.to_owned()),
        ..TlsOptions::default()
    });
    let port = master.port();

    let right = tls_builder([format!("rediss://:{PASSWORD}@127.0.0.1:{port}")])
        .tls_root_certificate(master.ca_pem())
        .build()
        .unwrap();
    assert!(!format!("{right:?}").contains(PASSWORD));
    lock_extend_unlock(&right, &[&master], &unique_name("tls-pw")).await;

    for url in [
        format!("rediss://:{WRONG_PASSWORD}@127.0.0.1:{port}"),
        format!("rediss://127.0.0.1:{port}"),
    ] {
        let manager = tls_builder([url])
            .tls_root_certificate(master.ca_pem())
            .build()
            .unwrap();
        let (cause, shown) = single_master_failure(&manager).await;
        assert!(matches!(cause, NodeError::Auth(_)), "{cause:?}: {shown}");
        assert!(cause.is_permanent());
        for secret in [PASSWORD, WRONG_PASSWORD] {
            assert!(!shown.contains(secret), "secret leaked: {shown}");
            assert!(!format!("{cause}\n{cause:?}").contains(secret));
            assert!(!format!("{manager:?}").contains(secret));
        }
        assert_eq!(master.dbsize(), 0, "no key written");
    }
}

// ---------------------------------------------------------------------------------------
// A Sentinel group over TLS (`rediss+sentinel://`)
// ---------------------------------------------------------------------------------------

/// A TLS Sentinel set (data servers and sentinels TLS-only, replication and the sentinels'
/// links over TLS) and a manager over it trusting the test CA.
fn tls_sentinel_manager(set: &TlsSentinelSet) -> LockManager {
    tls_builder([set.url()])
        .tls_root_certificate(set.initial_master().ca_pem())
        .build()
        .unwrap()
}

/// `rediss+sentinel://` with the test CA: the builder's TLS settings reach the sentinels and
/// the master they name. Lock, extend and unlock work, the key lives on the TLS master; the
/// failover watch subscribes (over TLS) on first use and is gone after `close()` — and after
/// a drop without `close()`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_group_over_tls_locks_and_its_watch_stops_at_close() {
    let set = TlsSentinelSet::launch();
    let url = set.url();
    assert!(
        url.starts_with("rediss+sentinel://127.0.0.1:")
            && url.ends_with("/mymaster")
            && url.matches(',').count() == 2,
        "{url}"
    );
    // TLS only: a plaintext client is dropped by the sentinels and by the master.
    let ports = set.sentinels().iter().map(|s| s.port());
    for port in ports.chain([set.initial_master().port()]) {
        let plain = redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
        let reply = plain
            .get_connection_with_timeout(ms(1_000))
            .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c));
        assert!(reply.is_err(), "plaintext answered on {port}: {reply:?}");
    }
    let master = set.current_master();
    assert_eq!(master.port(), set.initial_master().port());
    assert_eq!(set.subscribed_clients(), 0);

    let manager = tls_sentinel_manager(&set);
    assert_eq!(manager.quorum(), 1);
    lock_extend_unlock(&manager, &[master], &unique_name("tls-sentinel")).await;
    assert!(
        eventually(ms(5_000), || set.subscribed_clients() == 3).await,
        "one watch subscription over TLS after first use, got {}",
        set.subscribed_clients()
    );
    watchdog("close", manager.close()).await;
    assert!(
        eventually(ms(5_000), || set.subscribed_clients() == 0).await,
        "the watch outlived close(): {} subscription(s) left",
        set.subscribed_clients()
    );

    let dropped = tls_sentinel_manager(&set);
    lock_extend_unlock(&dropped, &[master], &unique_name("tls-sentinel-drop")).await;
    assert!(eventually(ms(5_000), || set.subscribed_clients() == 3).await);
    drop(dropped);
    assert!(
        eventually(ms(5_000), || set.subscribed_clients() == 0).await,
        "the watch outlived the dropped manager: {} subscription(s) left",
        set.subscribed_clients()
    );
}

/// Without the test CA (the system roots apply) the sentinels' certificates do not verify:
/// the acquire fails fast as `NodeError::Tls` naming the unknown issuer, nothing is written,
/// and `close()` returns promptly with no subscription left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_group_over_tls_with_system_roots_fails_fast_as_tls() {
    let set = TlsSentinelSet::launch();
    let manager = tls_builder([set.url()]).build().unwrap();
    let (cause, shown) = single_master_failure(&manager).await;
    match &cause {
        NodeError::Tls(m) => assert!(
            m.to_lowercase().contains("unknownissuer"),
            "the cause must name the certificate problem: {m}"
        ),
        other => panic!("expected NodeError::Tls, got {other:?}: {shown}"),
    }
    for server in set.servers() {
        assert_eq!(server.dbsize(), 0, "no key written");
    }
    within(ms(3_000), "close", manager.close()).await;
    assert_eq!(set.subscribed_clients(), 0);
}

/// A forced failover (`SENTINEL FAILOVER` over TLS) while a manager is connected and its
/// watch subscribed over TLS: the former master is kept from being demoted (it goes on
/// answering as a writable master), so only the watch can move the manager — and its next
/// locks all land on the new master.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_group_over_tls_follows_a_forced_failover() {
    let set = TlsSentinelSet::launch();
    let old = set.initial_master();
    let new = set.initial_replica();
    let m = tls_sentinel_manager(&set);
    let mut lock = watchdog("first lock", m.try_lock(unique_name("warm")))
        .await
        .unwrap_or_else(|e| panic!("{}", render(&e)));
    assert!(old.holds(lock.resource(), lock.token()));
    m.unlock(&mut lock).await.unwrap();
    assert!(
        eventually(ms(5_000), || set.sentinels()[0].subscribed_clients() == 1).await,
        "the failover watch did not subscribe on the first sentinel"
    );
    // Sentinels cannot demote it (REPLICAOF/SLAVEOF refused for the default user).
    old.cmd(&["ACL", "SETUSER", "default", "-replicaof", "-slaveof"]);

    assert_eq!(tokio::task::block_in_place(|| set.failover()), new.port());

    for i in 0..3 {
        let resource = unique_name("after");
        let mut lock = watchdog("lock after failover", m.try_lock(&resource))
            .await
            .unwrap_or_else(|e| panic!("lock {i} after the failover: {}", render(&e)));
        assert!(
            new.holds(resource.as_bytes(), lock.token()),
            "lock {i} is not on the new master"
        );
        assert!(
            !old.holds(resource.as_bytes(), lock.token()),
            "lock {i} landed on the former master"
        );
        m.unlock(&mut lock).await.unwrap();
    }
    assert_eq!(role(old), "master", "the old master was demoted anyway");
    watchdog("close", m.close()).await;
}

// ---------------------------------------------------------------------------------------
// A Redis Cluster over TLS (`rediss+cluster://`)
// ---------------------------------------------------------------------------------------

/// A Redis Cluster over TLS only: three TLS-only masters (no plaintext port), the cluster bus
/// over TLS (`tls-cluster yes`), each announcing its TLS port. Through `rediss+cluster://`
/// with the test CA, the member learns the layout over TLS; lock, extend, a refused second
/// lock and unlock on keys in twelve slots land on each slot's master (fencing counter
/// beside the key), fencing tokens grow, a waiter wakes on the sharded release, and nothing
/// is left. With the system roots only, the same member fails fast as `NodeError::Tls`
/// naming the unknown issuer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_member_over_tls_locks_keys_in_many_slots() {
    let cluster = TlsCluster::start(3);
    let url = cluster.url();
    assert!(
        url.starts_with("rediss+cluster://127.0.0.1:") && url.matches(',').count() == 2,
        "{url}"
    );
    // TLS only: a plaintext client is dropped by every node.
    for node in &cluster.nodes {
        let plain = redis::Client::open(node.plain_url()).unwrap();
        let reply = plain
            .get_connection_with_timeout(ms(1_000))
            .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c));
        assert!(
            reply.is_err(),
            "plaintext answered on {}: {reply:?}",
            node.port()
        );
    }
    let manager = tls_builder([url.clone()])
        .tls_root_certificate(cluster.nodes[0].ca_pem())
        .retry_count(20)
        .retry_delay(ms(50))
        .fencing(true)
        .build()
        .unwrap();
    assert_eq!(manager.quorum(), 1, "one cluster is one member");

    let keys = cluster.keys_in_many_slots("tls-cluster-", 12);
    let owners: std::collections::HashSet<u16> = keys
        .iter()
        .map(|k| cluster.server_of(k.as_bytes()).port())
        .collect();
    assert_eq!(owners.len(), 3, "the keys cover every master");
    for key in &keys {
        let server = cluster.server_of(key.as_bytes());
        let mut lock = watchdog("lock", manager.lock(key.as_str()).ttl(ms(5_000)))
            .await
            .unwrap_or_else(|e| panic!("lock {key} over TLS: {}", render(&e)));
        let fence = lock.fencing_token().expect("fencing is on");
        let fence_key = format!("{{{key}}}:fence");
        assert!(
            server.holds(key.as_bytes(), lock.token()),
            "{key} on its slot's master"
        );
        let pttl = server.pttl(key.as_bytes());
        assert!(0 < pttl && pttl <= 5_000, "{key}: PTTL {pttl}");
        assert!(
            server.get(fence_key.as_bytes()).is_some(),
            "{fence_key} beside {key}"
        );
        watchdog("extend", manager.extend(&mut lock, ms(20_000)))
            .await
            .unwrap_or_else(|e| panic!("extend {key} over TLS: {}", render(&e)));
        assert!(server.pttl(key.as_bytes()) > 5_000, "{key} extended");
        let refused = watchdog("try_lock", manager.try_lock(key.as_str()))
            .await
            .unwrap_err();
        assert!(refused.is_conflict(), "{}", render(&refused));
        watchdog("unlock", manager.unlock(&mut lock))
            .await
            .unwrap_or_else(|e| panic!("unlock {key} over TLS: {}", render(&e)));
        assert_eq!(server.get(key.as_bytes()), None, "{key} released");
        let mut again = watchdog("lock again", manager.lock(key.as_str()))
            .await
            .unwrap_or_else(|e| panic!("lock {key} again: {}", render(&e)));
        assert!(
            again.fencing_token().expect("fencing") > fence,
            "{key}: fencing tokens grow"
        );
        manager.unlock(&mut again).await.expect("unlock again");
    }

    // A waiter on another manager wakes on the holder's release (sharded pub/sub over TLS)
    // long before its 5 s retry delay.
    let waiter = tls_builder([url.clone()])
        .tls_root_certificate(cluster.nodes[0].ca_pem())
        .retry_delay(Duration::from_secs(5))
        .retry_jitter(ms(0))
        .build()
        .unwrap();
    let key = keys[0].clone();
    let mut held = manager.lock(key.as_str()).ttl(ms(30_000)).await.unwrap();
    let wait = {
        let (waiter, key) = (waiter.clone(), key.clone());
        tokio::spawn(async move {
            waiter
                .lock(key.as_str())
                .wait(Duration::from_secs(20))
                .await
        })
    };
    let owner = cluster.server_of(key.as_bytes());
    let channel = tokio_redlock::sharded_release_channel(key.as_bytes());
    let subscribed = eventually(ms(5_000), || {
        matches!(
            owner.cmd_bytes(&[b"PUBSUB", b"SHARDNUMSUB", &channel]),
            redis::Value::Array(ref items) if items.get(1) == Some(&redis::Value::Int(1))
        )
    })
    .await;
    assert!(subscribed, "SSUBSCRIBE over TLS on the slot's master");
    tokio::time::sleep(ms(200)).await;
    let released = Instant::now();
    manager.unlock(&mut held).await.unwrap();
    let mut taken = within(ms(10_000), "waiter", wait)
        .await
        .expect("task")
        .unwrap_or_else(|e| panic!("waiter: {}", render(&e)));
    let handoff = released.elapsed();
    assert!(handoff < ms(2_500), "hand-off took {handoff:?}");
    waiter.unlock(&mut taken).await.unwrap();
    watchdog("close", waiter.close()).await;
    watchdog("close", manager.close()).await;
    settle(&manager).await;
    // Only the fencing counters (which never expire, by design) are left.
    for node in &cluster.nodes {
        let redis::Value::Array(left) = node.cmd(&["KEYS", "*"]) else {
            panic!("unexpected KEYS reply");
        };
        for key in left {
            let redis::Value::BulkString(key) = key else {
                panic!("unexpected key {key:?}");
            };
            let key = String::from_utf8_lossy(&key);
            assert!(key.ends_with(":fence"), "{key} left on {}", node.port());
        }
    }

    // The system roots do not trust the test CA: the layout lookup fails as TLS, fast.
    let untrusting = tls_builder([url]).build().unwrap();
    let (cause, shown) = single_master_failure(&untrusting).await;
    match &cause {
        NodeError::Tls(m) => assert!(
            m.to_lowercase().contains("unknownissuer"),
            "the cause must name the certificate problem: {m}"
        ),
        other => panic!("expected NodeError::Tls, got {other:?}: {shown}"),
    }
    watchdog("close", untrusting.close()).await;
}
