//! One Redis master: a lazily opened multiplexed connection, script calls bounded by the
//! per-master timeout, and the classification of every reply or error, done once, here.
//!
//! Why not `redis::aio::ConnectionManager`: it retries a failed connect with backoff inside a
//! shared future, so a wrong password shows up as our per-request *timeout* (the cause is
//! lost), and a connect failure that is not an I/O error is never retried. Here a connect is
//! tried once per request, bounded by `connect_timeout`, its error is reported as it is, and
//! the next request simply tries again. A request is resent only when the connection it
//! went out on was already dead, once, on a fresh connection (see `Node::eval`): every
//! script is idempotent for a given token, so that resend cannot change the outcome.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ErrorKind, RedisError, ServerErrorKind, Value};

use crate::error::{ConfigError, NodeError, NodeStatus, scrub};
use crate::failover::FailoverWatch;
use crate::keys;
use crate::member::Target;
use crate::scripts::{self, LuaScript};
use crate::sentinel::LookupError;
use crate::tls::{TlsSettings, tls_cause};

/// What every master of a manager shares: budgets and TLS settings.
#[derive(Debug)]
pub(crate) struct NodeOptions<'a> {
    pub(crate) node_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) tls: &'a TlsSettings,
}

/// The answer of the acquire script on one master.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AcquireReply {
    /// Our `SET NX` succeeded; `fence` is the fencing counter after our increment (0 when
    /// not fencing).
    Granted { fence: u64 },
    /// Another token holds the key, with its remaining TTL when it has one, and the fencing
    /// counter (0 when not fencing).
    Held {
        remaining: Option<Duration>,
        fence: u64,
    },
    /// The key exists and is not a string.
    NotALock,
}

/// The answer of a compare-and-act script (release, extend) on one master.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CasReply {
    /// The key held our token and the action was done.
    Done,
    /// No key.
    Absent,
    /// The key holds another token.
    Other,
    /// The key is not a string.
    NotALock,
}

/// The answer of the fencing raise script on one master.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FenceReply {
    /// The counter was below the proposal and now equals it.
    Raised,
    /// The counter is already at or above the proposal.
    Refused { counter: u64 },
    /// The lock key does not hold our token here.
    NotOwner,
}

impl FenceReply {
    /// The public status for this reply.
    pub(crate) fn status(self) -> NodeStatus {
        match self {
            Self::Raised => NodeStatus::Done,
            Self::Refused { .. } => NodeStatus::HeldByOther { remaining: None },
            Self::NotOwner => NodeStatus::Absent,
        }
    }
}

/// Whether a release tells the resource's waiters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Publish {
    /// A lock (or what may be one) is released: wake the waiters.
    Yes,
    /// The cleanup of a failed attempt: a minority of keys that frees nothing a waiter could
    /// take, and whose notification would only wake the failed waiter itself.
    No,
}

/// What a master holds under a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Peek {
    /// No key.
    Absent,
    /// A string value with its remaining TTL (`None`: the key has no TTL).
    Value {
        value: Vec<u8>,
        remaining: Option<Duration>,
    },
    /// The key exists and is not a string.
    NotALock,
}

/// How often (ms) a live connection's server is asked `ROLE` again.
const ROLE_EVERY_MS: u64 = 1_000;

/// Requests that time out in a row before a connection is replaced.
const DEAD_AFTER_TIMEOUTS: u64 = 8;

/// Where a connection attempt failed: asking the sentinels, or on the master itself.
enum Phase {
    Lookup(LookupError),
    Master(RedisError),
    /// The server answered `ROLE` as something other than a master.
    NotMaster(NodeError),
}

impl From<RedisError> for Phase {
    fn from(e: RedisError) -> Self {
        Self::Master(e)
    }
}

/// How one try of a request failed.
enum Attempt {
    /// The connection was dead; the request may be sent once more on a new one.
    Dropped(NodeError),
    /// Any other failure: final.
    Failed(NodeError),
}

impl Attempt {
    fn into_error(self) -> NodeError {
        match self {
            Self::Dropped(e) | Self::Failed(e) => e,
        }
    }
}

/// The servers behind one manager's masters, known by their `run_id` (from `INFO server`),
/// so that one server listed under two names (`127.0.0.1` and `localhost`, say) is refused
/// instead of counting twice toward a quorum.
#[derive(Debug, Default)]
pub(crate) struct ServerIds(Mutex<Vec<Option<ServerId>>>);

/// One master's server: its `run_id` and the master's (redacted) address.
#[derive(Debug, Clone)]
struct ServerId {
    run_id: String,
    address: Arc<str>,
}

impl ServerIds {
    /// Records that master `index` is the server `run_id`, unless another master of the same
    /// manager is that server. Without a `run_id` (no permission for `INFO`) the check is
    /// skipped.
    fn register(
        &self,
        index: usize,
        address: &Arc<str>,
        run_id: Option<String>,
    ) -> Result<(), NodeError> {
        let Some(run_id) = run_id else {
            tracing::debug!(master = %address, "no run_id from INFO: duplicate-server check skipped");
            return Ok(());
        };
        let mut ids = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let duplicate = ids.iter().enumerate().find_map(|(i, id)| match id {
            Some(other) if i != index && other.run_id == run_id => Some(Arc::clone(&other.address)),
            _ => None,
        });
        if let Some(other) = duplicate {
            return Err(NodeError::SameServer(other.to_string()));
        }
        if ids.len() <= index {
            ids.resize(index.saturating_add(1), None);
        }
        if let Some(slot) = ids.get_mut(index) {
            *slot = Some(ServerId {
                run_id,
                address: Arc::clone(address),
            });
        }
        Ok(())
    }
}

/// The `run_id` line of an `INFO server` reply.
fn run_id(info: &str) -> Option<String> {
    info.lines()
        .find_map(|l| l.trim().strip_prefix("run_id:"))
        .map(str::to_owned)
}

/// The connection currently in use, tagged so a failure can only discard the connection it
/// happened on (not a newer one another task opened meanwhile).
struct Current {
    generation: u64,
    /// The failover epoch the connection was opened under (Sentinel members; else 0).
    epoch: u64,
    connection: MultiplexedConnection,
}

/// One master of the quorum.
pub(crate) struct Node {
    /// Position in the manager's list of masters.
    index: usize,
    /// The servers of all the manager's masters, to refuse one server counted twice.
    servers: Arc<ServerIds>,
    /// The URL as configured, password replaced by `***`.
    address: Arc<str>,
    /// Where connections go: a fixed server, or the master a Sentinel group names.
    target: Target,
    /// Passwords from the URL, scrubbed from any error text.
    secrets: Vec<String>,
    node_timeout: Duration,
    connect_timeout: Duration,
    current: Mutex<Option<Current>>,
    /// Serialises connection attempts, so a burst of requests opens one connection.
    connecting: tokio::sync::Mutex<ConnectState>,
    /// Connection attempts finished so far (read without the lock).
    attempts: AtomicU64,
    /// Requests timed out in a row on the current connection.
    timeouts: AtomicU64,
    /// When the node was created: the origin of `role_checked_ms`.
    born: tokio::time::Instant,
    /// When (ms after `born`) the server last answered `ROLE`.
    role_checked_ms: AtomicU64,
}

/// The bookkeeping of connection attempts, behind `Node::connecting`.
#[derive(Default)]
struct ConnectState {
    /// Generation of the last connection opened.
    generation: u64,
    /// The error of the last attempt and its number, if it failed.
    last_failure: Option<(u64, NodeError)>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl Node {
    /// Parses a member URL (a server, or a Sentinel group); never connects.
    pub(crate) fn new(
        url: &str,
        index: usize,
        servers: Arc<ServerIds>,
        options: &NodeOptions<'_>,
    ) -> Result<Self, ConfigError> {
        // Parsing (credentials first), redaction and the client: see `member.rs`.
        let crate::member::Member {
            address,
            target,
            secrets,
        } = crate::member::Member::new(
            url,
            options.tls,
            options.node_timeout,
            options.connect_timeout,
        )?;
        Ok(Self {
            index,
            servers,
            address,
            target,
            secrets,
            node_timeout: options.node_timeout,
            connect_timeout: options.connect_timeout,
            current: Mutex::new(None),
            connecting: tokio::sync::Mutex::new(ConnectState::default()),
            attempts: AtomicU64::new(0),
            timeouts: AtomicU64::new(0),
            born: tokio::time::Instant::now(),
            role_checked_ms: AtomicU64::new(0),
        })
    }

    /// The redacted address.
    pub(crate) fn address(&self) -> &Arc<str> {
        &self.address
    }

    /// The identity of the member (host, port, db; or the Sentinel group) for duplicate
    /// detection.
    pub(crate) fn identity(&self) -> String {
        self.target.identity()
    }

    /// Whether the member speaks TLS.
    pub(crate) fn is_tls(&self) -> bool {
        self.target.is_tls()
    }

    fn cached(&self) -> Option<(u64, MultiplexedConnection)> {
        let epoch = self.epoch();
        let guard = self.current.lock().unwrap_or_else(|p| p.into_inner());
        guard
            .as_ref()
            // A connection to a master the sentinels have since replaced is not used again.
            .filter(|c| c.epoch == epoch)
            .map(|c| (c.generation, c.connection.clone()))
    }

    /// The failover epoch of a Sentinel member (0 for a fixed address).
    fn epoch(&self) -> u64 {
        self.target.watch().map_or(0, FailoverWatch::epoch)
    }

    /// The shared connection, opened on first use (bounded by `connect_timeout`).
    ///
    /// Requests that queued behind a connection attempt that failed get that attempt's error
    /// instead of trying again one after another: an unreachable master costs each request
    /// at most one `connect_timeout`, and requests do not pile up behind each other.
    async fn connection(&self) -> Result<(u64, MultiplexedConnection), NodeError> {
        if let Some(c) = self.cached() {
            return Ok(c);
        }
        let attempts_before = self.attempts.load(Ordering::Acquire);
        let mut state = self.connecting.lock().await;
        if let Some(c) = self.cached() {
            return Ok(c);
        }
        if let Some((attempt, error)) = &state.last_failure
            && *attempt > attempts_before
        {
            return Err(error.clone());
        }
        // The redis crate's own response timeout is off: every request is bounded by
        // `node_timeout` below, which also leaves late replies routed to nobody.
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(None);
        // Read before the master is looked up: a switch announced meanwhile retires this
        // connection at once.
        let epoch = self.epoch();
        let looked_up = std::sync::atomic::AtomicBool::new(false);
        let connect = async {
            // A Sentinel group names its current master here (and redis-rs checks its ROLE).
            let (client, config_epoch) = self.resolve().await.map_err(Phase::Lookup)?;
            looked_up.store(true, Ordering::Release);
            if let Some(watch) = self.target.watch() {
                watch.connected_to(&client, epoch, config_epoch);
            }
            let connection = client
                .get_multiplexed_async_connection_with_config(&config)
                .await?;
            // Load every script in the same budget, so the first EVALSHA on this connection
            // finds it cached: no NOSCRIPT round trip on a request's clock.
            // One command each (the multiplexer still sends them together): an error such
            // as NOAUTH keeps its code, which a MULTI-less pipeline error would lose.
            // A user without the SCRIPT permission can still EVAL: its first EVALSHA of each
            // script then pays the NOSCRIPT round trip instead.
            let loads = scripts::ALL.iter().map(|script| {
                let mut con = connection.clone();
                async move {
                    match redis::cmd("SCRIPT")
                        .arg("LOAD")
                        .arg(script.body)
                        .query_async::<()>(&mut con)
                        .await
                    {
                        Err(e) if e.code() == Some("NOPERM") => Ok(()),
                        other => other,
                    }
                }
            });
            let mut info_con = connection.clone();
            let info = async move {
                redis::cmd("INFO")
                    .arg("server")
                    .query_async::<String>(&mut info_con)
                    .await
            };
            // ROLE on this very connection: a server that is (or just became) a replica is
            // never used as a master, whatever the sentinels or the configuration say.
            let mut role_con = connection.clone();
            let role = async move { redis::cmd("ROLE").query_async::<Value>(&mut role_con).await };
            let (loaded, info, role) =
                futures_util::join!(futures_util::future::try_join_all(loads), info, role);
            // A server that is not a master (a replica, a sentinel) is reported as such, not
            // by whatever else it refused.
            if let Ok(Value::Array(items)) = &role
                && !items.is_empty()
            {
                check_role(role.clone()).map_err(Phase::NotMaster)?;
            }
            loaded?;
            Ok::<_, Phase>((connection, info.ok().and_then(|i| run_id(&i)), role))
        };
        let outcome = tokio::time::timeout(self.connect_timeout, connect).await;
        let attempt = self.attempts.fetch_add(1, Ordering::AcqRel).wrapping_add(1);
        let checked = match outcome {
            Ok(Ok((connection, run_id, role))) => check_role(role)
                .and_then(|()| self.servers.register(self.index, &self.address, run_id))
                .map(|()| connection),
            Ok(Err(Phase::Master(e))) => Err(self.classify(&e, self.connect_timeout)),
            Ok(Err(Phase::NotMaster(e))) => Err(e),
            Ok(Err(Phase::Lookup(e))) => Err(self.lookup_failure(e)),
            Err(_) if self.target.is_sentinel() && !looked_up.load(Ordering::Acquire) => {
                Err(NodeError::Sentinel(format!(
                    "no sentinel named a master within the connect timeout ({:?})",
                    self.connect_timeout
                )))
            }
            Err(_) => Err(NodeError::Timeout(self.connect_timeout)),
        };
        let connection = match checked {
            Ok(connection) => connection,
            Err(error) => {
                state.last_failure = Some((attempt, error.clone()));
                return Err(error);
            }
        };
        state.last_failure = None;
        // ROLE was just checked on this connection.
        self.role_checked_ms.store(
            u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        state.generation = state.generation.wrapping_add(1);
        let generation = state.generation;
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        *current = Some(Current {
            generation,
            epoch,
            connection: connection.clone(),
        });
        Ok((generation, connection))
    }

    /// Forgets the connection of `generation` after it broke, so the next request reconnects.
    fn discard(&self, generation: u64) {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if current.as_ref().is_some_and(|c| c.generation == generation) {
            *current = None;
        }
    }

    /// A dedicated publish/subscribe connection (for release notifications).
    pub(crate) async fn pubsub(&self) -> Result<redis::aio::PubSub, NodeError> {
        let open = async {
            let (client, _) = self.resolve().await.map_err(Phase::Lookup)?;
            Ok::<_, Phase>(client.get_async_pubsub().await?)
        };
        match tokio::time::timeout(self.connect_timeout, open).await {
            Ok(Ok(pubsub)) => Ok(pubsub),
            Ok(Err(Phase::Master(e))) => Err(self.classify(&e, self.connect_timeout)),
            Ok(Err(Phase::NotMaster(e))) => Err(e),
            Ok(Err(Phase::Lookup(e))) => Err(self.lookup_failure(e)),
            Err(_) => Err(NodeError::Timeout(self.connect_timeout)),
        }
    }

    /// A client for the member's master: the fixed one, or the one its sentinels name now
    /// (with the configuration epoch of that answer; 0 for a fixed address).
    async fn resolve(&self) -> Result<(redis::Client, u64), LookupError> {
        match &self.target {
            Target::Direct(client) => Ok((client.clone(), 0)),
            Target::Sentinel(group) => group.master(self.connect_timeout).await,
        }
    }

    /// Drops the connection (used by `close`).
    pub(crate) fn disconnect(&self) {
        if let Some(watch) = self.target.watch() {
            watch.stop();
        }
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        *current = None;
    }

    /// Runs a script by `EVALSHA`, falling back to one `EVAL` (which also caches it) after
    /// `NOSCRIPT`: at most one extra round trip after a restart or `SCRIPT FLUSH`.
    ///
    /// When the shared connection turns out to be dead (the master restarted, or closed an
    /// idle connection), the request is sent once more on a fresh connection. This is the
    /// one resend the library makes, and it is safe because every script is idempotent for a
    /// given token: a second acquire reports the first one's grant, a second extend extends
    /// again, and a second release that finds the key gone cannot tell whether the first
    /// deleted it ([`Node::release`] reports that as unknown).
    async fn eval(
        &self,
        script: &LuaScript,
        keys: &[&[u8]],
        args: &[&[u8]],
    ) -> Result<Value, NodeError> {
        self.eval_noting_resend(script, keys, args)
            .await
            .map(|(value, _)| value)
    }

    /// Counts a failed request in the per-master error metric and passes the error on.
    fn note_error(&self, error: NodeError) -> NodeError {
        crate::metrics::master_error(&self.address, &error);
        error
    }

    /// [`eval`](Self::eval), also saying whether the request was sent a second time.
    async fn eval_noting_resend(
        &self,
        script: &LuaScript,
        keys: &[&[u8]],
        args: &[&[u8]],
    ) -> Result<(Value, bool), NodeError> {
        match self.eval_once(script, keys, args).await {
            Err(Attempt::Dropped(error)) => {
                tracing::debug!(
                    master = %self.address,
                    %error,
                    "connection was dead: sending once more on a new connection"
                );
                self.eval_once(script, keys, args)
                    .await
                    .map(|v| (v, true))
                    .map_err(|e| self.note_error(e.into_error()))
            }
            other => other
                .map(|v| (v, false))
                .map_err(|e| self.note_error(e.into_error())),
        }
    }

    async fn eval_once(
        &self,
        script: &LuaScript,
        keys: &[&[u8]],
        args: &[&[u8]],
    ) -> Result<Value, Attempt> {
        let (generation, mut con) = self.connection().await.map_err(Attempt::Failed)?;
        // At most once a second, ROLE goes along with the request (same connection, no extra
        // round trip): a master turned into a replica while we were connected — writable
        // replicas (`replica-read-only no`) even accept the script — stops counting within
        // a second instead of at the next reconnection.
        let role = self.role_due().then(|| {
            let mut con = con.clone();
            async move { redis::cmd("ROLE").query_async::<Value>(&mut con).await }
        });
        let request = async {
            let mut evalsha = redis::cmd("EVALSHA");
            evalsha.arg(&script.sha).arg(keys.len()).arg(keys).arg(args);
            match evalsha.query_async::<Value>(&mut con).await {
                Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                    tracing::debug!(master = %self.address, "NOSCRIPT: sending the script body");
                    let mut eval = redis::cmd("EVAL");
                    eval.arg(script.body).arg(keys.len()).arg(keys).arg(args);
                    eval.query_async::<Value>(&mut con).await
                }
                other => other,
            }
        };
        let with_role = async {
            match role {
                Some(role) => {
                    let (reply, role) = futures_util::join!(request, role);
                    (reply, Some(role))
                }
                None => (request.await, None),
            }
        };
        let outcome = tokio::time::timeout(self.node_timeout, with_role).await;
        if let Ok((_, Some(role))) = &outcome
            && let Err(not_master) = check_role(role.clone())
        {
            // Whatever the script did there, this server does not count: the caller treats
            // the failure as "may hold the key" and releases it.
            self.discard(generation);
            return Err(Attempt::Failed(not_master));
        }
        match outcome.map(|(reply, _)| reply) {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) if e.is_unrecoverable_error() || e.is_io_error() => {
                self.discard(generation);
                Err(Attempt::Dropped(self.classify(&e, self.node_timeout)))
            }
            // The master became a replica (a failover demoted it): the script did not run.
            // Reconnect — a Sentinel group names its new master, a fixed address is checked
            // by ROLE — and send once more.
            Ok(Err(e)) if e.code() == Some("READONLY") => {
                self.discard(generation);
                Err(Attempt::Dropped(self.classify(&e, self.node_timeout)))
            }
            Ok(Err(e)) => {
                self.timeouts.store(0, Ordering::Relaxed);
                Err(Attempt::Failed(self.classify(&e, self.node_timeout)))
            }
            Err(_) => {
                self.note_timeout(generation);
                Err(Attempt::Failed(NodeError::Timeout(self.node_timeout)))
            }
        }
        .inspect(|_| self.timeouts.store(0, Ordering::Relaxed))
    }

    /// Whether a `ROLE` check is due (a second since the last), claiming it if so.
    fn role_due(&self) -> bool {
        let now = u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = self.role_checked_ms.load(Ordering::Relaxed);
        now.saturating_sub(last) >= ROLE_EVERY_MS
            && self
                .role_checked_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    /// Counts a timeout on connection `generation`; after [`DEAD_AFTER_TIMEOUTS`] in a row the
    /// connection is replaced: a connection that stays open but delivers nothing (a NAT or
    /// firewall that dropped its state, a host gone without a reset) would otherwise time out
    /// every request forever. A merely slow or paused master costs one reconnect.
    fn note_timeout(&self, generation: u64) {
        let seen = self
            .timeouts
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1);
        if seen >= DEAD_AFTER_TIMEOUTS {
            self.timeouts.store(0, Ordering::Relaxed);
            tracing::debug!(master = %self.address, "timeouts in a row: replacing the connection");
            self.discard(generation);
        }
    }

    /// Bounds a request by `node_timeout` and classifies its error.
    async fn finish<T>(
        &self,
        generation: u64,
        request: impl Future<Output = Result<T, RedisError>>,
    ) -> Result<T, NodeError> {
        match tokio::time::timeout(self.node_timeout, request).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                if e.is_unrecoverable_error() || e.is_io_error() {
                    self.discard(generation);
                }
                Err(self.classify(&e, self.node_timeout))
            }
            // The connection is kept (until several time out in a row): a slow or paused
            // master answers later, and the multiplexer routes that late reply to nobody.
            Err(_) => {
                self.note_timeout(generation);
                Err(NodeError::Timeout(self.node_timeout))
            }
        }
    }

    /// Runs the acquire script.
    pub(crate) async fn acquire(
        &self,
        key: &[u8],
        fence_key: &[u8],
        token: &str,
        ttl_ms: u64,
        fencing: bool,
    ) -> Result<AcquireReply, NodeError> {
        let ttl = ttl_ms.to_string();
        let fencing: &[u8] = if fencing { b"1" } else { b"0" };
        let reply = self
            .eval(
                &scripts::ACQUIRE,
                &[key, fence_key],
                &[token.as_bytes(), ttl.as_bytes(), fencing],
            )
            .await?;
        let (code, fence, pttl) = triple(&reply)?;
        let remaining = u64::try_from(pttl).ok().map(Duration::from_millis);
        let fence = u64::try_from(fence).map_err(|_| unexpected(&reply))?;
        match code {
            1 => Ok(AcquireReply::Granted { fence }),
            0 => Ok(AcquireReply::Held { remaining, fence }),
            -1 => Ok(AcquireReply::NotALock),
            _ => Err(unexpected(&reply)),
        }
    }

    /// Runs the fencing raise script with proposal `t`.
    pub(crate) async fn fence(
        &self,
        key: &[u8],
        fence_key: &[u8],
        token: &str,
        t: u64,
    ) -> Result<FenceReply, NodeError> {
        let t_arg = t.to_string();
        let reply = self
            .eval(
                &scripts::FENCE,
                &[key, fence_key],
                &[token.as_bytes(), t_arg.as_bytes()],
            )
            .await?;
        let (code, value) = match &reply {
            Value::Array(items) => match items.as_slice() {
                [Value::Int(a), Value::Int(b)] => (*a, *b),
                _ => return Err(unexpected(&reply)),
            },
            _ => return Err(unexpected(&reply)),
        };
        let value = u64::try_from(value).map_err(|_| unexpected(&reply))?;
        match code {
            1 => Ok(FenceReply::Raised),
            0 => Ok(FenceReply::Refused { counter: value }),
            -1 => Ok(FenceReply::NotOwner),
            _ => Err(unexpected(&reply)),
        }
    }

    /// Runs the compare-and-delete script.
    pub(crate) async fn release(
        &self,
        key: &[u8],
        token: &str,
        publish: Publish,
    ) -> Result<CasReply, NodeError> {
        let channel = match publish {
            Publish::Yes => keys::release_channel(key),
            Publish::No => Arc::from(&b""[..]),
        };
        let (reply, resent) = self
            .eval_noting_resend(&scripts::RELEASE, &[key], &[token.as_bytes(), &channel])
            .await?;
        match cas_reply(&reply)? {
            // The first send may have deleted the key before its connection died: "absent"
            // is then no evidence that the lock had lapsed.
            CasReply::Absent if resent => Err(NodeError::Connection(
                "the connection died after the release was sent; resent, it found no key \
                 (the first send has probably deleted it)"
                    .to_owned(),
            )),
            other => Ok(other),
        }
    }

    /// Runs the compare-and-`PEXPIRE` script.
    pub(crate) async fn extend(
        &self,
        key: &[u8],
        token: &str,
        ttl_ms: u64,
    ) -> Result<CasReply, NodeError> {
        let ttl = ttl_ms.to_string();
        let reply = self
            .eval(
                &scripts::EXTEND,
                &[key],
                &[token.as_bytes(), ttl.as_bytes()],
            )
            .await?;
        cas_reply(&reply)
    }

    /// Reads the key's TTL and value in one `MULTI`/`EXEC` of read-only commands, which
    /// still answers while the master's writes are paused (`CLIENT PAUSE WRITE`).
    pub(crate) async fn peek(&self, key: &[u8]) -> Result<Peek, NodeError> {
        let (generation, mut con) = self.connection().await.map_err(|e| self.note_error(e))?;
        let request = async {
            let mut pipe = redis::pipe();
            // `ignore_errors`: a WRONGTYPE from GET comes back as that entry's value instead
            // of failing the whole transaction without its code.
            pipe.atomic()
                .ignore_errors()
                .cmd("PTTL")
                .arg(key)
                .cmd("GET")
                .arg(key);
            pipe.query_async::<Vec<Value>>(&mut con).await
        };
        let values = self
            .finish(generation, request)
            .await
            .map_err(|e| self.note_error(e))?;
        match values.as_slice() {
            [Value::Int(pttl), Value::BulkString(value)] => Ok(Peek::Value {
                value: value.clone(),
                remaining: u64::try_from(*pttl).ok().map(Duration::from_millis),
            }),
            [_, Value::Nil] => Ok(Peek::Absent),
            [_, Value::ServerError(e)] if e.code() == "WRONGTYPE" => Ok(Peek::NotALock),
            [_, Value::ServerError(e)] => Err(NodeError::Server {
                code: e.code().to_owned(),
                message: scrub(e.details().unwrap_or_default(), &self.secrets),
            }),
            _ => Err(unexpected(&Value::Array(values))),
        }
    }

    /// A failed master lookup through a Sentinel group: credentials and certificates keep
    /// their own kinds; anything else is reported as the lookup's failure (the sentinels, or
    /// the master they named, could not be reached or did not answer as a master).
    fn lookup_failure(&self, e: LookupError) -> NodeError {
        let e = match e {
            LookupError::Sentinel(message) => {
                return NodeError::Sentinel(scrub(&message, &self.secrets));
            }
            LookupError::Redis(e) => e,
        };
        match self.classify(&e, self.connect_timeout) {
            error @ (NodeError::Auth(_)
            | NodeError::Tls(_)
            | NodeError::NoPermission(_)
            | NodeError::Sentinel(_)) => error,
            other => NodeError::Sentinel(format!(
                "looking up the master through the sentinels failed: {other}"
            )),
        }
    }

    /// Maps a client error to a [`NodeError`], scrubbing secrets from its text.
    fn classify(&self, e: &RedisError, budget: Duration) -> NodeError {
        let text = || scrub(&e.to_string(), &self.secrets);
        if let Some(cause) = tls_cause(e) {
            return NodeError::Tls(scrub(&cause, &self.secrets));
        }
        // redis-rs reports a TLS set-up it could not build (e.g. a client certificate rustls
        // refuses) as a client-configuration error with the cause in its text.
        if e.kind() == ErrorKind::InvalidClientConfig && self.target.is_tls() {
            return NodeError::Tls(format!("the TLS settings were refused: {}", text()));
        }
        if let ErrorKind::MasterNameNotFoundBySentinel
        | ErrorKind::NoValidReplicasFoundBySentinel
        | ErrorKind::EmptySentinelList = e.kind()
        {
            return NodeError::Sentinel(text());
        }
        let code = e.code().unwrap_or_default();
        match code {
            "NOAUTH" | "WRONGPASS" => return NodeError::Auth(text()),
            "NOPERM" => return NodeError::NoPermission(text()),
            "OOM" => return NodeError::OutOfMemory(text()),
            "READONLY" | "MISCONF" => return NodeError::ReadOnly(text()),
            _ => {}
        }
        if e.kind() == ErrorKind::AuthenticationFailed {
            return NodeError::Auth(text());
        }
        if e.is_timeout() {
            return NodeError::Timeout(budget);
        }
        if e.is_connection_refusal() {
            return NodeError::Refused;
        }
        if e.is_io_error() || e.is_connection_dropped() {
            if self.target.is_sentinel() {
                return NodeError::Connection(text());
            }
            if !self.target.is_tls() && budget == self.connect_timeout {
                // A plaintext client at a TLS-only port: the server drops the connection at
                // our first command.
                return NodeError::Connection(format!(
                    "{} (if this port only speaks TLS, use rediss://)",
                    text()
                ));
            }
            return NodeError::Connection(text());
        }
        if let ErrorKind::Server(_) | ErrorKind::Extension = e.kind() {
            return NodeError::Server {
                code: code.to_owned(),
                message: scrub(e.detail().unwrap_or_default(), &self.secrets),
            };
        }
        NodeError::Connection(text())
    }
}

/// Accepts a `ROLE` reply that says `master`; a replica or a sentinel is refused. A user
/// without permission for `ROLE` (or a server without it, or an odd reply) is not checked.
fn check_role(role: Result<Value, RedisError>) -> Result<(), NodeError> {
    let reply = match role {
        Ok(reply) => reply,
        Err(e) => {
            tracing::debug!(error = %e, "ROLE not answered: the master check is skipped");
            return Ok(());
        }
    };
    let first = match &reply {
        Value::Array(items) => items.first(),
        _ => None,
    };
    let role = match first {
        Some(Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
        Some(Value::SimpleString(s)) => s.clone(),
        // Not the shape of a ROLE reply: no evidence of a replica, nothing to refuse.
        _ => return Ok(()),
    };
    if role == "master" {
        Ok(())
    } else {
        Err(NodeError::NotMaster(format!(
            "the server answers ROLE `{role}`: only a master may count toward a quorum"
        )))
    }
}

fn unexpected(reply: &Value) -> NodeError {
    let shown: String = format!("{reply:?}").chars().take(120).collect();
    NodeError::UnexpectedReply(shown)
}

fn triple(reply: &Value) -> Result<(i64, i64, i64), NodeError> {
    if let Value::Array(items) = reply
        && let [Value::Int(a), Value::Int(b), Value::Int(c)] = items.as_slice()
    {
        return Ok((*a, *b, *c));
    }
    Err(unexpected(reply))
}

fn cas_reply(reply: &Value) -> Result<CasReply, NodeError> {
    match reply {
        Value::Int(1) => Ok(CasReply::Done),
        Value::Int(0) => Ok(CasReply::Absent),
        Value::Int(-1) => Ok(CasReply::Other),
        Value::Int(-2) => Ok(CasReply::NotALock),
        _ => Err(unexpected(reply)),
    }
}

impl AcquireReply {
    /// The public status for this reply.
    pub(crate) fn status(self) -> NodeStatus {
        match self {
            Self::Granted { .. } => NodeStatus::Done,
            Self::Held { remaining, .. } => NodeStatus::HeldByOther { remaining },
            Self::NotALock => NodeStatus::NotALock,
        }
    }
}

impl CasReply {
    /// The public status for this reply.
    pub(crate) fn status(self) -> NodeStatus {
        match self {
            Self::Done => NodeStatus::Done,
            Self::Absent => NodeStatus::Absent,
            Self::Other => NodeStatus::HeldByOther { remaining: None },
            Self::NotALock => NodeStatus::NotALock,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_scrubbed_in_both_forms() {
        let tls = TlsSettings::default();
        let node = Node::new(
            "redis://user:p%40ss@127.0.0.1:1",
            0,
            Arc::default(),
            &NodeOptions {
                node_timeout: Duration::from_millis(50),
                connect_timeout: Duration::from_secs(1),
                tls: &tls,
            },
        )
        .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(&**node.address(), "redis://user:***@127.0.0.1:1");
        assert_eq!(
            scrub("bad p@ss and p%40ss", &node.secrets),
            "bad *** and ***"
        );
        assert!(!format!("{node:?}").contains("p%40ss"));
    }

    #[test]
    fn one_server_under_two_names_is_refused() {
        let ids = ServerIds::default();
        let (a, b): (Arc<str>, Arc<str>) =
            ("redis://127.0.0.1:1".into(), "redis://localhost:1".into());
        assert_eq!(ids.register(0, &a, Some("r1".into())), Ok(()));
        assert_eq!(
            ids.register(1, &b, None),
            Ok(()),
            "no run_id: check skipped"
        );
        assert_eq!(
            ids.register(1, &b, Some("r1".into())),
            Err(NodeError::SameServer(a.to_string()))
        );
        assert_eq!(
            ids.register(0, &a, Some("r1".into())),
            Ok(()),
            "a reconnect of the same master"
        );
        assert_eq!(ids.register(1, &b, Some("r2".into())), Ok(()));
        assert_eq!(run_id("# Server\r\nrun_id:abc\r\n"), Some("abc".into()));
    }

    #[test]
    fn replies_are_classified() {
        assert_eq!(cas_reply(&Value::Int(1)), Ok(CasReply::Done));
        assert_eq!(cas_reply(&Value::Int(-2)), Ok(CasReply::NotALock));
        assert!(matches!(
            cas_reply(&Value::Nil),
            Err(NodeError::UnexpectedReply(_))
        ));
        let ok = Value::Array(vec![Value::Int(0), Value::Int(0), Value::Int(-1)]);
        assert_eq!(triple(&ok), Ok((0, 0, -1)));
    }
}
