//! `redlock`: run a command under a distributed lock held on a quorum of independent Redis
//! masters (the Redlock algorithm, via `tokio-redlock`) — `flock(1)` across machines.
//!
//! ```text
//! redlock exec [OPTIONS] RESOURCE [--] COMMAND [ARGS...]    # or -c 'shell command'
//! redlock status [--json] RESOURCE...
//! redlock bench [--cycles N]
//! ```
//!
//! See `docs/cli.md` for options, exit codes and how a lost lock is handled.

mod bench;
mod cli;
mod exec;
mod exit;
mod probe;
mod report;
mod signals;
mod status;
mod terminal;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use tokio_redlock::{ConfigError, LockManager};

use crate::cli::{Cli, Command, Common};
use crate::probe::Master;
use crate::report::Report;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return ExitCode::from(usage_error(&e)),
    };
    let report = Report::new(cli.common.verbose, cli.common.quiet);
    init_logging(&cli.common);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            report.error(format_args!("cannot start the async runtime: {e}"));
            return ExitCode::from(exit::SOFTWARE);
        }
    };
    let code = runtime.block_on(async {
        match cli.command {
            Command::Exec(args) => exec::run(args, &cli.common, report).await,
            Command::Status(args) => status::run(args, &cli.common, report).await,
            Command::Bench(args) => bench::run(args, &cli.common, report).await,
        }
    });
    ExitCode::from(code)
}

/// Prints a clap error (or the help/version it stands for) and returns the exit code: 0 for
/// `--help`/`--version`, 64 (EX_USAGE) for bad usage instead of clap's 2.
fn usage_error(e: &clap::Error) -> u8 {
    // Printing can only fail when stdout/stderr are closed; nothing else to report then.
    let _ = e.print();
    if e.use_stderr() {
        exit::USAGE
    } else {
        exit::OK
    }
}

/// The library logs through `tracing`: shown with `-v` (warnings, e.g. a lost lock's cause)
/// and `-vv` (debug: every round); `REDLOCK_LOG` (an env-filter directive) overrides.
fn init_logging(common: &Common) {
    use tracing_subscriber::EnvFilter;
    let default = match (common.quiet, common.verbose) {
        (true, _) | (false, 0) => "off",
        (false, 1) => "tokio_redlock=warn",
        (false, _) => "tokio_redlock=debug",
    };
    let filter = EnvFilter::try_from_env("REDLOCK_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}

/// The lock manager for the configured masters (one attempt per `lock` call: waiting is
/// redlock's), and the masters as URLs and as shown (passwords redacted).
pub(crate) fn build_manager(
    common: &Common,
    ttl: Duration,
    fencing: bool,
) -> Result<(LockManager, Vec<Master>), ConfigError> {
    let urls = common.server_urls();
    let manager = LockManager::builder()
        .servers(urls.iter().cloned())
        .ttl(ttl)
        .retry_count(0)
        .node_timeout(common.node_timeout)
        .fencing(fencing)
        .build()?;
    let masters = urls
        .into_iter()
        .zip(manager.masters())
        .map(|(url, shown)| Master {
            url,
            shown: shown.to_owned(),
        })
        .collect();
    Ok((manager, masters))
}
