//! The README's demo: three local Redis masters, many contending clients, one master killed
//! midway — and a check that no resource ever had two holders at once, before and after the
//! kill.
//!
//! Run it with `./scripts/demo.sh` (installs `redis-server` if missing), or directly:
//! `cargo run -p tokio-redlock --example demo` (add `--release` for optimized latency figures). It starts its own `redis-server`
//! processes on free loopback ports in temporary directories, and stops them and removes the
//! directories on every exit: at the end, on a failure, and on SIGINT or SIGTERM.
//!
//! Exit status: 0 when every resource had at most one holder at a time and locks were
//! acquired both before and after the kill; 1 otherwise; 2 when the masters could not be
//! started; 130 on SIGINT, 143 on SIGTERM.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::as_conversions,
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing
)]

use std::fs::File;
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::task::JoinSet;
use tokio_redlock::LockManager;

const MASTERS: usize = 3;
const CLIENTS: usize = 4;
const TASKS_PER_CLIENT: usize = 12;
const RESOURCES: usize = 4;
const RUN: Duration = Duration::from_secs(8);
const KILL_AT: Duration = Duration::from_secs(3);
const TTL: Duration = Duration::from_secs(2);
/// The master killed midway (0-based; printed as "master 2").
const VICTIM: usize = 1;
const INSTALL_HINT: &str =
    "if redis-server is missing or broken, install it: sudo apt-get install -y redis-server";

/// One `redis-server` child in its own temporary directory; killed, and the directory
/// removed, on drop.
struct Master {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Master {
    /// Starts a master and waits until it accepts connections; fails at once if it exits.
    async fn start() -> Result<Self, String> {
        let dir = tempfile::Builder::new()
            .prefix("redlock-demo-")
            .tempdir()
            .map_err(|e| format!("cannot create a temporary directory: {e}"))?;
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("cannot find a free port: {e}"))?
            .port();
        let log = File::create(dir.path().join("redis-server.log"))
            .and_then(|f| Ok((f.try_clone()?, f)))
            .map_err(|e| format!("cannot create the redis-server log: {e}"))?;
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(log.0)
            .stderr(log.1)
            .spawn()
            .map_err(|e| format!("cannot run redis-server ({e}); {INSTALL_HINT}"))?;
        // From here on, dropping `master` (on an error return, or when the caller's future is
        // dropped on a signal) stops the child and removes the directory.
        let mut master = Self { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match master.child.try_wait() {
                Ok(None) => {}
                Ok(Some(status)) => {
                    return Err(format!(
                        "redis-server exited at start ({status}){}; {INSTALL_HINT}",
                        master.last_log_line()
                    ));
                }
                Err(e) => return Err(format!("cannot watch redis-server: {e}")),
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(master);
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "redis-server on port {port} accepted no connection within 5 s{}",
                    master.last_log_line()
                ));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// `: <last line of the server's output>`, or nothing when it wrote none.
    fn last_log_line(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("redis-server.log"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .map(str::to_owned)
            })
            .map(|l| format!(": {}", l.trim()))
            .unwrap_or_default()
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
        // The `TempDir` field is dropped (the directory removed) after this.
        self.kill();
    }
}

/// Per-resource counts of the critical sections that started in one window.
#[derive(Default)]
struct Window {
    acquisitions: [AtomicU64; RESOURCES],
    max_holders: [AtomicUsize; RESOURCES],
}

/// What every task records.
#[derive(Default)]
struct Stats {
    holders: [AtomicUsize; RESOURCES],
    /// Set once the victim master is dead: later critical sections belong to window 1.
    killed: AtomicBool,
    /// 0: before the kill, 1: after it.
    windows: [Window; 2],
    conflicts: AtomicU64,
    unavailable: AtomicU64,
    other_errors: AtomicU64,
    invalid_at_exit: AtomicU64,
    unconfirmed_unlocks: AtomicU64,
    lock_us: Latencies,
    unlock_us: Latencies,
}

/// Latencies in µs, in an HDR histogram (3 significant digits), as `redlock bench` and
/// `redlock-bench` keep them.
struct Latencies(std::sync::Mutex<hdrhistogram::Histogram<u64>>);

impl Default for Latencies {
    fn default() -> Self {
        // 1 µs to 1 h (longer samples count as 1 h), 3 significant digits: valid bounds.
        let histogram = hdrhistogram::Histogram::new_with_bounds(1, 3_600_000_000, 3)
            .unwrap_or_else(|_| unreachable!("valid histogram bounds"));
        Self(std::sync::Mutex::new(histogram))
    }
}

/// SIGINT and SIGTERM, installed before any master starts.
struct Signals {
    interrupt: Signal,
    terminate: Signal,
}

impl Signals {
    fn new() -> std::io::Result<Self> {
        Ok(Self {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    /// Waits for either signal; returns its name and the conventional exit status.
    async fn recv(&mut self) -> (&'static str, u8) {
        tokio::select! {
            _ = self.interrupt.recv() => ("SIGINT", 130),
            _ = self.terminate.recv() => ("SIGTERM", 143),
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let mut signals = match Signals::new() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("demo: cannot install the SIGINT/SIGTERM handlers: {e}");
            return ExitCode::from(2);
        }
    };
    // Every master lives in `masters` (or, while starting, in the future that starts it), so
    // each path out of `main` below stops them and removes their directories.
    let started = tokio::select! {
        sig = signals.recv() => return interrupted(sig, Vec::new()),
        r = start_masters() => r,
    };
    let mut masters = match started {
        Ok(m) => m,
        Err(e) => {
            eprintln!("demo: {e}");
            return ExitCode::from(2);
        }
    };
    let stats = Arc::new(Stats::default());
    let result = tokio::select! {
        sig = signals.recv() => return interrupted(sig, masters),
        r = contend(&mut masters, &stats) => r,
    };
    drop(masters);
    match result {
        Ok(elapsed) if report(&stats, elapsed) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("demo: {e}");
            ExitCode::from(2)
        }
    }
}

/// The exit on a signal: the workers are already dropped (aborted) by `select!`.
fn interrupted((name, status): (&str, u8), masters: Vec<Master>) -> ExitCode {
    drop(masters);
    eprintln!("demo: {name}: stopped the redis-servers and removed their directories");
    ExitCode::from(status)
}

async fn start_masters() -> Result<Vec<Master>, String> {
    let mut masters = Vec::with_capacity(MASTERS);
    for _ in 0..MASTERS {
        masters.push(Master::start().await?);
    }
    Ok(masters)
}

/// Runs the contention and the kill; returns the time the run took.
async fn contend(masters: &mut [Master], stats: &Arc<Stats>) -> Result<Duration, String> {
    let urls: Vec<String> = masters.iter().map(Master::url).collect();
    let ports: Vec<String> = masters.iter().map(|m| m.port.to_string()).collect();
    println!(
        "tokio-redlock demo: {MASTERS} Redis masters on 127.0.0.1, ports {}",
        ports.join(", ")
    );
    println!(
        "{CLIENTS} clients × {TASKS_PER_CLIENT} tasks contend for {RESOURCES} resources for {} s (lock TTL {} s); master {} is killed at t={} s",
        RUN.as_secs(),
        TTL.as_secs(),
        VICTIM + 1,
        KILL_AT.as_secs()
    );

    let started = Instant::now();
    // Dropping the set (on a signal) aborts every task.
    let mut tasks = JoinSet::new();
    for client in 0..CLIENTS {
        // Each client is an independent manager with its own connections, as separate
        // processes or hosts would be.
        let manager = LockManager::builder()
            .servers(urls.clone())
            .ttl(TTL)
            // Waiters wake on the holder's release notification (or its expiry); the
            // retry delay is only the fallback.
            .build()
            .map_err(|e| format!("bad demo configuration: {e}"))?;
        for task in 0..TASKS_PER_CLIENT {
            let (manager, stats) = (manager.clone(), Arc::clone(stats));
            tasks.spawn(async move {
                let mut i = client * TASKS_PER_CLIENT + task;
                while started.elapsed() < RUN {
                    i = i.wrapping_mul(31).wrapping_add(7);
                    worker_round(&manager, &stats, i % RESOURCES, started).await;
                }
            });
        }
    }
    tokio::time::sleep_until(tokio::time::Instant::from_std(started + KILL_AT)).await;
    masters[VICTIM].kill();
    stats.killed.store(true, Ordering::SeqCst);
    println!(
        "t={:.1} s: master {} (port {}) killed",
        started.elapsed().as_secs_f64(),
        VICTIM + 1,
        masters[VICTIM].port
    );
    while let Some(joined) = tasks.join_next().await {
        if let Err(e) = joined {
            return Err(format!("a worker task failed: {e}"));
        }
    }
    Ok(started.elapsed())
}

async fn worker_round(manager: &LockManager, stats: &Stats, r: usize, started: Instant) {
    let resource = format!("demo:resource:{r}");
    let t0 = Instant::now();
    let mut lock = match manager.lock(&resource).wait_forever().await {
        Ok(lock) => lock,
        Err(e) => {
            let (counter, kind) = if e.is_conflict() {
                (&stats.conflicts, "conflict")
            } else if e.is_unavailable() {
                (&stats.unavailable, "unavailable")
            } else {
                (&stats.other_errors, "other")
            };
            // Print the first error of each kind; count the rest.
            if counter.fetch_add(1, Ordering::Relaxed) == 0 && started.elapsed() < RUN {
                eprintln!(
                    "t={:.1} s: first lock() error ({kind}): {e}",
                    started.elapsed().as_secs_f64()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            return;
        }
    };
    push(&stats.lock_us, t0.elapsed());
    // Critical section: count holders of this resource right now, in the window where it
    // started.
    let now = stats.holders[r].fetch_add(1, Ordering::SeqCst) + 1;
    let window = &stats.windows[usize::from(stats.killed.load(Ordering::SeqCst))];
    window.max_holders[r].fetch_max(now, Ordering::SeqCst);
    window.acquisitions[r].fetch_add(1, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(1)).await;
    if !lock.is_valid() {
        stats.invalid_at_exit.fetch_add(1, Ordering::Relaxed);
    }
    stats.holders[r].fetch_sub(1, Ordering::SeqCst);
    let t1 = Instant::now();
    if manager.unlock(&mut lock).await.is_err() {
        stats.unconfirmed_unlocks.fetch_add(1, Ordering::Relaxed);
    }
    push(&stats.unlock_us, t1.elapsed());
}

fn push(samples: &Latencies, d: Duration) {
    if let Ok(mut h) = samples.0.lock() {
        h.saturating_record(u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    }
}

/// The `p`-quantile of the samples, formatted with its unit.
fn percentile(samples: &Latencies, p: f64) -> String {
    let us = match samples.0.lock() {
        Ok(h) if !h.is_empty() => h.value_at_quantile(p),
        _ => return "n/a".to_owned(),
    };
    if us < 1_000 {
        format!("{us} µs")
    } else {
        format!("{:.1} ms", us as f64 / 1000.0)
    }
}

/// Prints the results; true when mutual exclusion held and both windows saw acquisitions.
fn report(stats: &Stats, elapsed: Duration) -> bool {
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let totals = stats
        .windows
        .each_ref()
        .map(|w| w.acquisitions.iter().map(load).sum::<u64>());
    let total = totals[0] + totals[1];
    let max_holders = stats
        .windows
        .each_ref()
        .map(|w| w.max_holders.each_ref().map(|m| m.load(Ordering::SeqCst)));
    println!();
    let (kill, run) = (KILL_AT.as_secs(), RUN.as_secs());
    println!(
        "                      before the kill (0-{kill} s)    after the kill ({kill}-{run} s)"
    );
    println!("resource              acquisitions  max holders  acquisitions  max holders");
    let [before, after] = &stats.windows;
    for r in 0..RESOURCES {
        println!(
            "demo:resource:{r}      {:>12}  {:>11}  {:>12}  {:>11}",
            load(&before.acquisitions[r]),
            before.max_holders[r].load(Ordering::SeqCst),
            load(&after.acquisitions[r]),
            after.max_holders[r].load(Ordering::SeqCst)
        );
    }
    println!(
        "total                 {:>12}  {:>11}  {:>12}",
        totals[0], "", totals[1]
    );
    println!();
    let secs = elapsed.as_secs_f64();
    println!(
        "acquisitions: {total} in {secs:.1} s ({:.0} per s; the time includes the last \
         holders finishing after the contention ended)",
        total as f64 / secs
    );
    println!(
        "lock() latency, incl. waiting for the holder: p50 {}, p99 {}",
        percentile(&stats.lock_us, 0.50),
        percentile(&stats.lock_us, 0.99)
    );
    println!(
        "unlock() latency:                             p50 {}, p99 {}",
        percentile(&stats.unlock_us, 0.50),
        percentile(&stats.unlock_us, 0.99)
    );
    println!(
        "lock() errors: {} conflicts after all retries, {} unavailable (no quorum), {} other",
        load(&stats.conflicts),
        load(&stats.unavailable),
        load(&stats.other_errors)
    );
    println!(
        "unconfirmed unlocks: {}; locks invalid at the end of their critical section: {}",
        load(&stats.unconfirmed_unlocks),
        load(&stats.invalid_at_exit)
    );
    println!(
        "  (unconfirmed: no quorum confirmed it, e.g. one master gone, a rival's partial key on another; the key expires by its {} s TTL)",
        TTL.as_secs()
    );
    let mut ok = true;
    for (w, name) in ["before", "after"].into_iter().enumerate() {
        for (r, &max) in max_holders[w].iter().enumerate() {
            if max > 1 {
                println!(
                    "FAILED: demo:resource:{r} had {max} simultaneous holders {name} the kill"
                );
                ok = false;
            }
        }
        if totals[w] == 0 {
            println!("FAILED: no lock was acquired {name} the kill");
            ok = false;
        }
    }
    if ok {
        println!(
            "OK: mutual exclusion held on every resource before and after the kill (at most 1 holder at a time)"
        );
    }
    ok
}
