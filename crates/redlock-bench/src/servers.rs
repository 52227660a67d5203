//! Real `redis-server` processes for the benchmark (a trimmed copy of the library's test
//! harness): a free loopback port each, no persistence, a temporary `--dir`, SIGSTOP/SIGCONT,
//! and SIGKILL on drop so no server outlives the run.

use std::net::{Ipv4Addr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tempfile::TempDir;

use crate::BenchError;

/// How long a start waits for the server to answer PING.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(5);
/// Fresh ports tried when a start fails (another process took the port).
const START_ATTEMPTS: usize = 5;

/// One `redis-server` child process on 127.0.0.1.
#[derive(Debug)]
pub struct RedisServer {
    child: Child,
    port: u16,
    // Dropped after the process is killed (field order).
    _dir: TempDir,
}

impl RedisServer {
    /// Starts a server on a free loopback port and waits until it answers PING.
    ///
    /// # Errors
    ///
    /// [`BenchError::Server`] when `redis-server` is missing or never answers.
    pub fn start() -> Result<Self, BenchError> {
        Self::start_with(&[])
    }

    /// Like [`start`](Self::start), with `extra` arguments for `redis-server`.
    ///
    /// # Errors
    ///
    /// [`BenchError::Server`] when `redis-server` is missing or never answers.
    pub fn start_with(extra: &[&str]) -> Result<Self, BenchError> {
        let dir = tempfile::Builder::new()
            .prefix("redlock-bench-")
            .tempdir()
            .map_err(|e| BenchError::Server(format!("temp dir: {e}")))?;
        let mut failures = Vec::new();
        for _ in 0..START_ATTEMPTS {
            let port = free_port()?;
            match spawn_and_wait(port, &dir, extra) {
                Ok(child) => {
                    return Ok(Self {
                        child,
                        port,
                        _dir: dir,
                    });
                }
                Err(e) => failures.push(format!("port {port}: {e}")),
            }
        }
        Err(BenchError::Server(failures.join("; ")))
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Freezes the process (SIGSTOP): connections are accepted by the kernel, nothing is
    /// answered until [`resume`](Self::resume).
    ///
    /// # Errors
    ///
    /// [`BenchError::Server`] when the signal cannot be sent.
    pub fn pause(&self) -> Result<(), BenchError> {
        self.signal(Signal::SIGSTOP)
    }

    /// Undoes [`pause`](Self::pause) (SIGCONT).
    ///
    /// # Errors
    ///
    /// [`BenchError::Server`] when the signal cannot be sent.
    pub fn resume(&self) -> Result<(), BenchError> {
        self.signal(Signal::SIGCONT)
    }

    fn signal(&self, signal: Signal) -> Result<(), BenchError> {
        let pid =
            i32::try_from(self.child.id()).map_err(|e| BenchError::Server(format!("pid: {e}")))?;
        kill(Pid::from_raw(pid), signal)
            .map_err(|e| BenchError::Server(format!("{signal} to redis-server: {e}")))
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // Errors only mean it already exited; `wait` reaps it either way.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `n` servers in parallel.
///
/// # Errors
///
/// The first start failure; the servers already started are stopped.
pub fn start_masters(n: usize) -> Result<Vec<RedisServer>, BenchError> {
    let handles: Vec<_> = (0..n).map(|_| thread::spawn(RedisServer::start)).collect();
    let mut servers = Vec::with_capacity(n);
    let mut error = None;
    for handle in handles {
        match handle.join() {
            Ok(Ok(server)) => servers.push(server),
            Ok(Err(e)) => error = Some(e),
            Err(_) => error = Some(BenchError::Server("start thread panicked".into())),
        }
    }
    match error {
        Some(e) => Err(e),
        None => Ok(servers),
    }
}

/// A Redis Cluster of `redis-server` processes (masters only), joined by
/// `redis-cli --cluster create`; every node is stopped on drop.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// `redis+cluster://` with every node as a seed.
    pub fn url(&self) -> String {
        let seeds: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("redis+cluster://{}", seeds.join(","))
    }
}

/// How long a cluster may take to agree on its slots after `redis-cli --cluster create`.
const CLUSTER_TIMEOUT: Duration = Duration::from_secs(30);

/// Starts `n` independent clusters of `masters` masters each (in parallel).
///
/// # Errors
///
/// [`BenchError::Server`] when a server does not start, `redis-cli` is missing or fails, or a
/// cluster does not reach `cluster_state:ok` in time.
pub fn start_clusters(n: usize, masters: usize) -> Result<Vec<RedisCluster>, BenchError> {
    let handles: Vec<_> = (0..n)
        .map(|_| thread::spawn(move || start_cluster(masters)))
        .collect();
    let mut clusters = Vec::with_capacity(n);
    let mut error = None;
    for handle in handles {
        match handle.join() {
            Ok(Ok(cluster)) => clusters.push(cluster),
            Ok(Err(e)) => error = Some(e),
            Err(_) => error = Some(BenchError::Server("cluster start thread panicked".into())),
        }
    }
    match error {
        Some(e) => Err(e),
        None => Ok(clusters),
    }
}

fn start_cluster(masters: usize) -> Result<RedisCluster, BenchError> {
    let args = [
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        "nodes.conf",
    ];
    let nodes = (0..masters)
        .map(|_| RedisServer::start_with(&args))
        .collect::<Result<Vec<_>, _>>()?;
    let mut create = Command::new("redis-cli");
    create.args(["--cluster", "create"]);
    for node in &nodes {
        create.arg(format!("127.0.0.1:{}", node.port));
    }
    let out = create
        .args(["--cluster-yes"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            BenchError::Server(format!("cannot run redis-cli ({e}); install redis-tools"))
        })?;
    if !out.status.success() {
        return Err(BenchError::Server(format!(
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout)
        )));
    }
    let started = Instant::now();
    while !nodes.iter().all(|n| cluster_ok(n.port)) {
        if started.elapsed() > CLUSTER_TIMEOUT {
            return Err(BenchError::Server(format!(
                "the cluster did not reach cluster_state:ok within {CLUSTER_TIMEOUT:?}"
            )));
        }
        thread::sleep(Duration::from_millis(100));
    }
    Ok(RedisCluster { nodes })
}

/// Whether the node on `port` says `cluster_state:ok`.
fn cluster_ok(port: u16) -> bool {
    let Ok(client) = redis::Client::open(format!("redis://127.0.0.1:{port}")) else {
        return false;
    };
    let Ok(mut conn) = client.get_connection_with_timeout(Duration::from_millis(200)) else {
        return false;
    };
    redis::cmd("CLUSTER")
        .arg("INFO")
        .query::<String>(&mut conn)
        .is_ok_and(|info| info.lines().any(|l| l.trim() == "cluster_state:ok"))
}

/// A port that was free a moment ago (bind :0, read it, release it).
fn free_port() -> Result<u16, BenchError> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| BenchError::Server(format!("bind 127.0.0.1:0: {e}")))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| BenchError::Server(format!("local_addr: {e}")))
}

/// Spawns `redis-server` on `port` and waits until it answers PING.
fn spawn_and_wait(port: u16, dir: &TempDir, extra: &[&str]) -> Result<Child, String> {
    let dir_str = dir.path().to_str().ok_or("temp dir path is not UTF-8")?;
    let mut child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no", "--dir", dir_str])
        .args(["--protected-mode", "no", "--daemonize", "no"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| {
            format!(
                "cannot run redis-server ({e}); install it, e.g. `apt-get install -y redis-server`"
            )
        })?;
    let started = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("redis-server exited early ({status})"));
        }
        if answers(port) {
            return Ok(child);
        }
        if started.elapsed() > STARTUP_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("no PONG within {STARTUP_TIMEOUT:?}"));
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Whether a server answers PING on `port`.
fn answers(port: u16) -> bool {
    let Ok(client) = redis::Client::open(format!("redis://127.0.0.1:{port}")) else {
        return false;
    };
    let Ok(mut conn) = client.get_connection_with_timeout(Duration::from_millis(200)) else {
        return false;
    };
    let _ = conn.set_read_timeout(Some(Duration::from_millis(500)));
    redis::cmd("PING")
        .query::<String>(&mut conn)
        .is_ok_and(|pong| pong == "PONG")
}
