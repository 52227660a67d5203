//! `redlock bench`: lock/unlock latency and throughput against the user's own masters.
//!
//! Until the benchmark crate (`redlock-bench`) has its scenarios, this runs one: sequential
//! lock/unlock cycles on one resource. [`run_scenarios`] is the seam where the benchmark
//! crate's scenarios will be called instead.

use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;
use tokio_redlock::{LockError, LockManager};

use crate::cli::{BenchArgs, Common};
use crate::exit;
use crate::report::{Report, output};

/// What the benchmark measured.
#[derive(Debug, Serialize)]
pub(crate) struct BenchReport {
    masters: usize,
    quorum: usize,
    resource: String,
    cycles: u32,
    conflicts: u32,
    elapsed_ms: f64,
    cycles_per_sec: f64,
    lock_p50_us: u64,
    lock_p99_us: u64,
    unlock_p50_us: u64,
    unlock_p99_us: u64,
}

/// Runs `redlock bench` and returns the exit code.
pub(crate) async fn run(args: BenchArgs, common: &Common, report: Report) -> u8 {
    let manager = match crate::build_manager(common, args.ttl, false) {
        Ok(m) => m,
        Err(e) => {
            report.error(e);
            return exit::USAGE;
        }
    };
    let result = run_scenarios(&manager, &args).await;
    manager.close().await;
    let bench = match result {
        Ok(b) => b,
        Err(e) if e.is_unavailable() => {
            report.error(e);
            return exit::UNAVAILABLE;
        }
        Err(e) => {
            report.error(e);
            return exit::SOFTWARE;
        }
    };
    if args.json {
        match serde_json::to_string_pretty(&bench) {
            Ok(text) => output(text),
            Err(e) => {
                report.error(format_args!("cannot write JSON: {e}"));
                return exit::SOFTWARE;
            }
        }
    } else {
        output(format_args!(
            "redlock bench: {} master(s), quorum {}, resource `{}`: {} cycles in {:.2} s ({} conflicts)",
            bench.masters,
            bench.quorum,
            bench.resource,
            bench.cycles,
            bench.elapsed_ms / 1000.0,
            bench.conflicts
        ));
        output(format_args!(
            "  lock    p50 {:>7} µs   p99 {:>7} µs",
            bench.lock_p50_us, bench.lock_p99_us
        ));
        output(format_args!(
            "  unlock  p50 {:>7} µs   p99 {:>7} µs",
            bench.unlock_p50_us, bench.unlock_p99_us
        ));
        output(format_args!("  {:.0} cycles/s", bench.cycles_per_sec));
    }
    exit::OK
}

/// The benchmark scenarios; for now sequential lock/unlock cycles.
async fn run_scenarios(manager: &LockManager, args: &BenchArgs) -> Result<BenchReport, LockError> {
    let resource = args
        .resource
        .clone()
        .unwrap_or_else(|| format!("redlock-bench:{}", std::process::id()));
    let mut locks = Vec::new();
    let mut unlocks = Vec::new();
    let mut conflicts = 0u32;
    let start = Instant::now();
    let stop = start.checked_add(args.duration);
    while u32::try_from(locks.len()).unwrap_or(u32::MAX) < args.cycles
        && stop.is_none_or(|s| Instant::now() < s)
    {
        let t = Instant::now();
        let mut lock = match manager.lock(&resource).retry_count(0).ttl(args.ttl).await {
            Ok(lock) => lock,
            Err(e) if e.is_conflict() || e.is_validity_exhausted() => {
                conflicts = conflicts.saturating_add(1);
                continue;
            }
            Err(e) => return Err(e),
        };
        locks.push(t.elapsed());
        let t = Instant::now();
        manager.unlock(&mut lock).await?;
        unlocks.push(t.elapsed());
    }
    let elapsed = start.elapsed();
    let cycles = u32::try_from(locks.len()).unwrap_or(u32::MAX);
    let secs = elapsed.as_secs_f64();
    Ok(BenchReport {
        masters: manager.masters().count(),
        quorum: manager.quorum(),
        resource,
        cycles,
        conflicts,
        elapsed_ms: secs * 1000.0,
        cycles_per_sec: if secs > 0.0 {
            f64::from(cycles) / secs
        } else {
            0.0
        },
        lock_p50_us: percentile_us(&mut locks, 50),
        lock_p99_us: percentile_us(&mut locks, 99),
        unlock_p50_us: percentile_us(&mut unlocks, 50),
        unlock_p99_us: percentile_us(&mut unlocks, 99),
    })
}

/// The `p`-th percentile (nearest rank) in whole microseconds; 0 without samples.
fn percentile_us(samples: &mut [Duration], p: usize) -> u64 {
    samples.sort_unstable();
    let n = samples.len();
    // Nearest rank: ceil(p/100 × n), 1-based.
    let rank = p.saturating_mul(n).div_ceil(100).max(1);
    samples
        .get(rank.saturating_sub(1))
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let mut s: Vec<Duration> = (1..=100).rev().map(Duration::from_micros).collect();
        assert_eq!(percentile_us(&mut s, 50), 50);
        assert_eq!(percentile_us(&mut s, 99), 99);
        assert_eq!(percentile_us(&mut [], 99), 0);
        assert_eq!(percentile_us(&mut [Duration::from_micros(7)], 99), 7);
    }
}
