//! Benchmark scenarios for tokio-redlock, side by side with a raw-Redis floor, a quorum
//! floor and rslock.
//!
//! The scenario runner ([`run`]) starts three `redis-server` masters (or takes given ones)
//! and runs, for several rounds:
//!
//! - **S1** latency: one client, sequential lock+unlock cycles on distinct resources, TTL 10 s,
//!   with 1 and with 3 masters (p50/p99 µs);
//! - **S2** throughput: 64 tasks, each cycling on its own resources (cycles/s, peak RSS);
//! - **S3** contention: 16 tasks on one resource, each holding it ~1 ms (acquisitions/s,
//!   hand-off share, fewest/most per task, longest wait), tokio-redlock with release
//!   notifications on (its default) and off (polling every 10 ms or at its default delay);
//! - **S4** degraded: S1 with one of three masters frozen (SIGSTOP);
//! - **S5** fencing: S1 with fencing tokens;
//! - beside S1_3m, the other primitives' S1 cycles: `lock_all` of 3 resources
//!   (`multi3_3m`), a reader (`read_3m`), a writer (`write_3m`) and a permit of a 4-permit
//!   semaphore (`permit_3m`), each with floors doing its wire work by hand.
//!
//! each through tokio-redlock, a **floor** doing only the Redlock wire work by hand with
//! `redis`, a **quorum floor** (each step returns at a quorum), and rslock (feature
//! `compare`, on by default). The [`Report`] renders a Markdown table with every figure's
//! ratio to the floor, `RESULT lib=… scenario=… metric=… value=…` lines, the targets,
//! `BENCHMARKS.md` and an SVG plot of the S1 latency percentiles.
//!
//! A program that runs the benchmark from a command line ([`BenchArgs::into_options`] sets
//! [`BenchOptions::isolate_s2`]) must call [`child_main`] first thing in `main`: each S2 run
//! happens in a child process of the same executable, so that its peak RSS is its own.
//!
//! ```no_run
//! # async fn demo() -> Result<(), redlock_bench::BenchError> {
//! let report = redlock_bench::run(&redlock_bench::BenchOptions::quick(), &mut |line| {
//!     eprintln!("{line}")
//! })
//! .await?;
//! print!("{}{}", report.table(), report.result_text());
//! # Ok(()) }
//! ```

mod client;
mod error;
pub mod machine;
pub mod memory;
mod options;
mod plot;
mod report;
mod runner;
mod scenario;
pub mod servers;
pub mod stats;

pub use error::BenchError;
pub use options::{BenchArgs, BenchOptions, Command};
pub use plot::latency_svg;
pub use report::{PLOT_FILE, Report, ResultLine, SECTION_BEGIN, SECTION_END, TargetCheck};
pub use runner::{child_main, run};
pub use scenario::{Contender, MULTI_RESOURCES, Metric, SEMAPHORE_PERMITS, Scenario};
