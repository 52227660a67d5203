//! Errors: [`LockError`] for every operation, [`ConfigError`] for the builder, and the
//! per-master detail ([`NodeOutcome`], [`NodeStatus`], [`NodeError`]) that keeps "held by
//! someone else" apart from "Redis is down".
//!
//! No message, `Display` or `Debug` output contains a password: master addresses are
//! redacted when the manager is built, and server error texts are scrubbed of the configured
//! secrets.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::keys::Printable;

/// Which operation an error or outcome belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Operation {
    /// Taking the lock (`lock`, `try_lock`).
    Acquire,
    /// Resetting the lock's TTL (`extend`).
    Extend,
    /// Deleting the lock (`unlock`).
    Release,
    /// Reading who holds a resource (`is_locked`).
    Query,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Acquire => "acquire",
            Self::Extend => "extend",
            Self::Release => "release",
            Self::Query => "query",
        })
    }
}

/// Why a request to one master failed.
///
/// Server error texts are kept (they name the cause: `WRONGPASS`, `OOM`, …) but scrubbed of
/// configured passwords.
///
/// # Source chain
///
/// Variants that carry a [`Cause`] keep the error they came from: [`source`](std::error::Error::source)
/// leads to redis-rs's error and on to its own cause (the I/O error, rustls's verdict), so
/// that `anyhow`'s `{:#}` or a `tracing` error field shows the whole story. No level of the
/// chain shows a password: when one of them would, the chain is replaced by a copy of its
/// texts with the passwords scrubbed. A timeout, a refusal of our own backlog, a server that
/// is not a master, a duplicate server and an unexpected reply end the chain: they are the
/// library's own findings.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NodeError {
    /// No reply within the per-master budget (`node_timeout`, or `connect_timeout` while
    /// connecting). The master may still have executed the request.
    Timeout(Duration),
    /// The TCP connection was refused: nothing listens at that address. The cause is the
    /// client's I/O error.
    Refused(Cause),
    /// Connecting or talking to the master failed (reset, broken pipe, DNS).
    Connection(Cause),
    /// The TLS handshake failed: the server's certificate is not trusted (unknown issuer,
    /// wrong name, expired), or the server refused our client certificate. The text is
    /// rustls's cause. Not transient: fix the certificates or the trusted root.
    Tls(Cause),
    /// The master rejected our credentials (`NOAUTH`, `WRONGPASS`). Not transient: never
    /// retried as if it were.
    Auth(Cause),
    /// The ACL user may not run a command the library needs (`NOPERM`, e.g. no `EVAL`).
    NoPermission(Cause),
    /// The master is at `maxmemory` and refused a write (`OOM`).
    OutOfMemory(Cause),
    /// The master is a read-only replica, or refuses writes (`READONLY`, `MISCONF`).
    ReadOnly(Cause),
    /// The server is not a master: it answered `ROLE` as a replica (or a sentinel). A
    /// replica never counts toward a quorum; after a failover a Sentinel group's member
    /// moves to the new master on its next connection.
    NotMaster(String),
    /// No sentinel of a Sentinel group named a usable master: the master name is unknown to
    /// them, the master they name is not a master, or no sentinel answered.
    Sentinel(Cause),
    /// A Redis Cluster member could not serve the key: no seed node told the cluster's
    /// layout (`CLUSTER SLOTS`), no master serves the key's slot, or the key was redirected
    /// (`MOVED`/`ASK`) more often than a layout change explains.
    Cluster(Cause),
    /// Any other error reply from the server, with its code (`ERR`, `BUSY`, `LOADING`, …).
    Server {
        /// The error code, the first word of the reply.
        code: String,
        /// The rest of the reply.
        message: Cause,
    },
    /// The reply did not have the shape our script returns.
    UnexpectedReply(String),
    /// This master is the same Redis server as another master of the manager (same
    /// `run_id`, e.g. `127.0.0.1` and `localhost`): it is refused so that one server never
    /// counts twice toward a quorum. Fix the server list.
    SameServer(String),
    /// The request never left this process: it waited — for one of the connection's
    /// in-flight slots (every one busy), or for the connection to open — until the caller's
    /// patience or the attempt's TTL ran out. Says nothing about the master: it is our
    /// backlog, not a failure of the server. The duration is how long it waited.
    Backlog(Duration),
}

impl fmt::Display for NodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout(d) => write!(f, "timed out after {d:?}"),
            Self::Refused(_) => f.write_str("connection refused"),
            Self::Connection(c) => write!(f, "connection failed: {c}"),
            Self::Tls(c) => write!(f, "TLS handshake failed: {c}"),
            Self::Auth(c) => write!(f, "authentication failed: {c}"),
            Self::NoPermission(c) => write!(f, "permission denied: {c}"),
            Self::OutOfMemory(c) => write!(f, "out of memory: {c}"),
            Self::ReadOnly(c) => write!(f, "not writable: {c}"),
            Self::NotMaster(m) => write!(f, "not a master: {m}"),
            Self::Sentinel(c) => write!(f, "sentinel lookup failed: {c}"),
            Self::Cluster(c) => write!(f, "redis cluster: {c}"),
            Self::Server { code, message } => write!(f, "server error {code}: {message}"),
            Self::UnexpectedReply(r) => write!(f, "unexpected reply: {r}"),
            Self::SameServer(other) => write!(
                f,
                "same server as {other}: one server must not count twice toward a quorum"
            ),
            Self::Backlog(d) => write!(
                f,
                "not sent: waited {d:?} in this process for a free slot or the connection \
                 (local backlog, not a server failure)"
            ),
        }
    }
}

impl std::error::Error for NodeError {
    /// The error this failure came from (redis-rs's, leading on to the I/O or TLS error), if
    /// any; see [the source chain](NodeError#source-chain).
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause().and_then(Cause::error)
    }
}

impl NodeError {
    /// True for failures that repeating the request will not cure: wrong credentials,
    /// missing ACL permissions, an untrusted TLS certificate, or a master listed twice under
    /// two names.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            Self::Auth(_) | Self::NoPermission(_) | Self::SameServer(_) | Self::Tls(_)
        )
    }

    /// True when the request timed out.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::Timeout(_))
    }

    /// True when the request was never sent because it waited in this process (for a slot or
    /// the connection) until its caller stopped waiting ([`NodeError::Backlog`]): overload
    /// or impatience of the caller, not a failure of the server.
    pub fn is_backlog(&self) -> bool {
        matches!(self, Self::Backlog(_))
    }

    /// The reported cause with its underlying error, for the variants that carry one.
    pub fn cause(&self) -> Option<&Cause> {
        match self {
            Self::Refused(c)
            | Self::Connection(c)
            | Self::Tls(c)
            | Self::Auth(c)
            | Self::NoPermission(c)
            | Self::OutOfMemory(c)
            | Self::ReadOnly(c)
            | Self::Sentinel(c)
            | Self::Cluster(c)
            | Self::Server { message: c, .. } => Some(c),
            Self::Timeout(_)
            | Self::NotMaster(_)
            | Self::UnexpectedReply(_)
            | Self::SameServer(_)
            | Self::Backlog(_) => None,
        }
    }
}

/// The cause of a master's failure as reported — its text, scrubbed of the configured
/// passwords — with the error it came from (redis-rs's, which leads on to the I/O error or
/// rustls's verdict), so that [`NodeError`]'s `source()` chain goes on.
///
/// It reads as its text (`Deref<Target = str>`, `Display`, `Debug` as a string), and two
/// causes are equal when their texts are: the underlying error is carried along, never
/// compared.
///
/// # Examples
///
/// ```
/// use tokio_redlock::{Cause, NodeError};
///
/// let e = NodeError::Auth(Cause::from("WRONGPASS invalid username-password pair"));
/// assert_eq!(e.to_string(), "authentication failed: WRONGPASS invalid username-password pair");
/// assert!(e.cause().is_some_and(|c| c.starts_with("WRONGPASS")));
/// // Made from a text alone, it has no underlying error.
/// assert!(std::error::Error::source(&e).is_none());
/// ```
#[derive(Clone)]
pub struct Cause {
    text: Arc<str>,
    error: Option<Underlying>,
}

/// The error behind a [`Cause`].
#[derive(Clone)]
enum Underlying {
    /// The original error: no level of its chain shows a secret.
    Original(Arc<dyn std::error::Error + Send + Sync>),
    /// A copy of the texts of the original chain, scrubbed: some level showed a secret.
    Scrubbed(Arc<ScrubbedError>),
}

impl Cause {
    /// A cause that carries the error it came from. The caller has checked that no level of
    /// `error`'s chain shows a secret, in `Display` or `Debug`.
    pub(crate) fn with_error(
        text: impl Into<Arc<str>>,
        error: Arc<dyn std::error::Error + Send + Sync>,
    ) -> Self {
        Self {
            text: text.into(),
            error: Some(Underlying::Original(error)),
        }
    }

    /// A cause whose underlying chain is given as its texts, already scrubbed, outermost
    /// first.
    pub(crate) fn with_scrubbed_chain(text: impl Into<Arc<str>>, chain: Vec<String>) -> Self {
        let scrubbed = chain.into_iter().rev().fold(None, |next, text| {
            Some(ScrubbedError {
                text,
                next: next.map(Box::new),
            })
        });
        Self {
            text: text.into(),
            error: scrubbed.map(|e| Underlying::Scrubbed(Arc::new(e))),
        }
    }

    /// The same underlying error under another text (the text of a wrapping message).
    pub(crate) fn retext(&self, text: impl Into<Arc<str>>) -> Self {
        Self {
            text: text.into(),
            error: self.error.clone(),
        }
    }

    /// The text, scrubbed of passwords.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The error this cause came from, if any: redis-rs's (its own `source()` leads on), or a
    /// copy of that chain's texts with passwords scrubbed when a level would show one.
    pub fn error(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self.error.as_ref()? {
            Underlying::Original(e) => Some(&**e),
            Underlying::Scrubbed(e) => Some(&**e),
        }
    }
}

impl std::ops::Deref for Cause {
    type Target = str;

    fn deref(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.text, f)
    }
}

impl PartialEq for Cause {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for Cause {}

impl PartialEq<str> for Cause {
    fn eq(&self, other: &str) -> bool {
        &*self.text == other
    }
}

impl PartialEq<&str> for Cause {
    fn eq(&self, other: &&str) -> bool {
        &*self.text == *other
    }
}

impl From<String> for Cause {
    fn from(text: String) -> Self {
        Self {
            text: text.into(),
            error: None,
        }
    }
}

impl From<&str> for Cause {
    fn from(text: &str) -> Self {
        Self {
            text: text.into(),
            error: None,
        }
    }
}

/// One level of an error chain whose texts had to be scrubbed of a password: its text, and
/// the next level.
struct ScrubbedError {
    text: String,
    next: Option<Box<ScrubbedError>>,
}

impl fmt::Display for ScrubbedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for ScrubbedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.text, f)
    }
}

impl std::error::Error for ScrubbedError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        let next: &(dyn std::error::Error + 'static) = self.next.as_deref()?;
        Some(next)
    }
}

/// What one master answered in one round.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NodeStatus {
    /// The master did what was asked: granted the lock, extended it, or deleted our key.
    Done,
    /// The key holds a token: in the outcomes of an acquisition, extension or release, one
    /// other than ours, so someone else holds the lock on this master. (In the outcomes of
    /// [`LockManager::is_locked`](crate::LockManager::is_locked), which compares no token,
    /// it means "some token holds the key here", ours included; it is shown as "held".)
    HeldByOther {
        /// Remaining TTL of the other holder's key, when the master reported it.
        remaining: Option<Duration>,
    },
    /// The key does not exist on this master (it expired, was released, or never was set).
    Absent,
    /// The key exists but is not a string, so it is not a lock (e.g. a hash under that name).
    NotALock,
    /// The request failed.
    Failed(NodeError),
    /// A semaphore's record of its number of permits on this master names another number
    /// than the acquisition's ([`LockError::PermitsMismatch`]).
    OtherPermits {
        /// The number recorded there; `None` when the record is not a number.
        recorded: Option<u32>,
    },
    /// The round was decided before this master answered, and its reply was not awaited.
    /// Shown as "no answer before the verdict". (A master whose request never left and that
    /// is known to fail at once with a permanent cause — e.g. the same server as another
    /// master — shows that failure instead.)
    NotAwaited,
}

/// One master's part in a round: its (redacted) address and what it answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeOutcome {
    pub(crate) master: Arc<str>,
    pub(crate) status: NodeStatus,
}

impl NodeOutcome {
    /// The master's address as configured, with any password replaced by `***`.
    pub fn master(&self) -> &str {
        &self.master
    }

    /// What the master answered.
    pub fn status(&self) -> &NodeStatus {
        &self.status
    }
}

impl fmt::Display for NodeOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.master)?;
        match &self.status {
            NodeStatus::Done => f.write_str("ok"),
            // Not "by another holder": queries compare no token, so the holder may be us.
            NodeStatus::HeldByOther { remaining: Some(r) } => {
                write!(f, "held, expires in {r:?}")
            }
            NodeStatus::HeldByOther { remaining: None } => f.write_str("held"),
            NodeStatus::Absent => f.write_str("no lock"),
            NodeStatus::NotALock => f.write_str("key holds a non-lock value"),
            NodeStatus::OtherPermits {
                recorded: Some(permits),
            } => write!(f, "the semaphore is recorded with {permits} permits"),
            NodeStatus::OtherPermits { recorded: None } => {
                f.write_str("the semaphore's record of its permits is not a number")
            }
            NodeStatus::Failed(e) => write!(f, "{e}"),
            NodeStatus::NotAwaited => f.write_str("no answer before the verdict"),
        }
    }
}

/// Formats a list of outcomes as `a: ok; b: timed out after 50ms`.
struct Outcomes<'a>(&'a [NodeOutcome]);

impl fmt::Display for Outcomes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, o) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{o}")?;
        }
        Ok(())
    }
}

fn show_outcomes(o: &[NodeOutcome]) -> Outcomes<'_> {
    Outcomes(o)
}

fn printable(r: &[u8]) -> Printable<'_> {
    Printable(r)
}

/// Formats keys with their hash slots as `` `a` in slot 1, `b` in slot 2 ``.
struct Slots<'a>(&'a [(Arc<[u8]>, u16)]);

impl fmt::Display for Slots<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (key, slot)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "`{}` in slot {slot}", Printable(key))?;
        }
        Ok(())
    }
}

fn show_slots(s: &[(Arc<[u8]>, u16)]) -> Slots<'_> {
    Slots(s)
}

/// The error of every lock operation.
///
/// Match on the variant, or ask a predicate: [`is_conflict`](Self::is_conflict) (someone else
/// holds it), [`is_unavailable`](Self::is_unavailable) (too few masters reachable),
/// [`is_not_held`](Self::is_not_held) (our lock lapsed), … Variants that come from a round of
/// requests carry one [`NodeOutcome`] per master ([`outcomes`](Self::outcomes)).
///
/// Resource names are shown escaped and cut at 64 characters (in `Debug` too); tokens never
/// appear in full; passwords never appear.
///
/// # Source chain
///
/// [`source`](std::error::Error::source) is the [`NodeError`] of the first master, in the
/// order of [`LockManager::masters`](crate::LockManager::masters), whose request failed
/// ([`failures`](Self::failures) lists them all); its own `source()` leads on to redis-rs's
/// error and that error's cause (I/O, TLS). Errors where no master failed (a conflict, a lock
/// not held any more) or raised before any request have no source.
///
/// # Examples
///
/// ```no_run
/// use tokio_redlock::{LockError, NodeError, NodeStatus};
///
/// # async fn demo(manager: tokio_redlock::LockManager) {
/// match manager.try_lock("jobs:nightly").await {
///     Ok(mut lock) => {
///         // ... work ...
///         let _ = manager.unlock(&mut lock).await;
///     }
///     Err(LockError::Conflict { outcomes, .. }) => {
///         // Held elsewhere; each master says for how long.
///         for o in &outcomes {
///             if let NodeStatus::HeldByOther { remaining: Some(r) } = o.status() {
///                 println!("{} holds it for {r:?} more", o.master());
///             }
///         }
///     }
///     Err(e) if e.is_auth() => eprintln!("fix the credentials: {e}"),
///     Err(e) if e.is_unavailable() => eprintln!("Redis trouble, try later: {e}"),
///     Err(e) => eprintln!("{e}"),
/// }
/// # }
/// ```
#[non_exhaustive]
pub enum LockError {
    /// The resource is locked by another holder: a majority of the reachable masters
    /// refused us on every attempt.
    Conflict {
        /// The resource name.
        resource: Arc<[u8]>,
        /// Attempts made.
        attempts: u32,
        /// Time from the first attempt's start to giving up.
        waited: Duration,
        /// The last attempt's per-master answers.
        outcomes: Vec<NodeOutcome>,
    },
    /// Too few masters could be reached to decide (they timed out, refused the connection,
    /// rejected our credentials, …). Not retried by `lock`: waiting does not fix it within
    /// a lock's budget.
    NoQuorum {
        /// The operation that failed.
        operation: Operation,
        /// The resource name.
        resource: Arc<[u8]>,
        /// Masters needed.
        quorum: usize,
        /// Masters configured.
        masters: usize,
        /// Per-master answers and causes.
        outcomes: Vec<NodeOutcome>,
    },
    /// A quorum agreed, but too late: the TTL minus the time the round took minus the drift
    /// left no validity. The keys written in that round were released (acquire) or left to
    /// expire (extend); the lock's deadline stays (or becomes the new TTL's when earlier).
    ValidityExhausted {
        /// The operation that failed.
        operation: Operation,
        /// The resource name.
        resource: Arc<[u8]>,
        /// The TTL requested.
        ttl: Duration,
        /// How long the last round took.
        elapsed: Duration,
        /// Attempts made.
        attempts: u32,
    },
    /// The lock is not ours any more: on a majority of masters its key had expired, was
    /// released, or holds another token. Every reachable master that still had our token
    /// has deleted it (release) or extended it (extend).
    NotHeld {
        /// The operation that found it.
        operation: Operation,
        /// The resource name.
        resource: Arc<[u8]>,
        /// Per-master answers.
        outcomes: Vec<NodeOutcome>,
    },
    /// The lock was granted but the masters' fencing counters could not be brought to agree
    /// on a token (another client raised them at the same time, or masters failed); the lock
    /// was released. Retried by `lock` like a conflict.
    FencingContention {
        /// The resource name.
        resource: Arc<[u8]>,
        /// The last FENCE round's per-master answers.
        outcomes: Vec<NodeOutcome>,
    },
    /// The lock was lost while it was held: no extension succeeded before its deadline, or a
    /// majority showed it expired or taken (see [`LockGuard`](crate::LockGuard)).
    Lost {
        /// The resource name.
        resource: Arc<[u8]>,
    },
    /// The key under the resource's name holds a value that is not a lock (not a string),
    /// e.g. a hash written by something else; or, for a semaphore's permit or a reader, a
    /// helper key the lock needs free holds a value no lock wrote (another type, or no TTL):
    /// a slot of the semaphore `resource` while every other slot is taken, or the writer
    /// intent of `resource`. Such a value would never be freed. Nothing was changed. Not
    /// retried.
    NotALock {
        /// The resource name.
        resource: Arc<[u8]>,
        /// Per-master answers.
        outcomes: Vec<NodeOutcome>,
    },
    /// The resource's key is a helper key of another resource's lock key: its fencing
    /// counter (`{<key>}:fence`), its holder record (`{<key>}:holder`), a semaphore's
    /// permits or slot key (`{<key>}:permits`, `{<key>}:permit:<n>`), or a read-write lock's
    /// readers' set, reader lease or writer intent (`{<key>}:readers`,
    /// `{<key>}:reader:<token>`, `{<key>}:wintent`); without the braces when `<key>` has a
    /// hash tag. Such keys are reserved: a lock on a counter would break that resource's
    /// fenced acquisitions (and the counter never expires), a lock on a holder record would
    /// change the holder it shows, a lock on a slot would take a permit behind the
    /// semaphore's users. Nothing was sent. Not retried.
    ReservedKey {
        /// The resource name.
        resource: Arc<[u8]>,
        /// The lock key (prefix included) whose helper key the resource's key is.
        helper_of: Arc<[u8]>,
        /// What kind of helper key: `"fencing counter"`, `"holder record"`,
        /// `"semaphore's permits"`, `"semaphore slot"`, `"readers' set"`, `"reader lease"`
        /// or `"writer intent"`.
        helper: &'static str,
    },
    /// The keys of one request are in different Redis Cluster hash slots, which a cluster
    /// member cannot serve in one script. Nothing was sent. Not retried: a key's slot never
    /// changes. Every key and helper key of one resource shares a slot, except for a lock key
    /// holding a `}` without a hash tag (`a}b`); put the resource in a hash tag
    /// (`{a}b}`), or rename it. The resources of a multi-resource lock share a slot only
    /// when they share a hash tag (`{orders}:1`, `{orders}:2`).
    CrossSlot {
        /// Each key with its hash slot.
        slots: Vec<(Arc<[u8]>, u16)>,
    },
    /// The semaphore's users disagree on its number of permits: a majority of masters
    /// record another number for it (set by a user that gave another number, while its
    /// permits were being taken). Nothing was taken. Not retried: give every user of the
    /// name the same number, or wait until the other users' permits have expired.
    PermitsMismatch {
        /// The semaphore's name.
        resource: Arc<[u8]>,
        /// The number of permits this call gave.
        permits: u32,
        /// The number the masters record, when it is one.
        found: Option<u32>,
        /// Per-master answers.
        outcomes: Vec<NodeOutcome>,
    },
    /// An argument was rejected before any request was sent.
    InvalidArgument(String),
    /// The configuration was rejected by [`LockManagerBuilder::build`](crate::LockManagerBuilder::build).
    /// No lock operation returns it: it comes from converting a [`ConfigError`] with `?` or
    /// `into()`, so one error type can carry both.
    Config(ConfigError),
    /// [`LockManager::close`](crate::LockManager::close) was called; no new requests are sent.
    /// An acquisition (or a wait) in progress when the manager closed ends with it too,
    /// rather than with the failures of the connections that `close` dropped.
    Closed,
}

impl fmt::Display for LockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Conflict {
                resource,
                attempts,
                waited,
                outcomes,
            } => write!(
                f,
                "resource `{}` is locked by another holder ({attempts} attempt(s) in {waited:?}): {}",
                printable(resource),
                show_outcomes(outcomes)
            ),
            Self::NoQuorum {
                operation,
                resource,
                quorum,
                masters,
                outcomes,
            } => write!(
                f,
                "{operation} of `{}` reached no quorum ({quorum} of {masters} masters needed): {}",
                printable(resource),
                show_outcomes(outcomes)
            ),
            Self::ValidityExhausted {
                operation,
                resource,
                ttl,
                elapsed,
                attempts,
            } => write!(
                f,
                "{operation} of `{}` left no validity: a {ttl:?} TTL, and the round took \
                 {elapsed:?} ({attempts} attempt(s))",
                printable(resource)
            ),
            Self::NotHeld {
                resource, outcomes, ..
            } => write!(
                f,
                "lock on `{}` is not held: it expired or another holder took it: {}",
                printable(resource),
                show_outcomes(outcomes)
            ),
            Self::FencingContention { resource, outcomes } => write!(
                f,
                "no fencing token could be agreed for `{}`: {}",
                printable(resource),
                show_outcomes(outcomes)
            ),
            Self::Lost { resource } => {
                write!(f, "lock on `{}` was lost while held", printable(resource))
            }
            Self::NotALock { resource, outcomes } => write!(
                f,
                "key `{}` holds a value that is not a lock: {}",
                printable(resource),
                show_outcomes(outcomes)
            ),
            Self::ReservedKey {
                resource,
                helper_of,
                helper,
            } => write!(
                f,
                "resource `{}` cannot be locked: its key is the {helper} of the lock key `{}` \
                 (keys `{{<key>}}:fence`, `:holder`, `:permits`, `:permit:<n>`, `:readers`, \
                 `:reader:<token>` and `:wintent`, without braces where `<key>` has a hash \
                 tag, are reserved)",
                printable(resource),
                printable(helper_of)
            ),
            Self::PermitsMismatch {
                resource,
                permits,
                found,
                outcomes,
            } => write!(
                f,
                "semaphore `{}` is used with {} permits elsewhere, not {permits}: {}",
                printable(resource),
                found.map_or_else(|| "another number of".to_owned(), |f| f.to_string()),
                show_outcomes(outcomes)
            ),
            Self::CrossSlot { slots } => {
                write!(
                    f,
                    "keys in different Redis Cluster hash slots: {}",
                    show_slots(slots)
                )
            }
            Self::InvalidArgument(reason) => write!(f, "invalid argument: {reason}"),
            Self::Config(e) => fmt::Display::fmt(e, f),
            Self::Closed => f.write_str("the lock manager is closed"),
        }
    }
}

/// Resource names as [`Printable`] shows them (escaped, cut at 64 characters), tokens never:
/// a `Debug` of an error stays readable whatever the resource, and shows no secret.
impl fmt::Debug for LockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Conflict {
                resource,
                attempts,
                waited,
                outcomes,
            } => f
                .debug_struct("Conflict")
                .field("resource", &printable(resource))
                .field("attempts", attempts)
                .field("waited", waited)
                .field("outcomes", outcomes)
                .finish(),
            Self::NoQuorum {
                operation,
                resource,
                quorum,
                masters,
                outcomes,
            } => f
                .debug_struct("NoQuorum")
                .field("operation", operation)
                .field("resource", &printable(resource))
                .field("quorum", quorum)
                .field("masters", masters)
                .field("outcomes", outcomes)
                .finish(),
            Self::ValidityExhausted {
                operation,
                resource,
                ttl,
                elapsed,
                attempts,
            } => f
                .debug_struct("ValidityExhausted")
                .field("operation", operation)
                .field("resource", &printable(resource))
                .field("ttl", ttl)
                .field("elapsed", elapsed)
                .field("attempts", attempts)
                .finish(),
            Self::NotHeld {
                operation,
                resource,
                outcomes,
            } => f
                .debug_struct("NotHeld")
                .field("operation", operation)
                .field("resource", &printable(resource))
                .field("outcomes", outcomes)
                .finish(),
            Self::FencingContention { resource, outcomes } => f
                .debug_struct("FencingContention")
                .field("resource", &printable(resource))
                .field("outcomes", outcomes)
                .finish(),
            Self::Lost { resource } => f
                .debug_struct("Lost")
                .field("resource", &printable(resource))
                .finish(),
            Self::NotALock { resource, outcomes } => f
                .debug_struct("NotALock")
                .field("resource", &printable(resource))
                .field("outcomes", outcomes)
                .finish(),
            Self::ReservedKey {
                resource,
                helper_of,
                helper,
            } => f
                .debug_struct("ReservedKey")
                .field("resource", &printable(resource))
                .field("helper_of", &printable(helper_of))
                .field("helper", helper)
                .finish(),
            Self::PermitsMismatch {
                resource,
                permits,
                found,
                outcomes,
            } => f
                .debug_struct("PermitsMismatch")
                .field("resource", &printable(resource))
                .field("permits", permits)
                .field("found", found)
                .field("outcomes", outcomes)
                .finish(),
            Self::CrossSlot { slots } => {
                let keys: Vec<(String, u16)> = slots
                    .iter()
                    .map(|(key, slot)| (printable(key).to_string(), *slot))
                    .collect();
                f.debug_struct("CrossSlot").field("slots", &keys).finish()
            }
            Self::InvalidArgument(reason) => {
                f.debug_tuple("InvalidArgument").field(reason).finish()
            }
            Self::Config(e) => f.debug_tuple("Config").field(e).finish(),
            Self::Closed => f.write_str("Closed"),
        }
    }
}

impl std::error::Error for LockError {
    /// For an error that comes from a round of requests: the [`NodeError`] of the first
    /// master, in the order of [`LockManager::masters`](crate::LockManager::masters), whose
    /// request failed (the others are in [`outcomes`](LockError::outcomes)). Its own
    /// `source()` leads on to redis-rs's error and its cause. `None` when no master failed
    /// (a conflict, a lock not held any more) and for errors raised before any request.
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        if let Self::Config(e) = self {
            return e.source();
        }
        let first: &(dyn std::error::Error + 'static) = self.failures().next()?;
        Some(first)
    }
}

impl From<ConfigError> for LockError {
    fn from(e: ConfigError) -> Self {
        Self::Config(e)
    }
}

impl LockError {
    /// True when another holder has the lock ([`LockError::Conflict`]).
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::Conflict { .. })
    }

    /// True when too few masters were reachable ([`LockError::NoQuorum`]) or the manager is
    /// closed: the answer is unknown, not "held by someone else".
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::NoQuorum { .. } | Self::Closed)
    }

    /// True when our lock had lapsed or was taken ([`LockError::NotHeld`]).
    pub fn is_not_held(&self) -> bool {
        matches!(self, Self::NotHeld { .. })
    }

    /// True when a held lock was lost ([`LockError::Lost`]).
    pub fn is_lost(&self) -> bool {
        matches!(self, Self::Lost { .. })
    }

    /// True when a quorum agreed too late to leave any validity ([`LockError::ValidityExhausted`]).
    pub fn is_validity_exhausted(&self) -> bool {
        matches!(self, Self::ValidityExhausted { .. })
    }

    /// True when a semaphore's users disagree on its number of permits
    /// ([`LockError::PermitsMismatch`]).
    pub fn is_permits_mismatch(&self) -> bool {
        matches!(self, Self::PermitsMismatch { .. })
    }

    /// True when the resource's key holds a non-lock value ([`LockError::NotALock`]).
    pub fn is_not_a_lock(&self) -> bool {
        matches!(self, Self::NotALock { .. })
    }

    /// True for errors found before any request: bad arguments or configuration, or a
    /// resource whose key is reserved for a fencing counter.
    pub fn is_invalid_input(&self) -> bool {
        matches!(
            self,
            Self::InvalidArgument(_)
                | Self::Config(_)
                | Self::ReservedKey { .. }
                | Self::CrossSlot { .. }
        )
    }

    /// True when a request's keys are in different Redis Cluster hash slots
    /// ([`LockError::CrossSlot`]).
    pub fn is_cross_slot(&self) -> bool {
        matches!(self, Self::CrossSlot { .. })
    }

    /// True when the resource's key is a helper key of another resource (fencing counter,
    /// holder record, semaphore permits or slot, readers' set or lease, writer intent:
    /// [`LockError::ReservedKey`]).
    pub fn is_reserved_key(&self) -> bool {
        matches!(self, Self::ReservedKey { .. })
    }

    /// True when some master rejected our credentials or ACL permissions: a configuration
    /// problem, not a transient one.
    pub fn is_auth(&self) -> bool {
        self.outcomes().iter().any(|o| {
            matches!(
                &o.status,
                NodeStatus::Failed(NodeError::Auth(_) | NodeError::NoPermission(_))
            )
        })
    }

    /// True when some master failed in a way that retrying will not cure
    /// ([`NodeError::is_permanent`]: credentials, ACL permissions, an untrusted TLS
    /// certificate, one server listed twice) — whatever the outcome of the call.
    pub fn has_permanent_failure(&self) -> bool {
        self.outcomes()
            .iter()
            .any(|o| matches!(&o.status, NodeStatus::Failed(e) if e.is_permanent()))
    }

    /// The errors of the masters whose request failed, in the order of
    /// [`LockManager::masters`](crate::LockManager::masters).
    pub fn failures(&self) -> impl Iterator<Item = &NodeError> {
        self.outcomes().iter().filter_map(|o| match &o.status {
            NodeStatus::Failed(e) => Some(e),
            _ => None,
        })
    }

    /// The per-master answers of the round that failed; empty for errors raised before any
    /// request.
    pub fn outcomes(&self) -> &[NodeOutcome] {
        match self {
            Self::Conflict { outcomes, .. }
            | Self::NoQuorum { outcomes, .. }
            | Self::NotHeld { outcomes, .. }
            | Self::NotALock { outcomes, .. }
            | Self::FencingContention { outcomes, .. }
            | Self::PermitsMismatch { outcomes, .. } => outcomes,
            _ => &[],
        }
    }
}

/// A configuration rejected by [`LockManagerBuilder::build`](crate::LockManagerBuilder::build).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// No master was configured.
    #[error("no Redis master configured: give at least one server URL")]
    NoServers,
    /// A server URL could not be parsed. The URL is shown with its password redacted.
    #[error("invalid server URL `{url}`: {reason}")]
    InvalidUrl {
        /// The URL, password replaced by `***`.
        url: String,
        /// Why it was rejected.
        reason: String,
    },
    /// The same master was listed twice, which would let one server count twice toward a
    /// quorum.
    #[error("master `{0}` is listed more than once")]
    DuplicateServer(String),
    /// A TTL was zero or below one millisecond (Redis `PX` counts whole milliseconds).
    #[error("TTL must be at least 1 ms, got {0:?}")]
    TtlTooSmall(Duration),
    /// A TTL was above [`MAX_TTL`](crate::MAX_TTL).
    #[error("TTL must be at most {max:?}, got {ttl:?}")]
    TtlTooLarge {
        /// The TTL given.
        ttl: Duration,
        /// The largest accepted.
        max: Duration,
    },
    /// The TTL is not above its drift (`ttl × drift_factor + 2 ms`), so no lock could ever be
    /// valid.
    #[error(
        "TTL {ttl:?} is not above its clock-drift allowance {drift:?}: no lock could ever be valid"
    )]
    TtlNotAboveDrift {
        /// The TTL given.
        ttl: Duration,
        /// Its drift allowance.
        drift: Duration,
    },
    /// The drift factor was outside `[0, 1)` or not a number.
    #[error("drift factor must lie in [0, 1), got {0}")]
    DriftFactor(f64),
    /// The retry delay plus its jitter, the longest sleep between two attempts, is above
    /// [`MAX_RETRY_SLEEP`](crate::MAX_RETRY_SLEEP): an acquisition would sleep that long
    /// after the resource is free.
    #[error(
        "retry delay {delay:?} plus jitter {jitter:?} must be at most {max:?}: a longer sleep \
         between attempts keeps the caller waiting after the resource is free (to wait long \
         for a lock, use wait())"
    )]
    RetrySleepTooLong {
        /// The retry delay given.
        delay: Duration,
        /// The jitter given.
        jitter: Duration,
        /// The longest sleep accepted.
        max: Duration,
    },
    /// The per-master timeout was zero.
    #[error("node timeout must be above zero")]
    ZeroNodeTimeout,
    /// The connect timeout was zero.
    #[error("connect timeout must be above zero")]
    ZeroConnectTimeout,
    /// The per-master timeout was not below the TTL, so a single slow master could eat the
    /// whole validity.
    #[error("node timeout ({node_timeout:?}) must be below the TTL ({ttl:?})")]
    NodeTimeoutNotBelowTtl {
        /// The per-master timeout.
        node_timeout: Duration,
        /// The default TTL.
        ttl: Duration,
    },
    /// TLS settings (a root certificate, a client certificate, or no verification) were
    /// given, but no member uses TLS (`rediss://`, `rediss+sentinel://`): the connections
    /// would silently be plaintext.
    #[error(
        "TLS settings are configured but no server URL uses TLS: write rediss:// (or \
         rediss+sentinel://)"
    )]
    TlsWithoutTlsServer,
    /// A certificate or key file named in a [`LockManagerConfig`](crate::LockManagerConfig)
    /// could not be read.
    #[error("cannot read {what} `{path}`: {reason}")]
    TlsFile {
        /// Which file: "root certificate", "client certificate" or "client key".
        what: &'static str,
        /// The path as configured.
        path: String,
        /// The I/O error.
        reason: String,
    },
    /// A root certificate, client certificate or client key given to the builder is not
    /// PEM of the right kind (e.g. a DER file, or a certificate given as the key).
    #[error("the {what} is not usable PEM: {reason}")]
    InvalidPem {
        /// Which input: "root certificate", "client certificate" or "client key".
        what: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// TLS settings were given but the crate was built without its `tls` feature.
    #[error("TLS settings need the crate's `tls` feature")]
    TlsFeatureDisabled,
    /// A client certificate was given without its key, or a key without its certificate.
    #[error("mutual TLS needs both a client certificate and its key")]
    TlsClientIdentityIncomplete,
    /// An environment variable that should name the servers is unset, empty or not UTF-8.
    #[error(
        "environment variable {0} is unset or empty: set it to a comma-separated list of redis:// URLs"
    )]
    MissingEnv(&'static str),
}

impl ConfigError {
    pub(crate) fn check_ttl(ttl: Duration) -> Result<(), Self> {
        if ttl < Duration::from_millis(1) {
            Err(Self::TtlTooSmall(ttl))
        } else if ttl > crate::MAX_TTL {
            Err(Self::TtlTooLarge {
                ttl,
                max: crate::MAX_TTL,
            })
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_master_words_claim_no_more_than_is_known() {
        let shown = |status: NodeStatus| {
            NodeOutcome {
                master: "redis://a".into(),
                status,
            }
            .to_string()
        };
        // Held is all a query knows (the token may be ours); never "another holder".
        assert_eq!(
            shown(NodeStatus::HeldByOther {
                remaining: Some(Duration::from_millis(5))
            }),
            "redis://a: held, expires in 5ms"
        );
        assert_eq!(
            shown(NodeStatus::HeldByOther { remaining: None }),
            "redis://a: held"
        );
        assert_eq!(
            shown(NodeStatus::NotAwaited),
            "redis://a: no answer before the verdict"
        );
    }

    #[test]
    fn lock_error_debug_shows_resources_like_printable() {
        let huge: Arc<[u8]> = vec![b'x'; 100_000].into();
        let errors = [
            LockError::Lost {
                resource: Arc::clone(&huge),
            },
            LockError::Conflict {
                resource: Arc::clone(&huge),
                attempts: 1,
                waited: Duration::ZERO,
                outcomes: Vec::new(),
            },
            LockError::ReservedKey {
                resource: Arc::clone(&huge),
                helper_of: Arc::clone(&huge),
                helper: "fencing counter",
            },
        ];
        let cut = Printable(&huge).to_string();
        for e in errors {
            let debug = format!("{e:?}");
            assert!(debug.len() < 400, "{} bytes: {debug:.200}", debug.len());
            assert!(debug.contains(&format!("\"{cut}\"")), "{debug}");
        }
        let e = LockError::Lost {
            resource: Arc::from(&b"r\x1b[2J"[..]),
        };
        assert_eq!(format!("{e:?}"), r#"Lost { resource: "r\u{1b}[2J" }"#);
    }

    #[test]
    fn lock_error_source_is_the_first_failed_master() {
        let e = LockError::NoQuorum {
            operation: Operation::Acquire,
            resource: Arc::from(&b"r"[..]),
            quorum: 2,
            masters: 3,
            outcomes: vec![
                NodeOutcome {
                    master: "redis://a".into(),
                    status: NodeStatus::Done,
                },
                NodeOutcome {
                    master: "redis://b".into(),
                    status: NodeStatus::Failed(NodeError::Timeout(Duration::from_millis(50))),
                },
                NodeOutcome {
                    master: "redis://c".into(),
                    status: NodeStatus::Failed(NodeError::Auth("WRONGPASS".into())),
                },
            ],
        };
        let source = std::error::Error::source(&e).and_then(|s| s.downcast_ref::<NodeError>());
        assert_eq!(source, Some(&NodeError::Timeout(Duration::from_millis(50))));
        assert_eq!(e.failures().count(), 2);
        assert!(std::error::Error::source(&LockError::Closed).is_none());
    }

    #[test]
    fn messages_name_the_cause_per_master() {
        let e = LockError::NoQuorum {
            operation: Operation::Acquire,
            resource: Arc::from(&b"r\xff"[..]),
            quorum: 2,
            masters: 3,
            outcomes: vec![
                NodeOutcome {
                    master: "redis://a".into(),
                    status: NodeStatus::Failed(NodeError::Auth("WRONGPASS".into())),
                },
                NodeOutcome {
                    master: "redis://b".into(),
                    status: NodeStatus::Failed(NodeError::Timeout(Duration::from_millis(50))),
                },
            ],
        };
        let s = e.to_string();
        assert!(s.contains("r\\xff"), "{s}");
        assert!(
            s.contains("redis://a: authentication failed: WRONGPASS"),
            "{s}"
        );
        assert!(s.contains("timed out after 50ms"), "{s}");
        assert!(e.is_unavailable() && e.is_auth() && !e.is_conflict());
    }
}
