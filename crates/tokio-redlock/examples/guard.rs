//! A guard that extends its lock while the work runs, and stops the work the moment the lock
//! can no longer be trusted: `tokio::select!` on `guard.lost()`.
//!
//! ```sh
//! REDLOCK_SERVERS=redis://127.0.0.1:7001,redis://127.0.0.1:7002,redis://127.0.0.1:7003 \
//!     cargo run -p tokio-redlock --example guard
//! ```
#![allow(clippy::print_stdout)]

use std::time::Duration;

use tokio_redlock::LockManagerBuilder;

/// Batches of the job; with 400 ms each the job outlives the 1 s TTL, so it needs extensions.
const BATCHES: u32 = 5;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manager = LockManagerBuilder::from_env()?.build()?;

    // `auto_extend()` extends the lock every ttl/3 in the background. If no extension
    // succeeds before the deadline (masters down, or the lock expired or was taken), the
    // guard is *lost*: `lost()` resolves, `is_valid()` turns false and its
    // `cancellation_token()` is cancelled — no later than the deadline, so before anyone
    // else can acquire the resource.
    let guard = manager
        .acquire("examples:guard")
        .ttl(Duration::from_secs(1))
        .auto_extend()
        .await?;
    println!(
        "acquired examples:guard with a {} ms TTL",
        guard.ttl().as_millis()
    );

    for batch in 0..BATCHES {
        tokio::select! {
            // Checked first: never start a batch on a lost lock.
            biased;
            () = guard.lost() => {
                // Stop now: after the deadline another process may hold the resource.
                return Err(format!("lock lost during batch {batch}; stopped").into());
            }
            () = process_batch(batch) => {}
        }
    }
    println!("{BATCHES} batches done, the lock was extended meanwhile");

    // Releasing reports the outcome; dropping the guard would release in the background.
    guard.release().await?;
    println!("released");

    // The same in one call: the closure's future is dropped if the lock is lost, and the
    // call returns `Err(LockError::Lost)`.
    let rows = manager
        .with_lock("examples:guard", |lock| async move {
            // Hand the token to spawned tasks that must stop with the lock.
            let stop = lock.cancellation_token();
            let worker = tokio::spawn(async move {
                tokio::select! {
                    () = stop.cancelled() => 0,
                    () = tokio::time::sleep(Duration::from_millis(100)) => 42,
                }
            });
            worker.await.unwrap_or(0)
        })
        .await?;
    println!("with_lock returned {rows}");

    manager.close().await;
    Ok(())
}

/// One unit of work; cancelled at its current `.await` if the lock is lost.
async fn process_batch(n: u32) {
    tokio::time::sleep(Duration::from_millis(400)).await;
    println!("batch {n} done");
}
