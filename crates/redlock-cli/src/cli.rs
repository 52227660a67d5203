//! The command line: subcommands, options, their defaults, and the value parsers (durations
//! as flock takes them, signal names).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use nix::sys::signal::Signal;
use tokio_redlock::{ConfigError, MAX_PERMITS, SERVERS_ENV, parse_server_list};

const ROOT_AFTER_HELP: &str = "\
Examples:
  redlock exec nightly-report -- ./report.sh            # wait for the lock, then run
  redlock exec -n -s redis://a:6379 -s redis://b:6379 -s redis://c:6379 deploy -- make deploy
  redlock exec --shared catalog -- ./report.sh          # readers together, -x alone
  redlock exec --permits 3 exports -- ./export.sh       # at most 3 at once
  redlock status -q deploy && echo held                 # 0 held, 1 free: see below
  redlock release --force --yes deploy                  # an operator clears a stuck lock
  redlock bench                                         # lock/unlock latency on your masters

Servers (-s URL, repeatable or comma-separated; or REDLOCK_SERVERS=URL,URL,…; required,
there is no default; use an odd number of independent masters, e.g. 3 or 5):
  redis://[user:password@]host:port[/db]     a master
  rediss://…                                 the same over TLS (see --tls-ca-cert)
  redis+unix:///path/redis.sock[?db=N]       a master on a Unix socket (also unix:///path)
  redis+sentinel://h1:26379,h2:26379/name    a Sentinel group, counted as ONE member
                                             (rediss+sentinel:// for TLS)
  redis+cluster://h1:7000,h2:7000            a Redis Cluster, counted as ONE member
                                             (rediss+cluster:// for TLS)

A password in a URL given with -s shows in `ps` to every user of the host: prefer
REDLOCK_SERVERS (readable only by your user and root). Options also come from REDLOCK_TTL,
REDLOCK_WAIT, REDLOCK_NODE_TIMEOUT, … (each option's help names its variable).

Exit codes (exec): the command's status; 1 (or -E N) on conflict or wait expiry; 64 bad usage;
69 no quorum of masters reachable; 75 (or --lost-exit-code) lock lost while the command ran;
78 the TTL left no validity; 126 command not executable; 127 command not found; 128+N killed by
(or redlock got) signal N. Exit codes (status): 0 held, 1 free, 2 unsettled, 69 unavailable.
See docs/cli.md for the full reference.";

const EXEC_AFTER_HELP: &str = "\
Lock kinds: without --shared, -x, --also or --permits the lock is a plain one (one holder).
--shared holders share the name with each other; an -x holder excludes them and, while it
waits, makes new --shared holders wait behind it; a plain lock and -x take the same key and
exclude each other. --also locks several resources all or nothing (each the key a plain lock
on it takes). --permits K takes one of K permits of the semaphore named RESOURCE (the name is
not a lock). Refused (exit 64, before any request): --shared with -x; --permits with
--shared, -x or --also; --shared or -x with --also; --fencing with --shared or --permits.

The command runs in its own process group with stdin, stdout and stderr passed through, and
with REDLOCK_RESOURCE, REDLOCK_TOKEN, REDLOCK_VALIDITY_MS, REDLOCK_LOCK_KIND (mutex, reader,
writer, multi, permit), REDLOCK_RESOURCES (one per line), REDLOCK_FENCING_TOKEN with
--fencing (REDLOCK_FENCING_TOKENS, one per line, with --also) and REDLOCK_PERMITS with
--permits in its environment. The lock is extended every --extend-every while it runs and
released when it exits; redlock then exits with the command's status.

Every signal redlock can forward (HUP, INT, QUIT, ALRM, TERM, USR1, USR2, WINCH, …) is sent on
to the command's process group; once the command has exited the lock is released and redlock
exits 128+N. If redlock itself dies by a signal it cannot catch (SIGKILL, the OOM killer), the
command gets SIGKILL from the kernel (parent-death signal).

Job control works as under flock: Ctrl-Z (or SIGTSTP to redlock) stops the command, then
redlock stops too and the shell gets the terminal back; `fg` and `bg` resume both. A stopped
redlock cannot extend the lock: if it was lost by the time the job is resumed, the command is
killed (SIGKILL) instead of resumed, and redlock exits 75.

If the lock is lost while the command runs (no extension reached a quorum of masters), the
group gets --kill-signal BEFORE the lock's validity ends (when less than a safety margin of
max(node timeout + clock drift, 100ms), capped at ttl/4, is left), SIGKILL after
--kill-after, the lock is released best-effort, and redlock exits 75 (--lost-exit-code),
naming the masters that failed. A command that must not outlive the lock should stop
promptly on that signal; fencing tokens (--fencing) let the protected resource itself refuse
a late writer.

There is no --no-fork (-F) or --close (-o) as in flock: redlock must stay alive to extend the
lock, and there is no file descriptor to pass on.

Exit codes: the command's status; 1 or -E N on conflict or wait expiry; 64 bad usage; 65 the
key holds a value that is not a lock, or --permits K differs from the semaphore's users' K;
69 no quorum reachable; 75 or --lost-exit-code lock lost; 78 a quorum granted the lock too
late to leave any validity (raise --ttl); 126 not executable; 127 not found; 128+N the command was killed by signal N, or redlock received signal N and
forwarded it. --json adds a one-line JSON report as redlock's last line on stderr.

Examples:
  # cron: run on one host at a time, skip this round if another host is still running it
  */5 * * * * redlock exec -q -n -s redis://10.0.0.1 -s redis://10.0.0.2 -s redis://10.0.0.3 sync -- /opt/sync.sh

  # deploy step: wait up to 10 minutes for the previous deploy, fail with 3 if it is still running
  REDLOCK_SERVERS=redis://a:6379,redis://b:6379,redis://c:6379 \\
    redlock exec -w 10m -E 3 --ttl 1m deploy:prod -- ./deploy.sh v1.2.3

  # a shell command, with a fencing token for the database to check
  redlock exec --fencing migrate -c 'psql -v fence=$REDLOCK_FENCING_TOKEN -f migrate.sql'

  # readers together, the nightly import alone (readers arriving while it waits queue)
  redlock exec --shared catalog -- ./report.sh
  redlock exec -x -w 30m catalog -- ./import.sh

  # two resources, both or neither
  redlock exec -w 1m stock:berlin --also stock:paris -- ./transfer.sh berlin paris 40

  # at most 3 exports at once, cluster-wide
  redlock exec --permits 3 -w 10m exports -- ./export.sh";

const STATUS_AFTER_HELP: &str = "\
For each resource: on each master, whether the key exists, the first 8 characters of the
holder's token and the key's PTTL; then the quorum view (free, held, shared by N readers,
unsettled, or unknown when no quorum answered). When the holder is a plain `redlock exec` (or
a library user that stored it), a holder line names its host, pid, command and since when. A
line says when an exclusive (-x) holder waits; when the name is also a semaphore's
(--permits), a `semaphore:` line gives the permits taken of the total, with each holder and
each master's slots.

Exit codes: 0 held (every resource: a lock, readers, or a permit), 1 free, 2 unsettled (the masters disagree: an acquisition
or expiry in progress, or a value that is not a lock), 69 unavailable (too few masters
answered); with several resources the first of 69, 2, 1 that applies. -q prints nothing.

Examples:
  redlock status deploy:prod
  redlock status -q deploy:prod; echo $?                # 0 held, 1 free, 2 unsettled, 69
  redlock status --json jobs:a jobs:b | jq '.resources[].state'";

const RELEASE_AFTER_HELP: &str = "\
For an operator who must clear a stuck lock: on each master, deletes the resource's key if it
still holds the value read just before (so a lock taken in the meantime is left alone), tells
waiting redlock processes, and prints what it removed there. Keys that hold something other
than a lock are left alone, and so are readers (--shared) and a semaphore's permits (exit 65:
stop their processes; their leases end by their TTL). The fencing counter is never touched
(tokens keep growing).

Without --yes nothing is deleted: it prints what it would remove and exits 64. A holder that
is still running loses its lock: `redlock exec` then stops its command and exits 75.

Exit codes: 0 the key is gone from every master; 69 some master could not be reached or
changed (its key expires by its TTL); 65 a non-lock value, readers or permits were left
alone; 64 bad usage or no --yes.

Examples:
  redlock release --force deploy:prod                   # show what would be removed
  redlock release --force --yes deploy:prod";

const BENCH_AFTER_HELP: &str = "\
Runs lock/unlock cycles one after another against your masters on a resource of its own
(default `redlock-bench:<pid>`), and prints the p50/p99 latency of each and the cycles per
second. Exits 69 when no quorum of masters is reachable.

Examples:
  redlock bench -s redis://10.0.0.1 -s redis://10.0.0.2 -s redis://10.0.0.3
  redlock bench --cycles 5000 --json";

/// `redlock`: run a command under a distributed lock held on a quorum of independent Redis
/// masters (the Redlock algorithm) — flock(1) across machines.
#[derive(Debug, Parser)]
#[command(
    name = "redlock",
    version,
    about = "Run a command under a distributed Redlock lock: flock(1) across machines",
    after_help = ROOT_AFTER_HELP,
    subcommand_required = true,
    arg_required_else_help = true
)]
pub(crate) struct Cli {
    /// Options every subcommand takes.
    #[command(flatten)]
    pub(crate) common: Common,
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Options shared by every subcommand.
#[derive(Debug, Args)]
pub(crate) struct Common {
    /// A quorum member's URL (repeatable, or comma-separated; a quorum is N/2+1 of them).
    /// Required: there is no default. Not flock's -s (a shared lock: --shared here).
    ///
    /// Accepted forms: `redis://[user:password@]host:port[/db]`; `rediss://…` (TLS);
    /// `redis+unix:///path[?db=N&pass=P]` or `unix:///path` (a Unix socket); a Sentinel group
    /// as ONE member:
    /// `redis+sentinel://[user:password@]host:port[,host:port…]/<master-name>[/<db>][?sentinel_username=U&sentinel_password=P]`
    /// (`rediss+sentinel://` for TLS; user:password are the master's, sentinel_* the
    /// sentinels'); a Redis Cluster as ONE member: `redis+cluster://host:port[,host:port…]`
    /// (`rediss+cluster://` for TLS).
    // No `value_delimiter`: a Sentinel URL has commas of its own. Every value (and the
    // variable) is split by the library's `parse_server_list`, which keeps them together.
    #[arg(
        short = 's',
        long = "server",
        value_name = "URL",
        env = "REDLOCK_SERVERS",
        hide_env_values = true,
        global = true
    )]
    pub(crate) servers: Vec<String>,

    /// Budget for one request to one master; a master that does not answer in time counts as
    /// unreachable for that attempt.
    // 200 ms rather than the library's 50 ms: every run is a fresh process on a host that
    // may be busy (CI runners, cron bursts), and a request kept from its CPU for 50 ms would
    // read as "no quorum reachable" (69). With a 30 s TTL the cost is nil.
    #[arg(
        long,
        value_name = "DUR",
        value_parser = parse_duration,
        default_value = "200ms",
        env = "REDLOCK_NODE_TIMEOUT",
        global = true
    )]
    pub(crate) node_timeout: Duration,

    /// Trust this PEM CA certificate (bundle) for rediss:// members instead of the system's
    /// roots.
    #[arg(
        long = "tls-ca-cert",
        value_name = "FILE",
        env = "REDLOCK_TLS_CA_CERT",
        hide_env_values = true,
        global = true,
        help_heading = "TLS"
    )]
    pub(crate) tls_ca_cert: Option<PathBuf>,

    /// Present this PEM client certificate (chain) to rediss:// members that require client
    /// authentication (mutual TLS); needs --tls-key.
    #[arg(
        long = "tls-cert",
        value_name = "FILE",
        env = "REDLOCK_TLS_CERT",
        hide_env_values = true,
        requires = "tls_key",
        global = true,
        help_heading = "TLS"
    )]
    pub(crate) tls_cert: Option<PathBuf>,

    /// The PEM private key of --tls-cert.
    #[arg(
        long = "tls-key",
        value_name = "FILE",
        env = "REDLOCK_TLS_KEY",
        hide_env_values = true,
        requires = "tls_cert",
        global = true,
        help_heading = "TLS"
    )]
    pub(crate) tls_key: Option<PathBuf>,

    /// DANGER: do NOT verify the masters' TLS certificates: anyone on the network path can
    /// impersonate a master and grant or steal locks.
    ///
    /// With this, any certificate for any name is accepted, so TLS only hides the traffic
    /// from passive eavesdroppers. For throw-away test setups only; for a private or
    /// self-signed CA use --tls-ca-cert instead.
    #[arg(
        long = "danger-accept-invalid-certs",
        global = true,
        help_heading = "TLS"
    )]
    pub(crate) danger_accept_invalid_certs: bool,

    /// Print acquisition time and per-master outcomes on stderr (-vv: also the library's
    /// debug log).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub(crate) verbose: u8,

    /// Print nothing but errors: no conflict message, no warnings.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub(crate) quiet: bool,
}

impl Common {
    /// The configured members, each `-s` value (or `REDLOCK_SERVERS`) split by the library's
    /// [`parse_server_list`].
    ///
    /// # Errors
    ///
    /// No member named (there is no default: a local master on every host would make each
    /// host's lock exclusive on that host only); a value without a URL scheme (flock's `-s`
    /// is a shared lock, ours names a server); a list the library's parser refuses. No
    /// message shows a password.
    pub(crate) fn server_urls(&self) -> Result<Vec<String>, ServersError> {
        let mut servers = Vec::new();
        for value in &self.servers {
            if let Some(hint) = scheme_hint(value) {
                return Err(ServersError::NoScheme(hint));
            }
            servers.extend(parse_server_list(value).map_err(ServersError::Config)?);
        }
        if servers.is_empty() {
            // clap fills `servers` from the variable when no -s is given.
            let from_env = std::env::var_os(SERVERS_ENV)
                .is_some_and(|v| v.to_string_lossy().trim().is_empty());
            return Err(ServersError::None { from_env });
        }
        Ok(servers)
    }
}

/// Why the server list is unusable (bad usage, exit 64).
#[derive(Debug)]
pub(crate) enum ServersError {
    /// Neither `-s` nor `REDLOCK_SERVERS` named a master (`from_env`: the variable is set
    /// but blank).
    None {
        /// `REDLOCK_SERVERS` is set, to a blank value.
        from_env: bool,
    },
    /// A value has no URL scheme; the message suggests one.
    NoScheme(String),
    /// The library's parser refused the list (passwords redacted).
    Config(ConfigError),
}

impl std::fmt::Display for ServersError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::None { from_env } => write!(
                f,
                "{}name the Redis masters that hold the lock: -s redis://HOST:PORT for each \
                 (repeatable, or comma-separated), or {SERVERS_ENV}=redis://a:6379,redis://b:6379,\
                 redis://c:6379; use an odd number (3 or 5) of independent masters, the same on \
                 every host that takes the lock",
                if *from_env {
                    format!("{SERVERS_ENV} is set but empty; ")
                } else {
                    "no masters given; ".to_owned()
                }
            ),
            Self::NoScheme(hint) => f.write_str(hint),
            Self::Config(e) => write!(f, "{e}"),
        }
    }
}

/// A "did you mean …?" for a server value whose first part has no URL scheme
/// (`localhost:6379`, or a flock user's `-s` meant as "shared"); `None` when it has one (later
/// parts are the library parser's to check: they may continue a Sentinel URL's host list). A
/// part that may hold a password (an `@`) is not echoed.
pub(crate) fn scheme_hint(value: &str) -> Option<String> {
    let first = value.split(',').map(str::trim).next()?;
    if first.is_empty() || first.contains("://") {
        return None;
    }
    let (what, url) = if first.contains('@') {
        (
            "the value".to_owned(),
            "redis://[user:password@]HOST:PORT".to_owned(),
        )
    } else {
        let shown: String = first.chars().flat_map(char::escape_default).collect();
        (format!("`{shown}`"), format!("redis://{shown}"))
    };
    Some(format!(
        "-s takes a server URL (here -s is --server; flock's -s, a shared lock, is \
         --shared): {what} has no scheme; did you mean -s {url}?"
    ))
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Acquire the lock, run a command while holding it, release it when the command exits.
    #[command(after_help = EXEC_AFTER_HELP)]
    Exec(ExecArgs),
    /// Show who holds resources, on each master and in the quorum's view.
    #[command(after_help = STATUS_AFTER_HELP)]
    Status(StatusArgs),
    /// Measure lock/unlock latency and throughput against your masters.
    #[command(after_help = BENCH_AFTER_HELP)]
    Bench(BenchArgs),
    /// Delete a stuck lock on every master, whoever holds it (--force --yes).
    #[command(after_help = RELEASE_AFTER_HELP)]
    Release(ReleaseArgs),
}

/// `redlock exec`.
#[derive(Debug, Args)]
pub(crate) struct ExecArgs {
    /// Fail at once (exit 1 or -E) if the lock is held by someone else.
    #[arg(
        short = 'n',
        long = "nonblock",
        visible_alias = "nb",
        env = "REDLOCK_NONBLOCK",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub(crate) nonblock: bool,

    /// Wait at most DUR for the lock (`0` = --nonblock; a bare number means seconds), also
    /// through a loss of quorum (exit 69 if the masters are still out of reach at the end).
    /// Default: wait forever.
    #[arg(
        short = 'w',
        long = "wait",
        visible_alias = "timeout",
        value_name = "DUR",
        value_parser = parse_duration,
        env = "REDLOCK_WAIT"
    )]
    pub(crate) wait: Option<Duration>,

    /// Exit status on conflict or when --wait expires.
    #[arg(
        short = 'E',
        long = "conflict-exit-code",
        value_name = "N",
        default_value_t = crate::exit::CONFLICT,
        env = "REDLOCK_CONFLICT_EXIT_CODE"
    )]
    pub(crate) conflict_exit_code: u8,

    /// Lock time-to-live; the lock is extended by this much while the command runs.
    #[arg(long, value_name = "DUR", value_parser = parse_duration, default_value = "30s", env = "REDLOCK_TTL")]
    pub(crate) ttl: Duration,

    /// Extension period (at most ttl/2). Default: ttl/3.
    #[arg(long, value_name = "DUR", value_parser = parse_duration, env = "REDLOCK_EXTEND_EVERY")]
    pub(crate) extend_every: Option<Duration>,

    /// Signal sent to the command's process group when the lock is lost (name or number).
    #[arg(
        long,
        value_name = "SIG",
        value_parser = parse_signal,
        default_value = "TERM",
        env = "REDLOCK_KILL_SIGNAL"
    )]
    pub(crate) kill_signal: Signal,

    /// After --kill-signal, SIGKILL the group if it is still running after DUR.
    #[arg(
        short = 'k',
        long,
        value_name = "DUR",
        value_parser = parse_duration,
        default_value = "5s",
        env = "REDLOCK_KILL_AFTER"
    )]
    pub(crate) kill_after: Duration,

    /// Exit status when the lock was lost while the command ran.
    #[arg(long, value_name = "N", default_value_t = crate::exit::LOST, env = "REDLOCK_LOST_EXIT_CODE")]
    pub(crate) lost_exit_code: u8,

    /// Issue a fencing token with the lock, passed as REDLOCK_FENCING_TOKEN. With --also,
    /// one token per resource instead, in REDLOCK_FENCING_TOKENS: one per line, in the order
    /// of REDLOCK_RESOURCES.
    #[arg(
        long,
        env = "REDLOCK_FENCING",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub(crate) fencing: bool,

    /// When redlock is done, write a one-line JSON report (outcome, exit code, the command's
    /// status, times) as its last line on stderr; with -q it is the only line redlock writes.
    #[arg(long)]
    pub(crate) json: bool,

    /// Run this shell command with `/bin/sh -c` instead of COMMAND.
    #[arg(short = 'c', long = "command", value_name = "SHELL_COMMAND")]
    pub(crate) shell_command: Option<String>,

    /// Take a shared (reader's) lock on RESOURCE, as flock -s: any number of --shared
    /// holders at once, none while an --exclusive holder or a plain lock holds it, and none
    /// new while an --exclusive one waits (writer preference). Default: a plain lock.
    #[arg(long, conflicts_with = "exclusive", help_heading = "Lock kind")]
    pub(crate) shared: bool,

    /// Take the exclusive (writer's) lock on RESOURCE, as flock -x: alone, and new
    /// --shared holders queue behind it while it waits. It is the plain lock's key: a
    /// plain lock on the name excludes it and is excluded by it. Default: a plain lock
    /// (exclusive too, but new --shared holders do not queue behind it).
    #[arg(short = 'x', long, help_heading = "Lock kind")]
    pub(crate) exclusive: bool,

    /// Lock this resource too, together with RESOURCE: all of them or none (one request
    /// per master, one token, one TTL). Repeatable; at most 64 resources in all. Each is
    /// the same key a plain lock on that name takes, so they exclude each other. Default:
    /// RESOURCE alone.
    #[arg(long = "also", value_name = "RESOURCE", help_heading = "Lock kind")]
    pub(crate) also: Vec<String>,

    /// Take one of K permits of the counting semaphore named RESOURCE: at most K holders
    /// at once (K from 1 to 256; every user of the name must give the same K). A
    /// semaphore's name is not a lock: a plain lock on it does not exclude permit holders.
    /// Default: no semaphore (a lock).
    #[arg(
        long,
        value_name = "K",
        value_parser = parse_permits,
        help_heading = "Lock kind"
    )]
    pub(crate) permits: Option<u32>,

    /// The lock's name (its Redis key, shared with other Redlock clients); with --permits,
    /// the semaphore's name.
    #[arg(value_name = "RESOURCE")]
    pub(crate) resource: String,

    /// The command and its arguments (put `--` before it when it starts with `-`).
    #[arg(
        value_name = "COMMAND",
        trailing_var_arg = true,
        allow_hyphen_values = true,
        conflicts_with = "shell_command",
        required_unless_present = "shell_command"
    )]
    pub(crate) command: Vec<String>,
}

/// `redlock status`.
#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    /// Print JSON (one object) instead of text.
    #[arg(long)]
    pub(crate) json: bool,

    /// The resources to show.
    #[arg(value_name = "RESOURCE", required = true)]
    pub(crate) resources: Vec<String>,
}

/// `redlock release`.
#[derive(Debug, Args)]
pub(crate) struct ReleaseArgs {
    /// Delete the lock whoever holds it (required: redlock holds no token of its own here).
    #[arg(long, required = true)]
    pub(crate) force: bool,

    /// Really delete; without it, only show what would be removed (and exit 64).
    #[arg(long)]
    pub(crate) yes: bool,

    /// Print JSON (one object) instead of text.
    #[arg(long)]
    pub(crate) json: bool,

    /// The resource whose lock to delete.
    #[arg(value_name = "RESOURCE")]
    pub(crate) resource: String,
}

/// `redlock bench`.
#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// Lock/unlock cycles to run.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub(crate) cycles: u32,

    /// Stop after DUR even if fewer cycles ran.
    #[arg(long, value_name = "DUR", value_parser = parse_duration, default_value = "30s")]
    pub(crate) duration: Duration,

    /// The resource locked and unlocked. Default: `redlock-bench:<pid>`
    #[arg(short = 'r', long, value_name = "NAME")]
    pub(crate) resource: Option<String>,

    /// TTL of each lock.
    #[arg(long, value_name = "DUR", value_parser = parse_duration, default_value = "10s")]
    pub(crate) ttl: Duration,

    /// Print JSON instead of text.
    #[arg(long)]
    pub(crate) json: bool,
}

/// A duration as `500ms`, `10s`, `1m`, `1h 30m`; a bare number (decimal fractions allowed)
/// means seconds, as flock's `-w`.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty duration".to_owned());
    }
    if s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        let secs: f64 = s
            .parse()
            .map_err(|_| format!("`{s}` is not a number of seconds"))?;
        return Duration::try_from_secs_f64(secs)
            .map_err(|_| format!("`{s}` seconds is out of range"));
    }
    humantime::parse_duration(s)
        .map_err(|e| format!("`{s}`: {e} (use e.g. 500ms, 10s, 1m, or a number of seconds)"))
}

/// A number of semaphore permits: 1 to [`MAX_PERMITS`].
pub(crate) fn parse_permits(s: &str) -> Result<u32, String> {
    let k: u32 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number of permits (1 to {MAX_PERMITS})"))?;
    if k == 0 || k > MAX_PERMITS {
        return Err(format!(
            "a semaphore has 1 to {MAX_PERMITS} permits (at most K holders at once), not {k}"
        ));
    }
    Ok(k)
}

/// A signal as `TERM`, `SIGTERM`, `term` or `15`.
pub(crate) fn parse_signal(s: &str) -> Result<Signal, String> {
    let s = s.trim();
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| format!("no signal number {n}"));
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse::<Signal>()
        .map_err(|_| format!("unknown signal `{s}` (use e.g. TERM, INT, KILL or a number)"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn durations_accept_units_and_bare_seconds() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("0.25"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("abc").is_err());
        assert!(parse_duration("1.2.3").is_err());
        assert!(parse_duration("-1").is_err());
    }

    #[test]
    fn permits_are_one_to_the_most() {
        assert_eq!(parse_permits("1"), Ok(1));
        assert_eq!(parse_permits(" 256 "), Ok(MAX_PERMITS));
        for bad in ["0", "257", "-1", "two", ""] {
            assert!(parse_permits(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn lock_kinds_parse_after_or_before_the_resource() {
        let cli = Cli::try_parse_from([
            "redlock", "exec", "--also", "b", "a", "--also", "c", "--", "ls",
        ])
        .unwrap();
        let Command::Exec(exec) = cli.command else {
            panic!("not exec")
        };
        assert_eq!(
            (exec.resource.as_str(), exec.also.as_slice()),
            ("a", &["b".to_owned(), "c".to_owned()][..])
        );
        assert!(Cli::try_parse_from(["redlock", "exec", "--shared", "-x", "r", "ls"]).is_err());
    }

    #[test]
    fn signals_by_name_or_number() {
        assert_eq!(parse_signal("TERM"), Ok(Signal::SIGTERM));
        assert_eq!(parse_signal("sigint"), Ok(Signal::SIGINT));
        assert_eq!(parse_signal("9"), Ok(Signal::SIGKILL));
        assert!(parse_signal("FOO").is_err());
        assert!(parse_signal("0").is_err());
    }

    #[test]
    fn server_values_are_split_by_the_library_parser() {
        let common = |args: &[&str]| {
            let argv = ["redlock"].iter().chain(args).chain(&["status", "r"]);
            Cli::try_parse_from(argv).unwrap().common
        };
        let c = common(&[
            "-s",
            "redis://a:1, redis+sentinel://h:1,h:2/m",
            "-s",
            "rediss://b:2",
        ]);
        assert_eq!(
            c.server_urls().unwrap(),
            ["redis://a:1", "redis+sentinel://h:1,h:2/m", "rediss://b:2"]
        );
        let bad = common(&["-s", "redis://:pw@a:1,,redis://b:2"])
            .server_urls()
            .unwrap_err()
            .to_string();
        assert!(bad.contains("empty entry") && !bad.contains("pw@"), "{bad}");
    }

    #[test]
    fn the_command_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn exec_takes_the_rest_as_the_command() {
        let cli = Cli::try_parse_from(["redlock", "exec", "-n", "r", "ls", "-l", "-n"]).unwrap();
        let Command::Exec(exec) = cli.command else {
            panic!("not exec")
        };
        assert!(exec.nonblock);
        assert_eq!(exec.resource, "r");
        assert_eq!(exec.command, ["ls", "-l", "-n"]);
        assert!(Cli::try_parse_from(["redlock", "exec", "r"]).is_err());
        assert!(Cli::try_parse_from(["redlock", "exec", "r", "-c", "x", "ls"]).is_err());
        assert!(Cli::try_parse_from(["redlock", "exec", "r", "-c", "x"]).is_ok());
    }
}
