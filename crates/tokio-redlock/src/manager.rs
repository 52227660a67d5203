//! [`LockManager`]: the public entry points. Thin: each delegates to a round of requests
//! ([`Round`]) and a pure decision ([`quorum`]).

use std::collections::HashMap;
use std::fmt;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::attempt::{self, AcquireOptions, Patience, Target};
use crate::config::{LockManagerBuilder, Settings};
use crate::error::{ConfigError, LockError, NodeError, NodeOutcome, NodeStatus, Operation};
use crate::guard::{AcquireRequest, LockHandle};
use crate::holder::{self, HolderInfo};
use crate::keys::{self, Keys, Printable};
use crate::lock::{Held, HolderToken, KeyState, Lock, LockState, MasterKey, MayHold};
use crate::notify::Notifier;
use crate::quorum::round::{Pending, Round};
use crate::quorum::{self, Verdict, Vote};
use crate::transport::node::{Call, CasReply, Node, Peek, Publish};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;

/// How many node timeouts `unlock` keeps resending to a master that fails transiently before
/// it reports the master (the release then goes on in the background).
const UNLOCK_TRIES: u32 = 3;

/// State shared by a manager, its clones and its background tasks.
pub(crate) struct Shared {
    pub(crate) settings: Settings,
    pub(crate) nodes: Vec<Arc<Node>>,
    /// Owner of every background task (cleanup releases, stragglers of decided rounds,
    /// guard watchdogs).
    pub(crate) tasks: TaskTracker,
    /// Cancelled by `close`: watchdogs release their locks and end, subscribers end, and
    /// waiters queued for their turn or sleeping between attempts end with `Closed`.
    pub(crate) shutdown: CancellationToken,
    /// Release notifications: subscriber connections and the waiters' registry.
    pub(crate) notifier: Arc<Notifier>,
    /// Owner of the subscriber tasks (long-lived: not counted as background tasks).
    listeners: TaskTracker,
    closed: AtomicBool,
    /// Identity of this manager (and its clones); every `Lock` it issues carries it.
    pub(crate) id: u64,
    /// The locks this manager holds, by id: `close` releases them.
    live: Mutex<HashMap<u64, Arc<Held>>>,
    /// The id of the next lock.
    next_lock: AtomicU64,
}

impl Shared {
    /// A new entry of the registry of held locks.
    pub(crate) fn register_lock(
        &self,
        keys: &Keys,
        holder_key: Option<&Arc<[u8]>>,
        token: &Arc<str>,
        ttl: Duration,
        may_hold: MayHold,
    ) -> Arc<Held> {
        let held = Arc::new(Held {
            id: self.next_lock.fetch_add(1, Ordering::Relaxed),
            keys: keys.clone(),
            holder_key: holder_key.cloned(),
            token: Arc::clone(token),
            released: AtomicBool::new(false),
            may_hold,
            ttl_ms: AtomicU64::new(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX)),
            keep_on_drop: AtomicBool::new(false),
            superseded: AtomicBool::new(false),
        });
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(held.id, Arc::clone(&held));
        held
    }

    /// Marks the live locks of this manager with `key` and `token` as superseded by a new
    /// acquisition with that caller-chosen token: dropping their handles no longer releases
    /// the keys, which the new lock holds now (an explicit `unlock` of any still does), and
    /// extending them is refused (a shorter TTL would cut the new lock's).
    pub(crate) fn supersede(&self, key: &[u8], token: &str) {
        for held in self.live.lock().unwrap_or_else(|p| p.into_inner()).values() {
            if held.keys.is_one(key) && &*held.token == token {
                held.superseded.store(true, Ordering::SeqCst);
            }
        }
    }

    /// Whether a live lock of this manager holds `key` with `token`.
    pub(crate) fn holds(&self, key: &[u8], token: &str) -> bool {
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .any(|h| h.keys.is_one(key) && &*h.token == token && !h.released.load(Ordering::SeqCst))
    }

    /// Removes a lock from the registry (released, or kept on purpose).
    pub(crate) fn forget_lock(&self, held: &Held) {
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&held.id);
    }

    /// Parks the release of a held lock on every master that may hold its key.
    pub(crate) fn release_held(&self, held: &Held) {
        let ttl = Duration::from_millis(held.ttl_ms.load(Ordering::Relaxed));
        let expires = self.key_expiry(ttl);
        for i in 0..self.nodes.len() {
            if held.may_hold.contains(i) {
                self.release_later(
                    i,
                    &held.keys,
                    held.holder_key.as_ref(),
                    &held.token,
                    Publish::Yes,
                    expires,
                );
            }
        }
    }

    /// Refuses a lock issued by another manager: its masters may differ, and extending or
    /// releasing on the wrong set could keep a stale deadline alive.
    pub(crate) fn check_owner(&self, lock: &Lock) -> Result<(), LockError> {
        if lock.manager == self.id {
            Ok(())
        } else {
            Err(LockError::InvalidArgument(
                "this lock was acquired through another LockManager: extend and unlock it with \
                 that manager (or a clone of it)"
                    .to_owned(),
            ))
        }
    }

    /// How long a read (`is_locked`, `inspect`) may wait in our own queue for a master.
    pub(crate) fn query_queue_until(&self) -> Instant {
        let now = Instant::now();
        now.checked_add(self.settings.connect_timeout)
            .unwrap_or(now)
    }

    pub(crate) fn check_open(&self) -> Result<(), LockError> {
        if self.closed.load(Ordering::Acquire) {
            Err(LockError::Closed)
        } else {
            Ok(())
        }
    }

    /// A compare-and-delete round on the masters for which `ask` is true, each request
    /// waiting for a slot at most until `queue_until`.
    pub(crate) fn release_round(
        &self,
        keys: &Keys,
        holder_key: Option<&Arc<[u8]>>,
        token: &Arc<str>,
        publish: Publish,
        queue_until: Instant,
        ask: impl Fn(usize) -> bool,
    ) -> Round<CasReply> {
        Round::start(&self.nodes, ask, cas_vote, queue_until, |node, call| {
            let (keys, holder_key, token) = (keys.clone(), holder_key.cloned(), Arc::clone(token));
            async move {
                node.release(&keys, holder_key.as_deref(), &token, publish, &call)
                    .await
            }
        })
    }

    /// Hands the release of `token` on master `i` to that master's release worker, which
    /// resends it until it is answered or the key has expired (by `expires`).
    pub(crate) fn release_later(
        &self,
        i: usize,
        keys: &Keys,
        holder_key: Option<&Arc<[u8]>>,
        token: &Arc<str>,
        publish: Publish,
        expires: Instant,
    ) {
        if let Some(node) = self.nodes.get(i) {
            node.release_later(
                keys.clone(),
                holder_key.cloned(),
                Arc::clone(token),
                publish,
                expires,
            );
        }
    }

    /// Makes sure the releases of a decided release round land: a master whose release
    /// failed, or was never sent, gets it parked on its release worker; one whose release is
    /// still on the wire is awaited in the background, and parked only if it fails.
    // What to release (key, record key, token, channel, expiry) travels as separate parts,
    // as in every release path.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn release_what_failed(
        self: &Arc<Self>,
        round: Round<CasReply>,
        keys: &Keys,
        holder_key: Option<&Arc<[u8]>>,
        token: &Arc<str>,
        publish: Publish,
        expires: Instant,
        may_hold: impl Fn(usize) -> bool + Send + 'static,
    ) {
        for (i, reply) in round.replies() {
            if reply
                .as_ref()
                .is_err_and(crate::transport::node::worth_resending)
                && may_hold(i)
            {
                self.release_later(i, keys, holder_key, token, publish, expires);
            }
        }
        let unanswered = round.unanswered();
        let mut pending = round.into_pending();
        for i in unanswered {
            if !pending.iter().any(|p| p.index() == i) && may_hold(i) {
                self.release_later(i, keys, holder_key, token, publish, expires);
            }
        }
        if pending.is_empty() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let shared = Arc::clone(self);
        let (keys, holder_key, token) = (keys.clone(), holder_key.cloned(), Arc::clone(token));
        runtime.spawn(self.tasks.track_future(async move {
            while let Some((i, reply)) = pending.next().await {
                if reply.is_err_and(|e| crate::transport::node::worth_resending(&e)) && may_hold(i)
                {
                    shared.release_later(i, &keys, holder_key.as_ref(), &token, publish, expires);
                }
            }
        }));
    }

    /// The latest moment a key set (or extended) with `ttl` before now can still exist on a
    /// master, allowing for the masters' clock drift.
    pub(crate) fn key_expiry(&self, ttl: Duration) -> Instant {
        let drift = quorum::drift(ttl, self.settings.drift_factor);
        let now = Instant::now();
        now.checked_add(ttl.saturating_add(drift)).unwrap_or(now)
    }

    /// Releases `token` on each master of a still-running acquire round right after that
    /// master's acquire reply comes back, when `what` names keys to release for the reply.
    ///
    /// Sending the release at once instead could overtake an acquire that is still on its
    /// way (re-sent as `EVAL` after `NOSCRIPT`), and its late `SET` would then hold the key
    /// for the whole TTL. Requests never sent are not in `pending` (see [`Round::into_pending`]).
    // What to release (record key, token, channel, expiry, which keys) travels as separate
    // parts, as in every release path.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn release_after_replies<T: Send + 'static>(
        self: &Arc<Self>,
        mut pending: FuturesUnordered<Pending<T>>,
        holder_key: Option<&Arc<[u8]>>,
        token: &Arc<str>,
        publish: Publish,
        expires: Instant,
        what: impl Fn(usize, &Result<T, NodeError>) -> Option<Keys> + Send + 'static,
    ) {
        if pending.is_empty() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let shared = Arc::clone(self);
        let (holder_key, token) = (holder_key.cloned(), Arc::clone(token));
        let sent: Vec<(usize, Arc<AtomicBool>)> =
            pending.iter().map(|p| (p.index(), p.sent_flag())).collect();
        runtime.spawn(self.tasks.track_future(async move {
            while let Some((i, reply)) = pending.next().await {
                // A request that failed before it was sent set nothing.
                let was_sent = sent
                    .iter()
                    .any(|(j, flag)| *j == i && flag.load(Ordering::Acquire));
                if (reply.is_ok() || was_sent)
                    && let Some(keys) = what(i, &reply)
                {
                    shared.release_later(i, &keys, holder_key.as_ref(), &token, publish, expires);
                }
            }
        }));
    }
}

impl Drop for Shared {
    /// The last handle is gone: subscribers, failover watches and connectors end; releases
    /// still parked get one last try on a live connection.
    fn drop(&mut self) {
        self.shutdown.cancel();
        for node in &self.nodes {
            node.stop();
        }
    }
}

/// The release of an `unlock` whose future may be dropped mid-round: until disarmed, a drop
/// parks the release on every master that may hold the key.
struct Handover<'a> {
    shared: &'a Arc<Shared>,
    held: Option<Arc<Held>>,
}

impl Drop for Handover<'_> {
    fn drop(&mut self) {
        if let Some(held) = self.held.take() {
            self.shared.release_held(&held);
        }
    }
}

fn cas_vote(reply: &Result<CasReply, NodeError>) -> Vote {
    match reply {
        Ok(CasReply::Done) => Vote::Yes,
        Ok(_) => Vote::No,
        Err(_) => Vote::Failed,
    }
}

/// A Redlock lock manager over N independent Redis masters.
///
/// Cheap to clone (all clones share one connection per master and one set of background
/// tasks). Build it with [`LockManager::builder`].
///
/// Algorithm: the Redlock spec (<https://redis.io/docs/latest/develop/clients/patterns/distributed-locks/>),
/// with every request sent to all masters in parallel and decided as soon as a quorum
/// (`N/2 + 1`) is reached or has become impossible; see the crate docs for what it assumes.
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// use tokio_redlock::LockManager;
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let manager = LockManager::builder()
///     .servers(["redis://127.0.0.1:6379", "redis://127.0.0.1:6380", "redis://127.0.0.1:6381"])
///     .build()?;
/// let mut lock = manager.lock("orders:42").ttl(Duration::from_secs(30)).await?;
/// // ... work that must not run twice at once, finished before lock.deadline() ...
/// manager.unlock(&mut lock).await?;
/// manager.close().await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct LockManager {
    shared: Arc<Shared>,
}

impl fmt::Debug for LockManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let masters: Vec<&str> = self.masters().collect();
        f.debug_struct("LockManager")
            .field("masters", &masters)
            .field("settings", &self.shared.settings)
            .finish()
    }
}

impl LockManager {
    /// A builder with every setting at its default; add servers and call `build()`.
    pub fn builder() -> LockManagerBuilder {
        LockManagerBuilder::default()
    }

    pub(crate) fn from_parts(settings: Settings, nodes: Vec<Arc<Node>>) -> Self {
        crate::metrics::describe();
        let shutdown = CancellationToken::new();
        let listeners = TaskTracker::new();
        let notifier = Arc::new(Notifier::new(
            nodes.clone(),
            listeners.clone(),
            shutdown.clone(),
            settings.connect_timeout,
        ));
        Self {
            shared: Arc::new(Shared {
                settings,
                nodes,
                tasks: TaskTracker::new(),
                shutdown,
                notifier,
                listeners,
                closed: AtomicBool::new(false),
                live: Mutex::new(HashMap::new()),
                next_lock: AtomicU64::new(0),
                id: {
                    static NEXT: std::sync::atomic::AtomicU64 =
                        std::sync::atomic::AtomicU64::new(1);
                    NEXT.fetch_add(1, Ordering::Relaxed)
                },
            }),
        }
    }

    /// The masters' addresses, passwords redacted, in configuration order.
    pub fn masters(&self) -> impl Iterator<Item = &str> {
        self.shared.nodes.iter().map(|n| &**n.address())
    }

    /// Masters needed for a quorum: `N/2 + 1`.
    pub fn quorum(&self) -> usize {
        quorum::quorum(self.shared.nodes.len())
    }

    /// The default TTL of new locks.
    pub fn ttl(&self) -> Duration {
        self.shared.settings.ttl
    }

    /// Background work still running: cleanup releases of dropped or failed acquisitions
    /// and requests of decided rounds still awaiting a slow master. Each ends within its
    /// masters' timeouts. Releases waiting for a master that is down are not counted here
    /// (they are resent when it comes back, until their keys expire): see
    /// [`pending_master_work`](Self::pending_master_work). Useful to check that nothing is
    /// left running.
    pub fn background_tasks(&self) -> usize {
        self.shared
            .nodes
            .iter()
            .map(|n| n.release_work())
            .fold(self.shared.tasks.len(), usize::saturating_add)
    }

    /// Everything pending on the masters: the manager's background tasks, every release
    /// parked for resending (also those waiting for a master that is down), and each
    /// master's own tasks (a connector while it is being reconnected, a release worker).
    /// Bounded by a constant per master whatever the request rate: a dead or silent master
    /// accumulates nothing but its parked releases (at most 4096, each until its key
    /// expires).
    pub fn pending_master_work(&self) -> usize {
        self.shared
            .nodes
            .iter()
            .map(|n| n.parked_releases().saturating_add(n.background_tasks()))
            .fold(self.shared.tasks.len(), usize::saturating_add)
    }

    /// Resources that have waiters subscribed to their release notifications right now;
    /// 0 once every waiting acquisition has ended (nothing leaks).
    pub fn subscribed_resources(&self) -> usize {
        self.shared.notifier.channels()
    }

    /// The state shared with background tasks.
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The tracker that owns the manager's background tasks.
    pub(crate) fn tasks(&self) -> &TaskTracker {
        &self.shared.tasks
    }

    /// Cancelled when the manager is closed.
    pub(crate) fn shutdown_token(&self) -> CancellationToken {
        self.shared.shutdown.clone()
    }

    /// Starts acquiring `resource` as a [`LockGuard`](crate::LockGuard): a lock with a watchdog that can extend
    /// it ([`AcquireRequest::auto_extend`]) and that reports its loss ([`LockGuard::lost`](crate::LockGuard::lost)).
    /// Settings default to the manager's; `.await` the request.
    ///
    /// # Errors
    ///
    /// As [`lock`](Self::lock).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future at any point leaves no watchdog and no key behind for longer than
    /// one cleanup round trip: the watchdog starts only together with the returned guard.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # async fn demo(manager: tokio_redlock::LockManager) -> Result<(), tokio_redlock::LockError> {
    /// let guard = manager
    ///     .acquire("orders:42")
    ///     .ttl(Duration::from_secs(10))
    ///     .auto_extend() // every 10 s / 3
    ///     .await?;
    /// // ... work, checking guard.is_valid() or select!-ing on guard.lost() ...
    /// guard.release().await?;
    /// # Ok(()) }
    /// ```
    pub fn acquire(&self, resource: impl AsRef<[u8]>) -> AcquireRequest<'_> {
        AcquireRequest::new(
            self,
            Target::one(resource.as_ref().into()),
            AcquireOptions {
                ttl: self.shared.settings.ttl,
                patience: Patience::Retries(self.shared.settings.retry_count),
                holder: None,
                token: None,
                retry: None,
            },
        )
    }

    /// Runs `work` under the lock on `resource`: acquires it with auto-extension, runs the
    /// closure with a [`LockHandle`], releases the lock, and returns the closure's output.
    ///
    /// If the lock is lost while the closure runs, the closure's future is **dropped at that
    /// moment** (at its current `.await`) and [`LockError::Lost`] is returned: work that must
    /// not run without the lock stops before anyone else can acquire it. Work that must not be
    /// interrupted mid-step should check [`LockHandle::is_valid`] between steps instead, or
    /// use [`acquire`](Self::acquire).
    ///
    /// A release that fails after the closure finished (the lock was held throughout) is
    /// logged, and the closure's output is still returned.
    ///
    /// # Errors
    ///
    /// As [`lock`](Self::lock) for the acquisition; [`LockError::Lost`] when the lock was lost
    /// while the closure ran.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future drops the closure's future and releases the lock in the background.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(manager: tokio_redlock::LockManager) -> Result<(), tokio_redlock::LockError> {
    /// let rows = manager
    ///     .with_lock("reports:daily", |lock| async move {
    ///         // ... build the report; lock.is_valid() tells whether it is still held ...
    ///         42
    ///     })
    ///     .await?;
    /// assert_eq!(rows, 42);
    /// # Ok(()) }
    /// ```
    pub async fn with_lock<T, F, Fut>(
        &self,
        resource: impl AsRef<[u8]>,
        work: F,
    ) -> Result<T, LockError>
    where
        F: FnOnce(LockHandle) -> Fut,
        Fut: Future<Output = T>,
    {
        let guard = self.acquire(resource).auto_extend().await?;
        let handle = guard.handle();
        let output = tokio::select! {
            biased;
            () = guard.lost() => None,
            output = work(handle) => Some(output),
        };
        let resource = Arc::from(guard.resource());
        match output {
            Some(output) => {
                if let Err(e) = guard.release().await {
                    tracing::warn!(resource = %Printable(&resource), error = %e, "release after with_lock");
                }
                Ok(output)
            }
            None => {
                drop(guard);
                Err(LockError::Lost { resource })
            }
        }
    }

    /// Starts acquiring `resource` with the manager's TTL and retry settings; `.await` it, or
    /// adjust it first with [`LockRequest::ttl`] and [`LockRequest::retry_count`].
    ///
    /// The resource is any bytes (`&str`, `String`, `&[u8]`, `Vec<u8>`); its key is the
    /// configured prefix followed by those bytes.
    ///
    /// # Errors
    ///
    /// - [`LockError::Conflict`] when the resource stayed held elsewhere through every attempt;
    /// - [`LockError::NoQuorum`] at once when too few masters are reachable (not retried);
    /// - [`LockError::ValidityExhausted`] when every quorum came too late for the TTL;
    /// - [`LockError::NotALock`] when a non-lock value sits under the key (not retried);
    /// - [`LockError::InvalidArgument`] for a TTL below 1 ms or above [`MAX_TTL`](crate::MAX_TTL),
    ///   or an empty resource name, before any request;
    /// - [`LockError::ReservedKey`] for a resource whose key is another resource's helper
    ///   key (see [`check_resource`](crate::check_resource)), before any request;
    /// - [`LockError::Closed`] after [`close`](Self::close).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future at any point leaves no key behind for longer than one cleanup
    /// round trip: if requests have left, a release of that attempt's token is sent to every
    /// master in a background task ([`background_tasks`](Self::background_tasks) counts it).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # async fn demo(manager: tokio_redlock::LockManager) -> Result<(), tokio_redlock::LockError> {
    /// match manager.lock("report:daily").ttl(Duration::from_secs(60)).await {
    ///     Ok(mut lock) => {
    ///         // ... run the report ...
    ///         manager.unlock(&mut lock).await?;
    ///     }
    ///     Err(e) if e.is_conflict() => println!("another host runs it"),
    ///     Err(e) => return Err(e),
    /// }
    /// # Ok(()) }
    /// ```
    pub fn lock(&self, resource: impl AsRef<[u8]>) -> LockRequest<'_> {
        LockRequest::new(self, Target::one(resource.as_ref().into()))
    }

    /// One attempt to acquire `resource`, no retry: `lock(resource).retry_count(0)`.
    ///
    /// # Errors
    ///
    /// As [`lock`](Self::lock).
    ///
    /// # Cancel safety
    ///
    /// As [`lock`](Self::lock): a dropped future leaves no key behind.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(manager: tokio_redlock::LockManager) -> Result<(), tokio_redlock::LockError> {
    /// if let Ok(mut lock) = manager.try_lock("cron:cleanup").await {
    ///     manager.unlock(&mut lock).await?;
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn try_lock(&self, resource: impl AsRef<[u8]>) -> Result<Lock, LockError> {
        self.lock(resource).retry_count(0).await
    }

    /// Releases `lock` on every master (compare-and-delete: only where the key still holds
    /// our token). Afterwards the handle reports itself invalid, whatever the outcome. Calling
    /// `unlock` again is harmless: it retries the release (useful after `NoQuorum`), and
    /// returns `NotHeld` when the keys are already gone.
    ///
    /// Returns as soon as a quorum has answered either way; requests to slower masters finish
    /// in the background. A master that fails transiently (timeout, lost connection) is asked
    /// again for up to three node timeouts before it counts as failed; a release that still
    /// did not land is then resent in the background until it does or the key has expired.
    ///
    /// # Errors
    ///
    /// - [`LockError::NotHeld`] when the answers show the lock was no longer ours on a
    ///   majority (expired, or taken by another holder) — the hold had lapsed; also for a
    ///   second `unlock` of a lock already released;
    /// - [`LockError::NoQuorum`] when too few masters answered to know, with per-master causes;
    /// - [`LockError::Closed`] after [`close`](Self::close) (nothing is sent);
    /// - [`LockError::InvalidArgument`] for a lock acquired through another manager.
    ///
    /// In every case each reachable master that still had our token has deleted it.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future still releases the lock: the releases not confirmed yet are handed
    /// to the masters' release workers, which resend them until they land or the keys expire.
    /// The handle keeps its deadline; a second `unlock` sends the release again (harmless)
    /// and never reports "not owner" while a key still holds its token.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(manager: tokio_redlock::LockManager) -> Result<(), tokio_redlock::LockError> {
    /// let mut lock = manager.lock("r").await?;
    /// match manager.unlock(&mut lock).await {
    ///     Ok(()) => {}
    ///     Err(e) if e.is_not_held() => eprintln!("the lock had expired before we released it"),
    ///     Err(e) => return Err(e),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn unlock(&self, lock: &mut Lock) -> Result<(), LockError> {
        self.shared.check_open()?;
        self.shared.check_owner(lock)?;
        self.release_lock(lock).await
    }

    /// `unlock` without the closed check (watchdogs release after `close`).
    pub(crate) async fn release_lock(&self, lock: &mut Lock) -> Result<(), LockError> {
        let shared = &self.shared;
        let started = Instant::now();
        // Acquire requests of this lock still in flight release their key when they land.
        lock.held.released.store(true, Ordering::SeqCst);
        shared.forget_lock(&lock.held);
        // From here the handle no longer releases on drop: if this future is dropped before
        // the round is handed over below, the release goes to the masters' release workers.
        let mut handover = Handover {
            shared,
            held: Some(Arc::clone(&lock.held)),
        };
        // Each master is asked until it answers, resending after transient failures for up
        // to three node timeouts; a master not confirmed by then keeps its release parked
        // in the background until it lands or the key has expired.
        let give_up_at = started
            .checked_add(shared.settings.node_timeout.saturating_mul(UNLOCK_TRIES))
            .unwrap_or(started);
        let mut round = Round::start(
            &shared.nodes,
            |_| true,
            cas_vote,
            give_up_at,
            |node, call| {
                let (keys, token) = (lock.keys.clone(), Arc::clone(&lock.token));
                let holder_key = lock.holder.as_ref().map(|(k, _)| Arc::clone(k));
                async move {
                    node.release_until(&keys, holder_key.as_deref(), &token, Publish::Yes, &call)
                        .await
                }
            },
        );
        let verdict = round.decide().await;
        let tally = *round.tally();
        let outcomes = round.outcomes(&shared.nodes, |r| r.status());
        let expires = shared.key_expiry(lock.ttl);
        // A master that never saw our token (its acquire request never left, or it refused)
        // needs no release resent: there is nothing to delete there.
        let held = Arc::clone(&lock.held);
        shared.release_what_failed(
            round,
            &lock.keys,
            lock.holder.as_ref().map(|(k, _)| k),
            &lock.token,
            Publish::Yes,
            expires,
            move |i| held.may_hold.contains(i),
        );
        handover.held = None;
        lock.invalidate(started);
        tracing::debug!(
            primitive = lock.primitive.as_str(),
            resource = %Printable(&lock.resource),
            resources = lock.keys.len(),
            token = %keys::token_prefix(lock.token.as_bytes()),
            released = tally.yes(),
            ?verdict,
            elapsed_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            "release round"
        );
        let result = self.cas_result(
            Operation::Release,
            verdict,
            &tally,
            &lock.resource,
            outcomes,
        );
        crate::metrics::release(
            lock.primitive,
            result.is_ok(),
            Some(lock.acquired_at.elapsed()).filter(|_| result.is_ok()),
        );
        result
    }

    /// Resets the lock's TTL to `ttl` from now on every master where the key still holds our
    /// token (compare-and-`PEXPIRE`; a key that expired is never re-created). On success the
    /// deadline moves to `start + ttl − drift`, `start` taken before the requests left.
    /// One round, no retry.
    ///
    /// # Errors
    ///
    /// - [`LockError::NotHeld`] when a majority shows the lock is not ours any more; the
    ///   handle then reports itself invalid;
    /// - [`LockError::NoQuorum`] when too few masters answered; the deadline stays, or becomes
    ///   the new TTL's when that is earlier;
    /// - [`LockError::ValidityExhausted`] when a quorum extended but too late for the TTL
    ///   (the masters did apply it); the deadline stays, or becomes the new TTL's when earlier;
    /// - [`LockError::InvalidArgument`] for a TTL below 1 ms or above [`MAX_TTL`](crate::MAX_TTL),
    ///   or a lock acquired through another manager;
    /// - [`LockError::Closed`] after [`close`](Self::close).
    ///
    /// Nothing is deleted on failure. A failed or cancelled extension to a TTL *shorter* than
    /// the lock's remaining validity still shortens the deadline: the masters may have applied
    /// it.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future leaves the old deadline, or the new TTL's when that is earlier (the
    /// deadline is lowered before the first request leaves). Some masters may have
    /// extended their key; it expires by the new TTL, and `unlock` still deletes it.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # async fn demo(manager: tokio_redlock::LockManager) -> Result<(), tokio_redlock::LockError> {
    /// let mut lock = manager.lock("migration").await?;
    /// manager.extend(&mut lock, Duration::from_secs(30)).await?;
    /// assert!(lock.validity() > Duration::from_secs(29));
    /// # manager.unlock(&mut lock).await?;
    /// # Ok(()) }
    /// ```
    pub async fn extend(&self, lock: &mut Lock, ttl: Duration) -> Result<(), LockError> {
        ConfigError::check_ttl(ttl).map_err(|e| LockError::InvalidArgument(e.to_string()))?;
        self.shared.check_open()?;
        self.shared.check_owner(lock)?;
        self.extend_lock(lock, ttl).await
    }

    /// `extend` of a validated TTL, without the closed check.
    pub(crate) async fn extend_lock(
        &self,
        lock: &mut Lock,
        ttl: Duration,
    ) -> Result<(), LockError> {
        let result = match superseded(lock) {
            Some(e) => Err(e),
            None => self.extend_unrecorded(lock, ttl).await,
        };
        crate::metrics::extension(lock.primitive, result.is_ok());
        result
    }

    /// [`extend_lock`](Self::extend_lock) without the metrics.
    async fn extend_unrecorded(&self, lock: &mut Lock, ttl: Duration) -> Result<(), LockError> {
        let shared = &self.shared;
        let ttl = whole_millis(ttl);
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        let start = Instant::now();
        // Once a request leaves, a master may apply the new TTL whatever we later hear: the
        // deadline must not outlive it, even if this round fails or is cancelled (a shorter
        // TTL than the current one shortens the lock now).
        let lease_end = quorum::lease(ttl, shared.settings.drift_factor)
            .and_then(|lease| start.checked_add(lease))
            .unwrap_or(start);
        lock.deadline = lock.deadline.min(lease_end);
        // A request still queued at the old deadline cannot save the lock any more.
        let queue_until = lock.deadline.max(start);
        let mut round = Round::start(
            &shared.nodes,
            |_| true,
            cas_vote,
            queue_until,
            |node, call| {
                let (keys, token) = (lock.keys.clone(), Arc::clone(&lock.token));
                let holder = lock.holder.clone();
                async move {
                    let holder = holder.as_ref().map(|(k, r)| (&**k, &**r));
                    node.extend(&keys, holder, &token, ttl_ms, &call).await
                }
            },
        );
        let verdict = round.decide().await;
        let elapsed = start.elapsed();
        let tally = *round.tally();
        let outcomes = round.outcomes(&shared.nodes, |r| r.status());
        round.finish_in_background(&shared.tasks);
        tracing::debug!(
            primitive = lock.primitive.as_str(),
            resource = %Printable(&lock.resource),
            resources = lock.keys.len(),
            token = %keys::token_prefix(lock.token.as_bytes()),
            extended = tally.yes(),
            ?verdict,
            elapsed_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            "extend round"
        );
        if verdict == Verdict::Won {
            let deadline = quorum::lease(ttl, shared.settings.drift_factor)
                .and_then(|lease| start.checked_add(lease));
            return match deadline {
                Some(deadline) if Instant::now() < deadline => {
                    lock.deadline = deadline;
                    lock.ttl = ttl;
                    lock.held.ttl_ms.store(ttl_ms, Ordering::Relaxed);
                    lock.outcomes = outcomes;
                    Ok(())
                }
                _ => Err(LockError::ValidityExhausted {
                    operation: Operation::Extend,
                    resource: Arc::clone(&lock.resource),
                    ttl,
                    elapsed,
                    attempts: 1,
                }),
            };
        }
        let result = self.cas_result(Operation::Extend, verdict, &tally, &lock.resource, outcomes);
        if matches!(result, Err(LockError::NotHeld { .. })) {
            lock.invalidate(start);
        }
        result
    }

    /// The verdict of a compare-and-act round (release, extend) as a result.
    fn cas_result(
        &self,
        operation: Operation,
        verdict: Verdict,
        tally: &quorum::Tally,
        resource: &Arc<[u8]>,
        outcomes: Vec<NodeOutcome>,
    ) -> Result<(), LockError> {
        if verdict == Verdict::Won {
            Ok(())
        } else if tally.refused_by_majority() {
            Err(LockError::NotHeld {
                operation,
                resource: Arc::clone(resource),
                outcomes,
            })
        } else {
            Err(self.no_quorum(operation, resource, outcomes))
        }
    }

    fn no_quorum(
        &self,
        operation: Operation,
        resource: &Arc<[u8]>,
        outcomes: Vec<NodeOutcome>,
    ) -> LockError {
        LockError::NoQuorum {
            operation,
            resource: Arc::clone(resource),
            quorum: self.quorum(),
            masters: self.shared.nodes.len(),
            outcomes,
        }
    }

    /// Who holds `resource`, in the view of a quorum of masters: [`LockState::Free`],
    /// [`LockState::Held`] (with the holder's token and remaining time — compare it with your
    /// own lock with [`LockState::is_held_by`]), or [`LockState::Unsettled`]. Read-only: it
    /// answers while the masters' writes are paused, and changes nothing.
    ///
    /// The remaining time is a safe lower bound, when the call returns, on how long the
    /// quorum's keys still exist (nobody else can acquire the resource before): the quorum's
    /// `PTTL` less the time since the requests left and less the drift allowance (`PTTL ×
    /// drift factor + 2 ms`), and zero once the keys may have expired. It is not the
    /// holder's validity, which its own [`Lock::deadline`] tells (shorter by the drift of
    /// its whole TTL).
    ///
    /// Returns as soon as the answers of a quorum settle it.
    ///
    /// # Errors
    ///
    /// [`LockError::NoQuorum`] when fewer than a quorum of masters answered;
    /// [`LockError::InvalidArgument`] for an empty resource name, before any request;
    /// [`LockError::Closed`] after [`close`](Self::close).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(manager: tokio_redlock::LockManager) -> Result<(), tokio_redlock::LockError> {
    /// let lock = manager.lock("r").await?;
    /// let state = manager.is_locked("r").await?;
    /// assert!(state.is_held_by(&lock));
    /// println!("held for {:?} more", state.remaining());
    /// # Ok(()) }
    /// ```
    pub async fn is_locked(&self, resource: impl AsRef<[u8]>) -> Result<LockState, LockError> {
        self.shared.check_open()?;
        keys::check_not_empty(resource.as_ref())?;
        let shared = &self.shared;
        let resource: Arc<[u8]> = resource.as_ref().into();
        let key = keys::lock_key(&shared.settings.key_prefix, &resource);
        // Remaining times count from before the first request left.
        let start = Instant::now();
        let mut round = Round::start(
            &shared.nodes,
            |_| true,
            |r| if r.is_ok() { Vote::Yes } else { Vote::Failed },
            shared.query_queue_until(),
            |node, call| {
                let key = Arc::clone(&key);
                async move { node.peek(&key, &call).await }
            },
        );
        let q = self.quorum();
        let state = loop {
            let done = round.next_reply().await.is_none();
            if let Some(state) = settled_state(&round, q) {
                break Some(state);
            }
            if done {
                break None;
            }
        };
        let outcomes = round.outcomes(&shared.nodes, peek_status);
        let answered = round.replies().filter(|(_, r)| r.is_ok()).count();
        round.finish_in_background(&shared.tasks);
        let drift_factor = shared.settings.drift_factor;
        match state {
            Some(LockState::Held { holder, remaining }) => Ok(LockState::Held {
                holder,
                remaining: remaining
                    .map(|r| quorum::remaining_bound(r, start.elapsed(), drift_factor)),
            }),
            Some(LockState::Shared { readers, remaining }) => Ok(LockState::Shared {
                readers,
                remaining: remaining
                    .map(|r| quorum::remaining_bound(r, start.elapsed(), drift_factor)),
            }),
            Some(state) => Ok(state),
            None if answered >= q => Ok(LockState::Unsettled { outcomes }),
            None => Err(self.no_quorum(Operation::Query, &resource, outcomes)),
        }
    }

    /// What each master holds under `resource`'s key, in the order of
    /// [`masters`](Self::masters): for diagnostics (`redlock status`, a report after a lost
    /// lock). [`is_locked`](Self::is_locked) is the quorum's view; this is every master's,
    /// and it waits for all of them (each bounded by the node timeout, or the connect
    /// timeout while connecting). Read-only: `PTTL` and `GET` in one `MULTI`/`EXEC`, which
    /// answers while writes are paused; where the key is held, a second `GET` reads the
    /// holder record of an acquisition that stored one
    /// ([`LockRequest::holder_info`]): [`MasterKey::holder_info`] carries it when the record
    /// names the token the key holds there (a stale record is never shown), and a third read
    /// tells whether a writer waits for it ([`MasterKey::writer_waiting`]). Readers show as
    /// [`KeyState::Shared`] with their count. A semaphore's permits live beside its name's
    /// key: [`inspect_permits`](Self::inspect_permits) reads them.
    ///
    /// # Errors
    ///
    /// [`LockError::Closed`] after [`close`](Self::close);
    /// [`LockError::InvalidArgument`] for an empty resource name, before any request. A
    /// master's failure is its [`KeyState::Failed`], not an error of the call.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(manager: tokio_redlock::LockManager) -> Result<(), tokio_redlock::LockError> {
    /// use tokio_redlock::KeyState;
    /// for m in manager.inspect("orders:42").await? {
    ///     match m.state {
    ///         KeyState::Held { remaining, .. } => println!("{}: held, {remaining:?} left", m.master),
    ///         KeyState::Absent => println!("{}: free", m.master),
    ///         other => println!("{}: {other:?}", m.master),
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn inspect(&self, resource: impl AsRef<[u8]>) -> Result<Vec<MasterKey>, LockError> {
        self.shared.check_open()?;
        keys::check_not_empty(resource.as_ref())?;
        let key = keys::lock_key(&self.shared.settings.key_prefix, resource.as_ref());
        let call = Call::until(self.shared.query_queue_until());
        let start = Instant::now();
        let holder_key = keys::holder_key(&key);
        let intent_key = keys::intent_key(&key);
        let reads = self.shared.nodes.iter().map(|node| {
            let (key, holder_key, intent_key, call) = (
                Arc::clone(&key),
                Arc::clone(&holder_key),
                Arc::clone(&intent_key),
                call.clone(),
            );
            async move {
                let mut holder_info = None;
                let state = match node.peek(&key, &call).await {
                    Ok(Peek::Absent) => KeyState::Absent,
                    Ok(Peek::Value { value, remaining }) => {
                        // The record is shown only while the key holds the token it names.
                        // Not readable (an ACL without access to it): no record.
                        // One byte more than a record may hold, so a longer value is
                        // refused as one (a huge foreign value is never read whole).
                        let most = holder::MAX_RECORD.saturating_add(1);
                        if let Ok(Some(record)) = node.get_prefix(&holder_key, most, &call).await
                            && let Some((token, info)) = holder::decode(&record)
                            && token == value
                        {
                            holder_info = Some(info);
                        }
                        KeyState::Held {
                            holder: HolderToken(value),
                            remaining,
                        }
                    }
                    Ok(Peek::NotALock) => KeyState::NotALock,
                    Ok(Peek::Shared { readers, remaining }) => {
                        KeyState::Shared { readers, remaining }
                    }
                    Err(e) => KeyState::Failed(e),
                };
                // A waiting writer's intent matters only while someone holds the key.
                let writer_waiting =
                    matches!(state, KeyState::Held { .. } | KeyState::Shared { .. })
                        && matches!(node.peek(&intent_key, &call).await, Ok(Peek::Value { .. }));
                MasterKey {
                    master: Arc::clone(node.address()),
                    node: node.serving(&key),
                    state,
                    holder_info,
                    writer_waiting,
                }
            }
        });
        let mut states = futures_util::future::join_all(reads).await;
        // Every remaining time as a safe lower bound now (see `is_locked`).
        let (elapsed, drift_factor) = (start.elapsed(), self.shared.settings.drift_factor);
        for state in &mut states {
            if let KeyState::Held {
                remaining: Some(r), ..
            }
            | KeyState::Shared {
                remaining: Some(r), ..
            } = &mut state.state
            {
                *r = quorum::remaining_bound(*r, elapsed, drift_factor);
            }
        }
        Ok(states)
    }

    /// Stops the manager: new operations fail with [`LockError::Closed`], the locks of live
    /// [`LockGuard`](crate::LockGuard)s are released and their holders told they are lost, background cleanup
    /// releases are awaited (each bounded by the masters' timeouts), and connections are
    /// dropped. Plain [`Lock`]s still held are released as well (their handles then report
    /// themselves released: `unlock` answers [`LockError::Closed`]); a lock given up with
    /// [`Lock::keep_until_expiry`] is left to its TTL.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future stops waiting for the background tasks; they still run to their
    /// end, and the manager stays closed.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(manager: tokio_redlock::LockManager) {
    /// manager.close().await;
    /// assert!(manager.try_lock("r").await.unwrap_err().is_unavailable());
    /// # }
    /// ```
    pub async fn close(&self) {
        self.shared.closed.store(true, Ordering::Release);
        self.shared.shutdown.cancel();
        self.shared.tasks.close();
        self.shared.tasks.wait().await;
        // Plain locks still held are released too (guards were released by their
        // watchdogs above).
        let live: Vec<Arc<Held>> = self
            .shared
            .live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .map(|(_, held)| held)
            .collect();
        for held in live {
            if !held.released.swap(true, Ordering::SeqCst) {
                self.shared.release_held(&held);
            }
        }
        // Releases still parked get their chance while the connections are up, bounded: a
        // master that cannot be reached keeps its keys until their TTL ends.
        let flush_until = Instant::now()
            .checked_add(self.shared.settings.node_timeout.saturating_mul(2))
            .unwrap_or_else(Instant::now);
        for node in &self.shared.nodes {
            node.flush(flush_until).await;
        }
        self.shared.listeners.close();
        self.shared.listeners.wait().await;
        for node in &self.shared.nodes {
            node.disconnect();
        }
        for node in &self.shared.nodes {
            node.stopped().await;
        }
    }
}

/// The refusal to extend a handle superseded by a newer lock with the same token.
fn superseded(lock: &mut Lock) -> Option<LockError> {
    if !lock.held.superseded.load(Ordering::SeqCst) {
        return None;
    }
    lock.invalidate(Instant::now());
    Some(LockError::NotHeld {
        operation: Operation::Extend,
        resource: Arc::clone(&lock.resource),
        outcomes: Vec::new(),
    })
}

/// Decides the quorum view from the answers so far, if they settle it.
fn settled_state(round: &Round<Peek>, q: usize) -> Option<LockState> {
    let mut absent = 0usize;
    let mut holders: Vec<(&[u8], Vec<Option<Duration>>)> = Vec::new();
    let mut shared: Vec<Option<Duration>> = Vec::new();
    let mut readers = 0usize;
    for (_, reply) in round.replies() {
        match reply {
            Ok(Peek::Absent) => absent = absent.saturating_add(1),
            Ok(Peek::Shared {
                readers: n,
                remaining,
            }) => {
                shared.push(*remaining);
                readers = readers.max(*n);
            }
            Ok(Peek::Value { value, remaining }) => {
                match holders.iter_mut().find(|(v, _)| *v == value.as_slice()) {
                    Some((_, ttls)) => ttls.push(*remaining),
                    None => holders.push((value, vec![*remaining])),
                }
            }
            Ok(Peek::NotALock) | Err(_) => {}
        }
    }
    if absent >= q {
        return Some(LockState::Free);
    }
    if shared.len() >= q {
        return Some(LockState::Shared {
            readers,
            remaining: quorum_remaining(shared, q),
        });
    }
    let (holder, ttls) = holders.into_iter().find(|(_, ttls)| ttls.len() >= q)?;
    Some(LockState::Held {
        holder: HolderToken(holder.to_vec()),
        remaining: quorum_remaining(ttls, q),
    })
}

/// How long a majority keeps a key: its q-th longest TTL; `None` (no TTL) sorts first, as
/// the longest.
fn quorum_remaining(mut ttls: Vec<Option<Duration>>, q: usize) -> Option<Duration> {
    ttls.sort_by(|a, b| match (a, b) {
        (None, None) => std::cmp::Ordering::Equal,
        (None, Some(_)) => std::cmp::Ordering::Less,
        (Some(_), None) => std::cmp::Ordering::Greater,
        (Some(a), Some(b)) => b.cmp(a),
    });
    ttls.get(q.saturating_sub(1)).copied().flatten()
}

/// A TTL cut to whole milliseconds, as it is sent (`PX`), so that every validity is computed
/// from what the masters apply.
pub(crate) fn whole_millis(ttl: Duration) -> Duration {
    Duration::from_millis(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX))
}

fn peek_status(p: &Peek) -> NodeStatus {
    match p {
        Peek::Absent => NodeStatus::Absent,
        Peek::Value { remaining, .. } => NodeStatus::HeldByOther {
            remaining: *remaining,
        },
        Peek::Shared { remaining, .. } => NodeStatus::HeldByOther {
            remaining: *remaining,
        },
        Peek::NotALock => NodeStatus::NotALock,
    }
}

/// A pending acquisition of one resource; `.await` it to get a [`Lock`].
///
/// Created by [`LockManager::lock`]; each setting defaults to the manager's. Errors and
/// cancel safety: see [`LockManager::lock`].
///
/// # Examples
///
/// ```no_run
/// # use std::time::Duration;
/// # async fn demo(manager: tokio_redlock::LockManager) -> Result<(), tokio_redlock::LockError> {
/// // A long job: a longer TTL, and more patience than the manager's default.
/// let mut lock = manager
///     .lock("migrations")
///     .ttl(Duration::from_secs(120))
///     .retry_count(50)
///     .await?;
/// manager.unlock(&mut lock).await?;
/// # Ok(()) }
/// ```
#[must_use = "a lock request does nothing until awaited"]
pub struct LockRequest<'a> {
    manager: &'a LockManager,
    target: Target,
    options: AcquireOptions,
}

impl fmt::Debug for LockRequest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockRequest")
            .field("resources", &self.target)
            .field("options", &self.options)
            .finish()
    }
}

impl<'a> LockRequest<'a> {
    /// A request for `target` with the manager's TTL and retry settings.
    pub(crate) fn new(manager: &'a LockManager, target: Target) -> Self {
        Self {
            manager,
            target,
            options: AcquireOptions {
                ttl: manager.shared.settings.ttl,
                patience: Patience::Retries(manager.shared.settings.retry_count),
                holder: None,
                token: None,
                retry: None,
            },
        }
    }
}

impl LockRequest<'_> {
    /// TTL for this lock, sent as `PX` milliseconds (from 1 ms to [`MAX_TTL`](crate::MAX_TTL)).
    /// Default: the manager's [`ttl`](crate::LockManagerBuilder::ttl) (10 s unless set).
    ///
    /// Unlike the builder, a per-lock TTL may be at or below the node timeout: the lock is
    /// then only granted if the masters answer fast enough to leave validity. A TTL at or
    /// below the drift (2 ms + 1 %) never leaves any and fails with
    /// [`LockError::ValidityExhausted`].
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.options.ttl = ttl;
        self
    }

    /// Retries after the first attempt for this lock (`0`: one attempt).
    /// Default: the manager's [`retry_count`](crate::LockManagerBuilder::retry_count) (3 unless set).
    pub fn retry_count(mut self, retries: u32) -> Self {
        self.options.patience = Patience::Retries(retries);
        self
    }

    /// Keeps trying for up to `wait` while the resource is held elsewhere, instead of a number
    /// of retries: between attempts it sleeps until the lock is released (a release
    /// notification, when [`notifications`](crate::LockManagerBuilder::notifications) are on),
    /// until the holder's keys expire, or for the retry delay — whichever comes first. (A
    /// retry count, by contrast, sleeps the jittered retry delay or until the holder's
    /// expiry, without notifications: many callers retrying at once would otherwise all wake
    /// at each release.) When
    /// `wait` has passed it returns [`LockError::Conflict`] with the attempts made and the time
    /// waited.
    ///
    /// A quorum that cannot be reached (timeouts, refused or lost connections) is ridden out
    /// the same way, sleeping the retry delay between attempts: when `wait` passes while it
    /// is still out of reach, the error is [`LockError::NoQuorum`]. A permanent cause (too
    /// many masters refusing our credentials or commands, one server named twice) fails at
    /// once with [`LockError::NoQuorum`]. `wait(Duration::ZERO)` makes one attempt.
    ///
    /// Fairness: per manager, the waiters of one resource take turns in arrival order (one
    /// attempts at a time after its first attempt); across processes there is no order.
    pub fn wait(mut self, wait: Duration) -> Self {
        self.options.patience = Patience::Wait(wait);
        self
    }

    /// Keeps trying until the lock is acquired, as [`wait`](Self::wait) with no limit. A
    /// loss of quorum is ridden out once some attempt has reached a quorum of masters; when
    /// the first attempts find them unreachable (a wrong address, Redis down) it fails at once
    /// with [`LockError::NoQuorum`], as it does for a permanent cause.
    pub fn wait_forever(mut self) -> Self {
        self.options.patience = Patience::Forever;
        self
    }

    /// Stores who holds the lock beside it while it is held, for
    /// [`inspect`](LockManager::inspect) (and `redlock status`) to show: written with the
    /// lock key in the same request and expiring with it, given the new TTL by each
    /// [`extend`](LockManager::extend), and deleted by [`unlock`](LockManager::unlock) (and
    /// by every other release of the lock: a dropped handle's, a failed attempt's). The
    /// lock key itself stays a plain token, as other Redlock clients expect. The record's key
    /// is `{<key>}:holder` (see [`HolderInfo`] for the format); an ACL user needs access to
    /// it. The acquisition goes through the acquire script instead of the one-command
    /// `SET NX GET`. Default: no record.
    ///
    /// A lock of one resource only: a request of several resources
    /// ([`lock_all`](LockManager::lock_all)), a semaphore's permit, a reader or a writer with
    /// a holder record fails with [`LockError::InvalidArgument`] before any request.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(manager: tokio_redlock::LockManager) -> Result<(), tokio_redlock::LockError> {
    /// use tokio_redlock::HolderInfo;
    ///
    /// let mut lock = manager
    ///     .lock("migrations")
    ///     .holder_info(HolderInfo::new("db-admin-1", "migrate --to 42"))
    ///     .await?;
    /// // `inspect("migrations")` now shows host, pid, command and since on each master.
    /// manager.unlock(&mut lock).await?;
    /// # Ok(()) }
    /// ```
    pub fn holder_info(mut self, info: HolderInfo) -> Self {
        self.options.holder = Some(Arc::new(info));
        self
    }

    /// Acquires with this token instead of a fresh random one, and counts a key that already
    /// holds it as granted (aioredlock's `lock_identifier`): the holder can take its own lock
    /// again, and the leftover keys of its own failed attempt never stand in its way.
    ///
    /// On a key that already holds the token the TTL is raised to this request's, never
    /// lowered, so an earlier handle with the same token keeps a deadline its keys outlive.
    /// A new lock supersedes this manager's earlier handles with the same resource and
    /// token (plain locks and guards): dropping one no longer releases (the keys are the new
    /// lock's), extending one fails with [`LockError::NotHeld`] and ends its validity (a
    /// shorter TTL would cut the new lock's; a superseded guard reports itself lost), while
    /// an explicit [`unlock`](LockManager::unlock) of any of them releases the keys for all.
    ///
    /// Safety with a reused token: before each attempt, releases of this resource and token
    /// still parked for resending are withdrawn on every master; a failed attempt releases
    /// only the masters that granted it, in one round it awaits (bounded by the node
    /// timeout) and never resends, and not at all while a lock of this manager holds the
    /// token. What a failed attempt leaves expires by its TTL, and the next attempt with the
    /// token counts it as granted. Not covered: a release of the same token from another
    /// manager (or process) — use a token in one manager at a time — and the release of an
    /// `unlock` that returned at quorum while a slow master had not answered yet: it is
    /// parked only once that master fails, possibly after the new attempt started, and may
    /// then delete that master's key. Between an `unlock` and a new lock with the same token
    /// while a master is slow, wait until [`background_tasks`](LockManager::background_tasks)
    /// is 0.
    ///
    /// Anyone who knows the token can release or extend the lock. With fencing, a key that
    /// already held the token reports the current counter, so re-entering a lock nobody took
    /// in between keeps its fencing token.
    ///
    /// # Errors
    ///
    /// [`LockError::InvalidArgument`] before any request for an empty token, one longer than
    /// 256 bytes, with a control character or starting with `redlock:` (reserved for the
    /// values the library keeps under lock keys, such as the readers' marker), or together
    /// with [`holder_info`](Self::holder_info).
    /// Also for a request of several resources ([`lock_all`](LockManager::lock_all)), a
    /// semaphore's permit, a reader or a writer: a caller-chosen token is for a lock of one
    /// resource only.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(manager: tokio_redlock::LockManager) -> Result<(), tokio_redlock::LockError> {
    /// let mut lock = manager.lock("orders:42").token("worker-7").await?;
    /// // The same holder again: granted, its TTL renewed.
    /// let mut again = manager.lock("orders:42").token("worker-7").await?;
    /// manager.unlock(&mut again).await?;
    /// # drop(lock);
    /// # Ok(()) }
    /// ```
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.options.token = Some(Arc::from(token.into()));
        self
    }

    /// Sleep between attempts for this call, drawn uniformly from
    /// `[delay − jitter, delay + jitter)`. Default: the manager's
    /// [`retry_delay`](crate::LockManagerBuilder::retry_delay) and
    /// [`retry_jitter`](crate::LockManagerBuilder::retry_jitter) (200 ms ± 100 ms unless set).
    ///
    /// # Errors
    ///
    /// The request fails with [`LockError::InvalidArgument`] before any request when
    /// `delay + jitter` exceeds [`MAX_RETRY_SLEEP`](crate::MAX_RETRY_SLEEP) (1 min), as the
    /// builder refuses it.
    pub fn retry_delay(mut self, delay: Duration, jitter: Duration) -> Self {
        self.options.retry = Some((delay, jitter));
        self
    }
}

impl<'a> IntoFuture for LockRequest<'a> {
    type Output = Result<Lock, LockError>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        let shared = &self.manager.shared;
        Box::pin(attempt::acquire(shared, self.target, self.options))
    }
}
