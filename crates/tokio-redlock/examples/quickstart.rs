//! Lock and unlock: acquire a lock, do the work before its deadline, extend it when the work
//! runs long, and release it.
//!
//! The masters come from `REDLOCK_SERVERS`, a comma-separated list of URLs (three independent
//! masters; see the README's "Examples" for starting three local ones):
//!
//! ```sh
//! REDLOCK_SERVERS=redis://127.0.0.1:7001,redis://127.0.0.1:7002,redis://127.0.0.1:7003 \
//!     cargo run -p tokio-redlock --example quickstart
//! ```
#![allow(clippy::print_stdout)]

use std::time::Duration;

use tokio_redlock::{Lock, LockManagerBuilder};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // `from_env` reads REDLOCK_SERVERS; unset, it is an error (never a silent default).
    // `build` validates the settings and does not connect: masters are reached on first use.
    let manager = LockManagerBuilder::from_env()?
        .ttl(Duration::from_secs(10))
        .build()?;
    println!(
        "{} masters, a lock needs {} of them",
        manager.masters().count(),
        manager.quorum()
    );

    // `lock` makes up to 4 attempts (retry_count 3, 200 ms ± 100 ms apart) and returns a
    // typed error: `is_conflict()` when another holder has the resource, `is_unavailable()`
    // when too few masters answered.
    let mut lock = match manager.lock("examples:quickstart").await {
        Ok(lock) => lock,
        Err(e) if e.is_conflict() => {
            println!("another process holds examples:quickstart; try again later");
            manager.close().await;
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    println!(
        "acquired examples:quickstart, valid for {} ms",
        lock.validity().as_millis()
    );

    do_some_work(&lock).await;

    // More work than the TTL allows? Extend before the deadline: the TTL restarts from now
    // (only where the key still holds our token; an expired lock is never re-created).
    manager.extend(&mut lock, Duration::from_secs(10)).await?;
    println!("extended, valid for {} ms", lock.validity().as_millis());

    do_some_work(&lock).await;

    // Compare-and-delete on every master; the handle is invalid afterwards.
    manager.unlock(&mut lock).await?;
    println!("released (still valid: {})", lock.is_valid());

    // Awaits background cleanups and drops the connections.
    manager.close().await;
    Ok(())
}

/// The critical section. It must finish before `lock.deadline()`: `is_valid()` turns false
/// by itself when the deadline passes (a monotonic clock, not the wall clock).
async fn do_some_work(lock: &Lock) {
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(lock.is_valid(), "the work overran the lock's validity");
}
