//! Waiting for a lock with a timeout, and telling "busy" (another holder has it) from
//! "Redis down" (too few masters answered: nobody can say who holds it).
//!
//! Two managers stand for two processes: `holder` takes the lock, `waiter` waits for it —
//! first for 300 ms (too short: busy), then for 5 s while the holder releases after 200 ms
//! (the waiter is woken by the release notification and gets the lock at once).
//!
//! ```sh
//! REDLOCK_SERVERS=redis://127.0.0.1:7001,redis://127.0.0.1:7002,redis://127.0.0.1:7003 \
//!     cargo run -p tokio-redlock --example wait_timeout
//! ```
//!
//! Exit status: 0; 69 (`EX_UNAVAILABLE`, as the `redlock` CLI) when Redis is down; 1 on other
//! errors.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;
use std::time::{Duration, Instant};

use tokio_redlock::{Lock, LockError, LockManager, LockManagerBuilder};

const RESOURCE: &str = "examples:wait_timeout";

#[tokio::main]
async fn main() -> Result<ExitCode, Box<dyn std::error::Error>> {
    let holder = LockManagerBuilder::from_env()?.build()?;
    let waiter = LockManagerBuilder::from_env()?.build()?;

    let held = match holder.lock(RESOURCE).ttl(Duration::from_secs(10)).await {
        Ok(lock) => lock,
        Err(e) => return Ok(report(&e)),
    };
    println!("holder: acquired {RESOURCE}");

    // 1. Wait at most 300 ms. The holder keeps the lock, so this ends in a conflict once
    //    the 300 ms have passed — not after retry_count attempts.
    let started = Instant::now();
    match waiter.lock(RESOURCE).wait(Duration::from_millis(300)).await {
        Ok(mut lock) => {
            // Not expected here; release what we got.
            waiter.unlock(&mut lock).await?;
        }
        Err(e) if e.is_conflict() => println!(
            "waiter: busy, gave up after {} ms (held by another holder)",
            started.elapsed().as_millis()
        ),
        Err(e) => return Ok(report(&e)),
    }

    // 2. The holder releases in 200 ms; the waiter is willing to wait 5 s.
    let releaser = tokio::spawn(release_later(holder.clone(), held));
    let started = Instant::now();
    let mut lock = match waiter.lock(RESOURCE).wait(Duration::from_secs(5)).await {
        Ok(lock) => lock,
        Err(e) => return Ok(report(&e)),
    };
    println!(
        "waiter: acquired {} ms after it started waiting (woken by the release)",
        started.elapsed().as_millis()
    );
    releaser.await??;
    waiter.unlock(&mut lock).await?;

    holder.close().await;
    waiter.close().await;
    Ok(ExitCode::SUCCESS)
}

/// Prints what a failed acquisition means and picks the exit status.
fn report(e: &LockError) -> ExitCode {
    if e.is_conflict() {
        // Someone else holds it: retry later, or wait longer.
        println!("busy: {e}");
        ExitCode::from(1)
    } else if e.is_unavailable() {
        // Too few masters answered. Not "busy": the lock's state is unknown, and waiting
        // longer does not help (a wait ends at once on it). Alert, back off, retry later.
        eprintln!("Redis down: {e}");
        ExitCode::from(69)
    } else {
        eprintln!("error: {e}");
        ExitCode::from(1)
    }
}

/// The holder finishing its work 200 ms from now and releasing.
async fn release_later(manager: LockManager, mut lock: Lock) -> Result<(), LockError> {
    tokio::time::sleep(Duration::from_millis(200)).await;
    manager.unlock(&mut lock).await?;
    println!("holder: released");
    Ok(())
}
