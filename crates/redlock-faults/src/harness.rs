//! The test bed: N real `redis-server` masters on loopback, one fault proxy per
//! (client, master) link, and the admin commands the nemeses use.
//!
//! The servers and the proxy are tokio-redlock's own integration-test support, included by
//! path (one harness for the library's tests and this suite).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use redis::Value;

#[allow(
    missing_docs,
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::as_conversions,
    clippy::print_stdout,
    clippy::print_stderr
)]
#[path = "../../tokio-redlock/tests/support/servers.rs"]
mod servers;

#[allow(
    missing_docs,
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::as_conversions,
    clippy::print_stdout,
    clippy::print_stderr
)]
#[path = "../../tokio-redlock/tests/support/proxy.rs"]
mod proxy;

pub use proxy::FaultProxy;
pub use servers::Persistence;
use servers::{RedisServer, ServerOptions};

/// A failure of the harness itself (not of the library under test).
#[derive(Debug)]
pub struct HarnessError(pub String);

impl std::fmt::Display for HarnessError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "harness error: {}", self.0)
    }
}

impl std::error::Error for HarnessError {}

/// `Result` of harness operations.
pub type HResult<T> = Result<T, HarnessError>;

fn herr(what: impl std::fmt::Display) -> HarnessError {
    HarnessError(what.to_string())
}

/// Runs blocking harness code (server start, kill, restart, admin commands) off the async
/// workers, turning a panic of the included support code into an error.
async fn blocking<T: Send + 'static>(
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> HResult<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        let cause = e
            .try_into_panic()
            .ok()
            .and_then(|p| {
                p.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            })
            .unwrap_or_else(|| "cancelled".to_owned());
        herr(format!("{what}: {cause}"))
    })
}

/// The ACL user the library connects as in the ACL scenario.
pub const LOCK_USER: (&str, &str) = ("locker", "locker-pw");

/// One master.
#[derive(Clone)]
pub struct Node {
    /// Index in the cluster (`n0`..).
    pub index: usize,
    port: u16,
    server: Arc<Mutex<RedisServer>>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("index", &self.index)
            .field("port", &self.port)
            .finish()
    }
}

impl Node {
    /// `n<index>`, as in histories.
    pub fn name(&self) -> String {
        format!("n{}", self.index)
    }

    /// The server's address (direct, not through a proxy).
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// SIGSTOP.
    pub fn pause(&self) {
        self.server
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pause();
    }

    /// SIGCONT.
    pub fn resume(&self) {
        self.server
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .resume();
    }

    /// SIGCONT if the process is alive (after a run, whatever state a fault left it in).
    pub fn resume_if_running(&self) {
        let mut server = self.server.lock().unwrap_or_else(PoisonError::into_inner);
        if server.is_running() {
            server.resume();
        }
    }

    /// SIGKILL (and reap).
    ///
    /// # Errors
    ///
    /// Never in practice; a panic of the support code becomes an error.
    pub async fn kill(&self) -> HResult<()> {
        let server = Arc::clone(&self.server);
        blocking("kill", move || {
            server.lock().unwrap_or_else(PoisonError::into_inner).kill();
        })
        .await
    }

    /// Starts the server again on the same port and dir, and waits until it answers. With
    /// [`Persistence::None`] it comes back empty; with AOF `always`, with every
    /// acknowledged write.
    ///
    /// # Errors
    ///
    /// When the server does not come back.
    pub async fn restart(&self) -> HResult<()> {
        let server = Arc::clone(&self.server);
        blocking("restart", move || {
            server
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .restart();
        })
        .await
    }

    /// SIGKILL, then (after `delay`) a restart.
    ///
    /// # Errors
    ///
    /// When the server does not come back.
    pub async fn kill_restart(&self, delay: Duration) -> HResult<()> {
        self.kill().await?;
        tokio::time::sleep(delay).await;
        self.restart().await
    }

    /// Runs one admin command directly on the server (default user), with a read timeout
    /// of `timeout`.
    ///
    /// # Errors
    ///
    /// On connection errors and server error replies.
    pub async fn admin(&self, args: &[&str], timeout: Duration) -> HResult<Value> {
        let port = self.port;
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        let shown = args.join(" ");
        blocking("admin command", move || admin_sync(port, &args, timeout))
            .await?
            .map_err(|e| herr(format!("`{shown}` on port {port}: {e}")))
    }

    /// `DEBUG SLEEP <secs>` on a fresh connection; `connected` fires once the connection
    /// is up, just before the command is sent.
    ///
    /// # Errors
    ///
    /// On connection errors and server error replies.
    pub async fn debug_sleep(
        &self,
        secs: String,
        timeout: Duration,
        connected: tokio::sync::oneshot::Sender<()>,
    ) -> HResult<()> {
        let port = self.port;
        blocking("DEBUG SLEEP", move || -> redis::RedisResult<()> {
            let client = redis::Client::open(format!("redis://127.0.0.1:{port}"))?;
            let mut conn = client.get_connection_with_timeout(Duration::from_secs(2))?;
            conn.set_read_timeout(Some(timeout))?;
            let _ = connected.send(());
            redis::cmd("DEBUG")
                .arg("SLEEP")
                .arg(&secs)
                .query::<Value>(&mut conn)
                .map(|_| ())
        })
        .await?
        .map_err(|e| herr(format!("DEBUG SLEEP on port {port}: {e}")))
    }

    /// Lock keys (not fencing counters) with their PTTL.
    ///
    /// # Errors
    ///
    /// When the server does not answer.
    pub async fn lock_keys(&self) -> HResult<Vec<(String, i64)>> {
        let keys = match self.admin(&["KEYS", "*"], Duration::from_secs(2)).await? {
            Value::Array(items) => items
                .into_iter()
                .filter_map(|v| match v {
                    Value::BulkString(k) => Some(String::from_utf8_lossy(&k).into_owned()),
                    _ => None,
                })
                .filter(|k| !is_fence_key(k))
                .collect::<Vec<_>>(),
            _ => Vec::new(),
        };
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            if let Ok(Value::Int(p)) = self.admin(&["PTTL", &k], Duration::from_secs(2)).await
                && p != -2
            {
                out.push((k, p));
            }
        }
        Ok(out)
    }

    /// The fencing counter of `resource` on this node (0 when missing).
    ///
    /// # Errors
    ///
    /// When the server does not answer.
    pub async fn fence_counter(&self, resource: &str) -> HResult<u64> {
        let key = format!("{{{resource}}}:fence");
        match self.admin(&["GET", &key], Duration::from_secs(2)).await? {
            Value::BulkString(v) => String::from_utf8_lossy(&v).parse().map_err(herr),
            _ => Ok(0),
        }
    }

    /// TTL-skew emulation of a clock step on this node: every lock key's remaining TTL
    /// shrinks by `delta_ms` (a forward jump; a key left with ≤ 0 is deleted) or grows by
    /// `−delta_ms` (a backward jump). Keys without a TTL (fencing counters) are untouched.
    /// Returns how many keys were changed.
    ///
    /// # Errors
    ///
    /// When the server does not answer.
    pub async fn skew_ttls(&self, delta_ms: i64) -> HResult<i64> {
        let delta = delta_ms.to_string();
        match self
            .admin(&["EVAL", SKEW_SCRIPT, "0", &delta], Duration::from_secs(2))
            .await?
        {
            Value::Int(n) => Ok(n),
            other => Err(herr(format!("unexpected skew reply {other:?}"))),
        }
    }
}

/// What a clock step does to lock keys on one master, atomically.
const SKEW_SCRIPT: &str = r"
local d = tonumber(ARGV[1])
local n = 0
for _, k in ipairs(redis.call('KEYS', '*')) do
  local p = redis.call('PTTL', k)
  if p > 0 then
    local np = p - d
    if np <= 0 then redis.call('DEL', k) else redis.call('PEXPIRE', k, np) end
    n = n + 1
  end
end
return n
";

/// Fencing counters are `{<lock key>}:fence` and never expire.
pub fn is_fence_key(key: &str) -> bool {
    key.ends_with("}:fence")
}

fn admin_sync(port: u16, args: &[String], timeout: Duration) -> redis::RedisResult<Value> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}"))?;
    let mut conn = client.get_connection_with_timeout(Duration::from_secs(2))?;
    conn.set_read_timeout(Some(timeout))?;
    conn.set_write_timeout(Some(Duration::from_secs(2)))?;
    let mut cmd = redis::Cmd::new();
    for a in args {
        cmd.arg(a.as_str());
    }
    match cmd.query::<Value>(&mut conn)? {
        Value::ServerError(e) => Err(e.into()),
        v => Ok(v),
    }
}

/// One client's links to the masters: its own proxy in front of each.
pub struct ClientLink {
    /// Client name (`g0`, `p1`, `A`).
    pub name: String,
    /// One proxy per master, in the masters' order.
    pub proxies: Vec<FaultProxy>,
    /// `user:password@` for the URLs, when the ACL user is in use.
    pub credentials: Option<(String, String)>,
}

impl std::fmt::Debug for ClientLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientLink")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl ClientLink {
    /// The URLs the client's manager uses (its proxies).
    pub fn urls(&self) -> Vec<String> {
        self.proxies
            .iter()
            .map(|p| match &self.credentials {
                Some((user, pw)) => format!("redis://{user}:{pw}@127.0.0.1:{}", p.addr().port()),
                None => p.url(),
            })
            .collect()
    }

    /// The proxy in front of master `node`.
    pub fn proxy(&self, node: usize) -> Option<&FaultProxy> {
        self.proxies.get(node)
    }
}

/// N masters and the clients' links to them.
pub struct Cluster {
    /// The masters.
    pub nodes: Vec<Node>,
    /// Persistence of every master.
    pub persistence: Persistence,
    /// Every client link created so far.
    pub links: Vec<Arc<ClientLink>>,
    acl: bool,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("nodes", &self.nodes)
            .field("persistence", &self.persistence)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// Starts `n` masters (in parallel) with the given persistence. With `acl`, each also
    /// has the ACL user [`LOCK_USER`] (all commands, keys and channels) from its command
    /// line, so the user survives restarts, and links connect as that user.
    ///
    /// # Errors
    ///
    /// When a server does not start (e.g. `redis-server` is not installed).
    pub async fn start(n: usize, persistence: Persistence, acl: bool) -> HResult<Self> {
        let mut opts = ServerOptions::persistence(persistence);
        if acl {
            let pass = format!(">{}", LOCK_USER.1);
            opts = opts.args(&["--user", LOCK_USER.0, "on", &pass, "~*", "&*", "+@all"]);
        }
        let masters = blocking("start redis-server", move || {
            servers::Masters::start_with(n, opts)
        })
        .await?;
        let nodes = masters
            .0
            .into_iter()
            .enumerate()
            .map(|(index, server)| Node {
                index,
                port: server.port(),
                server: Arc::new(Mutex::new(server)),
            })
            .collect();
        Ok(Self {
            nodes,
            persistence,
            links: Vec::new(),
            acl,
        })
    }

    /// Masters needed for a quorum.
    pub fn quorum(&self) -> usize {
        self.nodes
            .len()
            .checked_div(2)
            .unwrap_or(0)
            .saturating_add(1)
    }

    /// A new client link: one proxy in front of each master.
    pub async fn link(&mut self, name: &str) -> Arc<ClientLink> {
        let mut proxies = Vec::with_capacity(self.nodes.len());
        for node in &self.nodes {
            proxies.push(FaultProxy::start(node.addr()).await);
        }
        let link = Arc::new(ClientLink {
            name: name.to_owned(),
            proxies,
            credentials: self
                .acl
                .then(|| (LOCK_USER.0.to_owned(), LOCK_USER.1.to_owned())),
        });
        self.links.push(Arc::clone(&link));
        link
    }

    /// Lifts every proxy fault on every link.
    pub fn heal_links(&self) {
        for link in &self.links {
            for p in &link.proxies {
                p.heal();
            }
        }
    }

    /// Lock keys left on each master: `(node, key, pttl)`.
    ///
    /// # Errors
    ///
    /// When a master does not answer.
    pub async fn lock_keys(&self) -> HResult<Vec<(usize, String, i64)>> {
        let mut out = Vec::new();
        for node in &self.nodes {
            for (k, p) in node.lock_keys().await? {
                out.push((node.index, k, p));
            }
        }
        Ok(out)
    }
}
