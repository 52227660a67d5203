//! What to run: rounds, durations, masters, which scenarios; and the `redlock-bench` command
//! line (clap; durations by humantime).

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

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
    /// A remark on the run (say, what else the machine was doing) printed in the
    /// primitives' section of `BENCHMARKS.md`. Default: none.
    pub note: Option<String>,
    /// With [`write_docs`](Self::write_docs): rewrite only the primitives' section of the
    /// existing `BENCHMARKS.md` (see [`Report::write_primitives_section`](crate::Report::write_primitives_section)),
    /// not the whole page and the plot. Default `false`.
    pub primitives_section_only: bool,
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
            note: None,
            primitives_section_only: false,
        }
    }
}

/// The command line of `redlock-bench` (clap): every field is optional and falls back to
/// [`BenchOptions::default`] (or [`BenchOptions::quick`] with `--quick`).
#[derive(Clone, Debug, Default, Parser)]
#[command(
    name = "redlock-bench",
    about = "redlock-bench: tokio-redlock beside a raw-Redis floor, a quorum floor and rslock"
)]
pub struct BenchArgs {
    /// One short round (latency 300 ms, throughput/contention 500 ms).
    #[arg(long)]
    pub quick: bool,
    /// Rounds per scenario (default 5).
    #[arg(long, value_name = "N")]
    pub rounds: Option<usize>,
    /// Time per contender and round in S2/S3 (default 2s; e.g. 5s, 500ms).
    #[arg(long, value_name = "D", value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// Time per contender and round in S1/S4/S5 (default 1s).
    #[arg(long, value_name = "D", value_parser = humantime::parse_duration)]
    pub latency_duration: Option<Duration>,
    /// Use these masters instead of starting three (S4 is then skipped).
    #[arg(long, value_name = "URL,URL,URL", value_delimiter = ',')]
    pub masters: Option<Vec<String>>,
    /// Comma-separated subset of S1_1m,S1_3m,S2,S3,S4,S5,S1_3c,multi3_3m,read_3m,write_3m,permit_3m.
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = parse_scenario)]
    pub scenarios: Option<Vec<Scenario>>,
    /// Write DIR/BENCHMARKS.md and DIR/benchmarks-s1-latency.svg.
    #[arg(long, value_name = "DIR")]
    pub write_docs: Option<PathBuf>,
    /// Run S2 in this process, not one child process per contender (peak RSS then covers
    /// everything run before it).
    #[arg(long)]
    pub in_process: bool,
    /// A remark on the run printed in the primitives' section of BENCHMARKS.md.
    #[arg(long, value_name = "TEXT")]
    pub note: Option<String>,
    /// With --write-docs: rewrite only the primitives' section of DIR/BENCHMARKS.md.
    #[arg(long, requires = "write_docs")]
    pub primitives_section_only: bool,
}

fn parse_scenario(id: &str) -> Result<Scenario, String> {
    Scenario::from_id(id.trim()).ok_or_else(|| {
        let ids: Vec<&str> = Scenario::ALL.iter().map(|s| s.id()).collect();
        format!("unknown scenario {id:?} (one of {})", ids.join(", "))
    })
}

impl BenchArgs {
    /// The options these arguments ask for. Sets [`BenchOptions::isolate_s2`] unless
    /// `--in-process` is given: the program must call [`child_main`](crate::child_main) at
    /// the start of `main`.
    ///
    /// # Errors
    ///
    /// [`BenchError::Usage`] for zero rounds, a zero duration or fewer than three masters.
    pub fn into_options(self) -> Result<BenchOptions, BenchError> {
        let mut options = if self.quick {
            BenchOptions::quick()
        } else {
            BenchOptions::default()
        };
        // A command line belongs to a program whose `main` calls `child_main`.
        options.isolate_s2 = !self.in_process;
        if let Some(rounds) = self.rounds {
            if rounds == 0 {
                return Err(BenchError::Usage("--rounds 0: want N ≥ 1".into()));
            }
            options.rounds = rounds;
        }
        for (name, given, field) in [
            ("--duration", self.duration, &mut options.duration),
            (
                "--latency-duration",
                self.latency_duration,
                &mut options.latency_duration,
            ),
        ] {
            match given {
                Some(d) if d.is_zero() => {
                    return Err(BenchError::Usage(format!("{name} must be above zero")));
                }
                Some(d) => *field = d,
                None => {}
            }
        }
        if let Some(urls) = self.masters {
            let urls: Vec<String> = urls
                .iter()
                .map(|s| s.trim())
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
            if urls.len() < 3 {
                return Err(BenchError::Usage("--masters wants at least 3 URLs".into()));
            }
            options.masters = Some(urls);
        }
        if let Some(scenarios) = self.scenarios {
            options.scenarios = scenarios;
        }
        options.write_docs = self.write_docs;
        options.note = self.note;
        options.primitives_section_only = self.primitives_section_only;
        Ok(options)
    }
}

/// What the command line asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Run with these options.
    Run(BenchOptions),
    /// Print the help text (`--help`, `-h`).
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

    /// Parses command-line arguments (without the program name) with [`BenchArgs`]. Sets
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
        let argv =
            std::iter::once("redlock-bench".to_owned()).chain(args.into_iter().map(Into::into));
        match BenchArgs::try_parse_from(argv) {
            Ok(args) => Ok(Command::Run(args.into_options()?)),
            Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelp => Ok(Command::Help),
            Err(e) => Err(BenchError::Usage(e.to_string())),
        }
    }
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
    fn parses_durations_with_humantime() {
        let run = |args: &[&str]| match BenchOptions::parse_args(args.iter().copied()) {
            Ok(Command::Run(o)) => Ok(o),
            Ok(Command::Help) => panic!("help"),
            Err(e) => Err(e),
        };
        let o = run(&["--duration", "1m 30s", "--latency-duration", "250ms"]).unwrap();
        assert_eq!(o.duration, Duration::from_secs(90));
        assert_eq!(o.latency_duration, Duration::from_millis(250));
        assert!(run(&["--duration", "0s"]).is_err());
        assert!(run(&["--duration", "fast"]).is_err());
        assert!(run(&["--rounds", "0"]).is_err());
        assert!(run(&["--scenarios", "S9"]).is_err());
    }

    #[test]
    fn help_lists_every_option() {
        use clap::CommandFactory;
        let help = BenchArgs::command().render_help().to_string();
        for option in [
            "--quick",
            "--rounds",
            "--duration",
            "--latency-duration",
            "--masters",
            "--scenarios",
            "--write-docs",
            "--in-process",
            "--note",
            "--primitives-section-only",
            "--help",
        ] {
            assert!(help.contains(option), "{option} missing from:\n{help}");
        }
    }
}
