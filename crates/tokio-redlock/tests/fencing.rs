//! Fencing tokens against real masters (issue 5, SPEC §6): drifted counters, a paused holder
//! fenced off by a fenced register (and the lost update without fencing), contention across a
//! master restart with AOF `always`, counter key placement, extension and release, the
//! `FencingContention` error, and the latency cost of fencing.
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

use std::future::IntoFuture;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::{
    checks::{builder, ms, proxies_for, render, settle_within, watchdog, within},
    eventually,
    proxy::FaultProxy,
    servers::{Masters, Persistence, RedisServer, ServerOptions},
    unique_name,
};
use tokio::task::JoinSet;
use tokio_redlock::{LockError, LockManager, NodeError, NodeStatus};

/// The tests of this file run one at a time: the contention run and the latency figures are
/// CPU-bound on a 2-core box and would disturb each other.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The counter key of `resource` with no key prefix and no hash tag: `{resource}:fence`.
fn fence_key(resource: &str) -> String {
    format!("{{{resource}}}:fence")
}

/// The counter under `key` on `server` (0 when missing).
fn counter(server: &RedisServer, key: &str) -> u64 {
    server.get(key.as_bytes()).map_or(0, |v| {
        String::from_utf8(v)
            .unwrap()
            .parse()
            .expect("counter is an integer")
    })
}

fn counters(masters: &Masters, key: &str) -> Vec<u64> {
    masters.iter().map(|s| counter(s, key)).collect()
}

/// A manager with fencing on over `urls`, generous per-master budget.
fn fenced(urls: &[String]) -> LockManager {
    builder(urls)
        .fencing(true)
        .node_timeout(ms(500))
        .build()
        .unwrap()
}

/// Asserts that no counter went down between two snapshots.
fn assert_not_lowered(before: &[u64], after: &[u64], when: &str) {
    for (i, (b, a)) in before.iter().zip(after).enumerate() {
        assert!(
            a >= b,
            "{when}: counter on master {i} went down from {b} to {a}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Drifted counters
// ---------------------------------------------------------------------------------------

/// Counters pre-seeded to disagree, `[0, 0, 5]` (as if five partial acquisitions had each
/// reached only master 3). The first acquisition decides after the first two grants:
/// - masters 1 and 2 first: both return 1, a quorum agrees, the fast path issues **1**;
/// - master 3 among the first two: values 1 and 6 disagree, the slow path proposes
///   1 + max(1, 6) = 7 and raises every counter to it, issuing **7**.
///
/// Both are legal: there is no earlier token, both values were written by this owner on a
/// majority, and every later token must (and does) exceed it. From then on tokens strictly
/// increase over 50 sequential acquisitions, and no counter ever decreases.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drifted_counters_tokens_strictly_increase() {
    let _serial = SERIAL.lock().await;
    let masters = Masters::start(3);
    let manager = fenced(&masters.urls());
    let resource = unique_name("drifted");
    let key = fence_key(&resource);
    for (server, seed) in masters.iter().zip(["0", "0", "5"]) {
        server.cmd(&["SET", &key, seed]);
    }
    let mut last = counters(&masters, &key);
    let mut tokens = Vec::new();
    for i in 0..50 {
        let mut lock = watchdog("lock", manager.lock(&resource)).await.unwrap();
        let token = lock.fencing_token().expect("fencing is on").get();
        let now = counters(&masters, &key);
        assert_not_lowered(&last, &now, &format!("acquisition {i}"));
        // Issued only once written on a majority.
        let at_least = now.iter().filter(|c| **c >= token).count();
        assert!(at_least >= 2, "token {token} not on a majority: {now:?}");
        watchdog("unlock", manager.unlock(&mut lock)).await.unwrap();
        let after = counters(&masters, &key);
        assert_not_lowered(&now, &after, &format!("release {i}"));
        last = after;
        tokens.push(token);
    }
    println!("tokens from [0, 0, 5]: {tokens:?}");
    assert!(
        tokens[0] == 1 || tokens[0] == 7,
        "first token must be 1 (fast path) or 7 (slow path), got {}",
        tokens[0]
    );
    for pair in tokens.windows(2) {
        assert!(pair[1] > pair[0], "tokens not increasing: {tokens:?}");
    }
    // Counters never expire.
    for server in masters.iter() {
        assert_eq!(
            server.pttl(key.as_bytes()),
            -1,
            "the counter must not expire"
        );
    }
    manager.close().await;
}

// ---------------------------------------------------------------------------------------
// A paused holder and a register
// ---------------------------------------------------------------------------------------

/// The protected resource: a register written by lock holders.
trait Register: Send {
    /// Writes `value` with `token`; whether the write was accepted.
    fn write(&mut self, token: u64, value: &str) -> bool;
    fn value(&self) -> Option<String>;
}

/// Accepts a write only if its token is ≥ the largest seen (the resource-side check the
/// library documents, e.g. `UPDATE … WHERE fence <= $token`).
#[derive(Default)]
struct FencedRegister {
    value: Option<String>,
    max_seen: u64,
    accepted: Vec<(u64, String)>,
    rejected: Vec<(u64, String)>,
}

impl Register for FencedRegister {
    fn write(&mut self, token: u64, value: &str) -> bool {
        if token < self.max_seen {
            self.rejected.push((token, value.to_owned()));
            return false;
        }
        self.max_seen = token;
        self.value = Some(value.to_owned());
        self.accepted.push((token, value.to_owned()));
        true
    }

    fn value(&self) -> Option<String> {
        self.value.clone()
    }
}

/// No token check: the last write wins.
#[derive(Default)]
struct PlainRegister {
    value: Option<String>,
}

impl Register for PlainRegister {
    fn write(&mut self, _token: u64, value: &str) -> bool {
        self.value = Some(value.to_owned());
        true
    }

    fn value(&self) -> Option<String> {
        self.value.clone()
    }
}

/// What the paused-holder scenario produced.
struct PauseOutcome {
    token_a: u64,
    token_b: u64,
    a_accepted: bool,
    b_accepted: bool,
}

/// Client A (its own runtime on its own thread) acquires with a 400 ms TTL, checks its lock
/// is valid, and is then paused — the whole thread blocked by `std::thread::sleep`, as by a
/// GC pause or SIGSTOP — past its TTL and until B has written. Client B acquires once A's
/// keys expired and writes "B"; then A resumes and writes "A" with its stale token.
async fn paused_holder_scenario<R: Register + 'static>(register: Arc<Mutex<R>>) -> PauseOutcome {
    let masters = Masters::start(3);
    let urls = masters.urls();
    let resource = unique_name("paused");
    let ttl = ms(400);
    let (token_tx, token_rx) = tokio::sync::oneshot::channel::<u64>();
    let (b_wrote_tx, b_wrote_rx) = std::sync::mpsc::channel::<()>();
    let a_register = Arc::clone(&register);
    let (a_urls, a_resource) = (urls.clone(), resource.clone());
    let client_a = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let manager = fenced(&a_urls);
        let lock = rt
            .block_on(manager.lock(&a_resource).ttl(ttl).into_future())
            .expect("A acquires");
        let token = lock.fencing_token().unwrap().get();
        assert!(lock.is_valid(), "A checks its lock before writing");
        token_tx.send(token).unwrap();
        // The pause: nothing of A runs, not even its runtime.
        std::thread::sleep(ttl + ms(200));
        assert!(!lock.is_valid(), "A's lease ran out during the pause");
        b_wrote_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("B writes while A is paused");
        // A resumes mid-operation, unaware, and writes with its token.
        let accepted = a_register.lock().unwrap().write(token, "A");
        rt.block_on(manager.close());
        (token, accepted)
    });
    let token_a = within(ms(5_000), "A's token", token_rx).await.unwrap();
    // B begins its acquisition after A's token was issued.
    let manager_b = builder(&urls)
        .fencing(true)
        .node_timeout(ms(500))
        .retry_count(100)
        .retry_delay(ms(40))
        .retry_jitter(ms(20))
        .build()
        .unwrap();
    let mut lock_b = watchdog("B's lock", manager_b.lock(&resource))
        .await
        .expect("B acquires once A's keys expired");
    let token_b = lock_b.fencing_token().unwrap().get();
    let b_accepted = register.lock().unwrap().write(token_b, "B");
    b_wrote_tx.send(()).unwrap();
    let (token_a2, a_accepted) = tokio::task::spawn_blocking(move || client_a.join().unwrap())
        .await
        .unwrap();
    assert_eq!(token_a, token_a2);
    watchdog("B's unlock", manager_b.unlock(&mut lock_b))
        .await
        .unwrap();
    manager_b.close().await;
    drop(masters);
    PauseOutcome {
        token_a,
        token_b,
        a_accepted,
        b_accepted,
    }
}

/// A holder paused past its lease writes after the next holder: the fenced register rejects
/// the stale write and keeps the new holder's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_holder_write_is_rejected_by_fenced_register() {
    let _serial = SERIAL.lock().await;
    let register = Arc::new(Mutex::new(FencedRegister::default()));
    let out = paused_holder_scenario(Arc::clone(&register)).await;
    let reg = register.lock().unwrap();
    assert!(
        out.token_b > out.token_a,
        "B began after A's token was issued: {} must exceed {}",
        out.token_b,
        out.token_a
    );
    assert!(out.b_accepted, "the new holder's write is accepted");
    assert!(!out.a_accepted, "the stale holder's write is rejected");
    assert_eq!(reg.accepted, vec![(out.token_b, "B".to_owned())]);
    assert_eq!(reg.rejected, vec![(out.token_a, "A".to_owned())]);
    assert_eq!(reg.value().as_deref(), Some("B"));
}

/// The same run against a register that does not check tokens: the stale write lands after
/// the new holder's and overwrites it — the lost update fencing exists to prevent, so the
/// register check above is shown able to fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfenced_register_loses_the_new_holders_update() {
    let _serial = SERIAL.lock().await;
    let register = Arc::new(Mutex::new(PlainRegister::default()));
    let out = paused_holder_scenario(Arc::clone(&register)).await;
    assert!(out.token_b > out.token_a);
    assert!(out.a_accepted && out.b_accepted);
    assert_eq!(
        register.lock().unwrap().value().as_deref(),
        Some("A"),
        "without the token check the stale holder's write overwrites the new holder's"
    );
}

// ---------------------------------------------------------------------------------------
// Contention across a master restart (AOF always)
// ---------------------------------------------------------------------------------------

/// One grant: its token and critical section (std `Instant`s: one monotonic clock for all).
#[derive(Clone, Copy, Debug)]
struct Grant {
    client: usize,
    token: u64,
    enter: Instant,
    exit: Instant,
    valid_at_exit: bool,
}

/// 5 masters with `appendfsync always`, 8 clients (each its own manager with fencing) on one
/// resource for ~5 s; master 5 (a minority) is SIGKILLed at ~1.5 s and restarted on its port
/// at ~3 s with its AOF. Sorted by the instant each lock was returned, the critical sections
/// do not overlap (so that order is the real-time order of the grants) and the tokens are
/// unique and strictly increasing across the whole history, restart included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contending_clients_tokens_increase_across_master_restart() {
    let _serial = SERIAL.lock().await;
    let mut masters = Masters::start_with(5, ServerOptions::persistence(Persistence::AofAlways));
    let urls = masters.urls();
    let resource = unique_name("contended");
    let key = fence_key(&resource);
    let run = Duration::from_secs(5);
    let start = Instant::now();
    let stop = start + run;

    let mut victim = masters.0.pop().unwrap();
    let victim_key = key.clone();
    let fault = tokio::task::spawn_blocking(move || {
        std::thread::sleep(ms(1_500));
        let before = counter(&victim, &victim_key);
        let killed = Instant::now();
        victim.kill();
        std::thread::sleep(ms(1_500));
        victim.restart();
        let restarted = Instant::now();
        let after = counter(&victim, &victim_key);
        (victim, before, after, killed, restarted)
    });

    let mut clients = JoinSet::new();
    for client in 0..8 {
        let manager = builder(&urls)
            .fencing(true)
            .ttl(ms(3_000))
            .node_timeout(ms(500))
            .retry_count(1_000)
            .retry_delay(ms(10))
            .retry_jitter(ms(8))
            .build()
            .unwrap();
        let resource = resource.clone();
        clients.spawn(async move {
            let mut grants = Vec::new();
            let mut errors = Vec::new();
            while Instant::now() < stop {
                match manager.lock(&resource).await {
                    Ok(mut lock) => {
                        let enter = Instant::now();
                        let token = lock.fencing_token().expect("fencing is on").get();
                        tokio::time::sleep(ms(2)).await;
                        let valid_at_exit = lock.is_valid();
                        let exit = Instant::now();
                        grants.push(Grant {
                            client,
                            token,
                            enter,
                            exit,
                            valid_at_exit,
                        });
                        if let Err(e) = manager.unlock(&mut lock).await {
                            errors.push(format!("unlock: {e}"));
                        }
                    }
                    Err(e) => errors.push(format!("lock: {e}")),
                }
            }
            manager.close().await;
            (grants, errors)
        });
    }
    let mut grants = Vec::new();
    let mut errors = Vec::new();
    while let Some(joined) = within(run + ms(20_000), "clients", clients.join_next()).await {
        let (g, e) = joined.unwrap();
        grants.extend(g);
        errors.extend(e);
    }
    let (victim, before_kill, after_restart, killed, restarted) = fault.await.unwrap();
    masters.0.push(victim);

    grants.sort_by_key(|g| g.enter);
    println!(
        "{} grants by 8 clients in {:?}; {} errors (first: {:?}); victim counter {before_kill} \
         before kill, {after_restart} after restart",
        grants.len(),
        start.elapsed(),
        errors.len(),
        errors.first()
    );
    assert!(
        after_restart >= before_kill,
        "AOF always must keep the counter: {before_kill} before the kill, {after_restart} after"
    );
    let during = |from: Instant, to: Instant| {
        grants
            .iter()
            .filter(|g| g.enter >= from && g.enter < to)
            .count()
    };
    let (pre, down, post) = (
        during(start, killed),
        during(killed, restarted),
        during(restarted, stop + run),
    );
    println!("grants before the kill {pre}, while down {down}, after the restart {post}");
    assert!(
        pre > 0 && down > 0 && post > 0,
        "the history must span the fault"
    );
    for g in &grants {
        assert!(
            g.valid_at_exit,
            "client {} left its critical section after its deadline: {g:?}",
            g.client
        );
    }
    for pair in grants.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        assert!(
            b.enter >= a.exit,
            "critical sections overlap: {a:?} and {b:?}"
        );
        assert!(
            b.token > a.token,
            "tokens must increase in acquisition order: {} (client {}) then {} (client {})",
            a.token,
            a.client,
            b.token,
            b.client
        );
    }
    // The largest token is on a majority of the counters.
    let last = grants.last().unwrap().token;
    let finals = counters(&masters, &key);
    assert!(
        finals.iter().filter(|c| **c >= last).count() >= 3,
        "token {last} not on a majority: {finals:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Extension, release, fencing off, key placement
// ---------------------------------------------------------------------------------------

/// Extending keeps the token (and touches no counter); releasing lowers no counter; the next
/// acquisition gets a larger token. The guard API reports the same token as its lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extension_keeps_token_and_release_never_lowers_counter() {
    let _serial = SERIAL.lock().await;
    let masters = Masters::start(3);
    let manager = fenced(&masters.urls());
    let resource = unique_name("extend");
    let key = fence_key(&resource);
    let mut lock = watchdog("lock", manager.lock(&resource)).await.unwrap();
    let token = lock.fencing_token().unwrap();
    // The third master's INCR may still be landing.
    assert!(
        eventually(ms(3_000), || counters(&masters, &key)
            == vec![token.get(); 3])
        .await
    );
    let before = counters(&masters, &key);
    for _ in 0..3 {
        watchdog("extend", manager.extend(&mut lock, ms(10_000)))
            .await
            .unwrap();
        assert_eq!(
            lock.fencing_token(),
            Some(token),
            "extension keeps the token"
        );
    }
    assert_eq!(
        counters(&masters, &key),
        before,
        "extension touches no counter"
    );
    watchdog("unlock", manager.unlock(&mut lock)).await.unwrap();
    settle_within(&manager, ms(3_000)).await;
    assert_eq!(
        counters(&masters, &key),
        before,
        "release lowers no counter"
    );
    for server in masters.iter() {
        assert!(!server.exists(resource.as_bytes()), "lock key released");
        assert!(server.exists(key.as_bytes()), "counter kept after release");
    }

    let guard = watchdog("acquire", manager.acquire(&resource))
        .await
        .unwrap();
    let next = guard.fencing_token().unwrap();
    assert!(next > token, "next grant {next} must exceed {token}");
    assert_eq!(guard.handle().fencing_token(), Some(next));
    watchdog("release", guard.release()).await.unwrap();
    settle_within(&manager, ms(3_000)).await;
    assert_not_lowered(&before, &counters(&masters, &key), "second release");
    manager.close().await;
}

/// With fencing off (the default) there is no token and no counter key is ever written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fencing_off_gives_no_token_and_writes_no_counter() {
    let _serial = SERIAL.lock().await;
    let masters = Masters::start(3);
    let manager = builder(&masters.urls())
        .node_timeout(ms(500))
        .build()
        .unwrap();
    let resource = unique_name("unfenced");
    let mut lock = watchdog("lock", manager.lock(&resource)).await.unwrap();
    assert_eq!(lock.fencing_token(), None);
    watchdog("extend", manager.extend(&mut lock, ms(5_000)))
        .await
        .unwrap();
    assert_eq!(lock.fencing_token(), None);
    let guard = watchdog("acquire", manager.acquire(unique_name("unfenced-guard")))
        .await
        .unwrap();
    assert_eq!(guard.fencing_token(), None);
    assert_eq!(guard.handle().fencing_token(), None);
    watchdog("release", guard.release()).await.unwrap();
    watchdog("unlock", manager.unlock(&mut lock)).await.unwrap();
    settle_within(&manager, ms(3_000)).await;
    for server in masters.iter() {
        let keys: Vec<String> = server
            .keys()
            .iter()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .collect();
        assert!(
            keys.iter().all(|k| !k.ends_with(":fence")),
            "no counter key with fencing off: {keys:?}"
        );
    }
    manager.close().await;
}

/// The counter sits in the lock key's hash slot: `{r}:fence` for a plain resource,
/// `{<prefix>r}:fence` with a key prefix, and `a{b}c:fence` for a key with its own hash tag
/// `{b}` (no second pair of braces). Counters never expire.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counter_key_shares_the_lock_keys_hash_slot() {
    let _serial = SERIAL.lock().await;
    let masters = Masters::start(3);
    let plain = fenced(&masters.urls());
    let prefixed = builder(&masters.urls())
        .fencing(true)
        .node_timeout(ms(500))
        .key_prefix("app:")
        .build()
        .unwrap();
    let cases: [(&LockManager, &str, &str); 3] = [
        (&plain, "orders-7", "{orders-7}:fence"),
        (&plain, "a{b}c", "a{b}c:fence"),
        (&prefixed, "r", "{app:r}:fence"),
    ];
    for (manager, resource, expected) in cases {
        let mut lock = watchdog("lock", manager.lock(resource)).await.unwrap();
        let token = lock.fencing_token().unwrap().get();
        watchdog("unlock", manager.unlock(&mut lock)).await.unwrap();
        settle_within(manager, ms(3_000)).await;
        for server in masters.iter() {
            assert_eq!(counter(server, expected), token, "counter at {expected}");
            assert_eq!(
                server.pttl(expected.as_bytes()),
                -1,
                "{expected} never expires"
            );
        }
    }
    // Nothing else was written: only the three counters remain.
    for server in masters.iter() {
        let mut keys: Vec<String> = server
            .keys()
            .iter()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .collect();
        keys.sort();
        assert_eq!(keys, ["a{b}c:fence", "{app:r}:fence", "{orders-7}:fence"]);
    }
    plain.close().await;
    prefixed.close().await;
}

// ---------------------------------------------------------------------------------------
// FencingContention
// ---------------------------------------------------------------------------------------

/// The slow path fails on a majority, so no token can be agreed: counters are seeded to
/// `[0, 10, 20]` so no two granting masters agree (the fast path is impossible); every reply
/// is delayed 400 ms by the proxies, and as soon as the acquire script has run on all three
/// masters (seen directly on the servers, while the replies are still held) requests to
/// masters 2 and 3 get 2 s of latency, so both FENCE rounds time out there (node timeout
/// 600 ms). The lock call fails with the distinct `FencingContention` error, the lock is
/// released everywhere, no counter went down, and the next acquisition's token exceeds what
/// a majority of counters reached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fence_rounds_failing_on_a_majority_report_fencing_contention() {
    let _serial = SERIAL.lock().await;
    let masters = Masters::start(3);
    let proxies = proxies_for(&masters).await;
    let urls: Vec<String> = proxies.iter().map(FaultProxy::url).collect();
    let manager = builder(&urls)
        .fencing(true)
        .node_timeout(ms(600))
        .build()
        .unwrap();
    // Connect and load the scripts before any fault.
    let mut warm = watchdog("warm-up", manager.lock(unique_name("warm")))
        .await
        .unwrap();
    watchdog("warm-up unlock", manager.unlock(&mut warm))
        .await
        .unwrap();
    settle_within(&manager, ms(3_000)).await;

    let resource = unique_name("contention");
    let key = fence_key(&resource);
    let seeds = [0u64, 10, 20];
    for (server, seed) in masters.iter().zip(seeds) {
        server.cmd(&["SET", &key, &seed.to_string()]);
    }
    for proxy in &proxies {
        proxy.set_reply_latency(ms(400));
    }
    let addrs = masters.addrs();
    let watcher = {
        let resource = resource.clone();
        tokio::task::spawn_blocking(move || {
            let servers: Vec<redis::Client> = addrs
                .iter()
                .map(|a| redis::Client::open(format!("redis://{a}")).unwrap())
                .collect();
            let mut conns: Vec<redis::Connection> = servers
                .iter()
                .map(|c| c.get_connection().unwrap())
                .collect();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                let all = conns
                    .iter_mut()
                    .all(|c| redis::cmd("EXISTS").arg(&resource).query::<i64>(c).unwrap() == 1);
                if all {
                    return true;
                }
                std::thread::sleep(ms(1));
            }
            false
        })
    };
    let (result, ()) = tokio::join!(
        within(ms(10_000), "lock", manager.lock(&resource).retry_count(0)),
        async {
            assert!(
                watcher.await.unwrap(),
                "the acquire script never ran everywhere"
            );
            proxies[1].set_request_latency(ms(2_000));
            proxies[2].set_request_latency(ms(2_000));
        }
    );
    let err = match result {
        Ok(lock) => panic!(
            "no token can be agreed, yet the lock was granted with {:?}",
            lock.fencing_token()
        ),
        Err(e) => e,
    };
    let shown = render(&err);
    println!("{shown}");
    assert!(
        matches!(err, LockError::FencingContention { .. }),
        "expected FencingContention, got {err:?}"
    );
    assert!(shown.contains("fencing token") && shown.contains(&resource));
    assert!(!err.is_conflict() && !err.is_unavailable() && !err.is_validity_exhausted());
    let outcomes = err.outcomes();
    assert_eq!(outcomes.len(), 3);
    let timed_out = outcomes
        .iter()
        .filter(|o| matches!(o.status(), NodeStatus::Failed(NodeError::Timeout(_))))
        .count();
    assert!(
        timed_out >= 2,
        "the FENCE round timed out on a majority: {outcomes:?}"
    );

    for proxy in &proxies {
        proxy.heal();
    }
    settle_within(&manager, ms(8_000)).await;
    assert!(
        eventually(ms(5_000), || masters
            .iter()
            .all(|s| !s.exists(resource.as_bytes())))
        .await,
        "the lock must be released on every master"
    );
    let after = counters(&masters, &key);
    assert_not_lowered(&seeds, &after, "after FencingContention");
    let mut lock = watchdog("lock after contention", manager.lock(&resource))
        .await
        .unwrap();
    let token = lock.fencing_token().unwrap().get();
    // No token was issued by the failed call, so the next one need not exceed every counter
    // (a refusing master may keep a higher, never-issued value); it must exceed every value
    // that a majority of masters reached — the intersection argument.
    let mut sorted = after.clone();
    sorted.sort_unstable();
    assert!(
        token > sorted[1],
        "the next token {token} must exceed the majority's value {} (counters {after:?})",
        sorted[1]
    );
    watchdog("unlock", manager.unlock(&mut lock)).await.unwrap();
    manager.close().await;
}

// ---------------------------------------------------------------------------------------
// Cost
// ---------------------------------------------------------------------------------------

/// Mean acquisition latency (the `lock` call only) with and without fencing, 500 lock/unlock
/// cycles each on 3 masters, interleaved cycle by cycle so both see the same machine load.
/// Printed, not asserted; the counters stay in step, so the fast path is measured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_with_and_without_fencing() {
    let _serial = SERIAL.lock().await;
    let masters = Masters::start(3);
    let with = fenced(&masters.urls());
    let without = builder(&masters.urls())
        .node_timeout(ms(500))
        .build()
        .unwrap();
    let (r_with, r_without) = (unique_name("cost-fenced"), unique_name("cost-plain"));
    let mut samples: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
    for cycle in 0..520 {
        for (i, (manager, resource)) in [(&with, &r_with), (&without, &r_without)]
            .into_iter()
            .enumerate()
        {
            let t0 = Instant::now();
            let mut lock = watchdog("lock", manager.lock(resource)).await.unwrap();
            let took = t0.elapsed();
            watchdog("unlock", manager.unlock(&mut lock)).await.unwrap();
            if cycle >= 20 {
                samples[i].push(took); // the first 20 cycles warm up
            }
        }
    }
    for (name, s) in ["with fencing", "without fencing"].iter().zip(&mut samples) {
        s.sort();
        let mean = s.iter().sum::<Duration>() / s.len() as u32;
        println!(
            "acquisition latency {name}: mean {:?}, median {:?}, p99 {:?} over {} cycles",
            mean,
            s[s.len() / 2],
            s[s.len() * 99 / 100],
            s.len()
        );
    }
    with.close().await;
    without.close().await;
}

/// A resource named like another's fencing counter (`{fc}:fence`) cannot be locked, with or
/// without fencing: it is refused at once, before any request, with a typed error naming
/// the owner. So no lock can sit on `fc`'s counter (a fenced `lock("fc")` then works), and a
/// waiter for `{fc}:fence` — whose counter never expires — never waits forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resource_named_like_a_fencing_counter_is_refused_in_both_directions() {
    let masters = Masters::start(3);
    let urls = masters.urls();
    let fenced = fenced(&urls);
    let plain = builder(&urls).node_timeout(ms(500)).build().unwrap();
    let owner = unique_name("fc");
    let counter_name = fence_key(&owner);

    // Someone tries to hold `{fc}:fence` first: refused, nothing written.
    for manager in [&plain, &fenced] {
        let e = within(
            ms(1_000),
            "lock the counter's name",
            manager.lock(&counter_name),
        )
        .await
        .unwrap_err();
        assert!(
            e.is_reserved_key() && e.is_invalid_input(),
            "{}",
            render(&e)
        );
        match &e {
            LockError::ReservedKey { helper_of, .. } => {
                assert_eq!(&**helper_of, owner.as_bytes());
            }
            other => panic!("{}", render(other)),
        }
        let text = e.to_string();
        assert!(
            text.contains(&owner) && text.contains("fencing counter"),
            "{text}"
        );
    }
    assert!(
        masters.iter().all(|s| s.dbsize() == 0),
        "nothing was written"
    );
    // So a fenced lock of `fc` works.
    let mut lock = watchdog("lock fc", fenced.lock(&owner)).await.unwrap();
    assert!(lock.fencing_token().is_some());
    // The lock returns on a quorum: the third master's request may still be landing.
    assert!(
        eventually(ms(3_000), || counters(&masters, &counter_name) == [1, 1, 1]).await,
        "counters {:?}",
        counters(&masters, &counter_name)
    );

    // The other direction: `fc`'s counter exists (it never expires); waiting for a lock on
    // its name ends at once, typed, instead of waiting forever.
    for manager in [&plain, &fenced] {
        let e = within(
            ms(1_000),
            "wait_forever on the counter's name",
            manager.acquire(&counter_name).wait_forever(),
        )
        .await
        .unwrap_err();
        assert!(e.is_reserved_key(), "{}", render(&e));
    }
    // With a key prefix, the key (prefix + resource) is what counts.
    let prefixed = builder(&urls).key_prefix("app:").build().unwrap();
    let e = prefixed.try_lock("{x}:fence").await.unwrap_err();
    assert!(e.is_reserved_key(), "{}", render(&e));
    fenced.unlock(&mut lock).await.unwrap();
}
