//! The library's [`LockError`] mapped onto aioredlock's exception classes: a pure,
//! table-driven classification ([`classify`]), then a `NativeError` carrying the class
//! name, text, reason, resource and per-master outcomes, which the Python layer turns into
//! the exception of `tokio_redlock.errors`.
//!
//! aioredlock's rule (`aioredlock/algorithm.py`, `raise_error`): if any master failed
//! (connection, timeout), the error is a `LockRuntimeError`; otherwise a refusal is a
//! `LockAcquiringError`; a quorum with no validity left is a plain `LockError`.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use tokio_redlock::{LockError, NodeError, NodeStatus, Operation};

pyo3::create_exception!(
    _native,
    NativeError,
    pyo3::exceptions::PyException,
    "A lock error on its way to the classes of tokio_redlock.errors: args are (class name, \
     message, reason, resource, outcomes)."
);

/// The Python class an error becomes (names of `tokio_redlock.errors`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Class {
    /// `LockError`: no validity left ("Lock timeout"), or an unknown library error.
    Lock,
    /// `LockAcquiringError`: the key holds a value that is not a lock; fencing contention.
    Acquiring,
    /// `LockRuntimeError`: a refusal while some master also failed (aioredlock's priority).
    Runtime,
    /// `LockConflictError` (a `LockAcquiringError`): held by another holder.
    Conflict,
    /// `LockNotHeldError` (a `LockAcquiringError`): our lock expired or was taken.
    NotHeld,
    /// `LockUnavailableError` (a `LockRuntimeError`): too few masters answered; destroyed.
    Unavailable,
    /// `LockLostError` (a `LockError`): lost while held.
    Lost,
    /// `ValueError`: a rejected argument.
    Value,
}

impl Class {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Lock => "LockError",
            Self::Acquiring => "LockAcquiringError",
            Self::Runtime => "LockRuntimeError",
            Self::Conflict => "LockConflictError",
            Self::NotHeld => "LockNotHeldError",
            Self::Unavailable => "LockUnavailableError",
            Self::Lost => "LockLostError",
            Self::Value => "ValueError",
        }
    }
}

/// What one master answered, as far as the classification cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Answer {
    Done,
    Held,
    Absent,
    NotALock,
    Failed,
    NotAwaited,
}

/// The library error's variant, as far as the classification cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Variant {
    Conflict,
    FencingContention,
    NotALock,
    NoQuorum(Operation),
    ValidityExhausted,
    NotHeld(Operation),
    Lost,
    Invalid,
    Closed,
    Other,
}

/// The verdict: an exception of `class` whose text starts with `words`, or, for a release
/// that found no key of another holder on a quorum, success (aioredlock: "unlocking an
/// expired lock succeeds").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Raise { class: Class, words: &'static str },
    Success,
}

/// aioredlock's first words for an operation (`aioredlock/redis.py`).
fn words(op: Operation) -> &'static str {
    match op {
        Operation::Acquire | Operation::Extend => "Can not set lock",
        Operation::Release => "Can not unset lock",
        _ => "Can not get lock",
    }
}

/// Masters needed for a quorum of `n`.
fn quorum(n: usize) -> usize {
    n / 2 + 1
}

/// The classification: pure, unit-tested.
pub(crate) fn classify(variant: Variant, answers: &[Answer]) -> Verdict {
    let any_failed = answers.contains(&Answer::Failed);
    let raise = |class, words| Verdict::Raise { class, words };
    match variant {
        Variant::Conflict if any_failed => raise(Class::Runtime, "Can not set lock"),
        Variant::Conflict => raise(Class::Conflict, "Can not set lock"),
        Variant::FencingContention | Variant::NotALock if any_failed => {
            raise(Class::Runtime, "Can not set lock")
        }
        Variant::FencingContention | Variant::NotALock => {
            raise(Class::Acquiring, "Can not set lock")
        }
        Variant::NoQuorum(op) => raise(Class::Unavailable, words(op)),
        Variant::ValidityExhausted => raise(Class::Lock, "Lock timeout"),
        Variant::NotHeld(Operation::Release) => {
            let gone = answers
                .iter()
                .filter(|a| matches!(a, Answer::Done | Answer::Absent))
                .count();
            if !answers.is_empty() && gone >= quorum(answers.len()) {
                Verdict::Success
            } else {
                raise(Class::NotHeld, "Can not unset lock")
            }
        }
        Variant::NotHeld(op) => raise(Class::NotHeld, words(op)),
        Variant::Lost => raise(Class::Lost, "Lock lost"),
        Variant::Invalid => raise(Class::Value, "Invalid argument"),
        Variant::Closed => raise(Class::Unavailable, "lock manager destroyed"),
        Variant::Other => raise(Class::Lock, "Lock error"),
    }
}

/// The variant of a library error.
pub(crate) fn variant(e: &LockError) -> Variant {
    match e {
        LockError::Conflict { .. } => Variant::Conflict,
        LockError::FencingContention { .. } => Variant::FencingContention,
        LockError::NotALock { .. } => Variant::NotALock,
        LockError::NoQuorum { operation, .. } => Variant::NoQuorum(*operation),
        LockError::ValidityExhausted { .. } => Variant::ValidityExhausted,
        LockError::NotHeld { operation, .. } => Variant::NotHeld(*operation),
        LockError::Lost { .. } => Variant::Lost,
        LockError::InvalidArgument(_) | LockError::Config(_) | LockError::ReservedKey { .. } => {
            Variant::Invalid
        }
        LockError::Closed => Variant::Closed,
        _ => Variant::Other,
    }
}

/// The snake_case name of the variant (`.reason` of the Python exception).
pub(crate) fn reason(v: Variant) -> &'static str {
    match v {
        Variant::Conflict => "conflict",
        Variant::FencingContention => "fencing_contention",
        Variant::NotALock => "not_a_lock",
        Variant::NoQuorum(_) => "no_quorum",
        Variant::ValidityExhausted => "validity_exhausted",
        Variant::NotHeld(_) => "not_held",
        Variant::Lost => "lost",
        Variant::Invalid => "invalid_argument",
        Variant::Closed => "closed",
        Variant::Other => "other",
    }
}

fn answer(status: &NodeStatus) -> Answer {
    match status {
        NodeStatus::Done => Answer::Done,
        NodeStatus::HeldByOther { .. } => Answer::Held,
        NodeStatus::Absent => Answer::Absent,
        // A semaphore's other number of permits (not reachable from Python, which has no
        // semaphores): a refusal of the same kind as a key that is no lock.
        NodeStatus::NotALock | NodeStatus::OtherPermits { .. } => Answer::NotALock,
        NodeStatus::Failed(_) => Answer::Failed,
        _ => Answer::NotAwaited,
    }
}

/// The status word of one master's answer (`Outcome.status` in Python).
fn status_word(status: &NodeStatus) -> &'static str {
    match status {
        NodeStatus::Done => "done",
        NodeStatus::HeldByOther { .. } => "held",
        NodeStatus::Absent => "absent",
        NodeStatus::NotALock => "not_a_lock",
        NodeStatus::OtherPermits { .. } => "other_permits",
        NodeStatus::Failed(NodeError::Timeout(_)) => "timeout",
        NodeStatus::Failed(NodeError::Refused(_)) => "refused",
        NodeStatus::Failed(NodeError::Connection(_)) => "connection",
        NodeStatus::Failed(NodeError::Backlog(_)) => "backlog",
        NodeStatus::Failed(_) => "failed",
        _ => "not_awaited",
    }
}

/// Per-master outcomes as `(master, status word, text)`; masters are redacted.
pub(crate) type Outcomes = Vec<(String, &'static str, String)>;

fn outcomes(e: &LockError) -> Outcomes {
    e.outcomes()
        .iter()
        .map(|o| {
            let text = o.to_string();
            let text = text
                .strip_prefix(&format!("{}: ", o.master()))
                .map(str::to_owned)
                .unwrap_or(text);
            (o.master().to_owned(), status_word(o.status()), text)
        })
        .collect()
}

fn resource_of(e: &LockError) -> Option<String> {
    let r = match e {
        LockError::Conflict { resource, .. }
        | LockError::FencingContention { resource, .. }
        | LockError::NotALock { resource, .. }
        | LockError::NoQuorum { resource, .. }
        | LockError::ValidityExhausted { resource, .. }
        | LockError::NotHeld { resource, .. }
        | LockError::Lost { resource }
        | LockError::ReservedKey { resource, .. } => resource,
        _ => return None,
    };
    Some(String::from_utf8_lossy(r).into_owned())
}

/// The result of an operation whose error is classified: `Ok` also for a release that
/// counts as done (see [`Verdict::Success`]).
pub(crate) fn convert(e: LockError) -> PyResult<()> {
    let v = variant(&e);
    let answers: Vec<Answer> = e.outcomes().iter().map(|o| answer(o.status())).collect();
    match classify(v, &answers) {
        Verdict::Success => Ok(()),
        Verdict::Raise {
            class: Class::Value,
            ..
        } => Err(PyValueError::new_err(e.to_string())),
        Verdict::Raise { class, words } => {
            let text = if words == "lock manager destroyed" {
                words.to_owned()
            } else {
                format!("{words}: {e}")
            };
            Err(NativeError::new_err((
                class.name(),
                text,
                reason(v),
                resource_of(&e),
                outcomes(&e),
            )))
        }
    }
}

/// A library error as a Python exception (never success).
pub(crate) fn to_py(e: LockError) -> PyErr {
    match convert(e) {
        Err(err) => err,
        Ok(()) => NativeError::new_err((
            Class::NotHeld.name(),
            "Can not unset lock",
            "not_held",
            None::<String>,
            Outcomes::new(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Answer::*;

    fn class(v: Variant, a: &[Answer]) -> Option<&'static str> {
        match classify(v, a) {
            Verdict::Raise { class, .. } => Some(class.name()),
            Verdict::Success => None,
        }
    }

    #[test]
    fn a_conflict_with_a_failed_master_is_a_runtime_error() {
        // aioredlock's priority rule: any LockRuntimeError wins over LockAcquiringError.
        assert_eq!(
            class(Variant::Conflict, &[Held, Held, Failed]),
            Some("LockRuntimeError")
        );
        assert_eq!(
            class(Variant::Conflict, &[Held, Held, Done]),
            Some("LockConflictError")
        );
        assert_eq!(
            class(Variant::NotALock, &[NotALock, NotALock, Done]),
            Some("LockAcquiringError")
        );
        assert_eq!(
            class(Variant::NotALock, &[NotALock, Failed, NotALock]),
            Some("LockRuntimeError")
        );
        assert_eq!(
            class(Variant::FencingContention, &[Done, Done, NotAwaited]),
            Some("LockAcquiringError")
        );
    }

    #[test]
    fn no_quorum_is_unavailable_with_the_operation_words() {
        for (op, w) in [
            (Operation::Acquire, "Can not set lock"),
            (Operation::Extend, "Can not set lock"),
            (Operation::Release, "Can not unset lock"),
            (Operation::Query, "Can not get lock"),
        ] {
            assert_eq!(
                classify(Variant::NoQuorum(op), &[Failed, Failed, Done]),
                Verdict::Raise {
                    class: Class::Unavailable,
                    words: w
                }
            );
        }
        assert_eq!(
            classify(Variant::Closed, &[]),
            Verdict::Raise {
                class: Class::Unavailable,
                words: "lock manager destroyed"
            }
        );
    }

    #[test]
    fn releasing_an_expired_lock_succeeds_unless_another_holder_has_it() {
        // Expired everywhere: (done + absent) >= quorum.
        assert_eq!(
            classify(
                Variant::NotHeld(Operation::Release),
                &[Absent, Absent, Failed]
            ),
            Verdict::Success
        );
        assert_eq!(
            classify(Variant::NotHeld(Operation::Release), &[Absent, Done, Held]),
            Verdict::Success
        );
        // Taken by someone else on a majority: a refusal.
        assert_eq!(
            class(Variant::NotHeld(Operation::Release), &[Held, Held, Absent]),
            Some("LockNotHeldError")
        );
        assert_eq!(
            class(Variant::NotHeld(Operation::Release), &[]),
            Some("LockNotHeldError")
        );
        // An extension of a lapsed lock is never a success.
        assert_eq!(
            classify(
                Variant::NotHeld(Operation::Extend),
                &[Absent, Absent, Absent]
            ),
            Verdict::Raise {
                class: Class::NotHeld,
                words: "Can not set lock"
            }
        );
    }

    #[test]
    fn the_remaining_variants() {
        assert_eq!(
            classify(Variant::ValidityExhausted, &[]),
            Verdict::Raise {
                class: Class::Lock,
                words: "Lock timeout"
            }
        );
        assert_eq!(class(Variant::Lost, &[]), Some("LockLostError"));
        assert_eq!(class(Variant::Invalid, &[]), Some("ValueError"));
        assert_eq!(class(Variant::Other, &[]), Some("LockError"));
    }

    #[test]
    fn library_errors_map_to_their_variant() {
        use std::sync::Arc;
        let r: Arc<[u8]> = Arc::from(&b"r"[..]);
        assert_eq!(variant(&LockError::Closed), Variant::Closed);
        assert_eq!(
            variant(&LockError::InvalidArgument("x".into())),
            Variant::Invalid
        );
        assert_eq!(
            variant(&LockError::Lost {
                resource: Arc::clone(&r)
            }),
            Variant::Lost
        );
        let e = LockError::NotHeld {
            operation: Operation::Release,
            resource: Arc::clone(&r),
            outcomes: Vec::new(),
        };
        assert_eq!(variant(&e), Variant::NotHeld(Operation::Release));
        assert_eq!(reason(variant(&e)), "not_held");
        assert_eq!(resource_of(&e).as_deref(), Some("r"));
        let e = LockError::Conflict {
            resource: r,
            attempts: 3,
            waited: std::time::Duration::ZERO,
            outcomes: Vec::new(),
        };
        assert_eq!(reason(variant(&e)), "conflict");
    }
}
