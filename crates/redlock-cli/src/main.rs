//! `redlock`: run a command under a distributed lock held on a quorum of independent Redis
//! masters (the Redlock algorithm, via `tokio-redlock`) — `flock(1)` across machines.
//!
//! ```text
//! redlock exec [OPTIONS] RESOURCE [--] COMMAND [ARGS...]    # or -c 'shell command'
//! redlock status [--json] RESOURCE...
//! redlock release --force [--yes] RESOURCE
//! redlock bench [--cycles N]
//! ```
//!
//! See `docs/cli.md` for options, exit codes and how a lost lock is handled.

mod bench;
mod child;
mod cli;
mod exec;
mod exit;
mod probe;
mod release;
mod report;
mod signals;
mod status;
mod terminal;

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use tokio_redlock::{ConfigError, LockManager};

use crate::cli::{Cli, Command, Common};
use crate::report::Report;

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    if args.first().is_some_and(|a| a == child::CHILD_MODE) {
        // redlock started itself to run the command (see `child.rs`).
        return ExitCode::from(child::exec_command(args.into_iter().skip(1)));
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = usage_error(&e);
            if code == exit::USAGE
                && let Some(hint) = server_hint(args.into_iter())
            {
                Report::new(0, false).error(hint);
            }
            return ExitCode::from(code);
        }
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
            Command::Release(args) => release::run(args, &cli.common, report).await,
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

/// A "did you mean …?" for a `-s`/`--server` value without a URL scheme, after clap refused
/// the command line (a flock user's `redlock exec -s name cmd` takes `name` as a server and
/// then misses an argument).
fn server_hint(args: impl Iterator<Item = std::ffi::OsString>) -> Option<String> {
    let args: Vec<String> = args.map(|a| a.to_string_lossy().into_owned()).collect();
    let mut values = Vec::new();
    for (i, arg) in args.iter().enumerate() {
        if arg == "--" {
            break;
        }
        if arg == "-s" || arg == "--server" {
            values.extend(args.get(i.saturating_add(1)).cloned());
        } else if let Some(v) = arg.strip_prefix("--server=") {
            values.push(v.to_owned());
        } else if let Some(v) = arg.strip_prefix("-s").filter(|v| !v.is_empty()) {
            values.push(v.to_owned());
        }
    }
    values.iter().find_map(|v| cli::scheme_hint(v))
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

/// The lock manager for the configured masters, with the TLS settings (one attempt per
/// `lock` call: waiting is redlock's).
pub(crate) fn build_manager(
    common: &Common,
    ttl: Duration,
    fencing: bool,
) -> Result<LockManager, SetupError> {
    let servers = common.server_urls()?;
    let only_cluster = matches!(servers.as_slice(), [only] if only.contains("+cluster://"));
    warn_about_quorum_size(
        servers.len(),
        only_cluster,
        Report::new(common.verbose, common.quiet),
    );
    let mut builder = LockManager::builder()
        .servers(servers)
        .ttl(ttl)
        .retry_count(0)
        .node_timeout(common.node_timeout)
        .fencing(fencing);
    if let Some(path) = &common.tls_ca_cert {
        builder = builder.tls_root_certificate(read_pem("--tls-ca-cert", path, CERTIFICATE)?);
    }
    match (&common.tls_cert, &common.tls_key) {
        (Some(cert), Some(key)) => {
            builder = builder.tls_client_certificate(
                read_pem("--tls-cert", cert, CERTIFICATE)?,
                read_pem("--tls-key", key, PRIVATE_KEY)?,
            );
        }
        (None, None) => {}
        // clap's `requires` already refuses one without the other.
        (Some(_), None) => return Err(SetupError::Pair("--tls-cert", "--tls-key")),
        (None, Some(_)) => return Err(SetupError::Pair("--tls-key", "--tls-cert")),
    }
    if common.danger_accept_invalid_certs {
        builder = builder.danger_accept_invalid_certificates(true);
    }
    Ok(builder.build()?)
}

/// Warns (once, unless `-q`) when the member count makes a poor quorum: one master is a
/// single point of failure and not Redlock; an even number tolerates no more failures than
/// one fewer.
fn warn_about_quorum_size(members: usize, only_cluster: bool, report: Report) {
    if only_cluster {
        report.warn(
            "only one member, a Redis Cluster: a failover inside it can promote a replica that \
             missed the latest lock, and another client may then take it; Redlock needs \
             independent members, 3 or 5 (three clusters), and fencing tokens",
        );
    } else if members == 1 {
        report.warn(
            "only one master: the lock is as available as that one Redis and is lost with it \
             (no failover keeps it); Redlock needs independent masters, 3 or 5",
        );
    } else if members.is_multiple_of(2) {
        let quorum = members.checked_div(2).unwrap_or(0).saturating_add(1);
        let tolerated = members.saturating_sub(quorum);
        report.warn(format_args!(
            "{members} masters (an even number): the quorum is {quorum}, so the lock survives \
             {tolerated} failed {}, as it would with {} masters; use an odd number",
            if tolerated == 1 { "master" } else { "masters" },
            members.saturating_sub(1)
        ));
    }
}

/// What a PEM certificate file must contain.
const CERTIFICATE: Pem = Pem {
    marker: "-----BEGIN CERTIFICATE-----",
    what: "PEM certificate",
    convert: "openssl x509 -inform der -in FILE -out FILE.pem",
};
/// What a PEM private key file must contain (`PRIVATE KEY`, `RSA PRIVATE KEY`, `EC PRIVATE
/// KEY`).
const PRIVATE_KEY: Pem = Pem {
    marker: "PRIVATE KEY-----",
    what: "PEM private key",
    convert: "openssl pkey -inform der -in FILE -out FILE.pem",
};

/// A kind of PEM file, recognised by a marker line.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Pem {
    marker: &'static str,
    what: &'static str,
    /// How to convert a DER file.
    convert: &'static str,
}

/// The contents of the PEM file named by `option`, which must hold a `kind` block (a DER
/// file, or a key given for a certificate, would otherwise fail only at the TLS handshake,
/// and as an untrusted certificate).
fn read_pem(option: &'static str, path: &Path, kind: Pem) -> Result<Vec<u8>, SetupError> {
    let contents = std::fs::read(path).map_err(|error| SetupError::File {
        option,
        path: path.to_owned(),
        error,
    })?;
    let found = contents
        .windows(kind.marker.len())
        .any(|w| w == kind.marker.as_bytes());
    if found {
        Ok(contents)
    } else {
        Err(SetupError::NotPem {
            option,
            path: path.to_owned(),
            kind,
        })
    }
}

/// Why the lock manager could not be set up: bad usage (exit 64) in every case.
#[derive(Debug)]
pub(crate) enum SetupError {
    /// The library refused the configuration (the message has passwords redacted).
    Config(ConfigError),
    /// The server list is missing or unusable.
    Servers(cli::ServersError),
    /// A certificate or key file could not be read.
    File {
        /// The option that named it.
        option: &'static str,
        /// The file.
        path: PathBuf,
        /// Why it could not be read.
        error: std::io::Error,
    },
    /// A certificate or key file holds no PEM block of the expected kind.
    NotPem {
        /// The option that named it.
        option: &'static str,
        /// The file.
        path: PathBuf,
        /// What it should hold.
        kind: Pem,
    },
    /// The first option was given without the second.
    Pair(&'static str, &'static str),
}

impl From<cli::ServersError> for SetupError {
    fn from(e: cli::ServersError) -> Self {
        Self::Servers(e)
    }
}

impl From<ConfigError> for SetupError {
    fn from(e: ConfigError) -> Self {
        Self::Config(e)
    }
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Config(e) => write!(f, "{e}"),
            Self::Servers(e) => write!(f, "{e}"),
            Self::File {
                option,
                path,
                error,
            } => write!(
                f,
                "cannot read the {option} file `{}`: {error}",
                path.display()
            ),
            Self::NotPem { option, path, kind } => write!(
                f,
                "the {option} file `{}` holds no {} (no `{}` line); a DER file converts with \
                 `{}`",
                path.display(),
                kind.what,
                kind.marker,
                kind.convert
            ),
            Self::Pair(given, missing) => write!(f, "{given} needs {missing}"),
        }
    }
}
