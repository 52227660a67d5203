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

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ErrorKind, RedisError, ServerErrorKind, Value};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::error::{Cause, ConfigError, NodeError, NodeStatus};
use crate::keys::{self, Keys};
use crate::scripts::{self, LuaScript};
use crate::transport::failover::FailoverWatch;
use crate::transport::member::Target;
use crate::transport::redact::scrub;
use crate::transport::sentinel::LookupError;
use crate::transport::tls::{TlsSettings, tls_cause};

/// What every master of a manager shares: budgets and TLS settings.
#[derive(Debug)]
pub(crate) struct NodeOptions<'a> {
    pub(crate) node_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) tls: &'a TlsSettings,
}

/// The answer of the acquire script on one master.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum AcquireReply {
    /// Our `SET NX` succeeded (every key of a multi-resource lock); `fences` holds each
    /// key's fencing counter after our increment (one 0 per key when not fencing).
    Granted { fences: Vec<u64> },
    /// Another token holds key `busy` (its index among the lock's keys; 0 for a single
    /// key), with its remaining TTL when it has one, and each key's fencing counter (zeros
    /// when not fencing). Nothing was written.
    Held {
        remaining: Option<Duration>,
        fences: Vec<u64>,
        busy: usize,
    },
    /// Key `busy` (0 for a single key) exists and is not a string.
    NotALock { busy: usize },
}

/// A waiting writer's intent: its id (one per wait) and how long it lives unless refreshed by
/// the writer's next attempt.
#[derive(Clone, Debug)]
pub(crate) struct Intent {
    pub(crate) id: Arc<str>,
    pub(crate) ttl_ms: u64,
}

/// The answer of the semaphore's permit script on one master.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PermitReply {
    /// The slot at this position of the attempt's rotation was granted (or already ours).
    Granted { position: usize },
    /// Every slot is held; the least remaining TTL among them, when known.
    Full { remaining: Option<Duration> },
    /// The semaphore's permits key holds another number of permits (`None`: not a number).
    Mismatch { found: Option<u32> },
    /// Every slot is taken, and one holds a value no permit holder wrote (no TTL, or
    /// another type): it would never be freed.
    Foreign,
}

impl PermitReply {
    /// The public status for this reply.
    pub(crate) fn status(&self) -> NodeStatus {
        match self {
            Self::Granted { .. } => NodeStatus::Done,
            Self::Full { remaining } => NodeStatus::HeldByOther {
                remaining: *remaining,
            },
            Self::Mismatch { found } => NodeStatus::OtherPermits { recorded: *found },
            Self::Foreign => NodeStatus::NotALock,
        }
    }
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
    /// Readers hold a read-write lock on the key: its value is the readers' sentinel;
    /// `readers` as the readers' set counts them.
    Shared {
        readers: usize,
        remaining: Option<Duration>,
    },
}

/// How often (ms) a live connection's server is asked `ROLE` again.
const ROLE_EVERY_MS: u64 = 1_000;

/// Requests that time out in a row before a connection is replaced.
const DEAD_AFTER_TIMEOUTS: u64 = 8;

/// Requests one connection carries on the wire at once. More wait in our own queue, outside
/// their timer, so `node_timeout` measures the master, not our backlog. A Redis master
/// runs a script in microseconds: 128 in flight keep a local master busy and cost a request
/// well under a millisecond of queueing at the server.
pub(crate) const MAX_IN_FLIGHT: usize = 128;

/// Slots on top of [`MAX_IN_FLIGHT`] that only releases and extensions may take: a release
/// never waits behind thousands of queued acquisitions.
pub(crate) const RESERVED_IN_FLIGHT: usize = 16;

/// First pause of the connector after a failed connection attempt; it doubles up to
/// [`RECONNECT_MAX`], so a master that comes back is used again within about a second.
const RECONNECT_MIN: Duration = Duration::from_millis(50);
/// Longest pause between two connection attempts.
const RECONNECT_MAX: Duration = Duration::from_secs(1);

/// First pause before a release is resent after a transient failure; doubles up to
/// [`RESEND_MAX`].
const RESEND_MIN: Duration = Duration::from_millis(10);
/// Longest pause between two sends of one release.
const RESEND_MAX: Duration = Duration::from_millis(500);

/// Unsent requests of decided rounds one master keeps waiting for a connection being opened
/// (so that, on a fresh manager, a lock still lands on every master that connects in time);
/// past it they are dropped, so a master that never answers accumulates nothing.
const ADOPTED_MAX: usize = 64;

/// Readers of one read-write lock at once: a reader's release recomputes the lock key's TTL
/// over every reader, so the set is bounded (a reader past it waits as for a writer).
pub(crate) const MAX_READERS: usize = 1024;

/// Releases one master keeps parked for resending at most.
const PARKED_MAX: usize = 4096;

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
/// instead of counting twice toward a quorum. A Redis Cluster member has one entry per node
/// it connected to; its nodes may not be another member's servers either.
#[derive(Debug, Default)]
pub(crate) struct ServerIds(Mutex<Vec<(usize, ServerId)>>);

/// One master's server: its `run_id` and the master's (redacted) address.
#[derive(Debug, Clone)]
struct ServerId {
    run_id: String,
    address: Arc<str>,
}

impl ServerIds {
    /// Records that member `index` reaches the server `run_id` at `address`, unless another
    /// member of the same manager is that server. Without a `run_id` (no permission for
    /// `INFO`) the check is skipped.
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
        let duplicate = ids.iter().find_map(|(i, other)| {
            (*i != index && other.run_id == run_id).then(|| Arc::clone(&other.address))
        });
        if let Some(other) = duplicate {
            return Err(NodeError::SameServer(other.to_string()));
        }
        let entry = ServerId {
            run_id,
            address: Arc::clone(address),
        };
        match ids
            .iter_mut()
            .find(|(i, id)| *i == index && id.address == *address)
        {
            Some((_, slot)) => *slot = entry,
            None => ids.push((index, entry)),
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

/// A connection that is up, with its slots for requests on the wire.
#[derive(Clone)]
struct Up {
    /// Tags the connection, so a failure can only retire the connection it happened on.
    generation: u64,
    /// The failover epoch the connection was opened under (Sentinel members; else 0).
    epoch: u64,
    connection: MultiplexedConnection,
    /// [`MAX_IN_FLIGHT`] permits: a request holds one from the moment it is sent until its
    /// reply or its timeout. Closed when the connection is retired.
    slots: Arc<Semaphore>,
    /// [`RESERVED_IN_FLIGHT`] more, for releases and extensions only.
    reserved: Arc<Semaphore>,
}

impl Up {
    /// Closes the slots: requests waiting for one take the next connection instead.
    fn retire(&self) {
        self.slots.close();
        self.reserved.close();
    }
}

/// The connection of one master and what is known of the master's health.
#[derive(Default)]
struct LinkState {
    up: Option<Up>,
    /// While no connection is up: the error of the last connection attempt. Requests fail at
    /// once with it while the connector tries again in the background.
    down: Option<NodeError>,
    /// A connector task is running.
    connecting: bool,
    /// The last connection broke or stopped answering ([`Node::discard`]) and no new one is
    /// up yet: a request waits for the next at most `node_timeout`, as for a master known
    /// down, not `connect_timeout` (a paused master's port still accepts connections, and a
    /// round that needs its answer would otherwise wait the whole connect timeout).
    reopening: bool,
    /// Generation of the last connection opened.
    generation: u64,
}

/// Releases that did not land yet, resent in the background until they do.
#[derive(Default)]
struct Parked {
    queue: VecDeque<ParkedRelease>,
    /// A release worker task is running.
    working: bool,
    /// Sequence number of the next release parked.
    seq: u64,
    /// Releases withdrawn while the worker runs (see `own_token.rs`): a release of that key
    /// and token parked before the withdrawal is not queued again after a failed send.
    withdrawn: Vec<own_token::Withdrawal>,
    /// Key and token of each release the worker is sending right now.
    in_flight: Vec<(Arc<[u8]>, Arc<str>)>,
}

/// One release waiting to be (re)sent.
struct ParkedRelease {
    keys: Keys,
    /// The holder record's key, deleted with the key when it is this token's.
    holder_key: Option<Arc<[u8]>>,
    token: Arc<str>,
    publish: Publish,
    /// When the key expires by its TTL at the latest: past it, there is nothing to release.
    expires: Instant,
    /// Parking order (for withdrawals).
    seq: u64,
}

/// One master of the quorum.
pub(crate) struct Node {
    /// Position in the manager's list of masters.
    index: usize,
    /// The servers of all the manager's masters, to refuse one server counted twice.
    servers: Arc<ServerIds>,
    /// The URL as configured, password replaced by `***` (a node of a Redis Cluster
    /// member: its `host:port`).
    address: Arc<str>,
    /// The label of this master's metrics: its address, or for a node of a Redis Cluster
    /// member, the member's (metrics label members, not each node of a cluster).
    label: Arc<str>,
    /// Where connections go: a fixed server, or the master a Sentinel group names.
    target: Target,
    /// Passwords from the URL, scrubbed from any error text.
    secrets: Vec<String>,
    node_timeout: Duration,
    connect_timeout: Duration,
    /// The connection and the master's health.
    link: Mutex<LinkState>,
    /// Woken whenever `link` changes (connected, failed, retired).
    changed: Notify,
    /// Asks the connector for an attempt now (a request found the master down).
    nudge: Arc<Notify>,
    /// Cancelled when the manager is closed or dropped: no connection is opened any more,
    /// and the connector and the release worker end.
    stop: CancellationToken,
    /// Owner of this master's background tasks (connector, release worker).
    tasks: TaskTracker,
    /// Releases not confirmed yet.
    parked: Mutex<Parked>,
    /// Requests timed out in a row on the current connection.
    timeouts: AtomicU64,
    /// When (µs after `born`) a reply last came back: progress of the connection. In µs, so
    /// that the reply a request was sent right after does not count as progress made while
    /// it waited.
    last_reply_us: AtomicU64,
    /// The server refused `SET … NX GET` (before Redis 7.0): acquisitions stay on the script.
    set_get_refused: AtomicBool,
    /// Unsent requests of decided rounds kept waiting for a connection being opened.
    adopted: Arc<AtomicUsize>,
    /// Whether acquisitions may take the plain `SET NX PX`: set once a script ran here (so
    /// the user may run the scripts that release and extend what it sets), cleared by a
    /// `NOPERM` from a script. Until then an acquisition takes the script path, and a user
    /// who may `SET` but not run scripts gets no lock it could not release.
    fast_acquire: AtomicBool,
    /// When the node was created: the origin of `role_checked_ms`.
    born: Instant,
    /// When (ms after `born`) the server last answered `ROLE`.
    role_checked_ms: AtomicU64,
}

/// A place taken by [`Node::adopt`], given back when dropped.
pub(crate) struct Adopted(Arc<AtomicUsize>);

impl Drop for Adopted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What a caller brings to one request: how long it may wait for a slot, and where to say
/// that the request left.
#[derive(Clone, Debug)]
pub(crate) struct Call {
    /// The latest moment the request may still be sent: past it, waiting in our own queue
    /// ends with [`NodeError::Backlog`].
    pub(crate) queue_until: Instant,
    /// Set when the request is handed to the connection (it may then reach the master).
    pub(crate) sent: Option<Arc<AtomicBool>>,
    /// Releases and extensions may also take one of the connection's reserved slots, so
    /// that they never queue behind a storm of acquisitions.
    pub(crate) priority: bool,
    /// Redis Cluster `ASK` redirection: the request goes to a master importing the key's
    /// slot, preceded by `ASKING` in the same write.
    pub(crate) asking: bool,
}

impl Call {
    /// A request that may wait for a slot until `queue_until`.
    pub(crate) fn until(queue_until: Instant) -> Self {
        Self {
            queue_until,
            sent: None,
            priority: false,
            asking: false,
        }
    }

    /// The same call with a claim on the reserved slots (releases, extensions).
    fn with_priority(&self) -> Self {
        Self {
            priority: true,
            ..self.clone()
        }
    }

    /// Whether a request of this call was handed to a connection.
    fn was_sent(&self) -> bool {
        self.sent
            .as_ref()
            .is_some_and(|s| s.load(Ordering::Acquire))
    }

    fn mark_sent(&self) {
        if let Some(sent) = &self.sent {
            sent.store(true, Ordering::Release);
        }
    }
}

/// One request to a master.
enum Request<'a> {
    Script {
        script: &'a LuaScript,
        keys: &'a [&'a [u8]],
        args: &'a [&'a [u8]],
    },
    Command(&'a redis::Cmd),
    Pipeline(&'a redis::Pipeline),
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
        let crate::transport::member::Member {
            address,
            target,
            secrets,
        } = crate::transport::member::Member::new(
            url,
            options.tls,
            options.node_timeout,
            options.connect_timeout,
        )?;
        if let Some(cluster) = target.cluster() {
            cluster.seat(
                index,
                Arc::clone(&servers),
                Arc::clone(&address),
                secrets.clone(),
            );
        }
        Ok(Self::with_target(
            index,
            servers,
            Arc::clone(&address),
            address,
            target,
            secrets,
            options.node_timeout,
            options.connect_timeout,
        ))
    }

    /// One node (a master) of a Redis Cluster member, at `address` (`host:port`), counted
    /// as member `index` and labelled `label` (the member's URL) in metrics.
    #[expect(clippy::too_many_arguments, reason = "a constructor of plain parts")]
    pub(crate) fn cluster_node(
        address: Arc<str>,
        label: Arc<str>,
        client: redis::Client,
        index: usize,
        servers: Arc<ServerIds>,
        secrets: Vec<String>,
        node_timeout: Duration,
        connect_timeout: Duration,
    ) -> Self {
        Self::with_target(
            index,
            servers,
            address,
            label,
            Target::Direct(client),
            secrets,
            node_timeout,
            connect_timeout,
        )
    }

    #[expect(clippy::too_many_arguments, reason = "a constructor of plain parts")]
    fn with_target(
        index: usize,
        servers: Arc<ServerIds>,
        address: Arc<str>,
        label: Arc<str>,
        target: Target,
        secrets: Vec<String>,
        node_timeout: Duration,
        connect_timeout: Duration,
    ) -> Self {
        Self {
            index,
            servers,
            address,
            label,
            target,
            secrets,
            node_timeout,
            connect_timeout,
            link: Mutex::new(LinkState::default()),
            changed: Notify::new(),
            nudge: Arc::new(Notify::new()),
            stop: CancellationToken::new(),
            tasks: TaskTracker::new(),
            parked: Mutex::new(Parked::default()),
            timeouts: AtomicU64::new(0),
            last_reply_us: AtomicU64::new(0),
            fast_acquire: AtomicBool::new(false),
            set_get_refused: AtomicBool::new(false),
            adopted: Arc::new(AtomicUsize::new(0)),
            born: Instant::now(),
            role_checked_ms: AtomicU64::new(0),
        }
    }

    /// The router of a Redis Cluster member.
    fn cluster(&self) -> Option<&crate::transport::cluster::Cluster> {
        self.target.cluster()
    }

    /// Runs `op` on the server that serves `key`: this master, or for a Redis Cluster member
    /// the master of the key's slot (following `MOVED`/`ASK`, see
    /// [`Cluster::route`](crate::transport::cluster::Cluster::route)).
    async fn at_key<T, F, Fut>(
        self: &Arc<Self>,
        key: &[u8],
        call: &Call,
        op: F,
    ) -> Result<T, NodeError>
    where
        F: Fn(Arc<Node>, Call) -> Fut,
        Fut: Future<Output = Result<T, NodeError>>,
    {
        match self.cluster() {
            // Boxed: a plain master's request does not carry the router's state.
            Some(cluster) => Box::pin(cluster.route(key, call, op)).await,
            None => op(Arc::clone(self), call.clone()).await,
        }
    }

    /// Whether the member is a Redis Cluster.
    pub(crate) fn is_cluster(&self) -> bool {
        self.cluster().is_some()
    }

    /// For a Redis Cluster member, the node (`host:port`) that serves `key` as far as the
    /// member's layout tells; `None` for other members (or a layout not learnt yet).
    pub(crate) fn serving(&self, key: &[u8]) -> Option<Arc<str>> {
        self.cluster().and_then(|c| c.serving(key))
    }

    /// Takes one of [`ADOPTED_MAX`] places for an unsent request of a decided round that
    /// waits for a connection being opened, or whose connection has just opened with room on
    /// it (it leaves on its next poll); `None` when the request is waiting in our own queue
    /// (no free slot on the connection), the master is down (it fails at once), or the places
    /// are taken.
    pub(crate) fn adopt(&self) -> Option<Adopted> {
        let link = self.link.lock().unwrap_or_else(|p| p.into_inner());
        // A cluster member has no connection of its own: an unsent request waits for its
        // layout or its node's connection, each bounded by `connect_timeout`.
        let leaving = match &link.up {
            // The connection came up after the round's last poll of this request: dropping it
            // now would leave a won lock off a master that was reachable all along.
            Some(up) => up.slots.available_permits() > 0,
            None => link.down.is_none() && link.connecting,
        };
        let connecting = self.is_cluster() || leaving;
        drop(link);
        if !connecting {
            return None;
        }
        self.adopted
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < ADOPTED_MAX).then(|| n.saturating_add(1))
            })
            .ok()
            .map(|_| Adopted(Arc::clone(&self.adopted)))
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

    /// The failover epoch of a Sentinel member (0 for a fixed address).
    fn epoch(&self) -> u64 {
        self.target.watch().map_or(0, FailoverWatch::epoch)
    }

    /// The live connection and a slot on it.
    ///
    /// - Up: waits for one of the connection's [`MAX_IN_FLIGHT`] slots until
    ///   `call.queue_until`, then [`NodeError::Backlog`]: a request's timer starts only once it
    ///   is on the wire, so it measures the master, never our own queue.
    /// - Known down (the last connection attempt failed): fails at once with that attempt's
    ///   error while the connector tries again in the background.
    /// - Connecting (first use, or a connection retired after a Sentinel failover): waits
    ///   for the connector, at most `connect_timeout`; reopening after the last connection
    ///   broke or stopped answering: at most `node_timeout`, then [`NodeError::Timeout`].
    ///   Such a request has not been sent: a round that decides without it drops it, and
    ///   nothing needs cleaning up.
    async fn link(self: &Arc<Self>, call: &Call) -> Result<(Up, OwnedSemaphorePermit), NodeError> {
        let entered = Instant::now();
        let connect_until = entered.checked_add(self.connect_timeout).unwrap_or(entered);
        // Set once this request has asked the connector for a fresh attempt on a master
        // known down, and until when it waits for that attempt.
        let mut retry_until: Option<Instant> = None;
        loop {
            // The common case first: a live connection of the current epoch, taken without
            // registering as a waiter on `changed` (that list is shared by every request).
            let live = {
                let link = self.link.lock().unwrap_or_else(|p| p.into_inner());
                link.up
                    .as_ref()
                    .filter(|up| up.epoch == self.epoch())
                    .cloned()
            };
            if let Some(up) = live {
                match Self::slot(&up, call).await {
                    Some(Ok(slot)) => return Ok((up, slot)),
                    Some(Err(e)) => return Err(e),
                    None => continue,
                }
            }
            let notified = self.changed.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            let up = {
                let mut link = self.link.lock().unwrap_or_else(|p| p.into_inner());
                let epoch = self.epoch();
                match link.up.clone() {
                    Some(up) if up.epoch == epoch => Some(up),
                    Some(stale) => {
                        // The sentinels named another master since: retire this connection.
                        stale.retire();
                        link.up = None;
                        self.start_connector(&mut link);
                        None
                    }
                    None => {
                        if self.stop.is_cancelled() {
                            return Err(NodeError::Connection(
                                "the lock manager was closed".into(),
                            ));
                        }
                        if let Some(error) = &link.down {
                            // Known down: ask for a fresh attempt (the connector makes one
                            // if its last is at least RECONNECT_MIN old) and wait for it,
                            // at most `node_timeout`; a master still down fails the request
                            // with its last connect error.
                            // A permanent cause (credentials, certificates, ACL) fails
                            // at once: another attempt would only repeat it.
                            if retry_until.is_some() || error.is_permanent() {
                                return Err(error.clone());
                            }
                            self.nudge.notify_one();
                            retry_until = Some(
                                Instant::now()
                                    .checked_add(self.node_timeout)
                                    .unwrap_or_else(Instant::now),
                            );
                        }
                        if link.reopening && retry_until.is_none() {
                            retry_until =
                                Some(entered.checked_add(self.node_timeout).unwrap_or(entered));
                        }
                        self.start_connector(&mut link);
                        None
                    }
                }
            };
            if let Some(up) = up {
                match Self::slot(&up, call).await {
                    Some(Ok(slot)) => return Ok((up, slot)),
                    Some(Err(e)) => return Err(e),
                    None => continue,
                }
            }
            let wait_until = retry_until
                .map_or(connect_until, |r| r.min(connect_until))
                .min(call.queue_until);
            if tokio::time::timeout_at(wait_until, notified).await.is_err() {
                let link = self.link.lock().unwrap_or_else(|p| p.into_inner());
                return Err(match (&link.down, retry_until) {
                    (Some(error), Some(_)) => error.clone(),
                    // A connection being reopened that did not come back in time.
                    (None, Some(r)) if wait_until == r && r < connect_until => {
                        NodeError::Timeout(self.node_timeout)
                    }
                    _ if wait_until < connect_until => NodeError::Backlog(entered.elapsed()),
                    _ => NodeError::Timeout(self.connect_timeout),
                });
            }
        }
    }

    /// A place among `up`'s requests in flight, waited for until `call.queue_until` (then a
    /// backlog failure); `None` when the connection was retired meanwhile (take the next).
    async fn slot(up: &Up, call: &Call) -> Option<Result<OwnedSemaphorePermit, NodeError>> {
        // Free at once in the common case: no timer is armed. A release or extension takes
        // a reserved slot only when the others are all taken.
        let free = match Arc::clone(&up.slots).try_acquire_owned() {
            Err(tokio::sync::TryAcquireError::NoPermits) if call.priority => {
                Arc::clone(&up.reserved).try_acquire_owned()
            }
            other => other,
        };
        match free {
            Ok(slot) => return Some(Ok(slot)),
            Err(tokio::sync::TryAcquireError::Closed) => return None,
            Err(tokio::sync::TryAcquireError::NoPermits) => {}
        }
        let queued = Instant::now();
        let slot = async {
            if call.priority {
                tokio::select! {
                    slot = Arc::clone(&up.slots).acquire_owned() => slot,
                    slot = Arc::clone(&up.reserved).acquire_owned() => slot,
                }
            } else {
                Arc::clone(&up.slots).acquire_owned().await
            }
        };
        match tokio::time::timeout_at(call.queue_until, slot).await {
            Ok(Ok(slot)) => Some(Ok(slot)),
            // Retired while we waited: take the next connection.
            Ok(Err(_)) => None,
            Err(_) => Some(Err(NodeError::Backlog(queued.elapsed()))),
        }
    }

    /// The error every request to this master fails with at once, without being sent, while
    /// no connection is up: the last connection attempt's, when it is permanent (credentials,
    /// ACL, certificates, or the same server as another master). A request of a decided
    /// round that never left is reported with it rather than as not awaited: that is all it
    /// could have answered.
    pub(crate) fn known_failure(&self) -> Option<NodeError> {
        let link = self.link.lock().unwrap_or_else(|p| p.into_inner());
        match (&link.up, &link.down) {
            (None, Some(error)) if error.is_permanent() => Some(error.clone()),
            _ => None,
        }
    }

    /// Whether a connection is up now.
    fn is_up(&self) -> bool {
        self.link.lock().map(|l| l.up.is_some()).unwrap_or(false)
    }

    /// Starts the connector task unless one runs (called with the link locked).
    fn start_connector(self: &Arc<Self>, link: &mut LinkState) {
        if link.connecting || self.stop.is_cancelled() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        link.connecting = true;
        let node = Arc::downgrade(self);
        let (stop, nudge) = (self.stop.clone(), Arc::clone(&self.nudge));
        runtime.spawn(self.tasks.track_future(connector(node, stop, nudge)));
    }

    /// One connection attempt, bounded by `connect_timeout`: connect, load the scripts, check
    /// `ROLE` and the server's identity.
    async fn connect_once(&self) -> Result<(MultiplexedConnection, u64), NodeError> {
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
        let checked = match outcome {
            Ok(Ok((connection, run_id, role))) => check_role(role)
                .and_then(|()| self.servers.register(self.index, &self.address, run_id))
                .map(|()| connection),
            Ok(Err(Phase::Master(e))) => Err(self.classify(&e, self.connect_timeout)),
            Ok(Err(Phase::NotMaster(e))) => Err(e),
            Ok(Err(Phase::Lookup(e))) => Err(self.lookup_failure(e)),
            Err(_) if self.target.is_sentinel() && !looked_up.load(Ordering::Acquire) => {
                Err(NodeError::Sentinel(
                    format!(
                        "no sentinel named a master within the connect timeout ({:?})",
                        self.connect_timeout
                    )
                    .into(),
                ))
            }
            Err(_) => Err(NodeError::Timeout(self.connect_timeout)),
        };
        checked.map(|connection| (connection, epoch))
    }

    /// Records the outcome of a connection attempt; true when connected.
    fn settle(&self, outcome: Result<(MultiplexedConnection, u64), NodeError>) -> bool {
        let mut link = self.link.lock().unwrap_or_else(|p| p.into_inner());
        let connected = match outcome {
            Ok((connection, epoch)) => {
                link.generation = link.generation.wrapping_add(1);
                link.up = Some(Up {
                    generation: link.generation,
                    epoch,
                    connection,
                    slots: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
                    reserved: Arc::new(Semaphore::new(RESERVED_IN_FLIGHT)),
                });
                link.down = None;
                link.connecting = false;
                link.reopening = false;
                self.timeouts.store(0, Ordering::Relaxed);
                // ROLE was just checked on this connection.
                self.role_checked_ms.store(self.now_ms(), Ordering::Relaxed);
                true
            }
            Err(error) => {
                let news = link.down.as_ref() != Some(&error);
                if let (NodeError::SameServer(_), true) = (&error, news) {
                    // A configuration error nothing else may surface (a round that reaches
                    // its quorum without this master says nothing of it): said once.
                    tracing::warn!(master = %self.address, %error, "master refused: fix the server list");
                } else {
                    tracing::debug!(master = %self.address, %error, "connection attempt failed");
                }
                link.down = Some(error);
                false
            }
        };
        drop(link);
        self.changed.notify_waiters();
        connected
    }

    /// Awaits a request that is on the wire, bounded by `node_timeout` without progress:
    /// replies come back in order on a connection, so while replies to other requests keep
    /// arriving (the master answers; ours waits behind requests this process sent before
    /// it, or for this process to get the CPU to read it), the wait goes on, up to the
    /// caller's `queue_until`. A master that answers nothing for `node_timeout` times out.
    async fn on_the_wire<T>(
        &self,
        request: impl Future<Output = T>,
        call: &Call,
    ) -> Result<T, tokio::time::error::Elapsed> {
        let mut request = std::pin::pin!(request);
        loop {
            let waiting_since = self.now_us();
            match tokio::time::timeout(self.node_timeout, request.as_mut()).await {
                Ok(done) => return Ok(done),
                Err(elapsed) => {
                    // A starved process (its cores busy elsewhere) can see its timer fire
                    // before it has read the replies already waiting in its socket: the
                    // master answered, we did not look. Let the runtime poll its I/O and the
                    // connection's reader first (`yield_now` defers to the I/O driver).
                    for _ in 0..2 {
                        tokio::task::yield_now().await;
                    }
                    if let Some(done) = request.as_mut().now_or_never() {
                        return Ok(done);
                    }
                    let progress = self.last_reply_us.load(Ordering::Relaxed) > waiting_since;
                    if !progress || Instant::now() >= call.queue_until {
                        return Err(elapsed);
                    }
                }
            }
        }
    }

    /// Milliseconds since the node was created.
    fn now_ms(&self) -> u64 {
        u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Microseconds since the node was created.
    fn now_us(&self) -> u64 {
        u64::try_from(self.born.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// Retires the connection of `generation` after it broke; the connector opens the next.
    fn discard(self: &Arc<Self>, generation: u64) {
        let mut link = self.link.lock().unwrap_or_else(|p| p.into_inner());
        if link.up.as_ref().is_some_and(|c| c.generation == generation) {
            if let Some(up) = link.up.take() {
                up.retire();
            }
            link.down = None;
            link.reopening = true;
            self.start_connector(&mut link);
        }
        drop(link);
        self.changed.notify_waiters();
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

    /// A Redis Cluster member's subscriber connection (see
    /// [`Cluster::subscriber`](crate::transport::cluster::Cluster::subscriber)); `None` for
    /// other members.
    pub(crate) async fn cluster_subscriber(
        &self,
        pushes: tokio::sync::mpsc::UnboundedSender<redis::PushInfo>,
    ) -> Option<Result<redis::cluster_async::ClusterConnection, NodeError>> {
        match self.cluster() {
            Some(cluster) => Some(cluster.subscriber(pushes).await),
            None => None,
        }
    }

    /// A client for the member's master: the fixed one, or the one its sentinels name now
    /// (with the configuration epoch of that answer; 0 for a fixed address).
    async fn resolve(&self) -> Result<(redis::Client, u64), LookupError> {
        match &self.target {
            Target::Direct(client) => Ok((client.clone(), 0)),
            Target::Sentinel(group) => group.master(self.connect_timeout).await,
            // Never asked: a cluster member's requests go to its nodes.
            Target::Cluster(_) => Err(LookupError::Sentinel(
                "a Redis Cluster member has no single server".to_owned(),
            )),
        }
    }

    /// Stops the master's background work and drops its connection (manager closed or
    /// dropped). Releases still parked get one last try when a connection is up; then they
    /// are left to expire by their TTL.
    pub(crate) fn disconnect(&self) {
        if let Some(cluster) = self.cluster() {
            cluster.disconnect();
        }
        self.stop();
        let mut link = self.link.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(up) = link.up.take() {
            up.retire();
        }
        drop(link);
        self.changed.notify_waiters();
    }

    /// Stops the master's background work: no new connection is opened, the connector and
    /// the failover watch end, and the release worker makes one last pass on a live
    /// connection, then ends.
    pub(crate) fn stop(&self) {
        if let Some(watch) = self.target.watch() {
            watch.stop();
        }
        if let Some(cluster) = self.cluster() {
            cluster.stop();
        }
        self.stop.cancel();
        self.tasks.close();
        self.changed.notify_waiters();
    }

    /// Waits until no release is parked or `until` has passed, whichever comes first.
    pub(crate) async fn flush(&self, until: Instant) {
        while self.release_work() > 0 && Instant::now() < until {
            let changed = self.changed.notified();
            tokio::select! {
                () = tokio::time::sleep(RESEND_MIN) => {}
                () = changed => {}
            }
        }
    }

    /// Waits until the master's background tasks have ended (after [`disconnect`](Self::disconnect)).
    pub(crate) async fn stopped(&self) {
        self.tasks.wait().await;
        if let Some(cluster) = self.cluster() {
            cluster.stopped().await;
        }
    }

    /// Background tasks of this master still running (connector, release worker).
    pub(crate) fn background_tasks(&self) -> usize {
        let own = self.tasks.len();
        self.cluster()
            .map_or(own, |c| own.saturating_add(c.background_tasks()))
    }

    /// Counts a failed request in the per-master error metric and passes the error on.
    fn note_error(&self, error: NodeError) -> NodeError {
        // A cluster's redirection is routing, followed by the member: not a failure.
        let redirection =
            matches!(&error, NodeError::Server { code, .. } if code == "MOVED" || code == "ASK");
        if !redirection {
            crate::metrics::master_error(&self.label, &error);
        }
        error
    }

    /// Sends `request`, bounded by `node_timeout` from the moment it is on the wire.
    ///
    /// When the connection turns out to be dead (the master restarted, or closed an idle
    /// connection), the request is sent once more on a fresh connection; the second value
    /// says so. This is the one resend a request makes, and it is safe because every request
    /// is idempotent for a given token: a second acquire reports the first one's grant, a
    /// second extend extends again, and a second release that finds the key gone cannot tell
    /// whether the first deleted it ([`Node::release`] reports that as unknown).
    async fn send(
        self: &Arc<Self>,
        request: &Request<'_>,
        call: &Call,
    ) -> Result<(Value, bool), NodeError> {
        match self.send_once(request, call).await {
            Err(Attempt::Dropped(error)) => {
                tracing::debug!(
                    master = %self.address,
                    %error,
                    "connection was dead: sending once more on a new connection"
                );
                // Boxed: the rare resend does not double every request's state.
                Box::pin(self.send_once(request, call))
                    .await
                    .map(|v| (v, true))
                    .map_err(|e| self.note_error(e.into_error()))
            }
            other => other
                .map(|v| (v, false))
                .map_err(|e| self.note_error(e.into_error())),
        }
    }

    async fn send_once(
        self: &Arc<Self>,
        request: &Request<'_>,
        call: &Call,
    ) -> Result<Value, Attempt> {
        let (up, _slot) = self.link(call).await.map_err(Attempt::Failed)?;
        let generation = up.generation;
        let mut con = up.connection;
        call.mark_sent();
        // At most once a second, ROLE goes along with the request (same connection, no extra
        // round trip): a master turned into a replica while we were connected — writable
        // replicas (`replica-read-only no`) even accept the script — stops counting within
        // a second instead of at the next reconnection.
        let role = self.role_due().then(|| {
            let mut con = con.clone();
            let role: BoxedReply =
                Box::pin(async move { redis::cmd("ROLE").query_async::<Value>(&mut con).await });
            role
        });
        // Built in place, never bound to a local first: a future moved out of a local still
        // takes its room in the caller's state, and this one is in every request's.
        let outcome = self
            .on_the_wire(
                exchange(&mut con, request, call.asking, role, &self.address),
                call,
            )
            .await;
        if let Ok((_, Some(role))) = &outcome
            && let Err(not_master) = check_role(role.clone())
        {
            // Whatever the request did there, this server does not count: the caller treats
            // the failure as "may hold the key" and releases it.
            self.discard(generation);
            return Err(Attempt::Failed(not_master));
        }
        match outcome.map(|(reply, _)| reply) {
            Ok(Ok(v)) => {
                self.timeouts.store(0, Ordering::Relaxed);
                self.last_reply_us.store(self.now_us(), Ordering::Relaxed);
                Ok(v)
            }
            Ok(Err(e)) if e.is_unrecoverable_error() || e.is_io_error() => {
                self.discard(generation);
                Err(Attempt::Dropped(self.classify(&e, self.node_timeout)))
            }
            // The master became a replica (a failover demoted it): the request did not run.
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
    }

    /// Runs a script by `EVALSHA`, falling back to one `EVAL` (which also caches it) after
    /// `NOSCRIPT`: at most one extra round trip after a restart or `SCRIPT FLUSH`.
    async fn eval(
        self: &Arc<Self>,
        script: &LuaScript,
        keys: &[&[u8]],
        args: &[&[u8]],
        call: &Call,
    ) -> Result<(Value, bool), NodeError> {
        let result = self
            .send(&Request::Script { script, keys, args }, call)
            .await;
        match &result {
            Ok(_) if !self.set_get_refused.load(Ordering::Relaxed) => {
                self.fast_acquire.store(true, Ordering::Relaxed);
            }
            Ok(_) => {}
            Err(NodeError::NoPermission(_)) => self.fast_acquire.store(false, Ordering::Relaxed),
            Err(_) => {}
        }
        result
    }

    /// Whether a `ROLE` check is due (a second since the last), claiming it if so.
    fn role_due(&self) -> bool {
        let now = self.now_ms();
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
    fn note_timeout(self: &Arc<Self>, generation: u64) {
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

    /// Acquires the key: a plain `SET NX PX` when not fencing (the floor's own command),
    /// and the acquire script when fencing, or when the `SET` was refused (to learn who holds
    /// the key and until when, and to recognise our own key after a resend).
    ///
    /// The keys expire at `expires_at` (the attempt's start + TTL): `PX` is the time left
    /// until then when the request leaves, so a request that waited for a connection sets a
    /// key that ends with the others, never a full TTL later. (Still at least `expires_at`
    /// on the master's clock: it receives the request after it left.)
    ///
    /// Several keys (a multi-resource lock) take the all-or-nothing script instead
    /// ([`Node::acquire_multi`]); `fence_keys` are the keys' fencing counters, in order.
    ///
    /// A reader's keys take the read script; a writer's `intent` the write script (the
    /// acquire script plus the intent that makes new readers queue behind it).
    ///
    /// With a holder record (`holder`: its key and value; a single key only), the script
    /// writes it beside the key with the same `PX`, in the same request.
    ///
    /// On a Redis Cluster member the request goes to the master of the first key's slot
    /// (every key of one request is in one slot: checked before any request).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn acquire(
        self: &Arc<Self>,
        keys: &Keys,
        fence_keys: &Keys,
        holder: Option<(&[u8], &[u8])>,
        token: &str,
        expires_at: Instant,
        fencing: bool,
        intent: Option<&Intent>,
        call: &Call,
    ) -> Result<AcquireReply, NodeError> {
        self.at_key(keys.first(), call, |node, call| async move {
            node.acquire_here(
                keys, fence_keys, holder, token, expires_at, fencing, intent, &call,
            )
            .await
        })
        .await
    }

    /// The acquisition's `PX` in whole milliseconds (rounded up, so the key never ends
    /// before `expires_at`), counted when the request leaves: after waiting for the
    /// connection when it is not up. `Backlog` when that wait went past `expires_at`
    /// (nothing left to grant).
    async fn ttl_when_sent(
        self: &Arc<Self>,
        expires_at: Instant,
        call: &Call,
    ) -> Result<u64, NodeError> {
        let asked = Instant::now();
        if !self.is_up() {
            drop(
                Box::pin(self.link(call))
                    .await
                    .map_err(|e| self.note_error(e))?,
            );
        }
        let left = expires_at.saturating_duration_since(Instant::now());
        let ttl_ms = u64::try_from(left.as_micros().div_ceil(1_000)).unwrap_or(u64::MAX);
        if ttl_ms == 0 {
            return Err(self.note_error(NodeError::Backlog(asked.elapsed())));
        }
        Ok(ttl_ms)
    }

    /// [`acquire`](Self::acquire) on this server.
    #[allow(clippy::too_many_arguments)]
    async fn acquire_here(
        self: &Arc<Self>,
        keys: &Keys,
        fence_keys: &Keys,
        holder: Option<(&[u8], &[u8])>,
        token: &str,
        expires_at: Instant,
        fencing: bool,
        intent: Option<&Intent>,
        call: &Call,
    ) -> Result<AcquireReply, NodeError> {
        let ttl_ms = self.ttl_when_sent(expires_at, call).await?;
        let (Some(key), Some(fence_key)) = (keys.single(), fence_keys.single()) else {
            // Boxed, as the reader's and the writer's paths below: a plain lock's request
            // does not carry their state.
            return Box::pin(self.acquire_multi(keys, fence_keys, token, ttl_ms, fencing, call))
                .await;
        };
        if keys.is_reader() {
            return Box::pin(self.acquire_read(key, token, ttl_ms, call)).await;
        }
        let ttl = ttl_ms.to_string();
        let fencing_arg: &[u8] = if fencing { b"1" } else { b"0" };
        if let Some(intent) = intent {
            let (intent_key, intent_ttl) = (keys::intent_key(key), intent.ttl_ms.to_string());
            let (reply, _) = Box::pin(self.eval(
                &scripts::ACQUIRE_WRITE,
                &[&**key, &**fence_key, &intent_key],
                &[
                    token.as_bytes(),
                    ttl.as_bytes(),
                    fencing_arg,
                    intent.id.as_bytes(),
                    intent_ttl.as_bytes(),
                ],
                call,
            ))
            .await?;
            return acquire_reply(&reply);
        }
        if !fencing && holder.is_none() && self.fast_acquire.load(Ordering::Relaxed) {
            // `SET … NX GET` (Redis 7.0+) answers in one command what the script answers:
            // nil when we set it, else the value there (our own token after a resend counts
            // as granted), or WRONGTYPE for a non-string. Only a refusal asks for the
            // holder's remaining TTL, in a second request (a hint for waiters).
            let mut set = redis::Cmd::with_capacity(
                7,
                key.len().saturating_add(token.len()).saturating_add(32),
            );
            set.arg("SET")
                .arg(key)
                .arg(token.as_bytes())
                .arg("NX")
                .arg("PX")
                .arg(ttl_ms)
                .arg("GET");
            match self.send(&Request::Command(&set), call).await {
                Ok((Value::Nil, _)) => return Ok(AcquireReply::Granted { fences: vec![0] }),
                Ok((Value::BulkString(held), _)) if held.as_slice() == token.as_bytes() => {
                    return Ok(AcquireReply::Granted { fences: vec![0] });
                }
                Ok((Value::BulkString(_), _)) => {
                    let mut pttl = redis::cmd("PTTL");
                    pttl.arg(key);
                    let remaining = match Box::pin(self.send(&Request::Command(&pttl), call)).await
                    {
                        Ok((Value::Int(ms), _)) => {
                            u64::try_from(ms).ok().map(Duration::from_millis)
                        }
                        _ => None,
                    };
                    return Ok(AcquireReply::Held {
                        remaining,
                        fences: vec![0],
                        busy: 0,
                    });
                }
                Ok((other, _)) => return Err(unexpected(&other)),
                Err(NodeError::Server { code, .. }) if code == "WRONGTYPE" => {
                    return Ok(AcquireReply::NotALock { busy: 0 });
                }
                // A server before 7.0 refuses NX with GET: the script from now on.
                Err(NodeError::Server { code, .. }) if code == "ERR" => {
                    tracing::debug!(master = %self.address, "SET NX GET refused: acquiring by script");
                    self.fast_acquire.store(false, Ordering::Relaxed);
                    self.set_get_refused.store(true, Ordering::Relaxed);
                }
                Err(e) => return Err(e),
            }
        }
        let (reply, _) = match holder {
            Some((holder_key, record)) => {
                self.eval(
                    &scripts::ACQUIRE,
                    &[&**key, &**fence_key, holder_key],
                    &[token.as_bytes(), ttl.as_bytes(), fencing_arg, record],
                    call,
                )
                .await?
            }
            None => {
                self.eval(
                    &scripts::ACQUIRE,
                    &[&**key, &**fence_key],
                    &[token.as_bytes(), ttl.as_bytes(), fencing_arg],
                    call,
                )
                .await?
            }
        };
        acquire_reply(&reply)
    }

    /// Runs the read script (`scripts/acquire_read.lua`) for a reader of lock key `key`.
    async fn acquire_read(
        self: &Arc<Self>,
        key: &[u8],
        token: &str,
        ttl_ms: u64,
        call: &Call,
    ) -> Result<AcquireReply, NodeError> {
        let (readers, lease, intent) = (
            keys::readers_key(key),
            keys::reader_key(key, token),
            keys::intent_key(key),
        );
        let (ttl, cap) = (ttl_ms.to_string(), MAX_READERS.to_string());
        let (reply, _) = self
            .eval(
                &scripts::ACQUIRE_READ,
                &[key, &readers, &lease, &intent],
                &[
                    token.as_bytes(),
                    ttl.as_bytes(),
                    keys::SHARED.as_bytes(),
                    cap.as_bytes(),
                ],
                call,
            )
            .await?;
        let (code, value) = int_pair(&reply)?;
        let remaining = u64::try_from(value).ok().map(Duration::from_millis);
        match code {
            1 => Ok(AcquireReply::Granted { fences: vec![0] }),
            // Held by a writer (or the reader cap), or a writer waits: `remaining` is then
            // the intent's, when to look again.
            0 | 2 => Ok(AcquireReply::Held {
                remaining,
                fences: vec![0],
                busy: 0,
            }),
            -1 => Ok(AcquireReply::NotALock { busy: 0 }),
            _ => Err(unexpected(&reply)),
        }
    }

    /// Runs the all-or-nothing acquire script over several keys (`scripts/acquire_multi.lua`):
    /// this master grants every key or none.
    async fn acquire_multi(
        self: &Arc<Self>,
        keys: &Keys,
        fence_keys: &Keys,
        token: &str,
        ttl_ms: u64,
        fencing: bool,
        call: &Call,
    ) -> Result<AcquireReply, NodeError> {
        let m = keys.len();
        let mut script_keys: Vec<&[u8]> = keys.as_slice().iter().map(|k| &**k).collect();
        if fencing {
            script_keys.extend(fence_keys.as_slice().iter().map(|k| &**k));
        }
        let (ttl, count) = (ttl_ms.to_string(), m.to_string());
        let fencing_arg: &[u8] = if fencing { b"1" } else { b"0" };
        let (reply, _) = self
            .eval(
                &scripts::ACQUIRE_MULTI,
                &script_keys,
                &[
                    token.as_bytes(),
                    ttl.as_bytes(),
                    fencing_arg,
                    count.as_bytes(),
                ],
                call,
            )
            .await?;
        let Value::Array(items) = &reply else {
            return Err(unexpected(&reply));
        };
        let mut ints = Vec::with_capacity(items.len());
        for item in items {
            match item {
                Value::Int(v) => ints.push(*v),
                _ => return Err(unexpected(&reply)),
            }
        }
        let [code, index, pttl, counters @ ..] = ints.as_slice() else {
            return Err(unexpected(&reply));
        };
        let fences: Vec<u64> = if fencing {
            if counters.len() != m {
                return Err(unexpected(&reply));
            }
            counters
                .iter()
                .map(|c| u64::try_from(*c).map_err(|_| unexpected(&reply)))
                .collect::<Result<_, _>>()?
        } else {
            vec![0; m]
        };
        let busy = usize::try_from(*index)
            .ok()
            .filter(|i| *i < m)
            .ok_or_else(|| unexpected(&reply))?;
        let remaining = u64::try_from(*pttl).ok().map(Duration::from_millis);
        match code {
            1 => Ok(AcquireReply::Granted { fences }),
            0 => Ok(AcquireReply::Held {
                remaining,
                fences,
                busy,
            }),
            -1 => Ok(AcquireReply::NotALock { busy }),
            _ => Err(unexpected(&reply)),
        }
    }

    /// Runs the semaphore's permit script (`scripts/acquire_permit.lua`): `keys` are the
    /// semaphore's name key, its permits key, then its `permits` slot keys in the attempt's
    /// rotation. The slot keys expire at `expires_at`, as [`Node::acquire`]'s. Returns the
    /// reply and whether the semaphore's name is also in use as a lock here.
    ///
    /// On a Redis Cluster member the request goes to the master of the name key's slot
    /// (which every slot key shares: checked before any request).
    pub(crate) async fn acquire_permit(
        self: &Arc<Self>,
        keys: &[Arc<[u8]>],
        token: &str,
        expires_at: Instant,
        permits: u32,
        call: &Call,
    ) -> Result<(PermitReply, bool), NodeError> {
        let first = keys.first().map_or(&[][..], |k| &**k);
        self.at_key(first, call, |node, call| async move {
            node.acquire_permit_here(keys, token, expires_at, permits, &call)
                .await
        })
        .await
    }

    /// [`acquire_permit`](Self::acquire_permit) on this server.
    async fn acquire_permit_here(
        self: &Arc<Self>,
        keys: &[Arc<[u8]>],
        token: &str,
        expires_at: Instant,
        permits: u32,
        call: &Call,
    ) -> Result<(PermitReply, bool), NodeError> {
        let asked = Instant::now();
        if !self.is_up() {
            drop(
                Box::pin(self.link(call))
                    .await
                    .map_err(|e| self.note_error(e))?,
            );
        }
        let left = expires_at.saturating_duration_since(Instant::now());
        let ttl_ms = u64::try_from(left.as_micros().div_ceil(1_000)).unwrap_or(u64::MAX);
        if ttl_ms == 0 {
            return Err(self.note_error(NodeError::Backlog(asked.elapsed())));
        }
        let (ttl, k) = (ttl_ms.to_string(), permits.to_string());
        let script_keys: Vec<&[u8]> = keys.iter().map(|k| &**k).collect();
        let (reply, _) = self
            .eval(
                &scripts::ACQUIRE_PERMIT,
                &script_keys,
                &[token.as_bytes(), ttl.as_bytes(), k.as_bytes()],
                call,
            )
            .await?;
        let (code, value, kind) = triple(&reply)?;
        let permit = match code {
            1 => PermitReply::Granted {
                position: usize::try_from(value)
                    .ok()
                    .filter(|p| u32::try_from(*p).is_ok_and(|p| p < permits))
                    .ok_or_else(|| unexpected(&reply))?,
            },
            0 => PermitReply::Full {
                remaining: u64::try_from(value).ok().map(Duration::from_millis),
            },
            3 => PermitReply::Mismatch {
                found: u32::try_from(value).ok(),
            },
            4 => PermitReply::Foreign,
            _ => return Err(unexpected(&reply)),
        };
        Ok((permit, kind == 1))
    }

    /// Runs the fencing raise script with proposal `t`.
    pub(crate) async fn fence(
        self: &Arc<Self>,
        key: &[u8],
        fence_key: &[u8],
        token: &str,
        t: u64,
        call: &Call,
    ) -> Result<FenceReply, NodeError> {
        self.at_key(key, call, |node, call| async move {
            node.fence_here(key, fence_key, token, t, &call).await
        })
        .await
    }

    /// [`fence`](Self::fence) on this server.
    async fn fence_here(
        self: &Arc<Self>,
        key: &[u8],
        fence_key: &[u8],
        token: &str,
        t: u64,
        call: &Call,
    ) -> Result<FenceReply, NodeError> {
        let t_arg = t.to_string();
        let (reply, _) = self
            .eval(
                &scripts::FENCE,
                &[key, fence_key],
                &[token.as_bytes(), t_arg.as_bytes()],
                call,
            )
            .await?;
        let (code, value) = int_pair(&reply)?;
        let value = u64::try_from(value).map_err(|_| unexpected(&reply))?;
        match code {
            1 => Ok(FenceReply::Raised),
            0 => Ok(FenceReply::Refused { counter: value }),
            -1 => Ok(FenceReply::NotOwner),
            _ => Err(unexpected(&reply)),
        }
    }

    /// Runs the compare-and-delete script once (with the one resend on a dead connection);
    /// several keys take the multi-key script, which deletes each key still holding the
    /// token and publishes on each deleted key's channel. With `holder_key` (a single key),
    /// the holder record there is deleted too if it is this token's.
    ///
    /// On a Redis Cluster member the request goes to the master of the first key's slot,
    /// and notifications go out with `SPUBLISH` on sharded channels.
    pub(crate) async fn release(
        self: &Arc<Self>,
        lock_keys: &Keys,
        holder_key: Option<&[u8]>,
        token: &str,
        publish: Publish,
        call: &Call,
    ) -> Result<CasReply, NodeError> {
        let sharded = self.is_cluster();
        self.at_key(lock_keys.first(), call, |node, call| async move {
            node.release_on(lock_keys, holder_key, token, publish, sharded, &call)
                .await
        })
        .await
    }

    /// [`release`](Self::release) on this server; `sharded`: publish the notifications with
    /// `SPUBLISH` on the keys' sharded channels (a node of a Redis Cluster member).
    async fn release_on(
        self: &Arc<Self>,
        lock_keys: &Keys,
        holder_key: Option<&[u8]>,
        token: &str,
        publish: Publish,
        sharded: bool,
        call: &Call,
    ) -> Result<CasReply, NodeError> {
        let mode: &[u8] = if sharded { b"1" } else { b"0" };
        // A key's own channel, sharded on a cluster; a shared channel (a semaphore's) made
        // sharded the same way, from the lock key it names.
        let own_channel = |key: &[u8]| {
            if sharded {
                keys::sharded_release_channel(key)
            } else {
                keys::release_channel(key)
            }
        };
        let shared_channel = |channel: &Arc<[u8]>| match keys::channel_lock_key(channel) {
            Some(key) if sharded => keys::sharded_release_channel(key),
            _ => Arc::clone(channel),
        };
        let call = call.with_priority();
        let (reply, resent) = match lock_keys.single() {
            Some(key) if lock_keys.is_reader() => {
                let channel = match publish {
                    Publish::Yes => own_channel(key),
                    Publish::No => Arc::from(&b""[..]),
                };
                let (readers, lease, prefix) = (
                    keys::readers_key(key),
                    keys::reader_key(key, token),
                    keys::reader_prefix(key),
                );
                self.eval(
                    &scripts::RELEASE_READ,
                    &[&**key, &readers, &lease],
                    &[
                        token.as_bytes(),
                        &channel,
                        keys::SHARED.as_bytes(),
                        &prefix,
                        mode,
                    ],
                    &call,
                )
                .await?
            }
            Some(key) => {
                let channel = match (publish, lock_keys.channel()) {
                    (Publish::Yes, Some(channel)) => shared_channel(channel),
                    (Publish::Yes, None) => own_channel(key),
                    (Publish::No, _) => Arc::from(&b""[..]),
                };
                let script_keys: &[&[u8]] = match &holder_key {
                    Some(holder_key) => &[key, holder_key],
                    None => &[key],
                };
                self.eval(
                    &scripts::RELEASE,
                    script_keys,
                    &[token.as_bytes(), &channel, mode],
                    &call,
                )
                .await?
            }
            None => {
                let (prefix, channel): (&[u8], Arc<[u8]>) = match (publish, lock_keys.channel()) {
                    (Publish::Yes, Some(channel)) => (b"", shared_channel(channel)),
                    (Publish::Yes, None) => (keys::CHANNEL_PREFIX, Arc::from(&b""[..])),
                    (Publish::No, _) => (b"", Arc::from(&b""[..])),
                };
                let script_keys: Vec<&[u8]> = lock_keys.as_slice().iter().map(|k| &**k).collect();
                self.eval(
                    &scripts::RELEASE_MULTI,
                    &script_keys,
                    &[token.as_bytes(), prefix, &channel, mode],
                    &call,
                )
                .await?
            }
        };
        match cas_reply(&reply)? {
            // The first send may have deleted the key before its connection died: "absent"
            // (or another holder, who took the key it freed) is then no evidence that the
            // lock had lapsed.
            CasReply::Absent | CasReply::Other if resent => Err(NodeError::Connection(
                "the connection died after the release was sent; resent, it found the key \
                 gone or taken by another holder (the first send has probably deleted it)"
                    .into(),
            )),
            other => Ok(other),
        }
    }

    /// Releases until the master answers, resending after transient failures with backoff
    /// until `call.queue_until`; returns the last answer or error. A permanent failure
    /// (credentials, ACL, …) is returned at once. `call`'s sent flag is set by the first try
    /// that leaves.
    pub(crate) async fn release_until(
        self: &Arc<Self>,
        keys: &Keys,
        holder_key: Option<&[u8]>,
        token: &str,
        publish: Publish,
        call: &Call,
    ) -> Result<CasReply, NodeError> {
        let mut backoff = RESEND_MIN;
        // The error of a try that may have deleted the key before failing: a later "absent"
        // is then no evidence that the lock had lapsed, nor is "another token" (another
        // holder may have taken the key our earlier try freed).
        let mut may_have_run: Option<NodeError> = None;
        loop {
            match self.release(keys, holder_key, token, publish, call).await {
                Ok(CasReply::Absent | CasReply::Other) if let Some(error) = may_have_run.take() => {
                    return Err(error);
                }
                Err(e) if worth_resending(&e) && !self.stop.is_cancelled() => {
                    if call.was_sent() && may_have_run.is_none() {
                        may_have_run = Some(e.clone());
                    }
                    let next = Instant::now().checked_add(backoff);
                    match next {
                        Some(next) if next < call.queue_until => {
                            tokio::time::sleep_until(next).await;
                            backoff = backoff.saturating_mul(2).min(RESEND_MAX);
                        }
                        _ => return Err(e),
                    }
                }
                other => return other,
            }
        }
    }

    /// Hands a release to this master's release worker, which sends it (again) until the
    /// master answers, the key has expired (`expires`), or the manager is closed. Never
    /// blocks; the queue is bounded by [`PARKED_MAX`] (past it the release expiring soonest
    /// is given up: its key expires by its TTL).
    pub(crate) fn release_later(
        self: &Arc<Self>,
        keys: Keys,
        holder_key: Option<Arc<[u8]>>,
        token: Arc<str>,
        publish: Publish,
        expires: Instant,
    ) {
        if self.stop.is_cancelled() {
            // The manager is closed: no connection will carry it; the key expires by its TTL.
            tracing::debug!(master = %self.address, "release after close: left to the key's TTL");
            return;
        }
        let mut parked = self.parked.lock().unwrap_or_else(|p| p.into_inner());
        if parked.queue.len() >= PARKED_MAX {
            // The queue is in arrival order, which is nearly expiry order.
            parked.queue.pop_front();
            tracing::debug!(master = %self.address, "release queue full: the oldest is left to its TTL");
        }
        let seq = parked.seq;
        parked.seq = seq.wrapping_add(1);
        parked.queue.push_back(ParkedRelease {
            keys,
            holder_key,
            token,
            publish,
            expires,
            seq,
        });
        if parked.working {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        parked.working = true;
        drop(parked);
        runtime.spawn(self.tasks.track_future(release_worker(Arc::clone(self))));
    }

    /// Releases parked on this master and not yet confirmed, plus one while the release
    /// worker runs (it may hold a batch in flight): 0 once every release has landed.
    pub(crate) fn parked_releases(&self) -> usize {
        self.parked
            .lock()
            .map(|p| p.queue.len().saturating_add(usize::from(p.working)))
            .unwrap_or_default()
    }

    /// [`parked_releases`](Self::parked_releases) while the master is up or connecting
    /// (work that ends within the masters' timeouts); 0 while it is known down, when its
    /// releases wait for it to come back, at most until their keys expire.
    pub(crate) fn release_work(&self) -> usize {
        let down = self
            .link
            .lock()
            .map(|l| l.up.is_none() && l.down.is_some())
            .unwrap_or(false);
        if down { 0 } else { self.parked_releases() }
    }

    /// Takes the parked releases still worth sending, or ends the worker (under the lock, so
    /// a release parked meanwhile starts a new worker) when there are none.
    fn take_parked(&self) -> Vec<ParkedRelease> {
        let mut parked = self.parked.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        parked.queue.retain(|r| r.expires > now);
        if parked.queue.is_empty() {
            parked.working = false;
            parked.withdrawn.clear();
            return Vec::new();
        }
        let n = parked.queue.len().min(MAX_IN_FLIGHT);
        let batch: Vec<ParkedRelease> = parked.queue.drain(..n).collect();
        parked.in_flight = batch
            .iter()
            .filter_map(|r| {
                let key = r.keys.single().filter(|_| !r.keys.is_reader())?;
                Some((Arc::clone(key), Arc::clone(&r.token)))
            })
            .collect();
        batch
    }

    /// Runs the compare-and-`PEXPIRE` script; several keys take the all-or-nothing
    /// multi-key script (every key still ours is extended, or none), a reader the reader's
    /// script, and a semaphore permit `extend_permit.lua`, which also keeps the semaphore's
    /// permits record alive as long as the slot.
    ///
    /// With a holder record (`holder`: its key and value; a single key only), the record is
    /// written again with the new TTL while the key is ours.
    ///
    /// On a Redis Cluster member the request goes to the master of the first key's slot.
    pub(crate) async fn extend(
        self: &Arc<Self>,
        keys: &Keys,
        holder: Option<(&[u8], &[u8])>,
        token: &str,
        ttl_ms: u64,
        call: &Call,
    ) -> Result<CasReply, NodeError> {
        self.at_key(keys.first(), call, |node, call| async move {
            node.extend_here(keys, holder, token, ttl_ms, &call).await
        })
        .await
    }

    /// [`extend`](Self::extend) on this server.
    async fn extend_here(
        self: &Arc<Self>,
        keys: &Keys,
        holder: Option<(&[u8], &[u8])>,
        token: &str,
        ttl_ms: u64,
        call: &Call,
    ) -> Result<CasReply, NodeError> {
        let ttl = ttl_ms.to_string();
        if let Some(key) = keys.single()
            && keys.is_reader()
        {
            let (readers, lease) = (keys::readers_key(key), keys::reader_key(key, token));
            let (reply, _) = self
                .eval(
                    &scripts::EXTEND_READ,
                    &[&**key, &readers, &lease],
                    &[token.as_bytes(), ttl.as_bytes(), keys::SHARED.as_bytes()],
                    &call.with_priority(),
                )
                .await?;
            return cas_reply(&reply);
        }
        if let (Some(key), Some((limit_key, permits))) = (keys.single(), keys.permits()) {
            let permits = permits.to_string();
            let (reply, _) = self
                .eval(
                    &scripts::EXTEND_PERMIT,
                    &[&**key, &**limit_key],
                    &[token.as_bytes(), ttl.as_bytes(), permits.as_bytes()],
                    &call.with_priority(),
                )
                .await?;
            return cas_reply(&reply);
        }
        let call = call.with_priority();
        let (reply, _) = match (keys.single(), holder) {
            (Some(key), Some((holder_key, record))) => {
                self.eval(
                    &scripts::EXTEND,
                    &[&**key, holder_key],
                    &[token.as_bytes(), ttl.as_bytes(), record],
                    &call,
                )
                .await?
            }
            (Some(key), None) => {
                self.eval(
                    &scripts::EXTEND,
                    &[&**key],
                    &[token.as_bytes(), ttl.as_bytes()],
                    &call,
                )
                .await?
            }
            (None, _) => {
                let script_keys: Vec<&[u8]> = keys.as_slice().iter().map(|k| &**k).collect();
                self.eval(
                    &scripts::EXTEND_MULTI,
                    &script_keys,
                    &[token.as_bytes(), ttl.as_bytes()],
                    &call,
                )
                .await?
            }
        };
        cas_reply(&reply)
    }

    /// Reads at most the first `max` bytes of a string key (a holder record; `GETRANGE`, so
    /// that a huge foreign value there neither fills memory nor holds up the connection's
    /// other requests while it streams): `None` when it is absent, empty or not a string.
    pub(crate) async fn get_prefix(
        self: &Arc<Self>,
        key: &[u8],
        max: usize,
        call: &Call,
    ) -> Result<Option<Vec<u8>>, NodeError> {
        let mut get = redis::cmd("GETRANGE");
        // `end` is inclusive: bytes 0 ..= max - 1.
        get.arg(key).arg(0).arg(max.saturating_sub(1));
        match self.send(&Request::Command(&get), call).await {
            Ok((Value::BulkString(value), _)) if value.is_empty() => Ok(None),
            Ok((Value::BulkString(value), _)) => Ok(Some(value)),
            Ok((Value::Nil, _)) => Ok(None),
            Ok((other, _)) => Err(unexpected(&other)),
            Err(NodeError::Server { code, .. }) if code == "WRONGTYPE" => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Reads the key's TTL and value in one `MULTI`/`EXEC` of read-only commands, which
    /// still answers while the master's writes are paused (`CLIENT PAUSE WRITE`).
    pub(crate) async fn peek(self: &Arc<Self>, key: &[u8], call: &Call) -> Result<Peek, NodeError> {
        self.at_key(key, call, |node, call| async move {
            node.peek_here(key, &call).await
        })
        .await
    }

    /// [`peek`](Self::peek) on this server.
    async fn peek_here(self: &Arc<Self>, key: &[u8], call: &Call) -> Result<Peek, NodeError> {
        let mut pipe = redis::pipe();
        // `ignore_errors`: a WRONGTYPE from GET comes back as that entry's value instead
        // of failing the whole transaction without its code.
        if call.asking {
            // A slot being imported (cluster `ASK`): `ASKING` right before `MULTI` holds
            // for the whole transaction; written by hand, as redis-rs's atomic pipelines
            // start with `MULTI`.
            pipe.ignore_errors()
                .cmd("ASKING")
                .ignore()
                .cmd("MULTI")
                .ignore()
                .cmd("PTTL")
                .arg(key)
                .ignore()
                .cmd("GET")
                .arg(key)
                .ignore()
                .cmd("EXEC");
        } else {
            pipe.atomic()
                .ignore_errors()
                .cmd("PTTL")
                .arg(key)
                .cmd("GET")
                .arg(key);
        }
        let (reply, _) = self.send(&Request::Pipeline(&pipe), call).await?;
        let values = match reply {
            Value::Array(values) if call.asking => match values.into_iter().next() {
                Some(Value::Array(values)) => values,
                Some(Value::ServerError(e)) => return Err(self.server_error(&e)),
                other => return Err(unexpected(&other.unwrap_or(Value::Nil))),
            },
            Value::Array(values) => values,
            other => return Err(unexpected(&other)),
        };
        match values.as_slice() {
            // Readers hold it: how many, in a second read-only request (only then, so that
            // a user without read-write locks needs no permission for sets).
            [Value::Int(pttl), Value::BulkString(value)]
                if value.as_slice() == keys::SHARED.as_bytes() =>
            {
                let mut scard = redis::cmd("SCARD");
                scard.arg(&*keys::readers_key(key));
                let readers = match self.send(&Request::Command(&scard), call).await? {
                    (Value::Int(n), _) => usize::try_from(n).unwrap_or_default(),
                    (other, _) => return Err(unexpected(&other)),
                };
                Ok(Peek::Shared {
                    readers,
                    remaining: u64::try_from(*pttl).ok().map(Duration::from_millis),
                })
            }
            [Value::Int(pttl), Value::BulkString(value)] => Ok(Peek::Value {
                value: value.clone(),
                remaining: u64::try_from(*pttl).ok().map(Duration::from_millis),
            }),
            [_, Value::Nil] => Ok(Peek::Absent),
            [_, Value::ServerError(e)] if e.code() == "WRONGTYPE" => Ok(Peek::NotALock),
            [_, Value::ServerError(e)] => Err(self.server_error(e)),
            _ => Err(unexpected(&Value::Array(values))),
        }
    }

    /// A failed master lookup through a Sentinel group: credentials and certificates keep
    /// their own kinds; anything else is reported as the lookup's failure (the sentinels, or
    /// the master they named, could not be reached or did not answer as a master).
    fn lookup_failure(&self, e: LookupError) -> NodeError {
        let e = match e {
            LookupError::Sentinel(message) => {
                return NodeError::Sentinel(scrub(&message, &self.secrets).into());
            }
            LookupError::Redis(e) => e,
        };
        match self.classify(&e, self.connect_timeout) {
            error @ (NodeError::Auth(_)
            | NodeError::Tls(_)
            | NodeError::NoPermission(_)
            | NodeError::Sentinel(_)) => error,
            other => {
                let text = format!("looking up the master through the sentinels failed: {other}");
                NodeError::Sentinel(match other.cause() {
                    Some(cause) => cause.retext(text),
                    None => self.cause(text, &e),
                })
            }
        }
    }

    /// `text` (already scrubbed) as a [`Cause`] that carries `error`: the error itself when
    /// no level of its chain shows a secret of this master, else a scrubbed copy of the
    /// chain's texts.
    fn cause<E>(&self, text: String, error: &E) -> Cause
    where
        E: std::error::Error + Clone + Send + Sync + 'static,
    {
        let secrets: Vec<&String> = self.secrets.iter().filter(|s| !s.is_empty()).collect();
        let first: &(dyn std::error::Error + 'static) = error;
        let levels = || std::iter::successors(Some(first), |e| e.source());
        let shows_secret = levels().any(|level| {
            let (shown, debug) = (level.to_string(), format!("{level:?}"));
            secrets
                .iter()
                .any(|s| shown.contains(s.as_str()) || debug.contains(s.as_str()))
        });
        if shows_secret {
            let chain = levels()
                .map(|level| scrub(&level.to_string(), &self.secrets))
                .collect();
            Cause::with_scrubbed_chain(text, chain)
        } else {
            Cause::with_error(text, Arc::new(error.clone()))
        }
    }

    /// A server's error reply inside a pipeline's answer, classified as [`Node::classify`]
    /// classifies a failed command, secrets scrubbed.
    fn server_error(&self, e: &redis::ServerError) -> NodeError {
        let message = || scrub(e.details().unwrap_or_default(), &self.secrets);
        known_code(e.code(), || {
            self.cause(format!("{}: {}", e.code(), message()), e)
        })
        .unwrap_or_else(|| NodeError::Server {
            code: e.code().to_owned(),
            message: self.cause(message(), e),
        })
    }

    /// Maps a client error to a [`NodeError`], scrubbing secrets from its text; the error
    /// goes along as the cause's source.
    fn classify(&self, e: &RedisError, budget: Duration) -> NodeError {
        let cause = |text: String| self.cause(text, e);
        let text = || scrub(&e.to_string(), &self.secrets);
        if let Some((code, message)) = redirection(e) {
            // Read by the cluster router, which follows it.
            return NodeError::Server {
                code,
                message: cause(message),
            };
        }
        if let Some(tls) = tls_cause(e) {
            return NodeError::Tls(cause(scrub(&tls, &self.secrets)));
        }
        // redis-rs reports a TLS set-up it could not build (e.g. a client certificate rustls
        // refuses) as a client-configuration error with the cause in its text.
        if e.kind() == ErrorKind::InvalidClientConfig && self.target.is_tls() {
            return NodeError::Tls(cause(format!("the TLS settings were refused: {}", text())));
        }
        if let ErrorKind::MasterNameNotFoundBySentinel
        | ErrorKind::NoValidReplicasFoundBySentinel
        | ErrorKind::EmptySentinelList = e.kind()
        {
            return NodeError::Sentinel(cause(text()));
        }
        let code = e.code().unwrap_or_default();
        if let Some(error) = known_code(code, || cause(text())) {
            return error;
        }
        if e.kind() == ErrorKind::AuthenticationFailed {
            return NodeError::Auth(cause(text()));
        }
        if e.is_timeout() {
            return NodeError::Timeout(budget);
        }
        if e.is_connection_refusal() {
            return NodeError::Refused(cause(text()));
        }
        if e.is_io_error() || e.is_connection_dropped() {
            if self.target.is_sentinel() {
                return NodeError::Connection(cause(text()));
            }
            if !self.target.is_tls() && budget == self.connect_timeout && dropped_after_open(e) {
                // A plaintext client at a TLS-only port: the server accepts the connection,
                // then drops it at our first command. Only that evidence earns the hint: a
                // name that does not resolve, a refusal or an unreachable host says nothing
                // about TLS.
                return NodeError::Connection(cause(format!(
                    "{} (if this port only speaks TLS, use rediss://)",
                    text()
                )));
            }
            return NodeError::Connection(cause(text()));
        }
        if let ErrorKind::Server(_) | ErrorKind::Extension = e.kind() {
            return NodeError::Server {
                code: code.to_owned(),
                message: cause(scrub(e.detail().unwrap_or_default(), &self.secrets)),
            };
        }
        NodeError::Connection(cause(text()))
    }
}

/// Opens connections to one master in the background, off the request path: tries at once,
/// then with backoff ([`RECONNECT_MIN`] doubling to [`RECONNECT_MAX`]) until a connection is
/// up, the manager stops, or the node is gone. A request to the master while it is down
/// (`nudge`) cuts the backoff short, once at least [`RECONNECT_MIN`] has passed since the
/// last attempt: a master that comes back is used at the next request, and an unreachable
/// one costs at most one attempt per [`RECONNECT_MIN`].
async fn connector(node: Weak<Node>, stop: CancellationToken, nudge: Arc<Notify>) {
    let mut backoff = RECONNECT_MIN;
    loop {
        let Some(live) = node.upgrade() else { return };
        let attempted = Instant::now();
        let outcome = tokio::select! {
            () = stop.cancelled() => return,
            outcome = live.connect_once() => outcome,
        };
        if live.settle(outcome) {
            return;
        }
        drop(live);
        let nudged = async {
            nudge.notified().await;
            let earliest = attempted.checked_add(RECONNECT_MIN).unwrap_or(attempted);
            tokio::time::sleep_until(earliest).await;
        };
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(backoff) => {}
            () = nudged => {}
        }
        backoff = backoff.saturating_mul(2).min(RECONNECT_MAX);
    }
}

/// Sends one master's parked releases until each is answered or expired; ends when none is
/// left, or after one last pass once the manager has stopped.
async fn release_worker(node: Arc<Node>) {
    let mut backoff = RESEND_MIN;
    loop {
        let batch = node.take_parked();
        if batch.is_empty() {
            return;
        }
        let stopping = node.stop.is_cancelled();
        let sends: FuturesUnordered<_> = batch
            .into_iter()
            .map(|r| {
                let node = &node;
                async move {
                    let call = Call::until(r.expires);
                    let result = node
                        .release(&r.keys, r.holder_key.as_deref(), &r.token, r.publish, &call)
                        .await;
                    (r, result)
                }
            })
            .collect();
        let results: Vec<_> = sends.collect().await;
        let mut again = 0usize;
        {
            let mut parked = node.parked.lock().unwrap_or_else(|p| p.into_inner());
            parked.in_flight.clear();
            for (release, result) in results {
                match result {
                    Err(e)
                        if worth_resending(&e) && !stopping && !parked.is_withdrawn(&release) =>
                    {
                        again = again.saturating_add(1);
                        parked.queue.push_front(release);
                    }
                    Err(e) => {
                        tracing::debug!(master = %node.address, error = %e, "release given up: the key expires by its TTL");
                    }
                    Ok(_) => {}
                }
            }
        }
        if stopping {
            let mut parked = node.parked.lock().unwrap_or_else(|p| p.into_inner());
            parked.queue.clear();
            parked.working = false;
            return;
        }
        if again == 0 {
            backoff = RESEND_MIN;
            continue;
        }
        let changed = node.changed.notified();
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = changed => {}
            () = node.stop.cancelled() => {}
        }
        backoff = backoff.saturating_mul(2).min(RESEND_MAX);
    }
}

/// Sends one command; with `asking`, as `ASKING` + the command in one pipeline, so that no
/// other request on the shared connection comes between them (the flag would apply to it,
/// and it could run on a master that does not hold its key yet).
/// A reply on its way, boxed: the rare extra request (`ROLE`) rides beside the main one.
type BoxedReply = std::pin::Pin<Box<dyn Future<Output = Result<Value, RedisError>> + Send>>;

/// Sends `request` on `con` and awaits its reply, beside `role`'s when one is due (the
/// pair boxed: it is rare).
async fn exchange(
    con: &mut MultiplexedConnection,
    request: &Request<'_>,
    asking: bool,
    role: Option<BoxedReply>,
    master: &str,
) -> (Result<Value, RedisError>, Option<Result<Value, RedisError>>) {
    match role {
        None => (request_on(con, request, asking, master).await, None),
        Some(role) => {
            let (reply, role) = Box::pin(futures_util::future::join(
                request_on(con, request, asking, master),
                role,
            ))
            .await;
            (reply, Some(role))
        }
    }
}

/// Sends `request` on `con` and awaits its reply. A script goes by `EVALSHA`, then once by
/// `EVAL` after `NOSCRIPT`. The rare paths (that fallback, a pipeline) are boxed so that
/// every request's future stays the size of one plain command's.
async fn request_on(
    con: &mut MultiplexedConnection,
    request: &Request<'_>,
    asking: bool,
    master: &str,
) -> Result<Value, RedisError> {
    match request {
        Request::Script { script, keys, args } => {
            // Sized up front: no buffer grows while the arguments are written.
            let data = keys
                .iter()
                .chain(args.iter())
                .fold(script.sha.len().saturating_add(16), |n, a| {
                    n.saturating_add(a.len())
                });
            let count = keys.len().saturating_add(args.len()).saturating_add(3);
            let mut evalsha = redis::Cmd::with_capacity(count, data);
            evalsha
                .arg("EVALSHA")
                .arg(&script.sha)
                .arg(keys.len())
                .arg(*keys)
                .arg(*args);
            match query(con, &evalsha, asking).await {
                Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                    tracing::debug!(master, "NOSCRIPT: sending the script body");
                    let mut eval = redis::cmd("EVAL");
                    eval.arg(script.body).arg(keys.len()).arg(*keys).arg(*args);
                    Box::pin(query(con, &eval, asking)).await
                }
                other => other,
            }
        }
        Request::Command(cmd) => query(con, cmd, asking).await,
        // A pipeline carries its own `ASKING` (see `Node::peek`).
        Request::Pipeline(pipe) => Box::pin(pipe.query_async::<Value>(con)).await,
    }
}

async fn query(
    con: &mut MultiplexedConnection,
    cmd: &redis::Cmd,
    asking: bool,
) -> Result<Value, RedisError> {
    if !asking {
        return cmd.query_async::<Value>(con).await;
    }
    let mut pipe = redis::pipe();
    pipe.cmd("ASKING")
        .ignore()
        .add_command(cmd.clone())
        .ignore_errors();
    // Boxed: only a cluster's `ASK` redirection comes here.
    let replies: Vec<Value> = Box::pin(pipe.query_async(con)).await?;
    match replies.into_iter().next() {
        Some(Value::ServerError(e)) => Err(e.into()),
        Some(reply) => Ok(reply),
        None => Err(RedisError::from((
            ErrorKind::UnexpectedReturnType,
            "no reply after ASKING",
        ))),
    }
}

/// The `MOVED`/`ASK` redirection inside an error (a transaction aborted by it included), as
/// its code and text.
fn redirection(e: &RedisError) -> Option<(String, String)> {
    e.clone().into_server_errors().and_then(|errors| {
        errors.iter().find_map(|(_, e)| {
            matches!(e.code(), "MOVED" | "ASK").then(|| {
                (
                    e.code().to_owned(),
                    e.details().unwrap_or_default().to_owned(),
                )
            })
        })
    })
}

/// Whether a failed release may land if sent again: not after a permanent failure
/// (credentials, ACL, …) nor after a reply that is not our script's (no resend can fix it).
pub(crate) fn worth_resending(error: &NodeError) -> bool {
    !error.is_permanent() && !matches!(error, NodeError::UnexpectedReply(_))
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

/// Whether `e` says that an open connection was dropped by the peer (reset, aborted, closed,
/// broken pipe, end of stream) — not that it could not be opened (a name that does not
/// resolve, a refusal, an unreachable host or network).
fn dropped_after_open(e: &RedisError) -> bool {
    use std::io::ErrorKind as Io;
    let mut level: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = level {
        // redis-rs keeps its I/O errors behind an `Arc<dyn Error>`.
        let io = err.downcast_ref::<std::io::Error>().or_else(|| {
            err.downcast_ref::<Arc<dyn std::error::Error + Send + Sync>>()
                .and_then(|arc| arc.downcast_ref::<std::io::Error>())
        });
        if let Some(io) = io {
            return matches!(
                io.kind(),
                Io::ConnectionReset | Io::ConnectionAborted | Io::BrokenPipe | Io::UnexpectedEof
            );
        }
        level = err.source();
    }
    // redis-rs's own I/O errors without an `io::Error` ("connection closed"): it had a
    // connection to lose.
    e.kind() == ErrorKind::Io
}

/// The error kinds told by the code of a server's error reply, if it is one of them.
fn known_code(code: &str, text: impl FnOnce() -> Cause) -> Option<NodeError> {
    match code {
        "NOAUTH" | "WRONGPASS" => Some(NodeError::Auth(text())),
        "NOPERM" => Some(NodeError::NoPermission(text())),
        "OOM" => Some(NodeError::OutOfMemory(text())),
        "READONLY" | "MISCONF" => Some(NodeError::ReadOnly(text())),
        _ => None,
    }
}

/// A script's `{code, value}` reply.
fn int_pair(reply: &Value) -> Result<(i64, i64), NodeError> {
    match reply {
        Value::Array(items) => match items.as_slice() {
            [Value::Int(a), Value::Int(b)] => Ok((*a, *b)),
            _ => Err(unexpected(reply)),
        },
        _ => Err(unexpected(reply)),
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

/// The reply of the acquire (or write) script: `{code, fence, pttl}`.
fn acquire_reply(reply: &Value) -> Result<AcquireReply, NodeError> {
    let (code, fence, pttl) = triple(reply)?;
    let remaining = u64::try_from(pttl).ok().map(Duration::from_millis);
    let fences = vec![u64::try_from(fence).map_err(|_| unexpected(reply))?];
    match code {
        1 => Ok(AcquireReply::Granted { fences }),
        0 => Ok(AcquireReply::Held {
            remaining,
            fences,
            busy: 0,
        }),
        -1 => Ok(AcquireReply::NotALock { busy: 0 }),
        _ => Err(unexpected(reply)),
    }
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
    pub(crate) fn status(&self) -> NodeStatus {
        match self {
            Self::Granted { .. } => NodeStatus::Done,
            Self::Held { remaining, .. } => NodeStatus::HeldByOther {
                remaining: *remaining,
            },
            Self::NotALock { .. } => NodeStatus::NotALock,
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
    fn source_chain_never_shows_a_password() {
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
        let levels = |e: &NodeError| -> Vec<(String, String)> {
            let first: &(dyn std::error::Error + 'static) = e;
            std::iter::successors(Some(first), |e| e.source())
                .map(|l| (l.to_string(), format!("{l:?}")))
                .collect()
        };
        // A cause whose text echoes the password (as a server echoes the arguments of a
        // command it does not know): every level is a scrubbed copy, and the chain goes on.
        let echoed = RedisError::from(std::io::Error::other("unknown command, args: p@ss"));
        let error = node.classify(&echoed, node.node_timeout);
        let shown = levels(&error);
        assert!(shown.len() >= 2, "{shown:?}");
        for (display, debug) in &shown {
            assert!(
                !display.contains("p@ss") && !debug.contains("p@ss"),
                "{shown:?}"
            );
        }
        assert!(
            shown.iter().skip(1).all(|(d, _)| d.contains("***")),
            "{shown:?}"
        );
        // A cause without a secret keeps the original error, for downcasts.
        let plain = RedisError::from(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        let error = node.classify(&plain, node.node_timeout);
        let source = std::error::Error::source(&error);
        assert!(source.is_some_and(|s| s.is::<RedisError>()), "{error:?}");
    }

    #[test]
    fn tls_hint_only_for_a_connection_dropped_after_it_opened() {
        use std::io::{Error, ErrorKind as Io};
        let tls = TlsSettings::default();
        let node = Node::new(
            "redis://127.0.0.1:1",
            0,
            Arc::default(),
            &NodeOptions {
                node_timeout: Duration::from_millis(50),
                connect_timeout: Duration::from_secs(1),
                tls: &tls,
            },
        )
        .unwrap_or_else(|e| unreachable!("{e}"));
        let hinted = |e: Error| {
            node.classify(&RedisError::from(e), node.connect_timeout)
                .to_string()
                .contains("use rediss://")
        };
        for kind in [
            Io::ConnectionReset,
            Io::ConnectionAborted,
            Io::BrokenPipe,
            Io::UnexpectedEof,
        ] {
            assert!(hinted(Error::from(kind)), "{kind:?}");
        }
        for e in [
            Error::other("failed to lookup address information: Name or service not known"),
            Error::from(Io::HostUnreachable),
            Error::from(Io::NetworkUnreachable),
            Error::from(Io::AddrNotAvailable),
            Error::from(Io::ConnectionRefused),
        ] {
            let shown = e.to_string();
            assert!(!hinted(e), "no TLS hint for {shown}");
        }
        // A request on an open connection is not a connect: no hint either.
        let reset = RedisError::from(Error::from(Io::ConnectionReset));
        assert!(
            !node
                .classify(&reset, node.node_timeout)
                .to_string()
                .contains("rediss")
        );
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

mod own_token;
