//! `LockGuard`: auto-extension, the lost signal (future, `is_valid`, cancellation token) no
//! later than the deadline, release / drop / `close`, `max_hold` and `with_lock` (issue 3;
//! field cases C04, C13, C14 and C15 with auto-extend).
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
use std::io::{BufRead as _, BufReader, Write as _};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rand::{RngExt, SeedableRng, rngs::StdRng};
use support::{
    checks::{
        Observation, RELAXED, held_everywhere, manager, ms, proxies_for, settle, settle_within,
        spawn_poller, watchdog, within,
    },
    eventually,
    proxy::FaultProxy,
    servers::{Masters, RedisServer},
    unique_name,
};
use tokio::time::Instant;
use tokio_redlock::{LockError, LockHandle, LockManager};

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

use support::diagnostics::{install as install_warn_recorder, warnings_about};

/// A manager over `urls` with the relaxed per-master budget of a loaded CI box (timeouts are
/// not what these tests are about), everything else at its default.
fn manager_for(urls: impl IntoIterator<Item = String>) -> LockManager {
    manager(urls, RELAXED)
}

/// Opens the manager's connections and caches the scripts (one acquire/release cycle), then
/// waits until its stragglers are done.
async fn warm_up(manager: &LockManager) {
    let guard = manager.acquire("warm-up").await.expect("warm-up acquire");
    guard.release().await.expect("warm-up release");
    settle(manager).await;
}

/// A [`manager_for`] the masters, warmed up.
async fn warm_manager(masters: &Masters) -> LockManager {
    let manager = manager_for(masters.urls());
    warm_up(&manager).await;
    manager
}

/// An auto-extended guard on `r` with `ttl`.
async fn auto_guard(manager: &LockManager, ttl: Duration) -> tokio_redlock::LockGuard {
    manager.acquire("r").ttl(ttl).auto_extend().await.unwrap()
}

/// Asserts that every master is empty within `limit`.
async fn no_keys_within(masters: &Masters, limit: Duration) {
    assert!(
        eventually(limit, || masters.iter().all(|s| s.dbsize() == 0)).await,
        "keys left: {:?}",
        masters.iter().map(RedisServer::dump).collect::<Vec<_>>()
    );
}

/// A persistent sync connection to `server`, for fast polling.
fn connect(server: &RedisServer) -> redis::Connection {
    redis::Client::open(server.url())
        .unwrap()
        .get_connection_with_timeout(Duration::from_secs(2))
        .unwrap()
}

/// `GET key` and `PTTL key` in one `MULTI`/`EXEC`.
fn get_and_pttl(conn: &mut redis::Connection, key: &str) -> (Option<Vec<u8>>, i64) {
    redis::pipe()
        .atomic()
        .cmd("GET")
        .arg(key)
        .cmd("PTTL")
        .arg(key)
        .query(conn)
        .unwrap()
}

/// The commands a server executed, as seen by `MONITOR` (commands run by scripts included,
/// tagged `[0 lua]`), each with the local time it was read.
struct Monitor {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<String>>,
}

impl Monitor {
    fn start(addr: SocketAddr) -> Self {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(ms(50))).unwrap();
        stream.write_all(b"MONITOR\r\n").unwrap();
        let mut reader = BufReader::new(stream);
        let mut ok = Vec::new();
        reader.read_until(b'\n', &mut ok).unwrap();
        assert!(ok.starts_with(b"+OK"), "MONITOR refused: {ok:?}");
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut lines = Vec::new();
            let mut line = Vec::new();
            loop {
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) => break,
                    Ok(_) if line.ends_with(b"\n") => {
                        lines.push(String::from_utf8_lossy(&line).trim_end().to_owned());
                        line.clear();
                    }
                    Ok(_) => {}
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) =>
                    {
                        if stopped.load(Ordering::SeqCst) {
                            break;
                        }
                    }
                    Err(e) => panic!("MONITOR connection failed: {e}"),
                }
            }
            lines
        });
        Self { stop, thread }
    }

    /// Stops reading (after the server's pending output drained) and returns every line.
    async fn finish(self) -> Vec<String> {
        // Let the last commands reach the monitor connection first.
        tokio::time::sleep(ms(200)).await;
        self.stop.store(true, Ordering::SeqCst);
        let thread = self.thread;
        tokio::task::spawn_blocking(move || thread.join().unwrap())
            .await
            .unwrap()
    }
}

/// Sends `ECHO <mark>` to `server`, so the `MONITOR` log can be cut into phases.
fn mark(server: &RedisServer, mark: &str) {
    server.cmd(&["ECHO", mark]);
}

/// Index of the `MONITOR` line of `ECHO <mark>`.
fn mark_at(lines: &[String], mark: &str) -> usize {
    let quoted = format!("\"ECHO\" \"{mark}\"");
    lines
        .iter()
        .position(|l| l.contains(&quoted))
        .unwrap_or_else(|| panic!("mark {mark} missing from the MONITOR log"))
}

/// Sets its flag when dropped: proves a future was dropped.
struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

// ---------------------------------------------------------------------------------------
// C04 — a late winner's validity, then auto-extension for 5 s
// ---------------------------------------------------------------------------------------

/// C04: B holds `r` (ttl 1 000 ms); A asks for `r` with ttl 1 000 ms, 10 retries 200 ms
/// apart, and auto-extension, so it wins once B's key expired (t ≈ 1 000–1 200 ms). A's
/// validity then is > 900 ms (never ≤ 0), and a 5 s hold keeps `PTTL r` > 0 with A's token
/// on the server, the guard valid throughout, and no error (the guard is never lost and
/// releases cleanly). In this API auto-extension is chosen with the acquisition
/// (`.auto_extend()`) and starts the moment it returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c04_late_winner_has_full_validity_and_auto_extend_keeps_the_lock() {
    let masters = Masters::start(1);
    let server = &masters[0];
    let b = manager_for(masters.urls());
    let b_lock = b.lock("r").ttl(ms(1_000)).await.unwrap();
    let a = LockManager::builder()
        .servers(masters.urls())
        .retry_count(10)
        .retry_delay(ms(200))
        .retry_jitter(Duration::ZERO)
        .node_timeout(RELAXED)
        .build()
        .unwrap();

    let t0 = Instant::now();
    let guard = watchdog(
        "A's acquire",
        a.acquire("r").ttl(ms(1_000)).retry_count(10).auto_extend(),
    )
    .await
    .expect("A acquires r once B's key expired");
    let validity = guard.validity();
    let won_at = t0.elapsed();
    println!("A won at {won_at:?} with validity {validity:?}");
    // Premise: A won only after B's key expired, i.e. after several retries.
    assert!(
        won_at >= ms(900),
        "A must have waited for B's lock to expire: won at {won_at:?}"
    );
    assert!(
        validity > ms(900) && validity <= ms(1_000),
        "validity must be ttl − (winning attempt) − drift, > 900 ms on loopback: {validity:?}"
    );
    assert!(guard.is_valid());

    let token = guard.token().as_bytes().to_vec();
    let mut conn = connect(server);
    let hold = Instant::now();
    let mut min_pttl = i64::MAX;
    let mut min_validity = Duration::MAX;
    let mut samples = 0;
    while hold.elapsed() < ms(5_000) {
        let (value, pttl) = get_and_pttl(&mut conn, "r");
        assert_eq!(
            value.as_deref(),
            Some(&token[..]),
            "r must hold A's token at {:?} into the hold",
            hold.elapsed()
        );
        assert!(
            pttl > 0,
            "PTTL r must stay > 0: {pttl} at {:?}",
            hold.elapsed()
        );
        assert!(
            guard.is_valid() && !guard.is_lost(),
            "the guard must stay valid: {guard:?} at {:?}",
            hold.elapsed()
        );
        let v = guard.validity();
        assert!(v > Duration::ZERO, "validity must never be ≤ 0");
        min_pttl = min_pttl.min(pttl);
        min_validity = min_validity.min(v);
        samples += 1;
        tokio::time::sleep(ms(20)).await;
    }
    println!("{samples} samples: min PTTL {min_pttl} ms, min validity {min_validity:?}");
    // Extended throughout: the deadline now lies well past the original one (t0 + ~2 s).
    assert!(guard.deadline() > hold + ms(4_000));
    guard
        .release()
        .await
        .expect("the extended lock releases without error");
    assert_eq!(server.dbsize(), 0, "{:?}", server.dump());
    drop(b_lock);
    settle(&a).await;
}

// ---------------------------------------------------------------------------------------
// C13 — acquisitions with auto-extend aborted at random points
// ---------------------------------------------------------------------------------------

/// C13: 1 server, ttl 1 000 ms, renewal every 333 ms. 1 000 times: spawn an acquire of `r`
/// with auto-extend, abort the task after a random 0–5 ms, then release (even loops) or drop
/// (odd loops) the guard if the task had already returned one. After the loop, for 3 s:
/// `PTTL r` is sampled every 10 ms and never shows a refresh (no key re-appears, no TTL grows),
/// and no script runs on the server once the cleanup finished. Then `EXISTS r` = 0, the
/// manager reports 0 background tasks (watchdogs included), and a fresh client acquires `r`
/// at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c13_aborted_auto_extend_acquires_leave_no_renewal_and_no_key() {
    const SEED: u64 = 0x5EED_C013;
    const LOOPS: usize = 1_000;
    let masters = Masters::start(1);
    let server = &masters[0];
    let manager = warm_manager(&masters).await;

    let mut rng = StdRng::seed_from_u64(SEED);
    let (mut aborted, mut released, mut dropped) = (0usize, 0usize, 0usize);
    let mut failed = Vec::new();
    let started = Instant::now();
    for i in 0..LOOPS {
        let m = manager.clone();
        let task = tokio::spawn(async move { m.acquire("r").ttl(ms(1_000)).auto_extend().await });
        tokio::time::sleep(Duration::from_micros(rng.random_range(0..=5_000))).await;
        task.abort();
        match task.await {
            Err(e) if e.is_cancelled() => aborted += 1,
            Err(e) => panic!("acquire task {i} panicked: {e}"),
            Ok(Ok(guard)) => {
                if i % 2 == 0 {
                    guard
                        .release()
                        .await
                        .unwrap_or_else(|e| panic!("loop {i}: releasing a fresh guard: {e}"));
                    released += 1;
                } else {
                    drop(guard);
                    dropped += 1;
                }
            }
            Ok(Err(e)) => failed.push(e.to_string()),
        }
    }
    let last_release = Instant::now();
    println!(
        "seed {SEED:#x}: {aborted} aborted, {released} released, {dropped} dropped, \
         {} failed {failed:?}, loop took {:?}",
        failed.len(),
        started.elapsed()
    );
    assert_eq!(aborted + released + dropped + failed.len(), LOOPS);
    assert!(
        aborted > 0 && released + dropped > 0,
        "both aborted acquires and returned guards are needed to prove anything"
    );

    // Sample `GET r` + `PTTL r` every 10 ms for the 3 s wait.
    let mut conn = connect(server);
    let sampler = tokio::task::spawn_blocking(move || {
        let mut seen = Vec::new();
        while last_release.elapsed() < ms(3_000) {
            seen.push((last_release.elapsed(), get_and_pttl(&mut conn, "r")));
            std::thread::sleep(ms(10));
        }
        seen
    });
    // Once the background cleanup of the last loops is done, nothing may touch the server.
    settle(&manager).await;
    let calls_after_cleanup = server.command_calls("evalsha");
    let samples = sampler.await.unwrap();
    let calls_at_end = server.command_calls("evalsha");

    let mut gone_at = None;
    for pair in samples.windows(2) {
        let (_, (prev_value, prev_pttl)) = &pair[0];
        let (at, (value, pttl)) = &pair[1];
        if value.is_none() {
            gone_at.get_or_insert(*at);
        }
        assert!(
            !(prev_value.is_none() && value.is_some()),
            "r re-appeared at {at:?} after the last release: {value:?} PTTL {pttl}"
        );
        if value.is_some() && value == prev_value {
            assert!(
                pttl <= prev_pttl,
                "PTTL r was refreshed at {at:?} after the last release: {prev_pttl} → {pttl}"
            );
        }
    }
    println!(
        "{} samples; r gone {gone_at:?} after the last release",
        samples.len()
    );
    assert_eq!(
        calls_at_end, calls_after_cleanup,
        "scripts ran on the server after every task had ended (a renewal?)"
    );
    assert!(
        !server.exists(b"r"),
        "EXISTS r must be 0: {:?}",
        server.dump()
    );
    assert_eq!(
        manager.background_tasks(),
        0,
        "live renewal (or cleanup) tasks 3 s after the loop"
    );
    assert_eq!(server.dbsize(), 0, "{:?}", server.dump());

    let fresh = manager_for(masters.urls());
    let guard = within(
        ms(1_000),
        "fresh acquire",
        fresh.acquire("r").retry_count(0),
    )
    .await
    .expect("a fresh client acquires r at once");
    guard.release().await.unwrap();
}

// ---------------------------------------------------------------------------------------
// C14 with auto-extend — acquire dropped after the requests left
// ---------------------------------------------------------------------------------------

/// The server's timestamp of a `MONITOR` line (seconds since the Unix epoch).
fn server_time(line: &str) -> f64 {
    line.strip_prefix('+')
        .and_then(|l| l.split(' ').next())
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("not a MONITOR line: {line}"))
}

/// The command and arguments of a `MONITOR` line, unquoted (tokens and keys here have no
/// spaces or quotes).
fn command_of(line: &str) -> Vec<String> {
    let rest = line.split_once("] ").map_or("", |(_, rest)| rest);
    rest.split(' ')
        .map(|a| a.trim_matches('"').to_owned())
        .collect()
}

/// Seconds since the Unix epoch now, comparable with [`server_time`].
fn wall_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// C14 with auto-extend: 3 masters behind proxies adding 50 ms reply latency; A's acquire of
/// `r` (ttl 1 000 ms, auto-extend) is dropped at t = 25 ms, after the requests left and
/// before the replies came. Polling `GET r` on every master (every 10 ms, for 3 s), and
/// `MONITOR` on each (with the servers' timestamps, reliable on a loaded box): A's `SET` ran
/// before the drop (the case's premise), keys with A's token are gone within the TTL
/// (≤ 1 050 ms) and nothing renews them (no `PEXPIRE` of `r` at all, no second `SET` with A's
/// token); the library's best-effort release deletes them far sooner. No renewal or cleanup
/// task is left for the dropped acquire, and B acquires `r` by t ≤ 1 100 ms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c14_auto_extend_acquire_dropped_in_flight_leaves_no_renewal() {
    let masters = Masters::start(3);
    let proxies = proxies_for(&masters).await;
    let a = LockManager::builder()
        .servers(proxies.iter().map(FaultProxy::url))
        // Above the 50 ms reply latency, so the latency alone never fails a request.
        .node_timeout(ms(500))
        .build()
        .unwrap();
    warm_up(&a).await;
    for proxy in &proxies {
        proxy.set_reply_latency(ms(50));
    }
    let b = LockManager::builder()
        .servers(masters.urls())
        .retry_count(1_000)
        .retry_delay(ms(20))
        .retry_jitter(ms(10))
        .build()
        .unwrap();
    let monitors: Vec<Monitor> = masters.iter().map(|s| Monitor::start(s.addr())).collect();

    let t0 = std::time::Instant::now();
    let t0_wall = wall_now();
    let poller = spawn_poller(&masters, "r", t0, ms(3_000), ms(10));
    let dropped = tokio::time::timeout(ms(25), a.acquire("r").ttl(ms(1_000)).auto_extend()).await;
    let t_drop = t0.elapsed();
    let drop_wall = wall_now();
    assert!(
        dropped.is_err(),
        "the acquire must still be pending at t = 25 ms (replies are delayed 50 ms): {dropped:?}"
    );

    let mut b_lock = watchdog("B's acquire", b.lock("r").ttl(ms(10_000)))
        .await
        .expect("B acquires r");
    let t_b = t0.elapsed();
    let b_token = b_lock.token().to_owned();

    assert!(
        eventually(ms(1_000), || a.background_tasks() == 0).await,
        "no task may be left for the dropped acquire: {} background tasks",
        a.background_tasks()
    );
    let observations = tokio::task::spawn_blocking(move || poller.join().unwrap())
        .await
        .unwrap();
    // Nothing was started for A since: no watchdog ever appeared.
    assert_eq!(a.background_tasks(), 0, "a renewal task outlived the drop");
    let mut logs = Vec::new();
    for monitor in monitors {
        logs.push(monitor.finish().await);
    }

    // A's token: the one its acquire SET before the drop (B starts after the drop), as a
    // plain `SET NX PX` or from the acquire script.
    let a_sets: Vec<(usize, f64, String)> = logs
        .iter()
        .enumerate()
        .flat_map(|(node, lines)| {
            lines
                .iter()
                .map(move |l| (node, server_time(l), command_of(l)))
        })
        .filter(|(_, at, cmd)| cmd.len() > 2 && cmd[0] == "SET" && cmd[1] == "r" && *at < drop_wall)
        .map(|(node, at, cmd)| (node, at, cmd[2].clone()))
        .collect();
    let a_tokens: BTreeSet<&String> = a_sets.iter().map(|(_, _, token)| token).collect();
    assert_eq!(
        a_tokens.len(),
        1,
        "A's acquire must have SET r (one token) before the drop (premise): {a_sets:?}"
    );
    let a_token = (*a_tokens.first().unwrap()).clone();
    assert_ne!(a_token, b_token);

    // Server side: on each master where A's key was set, it was deleted (the best-effort
    // release) or expired, within the TTL; nothing extended `r`; A's token was never SET again.
    for (node, lines) in logs.iter().enumerate() {
        let Some(set_at) = a_sets.iter().find(|(n, _, _)| *n == node).map(|s| s.1) else {
            continue;
        };
        // Every command, direct or from a script (an acquire may be a plain `SET NX PX`).
        let scripted: Vec<(f64, Vec<String>)> = lines
            .iter()
            .map(|l| (server_time(l), command_of(l)))
            .collect();
        let pexpires: Vec<&(f64, Vec<String>)> = scripted
            .iter()
            .filter(|(_, c)| c[0] == "PEXPIRE" && c.get(1).map(String::as_str) == Some("r"))
            .collect();
        assert!(
            pexpires.is_empty(),
            "r was extended on master {node}: {pexpires:?}"
        );
        let a_set_count = scripted
            .iter()
            .filter(|(_, c)| c[0] == "SET" && c.get(2) == Some(&a_token))
            .count();
        assert_eq!(a_set_count, 1, "A's key was set again on master {node}");
        let deleted = scripted
            .iter()
            .find(|(at, c)| {
                *at >= set_at && c[0] == "DEL" && c.get(1).map(String::as_str) == Some("r")
            })
            .map(|(at, _)| at - t0_wall);
        println!(
            "master {node}: A's SET at {:.1} ms, next DEL of r at {:?} ms",
            (set_at - t0_wall) * 1e3,
            deleted.map(|d| d * 1e3)
        );
        // Deleted by the cleanup release, far sooner than the 1 000 ms TTL (the library's
        // promise: no key beyond one cleanup round trip); at worst it would expire at
        // set + 1 000 ms ≤ 1 025 ms.
        let deleted =
            deleted.unwrap_or_else(|| panic!("A's key on master {node} was not released"));
        assert!(
            deleted < 0.5,
            "A's key on master {node} deleted only at {deleted} s"
        );
    }

    // Client side, by polling: A's token last seen within the TTL (≤ 1 050 ms).
    let a_seen: Vec<&Observation> = observations
        .iter()
        .filter(|o| o.value.as_deref() == Some(a_token.as_bytes()))
        .collect();
    let last_a = a_seen.iter().map(|o| o.at).max();
    let a_nodes: BTreeSet<usize> = a_seen.iter().map(|o| o.node).collect();
    println!(
        "dropped at {t_drop:?}; A's SET on masters {:?}; polls saw A's key on {a_nodes:?}, \
         last at {last_a:?}; B acquired at {t_b:?}; {} polls",
        a_sets.iter().map(|s| s.0).collect::<Vec<_>>(),
        observations.len()
    );
    if let Some(last_a) = last_a {
        assert!(
            last_a <= ms(1_050),
            "A's keys outlived the TTL (renewed?): last seen at {last_a:?}"
        );
    }
    assert!(t_b <= ms(1_100), "B acquired r only at {t_b:?}");
    let values: Vec<Option<Vec<u8>>> = masters.iter().map(|s| s.get(b"r")).collect();
    assert!(
        values
            .iter()
            .all(|v| v.is_none() || v.as_deref() == Some(b_token.as_bytes())),
        "only B's token may remain: {values:?}"
    );
    b.unlock(&mut b_lock).await.unwrap();
}

// ---------------------------------------------------------------------------------------
// C15 — the holder's runtime is frozen past its TTL
// ---------------------------------------------------------------------------------------

/// Commands to A's runtime thread.
enum ACommand {
    /// Block A's whole runtime (a task running `std::thread::sleep`).
    Block(Duration),
    /// Release the guard and report the outcome.
    Release(tokio::sync::oneshot::Sender<Result<(), LockError>>),
}

/// C15: A (its manager and guard on a separate current-thread runtime on its own thread)
/// acquires `r` with ttl 2 000 ms and auto-extend. At t = 500 ms A's runtime is blocked for
/// 3 000 ms (a task runs `std::thread::sleep`). At t = 2 600 ms A's handle already reports
/// validity 0 (the case's "validity query returning ≤ 0"), and B acquires `r`. When A
/// resumes (t ≈ 3 500 ms) its guard reports the loss promptly: `lost()` resolves,
/// `is_valid()` is false, the cancellation token is cancelled. (This API declares the loss at
/// the deadline, before any renewal is sent; a renewal would fail on the token anyway.)
/// `GET r` stays B's token; after B releases, `r` stays absent for 1.2 s while A's guard is
/// still alive, and `MONITOR` shows that no `SET` or `PEXPIRE` of `r` ran after B acquired,
/// and no `DEL` but B's release.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c15_frozen_holder_is_told_lost_and_never_touches_the_new_holders_key() {
    let masters = Masters::start(1);
    let server = &masters[0];
    let monitor = Monitor::start(server.addr());

    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<(LockHandle, Instant)>();
    let (cmd_tx, mut cmd_rx) = tokio::sync::mpsc::unbounded_channel::<ACommand>();
    let urls = masters.urls();
    let a_thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let a = manager_for(urls);
            let guard = a
                .acquire("r")
                .ttl(ms(2_000))
                .auto_extend()
                .await
                .expect("A acquires r");
            ready_tx.send((guard.handle(), Instant::now())).unwrap();
            let mut guard = Some(guard);
            while let Some(command) = cmd_rx.recv().await {
                match command {
                    ACommand::Block(how_long) => {
                        tokio::spawn(async move { std::thread::sleep(how_long) });
                    }
                    ACommand::Release(reply) => {
                        let guard = guard.take().expect("released once");
                        let _ = reply.send(guard.release().await);
                    }
                }
            }
            drop(guard);
            a.close().await;
        });
    });

    let (a_handle, t0) = within(ms(5_000), "A's acquisition", ready_rx)
        .await
        .expect("A's thread reports its guard");
    let a_token = a_handle.token().to_owned();
    let cancel = a_handle.cancellation_token();
    assert!(a_handle.is_valid());

    tokio::time::sleep_until(t0 + ms(500)).await;
    assert!(a_handle.is_valid(), "A holds r at t = 500 ms");
    let blocked_at = Instant::now();
    cmd_tx.send(ACommand::Block(ms(3_000))).unwrap();

    tokio::time::sleep_until(t0 + ms(2_600)).await;
    // A's watchdog is frozen, but its handle reads the clock: past the deadline it is invalid.
    assert!(
        !a_handle.is_valid() && a_handle.validity() == Duration::ZERO,
        "A's handle must report no validity past its deadline: {a_handle:?}"
    );
    let b = manager_for(masters.urls());
    let mut b_lock = b
        .try_lock("r")
        .await
        .expect("B acquires r at t = 2 600 ms (A's key expired)");
    let b_token = b_lock.token().to_owned();
    mark(server, "b-acquired");

    within(ms(6_000), "A's lost signal", a_handle.lost()).await;
    let lost_at = Instant::now();
    let resumed_at = blocked_at + ms(3_000);
    println!(
        "A blocked at {:?}, lost reported at {:?} (resume at ≥ {:?})",
        blocked_at - t0,
        lost_at - t0,
        resumed_at - t0
    );
    // Premise: A's runtime really was frozen (nothing of A's ran before it resumed).
    assert!(
        lost_at + ms(10) >= resumed_at,
        "A reported the loss while its runtime was blocked?"
    );
    assert!(
        lost_at <= resumed_at + ms(500),
        "A must learn of the loss promptly after resuming: {:?} after",
        lost_at - resumed_at
    );
    assert!(a_handle.is_lost() && !a_handle.is_valid());
    assert!(cancel.is_cancelled(), "A's cancellation token is cancelled");

    // `GET r` stays B's token, over more than one renewal period of A's (667 ms).
    let until = Instant::now() + ms(1_000);
    while Instant::now() < until {
        assert_eq!(
            server.get(b"r").as_deref(),
            Some(b_token.as_bytes()),
            "r must stay B's"
        );
        tokio::time::sleep(ms(20)).await;
    }
    mark(server, "b-releasing");
    b.unlock(&mut b_lock).await.expect("B releases r");
    mark(server, "b-released");
    // A's guard is still alive: its watchdog must not re-create `r`.
    let until = Instant::now() + ms(1_200);
    while Instant::now() < until {
        assert!(!server.exists(b"r"), "r re-appeared: {:?}", server.dump());
        tokio::time::sleep(ms(20)).await;
    }
    mark(server, "a-releasing");
    let (reply_tx, reply_rx) = tokio::sync::oneshot::channel();
    cmd_tx.send(ACommand::Release(reply_tx)).unwrap();
    let released = within(ms(5_000), "A's release", reply_rx).await.unwrap();
    let err = released.expect_err("A's release must say the lock was not held");
    assert!(err.is_not_held(), "expected NotHeld, got {err:?}");
    drop(cmd_tx);
    tokio::task::spawn_blocking(move || a_thread.join().unwrap())
        .await
        .unwrap();
    assert_eq!(server.dbsize(), 0, "{:?}", server.dump());

    let lines = monitor.finish().await;
    let acquired = mark_at(&lines, "b-acquired");
    let releasing = mark_at(&lines, "b-releasing");
    let released = mark_at(&lines, "b-released");
    // Premise: MONITOR shows the commands scripts run (B's acquire SET, with B's token).
    assert!(
        lines[..acquired]
            .iter()
            .any(|l| l.contains("lua") && l.contains("\"SET\"") && l.contains(&b_token)),
        "MONITOR must show B's scripted SET: {lines:#?}"
    );
    let writes_to_r = |l: &&String| {
        l.contains("lua")
            && l.contains("\"r\"")
            && ["\"SET\"", "\"PEXPIRE\"", "\"DEL\""]
                .iter()
                .any(|c| l.contains(c))
    };
    let after: Vec<(usize, &String)> = lines
        .iter()
        .enumerate()
        .skip(acquired)
        .filter(|(_, l)| writes_to_r(l))
        .collect();
    assert!(
        after
            .iter()
            .all(|(i, l)| l.contains("\"DEL\"") && *i > releasing && *i < released),
        "after B acquired, only B's release may write r: {after:#?}"
    );
    assert_eq!(after.len(), 1, "B's release deletes r once: {after:#?}");
    let a_commands: Vec<&String> = lines[acquired..]
        .iter()
        .filter(|l| l.contains(&a_token))
        .collect();
    println!("A's commands after B acquired: {a_commands:#?}");
}

// ---------------------------------------------------------------------------------------
// Loss with a majority of masters paused past the TTL
// ---------------------------------------------------------------------------------------

/// A holds `r` (3 masters, ttl 1 000 ms, auto-extend, drift factor 0.1 so the deadline falls
/// ~100 ms before the keys expire); S2 and S3 are paused right after the acquisition. The
/// watchdog's extensions time out and are retried until the deadline; `lost()` fires at the
/// deadline (+50 ms slack) and before the keys' expiry, `is_valid` is false, and a warning
/// names the loss. After the keys expired, the masters resume and B acquires `r`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn majority_paused_past_ttl_lost_fires_by_deadline_then_b_acquires() {
    install_warn_recorder();
    let masters = Masters::start(3);
    let resource = unique_name("paused");
    let a = LockManager::builder()
        .servers(masters.urls())
        .drift_factor(0.1)
        .build()
        .unwrap();
    warm_up(&a).await;

    let ttl = ms(1_000);
    let called = Instant::now();
    let guard = a
        .acquire(&resource)
        .ttl(ttl)
        .auto_extend()
        .await
        .expect("A acquires");
    held_everywhere(masters.iter(), resource.as_bytes(), guard.token()).await;
    masters[1].pause();
    masters[2].pause();
    let paused_at = Instant::now();
    let deadline = guard.deadline();
    assert!(
        paused_at < called + ms(300),
        "premise: paused before the first extension (at ttl/3)"
    );

    within(ms(3_000), "lost()", guard.lost()).await;
    let lost_at = Instant::now();
    println!(
        "paused at {:?}, deadline {:?}, lost at {:?} (keys expire ≥ {:?})",
        paused_at - called,
        deadline - called,
        lost_at - called,
        ttl
    );
    assert_eq!(
        guard.deadline(),
        deadline,
        "no extension may succeed on a minority"
    );
    // Transient failures are retried until the deadline, and the loss comes at it.
    assert!(
        lost_at >= deadline,
        "lost before the deadline on timeouts alone"
    );
    assert!(
        lost_at <= deadline + ms(50),
        "lost() fired {:?} after the deadline",
        lost_at - deadline
    );
    // The keys were set after `called`, with PX = ttl: they expire after `called + ttl`.
    assert!(
        lost_at < called + ttl,
        "lost() must fire before the keys can expire: {:?}",
        lost_at - called
    );
    assert!(!guard.is_valid() && guard.is_lost());
    assert!(guard.cancellation_token().is_cancelled());
    // The watchdog logs right after it cancels the token: wait for the event a moment.
    let warned = eventually(ms(1_000), || {
        warnings_about(&resource)
            .iter()
            .any(|w| w.contains("WARN") && w.contains("lost"))
    })
    .await;
    let warnings = warnings_about(&resource);
    println!("warnings: {warnings:#?}");
    assert!(
        warned,
        "a warning must say the lock was lost: {warnings:#?}"
    );

    // Resume once the keys have expired on the paused masters, then B acquires.
    tokio::time::sleep_until(called + ttl + ms(300)).await;
    masters[1].resume();
    masters[2].resume();
    let b = manager_for(masters.urls());
    let mut b_lock = watchdog("B's acquire", b.lock(&resource).ttl(ms(5_000)))
        .await
        .expect("B acquires after the masters resumed");
    let b_token = b_lock.token().to_owned();
    let err = guard
        .release()
        .await
        .expect_err("A's release after the loss must fail");
    assert!(
        err.is_not_held() || err.is_unavailable(),
        "NotHeld or NoQuorum: {err:?}"
    );
    let holding_b = masters
        .iter()
        .filter(|s| s.holds(resource.as_bytes(), &b_token))
        .count();
    assert!(
        holding_b >= 2,
        "B's keys survive A's release: {holding_b} of 3"
    );
    b.unlock(&mut b_lock).await.unwrap();
    settle(&a).await;
}

// ---------------------------------------------------------------------------------------
// Extending for 10 × the TTL while a minority master dies
// ---------------------------------------------------------------------------------------

/// A holds `r` on 3 masters with ttl 300 ms and auto-extend (every 100 ms) for 3 s (10 ×
/// the TTL); S3 is killed 1 s in. `is_valid()`, sampled every 10 ms, is always true, the
/// guard is never lost, the keys on S1 and S2 always hold A's token, and the release at the
/// end succeeds on the surviving majority.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minority_killed_holder_keeps_lock_for_ten_ttls() {
    let mut masters = Masters::start(3);
    // Default per-master budget (50 ms), as a real deployment.
    let a = LockManager::builder()
        .servers(masters.urls())
        .build()
        .unwrap();
    warm_up(&a).await;
    let guard = a
        .acquire("r")
        .ttl(ms(300))
        .auto_extend()
        .await
        .expect("A acquires");
    let acquired = Instant::now();
    let handle = guard.handle();
    let sampler = tokio::spawn(async move {
        let mut invalid = Vec::new();
        let mut samples = 0usize;
        while acquired.elapsed() < ms(3_000) {
            if !handle.is_valid() || handle.is_lost() {
                invalid.push((acquired.elapsed(), handle.validity(), handle.is_lost()));
            }
            samples += 1;
            tokio::time::sleep(ms(10)).await;
        }
        (samples, invalid)
    });
    let token = guard.token().as_bytes().to_vec();
    let mut s1 = connect(&masters[0]);
    let mut s2 = connect(&masters[1]);
    let mut killed = false;
    while acquired.elapsed() < ms(3_000) {
        if !killed && acquired.elapsed() >= ms(1_000) {
            masters[2].kill();
            killed = true;
        }
        for (i, conn) in [&mut s1, &mut s2].into_iter().enumerate() {
            let (value, pttl) = get_and_pttl(conn, "r");
            assert!(
                value.as_deref() == Some(&token[..]) && pttl > 0,
                "S{} must keep A's key: {value:?} PTTL {pttl} at {:?}",
                i + 1,
                acquired.elapsed()
            );
        }
        tokio::time::sleep(ms(25)).await;
    }
    let (samples, invalid) = sampler.await.unwrap();
    println!(
        "{samples} samples, invalid: {invalid:?}; deadline {:?} after acquisition",
        guard.deadline() - acquired
    );
    assert!(samples > 100, "too few samples: {samples}");
    assert!(
        invalid.is_empty(),
        "the guard must stay valid throughout: {invalid:?}"
    );
    assert!(!guard.is_lost());
    assert!(
        guard.deadline() > acquired + ms(2_700),
        "extended until the end"
    );
    guard.release().await.expect("release succeeds on S1 + S2");
    assert!(
        eventually(ms(1_000), || masters[0].dbsize() == 0
            && masters[1].dbsize() == 0)
        .await
    );
    settle_within(&a, ms(3_000)).await;
}

// ---------------------------------------------------------------------------------------
// with_lock
// ---------------------------------------------------------------------------------------

/// `with_lock` acquires (every master holds the closure's token while it runs), returns the
/// closure's value, and releases afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_lock_returns_the_closures_value_and_releases() {
    let masters = Masters::start(3);
    let manager = LockManager::builder()
        .servers(masters.urls())
        .ttl(ms(2_000))
        .node_timeout(RELAXED)
        .build()
        .unwrap();
    let masters_ref = &masters;
    let (token, value) = within(
        ms(5_000),
        "with_lock",
        manager.with_lock("r", |handle| async move {
            assert!(handle.is_valid());
            held_everywhere(masters_ref.iter(), b"r", handle.token()).await;
            tokio::time::sleep(ms(100)).await;
            assert!(handle.is_valid());
            (handle.token().to_owned(), 42)
        }),
    )
    .await
    .expect("with_lock succeeds");
    assert_eq!(value, 42);
    assert_eq!(token.len(), 32);
    assert!(
        eventually(ms(1_000), || masters.iter().all(|s| s.dbsize() == 0)).await,
        "with_lock must release: {:?}",
        masters.iter().map(RedisServer::dump).collect::<Vec<_>>()
    );
    settle(&manager).await;
}

/// `with_lock` (manager TTL 600 ms) whose closure sleeps 10 s while S2 and S3 are paused:
/// the lock is lost, `with_lock` returns `LockError::Lost` long before the closure could
/// finish, and the closure's future has been dropped (a flag set by a value it owned), its
/// code after the sleep never ran. After the masters resume no key remains.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_lock_reports_lost_and_drops_the_closure_future() {
    let masters = Masters::start(3);
    let manager = LockManager::builder()
        .servers(masters.urls())
        .ttl(ms(600))
        .build()
        .unwrap();
    let dropped = Arc::new(AtomicBool::new(false));
    let finished = Arc::new(AtomicBool::new(false));
    let (started_tx, started_rx) = tokio::sync::oneshot::channel::<String>();
    let (dropped_in, finished_in) = (Arc::clone(&dropped), Arc::clone(&finished));
    let work = manager.with_lock("r", move |handle| async move {
        let _flag = SetOnDrop(dropped_in);
        started_tx.send(handle.token().to_owned()).unwrap();
        tokio::time::sleep(ms(10_000)).await;
        finished_in.store(true, Ordering::SeqCst);
        7
    });
    let masters_ref = &masters;
    let pauser = async move {
        let token = started_rx.await.expect("the closure starts");
        held_everywhere(masters_ref.iter(), b"r", &token).await;
        masters_ref[1].pause();
        masters_ref[2].pause();
        Instant::now()
    };
    let (result, paused_at) = tokio::join!(within(ms(8_000), "with_lock", work), pauser);
    let returned = paused_at.elapsed();
    // The closure's future is gone by the time `with_lock` returns.
    let was_dropped = dropped.load(Ordering::SeqCst);
    println!("with_lock returned {returned:?} after the pause: {result:?}");
    let err = result.expect_err("with_lock must report the loss");
    assert!(
        err.is_lost() && matches!(err, LockError::Lost { .. }),
        "expected LockError::Lost, got {err:?}"
    );
    assert!(err.to_string().contains("lost"), "{err}");
    assert!(was_dropped, "the closure's future must have been dropped");
    assert!(
        !finished.load(Ordering::SeqCst),
        "the closure ran past the loss"
    );
    // Lost by the deadline (≤ 600 ms after the pause), far below the closure's 10 s.
    assert!(
        returned < ms(1_800),
        "with_lock returned {returned:?} after the pause"
    );

    tokio::time::sleep(ms(700)).await;
    masters[1].resume();
    masters[2].resume();
    no_keys_within(&masters, ms(2_000)).await;
    settle(&manager).await;
}

// ---------------------------------------------------------------------------------------
// No watchdog outlives its guard
// ---------------------------------------------------------------------------------------

/// 1 000 guards (ttl 1 s, auto-extend) are held for 450 ms, so their watchdogs extend at
/// least once, then dropped: `background_tasks()` counts the 1 000 watchdogs while they
/// live and falls back to 0, tokio's count of alive tasks returns to its baseline, and
/// `DBSIZE` is 0 (and stays 0: nothing re-creates a key).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_dropped_guards_leave_no_watchdog_and_no_key() {
    let masters = Masters::start(1);
    let server = &masters[0];
    let manager = warm_manager(&masters).await;
    let metrics = tokio::runtime::Handle::current().metrics();
    let baseline = metrics.num_alive_tasks();

    let mut guards = Vec::with_capacity(1_000);
    for i in 0..1_000 {
        let guard = manager
            .acquire(format!("g-{i}"))
            .ttl(ms(1_000))
            .auto_extend()
            .await
            .unwrap_or_else(|e| panic!("acquire g-{i}: {e}"));
        guards.push(guard);
    }
    let created = Instant::now();
    assert!(
        manager.background_tasks() >= 1_000,
        "each live guard has a watchdog: {}",
        manager.background_tasks()
    );
    assert_eq!(server.dbsize(), 1_000);
    tokio::time::sleep_until(created + ms(450)).await;
    assert!(guards.iter().all(|g| g.is_valid()));
    let pttls: Vec<i64> = (0..1_000)
        .step_by(97)
        .map(|i| server.pttl(format!("g-{i}").as_bytes()))
        .collect();
    println!("PTTLs of some keys after 450 ms: {pttls:?}");

    drop(guards);
    settle_within(&manager, ms(3_000)).await;
    assert!(
        eventually(ms(2_000), || server.dbsize() == 0).await,
        "keys left after the drops: {}",
        server.dbsize()
    );
    assert!(
        eventually(ms(2_000), || metrics.num_alive_tasks() <= baseline).await,
        "tokio alive tasks: {} (baseline {baseline})",
        metrics.num_alive_tasks()
    );
    // Past a renewal period: nothing re-creates or extends anything.
    tokio::time::sleep(ms(400)).await;
    assert_eq!(server.dbsize(), 0);
    assert_eq!(manager.background_tasks(), 0);
}

// ---------------------------------------------------------------------------------------
// Release
// ---------------------------------------------------------------------------------------

/// `release()` of a held guard returns Ok and deletes the key on every master; nothing is
/// left running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_returns_ok_and_deletes_the_keys() {
    let masters = Masters::start(3);
    let manager = manager_for(masters.urls());
    let guard = auto_guard(&manager, ms(5_000)).await;
    held_everywhere(masters.iter(), b"r", guard.token()).await;
    within(ms(2_000), "release", guard.release())
        .await
        .expect("release of a held guard");
    no_keys_within(&masters, ms(1_000)).await;
    settle(&manager).await;
}

/// A handle of a released guard no longer claims the lock: `is_valid()` is false and
/// `validity()` is zero (the keys are gone), as `LockHandle::is_valid`'s "true while the
/// lock is held" and the plain `Lock` ("release marks the handle invalid") say.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn released_guards_handle_reports_not_held() {
    let masters = Masters::start(1);
    let manager = manager_for(masters.urls());
    let guard = auto_guard(&manager, ms(5_000)).await;
    let handle = guard.handle();
    assert!(handle.is_valid());
    guard.release().await.expect("release");
    assert!(!masters[0].exists(b"r"));
    assert!(
        !handle.is_valid() && handle.validity() == Duration::ZERO,
        "a released lock's handle still claims it: {handle:?}"
    );
}

/// `release()` after a loss reports an error (NotHeld or NoQuorum) and leaves no key of A's:
/// (a) the keys vanished on every master (`DEL r`, as after an expiry or eviction): the next
/// extension finds them gone and the loss fires at once, long before the deadline; the
/// release then fails and nothing is re-created. (b) another client's value replaced A's on
/// a majority: the loss fires, the release fails, the other values are untouched and A's key
/// on the third master is deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_after_loss_reports_error_and_leaves_no_key() {
    let masters = Masters::start(3);
    let manager = warm_manager(&masters).await;

    // (a) the keys vanished
    let guard = auto_guard(&manager, ms(2_000)).await;
    held_everywhere(masters.iter(), b"r", guard.token()).await;
    let deadline = guard.deadline();
    for server in masters.iter() {
        server.cmd(&["DEL", "r"]);
    }
    within(ms(3_000), "lost() after DEL", guard.lost()).await;
    let lost_at = Instant::now();
    println!(
        "(a) lost {:?} before the deadline",
        deadline.saturating_duration_since(lost_at)
    );
    // The first extension (at ttl/3 ≈ 667 ms) finds the keys gone: lost at once.
    assert!(
        lost_at + ms(500) < deadline,
        "NotHeld must declare the loss at once, not at the deadline"
    );
    assert!(!guard.is_valid());
    let err = guard
        .release()
        .await
        .expect_err("release after the loss must fail");
    assert!(
        err.is_not_held() || err.is_unavailable(),
        "NotHeld or NoQuorum: {err:?}"
    );
    tokio::time::sleep(ms(200)).await;
    for (i, server) in masters.iter().enumerate() {
        assert_eq!(server.dbsize(), 0, "S{}: {:?}", i + 1, server.dump());
    }

    // (b) taken on a majority
    let guard = manager
        .acquire("r2")
        .ttl(ms(2_000))
        .auto_extend()
        .await
        .unwrap();
    let token = guard.token().to_owned();
    held_everywhere(masters.iter(), b"r2", &token).await;
    masters[0].cmd(&["SET", "r2", "other", "PX", "60000"]);
    masters[1].cmd(&["SET", "r2", "other", "PX", "60000"]);
    within(ms(3_000), "lost() after takeover", guard.lost()).await;
    let err = guard
        .release()
        .await
        .expect_err("release after the loss must fail");
    assert!(
        err.is_not_held() || err.is_unavailable(),
        "NotHeld or NoQuorum: {err:?}"
    );
    assert!(
        eventually(ms(1_000), || !masters[2].exists(b"r2")).await,
        "A's key on S3 must be deleted"
    );
    for server in &masters.0[..2] {
        assert_eq!(server.get(b"r2").as_deref(), Some(&b"other"[..]));
        let pttl = server.pttl(b"r2");
        assert!(pttl > 55_000, "the other client's TTL is untouched: {pttl}");
    }
    assert!(masters.iter().all(|s| !s.holds(b"r2", &token)));
    settle(&manager).await;
}

// ---------------------------------------------------------------------------------------
// max_hold
// ---------------------------------------------------------------------------------------

/// ttl 300 ms, auto-extend, `max_hold` 500 ms: the lock is extended until `max_hold` (still
/// valid at 450 ms, past the first deadline), then no more: it is lost at about
/// `max_hold + ttl` while the guard is still alive, the key expires by its TTL and is never
/// refreshed or re-created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_hold_stops_extending_and_the_lock_runs_out() {
    let masters = Masters::start(1);
    let server = &masters[0];
    let manager = warm_manager(&masters).await;
    let called = Instant::now();
    let guard = manager
        .acquire("r")
        .ttl(ms(300))
        .auto_extend()
        .max_hold(ms(500))
        .await
        .unwrap();
    let first_deadline = guard.deadline();
    tokio::time::sleep_until(called + ms(450)).await;
    assert!(
        guard.is_valid() && guard.deadline() > first_deadline,
        "extended until max_hold: {guard:?}"
    );

    within(ms(3_000), "lost()", guard.lost()).await;
    let lost_at = called.elapsed();
    println!("lost at {lost_at:?}");
    // The last extension came at ≥ 400 ms (every 100 ms until 500 ms), so the loss cannot come
    // before 400 + 300 − drift ≈ 694 ms; it should come at about 500 + 100 + 300 ms.
    assert!(lost_at >= ms(650), "lost too early: {lost_at:?}");
    assert!(
        lost_at <= ms(1_800),
        "still extended long after max_hold: lost at {lost_at:?}"
    );
    assert!(!guard.is_valid());

    // The key runs out by its TTL (the guard is alive, so nobody released it).
    let mut conn = connect(server);
    let mut last: Option<i64> = None;
    let start = Instant::now();
    let mut gone = false;
    while start.elapsed() < ms(800) {
        let (value, pttl) = get_and_pttl(&mut conn, "r");
        match value {
            Some(_) => {
                assert!(!gone, "r re-appeared after it expired");
                if let Some(prev) = last {
                    assert!(
                        pttl <= prev,
                        "PTTL refreshed after max_hold: {prev} → {pttl}"
                    );
                }
                last = Some(pttl);
            }
            None => gone = true,
        }
        tokio::time::sleep(ms(10)).await;
    }
    assert!(gone, "r must expire after the loss");
    assert!(!server.exists(b"r"));
    let err = guard.release().await.expect_err("nothing left to release");
    assert!(err.is_not_held(), "{err:?}");
    settle(&manager).await;
}

// ---------------------------------------------------------------------------------------
// close() with live guards
// ---------------------------------------------------------------------------------------

/// `close()` with three live guards: when it returns, every guard is lost (`lost()` resolves,
/// `is_valid` false, token cancelled), every key is released on every master, and no
/// background task is left; new acquisitions fail with `Closed`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_with_live_guards_loses_them_and_releases_the_keys() {
    let masters = Masters::start(3);
    let manager = manager_for(masters.urls());
    let mut guards = Vec::new();
    for name in ["c1", "c2", "c3"] {
        let guard = manager
            .acquire(name)
            .ttl(ms(10_000))
            .auto_extend()
            .await
            .unwrap();
        held_everywhere(masters.iter(), name.as_bytes(), guard.token()).await;
        guards.push(guard);
    }
    assert!(manager.background_tasks() >= 3);
    within(ms(5_000), "close", manager.close()).await;
    assert_eq!(
        manager.background_tasks(),
        0,
        "close() awaits the watchdogs"
    );
    for (i, server) in masters.iter().enumerate() {
        assert_eq!(
            server.dbsize(),
            0,
            "S{}: keys left after close: {:?}",
            i + 1,
            server.dump()
        );
    }
    for guard in &guards {
        within(ms(100), "lost() after close", guard.lost()).await;
        assert!(guard.is_lost() && !guard.is_valid());
        assert!(guard.cancellation_token().is_cancelled());
    }
    let err = manager.acquire("c4").await.unwrap_err();
    assert!(matches!(err, LockError::Closed), "{err:?}");
    for guard in guards {
        let released = within(ms(1_000), "release after close", guard.release()).await;
        println!("release after close: {released:?}");
    }
    assert_eq!(manager.background_tasks(), 0);
}

// ---------------------------------------------------------------------------------------
// The cancellation token
// ---------------------------------------------------------------------------------------

/// A guard without auto-extension (ttl 600 ms) is lost at its deadline. Its cancellation
/// token is not cancelled before (sampled every 5 ms: never cancelled while not lost) and is
/// cancelled at the moment `lost()` resolves (both waiters wake within 50 ms of each other —
/// scheduling noise — at or after the deadline, at most 100 ms later).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancellation_token_is_cancelled_exactly_when_lost() {
    let masters = Masters::start(1);
    let manager = warm_manager(&masters).await;
    let guard = manager.acquire("r").ttl(ms(600)).await.unwrap();
    let deadline = guard.deadline();
    let token = guard.cancellation_token();
    let handle = guard.handle();
    let token_task = {
        let token = token.clone();
        tokio::spawn(async move {
            token.cancelled().await;
            Instant::now()
        })
    };
    let lost_task = {
        let handle = handle.clone();
        tokio::spawn(async move {
            handle.lost().await;
            Instant::now()
        })
    };
    let mut mismatches = Vec::new();
    let mut early = Vec::new();
    while !handle.is_lost() && Instant::now() < deadline + ms(2_000) {
        let now = Instant::now();
        if token.is_cancelled() != handle.is_lost() {
            mismatches.push(now);
        }
        if token.is_cancelled() && now < deadline {
            early.push(deadline - now);
        }
        tokio::time::sleep(ms(5)).await;
    }
    let token_at = within(ms(3_000), "token", token_task).await.unwrap();
    let lost_at = within(ms(3_000), "lost", lost_task).await.unwrap();
    let gap = if token_at > lost_at {
        token_at - lost_at
    } else {
        lost_at - token_at
    };
    println!(
        "token cancelled {:?} after the deadline, lost() {:?} after; gap {gap:?}",
        token_at.saturating_duration_since(deadline),
        lost_at.saturating_duration_since(deadline)
    );
    assert!(mismatches.is_empty(), "token and lost disagreed");
    assert!(early.is_empty(), "token cancelled before the deadline");
    assert!(token_at >= deadline, "cancelled before the deadline");
    assert!(
        token_at <= deadline + ms(100),
        "cancelled {:?} late",
        token_at - deadline
    );
    assert!(gap <= ms(50), "token and lost() {gap:?} apart");
    assert!(guard.is_lost() && !guard.is_valid() && token.is_cancelled());
    drop(guard);
    settle(&manager).await;
}

/// An acquisition that took most of the TTL (two masters answer only after 700 ms of a 1 s
/// TTL) leaves about 290 ms of validity: less than the `ttl / 3` = 333 ms period. The first
/// extension is planned from the validity left (halfway to the deadline), so it is sent and
/// succeeds once the masters are fast again, and the lock is never reported lost without an
/// extension having been tried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_extension_comes_before_the_deadline_after_a_slow_acquisition() {
    let masters = Masters::start(3);
    let proxies = proxies_for(&masters).await;
    let urls: Vec<String> = proxies.iter().map(FaultProxy::url).collect();
    let manager = manager(urls, ms(900));
    warm_up(&manager).await;
    let resource = unique_name("slow-acquire");
    proxies[1].set_reply_latency(ms(700));
    proxies[2].set_reply_latency(ms(700));
    let guard = watchdog(
        "acquire",
        manager.acquire(&resource).ttl(ms(1_000)).auto_extend(),
    )
    .await
    .unwrap();
    for p in &proxies {
        p.set_reply_latency(Duration::ZERO);
    }
    let first_deadline = guard.deadline();
    let left = guard.validity();
    assert!(
        left < ms(333),
        "the acquisition took most of the TTL ({left:?} left)"
    );
    tokio::time::sleep_until(first_deadline + ms(100)).await;
    assert!(
        !guard.is_lost() && guard.is_valid() && guard.deadline() > first_deadline,
        "extended before the deadline: lost {:?}, cause {:?}",
        guard.is_lost(),
        guard.loss_cause()
    );
    guard.release().await.unwrap();
}

/// A loss says which it was: a guard without auto-extension runs out with no extension
/// attempted (`Expired`), one whose extensions cannot reach a quorum (two masters of three
/// paused) reports that (`NoExtensionReachedQuorum`), and the warnings say the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loss_tells_an_unextended_expiry_from_failed_extensions() {
    use tokio_redlock::LossCause;
    install_warn_recorder();
    let masters = Masters::start(3);
    let manager = manager(masters.urls(), ms(100));
    warm_up(&manager).await;

    let plain = unique_name("loss-expired");
    let guard = watchdog("acquire", manager.acquire(&plain).ttl(ms(400)))
        .await
        .unwrap();
    assert_eq!(guard.loss_cause(), None);
    within(ms(2_000), "lost at the deadline", guard.lost()).await;
    assert_eq!(guard.loss_cause(), Some(LossCause::Expired));
    drop(guard);

    let extended = unique_name("loss-unreachable");
    let guard = watchdog(
        "acquire",
        manager.acquire(&extended).ttl(ms(600)).auto_extend(),
    )
    .await
    .unwrap();
    masters[1].pause();
    masters[2].pause();
    within(ms(3_000), "lost at the deadline", guard.lost()).await;
    assert_eq!(
        guard.loss_cause(),
        Some(LossCause::NoExtensionReachedQuorum)
    );
    masters[1].resume();
    masters[2].resume();
    drop(guard);
    let expired = warnings_about(&plain);
    assert!(
        expired.iter().any(|w| w.contains("no extension attempted")),
        "{expired:#?}"
    );
    let failed = warnings_about(&extended);
    assert!(
        failed
            .iter()
            .any(|w| w.contains("no extension reached a quorum")),
        "{failed:#?}"
    );
    assert!(
        failed.iter().all(|w| !w.contains("no extension attempted")),
        "{failed:#?}"
    );
}

/// `LockGuard::extend`: an explicit extension of an auto-extended lock moves the deadline and
/// the keys' TTL (compare-and-`PEXPIRE` by the watchdog), later automatic extensions use the
/// new TTL; on keys that vanished it reports `NotHeld`, never re-creates them, and the guard
/// is lost; a TTL out of range is refused before any request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explicit_extend_of_a_guard_moves_the_deadline_and_never_recreates() {
    let masters = Masters::start(3);
    let manager = warm_manager(&masters).await;
    let guard = auto_guard(&manager, ms(1_500)).await;
    within(ms(2_000), "extend", guard.extend(ms(20_000)))
        .await
        .expect("explicit extension of a held guard");
    assert!(guard.validity() > ms(15_000), "{guard:?}");
    let extended = masters.iter().filter(|s| s.pttl(b"r") > 15_000).count();
    assert!(extended >= 2, "a quorum has the new TTL");
    // The automatic extensions go on with the new TTL (every 20 s / 3, not sooner).
    tokio::time::sleep(ms(1_000)).await;
    assert!(guard.is_valid() && guard.validity() > ms(15_000));
    assert!(matches!(
        guard.extend(Duration::ZERO).await,
        Err(LockError::InvalidArgument(_))
    ));
    for s in masters.iter() {
        s.cmd(&["DEL", "r"]);
    }
    let err = within(ms(2_000), "extend", guard.extend(ms(5_000)))
        .await
        .expect_err("the keys are gone");
    // Either this extension found the keys gone (NotHeld), or the watchdog's own extension
    // did a moment before and the guard was already lost.
    assert!(err.is_not_held() || err.is_lost(), "{err}");
    assert!(guard.is_lost() && !guard.is_valid());
    assert!(
        masters.iter().all(|s| !s.exists(b"r")),
        "an extension re-created a key"
    );
    assert!(matches!(
        guard.extend(ms(5_000)).await,
        Err(LockError::Lost { .. })
    ));
    let _ = guard.release().await;
    no_keys_within(&masters, ms(1_000)).await;
    settle(&manager).await;
}
