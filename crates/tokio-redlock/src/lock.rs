//! [`Lock`], the handle of an acquired lock, and [`LockState`], the quorum view of a resource.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::time::Instant;

use crate::error::{NodeError, NodeOutcome};
use crate::keys::{Keys, Printable, token_prefix};
use crate::manager::Shared;
use crate::metrics::Primitive;
use crate::quorum::fencing::FencingToken;

/// An acquired lock: the resource, our token, and a monotonic deadline.
///
/// The lock is safe to rely on until [`deadline`](Self::deadline): `start + ttl − drift`,
/// where `start` was taken just before the first request of the winning attempt (Redlock
/// spec, step 3–4). The deadline is a [`tokio::time::Instant`], so [`is_valid`](Self::is_valid)
/// turns false by itself when it passes; wall-clock steps on this host do not move it.
///
/// Release it with [`LockManager::unlock`](crate::LockManager::unlock) to learn the outcome.
/// A `Lock` dropped while still held is released in the background (the releases are resent
/// until they land or the keys expire), as a dropped [`LockGuard`](crate::LockGuard) is, and
/// [`LockManager::close`](crate::LockManager::close) releases every lock its manager still
/// holds. To leave the keys until their TTL ends on purpose (say, a job handed to another
/// process that checks the key), call [`keep_until_expiry`](Self::keep_until_expiry). It
/// cannot be cloned or forged: the only way to get one is to acquire it.
///
/// `Lock` or [`LockGuard`](crate::LockGuard)?
///
/// | | `Lock` (`lock`, `try_lock`) | `LockGuard` (`acquire`, `with_lock`) |
/// |---|---|---|
/// | extended | by you: [`LockManager::extend`](crate::LockManager::extend) | by its watchdog (`auto_extend`), or by you |
/// | loss signalled | no: check [`is_valid`](Self::is_valid) | yes: `lost()`, a cancellation token |
/// | released on drop | yes, in the background | yes, in the background |
/// | released by `close()` | yes | yes, and told it is lost |
/// | cost | no task | one watchdog task while held |
///
/// # Examples
///
/// ```no_run
/// # async fn demo(manager: tokio_redlock::LockManager) -> Result<(), tokio_redlock::LockError> {
/// let mut lock = manager.lock("orders:42").await?;
/// assert!(lock.is_valid());
/// println!("held for {:?} more", lock.validity());
/// manager.unlock(&mut lock).await?;
/// assert!(!lock.is_valid());
/// # Ok(()) }
/// ```
#[must_use = "a lock dropped at once is released at once (in the background)"]
pub struct Lock {
    /// The resource (for a multi-resource lock, the first in sorted order).
    pub(crate) resource: Arc<[u8]>,
    /// Every resource, sorted and distinct (one for a single-resource lock).
    pub(crate) resources: Arc<[Arc<[u8]>]>,
    /// The keys held, in the order of `resources`.
    pub(crate) keys: Keys,
    /// What kind of lock it is (named in metrics and traces).
    pub(crate) primitive: Primitive,
    pub(crate) token: Arc<str>,
    pub(crate) ttl: Duration,
    pub(crate) deadline: Instant,
    /// Identity of the manager that issued it.
    pub(crate) manager: u64,
    /// The fencing tokens, one per resource, when the manager issues them (else empty).
    pub(crate) fencing_tokens: Arc<[FencingToken]>,
    /// The holder record's key and value, when the acquisition opted in
    /// ([`HolderInfo`](crate::HolderInfo)): extensions rewrite it, `unlock` deletes it. Only
    /// a single-resource lock (a mutex) stores one.
    pub(crate) holder: Option<crate::holder::Record>,
    /// What a release needs, shared with the manager's registry of held locks and with
    /// acquire requests still in flight when the lock was granted.
    pub(crate) held: Arc<Held>,
    /// The manager, to release the lock when the handle is dropped.
    pub(crate) owner: Weak<Shared>,
    /// Per-master answers of the last successful acquisition or extension.
    pub(crate) outcomes: Vec<NodeOutcome>,
    /// When the acquisition succeeded (for the hold-time metric).
    pub(crate) acquired_at: Instant,
}

impl Lock {
    /// The resource name, as given to `lock`. For a lock of several resources
    /// ([`LockManager::lock_all`](crate::LockManager::lock_all)), the first of
    /// [`resources`](Self::resources).
    pub fn resource(&self) -> &[u8] {
        &self.resource
    }

    /// Every resource this lock holds: the one resource of `lock`, or the resources of
    /// [`LockManager::lock_all`](crate::LockManager::lock_all) sorted by their bytes, each
    /// once.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(manager: tokio_redlock::LockManager) -> Result<(), tokio_redlock::LockError> {
    /// let mut lock = manager.lock_all(["b", "a", "b"]).await?;
    /// let names: Vec<&[u8]> = lock.resources().map(|r| r).collect();
    /// assert_eq!(names, [&b"a"[..], b"b"]);
    /// manager.unlock(&mut lock).await?;
    /// # Ok(()) }
    /// ```
    pub fn resources(&self) -> impl ExactSizeIterator<Item = &[u8]> {
        self.resources.iter().map(|r| &**r)
    }

    /// The token (lock value): 128 random bits as 32 hex digits, unique to this acquisition.
    /// Anyone who knows it can release or extend the lock: keep it out of logs.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The TTL of the last successful acquisition or extension.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The instant after which the lock must be considered lost: `start + ttl − drift` of the
    /// last successful acquisition or extension (or the moment it was released or found lost).
    /// A [`tokio::time::Instant`]: monotonic, and paused with tokio's test clock.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Time left until the deadline; zero once it has passed (never negative).
    pub fn validity(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// True until the deadline passes, and false from then on (or once released).
    pub fn is_valid(&self) -> bool {
        Instant::now() < self.deadline
    }

    /// The fencing token of this acquisition: `Some` when the manager was built with
    /// [`fencing(true)`](crate::LockManagerBuilder::fencing), `None` otherwise. It grows with
    /// every acquisition of the resource; extension keeps it. See [`FencingToken`].
    ///
    /// A lock of several resources has one token per resource: see
    /// [`fencing_tokens`](Self::fencing_tokens); this returns `None` for it.
    pub fn fencing_token(&self) -> Option<FencingToken> {
        match &*self.fencing_tokens {
            [token] => Some(*token),
            _ => None,
        }
    }

    /// The fencing tokens of this acquisition, one per resource in the order of
    /// [`resources`](Self::resources) (each resource's counter is the one its single-resource
    /// locks draw from, so the tokens of both kinds order together); empty when the manager
    /// does not issue them.
    pub fn fencing_tokens(&self) -> &[FencingToken] {
        &self.fencing_tokens
    }

    /// What each master answered in the last successful acquisition or extension: the
    /// masters that granted ([`NodeStatus::Done`](crate::NodeStatus::Done)), and the failures
    /// a quorum tolerated (a master down, a timeout), as non-fatal detail. Masters that had not
    /// answered when the quorum was reached show [`NodeStatus::NotAwaited`](crate::NodeStatus::NotAwaited),
    /// or their permanent failure when it was already known (e.g. the same server as another
    /// master: [`NodeError::SameServer`](crate::NodeError::SameServer)).
    pub fn outcomes(&self) -> &[NodeOutcome] {
        &self.outcomes
    }

    /// Ends the validity now (after a release, or when the masters said it is not ours).
    pub(crate) fn invalidate(&mut self, at: Instant) {
        self.deadline = self.deadline.min(at);
    }

    /// Gives up the handle without releasing the lock: its keys stay on the masters until
    /// their TTL ends, and nothing (neither this drop nor
    /// [`close`](crate::LockManager::close)) releases them. For a lock meant to outlive its
    /// holder on purpose; otherwise unlock it, or simply drop it.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(manager: tokio_redlock::LockManager) -> Result<(), tokio_redlock::LockError> {
    /// // Mark the nightly job as done for the next 10 minutes, whoever runs next.
    /// let lock = manager.lock("nightly").ttl(std::time::Duration::from_secs(600)).await?;
    /// lock.keep_until_expiry();
    /// # Ok(()) }
    /// ```
    pub fn keep_until_expiry(self) {
        self.held.released.store(true, Ordering::SeqCst);
        if let Some(shared) = self.owner.upgrade() {
            shared.forget_lock(&self.held);
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        // Adopted, or superseded by a newer lock with the same token: left to the TTL.
        if self.held.keep_on_drop.load(Ordering::SeqCst)
            || self.held.superseded.load(Ordering::SeqCst)
        {
            if let Some(shared) = self.owner.upgrade() {
                shared.forget_lock(&self.held);
            }
            return;
        }
        // Released already (unlock, close, keep_until_expiry): nothing to do.
        if self.held.released.swap(true, Ordering::SeqCst) {
            return;
        }
        let Some(shared) = self.owner.upgrade() else {
            return;
        };
        shared.forget_lock(&self.held);
        // Past its deadline too: the compare-and-delete only removes a key with our token.
        tracing::debug!(
            resource = %Printable(&self.resource),
            token = %token_prefix(self.token.as_bytes()),
            "lock dropped while held: releasing in the background"
        );
        shared.release_held(&self.held);
    }
}

/// What releasing a lock needs, shared by its handle, the manager's registry of held locks,
/// and the acquire requests still in flight when it was granted.
#[derive(Debug)]
pub(crate) struct Held {
    /// Registry key in the manager.
    pub(crate) id: u64,
    pub(crate) keys: Keys,
    /// The holder record's key, when the acquisition stored one: released with the key.
    pub(crate) holder_key: Option<Arc<[u8]>>,
    pub(crate) token: Arc<str>,
    /// Set once the lock is released (or kept on purpose): late acquire replies then release
    /// their key themselves, and a drop does nothing.
    pub(crate) released: AtomicBool,
    /// Masters that may hold our key; the others never saw our token, so a release has
    /// nothing to do there. Late acquire replies add to it.
    pub(crate) may_hold: MayHold,
    /// The TTL of the last grant or extension, in milliseconds: how long a key can outlive
    /// a release that did not land.
    pub(crate) ttl_ms: AtomicU64,
    /// Dropping the handle leaves the keys to their TTL: a lock adopted from the masters
    /// ([`LockManager::adopt`](crate::LockManager::adopt)). An explicit `unlock` releases.
    pub(crate) keep_on_drop: AtomicBool,
    /// A newer acquisition with the same caller-chosen token holds the keys now: dropping
    /// this handle leaves them, and extending it is refused (it could lower the newer lock's
    /// TTL). An explicit `unlock` still releases them, for both.
    pub(crate) superseded: AtomicBool,
}

impl fmt::Debug for Lock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lock")
            .field("resource", &Printable(&self.resource).to_string())
            .field(
                "token",
                &format_args!("{}…", token_prefix(self.token.as_bytes())),
            )
            .field("ttl", &self.ttl)
            .field("validity", &self.validity())
            .finish()
    }
}

/// The value found under a resource's key: a token of ours, or another library's value.
/// `Debug` shows only its first 8 bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct HolderToken(pub(crate) Vec<u8>);

impl HolderToken {
    /// The raw value (not necessarily UTF-8 when another program wrote it).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Whether this value is `lock`'s token: the key is held by that handle.
    pub fn is_token_of(&self, lock: &Lock) -> bool {
        self.0 == lock.token.as_bytes()
    }
}

impl fmt::Debug for HolderToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HolderToken({}…)", token_prefix(&self.0))
    }
}

/// Who holds a resource, in the view of a quorum of masters
/// ([`LockManager::is_locked`](crate::LockManager::is_locked)).
///
/// # Examples
///
/// ```no_run
/// use tokio_redlock::LockState;
///
/// # async fn demo(manager: tokio_redlock::LockManager, mine: tokio_redlock::Lock) -> Result<(), tokio_redlock::LockError> {
/// match manager.is_locked("orders:42").await? {
///     LockState::Free => println!("free"),
///     state @ LockState::Held { .. } if state.is_held_by(&mine) => println!("held by us"),
///     LockState::Held { remaining, .. } => println!("held by someone else for {remaining:?}"),
///     _ => println!("in flux: an acquisition in progress or a lock expiring"),
/// }
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LockState {
    /// No key on a majority of masters: nobody holds the lock.
    Free,
    /// One token holds the key on a majority of masters.
    Held {
        /// The holder's token. Compare with [`LockState::is_held_by`].
        holder: HolderToken,
        /// How long the majority keeps holding it (the quorum-th longest remaining TTL);
        /// `None` when the keys have no TTL (set by something other than a lock library).
        remaining: Option<Duration>,
    },
    /// Readers hold it ([`LockManager::read`](crate::LockManager::read)) on a majority of
    /// masters: no writer can take it.
    Shared {
        /// The most readers one master of the majority records.
        readers: usize,
        /// How long the majority keeps the readers' hold (the quorum-th longest remaining
        /// TTL of the key, which lives as long as the longest reader lease).
        remaining: Option<Duration>,
    },
    /// Neither: no single answer on a majority (an acquisition in progress, a partial or
    /// expiring lock, or a non-lock value under the key — possibly on a majority: see the
    /// outcomes). Nobody can be relied upon to hold it.
    Unsettled {
        /// Per-master answers.
        outcomes: Vec<NodeOutcome>,
    },
}

impl LockState {
    /// True when nobody holds the resource on a majority.
    pub fn is_free(&self) -> bool {
        matches!(self, Self::Free)
    }

    /// True when some token holds the resource on a majority (exclusively: a lock, a
    /// writer, a lock of several resources).
    pub fn is_locked(&self) -> bool {
        matches!(self, Self::Held { .. })
    }

    /// True when readers hold the resource on a majority ([`LockState::Shared`]).
    pub fn is_shared(&self) -> bool {
        matches!(self, Self::Shared { .. })
    }

    /// True when `lock`'s token holds the resource on a majority: held by this handle.
    /// `is_locked() && !is_held_by(lock)` means held by someone else.
    pub fn is_held_by(&self, lock: &Lock) -> bool {
        matches!(self, Self::Held { holder, .. } if holder.0 == lock.token.as_bytes())
    }

    /// Remaining time of a held lock (see [`LockState::Held`]).
    pub fn remaining(&self) -> Option<Duration> {
        match self {
            Self::Held { remaining, .. } | Self::Shared { remaining, .. } => *remaining,
            _ => None,
        }
    }
}

/// What one master holds under a resource's key, as read by
/// [`LockManager::inspect`](crate::LockManager::inspect).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyState {
    /// No key on this master.
    Absent,
    /// A string value: a lock token (ours or another holder's, or another library's).
    Held {
        /// The value. Compare with [`Lock::token`]; never log it whole.
        holder: HolderToken,
        /// The key's remaining TTL; `None` when it has none.
        remaining: Option<Duration>,
    },
    /// Readers of a read-write lock hold the key (its value is the readers' sentinel, not
    /// a token).
    Shared {
        /// The readers this master records.
        readers: usize,
        /// The key's remaining TTL; `None` when it has none.
        remaining: Option<Duration>,
    },
    /// A value of another type (a hash, a list, …): not a lock.
    NotALock,
    /// The master did not answer in time, or answered with an error.
    Failed(NodeError),
}

/// One master's answer in [`LockManager::inspect`](crate::LockManager::inspect).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct MasterKey {
    /// The master as configured, password redacted (as [`LockManager::masters`](crate::LockManager::masters)).
    pub master: Arc<str>,
    /// What it holds.
    pub state: KeyState,
    /// Who holds the lock here, when the holder stored it
    /// ([`LockRequest::holder_info`](crate::LockRequest::holder_info)) and the key still
    /// holds that holder's token. Untrusted text: print it escaped
    /// ([`Printable`](crate::Printable)).
    pub holder_info: Option<crate::HolderInfo>,
    /// For a Redis Cluster member: the node (`host:port`) that serves the key's slot, which
    /// answered; `None` for other members (and for a cluster whose layout is not known).
    pub node: Option<Arc<str>>,
    /// A writer ([`LockManager::write`](crate::LockManager::write)) waits for the key on
    /// this master: its intent, which makes new readers queue behind it, is there. Read
    /// only where the key is held (by a lock, a writer or readers); `false` elsewhere and
    /// when the intent could not be read.
    pub writer_waiting: bool,
}

/// The masters that may hold a lock's key: those that granted it, and those whose acquire
/// request was sent and not refused (a late reply marks its master as it comes back). Bit
/// `i` stands for master `i`; masters past the 64th always count.
#[derive(Debug, Default)]
pub(crate) struct MayHold(std::sync::atomic::AtomicU64);

impl MayHold {
    fn bit(i: usize) -> Option<u64> {
        u32::try_from(i).ok().and_then(|i| 1u64.checked_shl(i))
    }

    /// Marks master `i`.
    pub(crate) fn mark(&self, i: usize) {
        if let Some(bit) = Self::bit(i) {
            self.0.fetch_or(bit, Ordering::SeqCst);
        }
    }

    /// Whether master `i` may hold the key.
    pub(crate) fn contains(&self, i: usize) -> bool {
        Self::bit(i).is_none_or(|bit| self.0.load(Ordering::SeqCst) & bit != 0)
    }
}
