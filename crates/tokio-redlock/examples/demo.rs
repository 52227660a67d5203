//! The README's demo: three local Redis masters, many contending clients, one master killed
//! midway — and a check that no resource ever had two holders at once.
//!
//! Run it with `./scripts/demo.sh` (installs `redis-server` if missing), or directly:
//! `cargo run --release -p tokio-redlock --example demo`. It starts its own `redis-server`
//! processes on free loopback ports in temporary directories and stops them at the end.
//!
//! Exit status: 0 when every resource had at most one holder at a time, 1 otherwise, 2 when
//! the masters could not be started.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::as_conversions,
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio_redlock::{LockError, LockManager};

const MASTERS: usize = 3;
const CLIENTS: usize = 4;
const TASKS_PER_CLIENT: usize = 12;
const RESOURCES: usize = 4;
const RUN: Duration = Duration::from_secs(8);
const KILL_AT: Duration = Duration::from_secs(3);

/// One `redis-server` child, killed on drop.
struct Master {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Master {
    fn start() -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", ""])
            .args(["--appendonly", "no", "--dir"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start redis-server ({e}); install it: sudo apt-get install -y redis-server"))?;
        let master = Self {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err(format!("redis-server on port {port} did not start"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(master)
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Master {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What every task records.
#[derive(Default)]
struct Stats {
    acquisitions: [AtomicU64; RESOURCES],
    holders: [AtomicUsize; RESOURCES],
    max_holders: [AtomicUsize; RESOURCES],
    conflicts: AtomicU64,
    unavailable: AtomicU64,
    invalid_at_exit: AtomicU64,
    unlock_errors: AtomicU64,
    lock_us: std::sync::Mutex<Vec<u64>>,
    unlock_us: std::sync::Mutex<Vec<u64>>,
}

#[tokio::main]
async fn main() {
    let mut masters = Vec::new();
    for _ in 0..MASTERS {
        match Master::start() {
            Ok(m) => masters.push(m),
            Err(e) => {
                eprintln!("demo: {e}");
                std::process::exit(2);
            }
        }
    }
    let urls: Vec<String> = masters.iter().map(Master::url).collect();
    println!("tokio-redlock demo: {MASTERS} masters {urls:?}");
    println!(
        "{CLIENTS} clients × {TASKS_PER_CLIENT} tasks contend for {RESOURCES} resources for {RUN:?}; master 2 is killed at {KILL_AT:?}"
    );

    let stats = Arc::new(Stats::default());
    let started = Instant::now();
    let mut tasks = Vec::new();
    for client in 0..CLIENTS {
        // Each client is an independent manager with its own connections, as separate
        // processes or hosts would be.
        let manager = LockManager::builder()
            .servers(urls.clone())
            .ttl(Duration::from_secs(2))
            .retry_count(u32::MAX)
            .retry_delay(Duration::from_millis(4))
            .retry_jitter(Duration::from_millis(3))
            .build()
            .unwrap_or_else(|e| panic!("bad demo configuration: {e}"));
        for task in 0..TASKS_PER_CLIENT {
            let (manager, stats) = (manager.clone(), Arc::clone(&stats));
            tasks.push(tokio::spawn(async move {
                let mut i = client * TASKS_PER_CLIENT + task;
                while started.elapsed() < RUN {
                    i = i.wrapping_mul(31).wrapping_add(7);
                    let r = i % RESOURCES;
                    worker_round(&manager, &stats, r, started).await;
                }
            }));
        }
    }
    tokio::time::sleep_until(tokio::time::Instant::from_std(started + KILL_AT)).await;
    masters[1].kill();
    println!(
        "t={:.1}s: master 2 ({}) killed",
        started.elapsed().as_secs_f64(),
        urls[1]
    );
    for t in tasks {
        let _ = t.await;
    }
    report(&stats, started.elapsed());
}

async fn worker_round(manager: &LockManager, stats: &Stats, r: usize, started: Instant) {
    let resource = format!("demo:resource:{r}");
    let t0 = Instant::now();
    let mut lock = match manager.lock(&resource).await {
        Ok(lock) => lock,
        Err(LockError::Conflict { .. }) => {
            stats.conflicts.fetch_add(1, Ordering::Relaxed);
            return;
        }
        Err(e) => {
            stats.unavailable.fetch_add(1, Ordering::Relaxed);
            if started.elapsed() < RUN {
                eprintln!("lock error: {e}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            return;
        }
    };
    push(&stats.lock_us, t0.elapsed());
    // Critical section: count holders of this resource right now.
    let now = stats.holders[r].fetch_add(1, Ordering::SeqCst) + 1;
    stats.max_holders[r].fetch_max(now, Ordering::SeqCst);
    stats.acquisitions[r].fetch_add(1, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(1)).await;
    if !lock.is_valid() {
        stats.invalid_at_exit.fetch_add(1, Ordering::Relaxed);
    }
    stats.holders[r].fetch_sub(1, Ordering::SeqCst);
    let t1 = Instant::now();
    if manager.unlock(&mut lock).await.is_err() {
        // E.g. right after the kill: one master gone and a rival's partial key on another
        // leave too few confirmations. The key still expires by its TTL.
        stats.unlock_errors.fetch_add(1, Ordering::Relaxed);
    }
    push(&stats.unlock_us, t1.elapsed());
}

fn push(samples: &std::sync::Mutex<Vec<u64>>, d: Duration) {
    if let Ok(mut s) = samples.lock() {
        s.push(d.as_micros() as u64);
    }
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let idx = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn report(stats: &Stats, elapsed: Duration) {
    let mut lock_us = stats.lock_us.lock().map(|v| v.clone()).unwrap_or_default();
    let mut unlock_us = stats
        .unlock_us
        .lock()
        .map(|v| v.clone())
        .unwrap_or_default();
    lock_us.sort_unstable();
    unlock_us.sort_unstable();
    let total: u64 = stats
        .acquisitions
        .iter()
        .map(|a| a.load(Ordering::Relaxed))
        .sum();
    println!();
    println!("resource            acquisitions   max simultaneous holders");
    let mut safe = true;
    for r in 0..RESOURCES {
        let max = stats.max_holders[r].load(Ordering::SeqCst);
        safe &= max <= 1;
        println!(
            "demo:resource:{r}    {:>12}   {max}",
            stats.acquisitions[r].load(Ordering::Relaxed)
        );
    }
    println!();
    println!(
        "acquisitions: {total} in {:.1}s ({:.0}/s)",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64()
    );
    println!(
        "lock()   latency incl. waiting: p50 {} µs, p99 {} µs",
        percentile(&lock_us, 0.50),
        percentile(&lock_us, 0.99)
    );
    println!(
        "unlock() latency:               p50 {} µs, p99 {} µs",
        percentile(&unlock_us, 0.50),
        percentile(&unlock_us, 0.99)
    );
    println!(
        "errors: {} conflicts after retries, {} no-quorum, {} unconfirmed unlocks; locks invalid at exit of the critical section: {}",
        stats.conflicts.load(Ordering::Relaxed),
        stats.unavailable.load(Ordering::Relaxed),
        stats.unlock_errors.load(Ordering::Relaxed),
        stats.invalid_at_exit.load(Ordering::Relaxed)
    );
    let max = stats
        .max_holders
        .iter()
        .map(|m| m.load(Ordering::SeqCst))
        .max()
        .unwrap_or(0);
    println!("max simultaneous holders: {max}");
    if safe && total > 0 {
        println!("OK: mutual exclusion held on every resource, before and after the kill");
    } else {
        println!("FAILED: mutual exclusion violated or nothing acquired");
        std::process::exit(1);
    }
}
