//! Metrics through the `metrics` facade (feature `metrics`); without the feature every
//! function here is empty and compiles away. The names and labels are documented in the
//! crate docs ("Metrics"); labels are bounded: no resource names, one `master` value per
//! configured member.
#![cfg_attr(not(feature = "metrics"), allow(dead_code))]

use std::time::Duration;

use crate::error::{LockError, NodeError};

/// Acquired locks.
pub(crate) const ACQUISITIONS: &str = "redlock_acquisitions_total";
/// Failed acquisitions by reason (`conflict`, `no_quorum`, …).
pub(crate) const ACQUIRE_FAILURES: &str = "redlock_acquire_failures_total";
/// Extensions by outcome.
pub(crate) const EXTENSIONS: &str = "redlock_extensions_total";
/// Guards that lost their lock.
pub(crate) const LOSSES: &str = "redlock_losses_total";
/// Releases by outcome.
pub(crate) const RELEASES: &str = "redlock_releases_total";
/// Time to acquire (or fail), waiting included.
pub(crate) const ACQUIRE_SECONDS: &str = "redlock_acquire_seconds";
/// Time from acquisition to release.
pub(crate) const HOLD_SECONDS: &str = "redlock_hold_seconds";
/// Failed requests per master and kind.
pub(crate) const MASTER_ERRORS: &str = "redlock_master_errors_total";

/// The kind of lock an operation concerns: the `primitive` label of the per-lock metrics
/// and the `primitive` field of the traces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Primitive {
    /// A single-resource lock (`lock`, `acquire`, …).
    Mutex,
    /// A lock of several resources at once (`lock_all`, `acquire_all`).
    Multi,
    /// A semaphore permit (`semaphore(…).lock()`, `.acquire()`).
    Permit,
    /// A reader of a read-write lock (`read`, `read_lock`).
    Reader,
    /// A writer of a read-write lock (`write`, `write_lock`).
    Writer,
}

impl Primitive {
    /// The label value.
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Self::Mutex => "mutex",
            Self::Multi => "multi",
            Self::Permit => "permit",
            Self::Reader => "reader",
            Self::Writer => "writer",
        }
    }
}

/// Describes every metric (help text and unit) to the installed recorder, once per process.
pub(crate) fn describe() {
    #[cfg(feature = "metrics")]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            use metrics::{Unit, describe_counter, describe_histogram};
            describe_counter!(ACQUISITIONS, Unit::Count, "Locks acquired.");
            describe_counter!(
                ACQUIRE_FAILURES,
                Unit::Count,
                "Failed acquisitions, by reason."
            );
            describe_counter!(EXTENSIONS, Unit::Count, "Lock extensions, by outcome.");
            describe_counter!(
                LOSSES,
                Unit::Count,
                "Guards that lost their lock before releasing it."
            );
            describe_counter!(RELEASES, Unit::Count, "Lock releases, by outcome.");
            describe_histogram!(
                ACQUIRE_SECONDS,
                Unit::Seconds,
                "Time from the call to the lock (or the error), waiting included."
            );
            describe_histogram!(
                HOLD_SECONDS,
                Unit::Seconds,
                "Time from acquisition to release."
            );
            describe_counter!(
                MASTER_ERRORS,
                Unit::Count,
                "Failed requests to one master, by kind."
            );
        });
    }
}

/// Records the end of an acquisition.
pub(crate) fn acquisition<T>(
    primitive: Primitive,
    result: &Result<T, LockError>,
    elapsed: Duration,
) {
    #[cfg(feature = "metrics")]
    match result {
        Ok(_) => {
            metrics::counter!(ACQUISITIONS, "primitive" => primitive.as_str()).increment(1);
            metrics::histogram!(ACQUIRE_SECONDS, "outcome" => "ok", "primitive" => primitive.as_str())
                .record(elapsed);
        }
        Err(e) => {
            let reason = match e {
                LockError::Conflict { .. } => "conflict",
                LockError::NoQuorum { .. } => "no_quorum",
                LockError::ValidityExhausted { .. } => "validity_exhausted",
                LockError::FencingContention { .. } => "fencing_contention",
                LockError::NotALock { .. } => "not_a_lock",
                LockError::PermitsMismatch { .. } => "permits_mismatch",
                LockError::Closed => "closed",
                _ => "other",
            };
            metrics::counter!(ACQUIRE_FAILURES, "reason" => reason, "primitive" => primitive.as_str())
                .increment(1);
            metrics::histogram!(ACQUIRE_SECONDS, "outcome" => "failed", "primitive" => primitive.as_str())
                .record(elapsed);
        }
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (primitive, result, elapsed);
}

/// Records an extension.
pub(crate) fn extension(primitive: Primitive, ok: bool) {
    #[cfg(feature = "metrics")]
    metrics::counter!(EXTENSIONS, "outcome" => outcome(ok), "primitive" => primitive.as_str())
        .increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = (primitive, ok);
}

/// Records a release; `held` is the hold time of a successful one.
pub(crate) fn release(primitive: Primitive, ok: bool, held: Option<Duration>) {
    #[cfg(feature = "metrics")]
    {
        metrics::counter!(RELEASES, "outcome" => outcome(ok), "primitive" => primitive.as_str())
            .increment(1);
        if let Some(held) = held {
            metrics::histogram!(HOLD_SECONDS, "primitive" => primitive.as_str()).record(held);
        }
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (primitive, ok, held);
}

/// Records a guard's loss of its lock.
pub(crate) fn loss(primitive: Primitive) {
    #[cfg(feature = "metrics")]
    metrics::counter!(LOSSES, "primitive" => primitive.as_str()).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = primitive;
}

/// Records a failed request to one master.
pub(crate) fn master_error(master: &str, error: &NodeError) {
    #[cfg(feature = "metrics")]
    {
        let kind = match error {
            NodeError::Timeout(_) => "timeout",
            NodeError::Refused(_) => "refused",
            NodeError::Connection(_) => "connection",
            NodeError::Tls(_) => "tls",
            NodeError::Auth(_) => "auth",
            NodeError::NoPermission(_) => "no_permission",
            NodeError::OutOfMemory(_) => "out_of_memory",
            NodeError::ReadOnly(_) => "read_only",
            NodeError::NotMaster(_) => "not_master",
            NodeError::Sentinel(_) => "sentinel",
            NodeError::Cluster(_) => "cluster",
            NodeError::Server { .. } => "server",
            NodeError::UnexpectedReply(_) => "unexpected_reply",
            NodeError::SameServer(_) => "same_server",
            NodeError::Backlog(_) => "backlog",
        };
        metrics::counter!(MASTER_ERRORS, "master" => master.to_owned(), "kind" => kind)
            .increment(1);
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (master, error);
}

#[cfg(feature = "metrics")]
fn outcome(ok: bool) -> &'static str {
    if ok { "ok" } else { "failed" }
}
