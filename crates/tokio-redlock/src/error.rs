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
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// No reply within the per-master budget (`node_timeout`, or `connect_timeout` while
    /// connecting). The master may still have executed the request.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The TCP connection was refused: nothing listens at that address.
    #[error("connection refused")]
    Refused,
    /// Connecting or talking to the master failed (reset, broken pipe, DNS).
    #[error("connection failed: {0}")]
    Connection(String),
    /// The TLS handshake failed: the server's certificate is not trusted (unknown issuer,
    /// wrong name, expired), or the server refused our client certificate. The text is
    /// rustls's cause. Not transient: fix the certificates or the trusted root.
    #[error("TLS handshake failed: {0}")]
    Tls(String),
    /// The master rejected our credentials (`NOAUTH`, `WRONGPASS`). Not transient: never
    /// retried as if it were.
    #[error("authentication failed: {0}")]
    Auth(String),
    /// The ACL user may not run a command the library needs (`NOPERM`, e.g. no `EVAL`).
    #[error("permission denied: {0}")]
    NoPermission(String),
    /// The master is at `maxmemory` and refused a write (`OOM`).
    #[error("out of memory: {0}")]
    OutOfMemory(String),
    /// The master is a read-only replica, or refuses writes (`READONLY`, `MISCONF`).
    #[error("not writable: {0}")]
    ReadOnly(String),
    /// The server is not a master: it answered `ROLE` as a replica (or a sentinel). A
    /// replica never counts toward a quorum; after a failover a Sentinel group's member
    /// moves to the new master on its next connection.
    #[error("not a master: {0}")]
    NotMaster(String),
    /// No sentinel of a Sentinel group named a usable master: the master name is unknown to
    /// them, the master they name is not a master, or no sentinel answered.
    #[error("sentinel lookup failed: {0}")]
    Sentinel(String),
    /// A Redis Cluster member could not serve the key: no seed node told the cluster's
    /// layout (`CLUSTER SLOTS`), no master serves the key's slot, or the key was redirected
    /// (`MOVED`/`ASK`) more often than a layout change explains.
    #[error("redis cluster: {0}")]
    Cluster(String),
    /// Any other error reply from the server, with its code (`ERR`, `BUSY`, `LOADING`, …).
    #[error("server error {code}: {message}")]
    Server {
        /// The error code, the first word of the reply.
        code: String,
        /// The rest of the reply.
        message: String,
    },
    /// The reply did not have the shape our script returns.
    #[error("unexpected reply: {0}")]
    UnexpectedReply(String),
    /// This master is the same Redis server as another master of the manager (same
    /// `run_id`, e.g. `127.0.0.1` and `localhost`): it is refused so that one server never
    /// counts twice toward a quorum. Fix the server list.
    #[error("same server as {0}: one server must not count twice toward a quorum")]
    SameServer(String),
    /// The request never left this process: it waited — for one of the connection's
    /// in-flight slots (every one busy), or for the connection to open — until the caller's
    /// patience or the attempt's TTL ran out. Says nothing about the master: it is our
    /// backlog, not a failure of the server. The duration is how long it waited.
    #[error(
        "not sent: waited {0:?} in this process for a free slot or the connection (local backlog, not a server failure)"
    )]
    Backlog(Duration),
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
    /// The round was decided before this master answered, and its reply was not awaited.
    /// Shown as "no answer before the verdict".
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
            NodeStatus::HeldByOther { remaining: Some(r) } => write!(f, "held for {r:?}"),
            NodeStatus::HeldByOther { remaining: None } => f.write_str("held"),
            NodeStatus::Absent => f.write_str("no lock"),
            NodeStatus::NotALock => f.write_str("key holds a non-lock value"),
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
/// Resource names are shown escaped and cut at 64 characters; tokens never appear in full;
/// passwords never appear.
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
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// The resource is locked by another holder: a majority of the reachable masters
    /// refused us on every attempt.
    #[error(
        "resource `{}` is locked by another holder ({attempts} attempt(s) in {waited:?}): {}",
        printable(.resource), show_outcomes(.outcomes)
    )]
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
    #[error(
        "{operation} of `{}` reached no quorum ({quorum} of {masters} masters needed): {}",
        printable(.resource), show_outcomes(.outcomes)
    )]
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
    #[error(
        "{operation} of `{}` left no validity: a {ttl:?} TTL, and the round took {elapsed:?} ({attempts} attempt(s))",
        printable(.resource)
    )]
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
    #[error(
        "lock on `{}` is not held: it expired or another holder took it: {}",
        printable(.resource), show_outcomes(.outcomes)
    )]
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
    #[error("no fencing token could be agreed for `{}`: {}", printable(.resource), show_outcomes(.outcomes))]
    FencingContention {
        /// The resource name.
        resource: Arc<[u8]>,
        /// The last FENCE round's per-master answers.
        outcomes: Vec<NodeOutcome>,
    },
    /// The lock was lost while it was held: no extension succeeded before its deadline, or a
    /// majority showed it expired or taken (see [`LockGuard`](crate::LockGuard)).
    #[error("lock on `{}` was lost while held", printable(.resource))]
    Lost {
        /// The resource name.
        resource: Arc<[u8]>,
    },
    /// The key under the resource's name holds a value that is not a lock (not a string),
    /// e.g. a hash written by something else. Nothing was changed. Not retried.
    #[error("key `{}` holds a value that is not a lock: {}", printable(.resource), show_outcomes(.outcomes))]
    NotALock {
        /// The resource name.
        resource: Arc<[u8]>,
        /// Per-master answers.
        outcomes: Vec<NodeOutcome>,
    },
    /// The resource's key is another resource's fencing counter (`{<key>}:fence`, or
    /// `<key>:fence` when `<key>` has a hash tag): such keys are reserved, since a lock there
    /// would break that resource's fenced acquisitions, and the counter never expires.
    /// Nothing was sent. Not retried.
    #[error(
        "resource `{}` cannot be locked: its key is the fencing counter of the lock key `{}` \
         (keys `{{<key>}}:fence`, and `<key>:fence` where `<key>` has a hash tag, are reserved \
         for fencing counters)",
        printable(.resource), printable(.counter_of)
    )]
    ReservedKey {
        /// The resource name.
        resource: Arc<[u8]>,
        /// The lock key (prefix included) whose counter the resource's key is.
        counter_of: Arc<[u8]>,
    },
    /// The keys of one request are in different Redis Cluster hash slots, which a cluster
    /// member cannot serve in one script. Nothing was sent. Not retried: a key's slot never
    /// changes. Every key and helper key of one resource shares a slot, except for a lock key
    /// holding a `}` without a hash tag (`a}b`); put the resource in a hash tag
    /// (`{a}b}`), or rename it.
    #[error("keys in different Redis Cluster hash slots: {}", show_slots(.slots))]
    CrossSlot {
        /// Each key with its hash slot.
        slots: Vec<(Arc<[u8]>, u16)>,
    },
    /// An argument was rejected before any request was sent.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The configuration was rejected by [`LockManagerBuilder::build`](crate::LockManagerBuilder::build).
    /// No lock operation returns it: it comes from converting a [`ConfigError`] with `?` or
    /// `into()`, so one error type can carry both.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// [`LockManager::close`](crate::LockManager::close) was called; no new requests are sent.
    #[error("the lock manager is closed")]
    Closed,
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

    /// True when the resource's key is another resource's fencing counter
    /// ([`LockError::ReservedKey`]).
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

    /// The per-master answers of the round that failed; empty for errors raised before any
    /// request.
    pub fn outcomes(&self) -> &[NodeOutcome] {
        match self {
            Self::Conflict { outcomes, .. }
            | Self::NoQuorum { outcomes, .. }
            | Self::NotHeld { outcomes, .. }
            | Self::NotALock { outcomes, .. }
            | Self::FencingContention { outcomes, .. } => outcomes,
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
            "redis://a: held for 5ms"
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
