//! Real `redis-server` processes for integration tests.
//!
//! Each [`RedisServer`] owns its child process, a loopback port and a
//! temporary `--dir`; dropping it SIGKILLs the process, so servers never
//! outlive a (possibly panicking) test. The tests never skip: if
//! `redis-server` is missing they fail with an install hint.

use std::{
    fs::File,
    io,
    net::{Ipv4Addr, SocketAddr, TcpListener},
    ops::{Index, IndexMut},
    path::Path,
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};
use redis::{ErrorKind, RedisResult, Value};
use tempfile::TempDir;

const NOT_FOUND_HINT: &str = "redis-server not found: install it with \
    `sudo apt-get install -y redis-server` (Debian/Ubuntu); the tests need real \
    Redis masters and never skip";

/// The command helpers every test server type has, built on its `try_cmd_bytes` and `port`
/// fields: `cmd`, `cmd_bytes`, `try_cmd`, `get`, `pttl`, `dbsize`, `holds`.
macro_rules! command_helpers {
    ($what:literal) => {
        /// Runs one command on a fresh connection; panics on any error.
        pub fn cmd(&self, args: &[&str]) -> Value {
            self.try_cmd(args)
                .unwrap_or_else(|e| panic!("{args:?} on {} {} failed: {e}", $what, self.port))
        }

        /// Like [`cmd`](Self::cmd) with binary arguments.
        pub fn cmd_bytes(&self, args: &[&[u8]]) -> Value {
            self.try_cmd_bytes(args).unwrap_or_else(|e| {
                let shown: Vec<_> = args.iter().map(|a| String::from_utf8_lossy(a)).collect();
                panic!("{shown:?} on {} {} failed: {e}", $what, self.port)
            })
        }

        /// Like `try_cmd_bytes` with text arguments.
        pub fn try_cmd(&self, args: &[&str]) -> RedisResult<Value> {
            let bytes: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
            self.try_cmd_bytes(&bytes)
        }

        /// GET: the value, or `None` if the key does not exist.
        pub fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
            match self.cmd_bytes(&[b"GET", key]) {
                Value::Nil => None,
                Value::BulkString(v) => Some(v),
                other => panic!("unexpected GET reply {other:?}"),
            }
        }

        /// PTTL in milliseconds (-2: no key, -1: no expiry).
        pub fn pttl(&self, key: &[u8]) -> i64 {
            match self.cmd_bytes(&[b"PTTL", key]) {
                Value::Int(i) => i,
                other => panic!("expected an integer reply, got {other:?}"),
            }
        }

        /// DBSIZE: the number of keys.
        pub fn dbsize(&self) -> i64 {
            match self.cmd(&["DBSIZE"]) {
                Value::Int(i) => i,
                other => panic!("expected an integer reply, got {other:?}"),
            }
        }

        /// Whether `key` holds exactly `token` (GET compared byte for byte).
        pub fn holds(&self, key: &[u8], token: impl AsRef<[u8]>) -> bool {
            self.get(key).as_deref() == Some(token.as_ref())
        }
    };
}

/// How long `start`/`restart` wait for the server to answer PING.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(5);
/// Connect/read/write timeout of the helper commands (`cmd` and friends).
pub const CMD_TIMEOUT: Duration = Duration::from_secs(2);
/// Attempts with a fresh port when the process dies at startup (port race).
pub const START_ATTEMPTS: usize = 5;

/// A child process a test owns (a Redis server or sentinel): dropping it SIGKILLs and reaps
/// the process, so it never outlives a (possibly panicking) test.
pub struct ChildProcess {
    child: Option<Child>,
    /// What the process is, for panic messages (`"redis-server"`, `"sentinel"`).
    what: &'static str,
}

impl ChildProcess {
    pub fn new(child: Child, what: &'static str) -> Self {
        Self {
            child: Some(child),
            what,
        }
    }

    /// The process id, `None` once killed.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Freezes the process (SIGSTOP): the kernel still accepts connections
    /// but nothing is answered until [`resume`](Self::resume).
    pub fn pause(&self) {
        self.signal(Signal::SIGSTOP);
    }

    /// Undoes [`pause`](Self::pause) (SIGCONT).
    pub fn resume(&self) {
        self.signal(Signal::SIGCONT);
    }

    fn signal(&self, signal: Signal) {
        let what = self.what;
        let pid = self
            .pid()
            .unwrap_or_else(|| panic!("{what} is not running"));
        let pid = Pid::from_raw(i32::try_from(pid).expect("pid fits in i32"));
        kill(pid, signal).unwrap_or_else(|e| panic!("{signal} to {what}: {e}"));
    }

    /// SIGKILLs the process and reaps it. Idempotent; works while paused.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Errors only mean it already exited; `wait` reaps it either way.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether the process is alive (a paused process counts as running).
    pub fn is_running(&mut self) -> bool {
        self.exited().is_none()
    }

    /// `None` while the process runs; else how it ended (it is then reaped and forgotten).
    fn exited(&mut self) -> Option<String> {
        let how = match self.child.as_mut().map(Child::try_wait) {
            Some(Ok(None)) => return None,
            Some(Ok(Some(status))) => status.to_string(),
            Some(Err(e)) => format!("wait failed: {e}"),
            None => "killed".to_owned(),
        };
        self.kill();
        Some(how)
    }

    /// Polls `ready` (given the process id) every 10 ms until it returns `Ok`. `Err`, naming
    /// the last reason `ready` gave and followed by `logs()`, if the process exits first or
    /// is not ready within `timeout` (the process is then killed and reaped).
    pub fn wait_ready(
        mut self,
        timeout: Duration,
        mut ready: impl FnMut(u32) -> Result<(), String>,
        logs: impl Fn() -> String,
    ) -> Result<Self, String> {
        let what = self.what;
        let pid = self.pid().expect("a process that was just spawned");
        let started = Instant::now();
        loop {
            if let Some(how) = self.exited() {
                return Err(format!("{what} exited early ({how})\n{}", logs()));
            }
            let last = match ready(pid) {
                Ok(()) => return Ok(self),
                Err(e) => e,
            };
            if started.elapsed() > timeout {
                return Err(format!(
                    "{what} did not answer within {timeout:?} (last: {last})\n{}",
                    logs()
                ));
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts a process on a free loopback port: `spawn` starts it on the port it is given and
/// waits until it answers; an `Err` (most likely somebody else took the port) is retried
/// on a fresh port, up to [`START_ATTEMPTS`] times, after which this panics with every
/// failure. Returns the port and the process.
pub fn start_with_retries(
    what: &str,
    mut spawn: impl FnMut(u16) -> Result<ChildProcess, String>,
) -> (u16, ChildProcess) {
    let mut failures = Vec::new();
    for _ in 0..START_ATTEMPTS {
        let port = free_port();
        match spawn(port) {
            Ok(child) => return (port, child),
            Err(e) => failures.push(format!("port {port}: {e}")),
        }
    }
    panic!(
        "{what} failed to start {START_ATTEMPTS} times:\n{}",
        failures.join("\n")
    );
}

/// Durability of a test server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Persistence {
    /// No RDB, no AOF: a restart comes back empty.
    #[default]
    None,
    /// AOF with `appendfsync always`: a restart (even after SIGKILL) keeps
    /// every acknowledged write.
    AofAlways,
}

impl Persistence {
    fn args(self) -> &'static [&'static str] {
        match self {
            Self::None => &["--save", "", "--appendonly", "no"],
            Self::AofAlways => &[
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
            ],
        }
    }
}

/// Startup options of a test server.
#[derive(Clone, Debug, Default)]
pub struct ServerOptions {
    pub persistence: Persistence,
    /// Appended verbatim to the command line, e.g. `["--requirepass", "s3cret"]`.
    pub extra_args: Vec<String>,
}

impl ServerOptions {
    /// Options with the given persistence and no extra arguments.
    pub fn persistence(persistence: Persistence) -> Self {
        Self {
            persistence,
            extra_args: Vec::new(),
        }
    }

    /// Adds extra command-line arguments.
    pub fn args(mut self, args: &[&str]) -> Self {
        self.extra_args.extend(args.iter().map(|a| (*a).to_owned()));
        self
    }

    /// The `--requirepass` value, if any, so helpers can AUTH.
    fn password(&self) -> Option<&str> {
        let i = self.extra_args.iter().position(|a| a == "--requirepass")?;
        self.extra_args.get(i + 1).map(String::as_str)
    }
}

/// One `redis-server` child process on 127.0.0.1.
pub struct RedisServer {
    process: ChildProcess,
    port: u16,
    opts: ServerOptions,
    // Declared last: dropped after the process is killed (dropped).
    dir: TempDir,
}

impl RedisServer {
    /// Starts a server on a free loopback port and waits until it answers.
    pub fn start(opts: ServerOptions) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("redlock-redis-")
            .tempdir()
            .expect("create temp dir for redis-server");
        let (port, process) = start_with_retries("redis-server", |port| {
            spawn_and_wait(port, dir.path(), &opts)
        });
        Self {
            process,
            port,
            opts,
            dir,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// `redis://127.0.0.1:PORT` (without credentials).
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The server's `--dir` (holds `redis.log` and any AOF files).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn options(&self) -> &ServerOptions {
        &self.opts
    }

    /// The last lines of the server log, for failure messages.
    pub fn log_tail(&self) -> String {
        log_tail(self.dir.path())
    }

    /// Freezes the process (SIGSTOP): the kernel still accepts connections
    /// but nothing is answered until [`resume`](Self::resume).
    pub fn pause(&self) {
        self.process.pause();
    }

    /// Undoes [`pause`](Self::pause) (SIGCONT).
    pub fn resume(&self) {
        self.process.resume();
    }

    /// SIGKILLs the process and reaps it. Idempotent; works while paused.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Whether the process is alive (a paused process counts as running).
    pub fn is_running(&mut self) -> bool {
        self.process.is_running()
    }

    /// Starts the server again on the same port, dir and options (killing
    /// it first if needed) and waits until it answers. With
    /// [`Persistence::AofAlways`] it comes back with its data.
    pub fn restart(&mut self) {
        self.kill();
        // The port was ours a moment ago; only retry briefly in case some
        // ephemeral socket grabbed it in between.
        let mut failures = Vec::new();
        for _ in 0..3 {
            match spawn_and_wait(self.port, self.dir.path(), &self.opts) {
                Ok(process) => {
                    self.process = process;
                    return;
                }
                Err(e) => failures.push(e),
            }
            thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "redis-server restart on port {} failed:\n{}",
            self.port,
            failures.join("\n")
        );
    }

    /// URL including the password, if the server has one.
    fn auth_url(&self) -> String {
        match self.opts.password() {
            Some(pw) => format!("redis://:{pw}@127.0.0.1:{}", self.port),
            None => self.url(),
        }
    }

    command_helpers!("redis");

    /// Runs one command on a fresh sync connection (2 s timeouts, AUTH if
    /// the server has `--requirepass`). Server error replies become `Err`.
    pub fn try_cmd_bytes(&self, args: &[&[u8]]) -> RedisResult<Value> {
        let client = redis::Client::open(self.auth_url())?;
        let mut conn = client.get_connection_with_timeout(CMD_TIMEOUT)?;
        conn.set_read_timeout(Some(CMD_TIMEOUT))?;
        conn.set_write_timeout(Some(CMD_TIMEOUT))?;
        query_on(&mut conn, args)
    }

    /// All keys (`KEYS *`), in server order.
    pub fn keys(&self) -> Vec<Vec<u8>> {
        match self.cmd(&["KEYS", "*"]) {
            Value::Array(items) => items
                .into_iter()
                .map(|v| match v {
                    Value::BulkString(k) => k,
                    other => panic!("unexpected KEYS item {other:?}"),
                })
                .collect(),
            other => panic!("unexpected KEYS reply {other:?}"),
        }
    }

    /// SCRIPT FLUSH: forgets cached scripts, so EVALSHA gets NOSCRIPT.
    pub fn flush_scripts(&self) {
        self.cmd(&["SCRIPT", "FLUSH"]);
    }

    /// EXISTS: whether `key` exists.
    pub fn exists(&self, key: &[u8]) -> bool {
        match expect_int(self.cmd_bytes(&[b"EXISTS", key])) {
            0 => false,
            1 => true,
            n => panic!("unexpected EXISTS reply {n}"),
        }
    }

    /// `INFO section` as text.
    pub fn info(&self, section: &str) -> String {
        match self.cmd(&["INFO", section]) {
            Value::BulkString(b) => String::from_utf8(b).expect("INFO reply is UTF-8"),
            Value::VerbatimString { text, .. } => text,
            other => panic!("unexpected INFO reply {other:?}"),
        }
    }

    /// Calls of `command` (lower case, e.g. `"evalsha"`) counted by `INFO commandstats`
    /// since the start or the last `CONFIG RESETSTAT`; 0 when never called.
    pub fn command_calls(&self, command: &str) -> u64 {
        command_calls_in(&self.info("commandstats"), command)
    }

    /// Every key with its PTTL (`KEYS *` order), for assertions and failure messages.
    pub fn keys_with_pttl(&self) -> Vec<(String, i64)> {
        self.keys_with(|key| self.pttl(key))
    }

    /// Every key with its value (`None` for a non-string key), for failure messages and for
    /// scanning values.
    pub fn dump(&self) -> Vec<(String, Option<Vec<u8>>)> {
        self.keys_with(|key| match self.try_cmd_bytes(&[b"GET", key]) {
            Ok(Value::BulkString(v)) => Some(v),
            _ => None,
        })
    }

    /// Every key (lossy UTF-8) with what `f` says about it.
    fn keys_with<T>(&self, f: impl Fn(&[u8]) -> T) -> Vec<(String, T)> {
        self.keys()
            .into_iter()
            .map(|key| {
                let about = f(&key);
                (String::from_utf8_lossy(&key).into_owned(), about)
            })
            .collect()
    }
}

/// Runs one command on `conn`; server error replies become `Err`.
pub fn query_on<A: redis::ToRedisArgs + Copy>(
    conn: &mut redis::Connection,
    args: &[A],
) -> RedisResult<Value> {
    let mut cmd = redis::Cmd::new();
    for arg in args {
        cmd.arg(*arg);
    }
    match cmd.query::<Value>(conn)? {
        Value::ServerError(e) => Err(e.into()),
        v => Ok(v),
    }
}

/// The `calls=` count of `command` in the text of `INFO commandstats` (0 when absent), for
/// tests that also show that text.
pub fn command_calls_in(stats: &str, command: &str) -> u64 {
    let prefix = format!("cmdstat_{command}:calls=");
    stats
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |rest| {
            rest.split(',')
                .next()
                .unwrap()
                .parse()
                .expect("calls= is a number")
        })
}

fn expect_int(v: Value) -> i64 {
    match v {
        Value::Int(i) => i,
        other => panic!("expected an integer reply, got {other:?}"),
    }
}

/// A port that was free a moment ago (bound, then released): nothing listens there.
///
/// Below the kernel's ephemeral range (32768–60999 by default): a client that keeps trying to
/// reconnect to a stopped server's port can be handed that very port as its own source port
/// (a TCP self-connect on loopback), and then holds it, so the server cannot start there
/// again. Ports 10000–31999 are never handed out as source ports.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOW: u32 = 10_000;
    const SPAN: u32 = 22_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    // Processes running tests at once start at different places of the range.
    let seed = std::process::id().wrapping_mul(7_919).wrapping_add(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0),
    );
    for _ in 0..SPAN {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = LOW + seed.wrapping_add(n.wrapping_mul(7)) % SPAN;
        let port = u16::try_from(port).expect("below 32000");
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return port;
        }
    }
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local_addr").port()
}

/// Spawns `redis-server` on `port` and waits until it answers PING.
/// `Err` (with the log tail) if it exits or never answers.
fn spawn_and_wait(port: u16, dir: &Path, opts: &ServerOptions) -> Result<ChildProcess, String> {
    let dir_str = dir.to_str().expect("temp dir path is UTF-8");
    let log = dir.join("redis.log");
    // Config errors are printed to stderr before the log file is opened.
    let stderr = File::create(dir.join("redis.stderr")).expect("create redis.stderr");
    let port_str = port.to_string();
    let mut command = Command::new("redis-server");
    command
        .args(["--port", &port_str, "--bind", "127.0.0.1", "--dir", dir_str])
        .args(["--enable-debug-command", "local", "--protected-mode", "no"])
        .args([
            "--daemonize",
            "no",
            "--logfile",
            log.to_str().expect("UTF-8 path"),
        ])
        .args(opts.persistence.args())
        .args(&opts.extra_args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr);
    let child = match command.spawn() {
        Ok(child) => ChildProcess::new(child, "redis-server"),
        Err(e) if e.kind() == io::ErrorKind::NotFound => panic!("{NOT_FOUND_HINT}"),
        Err(e) => panic!("spawning redis-server failed: {e}"),
    };
    child.wait_ready(
        STARTUP_TIMEOUT,
        |pid| {
            if answers(port, pid) {
                Ok(())
            } else {
                Err("no answer yet (or not from our process)".to_owned())
            }
        },
        || log_tail(dir),
    )
}

/// Whether *our* server (process `pid`) answers on `port`. An auth failure
/// (`--requirepass`) counts as answering; `LOADING` (AOF replay) does not.
fn answers(port: u16, pid: u32) -> bool {
    let Ok(client) = redis::Client::open(format!("redis://127.0.0.1:{port}")) else {
        return false;
    };
    let Ok(mut conn) = client.get_connection_with_timeout(Duration::from_millis(200)) else {
        return false;
    };
    let _ = conn.set_read_timeout(Some(Duration::from_millis(500)));
    // INFO rather than PING: a parallel test's server could have won the
    // port race, so check the process id too. INFO answers while an AOF is
    // being replayed, so also wait for `loading:0` (commands get LOADING
    // until then).
    match redis::cmd("INFO")
        .arg("everything")
        .query::<String>(&mut conn)
    {
        Ok(info) => {
            let has = |line: &str| info.lines().any(|l| l.trim() == line);
            has(&format!("process_id:{pid}")) && has("loading:0")
        }
        Err(e) => {
            e.kind() == ErrorKind::AuthenticationFailed
                || matches!(e.code(), Some("NOAUTH" | "WRONGPASS"))
        }
    }
}

/// Last 30 lines of the server's log and stderr (`redis.log`, `redis.stderr` in `dir`).
pub fn log_tail(dir: &Path) -> String {
    let mut out = String::new();
    for name in ["redis.stderr", "redis.log"] {
        let text = std::fs::read_to_string(dir.join(name)).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = &lines[lines.len().saturating_sub(30)..];
        out.push_str(&format!("--- {name} (tail) ---\n{}\n", tail.join("\n")));
    }
    out
}

/// Runs `start(opts.clone())` `n` times in parallel threads and returns the `n` servers; if
/// one panics, so does this, once all are joined (the others are dropped, hence killed).
pub fn start_in_parallel<O, T>(n: usize, opts: &O, start: fn(O) -> T) -> Vec<T>
where
    O: Clone + Send + 'static,
    T: Send + 'static,
{
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let opts = opts.clone();
            thread::spawn(move || start(opts))
        })
        .collect();
    // Join all first so a failure does not leak the other servers.
    let results: Vec<_> = handles.into_iter().map(thread::JoinHandle::join).collect();
    let mut servers = Vec::with_capacity(n);
    for result in results {
        match result {
            Ok(server) => servers.push(server),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
    servers
}

/// A set of independent masters, as Redlock wants.
pub struct Masters(pub Vec<RedisServer>);

impl Masters {
    /// Starts `n` masters without persistence.
    pub fn start(n: usize) -> Self {
        Self::start_with(n, ServerOptions::default())
    }

    /// Starts `n` masters in parallel with the same options.
    pub fn start_with(n: usize, opts: ServerOptions) -> Self {
        Self(start_in_parallel(n, &opts, RedisServer::start))
    }

    pub fn urls(&self) -> Vec<String> {
        self.0.iter().map(RedisServer::url).collect()
    }

    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.0.iter().map(RedisServer::addr).collect()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn get(&self, i: usize) -> Option<&RedisServer> {
        self.0.get(i)
    }

    pub fn iter(&self) -> std::slice::Iter<'_, RedisServer> {
        self.0.iter()
    }

    pub fn iter_mut(&mut self) -> std::slice::IterMut<'_, RedisServer> {
        self.0.iter_mut()
    }
}

impl Index<usize> for Masters {
    type Output = RedisServer;

    fn index(&self, i: usize) -> &RedisServer {
        &self.0[i]
    }
}

impl IndexMut<usize> for Masters {
    fn index_mut(&mut self, i: usize) -> &mut RedisServer {
        &mut self.0[i]
    }
}
