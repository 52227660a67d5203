//! [`LockGuard`]: a held lock that looks after itself. A watchdog task extends it while it is
//! held (optional), and tells its holder the moment it can no longer be sure it holds it:
//! [`LockGuard::lost`] resolves, [`LockGuard::is_valid`] turns false, and the guard's
//! [`CancellationToken`] is cancelled — all no later than the lock's deadline, which falls
//! before the keys can expire on the masters, so before anyone else can acquire the lock.

use std::fmt;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::attempt::{AcquireOptions, Patience, Target};
use crate::error::{ConfigError, LockError, NodeOutcome};
use crate::keys::{Printable, token_prefix};
use crate::lock::Lock;
use crate::manager::LockManager;
use crate::quorum::fencing::FencingToken;

/// The smallest pause between two extension attempts after a failed one.
const MIN_RETRY: Duration = Duration::from_millis(10);

/// Why a guard's lock was lost: [`LockGuard::loss_cause`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LossCause {
    /// The deadline passed and no extension was attempted since the lock was acquired or
    /// last extended: auto-extension is off, or [`AcquireRequest::max_hold`] stopped it.
    /// (With auto-extension on, the first extension is planned well before the deadline.)
    Expired,
    /// Extensions were attempted, and none reached a quorum before the deadline (masters
    /// unreachable or too slow).
    NoExtensionReachedQuorum,
    /// An extension found the lock expired or taken by another holder on a majority.
    ExpiredOrTaken,
    /// [`LockManager::close`] was called while the lock was held.
    ManagerClosed,
}

impl fmt::Display for LossCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Expired => "the deadline passed with no extension attempted",
            Self::NoExtensionReachedQuorum => {
                "the deadline passed: no extension reached a quorum of masters in time"
            }
            Self::ExpiredOrTaken => {
                "an extension found the lock expired or taken on a majority of masters"
            }
            Self::ManagerClosed => "the lock manager was closed",
        })
    }
}

/// What the holder and the watchdog share.
struct Shared {
    resource: Arc<[u8]>,
    resources: Arc<[Arc<[u8]>]>,
    token: Arc<str>,
    fencing_tokens: Arc<[FencingToken]>,
    /// The current deadline, published by the watchdog after each extension.
    deadline: watch::Receiver<Instant>,
    /// Cancelled when the lock is lost.
    lost: CancellationToken,
    /// Why it was lost; set just before `lost` is cancelled.
    cause: std::sync::OnceLock<LossCause>,
    /// Cancelled to stop the watchdog, which then releases the lock (release, drop).
    stop: CancellationToken,
    /// Set when the guard was dropped (not released): a lock superseded by a newer one with
    /// the same caller-chosen token is then left to the newer one.
    dropped: std::sync::atomic::AtomicBool,
}

/// A cheap, clonable view of a guard's lock: its validity, token and lost signal.
///
/// [`LockManager::with_lock`] hands one to its closure; [`LockGuard::handle`] gives one out.
/// It never releases anything: the guard does.
#[derive(Clone)]
pub struct LockHandle {
    shared: Arc<Shared>,
}

impl fmt::Debug for LockHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockHandle")
            .field("resource", &Printable(&self.shared.resource).to_string())
            .field(
                "token",
                &format_args!("{}…", token_prefix(self.shared.token.as_bytes())),
            )
            .field("validity", &self.validity())
            .field("lost", &self.is_lost())
            .finish()
    }
}

impl LockHandle {
    /// The resource name (for a lock of several resources, the first: see
    /// [`Lock::resource`]).
    pub fn resource(&self) -> &[u8] {
        &self.shared.resource
    }

    /// Every resource the lock holds, sorted and distinct (see [`Lock::resources`]).
    pub fn resources(&self) -> impl ExactSizeIterator<Item = &[u8]> {
        self.shared.resources.iter().map(|r| &**r)
    }

    /// The lock token (128 random bits, hex). Keep it out of logs.
    pub fn token(&self) -> &str {
        &self.shared.token
    }

    /// The fencing token, when the manager issues them.
    pub fn fencing_token(&self) -> Option<FencingToken> {
        match &*self.shared.fencing_tokens {
            [token] => Some(*token),
            _ => None,
        }
    }

    /// The fencing tokens, one per resource (see [`Lock::fencing_tokens`]).
    pub fn fencing_tokens(&self) -> &[FencingToken] {
        &self.shared.fencing_tokens
    }

    /// The current deadline (monotonic); it moves forward with every successful extension.
    pub fn deadline(&self) -> Instant {
        *self.shared.deadline.borrow()
    }

    /// Time left until the deadline, zero once lost or past it.
    pub fn validity(&self) -> Duration {
        if self.is_lost() {
            Duration::ZERO
        } else {
            self.deadline().saturating_duration_since(Instant::now())
        }
    }

    /// True while the lock is held: not lost, and before the deadline.
    pub fn is_valid(&self) -> bool {
        !self.is_lost() && Instant::now() < self.deadline()
    }

    /// True once the lock was lost (see [`LockGuard::lost`]).
    pub fn is_lost(&self) -> bool {
        self.shared.lost.is_cancelled()
    }

    /// Why the lock was lost; `None` while it is not.
    pub fn loss_cause(&self) -> Option<LossCause> {
        self.shared.cause.get().copied()
    }

    /// Resolves when the lock is lost; see [`LockGuard::lost`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future changes nothing.
    pub async fn lost(&self) {
        self.shared.lost.cancelled().await;
    }

    /// A token cancelled when the lock is lost, to wrap work in `select!` or hand to
    /// libraries that take a [`CancellationToken`].
    pub fn cancellation_token(&self) -> CancellationToken {
        self.shared.lost.clone()
    }
}

/// A held lock with a watchdog: returned by [`LockManager::acquire`].
///
/// - **Auto-extension** (opt-in with [`AcquireRequest::auto_extend`] or
///   [`AcquireRequest::extend_every`]): the watchdog extends the lock every `ttl / 3`
///   (compare-and-`PEXPIRE`: it never re-creates a key), and never later than halfway to
///   the current deadline: after an acquisition (or extension) that took most of the TTL,
///   the next extension comes at half the validity left, not a full period later. A failed
///   extension is retried until the deadline.
/// - **Loss**: when the deadline passes without a successful extension, or an extension finds
///   the lock expired or taken on a majority, the lock is *lost*: [`lost`](Self::lost)
///   resolves, [`is_valid`](Self::is_valid) is false, the [`cancellation_token`](Self::cancellation_token)
///   is cancelled, [`loss_cause`](Self::loss_cause) says why, and a `tracing` warning names
///   the masters that failed and why. This
///   happens no later than the deadline (`start + ttl − drift`), so before the keys expire on
///   the masters and anyone else can take the lock. Loss is final. A guard without
///   auto-extension is lost at its deadline.
/// - **Release**: [`release`](Self::release) stops the watchdog, then releases and reports.
///   **Dropping** the guard stops the watchdog and releases the lock *in the background*
///   (not synchronously: the keys are gone one round trip later). No watchdog outlives its
///   guard. [`LockManager::close`] releases the locks of live guards and marks them lost.
///
/// # Examples
///
/// Stop working the moment the lock is lost:
///
/// ```no_run
/// # async fn demo(manager: tokio_redlock::LockManager) -> Result<(), tokio_redlock::LockError> {
/// # async fn copy_next_batch() -> bool { false }
/// let guard = manager.acquire("reindex").auto_extend().await?;
/// loop {
///     tokio::select! {
///         () = guard.lost() => {
///             eprintln!("lost the lock: stopping before anyone else starts");
///             break;
///         }
///         more = copy_next_batch() => if !more { break },
///     }
/// }
/// guard.release().await?;
/// # Ok(()) }
/// ```
#[must_use = "dropping a guard releases its lock (in the background)"]
pub struct LockGuard {
    handle: LockHandle,
    ttl: Duration,
    outcomes: Vec<NodeOutcome>,
    /// The watchdog; it releases the lock when stopped and returns the outcome.
    watchdog: Option<JoinHandle<Result<(), LockError>>>,
    /// Explicit extensions, carried out by the watchdog (which owns the lock).
    extensions: mpsc::Sender<ExtendRequest>,
}

/// An explicit extension for the watchdog: the TTL and where to send the outcome.
type ExtendRequest = (Duration, oneshot::Sender<Result<(), LockError>>);

impl fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard")
            .field("lock", &self.handle)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl LockGuard {
    /// The resource name (for a lock of several resources, the first: see
    /// [`Lock::resource`]).
    pub fn resource(&self) -> &[u8] {
        self.handle.resource()
    }

    /// Every resource the lock holds, sorted and distinct (see [`Lock::resources`]).
    pub fn resources(&self) -> impl ExactSizeIterator<Item = &[u8]> {
        self.handle.resources()
    }

    /// The lock token (128 random bits, hex). Keep it out of logs.
    pub fn token(&self) -> &str {
        self.handle.token()
    }

    /// The fencing token, when the manager issues them (see [`Lock::fencing_token`]).
    pub fn fencing_token(&self) -> Option<FencingToken> {
        self.handle.fencing_token()
    }

    /// The fencing tokens, one per resource (see [`Lock::fencing_tokens`]).
    pub fn fencing_tokens(&self) -> &[FencingToken] {
        self.handle.fencing_tokens()
    }

    /// The TTL the lock is acquired and extended with.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The current deadline (a monotonic [`tokio::time::Instant`]); each successful
    /// extension moves it forward.
    pub fn deadline(&self) -> Instant {
        self.handle.deadline()
    }

    /// Time left until the deadline; zero once lost or past it.
    pub fn validity(&self) -> Duration {
        self.handle.validity()
    }

    /// True while the lock is held: not lost and before the deadline.
    pub fn is_valid(&self) -> bool {
        self.handle.is_valid()
    }

    /// True once the lock was lost.
    pub fn is_lost(&self) -> bool {
        self.handle.is_lost()
    }

    /// Why the lock was lost ([`LossCause`]); `None` while it is not. A lock whose deadline
    /// passed with no extension attempted ([`LossCause::Expired`]) is told apart from one
    /// whose extensions failed ([`LossCause::NoExtensionReachedQuorum`]).
    pub fn loss_cause(&self) -> Option<LossCause> {
        self.handle.loss_cause()
    }

    /// Per-master answers of the acquisition.
    pub fn outcomes(&self) -> &[NodeOutcome] {
        &self.outcomes
    }

    /// Resolves when the lock is lost: the deadline passed without a successful extension,
    /// or a majority showed it expired or taken. Never resolves while the lock is held.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: use it in `select!`.
    pub async fn lost(&self) {
        self.handle.lost().await;
    }

    /// A token cancelled at the moment the lock is lost.
    pub fn cancellation_token(&self) -> CancellationToken {
        self.handle.cancellation_token()
    }

    /// A clonable view of this lock (validity, token, lost signal) to hand to other tasks.
    pub fn handle(&self) -> LockHandle {
        self.handle.clone()
    }

    /// Extends the lock now to `ttl` from now, as [`LockManager::extend`] (one round,
    /// compare-and-`PEXPIRE`: a key that expired is never re-created), on top of any
    /// auto-extension. The watchdog carries it out, so it never races an automatic
    /// extension; on success the deadline moves, and later automatic extensions use `ttl`.
    ///
    /// # Errors
    ///
    /// As [`LockManager::extend`]: [`LockError::NotHeld`] when a majority shows the lock is
    /// not ours any more (the guard is then lost, [`LossCause::ExpiredOrTaken`]),
    /// [`LockError::NoQuorum`], [`LockError::ValidityExhausted`],
    /// [`LockError::InvalidArgument`] for a TTL below 1 ms or above
    /// [`MAX_TTL`](crate::MAX_TTL); [`LockError::Lost`] when the lock was already lost, and
    /// [`LockError::Closed`] when the guard's watchdog has ended (the manager was closed).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future after the request reached the watchdog does not stop the
    /// extension; only its outcome is not reported.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # async fn demo(manager: tokio_redlock::LockManager) -> Result<(), tokio_redlock::LockError> {
    /// let guard = manager.acquire("report").auto_extend().await?;
    /// guard.extend(Duration::from_secs(60)).await?;
    /// assert!(guard.validity() > Duration::from_secs(59));
    /// guard.release().await?;
    /// # Ok(()) }
    /// ```
    pub async fn extend(&self, ttl: Duration) -> Result<(), LockError> {
        ConfigError::check_ttl(ttl).map_err(|e| LockError::InvalidArgument(e.to_string()))?;
        if self.handle.is_lost() {
            return Err(LockError::Lost {
                resource: Arc::clone(&self.handle.shared.resource),
            });
        }
        let (reply, outcome) = oneshot::channel();
        self.extensions
            .send((ttl, reply))
            .await
            .map_err(|_| LockError::Closed)?;
        outcome.await.unwrap_or(Err(LockError::Closed))
    }

    /// Stops the watchdog, then releases the lock on every master and reports the outcome,
    /// as [`LockManager::unlock`].
    ///
    /// # Errors
    ///
    /// As [`LockManager::unlock`]: [`LockError::NotHeld`] when the lock had lapsed (it may
    /// have been lost), [`LockError::NoQuorum`] when too few masters answered.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future still releases the lock in the background: the watchdog has
    /// stopped, or stops, and the keys are deleted as on drop.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(manager: tokio_redlock::LockManager) -> Result<(), tokio_redlock::LockError> {
    /// let guard = manager.acquire("r").await?;
    /// guard.release().await?;
    /// # Ok(()) }
    /// ```
    pub async fn release(mut self) -> Result<(), LockError> {
        let Some(watchdog) = self.watchdog.take() else {
            return Ok(());
        };
        // The watchdog stops extending, releases the lock and returns the outcome; if this
        // future is dropped, it still does.
        self.handle.shared.stop.cancel();
        watchdog.await.unwrap_or(Err(LockError::Closed))
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if self.watchdog.take().is_some() {
            // The watchdog releases the lock in the background and ends.
            self.handle
                .shared
                .dropped
                .store(true, std::sync::atomic::Ordering::SeqCst);
            self.handle.shared.stop.cancel();
        }
    }
}

/// A pending acquisition that yields a [`LockGuard`]; created by [`LockManager::acquire`].
#[must_use = "an acquire request does nothing until awaited"]
pub struct AcquireRequest<'a> {
    manager: &'a LockManager,
    target: Target,
    options: AcquireOptions,
    extend_every: Option<Duration>,
    max_hold: Option<Duration>,
}

impl fmt::Debug for AcquireRequest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AcquireRequest")
            .field("resources", &self.target)
            .field("options", &self.options)
            .field("extend_every", &self.extend_every)
            .field("max_hold", &self.max_hold)
            .finish()
    }
}

impl<'a> AcquireRequest<'a> {
    pub(crate) fn new(manager: &'a LockManager, target: Target, options: AcquireOptions) -> Self {
        Self {
            manager,
            target,
            options,
            extend_every: None,
            max_hold: None,
        }
    }

    /// TTL of the lock and of each extension. Default: the manager's TTL (10 s unless set).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.options.ttl = ttl;
        self
    }

    /// Retries after the first attempt. Default: the manager's retry count (3 unless set).
    pub fn retry_count(mut self, retries: u32) -> Self {
        self.options.patience = Patience::Retries(retries);
        self
    }

    /// Keeps trying for up to `wait`, woken by release notifications; see
    /// [`LockRequest::wait`](crate::LockRequest::wait).
    pub fn wait(mut self, wait: Duration) -> Self {
        self.options.patience = Patience::Wait(wait);
        self
    }

    /// Keeps trying until acquired; see [`LockRequest::wait_forever`](crate::LockRequest::wait_forever).
    pub fn wait_forever(mut self) -> Self {
        self.options.patience = Patience::Forever;
        self
    }

    /// Extends the lock every `ttl / 3` while the guard lives. Default: off (the lock is
    /// lost at its deadline).
    pub fn auto_extend(self) -> Self {
        let every = self.options.ttl.checked_div(3).unwrap_or_default();
        self.extend_every(every)
    }

    /// Extends the lock every `period` while the guard lives (turns auto-extension on). The
    /// period is capped at half the TTL, so an extension always has time to be retried before
    /// the deadline. Default: off; with [`auto_extend`](Self::auto_extend), `ttl / 3`.
    pub fn extend_every(mut self, period: Duration) -> Self {
        self.extend_every = Some(period);
        self
    }

    /// Stops extending once the lock has been held this long; the lock then runs out at its
    /// deadline and is reported lost. Default: none (extend for as long as the guard lives).
    pub fn max_hold(mut self, max: Duration) -> Self {
        self.max_hold = Some(max);
        self
    }

    /// Stores who holds the lock beside it while it is held (the watchdog's extensions keep
    /// it as long as the lock); see [`LockRequest::holder_info`](crate::LockRequest::holder_info).
    /// Default: no record.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(manager: tokio_redlock::LockManager) -> Result<(), tokio_redlock::LockError> {
    /// let guard = manager
    ///     .acquire("nightly")
    ///     .auto_extend()
    ///     .holder_info(tokio_redlock::HolderInfo::new("cron-3", "nightly.sh"))
    ///     .await?;
    /// guard.release().await?;
    /// # Ok(()) }
    /// ```
    pub fn holder_info(mut self, info: crate::HolderInfo) -> Self {
        self.options.holder = Some(Arc::new(info));
        self
    }

    /// Acquires with a caller-chosen token; see [`LockRequest::token`](crate::LockRequest::token)
    /// for what it means and how a reused token is kept safe. The watchdog extends with it.
    /// Default: a fresh random token.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.options.token = Some(Arc::from(token.into()));
        self
    }

    /// Sleep between attempts for this call; see
    /// [`LockRequest::retry_delay`](crate::LockRequest::retry_delay). Default: the manager's.
    pub fn retry_delay(mut self, delay: Duration, jitter: Duration) -> Self {
        self.options.retry = Some((delay, jitter));
        self
    }
}

impl<'a> IntoFuture for AcquireRequest<'a> {
    type Output = Result<LockGuard, LockError>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let lock =
                crate::attempt::acquire(self.manager.shared(), self.target, self.options).await?;
            // No await between the lock and its watchdog: a cancelled acquire either never
            // got the lock (and cleaned up) or returns a guard that owns it.
            Ok(LockGuard::watch(
                self.manager.clone(),
                lock,
                self.extend_every,
                self.max_hold,
            ))
        })
    }
}

impl LockGuard {
    /// Wraps an acquired lock in a guard and starts its watchdog.
    pub(crate) fn watch(
        manager: LockManager,
        lock: Lock,
        extend_every: Option<Duration>,
        max_hold: Option<Duration>,
    ) -> Self {
        let (deadline_tx, deadline_rx) = watch::channel(lock.deadline());
        let shared = Arc::new(Shared {
            resource: Arc::clone(&lock.resource),
            resources: Arc::clone(&lock.resources),
            token: Arc::clone(&lock.token),
            fencing_tokens: Arc::clone(&lock.fencing_tokens),
            deadline: deadline_rx,
            lost: CancellationToken::new(),
            cause: std::sync::OnceLock::new(),
            stop: CancellationToken::new(),
            dropped: std::sync::atomic::AtomicBool::new(false),
        });
        let ttl = lock.ttl();
        let outcomes = lock.outcomes().to_vec();
        let half = ttl.checked_div(2).unwrap_or_default();
        let every = extend_every.map(|e| e.min(half).max(Duration::from_millis(1)));
        let hold_until = max_hold.and_then(|m| Instant::now().checked_add(m));
        let (extensions, requests) = mpsc::channel(1);
        let task = Watchdog {
            manager: manager.clone(),
            shared: Arc::clone(&shared),
            deadline: deadline_tx,
            every,
            hold_until,
        };
        let watchdog = manager.tasks().spawn(task.run(lock, requests));
        Self {
            handle: LockHandle { shared },
            ttl,
            outcomes,
            watchdog: Some(watchdog),
            extensions,
        }
    }
}

/// The task that keeps a guard's lock alive and watches its deadline.
struct Watchdog {
    manager: LockManager,
    shared: Arc<Shared>,
    deadline: watch::Sender<Instant>,
    every: Option<Duration>,
    hold_until: Option<Instant>,
}

impl Watchdog {
    /// Runs until stopped or shut down, then releases the lock and returns the outcome.
    async fn run(
        self,
        mut lock: Lock,
        mut requests: mpsc::Receiver<ExtendRequest>,
    ) -> Result<(), LockError> {
        let shutdown = self.manager.shutdown_token();
        let mut last_error: Option<LockError> = None;
        // Whether an extension was sent since the deadline was last set: a loss at the
        // deadline without one is `Expired`, not a failed extension.
        let mut attempted = false;
        let mut next_extend = self.every.map(|e| next_extension(e, lock.deadline()));
        loop {
            let deadline = lock.deadline();
            let ttl = lock.ttl();
            if self.hold_until.is_some_and(|h| Instant::now() >= h) {
                next_extend = None;
            }
            let lost = self.shared.lost.is_cancelled();
            tokio::select! {
                biased;
                () = self.shared.stop.cancelled() => break,
                () = shutdown.cancelled() => {
                    self.declare_lost(&lock, None, LossCause::ManagerClosed);
                    break;
                }
                Some((ttl, reply)) = requests.recv() => {
                    // An explicit extension (`LockGuard::extend`), raced against stopping
                    // like an automatic one; a lost lock is not extended.
                    if self.shared.lost.is_cancelled() {
                        let _ = reply.send(Err(LockError::Lost { resource: Arc::clone(&lock.resource) }));
                        continue;
                    }
                    let outcome = tokio::select! {
                        biased;
                        () = self.shared.stop.cancelled() => break,
                        () = shutdown.cancelled() => {
                            let _ = reply.send(Err(LockError::Closed));
                            continue;
                        }
                        r = self.manager.extend_lock(&mut lock, ttl) => r,
                    };
                    match &outcome {
                        Ok(()) => {
                            last_error = None;
                            attempted = false;
                            next_extend = self.every.map(|e| next_extension(e, lock.deadline()));
                        }
                        Err(e) if e.is_not_held() => {
                            self.declare_lost(&lock, Some(e), LossCause::ExpiredOrTaken);
                        }
                        Err(_) => {}
                    }
                    // A failed extension may have lowered the deadline (a shorter TTL).
                    let _ = self.deadline.send(lock.deadline());
                    let _ = reply.send(outcome);
                }
                () = tokio::time::sleep_until(deadline), if !lost => {
                    let cause = if attempted {
                        LossCause::NoExtensionReachedQuorum
                    } else {
                        LossCause::Expired
                    };
                    self.declare_lost(&lock, last_error.as_ref(), cause);
                }
                () = sleep_until_opt(next_extend), if next_extend.is_some() && !lost => {
                    // The extension races the deadline: at the deadline the lock is lost,
                    // whatever an extension still in flight would have said.
                    attempted = true;
                    let outcome = tokio::select! {
                        biased;
                        () = self.shared.stop.cancelled() => break,
                        () = shutdown.cancelled() => continue,
                        () = tokio::time::sleep_until(deadline) => None,
                        r = self.manager.extend_lock(&mut lock, ttl) => Some(r),
                    };
                    match outcome {
                        Some(Ok(())) => {
                            last_error = None;
                            attempted = false;
                            let _ = self.deadline.send(lock.deadline());
                            next_extend = self.every.map(|e| next_extension(e, lock.deadline()));
                        }
                        Some(Err(e)) if e.is_not_held() => {
                            self.declare_lost(&lock, Some(&e), LossCause::ExpiredOrTaken);
                        }
                        Some(Err(e)) => {
                            // Transient: retry soon, well before the deadline.
                            let left = lock.deadline().saturating_duration_since(Instant::now());
                            let pause = left.checked_div(4).unwrap_or_default().max(MIN_RETRY);
                            next_extend = Instant::now().checked_add(pause);
                            tracing::debug!(resource = %Printable(&lock.resource), error = %e, ?pause, "extension failed; retrying");
                            last_error = Some(e);
                        }
                        None => {
                            self.declare_lost(&lock, last_error.as_ref(), LossCause::NoExtensionReachedQuorum);
                        }
                    }
                }
            }
        }
        // Stopped (release, drop) or shut down: from now on no handle claims the lock, then
        // release it, bounded by the masters' timeouts.
        let _ = self.deadline.send(Instant::now());
        let ordering = std::sync::atomic::Ordering::SeqCst;
        if self.shared.dropped.load(ordering) && lock.held.superseded.load(ordering) {
            // The keys belong to a newer lock with the same token now.
            lock.keep_until_expiry();
            return Ok(());
        }
        self.manager.release_lock(&mut lock).await
    }

    fn declare_lost(&self, lock: &Lock, error: Option<&LockError>, why: LossCause) {
        if self.shared.lost.is_cancelled() {
            return;
        }
        let _ = self.shared.cause.set(why);
        // Counted before the holders are woken, so one that reads the metrics on `lost()`
        // sees it.
        if !self.manager.shutdown_token().is_cancelled() {
            crate::metrics::loss(lock.primitive);
        }
        // Logged before the holders are woken too, so one that looks at the logs on `lost()`
        // finds the warning.
        match error {
            Some(e) => tracing::warn!(
                resource = %Printable(&lock.resource),
                token = %token_prefix(lock.token.as_bytes()),
                error = %e,
                "lock lost: {why}"
            ),
            None => tracing::warn!(
                resource = %Printable(&lock.resource),
                token = %token_prefix(lock.token.as_bytes()),
                "lock lost: {why}"
            ),
        }
        self.shared.lost.cancel();
    }
}

/// When to extend next, the deadline being `deadline`: after `every`, but never later than
/// halfway to the deadline, so that an acquisition or extension that took most of the TTL
/// still leaves the extension time to be sent, answered, and retried before the deadline.
fn next_extension(every: Duration, deadline: Instant) -> Instant {
    let now = Instant::now();
    let half_left = deadline
        .saturating_duration_since(now)
        .checked_div(2)
        .unwrap_or_default();
    now.checked_add(every.min(half_left)).unwrap_or(now)
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
