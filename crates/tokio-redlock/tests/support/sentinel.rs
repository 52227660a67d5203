//! A real Redis Sentinel deployment for integration tests: one master, one replica and three
//! sentinels (quorum 2), all `redis-server` child processes on loopback.
//!
//! [`SentinelSet::start`] returns only once the replica is in sync and every sentinel knows
//! the replica and the two other sentinels, so [`SentinelSet::failover`] can promote the
//! replica at once. Dropping the set SIGKILLs every process (sentinels first).
//!
//! The sentinels run with shorter internal periods than the defaults (`SENTINEL DEBUG
//! INFO-PERIOD 1000 PUBLISH-PERIOD 500`, instead of 10 s and 2 s): discovery is faster, and
//! after a failover the demoted master, which keeps answering as a writable master until a
//! sentinel reconfigures it, is turned into a replica after about 2–3 s instead of 10–20 s.
//!
//! [`Sentinel::monitoring`] starts a lone sentinel for a master name of a test's own (one
//! with a space, say) over servers the test starts itself.
//!
//! The set is generic over its [`DataServer`]: plaintext [`RedisServer`]s (and plaintext
//! sentinels) by default, or TLS-only ones (`SentinelSet<TlsMaster>`, see `tls.rs`), whose
//! sentinels listen and talk to the data servers over TLS only.

use std::{
    collections::HashMap,
    fs::{self, File},
    io,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use redis::{RedisResult, Value};
use tempfile::TempDir;

use super::servers::{
    CMD_TIMEOUT, ChildProcess, RedisServer, ServerOptions, query_on, start_with_retries,
};

/// The monitored master's name.
pub const MASTER_NAME: &str = "mymaster";

/// How long `start` waits for replication and for the sentinels to discover each other.
const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a single sentinel may take to answer after being spawned.
const SENTINEL_STARTUP_TIMEOUT: Duration = Duration::from_secs(5);
/// How long [`SentinelSet::failover`] waits for the promotion to be visible everywhere.
const FAILOVER_TIMEOUT: Duration = Duration::from_secs(30);

/// A sync connection to a process of a set on `127.0.0.1:port`, within the timeout.
pub type Connector = fn(u16, Duration) -> RedisResult<redis::Connection>;

/// The data servers of a [`SentinelSet`] and how the set is reached: the servers through their
/// own helpers (`try_cmd`), the sentinels — readiness checks included — through
/// [`connect`](Self::connect).
pub trait DataServer: Sized {
    /// The member URL scheme of a group of such servers.
    const SENTINEL_SCHEME: &'static str;
    /// Starts one data server of a set (no diskless-sync delay), with `args` appended.
    fn start_in_set(args: &[&str]) -> Self;
    /// The port the server listens on.
    fn port(&self) -> u16;
    /// One command on a fresh connection; server error replies become `Err`.
    fn try_cmd(&self, args: &[&str]) -> RedisResult<Value>;
    /// The last lines of the server log.
    fn log_tail(&self) -> String;
    /// The `sentinel.conf` lines that make a sentinel listen on `port` and reach the data
    /// servers; may write files (certificates) under the sentinel's `dir`.
    fn sentinel_listen(port: u16, dir: &Path) -> String;
    /// A sync connection to a sentinel (or server) of such a set.
    fn connect(port: u16, timeout: Duration) -> RedisResult<redis::Connection>;
}

impl DataServer for RedisServer {
    const SENTINEL_SCHEME: &'static str = "redis+sentinel";

    fn start_in_set(args: &[&str]) -> Self {
        Self::start(ServerOptions::default().args(&NO_SYNC_DELAY).args(args))
    }

    fn port(&self) -> u16 {
        Self::port(self)
    }

    fn try_cmd(&self, args: &[&str]) -> RedisResult<Value> {
        Self::try_cmd(self, args)
    }

    fn log_tail(&self) -> String {
        Self::log_tail(self)
    }

    fn sentinel_listen(port: u16, _dir: &Path) -> String {
        format!("port {port}\n")
    }

    fn connect(port: u16, timeout: Duration) -> RedisResult<redis::Connection> {
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}"))?;
        let conn = client.get_connection_with_timeout(timeout)?;
        conn.set_read_timeout(Some(timeout))?;
        conn.set_write_timeout(Some(timeout))?;
        Ok(conn)
    }
}

/// No 5 s wait for more replicas before a (diskless) full sync, on either data server of a
/// set: each is the master of the other at some point.
pub const NO_SYNC_DELAY: [&str; 2] = ["--repl-diskless-sync-delay", "0"];

/// One `redis-server --sentinel` child process on 127.0.0.1.
pub struct Sentinel {
    process: ChildProcess,
    port: u16,
    dir: PathBuf,
    connect: Connector,
}

impl Sentinel {
    /// Writes `sentinel.conf` under `dir` and starts a sentinel monitoring `master_port` as
    /// [`MASTER_NAME`] with quorum 2, retrying on a fresh port if the process dies (somebody
    /// else took the port).
    fn start<S: DataServer>(dir: PathBuf, master_port: u16) -> Self {
        Self::start_monitoring::<S>(dir, MASTER_NAME, master_port, 2)
    }

    /// A lone sentinel monitoring `master` as `name` with quorum 1, for a master name other
    /// than [`MASTER_NAME`] (one with a space, say). Its configuration and log go under `dir`,
    /// which the caller keeps until the sentinel is dropped. It does not wait for the sentinel
    /// to discover the master's replicas.
    pub fn monitoring(dir: PathBuf, name: &str, master: &RedisServer) -> Self {
        Self::start_monitoring::<RedisServer>(dir, name, master.port(), 1)
    }

    fn start_monitoring<S: DataServer>(
        dir: PathBuf,
        name: &str,
        master_port: u16,
        quorum: u32,
    ) -> Self {
        fs::create_dir_all(&dir).expect("create sentinel dir");
        let (port, process) = start_with_retries("redis-server --sentinel", |port| {
            let listen = S::sentinel_listen(port, &dir);
            spawn_sentinel(port, &dir, &listen, S::connect, name, master_port, quorum)
        });
        Self {
            process,
            port,
            dir,
            connect: S::connect,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`.
    pub fn host_port(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Runs one command on a fresh connection. Server error replies become `Err`.
    pub fn try_cmd(&self, args: &[&str]) -> RedisResult<Value> {
        query(self.connect, self.port, args)
    }

    /// Runs one command on a fresh connection; panics on any error.
    pub fn cmd(&self, args: &[&str]) -> Value {
        self.try_cmd(args)
            .unwrap_or_else(|e| panic!("{args:?} on sentinel {} failed: {e}", self.port))
    }

    /// `SENTINEL GET-MASTER-ADDR-BY-NAME mymaster` → the port of the master it names.
    pub fn master_port(&self) -> RedisResult<Option<u16>> {
        self.master_port_of(MASTER_NAME)
    }

    /// `SENTINEL GET-MASTER-ADDR-BY-NAME name` → the port of the master it names.
    pub fn master_port_of(&self, name: &str) -> RedisResult<Option<u16>> {
        let reply = self.try_cmd(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", name])?;
        Ok(match reply {
            Value::Nil => None,
            Value::Array(items) => match items.as_slice() {
                [_, port] => Some(text(port).parse().expect("sentinel names a numeric port")),
                _ => panic!("unexpected GET-MASTER-ADDR-BY-NAME reply {items:?}"),
            },
            other => panic!("unexpected GET-MASTER-ADDR-BY-NAME reply {other:?}"),
        })
    }

    /// `SENTINEL REPLICAS mymaster` (or `SENTINELS`) as one field map per instance.
    pub fn instances(&self, what: &str) -> RedisResult<Vec<HashMap<String, String>>> {
        self.instances_of(what, MASTER_NAME)
    }

    /// `SENTINEL REPLICAS name` (or `SENTINELS`) as one field map per instance.
    pub fn instances_of(
        &self,
        what: &str,
        name: &str,
    ) -> RedisResult<Vec<HashMap<String, String>>> {
        Ok(field_maps(self.try_cmd(&["SENTINEL", what, name])?))
    }

    /// `SENTINEL FAILOVER name`, retried every 100 ms while this sentinel refuses it
    /// (`NOGOODSLAVE`, `INPROG`: its view is not ready) for up to 30 s; `Err` holds the last
    /// refusal. Does not wait for the failover itself.
    pub fn force_failover(&self, name: &str) -> Result<(), String> {
        let started = Instant::now();
        loop {
            let refusal = match self.try_cmd(&["SENTINEL", "FAILOVER", name]) {
                Ok(_) => return Ok(()),
                Err(e) => e.to_string(),
            };
            if started.elapsed() > FAILOVER_TIMEOUT {
                return Err(refusal);
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// Clients with a subscription (`sub=` other than 0 in `CLIENT LIST`): the failover
    /// watch's, to `+switch-master`.
    pub fn subscribed_clients(&self) -> usize {
        let list = match self.cmd(&["CLIENT", "LIST"]) {
            Value::BulkString(b) => String::from_utf8_lossy(&b).into_owned(),
            Value::VerbatimString { text, .. } => text,
            other => panic!("CLIENT LIST: {other:?}"),
        };
        list.lines()
            .filter(|l| l.split(' ').any(|f| f.starts_with("sub=") && f != "sub=0"))
            .count()
    }

    /// The last lines of the sentinel's log.
    pub fn log_tail(&self) -> String {
        tail_of(&self.dir.join("sentinel.log"), 30)
    }

    /// Freezes the process (SIGSTOP): connections are accepted by the kernel, nothing is
    /// answered until [`resume`](Self::resume).
    pub fn pause(&self) {
        self.process.pause();
    }

    /// Undoes [`pause`](Self::pause).
    pub fn resume(&self) {
        self.process.resume();
    }

    /// SIGKILLs the process and reaps it. Idempotent; works while paused.
    pub fn kill(&mut self) {
        self.process.kill();
    }
}

/// One master, one replica and three sentinels monitoring them as [`MASTER_NAME`].
pub struct SentinelSet<S: DataServer = RedisServer> {
    // Field order is drop order: the sentinels go first, then the data servers, then the
    // directory holding the sentinels' configuration and logs.
    sentinels: Vec<Sentinel>,
    /// `[initial master, initial replica]`; the roles swap on failover.
    servers: [S; 2],
    dir: TempDir,
}

impl SentinelSet {
    /// Starts a plaintext set (see [`launch`](Self::launch)).
    pub fn start() -> Self {
        Self::launch()
    }
}

impl<S: DataServer> SentinelSet<S> {
    /// Starts the master, the replica (waiting for `master_link_status:up`), and three
    /// sentinels, and waits until every sentinel knows the replica and the other sentinels.
    pub fn launch() -> Self {
        let master = S::start_in_set(&[]);
        let master_port = master.port().to_string();
        let replica = S::start_in_set(&["--replicaof", "127.0.0.1", &master_port]);
        let dir = tempfile::Builder::new()
            .prefix("redlock-sentinel-")
            .tempdir()
            .expect("create temp dir for the sentinels");
        let mut set = Self {
            sentinels: Vec::new(),
            servers: [master, replica],
            dir,
        };
        set.wait_until(DISCOVERY_TIMEOUT, "the replica to be in sync", |s| {
            link_up(&s.servers[1])
        });
        for i in 0..3 {
            let sentinel =
                Sentinel::start::<S>(set.dir.path().join(format!("s{i}")), set.servers[0].port());
            // Faster than the defaults (10 s, 2 s): quicker discovery, and a demoted master
            // is reconfigured as a replica about 2 s after a failover.
            sentinel.cmd(&[
                "SENTINEL",
                "DEBUG",
                "INFO-PERIOD",
                "1000",
                "PUBLISH-PERIOD",
                "500",
            ]);
            set.sentinels.push(sentinel);
        }
        let replica_port = set.servers[1].port().to_string();
        set.wait_until(
            DISCOVERY_TIMEOUT,
            "every sentinel to know the (connected) replica and the two other sentinels",
            |s| {
                s.sentinels.iter().all(|sentinel| {
                    let replica_ok = sentinel.instances("REPLICAS").is_ok_and(|replicas| {
                        replicas.iter().any(|r| {
                            field(r, "port") == replica_port
                                && field(r, "flags") == "slave"
                                && field(r, "master-link-status") == "ok"
                        })
                    });
                    let peers_ok = sentinel.instances("SENTINELS").is_ok_and(|peers| {
                        peers.len() == 2 && peers.iter().all(|p| field(p, "flags") == "sentinel")
                    });
                    replica_ok && peers_ok
                })
            },
        );
        set
    }

    /// `redis+sentinel://127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3/mymaster` (`rediss+sentinel`
    /// for a TLS set).
    pub fn url(&self) -> String {
        self.url_for(MASTER_NAME)
    }

    /// Like [`url`](Self::url) with another master name.
    pub fn url_for(&self, master_name: &str) -> String {
        let hosts: Vec<String> = self.sentinels.iter().map(Sentinel::host_port).collect();
        format!("{}://{}/{master_name}", S::SENTINEL_SCHEME, hosts.join(","))
    }

    pub fn sentinels(&self) -> &[Sentinel] {
        &self.sentinels
    }

    pub fn sentinels_mut(&mut self) -> &mut [Sentinel] {
        &mut self.sentinels
    }

    /// Clients subscribed (the failover watch's, to `+switch-master`) across the sentinels.
    pub fn subscribed_clients(&self) -> usize {
        self.sentinels
            .iter()
            .map(Sentinel::subscribed_clients)
            .sum()
    }

    /// The server that was the master at start (a replica again some time after a failover).
    pub fn initial_master(&self) -> &S {
        &self.servers[0]
    }

    /// The server that was the replica at start (the master after [`failover`](Self::failover)).
    pub fn initial_replica(&self) -> &S {
        &self.servers[1]
    }

    /// Both data servers, `[initial master, initial replica]`.
    pub fn servers(&self) -> &[S; 2] {
        &self.servers
    }

    /// The data server on `port`.
    pub fn server_on(&self, port: u16) -> &S {
        self.servers
            .iter()
            .find(|s| s.port() == port)
            .unwrap_or_else(|| panic!("no server of the set on port {port}"))
    }

    /// The master port the first answering sentinel names.
    pub fn current_master_port(&self) -> u16 {
        let mut errors = Vec::new();
        for sentinel in &self.sentinels {
            match sentinel.master_port() {
                Ok(Some(port)) => return port,
                Ok(None) => errors.push(format!("{}: unknown master", sentinel.port())),
                Err(e) => errors.push(format!("{}: {e}", sentinel.port())),
            }
        }
        panic!("no sentinel named the master: {}", errors.join("; "));
    }

    /// The data server the sentinels name as master.
    pub fn current_master(&self) -> &S {
        self.server_on(self.current_master_port())
    }

    /// The data server that is not [`current_master`](Self::current_master).
    pub fn current_replica(&self) -> &S {
        let master = self.current_master_port();
        self.servers
            .iter()
            .find(|s| s.port() != master)
            .expect("two servers")
    }

    /// Forces a failover (`SENTINEL FAILOVER mymaster`) and waits until every sentinel
    /// names the former replica as master and it answers `ROLE` as a master. Returns the new
    /// master's port. The former master is NOT waited for: it keeps answering as a master
    /// until a sentinel reconfigures it (see [`wait_demoted`](Self::wait_demoted)).
    pub fn failover(&self) -> u16 {
        let old = self.current_master_port();
        let new = self
            .servers
            .iter()
            .map(S::port)
            .find(|p| *p != old)
            .expect("two servers");
        let started = Instant::now();
        if let Err(last_refusal) = self.sentinels[0].force_failover(MASTER_NAME) {
            self.fail(&format!(
                "SENTINEL FAILOVER kept being refused for {FAILOVER_TIMEOUT:?}: {last_refusal}"
            ));
        }
        let remaining = FAILOVER_TIMEOUT.saturating_sub(started.elapsed());
        self.wait_until(
            remaining,
            &format!(
                "every sentinel to name {new} as master (was {old}) and {new} to answer ROLE master"
            ),
            |s| {
                s.sentinels
                    .iter()
                    .all(|sentinel| sentinel.master_port().ok().flatten() == Some(new))
                    && role(s.server_on(new)) == "master"
            },
        );
        new
    }

    /// Waits (up to 30 s) until the former master `port` answers `ROLE` as a replica of the
    /// current master and its replication link is up.
    pub fn wait_demoted(&self, port: u16) {
        let master = self.current_master_port();
        assert_ne!(port, master, "{port} is the current master");
        self.wait_until(
            FAILOVER_TIMEOUT,
            &format!("{port} to become a replica of {master} with its link up"),
            |s| {
                let server = s.server_on(port);
                role(server) == "slave"
                    && info_field(server, "replication", "master_port").as_deref()
                        == Some(master.to_string().as_str())
                    && link_up(server)
            },
        );
    }

    /// Logs of every sentinel and data server, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for sentinel in &self.sentinels {
            out.push_str(&format!(
                "=== sentinel {} ===\n{}\n",
                sentinel.port(),
                sentinel.log_tail()
            ));
        }
        for server in &self.servers {
            out.push_str(&format!(
                "=== redis {} ===\n{}\n",
                server.port(),
                server.log_tail()
            ));
        }
        out
    }

    /// Polls `cond` every 50 ms until true; panics with every log tail after `timeout`.
    fn wait_until(&self, timeout: Duration, what: &str, mut cond: impl FnMut(&Self) -> bool) {
        let started = Instant::now();
        loop {
            if cond(self) {
                return;
            }
            if started.elapsed() > timeout {
                self.fail(&format!("timed out after {timeout:?} waiting for {what}"));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    fn fail(&self, what: &str) -> ! {
        let views: Vec<String> = self
            .sentinels
            .iter()
            .map(|s| format!("sentinel {} names {:?}", s.port(), s.master_port()))
            .collect();
        let roles: Vec<String> = self
            .servers
            .iter()
            .map(|s| format!("{} is {}", s.port(), role(s)))
            .collect();
        panic!(
            "sentinel set: {what}\n{}\n{}\n{}",
            views.join("\n"),
            roles.join("\n"),
            self.logs()
        );
    }
}

/// The first element of `ROLE` (`master`, `slave`), or the error text.
pub fn role(server: &impl DataServer) -> String {
    match server.try_cmd(&["ROLE"]) {
        Ok(Value::Array(items)) => items.first().map(text).unwrap_or_default(),
        Ok(other) => format!("unexpected ROLE reply {other:?}"),
        Err(e) => format!("ROLE failed: {e}"),
    }
}

/// Whether `server`'s replication link to its master is up.
pub fn link_up(server: &impl DataServer) -> bool {
    info_field(server, "replication", "master_link_status").as_deref() == Some("up")
}

/// One `field:value` line of `INFO section`, if present (`None` also when INFO fails).
fn info_field(server: &impl DataServer, section: &str, name: &str) -> Option<String> {
    let info = match server.try_cmd(&["INFO", section]).ok()? {
        Value::BulkString(b) => String::from_utf8(b).ok()?,
        Value::VerbatimString { text, .. } => text,
        _ => return None,
    };
    let prefix = format!("{name}:");
    info.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|v| v.trim().to_owned())
}

fn field<'a>(map: &'a HashMap<String, String>, name: &str) -> &'a str {
    map.get(name).map_or("", String::as_str)
}

/// A string-ish reply as text.
fn text(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) => s.clone(),
        Value::VerbatimString { text, .. } => text.clone(),
        Value::Int(i) => i.to_string(),
        other => format!("{other:?}"),
    }
}

/// `SENTINEL REPLICAS/SENTINELS` reply: an array of flat key/value arrays (RESP2) or maps.
fn field_maps(reply: Value) -> Vec<HashMap<String, String>> {
    let Value::Array(instances) = reply else {
        panic!("unexpected SENTINEL reply {reply:?}");
    };
    instances
        .into_iter()
        .map(|instance| match instance {
            Value::Array(flat) => flat
                .chunks(2)
                .map(|kv| (text(&kv[0]), kv.get(1).map(text).unwrap_or_default()))
                .collect(),
            Value::Map(pairs) => pairs.iter().map(|(k, v)| (text(k), text(v))).collect(),
            other => panic!("unexpected SENTINEL instance {other:?}"),
        })
        .collect()
}

/// One command on a fresh sync connection to `127.0.0.1:port` (2 s timeouts).
fn query(connect: Connector, port: u16, args: &[&str]) -> RedisResult<Value> {
    query_on(&mut connect(port, CMD_TIMEOUT)?, args)
}

/// Writes the sentinel's configuration (`listen`: how it listens on `port`), spawns it and
/// waits until *this* process answers through `connect`. The master name is quoted in the
/// configuration, so it may hold spaces.
fn spawn_sentinel(
    port: u16,
    dir: &Path,
    listen: &str,
    connect: Connector,
    name: &str,
    master_port: u16,
    quorum: u32,
) -> Result<ChildProcess, String> {
    let conf = dir.join("sentinel.conf");
    let log = dir.join("sentinel.log");
    // A previous attempt's files (another port) must not leak into this one.
    let _ = fs::remove_file(&log);
    fs::write(
        &conf,
        format!(
            "{listen}\
             bind 127.0.0.1\n\
             daemonize no\n\
             sentinel monitor \"{name}\" 127.0.0.1 {master_port} {quorum}\n\
             sentinel down-after-milliseconds \"{name}\" 1000\n\
             sentinel failover-timeout \"{name}\" 10000\n\
             dir {}\n\
             logfile {}\n",
            dir.display(),
            log.display()
        ),
    )
    .expect("write sentinel.conf");
    let stderr = File::create(dir.join("sentinel.stderr")).expect("create sentinel.stderr");
    let child = match Command::new("redis-server")
        .arg(&conf)
        .arg("--sentinel")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
    {
        Ok(child) => ChildProcess::new(child, "sentinel"),
        Err(e) if e.kind() == io::ErrorKind::NotFound => panic!(
            "redis-server not found: install it with `sudo apt-get install -y redis-server`; \
             the sentinel tests need real processes and never skip"
        ),
        Err(e) => panic!("spawning redis-server --sentinel failed: {e}"),
    };
    child.wait_ready(
        SENTINEL_STARTUP_TIMEOUT,
        // INFO carries the process id: a parallel test's process may have won the port.
        |pid| match query(connect, port, &["INFO", "server"]) {
            Ok(v)
                if text(&v)
                    .lines()
                    .any(|l| l.trim() == format!("process_id:{pid}")) =>
            {
                Ok(())
            }
            Ok(_) => Err("answered, but not our process".to_owned()),
            Err(e) => Err(e.to_string()),
        },
        || {
            format!(
                "{}\n{}",
                tail_of(&dir.join("sentinel.stderr"), 30),
                tail_of(&log, 30)
            )
        },
    )
}

/// The last `n` lines of a file (empty when missing).
fn tail_of(path: &Path, n: usize) -> String {
    let content = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = content.lines().collect();
    format!(
        "--- {} (tail) ---\n{}",
        path.display(),
        lines[lines.len().saturating_sub(n)..].join("\n")
    )
}
