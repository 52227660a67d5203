//! `redlock bench`: lock/unlock latency and throughput against the user's own masters.
//!
//! Until the benchmark crate (`redlock-bench`) has its scenarios, this runs one: sequential
//! lock/unlock cycles on one resource. [`run_scenarios`] is the seam where the benchmark
//! crate's scenarios will be called instead.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::time::Instant;
use tokio_redlock::{LockError, LockManager};

use crate::cli::{BenchArgs, Common};
use crate::exit;
use crate::report::{Report, output};

/// What the benchmark measured. Milliseconds and rates are rounded to two decimals.
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
    let mut locks = Latencies::default();
    let mut unlocks = Latencies::default();
    let mut conflicts = 0u32;
    let start = Instant::now();
    let stop = start.checked_add(args.duration);
    while u32::try_from(locks.count()).unwrap_or(u32::MAX) < args.cycles
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
        locks.record(t.elapsed());
        let t = Instant::now();
        manager.unlock(&mut lock).await?;
        unlocks.record(t.elapsed());
    }
    let elapsed = start.elapsed();
    let cycles = u32::try_from(locks.count()).unwrap_or(u32::MAX);
    let secs = elapsed.as_secs_f64();
    Ok(BenchReport {
        masters: manager.masters().count(),
        quorum: manager.quorum(),
        resource,
        cycles,
        conflicts,
        elapsed_ms: two_decimals(secs * 1000.0),
        cycles_per_sec: if secs > 0.0 {
            two_decimals(f64::from(cycles) / secs)
        } else {
            0.0
        },
        lock_p50_us: locks.percentile_us(50.0),
        lock_p99_us: locks.percentile_us(99.0),
        unlock_p50_us: unlocks.percentile_us(50.0),
        unlock_p99_us: unlocks.percentile_us(99.0),
    })
}

/// `x` rounded to two decimals, so the JSON reads `31.69`, not `31.688845999999998`.
fn two_decimals(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Latency samples in microseconds, in an HDR histogram (3 significant digits: exact below
/// 2048 µs, within 0.1 % above), as in `redlock-bench` and the demo.
struct Latencies(Histogram<u64>);

impl Default for Latencies {
    fn default() -> Self {
        // 1 µs to 1 h (longer samples count as 1 h), 3 significant digits: valid bounds.
        Self(
            Histogram::new_with_bounds(1, 3_600_000_000, 3)
                .unwrap_or_else(|_| unreachable!("valid histogram bounds")),
        )
    }
}

impl Latencies {
    fn record(&mut self, d: Duration) {
        self.0
            .saturating_record(u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    }

    fn count(&self) -> u64 {
        self.0.len()
    }

    /// The `p`-th percentile (nearest rank) in whole microseconds; 0 without samples.
    fn percentile_us(&self, p: f64) -> u64 {
        if self.0.is_empty() {
            0
        } else {
            self.0.value_at_percentile(p)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let mut l = Latencies::default();
        for us in (1..=100).rev() {
            l.record(Duration::from_micros(us));
        }
        assert_eq!(l.count(), 100);
        assert_eq!(l.percentile_us(50.0), 50);
        assert_eq!(l.percentile_us(99.0), 99);
        assert_eq!(Latencies::default().percentile_us(99.0), 0);
        let mut one = Latencies::default();
        one.record(Duration::from_micros(7));
        assert_eq!(one.percentile_us(99.0), 7);
        // Large values keep 3 significant digits (nothing is clamped).
        one.record(Duration::from_millis(1_500));
        let max = one.percentile_us(100.0);
        assert!(max.abs_diff(1_500_000) <= 1_500, "{max}");
    }

    #[test]
    fn json_figures_have_two_decimals() {
        assert_eq!(two_decimals(31.688_845_999_999_998), 31.69);
        assert_eq!(
            serde_json::to_string(&two_decimals(1234.5678)).unwrap(),
            "1234.57"
        );
    }
}
