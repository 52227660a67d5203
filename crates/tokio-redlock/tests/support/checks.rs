//! Helpers and checks shared by the integration tests: durations, managers, watchdogs, and
//! assertions over the keys on several masters.

use std::future::IntoFuture;
use std::time::Duration;

use tokio_redlock::{LockError, LockManager, LockManagerBuilder, NodeError};

use super::eventually;
use super::proxy::FaultProxy;
use super::servers::{Masters, RedisServer};

/// The library's release script, byte for byte (its SHA is what the library sends).
pub const RELEASE_SCRIPT: &str = include_str!("../../src/scripts/release.lua");

/// A per-master budget generous enough for a loaded CI box.
pub const RELAXED: Duration = Duration::from_millis(500);

/// Outer watchdog of every operation that could hang.
pub const WATCHDOG: Duration = Duration::from_secs(5);

/// `n` milliseconds.
pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Whole milliseconds of `d`, signed, to compare with a PTTL.
pub fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap()
}

/// The drift the library subtracts with the default drift factor 0.01: `ttl × 0.01 + 2 ms`.
pub fn drift(ttl: Duration) -> Duration {
    ttl.mul_f64(0.01) + ms(2)
}

/// A builder over `urls`, everything else at its default.
pub fn builder(urls: &[String]) -> LockManagerBuilder {
    LockManager::builder().servers(urls.iter().cloned())
}

/// A manager over `urls` with the per-master budget `node_timeout`.
pub fn manager(urls: impl IntoIterator<Item = String>, node_timeout: Duration) -> LockManager {
    LockManager::builder()
        .servers(urls)
        .node_timeout(node_timeout)
        .build()
        .expect("valid configuration")
}

/// One fault proxy in front of each master, in the masters' order.
pub async fn proxies_for(masters: &Masters) -> Vec<FaultProxy> {
    let mut proxies = Vec::with_capacity(masters.len());
    for addr in masters.addrs() {
        proxies.push(FaultProxy::start(addr).await);
    }
    proxies
}

/// Renders an error both ways (a panic in either fails the test) and returns the text.
pub fn render(e: &LockError) -> String {
    let shown = format!("{e}\n{e:?}");
    assert!(!shown.is_empty());
    shown
}

/// Whether a master's failure says it is a replica: `ReadOnly` (a write refused by a
/// read-only replica) or `NotMaster` (`ROLE` answered `slave`).
pub fn is_replica_failure(e: &NodeError) -> bool {
    matches!(e, NodeError::ReadOnly(_) | NodeError::NotMaster(_))
}

/// Runs `fut` under the outer [`WATCHDOG`]; a hang fails the test.
pub async fn watchdog<T>(what: &str, fut: impl IntoFuture<Output = T>) -> T {
    within(WATCHDOG, what, fut).await
}

/// Runs `fut` with a time limit; a hang fails the test.
pub async fn within<T>(limit: Duration, what: &str, fut: impl IntoFuture<Output = T>) -> T {
    tokio::time::timeout(limit, fut)
        .await
        .unwrap_or_else(|_| panic!("{what} hung for {limit:?}"))
}

/// Waits up to 3 s until the manager has no background task left (cleanup and stragglers
/// done).
pub async fn settle(manager: &LockManager) {
    settle_within(manager, ms(3_000)).await;
}

/// Waits up to `limit` until the manager has no background task left.
pub async fn settle_within(manager: &LockManager, limit: Duration) {
    assert!(
        eventually(limit, || manager.background_tasks() == 0).await,
        "{} background tasks still running after {limit:?}",
        manager.background_tasks()
    );
}

/// Waits up to 3 s until every server holds `token` under `key`: `lock` returns once a quorum
/// granted, and the request to a slower master may still be landing.
pub async fn held_everywhere<'a>(
    servers: impl IntoIterator<Item = &'a RedisServer> + Clone,
    key: &[u8],
    token: impl AsRef<[u8]>,
) {
    held_everywhere_within(ms(3_000), servers, key, token).await;
}

/// Like [`held_everywhere`], waiting up to `limit`.
pub async fn held_everywhere_within<'a>(
    limit: Duration,
    servers: impl IntoIterator<Item = &'a RedisServer> + Clone,
    key: &[u8],
    token: impl AsRef<[u8]>,
) {
    let token = token.as_ref();
    let held = eventually(limit, || {
        servers.clone().into_iter().all(|s| s.holds(key, token))
    })
    .await;
    assert!(
        held,
        "every master must hold the token under `{}` (waited {limit:?})",
        String::from_utf8_lossy(key)
    );
}

/// Redis-side check: no key on `servers` lacks a TTL (`PTTL` ≠ -1).
pub fn assert_no_key_without_ttl<'a>(servers: impl IntoIterator<Item = &'a RedisServer>) {
    for server in servers {
        assert_no_key_without_ttl_on(server, &server.url());
    }
}

/// [`assert_no_key_without_ttl`] on one server, named `which` in the failure message.
pub fn assert_no_key_without_ttl_on(server: &RedisServer, which: &str) {
    for (key, pttl) in server.keys_with_pttl() {
        assert_ne!(pttl, -1, "key {key:?} on {which} has no TTL");
    }
}

/// One `GET key` answer seen by a [`spawn_poller`] thread.
pub struct Observation {
    pub at: Duration,
    pub node: usize,
    pub value: Option<Vec<u8>>,
}

/// Polls `GET key` on every master directly (not through any proxy) every `every` until
/// `until` after `t0`. Connections are opened before it returns, so polling starts at once.
pub fn spawn_poller(
    masters: &Masters,
    key: &'static str,
    t0: std::time::Instant,
    until: Duration,
    every: Duration,
) -> std::thread::JoinHandle<Vec<Observation>> {
    let mut conns: Vec<redis::Connection> = masters
        .urls()
        .iter()
        .map(|url| {
            redis::Client::open(url.as_str())
                .unwrap()
                .get_connection_with_timeout(Duration::from_secs(2))
                .unwrap()
        })
        .collect();
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        while t0.elapsed() < until {
            for (node, conn) in conns.iter_mut().enumerate() {
                let value: Option<Vec<u8>> = redis::cmd("GET").arg(key).query(conn).unwrap();
                seen.push(Observation {
                    at: t0.elapsed(),
                    node,
                    value,
                });
            }
            std::thread::sleep(every);
        }
        seen
    })
}

/// Waits up to 3 s until master `index` answers the manager again (after a restart the
/// manager's connector reconnects in the background, with backoff of at most 1 s).
pub async fn reachable_again(manager: &LockManager, index: usize) {
    let deadline = tokio::time::Instant::now() + ms(3_000);
    loop {
        let states = manager.inspect("reachable-probe").await.unwrap();
        if !matches!(states[index].state, tokio_redlock::KeyState::Failed(_)) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "master {index} not reachable again within 3 s: {:?}",
            states[index].state
        );
        tokio::time::sleep(ms(20)).await;
    }
}

/// The two forms of a value no lock writes that the foreign-value tests plant: a hash (another
/// type) and a plain string, both without a TTL.
pub const FOREIGN_FORMS: [&str; 2] = ["hash", "string"];

/// Writes, on every master, a value of `form` (one of [`FOREIGN_FORMS`]) at `key`, without a
/// TTL: what another application, or someone at `redis-cli`, might leave there.
pub fn plant_foreign(masters: &Masters, key: &str, form: &str) {
    for m in masters.iter() {
        if form == "hash" {
            m.cmd(&["HSET", key, "owner", "billing"]);
        } else {
            m.cmd(&["SET", key, "someone-else"]);
        }
    }
}

/// Checks that the value planted at `key` is still there without a TTL on every master (the
/// library changed nothing), and removes it.
pub fn remove_foreign(masters: &Masters, key: &str) {
    for m in masters.iter() {
        assert_eq!(m.pttl(key.as_bytes()), -1, "{key}: left as it was");
        m.cmd(&["DEL", key]);
    }
}
