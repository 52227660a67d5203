//! What to run: rounds, durations, masters, which scenarios; and the command-line parser
//! shared by the `redlock-bench` binary and `redlock bench`.

use std::path::PathBuf;
use std::time::Duration;

use crate::BenchError;
use crate::scenario::Scenario;

/// Settings of one benchmark run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BenchOptions {
    /// Rounds of every scenario; each figure is reported as the median (and range) of its
    /// per-round values. Default 5.
    pub rounds: usize,
    /// Measuring time of each contender in each round of S2 and S3. Default 2 s.
    pub duration: Duration,
    /// Measuring time of each contender in each round of the latency scenarios (S1, S4,
    /// S5). Default 1 s.
    pub latency_duration: Duration,
    /// Masters to use instead of starting three `redis-server`s (at least three URLs; the
    /// first alone serves the 1-master scenario). S4 needs masters it can freeze, so it is
    /// skipped with given masters.
    pub masters: Option<Vec<String>>,
    /// Scenarios to run (all by default).
    pub scenarios: Vec<Scenario>,
    /// Where to write `BENCHMARKS.md` and the plot, if anywhere.
    pub write_docs: Option<PathBuf>,
    /// Run each S2 measurement in a child process of the current executable, so its peak
    /// RSS is that contender's alone. The executable's `main` must call
    /// [`child_main`](crate::child_main) first; the `redlock-bench` binary does. When the
    /// child fails, the run falls back to measuring in this process. Default `false`.
    pub isolate_s2: bool,
}

impl Default for BenchOptions {
    fn default() -> Self {
        Self {
            rounds: 5,
            duration: Duration::from_secs(2),
            latency_duration: Duration::from_secs(1),
            masters: None,
            scenarios: Scenario::ALL.to_vec(),
            write_docs: None,
            isolate_s2: false,
        }
    }
}

/// The options' help text.
pub const USAGE: &str = "\
redlock-bench: tokio-redlock beside a raw-Redis floor, a quorum floor and rslock

USAGE: redlock-bench [OPTIONS]

OPTIONS:
  --quick                 one short round (latency 300 ms, throughput/contention 500 ms)
  --rounds N              rounds per scenario (default 5)
  --duration D            time per contender and round in S2/S3 (default 2s; e.g. 5s, 500ms)
  --latency-duration D    time per contender and round in S1/S4/S5 (default 1s)
  --masters URL,URL,URL   use these masters instead of starting three (S4 is then skipped)
  --scenarios LIST        comma-separated subset of S1_1m,S1_3m,S2,S3,S4,S5
  --write-docs DIR        write DIR/BENCHMARKS.md and DIR/benchmarks-s1-latency.svg
  --in-process            run S2 in this process, not one child process per contender
                          (peak RSS then covers everything run before it)
  -h, --help              this text
";

/// What the command line asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Run with these options.
    Run(BenchOptions),
    /// Print [`USAGE`].
    Help,
}

impl BenchOptions {
    /// One short round: for smoke tests and a first look.
    pub fn quick() -> Self {
        Self {
            rounds: 1,
            duration: Duration::from_millis(500),
            latency_duration: Duration::from_millis(300),
            ..Self::default()
        }
    }

    /// Parses command-line arguments (without the program name). Sets
    /// [`isolate_s2`](Self::isolate_s2) unless `--in-process` is given: the program must call
    /// [`child_main`](crate::child_main) at the start of `main`.
    ///
    /// # Errors
    ///
    /// [`BenchError::Usage`] for an unknown option or a bad value.
    pub fn parse_args<I, S>(args: I) -> Result<Command, BenchError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let args: Vec<String> = args.into_iter().map(Into::into).collect();
        let mut options = if args.iter().any(|a| a == "--quick") {
            Self::quick()
        } else {
            Self::default()
        };
        // A command line belongs to a program whose `main` calls `child_main`.
        options.isolate_s2 = true;
        let mut it = args.into_iter();
        while let Some(arg) = it.next() {
            let (name, inline) = match arg.split_once('=') {
                Some((n, v)) if n.starts_with("--") => (n.to_owned(), Some(v.to_owned())),
                _ => (arg, None),
            };
            let mut value = || {
                inline
                    .clone()
                    .or_else(|| it.next())
                    .ok_or_else(|| BenchError::Usage(format!("{name} needs a value")))
            };
            match name.as_str() {
                "-h" | "--help" => return Ok(Command::Help),
                "--quick" => {}
                "--in-process" => options.isolate_s2 = false,
                "--rounds" => {
                    let v = value()?;
                    options.rounds =
                        v.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                            BenchError::Usage(format!("--rounds {v}: want N ≥ 1"))
                        })?;
                }
                "--duration" => options.duration = parse_duration(&value()?)?,
                "--latency-duration" => options.latency_duration = parse_duration(&value()?)?,
                "--masters" => {
                    let urls: Vec<String> = value()?
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect();
                    if urls.len() < 3 {
                        return Err(BenchError::Usage("--masters wants at least 3 URLs".into()));
                    }
                    options.masters = Some(urls);
                }
                "--scenarios" => {
                    let list = value()?;
                    options.scenarios = list
                        .split(',')
                        .map(|s| {
                            Scenario::from_id(s.trim())
                                .ok_or_else(|| BenchError::Usage(format!("unknown scenario {s:?}")))
                        })
                        .collect::<Result<_, _>>()?;
                }
                "--write-docs" => options.write_docs = Some(PathBuf::from(value()?)),
                other => return Err(BenchError::Usage(format!("unknown option {other:?}"))),
            }
        }
        Ok(Command::Run(options))
    }
}

/// `5s`, `500ms`, `1.5s`, `250us`.
fn parse_duration(text: &str) -> Result<Duration, BenchError> {
    let bad = || BenchError::Usage(format!("bad duration {text:?} (e.g. 5s, 500ms)"));
    let t = text.trim();
    let (number, unit) = t
        .find(|c: char| c.is_ascii_alphabetic())
        .map_or((t, "s"), |i| t.split_at(i));
    let n: f64 = number.trim().parse().map_err(|_| bad())?;
    let seconds = match unit {
        "s" => n,
        "ms" => n / 1e3,
        "us" | "µs" => n / 1e6,
        "m" | "min" => n * 60.0,
        _ => return Err(bad()),
    };
    Duration::try_from_secs_f64(seconds)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_options() {
        let Command::Run(o) =
            BenchOptions::parse_args(["--rounds", "3", "--duration=5s", "--scenarios", "S1_3m,S3"])
                .unwrap()
        else {
            panic!("not a run");
        };
        assert_eq!(o.rounds, 3);
        assert_eq!(o.duration, Duration::from_secs(5));
        assert_eq!(o.scenarios, vec![Scenario::S1Three, Scenario::S3]);
        let Command::Run(q) = BenchOptions::parse_args(["--quick"]).unwrap() else {
            panic!("not a run");
        };
        assert_eq!(
            q,
            BenchOptions {
                isolate_s2: true,
                ..BenchOptions::quick()
            }
        );
        let Command::Run(p) = BenchOptions::parse_args(["--in-process"]).unwrap() else {
            panic!("not a run");
        };
        assert!(!p.isolate_s2);
        assert_eq!(BenchOptions::parse_args(["-h"]).unwrap(), Command::Help);
        assert!(BenchOptions::parse_args(["--nope"]).is_err());
        assert!(BenchOptions::parse_args(["--masters", "redis://a"]).is_err());
    }

    #[test]
    fn parses_durations() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("fast").is_err());
    }
}
