//! Shared integration-test support: real `redis-server` masters, an
//! in-process TCP fault proxy, and the helpers and checks the test files share.
//!
//! Every test file includes this with `mod support;` and uses only part of
//! it, hence `dead_code`. Tests are allowed to unwrap and panic loudly.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::as_conversions,
    clippy::print_stdout,
    clippy::print_stderr
)]

pub mod checks;
pub mod cluster;
pub mod diagnostics;
pub mod drops;
pub mod proxy;
pub mod sentinel;
#[macro_use]
pub mod servers;
#[cfg(feature = "tls")]
pub mod tls;

use std::time::Duration;

/// Polls `cond` every 10 ms until it returns true or `timeout` elapses;
/// returns whether it became true.
pub async fn eventually(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A unique-enough key/resource name for one test, so tests sharing a
/// server (they normally don't) cannot collide.
pub fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{n}", std::process::id())
}
