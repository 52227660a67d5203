//! `redlock-soak`: long randomized fault-injection runs of tokio-redlock.
//!
//! ```text
//! redlock-soak --duration 20m --seed 42 --scenario all
//! redlock-soak --scenario pause-majority --episode-seed 1234 --episode 30s   # replay one episode
//! ```
//!
//! Episodes of `--episode` each cycle through the chosen scenarios (in a seeded order) until
//! `--duration` has passed; every episode draws its schedule from a seed derived from
//! `--seed` and prints it. The summary gives acquisitions, faults injected by kind and
//! violations; the exit status is 1 when a scenario that must be safe had a violation (or
//! a self-test went unflagged), 2 when only the harness failed.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use redlock_faults::cli::{LockWorkerArgs, lock_worker_main};
use redlock_faults::rng::{SeededRng, fresh_seed, mix};
use redlock_faults::scenario::{RunConfig, Spec, Totals, catalogue, run};

#[derive(Debug, Parser)]
#[command(
    name = "redlock-soak",
    about = "Long randomized fault-injection runs of tokio-redlock"
)]
struct Args {
    /// Total run time (`20m`, `1h`, `90s`, `1h 30m`).
    #[arg(long, default_value = "20m", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Master seed (printed; replays the same episodes and schedules). Random if absent.
    #[arg(long)]
    seed: Option<u64>,
    /// `all`, or comma-separated scenario names (see --list).
    #[arg(long, default_value = "all")]
    scenario: String,
    /// Length of one episode.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    episode: Duration,
    /// Run exactly one episode of the (first) scenario with this seed: a replay.
    #[arg(long)]
    episode_seed: Option<u64>,
    /// Where failing histories and the JSON summary go.
    #[arg(long, default_value = "target/redlock-soak")]
    out: PathBuf,
    /// Keep every episode's history, not only failing ones.
    #[arg(long)]
    keep_histories: bool,
    /// Print every episode's full summary, not one line.
    #[arg(long)]
    verbose: bool,
    /// List the scenarios and exit.
    #[arg(long)]
    list: bool,
}

fn main() -> ExitCode {
    let mut argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some("lock-worker") {
        argv.remove(1);
        return match lock_worker_main(LockWorkerArgs::parse_from(argv)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("lock-worker: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let args = Args::parse_from(argv);
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    if args.list {
        for s in catalogue() {
            println!(
                "{:<20} {:<20} {:?} {}",
                s.name, s.catalogue, s.lease, s.about
            );
        }
        return ExitCode::SUCCESS;
    }
    let specs: Vec<Spec> = if args.scenario == "all" {
        catalogue()
    } else {
        let mut v = Vec::new();
        for name in args.scenario.split(',') {
            match redlock_faults::find(name.trim()) {
                Some(s) => v.push(s),
                None => {
                    eprintln!("unknown scenario `{name}` (see --list)");
                    return ExitCode::from(2);
                }
            }
        }
        v
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("runtime: {e}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(soak(args, specs))
}

/// This binary: its `lock-worker` subcommand runs the worker (the same build as the soak,
/// never a stale `lock-worker` left in the target directory).
fn lock_worker_bin() -> Option<PathBuf> {
    std::env::current_exe().ok()
}

async fn soak(args: Args, specs: Vec<Spec>) -> ExitCode {
    let seed = args.seed.unwrap_or_else(fresh_seed);
    let started = Instant::now();
    println!(
        "redlock-soak: seed {seed}, duration {:?}, episodes of {:?}, scenarios: {}",
        args.duration,
        args.episode,
        specs.iter().map(|s| s.name).collect::<Vec<_>>().join(",")
    );
    println!(
        "replay this run: redlock-soak --duration {}s --seed {seed} --scenario {} --episode {}s",
        args.duration.as_secs(),
        args.scenario,
        args.episode.as_secs()
    );
    let _ = std::fs::create_dir_all(&args.out);
    let mut totals = Totals::default();
    let mut harness_errors: Vec<String> = Vec::new();
    let mut order: Vec<usize> = Vec::new();
    let mut shuffler = SeededRng::new(seed).fork("order");
    let mut episode = 0u64;
    loop {
        if args.episode_seed.is_none() && started.elapsed() >= args.duration {
            break;
        }
        if order.is_empty() {
            order = (0..specs.len()).collect();
            // Fisher–Yates with the seeded generator: the same order for the same seed.
            for i in (1..order.len()).rev() {
                let j = shuffler.index(i.saturating_add(1));
                order.swap(i, j);
            }
            order.reverse();
        }
        let Some(spec) = order.pop().and_then(|i| specs.get(i)) else {
            break;
        };
        let episode_seed = args
            .episode_seed
            .unwrap_or_else(|| mix(seed, &format!("episode-{episode}")));
        let mut cfg = RunConfig::soak(episode_seed, args.episode);
        cfg.lock_worker = lock_worker_bin();
        cfg.artifacts = Some(args.out.clone());
        cfg.keep_history = args.keep_histories;
        match run(spec, &cfg).await {
            Ok(outcome) => {
                totals.add(spec, &outcome);
                let s = &outcome.report.stats;
                println!(
                    "[{:>6.0}s] #{episode:<3} {:<20} seed {:<20} {} acq {:>6} fail {:>5} writes {:>6}/{:<4} faults {:>3} violations {:>3} ({:.1}s)",
                    started.elapsed().as_secs_f64(),
                    outcome.scenario,
                    episode_seed,
                    if outcome.verdict.pass { "ok  " } else { "FAIL" },
                    s.acquisitions,
                    s.acquire_invokes.saturating_sub(s.acquisitions),
                    s.writes_accepted,
                    s.writes_rejected,
                    s.faults.values().sum::<u64>(),
                    outcome.report.counts.values().sum::<u64>(),
                    Duration::from_millis(u64::try_from(outcome.elapsed_ms).unwrap_or(0))
                        .as_secs_f64(),
                );
                if !outcome.verdict.pass || args.verbose {
                    print!("{}", outcome.summary());
                    println!(
                        "  replay: redlock-soak --scenario {} --episode-seed {episode_seed} --episode {}s",
                        outcome.scenario,
                        args.episode.as_secs()
                    );
                }
            }
            Err(e) => {
                println!("#{episode} {} seed {episode_seed}: {e}", spec.name);
                harness_errors.push(format!("{} seed {episode_seed}: {e}", spec.name));
            }
        }
        episode = episode.saturating_add(1);
        if args.episode_seed.is_some() {
            break;
        }
    }
    print_totals(seed, started.elapsed(), &totals, &harness_errors);
    let summary = serde_json::json!({
        "seed": seed,
        "elapsed_s": started.elapsed().as_secs(),
        "totals": totals,
        "harness_errors": harness_errors,
    });
    let path = args.out.join("summary.json");
    if let Ok(text) = serde_json::to_string_pretty(&summary)
        && std::fs::write(&path, text).is_ok()
    {
        println!("summary: {}", path.display());
    }
    if totals.failed_runs > 0 {
        ExitCode::from(1)
    } else if !harness_errors.is_empty() {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}

fn print_totals(seed: u64, elapsed: Duration, t: &Totals, harness_errors: &[String]) {
    println!(
        "\n==== redlock-soak summary (seed {seed}, {:.0} s) ====",
        elapsed.as_secs_f64()
    );
    println!("episodes            {} ({} failed)", t.runs, t.failed_runs);
    println!(
        "acquisitions        {} of {} invocations",
        t.acquisitions, t.acquire_invokes
    );
    println!("acquire failures    {:?}", t.acquire_failures);
    println!("critical sections   {}", t.critical_sections);
    println!(
        "fenced writes       {} accepted, {} rejected (stale holders fenced off)",
        t.writes_accepted, t.writes_rejected
    );
    println!("unfenced lost upd.  {}", t.lost_updates);
    println!(
        "deadline overruns   {} by paused lock-workers, {} during {} machine stalls (longest {:.0} ms): excused, the fencing checks judge them",
        t.paused_overruns, t.stall_overruns, t.stalls, t.max_stall_ms
    );
    println!(
        "faults injected     {} {:?}",
        t.faults.values().sum::<u64>(),
        t.faults
    );
    println!("episodes/scenario   {:?}", t.runs_by_scenario);
    println!(
        "violations (must be safe): {} {:?}",
        t.violations_must_be_safe.values().sum::<u64>(),
        t.violations_must_be_safe
    );
    println!(
        "violations (expected):     {} {:?}",
        t.violations_expected.values().sum::<u64>(),
        t.violations_expected
    );
    println!(
        "self-tests flagged by the checkers they must trip: {} of {}",
        t.selftests_flagged, t.selftests
    );
    println!(
        "heals measured      {}; slowest recovery {:.0} ms",
        t.heals_measured, t.max_recovery_ms
    );
    println!("exclusion checks    (operations / grants / violations, over every episode)");
    for (check, f) in &t.checked {
        println!(
            "  {check:<17} {:>8} / {:>6} / {}",
            f.operations,
            f.grants,
            t.violations_by_check.get(check).copied().unwrap_or(0)
        );
    }
    println!(
        "member probes       {} ({} conclusive); nemesis events in primitives episodes {}",
        t.probes, t.probes_conclusive, t.primitives_nemesis_events
    );
    for f in &t.failures {
        println!("FAILED: {f}");
    }
    for e in harness_errors {
        println!("HARNESS ERROR: {e}");
    }
}
