//! The `lock-worker` process: one worker in its own process, so the nemesis can SIGSTOP a
//! whole client (design note §4.1, F8). It records its history to a file and writes to the
//! orchestrator's fenced register over TCP; it stops when its stdin closes.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use tokio_redlock::LockManager;

use crate::history::Recorder;
use crate::register::{RegisterHandle, RemoteRegister};
use crate::worker::{WorkerConfig, WorkerMode, Workload, leak_check, run_worker};

/// Arguments of `lock-worker` (all durations in ms).
#[derive(Clone, Debug, Parser)]
#[command(
    name = "lock-worker",
    about = "One redlock-faults worker in its own process (stops when stdin closes)"
)]
pub struct LockWorkerArgs {
    /// Process name in the history (`p0`).
    #[arg(long)]
    pub name: String,
    /// Comma-separated master URLs (the worker's own proxies).
    #[arg(long, value_delimiter = ',')]
    pub servers: Vec<String>,
    /// The fenced register service, `127.0.0.1:port`.
    #[arg(long)]
    pub register: SocketAddr,
    /// History file (JSON lines).
    #[arg(long)]
    pub history: PathBuf,
    /// Comma-separated resources.
    #[arg(long, value_delimiter = ',')]
    pub resources: Vec<String>,
    /// Lock TTL.
    #[arg(long, default_value_t = 600)]
    pub ttl_ms: u64,
    /// Per-master timeout.
    #[arg(long, default_value_t = 60)]
    pub node_timeout_ms: u64,
    /// Connect timeout.
    #[arg(long, default_value_t = 250)]
    pub connect_timeout_ms: u64,
    /// Retry delay.
    #[arg(long, default_value_t = 60)]
    pub retry_delay_ms: u64,
    /// Retry jitter.
    #[arg(long, default_value_t = 30)]
    pub retry_jitter_ms: u64,
    /// Patience of one acquisition.
    #[arg(long, default_value_t = 4_800)]
    pub acquire_wait_ms: u64,
    /// Margin before the deadline for the first write.
    #[arg(long, default_value_t = 75)]
    pub margin_ms: u64,
    /// The unchecked gap between the two writes of a critical section.
    #[arg(long, default_value_t = 200)]
    pub work_ms: u64,
    /// Seed of the worker's choices.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Stop after this long even if stdin stays open (a safety net).
    #[arg(long, default_value_t = 3_600)]
    pub max_seconds: u64,
}

/// Runs a `lock-worker` until its stdin closes.
///
/// # Errors
///
/// When the history file, the manager or the register connection cannot be set up.
pub fn lock_worker_main(args: LockWorkerArgs) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    runtime.block_on(run(args))
}

async fn run(args: LockWorkerArgs) -> Result<(), String> {
    let rec = Recorder::file(&args.name, &args.history)
        .map_err(|e| format!("history {}: {e}", args.history.display()))?;
    let ms = Duration::from_millis;
    let manager = LockManager::builder()
        .servers(args.servers.clone())
        .ttl(ms(args.ttl_ms))
        .node_timeout(ms(args.node_timeout_ms))
        .connect_timeout(ms(args.connect_timeout_ms))
        .retry_delay(ms(args.retry_delay_ms))
        .retry_jitter(ms(args.retry_jitter_ms))
        .fencing(true)
        .build()
        .map_err(|e| format!("manager: {e}"))?;
    let remote = RemoteRegister::connect(args.register)
        .await
        .map_err(|e| format!("register {}: {e}", args.register))?;
    let register = Arc::new(RegisterHandle::Remote(tokio::sync::Mutex::new(remote)));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // Stop when stdin closes (the orchestrator drops its end), or after the safety net.
    let stdin_stop = stop_tx.clone();
    std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
        let _ = stdin_stop.send(true);
    });
    let max = ms(args.max_seconds.saturating_mul(1_000));
    tokio::spawn(async move {
        tokio::time::sleep(max).await;
        let _ = stop_tx.send(true);
    });
    let cfg = WorkerConfig {
        name: args.name.clone(),
        resources: args.resources.clone(),
        workload: Workload::Mutex,
        ttl: ms(args.ttl_ms),
        acquire_wait: ms(args.acquire_wait_ms),
        hold: (ms(5), ms(args.ttl_ms.checked_div(10).unwrap_or(1))),
        overrun_chance: 0.0,
        extend_chance: 0.0,
        mode: WorkerMode::Unchecked {
            work: ms(args.work_ms),
        },
        margin: ms(args.margin_ms),
        backoff: (ms(10), ms(50)),
        seed: args.seed,
    };
    let stall = crate::stall::StallDetector::start(
        rec.clone(),
        vec![args.name.clone()],
        crate::scenario::STALL_THRESHOLD,
    );
    run_worker(manager.clone(), cfg, register, rec.clone(), stop_rx).await;
    drop(stall);
    leak_check(&manager, &rec, Duration::from_secs(3)).await;
    manager.close().await;
    rec.flush();
    Ok(())
}
