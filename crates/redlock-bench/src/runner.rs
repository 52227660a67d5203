//! The scenario runner: starts (or takes) the masters, runs every scenario through every
//! contender for several rounds, and collects a [`Report`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::BenchError;
use crate::client::{Client, Held};
use crate::machine::{self, Machine};
use crate::memory::PeakRss;
use crate::options::BenchOptions;
use crate::report::Report;
use crate::scenario::{Contender, Metric, Scenario};
use crate::servers::{self, RedisServer};
use crate::stats::{Percentiles, float64};

/// Unmeasured cycles before each measured run (connections, script cache).
pub(crate) const WARMUP_CYCLES: usize = 20;
/// Tasks in S2.
const S2_TASKS: usize = 64;
/// Tasks in S3.
const S3_TASKS: usize = 16;
/// How long an S3 task holds the lock.
const S3_HOLD: Duration = Duration::from_millis(1);
/// A single cycle taking longer than this counts as an error (a contender stuck on a
/// frozen master must not stall the run).
const CYCLE_CAP: Duration = Duration::from_secs(5);
/// The master frozen in S4.
const FROZEN: usize = 2;

/// What one contender produced in one round of one scenario.
#[derive(Debug, Default)]
pub(crate) struct RunOutput {
    pub(crate) values: Vec<(Metric, f64)>,
    /// Cycle latencies in µs (latency scenarios).
    pub(crate) samples: Vec<u64>,
    pub(crate) errors: u64,
    pub(crate) first_error: Option<String>,
    /// Mean hold time in S3, µs.
    pub(crate) hold_us: Option<f64>,
    /// S3: the fewest acquisitions of any task over the mean per task.
    pub(crate) min_over_mean: Option<f64>,
}

impl RunOutput {
    fn error(&mut self, e: String) {
        self.errors = self.errors.saturating_add(1);
        self.first_error.get_or_insert(e);
    }
}

/// Runs the benchmark. `progress` gets one line per finished run (for a terminal).
///
/// # Errors
///
/// [`BenchError::Server`] when the masters cannot be started. A contender that fails to
/// set up or to run is recorded in the report's errors instead.
pub async fn run(
    options: &BenchOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<Report, BenchError> {
    let started = Instant::now();
    let (owned, urls) = match &options.masters {
        Some(urls) => (Vec::new(), urls.clone()),
        None => {
            let servers = tokio::task::spawn_blocking(|| servers::start_masters(3))
                .await
                .map_err(|e| BenchError::Server(format!("start task: {e}")))??;
            let urls = servers.iter().map(RedisServer::url).collect();
            (servers, urls)
        }
    };
    progress(&format!("masters: {}", urls.join(" ")));
    // Three clusters of three masters for S1_3c, started only when it runs on our own servers.
    let clusters = if options.scenarios.contains(&Scenario::S1Clusters) && options.masters.is_none()
    {
        let started = tokio::task::spawn_blocking(|| servers::start_clusters(3, 3))
            .await
            .map_err(|e| BenchError::Server(format!("start task: {e}")))?;
        match started {
            Ok(clusters) => Some(clusters),
            Err(e) => {
                progress(&format!("clusters: {e}"));
                None
            }
        }
    } else {
        None
    };
    let cluster_urls: Vec<String> = clusters
        .iter()
        .flatten()
        .map(servers::RedisCluster::url)
        .collect();
    if !cluster_urls.is_empty() {
        progress(&format!("clusters: {}", cluster_urls.join(" ")));
    }
    let first = urls.first().cloned();
    let mut machine = tokio::task::spawn_blocking(move || Machine::probe(first.as_deref()))
        .await
        .unwrap_or_default();
    let mut report = Report::new(options, options.masters.is_none());
    for round in 0..options.rounds {
        for &scenario in &options.scenarios {
            let urls = if scenario == Scenario::S1Clusters {
                if cluster_urls.is_empty() {
                    report.skip(
                        scenario,
                        "no clusters: it starts its own (not with given masters)",
                    );
                    continue;
                }
                &cluster_urls
            } else {
                &urls
            };
            if urls.len() < scenario.masters() {
                report.skip(scenario, "fewer masters given than it needs");
                continue;
            }
            let frozen = if scenario == Scenario::S4 {
                match owned.get(FROZEN) {
                    Some(server) => Some(server),
                    None => {
                        report.skip(scenario, "given masters cannot be frozen");
                        continue;
                    }
                }
            } else {
                None
            };
            let mut contenders = scenario.contenders();
            if let Some(by) = round.checked_rem(contenders.len()) {
                contenders.rotate_left(by);
            }
            if scenario.interleaved() {
                let tag = format!("r{round}");
                for (contender, output) in
                    interleaved(scenario, &contenders, urls, options, &tag).await
                {
                    progress(&progress_line(
                        round,
                        options.rounds,
                        scenario,
                        contender,
                        &output,
                    ));
                    report.record(scenario, contender, output);
                }
                continue;
            }
            for contender in contenders {
                let tag = format!("r{round}");
                let output = run_one(scenario, contender, urls, frozen, options, &tag).await;
                let output = output.unwrap_or_else(|e| {
                    let mut out = RunOutput::default();
                    out.error(e.to_string());
                    out
                });
                progress(&progress_line(
                    round,
                    options.rounds,
                    scenario,
                    contender,
                    &output,
                ));
                report.record(scenario, contender, output);
            }
        }
    }
    machine.load_after = machine::load_average();
    report.machine = machine;
    report.source = machine::source_state();
    report.elapsed = started.elapsed();
    drop(owned);
    drop(clusters);
    Ok(report)
}

fn progress_line(
    round: usize,
    rounds: usize,
    scenario: Scenario,
    contender: Contender,
    out: &RunOutput,
) -> String {
    let figures: Vec<String> = out
        .values
        .iter()
        .map(|(m, v)| format!("{m}={v:.0}"))
        .collect();
    let errors = match &out.first_error {
        Some(e) => format!(" errors={} (first: {e})", out.errors),
        None => String::new(),
    };
    format!(
        "round {}/{rounds} {scenario} {contender}: {}{errors}",
        round.saturating_add(1),
        figures.join(" ")
    )
}

async fn run_one(
    scenario: Scenario,
    contender: Contender,
    urls: &[String],
    frozen: Option<&RedisServer>,
    options: &BenchOptions,
    tag: &str,
) -> Result<RunOutput, BenchError> {
    let urls = urls.get(..scenario.masters()).ok_or_else(|| {
        BenchError::Setup(format!("{scenario} needs {} masters", scenario.masters()))
    })?;
    let prefix = format!("bench:{tag}:{scenario}:{contender}");
    let mut child_failure = None;
    if scenario == Scenario::S2 && options.isolate_s2 {
        match in_child(contender, urls, &prefix, options.duration).await {
            Ok(out) => return Ok(out),
            Err(e) => child_failure = Some(e),
        }
    }
    let client = Arc::new(Client::new(contender, scenario, urls).await?);
    let mut output = match scenario {
        Scenario::S1One
        | Scenario::S1Three
        | Scenario::S4
        | Scenario::S5
        | Scenario::S1Clusters
        | Scenario::MultiThree
        | Scenario::Reader
        | Scenario::Writer
        | Scenario::Permit => latency(&client, &prefix, options.latency_duration, frozen).await,
        Scenario::S2 => throughput(&client, &prefix, options.duration).await,
        Scenario::S3 => contention(&client, &prefix, options.duration).await,
    };
    if let Some(e) = child_failure {
        output.error(format!("child process failed, measured in-process: {e}"));
    }
    if let Ok(client) = Arc::try_unwrap(client) {
        client.close().await;
    }
    Ok(output)
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// S1 and S5: every contender's client does one cycle in turn (the first of each turn
/// rotating), so that load from outside the benchmark falls on all of them alike. Each
/// contender gets `latency_duration` of cycles in all.
async fn interleaved(
    scenario: Scenario,
    contenders: &[Contender],
    urls: &[String],
    options: &BenchOptions,
    tag: &str,
) -> Vec<(Contender, RunOutput)> {
    let mut runs: Vec<(Contender, Option<Client>, RunOutput, String)> = Vec::new();
    for &contender in contenders {
        let mut out = RunOutput::default();
        let prefix = format!("bench:{tag}:{scenario}:{contender}");
        let client = match urls.get(..scenario.masters()) {
            Some(urls) => match Client::new(contender, scenario, urls).await {
                Ok(client) => {
                    for i in 0..WARMUP_CYCLES {
                        let _ = client.cycle(&format!("{prefix}:warm:{i}")).await;
                    }
                    Some(client)
                }
                Err(e) => {
                    out.error(e.to_string());
                    None
                }
            },
            None => {
                out.error(format!("{scenario} needs {} masters", scenario.masters()));
                None
            }
        };
        runs.push((contender, client, out, prefix));
    }
    let total = options
        .latency_duration
        .saturating_mul(u32::try_from(runs.len()).unwrap_or(1));
    let start = Instant::now();
    let mut turn = 0usize;
    while start.elapsed() < total {
        let first = turn.checked_rem(runs.len()).unwrap_or(0);
        for k in 0..runs.len() {
            let index = first.saturating_add(k).checked_rem(runs.len()).unwrap_or(0);
            let Some((_, Some(client), out, prefix)) = runs.get_mut(index) else {
                continue;
            };
            let resource = format!("{prefix}:{turn}");
            let t = Instant::now();
            match tokio::time::timeout(CYCLE_CAP, client.cycle(&resource)).await {
                Ok(Ok(())) => out.samples.push(micros(t.elapsed())),
                Ok(Err(e)) => out.error(e),
                Err(_) => out.error(format!("cycle took over {CYCLE_CAP:?}")),
            }
        }
        turn = turn.saturating_add(1);
    }
    let mut outputs = Vec::with_capacity(runs.len());
    for (contender, client, mut out, _) in runs {
        if let Some(client) = client {
            client.close().await;
        }
        percentiles(&mut out);
        outputs.push((contender, out));
    }
    outputs
}

/// Adds p50 and p99 of the samples to the figures.
fn percentiles(out: &mut RunOutput) {
    if let Some(percentiles) = Percentiles::of(&out.samples) {
        for (metric, q) in [(Metric::P50Us, 0.5), (Metric::P99Us, 0.99)] {
            out.values.push((metric, float64(percentiles.at(q))));
        }
    }
}

/// S4 (and S1/S5 when run one contender at a time): one client, sequential cycles on
/// distinct resources.
async fn latency(
    client: &Client,
    prefix: &str,
    duration: Duration,
    frozen: Option<&RedisServer>,
) -> RunOutput {
    let mut out = RunOutput::default();
    for i in 0..WARMUP_CYCLES {
        let _ = client.cycle(&format!("{prefix}:warm:{i}")).await;
    }
    if let Some(server) = frozen
        && let Err(e) = server.pause()
    {
        out.error(e.to_string());
        return out;
    }
    let start = Instant::now();
    // Past `duration`, keep going until one cycle succeeded, for at most this long.
    let give_up = duration.saturating_add(CYCLE_CAP).saturating_mul(2);
    let mut i = 0u64;
    loop {
        let elapsed = start.elapsed();
        if elapsed >= duration && (!out.samples.is_empty() || elapsed >= give_up) {
            break;
        }
        let resource = format!("{prefix}:{i}");
        i = i.saturating_add(1);
        let t = Instant::now();
        match tokio::time::timeout(CYCLE_CAP, client.cycle(&resource)).await {
            Ok(Ok(())) => out.samples.push(micros(t.elapsed())),
            Ok(Err(e)) => out.error(e),
            Err(_) => out.error(format!("cycle took over {CYCLE_CAP:?}")),
        }
    }
    if let Some(server) = frozen
        && let Err(e) = server.resume()
    {
        out.error(e.to_string());
    }
    percentiles(&mut out);
    out
}

/// S2: 64 tasks, each cycling on its own resources; cycles/s and peak RSS.
async fn throughput(client: &Arc<Client>, prefix: &str, duration: Duration) -> RunOutput {
    let mut out = RunOutput::default();
    for i in 0..WARMUP_CYCLES {
        let _ = client.cycle(&format!("{prefix}:warm:{i}")).await;
    }
    let rss = PeakRss::start();
    let start = Instant::now();
    let tasks: Vec<_> = (0..S2_TASKS)
        .map(|task| {
            let client = Arc::clone(client);
            let prefix = format!("{prefix}:{task}");
            tokio::spawn(async move {
                let mut part = RunOutput::default();
                let mut done = 0u64;
                let mut i = 0u64;
                while start.elapsed() < duration {
                    let resource = format!("{prefix}:{i}");
                    i = i.saturating_add(1);
                    match tokio::time::timeout(CYCLE_CAP, client.cycle(&resource)).await {
                        Ok(Ok(())) => done = done.saturating_add(1),
                        Ok(Err(e)) => part.error(e),
                        Err(_) => part.error(format!("cycle took over {CYCLE_CAP:?}")),
                    }
                }
                (done, part)
            })
        })
        .collect();
    let mut done = 0u64;
    for task in tasks {
        match task.await {
            Ok((n, part)) => {
                done = done.saturating_add(n);
                out.errors = out.errors.saturating_add(part.errors);
                if let Some(e) = part.first_error {
                    out.first_error.get_or_insert(e);
                }
            }
            Err(e) => out.error(format!("task: {e}")),
        }
    }
    let elapsed = start.elapsed();
    let peak = rss.finish().await;
    if done > 0 {
        out.values
            .push((Metric::OpsPerS, float64(done) / elapsed.as_secs_f64()));
    }
    if let Some(kb) = peak {
        out.values.push((Metric::RssKb, float64(kb)));
    }
    out
}

/// One S3 task's tally.
#[derive(Default)]
struct TaskTally {
    acquisitions: u64,
    max_wait: Duration,
    held: Duration,
    part: RunOutput,
}

/// Holds the lock for [`S3_HOLD`]: a thread sleep on the blocking pool, because a tokio
/// sleep rounds up to the timer's next millisecond tick (≈ 2 ms on average).
async fn hold_lock() {
    if tokio::task::spawn_blocking(|| std::thread::sleep(S3_HOLD))
        .await
        .is_err()
    {
        tokio::time::sleep(S3_HOLD).await;
    }
}

/// S3: 16 tasks on one resource, each holding it ~1 ms, for `duration`.
async fn contention(client: &Arc<Client>, prefix: &str, duration: Duration) -> RunOutput {
    let mut out = RunOutput::default();
    for i in 0..3 {
        let warm = format!("{prefix}:warm:{i}");
        if let Ok(Ok(held)) = tokio::time::timeout(CYCLE_CAP, client.lock_wait(&warm)).await {
            let _ = client.unlock(held).await;
        }
    }
    let resource: Arc<str> = format!("{prefix}:the-resource").into();
    // Index of the last holder (`usize::MAX`: none yet) and hand-offs so far.
    let last = Arc::new(AtomicUsize::new(usize::MAX));
    let handoffs = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let Some(deadline) = start.checked_add(duration) else {
        out.error("duration too long".into());
        return out;
    };
    let tasks: Vec<_> = (0..S3_TASKS)
        .map(|task| {
            let (client, resource) = (Arc::clone(client), Arc::clone(&resource));
            let (last, handoffs) = (Arc::clone(&last), Arc::clone(&handoffs));
            tokio::spawn(async move {
                let mut t = TaskTally::default();
                loop {
                    let want = Instant::now();
                    if want >= deadline {
                        break;
                    }
                    let got = tokio::time::timeout_at(deadline, client.lock_wait(&resource)).await;
                    t.max_wait = t.max_wait.max(want.elapsed());
                    let held: Held = match got {
                        Err(_) => break,
                        Ok(Err(e)) => {
                            t.part.error(e);
                            tokio::time::sleep(Duration::from_millis(1)).await;
                            continue;
                        }
                        Ok(Ok(held)) => held,
                    };
                    t.acquisitions = t.acquisitions.saturating_add(1);
                    let previous = last.swap(task, Ordering::SeqCst);
                    if previous != task && previous != usize::MAX {
                        handoffs.fetch_add(1, Ordering::Relaxed);
                    }
                    let hold = Instant::now();
                    hold_lock().await;
                    t.held = t.held.saturating_add(hold.elapsed());
                    if let Err(e) = client.unlock(held).await {
                        t.part.error(e);
                    }
                }
                t
            })
        })
        .collect();
    let mut counts = Vec::with_capacity(S3_TASKS);
    let (mut max_wait, mut held) = (Duration::ZERO, Duration::ZERO);
    for task in tasks {
        match task.await {
            Ok(t) => {
                counts.push(t.acquisitions);
                max_wait = max_wait.max(t.max_wait);
                held = held.saturating_add(t.held);
                out.errors = out.errors.saturating_add(t.part.errors);
                if let Some(e) = t.part.first_error {
                    out.first_error.get_or_insert(e);
                }
            }
            Err(e) => out.error(format!("task: {e}")),
        }
    }
    let total: u64 = counts.iter().sum();
    let transitions = total.saturating_sub(1);
    out.values
        .push((Metric::OpsPerS, float64(total) / duration.as_secs_f64()));
    if transitions > 0 {
        let pct = float64(handoffs.load(Ordering::Relaxed)) / float64(transitions) * 100.0;
        out.values.push((Metric::HandoffPct, pct));
    }
    if let (Some(min), Some(max)) = (counts.iter().min(), counts.iter().max()) {
        out.values.push((Metric::MinTask, float64(*min)));
        out.values.push((Metric::MaxTask, float64(*max)));
    }
    out.values
        .push((Metric::MaxWaitMs, max_wait.as_secs_f64() * 1e3));
    if let Some(min) = counts.iter().min()
        && total > 0
    {
        let mean = float64(total) / float64(u64::try_from(counts.len()).unwrap_or(1));
        out.min_over_mean = Some(float64(*min) / mean);
    }
    if total > 0 {
        out.hold_us = Some(float64(micros(held)) / float64(total));
    }
    out
}

/// First argument of a child process started by [`in_child`].
const CHILD_FLAG: &str = "--redlock-bench-child";
/// Prefix of the child's one line of output.
const CHILD_LINE: &str = "REDLOCK-BENCH-CHILD";

/// Runs S2 for `contender` in a child process of the current executable (see
/// [`child_main`]), so that the peak RSS is this contender's alone.
async fn in_child(
    contender: Contender,
    urls: &[String],
    prefix: &str,
    duration: Duration,
) -> Result<RunOutput, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let mut command = std::process::Command::new(exe);
    command
        .arg(CHILD_FLAG)
        .arg(contender.name())
        .arg(micros(duration).to_string())
        .arg(prefix)
        .args(urls);
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix(CHILD_LINE))
        .ok_or_else(|| {
            format!(
                "{}: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            )
        })?;
    let mut out = RunOutput::default();
    for field in line.split_whitespace() {
        let Some((name, value)) = field.split_once('=') else {
            continue;
        };
        let number = value.parse::<f64>().ok();
        match (name, number) {
            ("ops_per_s", Some(v)) => out.values.push((Metric::OpsPerS, v)),
            ("rss_kb", Some(v)) => out.values.push((Metric::RssKb, v)),
            ("errors", Some(v)) if v > 0.0 => {
                out.errors = value.parse().unwrap_or(1);
            }
            _ => {}
        }
    }
    if out.errors > 0 {
        out.first_error = line
            .split_once("first_error=")
            .map(|(_, e)| e.trim().to_owned());
    }
    Ok(out)
}

/// The entry point of a child process of the scenario runner. Call it first in `main` of
/// any program that runs the benchmark with [`BenchOptions::isolate_s2`]: it returns
/// `None` at once for an ordinary start, and for a child it runs the child's measurement,
/// prints it on stdout, and returns the exit code.
pub fn child_main() -> Option<std::process::ExitCode> {
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() != Some(CHILD_FLAG) {
        return None;
    }
    let contender = args.next().as_deref().and_then(Contender::from_name);
    let duration = args
        .next()
        .and_then(|d| d.parse().ok())
        .map(Duration::from_micros);
    let prefix = args.next();
    let urls: Vec<String> = args.collect();
    let (Some(contender), Some(duration), Some(prefix)) = (contender, duration, prefix) else {
        return Some(std::process::ExitCode::from(2));
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .ok()?;
    let line = runtime.block_on(async {
        let client = match Client::new(contender, Scenario::S2, &urls).await {
            Ok(client) => Arc::new(client),
            Err(e) => return format!("errors=1 first_error={e}"),
        };
        let out = throughput(&client, &prefix, duration).await;
        if let Ok(client) = Arc::try_unwrap(client) {
            client.close().await;
        }
        let ops = out
            .values
            .iter()
            .find(|(m, _)| *m == Metric::OpsPerS)
            .map_or(0.0, |(_, v)| *v);
        // The whole child's peak: runtime, connections and the run.
        let rss = crate::memory::status_kb("VmHWM").unwrap_or(0);
        let first = out
            .first_error
            .map(|e| format!(" first_error={}", e.replace('\n', " ")))
            .unwrap_or_default();
        format!("ops_per_s={ops} rss_kb={rss} errors={}{first}", out.errors)
    });
    let mut stdout = std::io::stdout();
    let written =
        std::io::Write::write_all(&mut stdout, format!("{CHILD_LINE} {line}\n").as_bytes());
    Some(if written.is_ok() {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    })
}
