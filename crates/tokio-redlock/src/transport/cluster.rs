//! A Redis Cluster as one quorum member: each request goes to the master that serves its
//! key's hash slot.
//!
//! # Why a thin router on our own connections, not redis-rs's `ClusterConnection`
//!
//! The request path keeps the guarantees it has for a plain master only if each cluster
//! master is one of our own [`Node`]s: a `node_timeout` that starts when the request is on
//! the wire to *that* master (our in-flight limit per connection keeps our backlog out of
//! it), a connection opened off the request path with its own `connect_timeout` and its
//! error kept as it is (a wrong password is `Auth`, not a timeout), `ROLE` checked on every
//! connection and every second (a demoted master stops counting at once), and no command
//! silently resent. redis-rs's cluster connection has one response timeout for its whole
//! internal queue and retry loop, resends a failed request on its own (after I/O errors,
//! `TRYAGAIN`, `CLUSTERDOWN`), and hides which node answered — so a frozen shard would be
//! judged by a retry schedule, and a release could be resent by a layer that does not know
//! whether it already deleted the key. It serves the one path where none of this matters:
//! the release notifications' subscriptions (`SSUBSCRIBE`), which it keeps on the owning
//! node across reconnects and layout changes (see `notify.rs`).
//!
//! # What the router does
//!
//! - The layout (slot → master) is learnt from the seeds: every known node (seeds and the
//!   masters of the last layout) is asked `CLUSTER SLOTS` at once, on connections of its
//!   own, and the answer most nodes give wins, once a majority has answered (or half the
//!   connect budget after the first answer): a seed that is down or frozen costs nothing,
//!   and one node with a stale view is outvoted.
//! - A request is sent to the master of its key's slot ([`keys::slot`]; every key of one
//!   script is in that slot). `MOVED` records the slot's new master, schedules a refresh of
//!   the whole layout, and sends the request there; `ASK` (a slot being migrated) sends it
//!   once to the importing master, `ASKING` and the request written together so that no
//!   other request on the shared connection can slip between them. A request follows at
//!   most [`MAX_REDIRECTS`] redirections, each hop bounded by its own `node_timeout`: the
//!   work on a member stays bounded whatever its nodes answer.
//! - A failure that may mean a changed layout (a connection refused or lost, a timeout, a
//!   node that is no longer a master, `CLUSTERDOWN`, `TRYAGAIN`) is reported as it is — the
//!   quorum counts it as this member's failure — and schedules a refresh (at most one per
//!   [`REFRESH_MIN`]), so that the next request goes to the new master after a failover.
//! - Releases that do not land are parked on the member, not on a node: each resend is
//!   routed by the layout of its time, so a release follows its slot to a new master.
//! - The nodes' connections, the refresh task and the parked releases stop with the
//!   manager (`close()` or drop), as a plain master's do.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use redis::{AsyncConnectionConfig, RedisError, Value};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::error::NodeError;
use crate::keys;
use crate::transport::member::{ClusterSpec, show_host};
use crate::transport::node::{Call, Node, ServerIds};
use crate::transport::redact::scrub;
use crate::transport::tls::{TlsSettings, tls_cause};

/// Redirections (`MOVED`, `ASK`) one request follows at most: a slot migrated while the
/// request is on its way costs two (`ASK` to the importing master, or `MOVED` once the
/// migration ended), a failover one more.
pub(crate) const MAX_REDIRECTS: usize = 3;

/// Least time between two layout refreshes.
pub(crate) const REFRESH_MIN: Duration = Duration::from_millis(200);

/// Nodes one cluster member connects to at most: `MOVED` replies name the nodes, and a
/// misbehaving server must not make us open connections without end.
const MAX_NODES: usize = 1_000;

/// Where one cluster member sits in its manager, set once the manager's list is built.
struct Seat {
    index: usize,
    servers: Arc<ServerIds>,
    /// The member's URL as shown (password replaced by `***`): the metrics label of every
    /// node of the cluster.
    address: Arc<str>,
    secrets: Vec<String>,
}

/// What is known of the cluster's layout.
#[derive(Default)]
struct Layout {
    /// The master (`host:port`) of each slot; `None` while unknown or unserved.
    slots: Vec<Option<Arc<str>>>,
    /// The nodes connected to, by `host:port`.
    nodes: HashMap<Arc<str>, Arc<Node>>,
    /// A refresh runs.
    refreshing: bool,
    /// When the last refresh started.
    last_refresh: Option<Instant>,
    /// Why the last refresh learnt nothing (cleared by a refresh that succeeds).
    error: Option<NodeError>,
}

/// What the router and its refresh task share.
#[derive(Default)]
struct Shared {
    layout: Mutex<Layout>,
    /// Woken when a refresh ends.
    refreshed: Notify,
}

/// A Redis Cluster member's router; see the module docs.
pub(crate) struct Cluster {
    spec: ClusterSpec,
    tls: TlsSettings,
    node_timeout: Duration,
    connect_timeout: Duration,
    seat: OnceLock<Seat>,
    shared: Arc<Shared>,
    stop: CancellationToken,
    tasks: TaskTracker,
}

impl Cluster {
    /// The router of `spec`; connects to nothing.
    pub(crate) fn new(
        spec: ClusterSpec,
        tls: &TlsSettings,
        node_timeout: Duration,
        connect_timeout: Duration,
    ) -> Result<Self, RedisError> {
        // Every seed must make a client now, so a bad address is a configuration error.
        for (host, port) in &spec.seeds {
            spec.node_client(host, *port, tls)?;
        }
        Ok(Self {
            spec,
            tls: tls.clone(),
            node_timeout,
            connect_timeout,
            seat: OnceLock::new(),
            shared: Arc::default(),
            stop: CancellationToken::new(),
            tasks: TaskTracker::new(),
        })
    }

    /// The cluster as configured.
    pub(crate) fn spec(&self) -> &ClusterSpec {
        &self.spec
    }

    /// Records the member's place in its manager (called once, by `Node::new`).
    pub(crate) fn seat(
        &self,
        index: usize,
        servers: Arc<ServerIds>,
        address: Arc<str>,
        secrets: Vec<String>,
    ) {
        let _ = self.seat.set(Seat {
            index,
            servers,
            address,
            secrets,
        });
    }

    fn secrets(&self) -> &[String] {
        self.seat.get().map_or(&[], |s| s.secrets.as_slice())
    }

    /// Sends a request about `key` to the master of its slot, following redirections; `op`
    /// makes the request on one node with the call to use.
    pub(crate) async fn route<T, F, Fut>(
        &self,
        key: &[u8],
        call: &Call,
        op: F,
    ) -> Result<T, NodeError>
    where
        F: Fn(Arc<Node>, Call) -> Fut,
        Fut: Future<Output = Result<T, NodeError>>,
    {
        let slot = keys::slot(key);
        let mut node = self.master_of(slot, call).await?;
        let mut asking = false;
        let mut demoted_once = false;
        for _ in 0..=MAX_REDIRECTS {
            let mut hop = call.clone();
            hop.asking = asking;
            let error = match op(Arc::clone(&node), hop).await {
                Ok(reply) => return Ok(reply),
                Err(error) => error,
            };
            if matches!(error, NodeError::NotMaster(_) | NodeError::ReadOnly(_)) && !demoted_once {
                // The slot's master was demoted (a failover): the request did not run there
                // (our ROLE check refused the node, or the replica refused the write). Learn
                // the layout again and send it once to the slot's new master.
                demoted_once = true;
                let refreshed = self.shared.refreshed.notified();
                let mut refreshed = std::pin::pin!(refreshed);
                refreshed.as_mut().enable();
                self.refresh_now();
                let now = Instant::now();
                let until = now
                    .checked_add(self.connect_timeout)
                    .unwrap_or(now)
                    .min(call.queue_until);
                let _ = tokio::time::timeout_at(until, refreshed).await;
                let fresh = self.master_of(slot, call).await?;
                if !Arc::ptr_eq(&fresh, &node) {
                    node = fresh;
                    asking = false;
                    continue;
                }
            }
            let redirect = match &error {
                NodeError::Server { code, message } if code == "MOVED" || code == "ASK" => {
                    redirect_target(message).map(|addr| (code == "ASK", addr))
                }
                _ => None,
            };
            let Some((ask, addr)) = redirect else {
                if changes_layout(&error) {
                    self.refresh_soon();
                }
                return Err(error);
            };
            node = self.node_at(&addr)?;
            asking = ask;
            if !ask {
                tracing::debug!(slot, to = %addr, "MOVED: the slot has a new master");
                self.moved(slot, &addr);
                self.refresh_soon();
            }
        }
        self.refresh_soon();
        Err(NodeError::Cluster(
            format!(
                "slot {slot} redirected more than {MAX_REDIRECTS} times: the layout is changing"
            )
            .into(),
        ))
    }

    /// The master of `slot`, learning the layout first when it is not known (waiting for a
    /// refresh at most `connect_timeout`, and not past the call's patience).
    async fn master_of(&self, slot: u16, call: &Call) -> Result<Arc<Node>, NodeError> {
        let now = Instant::now();
        let until = now
            .checked_add(self.connect_timeout)
            .unwrap_or(now)
            .min(call.queue_until);
        let mut waited = false;
        loop {
            let notified = self.shared.refreshed.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            {
                let layout = self.shared.layout.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(Some(addr)) = layout.slots.get(usize::from(slot)) {
                    let addr = Arc::clone(addr);
                    drop(layout);
                    return self.node_at(&addr);
                }
                // After a refresh (ours, or one that ended a moment ago: a slot nobody
                // serves must not make every request refresh the layout again), the slot
                // has no master.
                let fresh = layout
                    .last_refresh
                    .is_some_and(|at| at.elapsed() < REFRESH_MIN);
                if !layout.refreshing && (waited || fresh) {
                    return Err(layout.error.clone().unwrap_or_else(|| {
                        NodeError::Cluster(format!("no master serves slot {slot}").into())
                    }));
                }
                if self.stop.is_cancelled() {
                    return Err(NodeError::Connection(
                        "the lock manager was closed".to_owned().into(),
                    ));
                }
            }
            self.refresh_now();
            waited = true;
            if tokio::time::timeout_at(until, notified).await.is_err() {
                let layout = self.shared.layout.lock().unwrap_or_else(|p| p.into_inner());
                return Err(layout.error.clone().unwrap_or_else(|| {
                    NodeError::Cluster(
                        format!(
                            "the cluster's layout was not learnt within {:?}",
                            self.connect_timeout
                        )
                        .into(),
                    )
                }));
            }
        }
    }

    /// The node at `addr` (`host:port`), created on first use.
    pub(crate) fn node_at(&self, addr: &str) -> Result<Arc<Node>, NodeError> {
        let mut layout = self.shared.layout.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(node) = layout.nodes.get(addr) {
            return Ok(Arc::clone(node));
        }
        if layout.nodes.len() >= MAX_NODES {
            return Err(NodeError::Cluster(
                format!("more than {MAX_NODES} nodes named: refusing to connect to more").into(),
            ));
        }
        let (host, port) = split_addr(addr).ok_or_else(|| {
            NodeError::Cluster(format!("a node address that is not host:port: {addr}").into())
        })?;
        let client = self
            .spec
            .node_client(host, port, &self.tls)
            .map_err(|e| NodeError::Cluster(scrub(&e.to_string(), self.secrets()).into()))?;
        let seat = self
            .seat
            .get()
            .ok_or_else(|| NodeError::Cluster("the member is not set up".to_owned().into()))?;
        let node = Arc::new(Node::cluster_node(
            Arc::from(addr),
            Arc::clone(&seat.address),
            client,
            seat.index,
            Arc::clone(&seat.servers),
            seat.secrets.clone(),
            self.node_timeout,
            self.connect_timeout,
        ));
        if self.stop.is_cancelled() {
            node.stop();
        }
        layout.nodes.insert(Arc::from(addr), Arc::clone(&node));
        Ok(node)
    }

    /// Records that `slot` is served by `addr` now.
    fn moved(&self, slot: u16, addr: &str) {
        let mut layout = self.shared.layout.lock().unwrap_or_else(|p| p.into_inner());
        if layout.slots.is_empty() {
            layout.slots = vec![None; usize::from(keys::SLOTS)];
        }
        if let Some(entry) = layout.slots.get_mut(usize::from(slot)) {
            *entry = Some(Arc::from(addr));
        }
    }

    /// Starts a refresh unless one runs or the last started less than [`REFRESH_MIN`] ago.
    pub(crate) fn refresh_soon(&self) {
        let mut layout = self.shared.layout.lock().unwrap_or_else(|p| p.into_inner());
        let recent = layout
            .last_refresh
            .is_some_and(|at| at.elapsed() < REFRESH_MIN);
        if recent {
            return;
        }
        self.start_refresh(&mut layout);
    }

    /// Starts a refresh unless one runs.
    fn refresh_now(&self) {
        let mut layout = self.shared.layout.lock().unwrap_or_else(|p| p.into_inner());
        self.start_refresh(&mut layout);
    }

    fn start_refresh(&self, layout: &mut Layout) {
        if layout.refreshing || self.stop.is_cancelled() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        layout.refreshing = true;
        layout.last_refresh = Some(Instant::now());
        let mut candidates: Vec<(String, u16)> = self.spec.seeds.clone();
        for addr in layout.slots.iter().flatten() {
            if let Some((host, port)) = split_addr(addr)
                && !candidates.iter().any(|(h, p)| h == host && *p == port)
            {
                candidates.push((host.to_owned(), port));
            }
        }
        let clients: Vec<(String, redis::Client)> = candidates
            .into_iter()
            .filter_map(|(host, port)| {
                let client = self.spec.node_client(&host, port, &self.tls).ok()?;
                Some((host, client))
            })
            .collect();
        let budget = self.connect_timeout;
        let secrets = self.secrets().to_vec();
        let stop = self.stop.clone();
        let shared = Arc::clone(&self.shared);
        let refresh = async move {
            let found = tokio::select! {
                () = stop.cancelled() => Err(NodeError::Connection(
                    "the lock manager was closed".to_owned().into(),
                )),
                found = lookup(clients, budget, secrets) => found,
            };
            shared.settle(found);
        };
        runtime.spawn(self.tasks.track_future(refresh));
    }
}

impl Shared {
    /// Records the outcome of a refresh and wakes the requests waiting for it.
    fn settle(&self, found: Result<Vec<Option<Arc<str>>>, NodeError>) {
        let mut layout = self.layout.lock().unwrap_or_else(|p| p.into_inner());
        match found {
            Ok(slots) => {
                layout.slots = slots;
                layout.error = None;
            }
            Err(error) => {
                tracing::debug!(%error, "cluster layout refresh failed");
                layout.error = Some(error);
            }
        }
        layout.refreshing = false;
        drop(layout);
        self.refreshed.notify_waiters();
    }
}

impl Cluster {
    /// The nodes connected to so far.
    pub(crate) fn nodes(&self) -> Vec<Arc<Node>> {
        let layout = self.shared.layout.lock().unwrap_or_else(|p| p.into_inner());
        layout.nodes.values().cloned().collect()
    }

    /// Stops the refresh task and every node's background work.
    pub(crate) fn stop(&self) {
        self.stop.cancel();
        self.tasks.close();
        for node in self.nodes() {
            node.stop();
        }
    }

    /// Stops everything and drops every node's connection.
    pub(crate) fn disconnect(&self) {
        self.stop();
        for node in self.nodes() {
            node.disconnect();
        }
    }

    /// Waits until the refresh task and every node's background tasks have ended.
    pub(crate) async fn stopped(&self) {
        self.tasks.wait().await;
        for node in self.nodes() {
            // Boxed: a node's `stopped` may itself wait for a cluster's.
            Box::pin(node.stopped()).await;
        }
    }

    /// Background tasks still running: the refresh, and every node's.
    pub(crate) fn background_tasks(&self) -> usize {
        self.nodes().iter().fold(self.tasks.len(), |n, node| {
            n.saturating_add(node.background_tasks())
        })
    }

    /// The node that serves `key` now, as far as the layout tells (for diagnostics).
    pub(crate) fn serving(&self, key: &[u8]) -> Option<Arc<str>> {
        let layout = self.shared.layout.lock().unwrap_or_else(|p| p.into_inner());
        layout
            .slots
            .get(usize::from(keys::slot(key)))
            .cloned()
            .flatten()
    }

    /// A redis-rs cluster connection for sharded subscriptions (`SSUBSCRIBE`), speaking RESP3,
    /// with every push (`smessage`, `ssubscribe`, `sunsubscribe`) sent to `pushes`; bounded
    /// by `connect_timeout`.
    pub(crate) async fn subscriber(
        &self,
        pushes: tokio::sync::mpsc::UnboundedSender<redis::PushInfo>,
    ) -> Result<redis::cluster_async::ClusterConnection, NodeError> {
        let seeds = self
            .spec
            .seeds
            .iter()
            .map(|(host, port)| {
                self.spec.node_info(host, *port).map(|info| {
                    let addr = self.tls.apply_to_addr(info.addr().clone());
                    info.set_addr(addr)
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| lookup_error(&e, self.secrets()))?;
        let builder = redis::cluster::ClusterClientBuilder::new(seeds)
            .use_protocol(redis::ProtocolVersion::RESP3)
            .push_sender(pushes)
            .connection_timeout(self.connect_timeout)
            .response_timeout(self.connect_timeout);
        let builder = match &self.spec.username {
            Some(user) => builder.username(user),
            None => builder,
        };
        let builder = match &self.spec.password {
            Some(pass) => builder.password(pass),
            None => builder,
        };
        #[cfg(feature = "tls")]
        let builder = match self.tls.certificates() {
            Some(certificates) if self.spec.tls => builder.certs(certificates),
            _ => builder,
        };
        let client = builder
            .build()
            .map_err(|e| lookup_error(&e, self.secrets()))?;
        match tokio::time::timeout(self.connect_timeout, client.get_async_connection()).await {
            Ok(Ok(connection)) => Ok(connection),
            Ok(Err(e)) => Err(lookup_error(&e, self.secrets())),
            Err(_) => Err(NodeError::Timeout(self.connect_timeout)),
        }
    }
}

/// The node address of a `MOVED`/`ASK` reply's text (`<slot> <host:port>`).
fn redirect_target(message: &str) -> Option<String> {
    let mut words = message.split_ascii_whitespace();
    let _slot = words.next()?;
    let addr = words.next()?;
    split_addr(addr).map(|(host, port)| show_host(host, port))
}

/// `host:port` (or `[v6]:port`) split in two.
fn split_addr(addr: &str) -> Option<(&str, u16)> {
    let (host, port) = addr.rsplit_once(':')?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let port = port.parse::<u16>().ok().filter(|p| *p > 0)?;
    (!host.is_empty()).then_some((host, port))
}

/// Whether a failure may mean that the cluster's layout changed.
fn changes_layout(error: &NodeError) -> bool {
    match error {
        NodeError::Refused(_)
        | NodeError::Connection(_)
        | NodeError::Timeout(_)
        | NodeError::NotMaster(_)
        | NodeError::ReadOnly(_) => true,
        NodeError::Server { code, .. } => code == "CLUSTERDOWN" || code == "TRYAGAIN",
        _ => false,
    }
}

/// Asks every candidate `CLUSTER SLOTS` at once; returns the layout most of them give (see
/// the module docs), or why none was learnt.
async fn lookup(
    candidates: Vec<(String, redis::Client)>,
    budget: Duration,
    secrets: Vec<String>,
) -> Result<Vec<Option<Arc<str>>>, NodeError> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(budget))
        .set_response_timeout(Some(budget));
    let asked = candidates.len();
    let mut asks: FuturesUnordered<_> = candidates
        .into_iter()
        .map(|(host, client)| {
            let config = config.clone();
            async move {
                let ask = async {
                    let mut con = client
                        .get_multiplexed_async_connection_with_config(&config)
                        .await?;
                    redis::cmd("CLUSTER")
                        .arg("SLOTS")
                        .query_async::<Value>(&mut con)
                        .await
                };
                match tokio::time::timeout(budget, ask).await {
                    Ok(Ok(reply)) => Ok(parse_slots(&reply, &host)),
                    Ok(Err(e)) => Err(Some(e)),
                    Err(_) => Err(None),
                }
            }
        })
        .collect();
    let majority = asked.checked_div(2).unwrap_or(0).saturating_add(1);
    let started = Instant::now();
    let patience = started
        .checked_add(budget.checked_div(2).unwrap_or_default())
        .unwrap_or(started);
    let deadline = started.checked_add(budget).unwrap_or(started);
    let mut answers: Vec<(Vec<Option<Arc<str>>>, usize)> = Vec::new();
    let mut answered = 0usize;
    let mut failure: Option<RedisError> = None;
    let mut timed_out = false;
    loop {
        let until = if answers.is_empty() {
            deadline
        } else {
            patience
        };
        let next = match tokio::time::timeout_at(until, asks.next()).await {
            Ok(Some(next)) => next,
            Ok(None) => break,
            Err(_) => {
                timed_out = answers.is_empty();
                break;
            }
        };
        match next {
            Ok(Some(layout)) => {
                answered = answered.saturating_add(1);
                match answers.iter_mut().find(|(l, _)| *l == layout) {
                    Some((_, n)) => *n = n.saturating_add(1),
                    None => answers.push((layout, 1)),
                }
            }
            // A node that is not in cluster mode, or answered something else.
            Ok(None) => answered = answered.saturating_add(1),
            Err(Some(e)) => {
                failure.get_or_insert(e);
            }
            Err(None) => {}
        }
        if answered >= majority {
            break;
        }
    }
    let best = answers
        .into_iter()
        .enumerate()
        .max_by_key(|(i, (_, n))| (*n, std::cmp::Reverse(*i)))
        .map(|(_, (layout, _))| layout);
    match best {
        Some(layout) => Ok(layout),
        None if answered > 0 => Err(NodeError::Cluster(
            "the nodes that answered serve no slot (not a cluster, or not set up yet)"
                .to_owned()
                .into(),
        )),
        None => Err(match failure {
            Some(e) => lookup_error(&e, &secrets),
            None if timed_out => NodeError::Cluster(
                format!("no seed node answered CLUSTER SLOTS within {budget:?}").into(),
            ),
            None => NodeError::Cluster("no seed node answered CLUSTER SLOTS".to_owned().into()),
        }),
    }
}

/// A failed layout lookup: credentials, permissions and certificates keep their kinds.
fn lookup_error(e: &RedisError, secrets: &[String]) -> NodeError {
    let text = scrub(&e.to_string(), secrets);
    if let Some(cause) = tls_cause(e) {
        return NodeError::Tls(scrub(&cause, secrets).into());
    }
    match e.code() {
        Some("NOAUTH" | "WRONGPASS") => return NodeError::Auth(text.into()),
        Some("NOPERM") => return NodeError::NoPermission(text.into()),
        _ => {}
    }
    if e.kind() == redis::ErrorKind::AuthenticationFailed {
        return NodeError::Auth(text.into());
    }
    if e.is_connection_refusal() {
        return NodeError::Cluster(format!("no seed node answered CLUSTER SLOTS: {text}").into());
    }
    NodeError::Cluster(format!("the layout could not be learnt: {text}").into())
}

/// The masters of a `CLUSTER SLOTS` reply, slot by slot; `None` when it is not one (or
/// serves no slot). A master with no address of its own (`""` or `?`) is the node asked.
fn parse_slots(reply: &Value, asked_host: &str) -> Option<Vec<Option<Arc<str>>>> {
    let Value::Array(ranges) = reply else {
        return None;
    };
    let mut slots: Vec<Option<Arc<str>>> = vec![None; usize::from(keys::SLOTS)];
    let mut served = false;
    for range in ranges {
        let Value::Array(fields) = range else {
            continue;
        };
        let (Some(Value::Int(start)), Some(Value::Int(end)), Some(Value::Array(master))) =
            (fields.first(), fields.get(1), fields.get(2))
        else {
            continue;
        };
        let host = match master.first() {
            Some(Value::BulkString(h)) => String::from_utf8_lossy(h).into_owned(),
            Some(Value::SimpleString(h)) => h.clone(),
            _ => continue,
        };
        let host = if host.is_empty() || host == "?" {
            asked_host.to_owned()
        } else {
            host
        };
        let Some(Value::Int(port)) = master.get(1) else {
            continue;
        };
        let Ok(port) = u16::try_from(*port) else {
            continue;
        };
        let addr: Arc<str> = Arc::from(show_host(&host, port));
        let (Ok(start), Ok(end)) = (usize::try_from(*start), usize::try_from(*end)) else {
            continue;
        };
        for slot in slots.iter_mut().take(end.saturating_add(1)).skip(start) {
            *slot = Some(Arc::clone(&addr));
            served = true;
        }
    }
    served.then_some(slots)
}
