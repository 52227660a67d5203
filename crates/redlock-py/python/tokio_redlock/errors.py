"""Exceptions, with aioredlock's hierarchy and a few typed extras.

``AioredlockError`` ⊃ ``LockError`` ⊃ {``LockAcquiringError``, ``LockRuntimeError``}, as in
aioredlock 0.7.3, and aioredlock's rule for choosing between them: if any master failed
(connection refused, timeout), the error is a ``LockRuntimeError``; a refusal by the
masters (the key is held by another holder) is a ``LockAcquiringError``; a quorum reached
too late to leave any validity is a plain ``LockError('Lock timeout…')``.

The extras subclass those classes, so ``except LockAcquiringError`` still catches them:

- ``LockConflictError`` (a ``LockAcquiringError``): another holder has the resource;
- ``LockNotHeldError`` (a ``LockAcquiringError``): our lock expired or was taken;
- ``LockUnavailableError`` (a ``LockRuntimeError``): too few masters answered, or the
  manager was destroyed;
- ``LockLostError`` (a ``LockError``): an auto-extended lock was lost while held.

Every ``LockError`` raised by the package carries ``reason`` (the engine's error in
snake_case: ``"conflict"``, ``"no_quorum"``, ``"not_held"``, ``"validity_exhausted"``, …),
``resource``, and ``outcomes``: one :class:`Outcome` per master (address with the password
redacted, a status word, the detail). When a master failed, ``__cause__`` is a
``ConnectionError`` or ``TimeoutError`` naming the first one.
"""

from __future__ import annotations

from typing import Any, List, NamedTuple, Optional, Tuple

__all__ = (
    "AioredlockError",
    "LockError",
    "LockAcquiringError",
    "LockRuntimeError",
    "LockConflictError",
    "LockNotHeldError",
    "LockUnavailableError",
    "LockLostError",
    "Outcome",
)


class Outcome(NamedTuple):
    """One master's answer in the round that failed."""

    master: str
    """The master's address, password redacted."""
    status: str
    """``done``, ``held``, ``absent``, ``not_a_lock``, ``timeout``, ``refused``,
    ``connection``, ``backlog``, ``failed`` or ``not_awaited``."""
    text: str
    """The engine's description of the answer."""


_FAILED = frozenset({"timeout", "refused", "connection", "backlog", "failed"})


class AioredlockError(Exception):
    """
    Base exception for aioredlock
    """


class LockError(AioredlockError):
    """
    Error in acquiring or releasing the lock
    """

    reason: Optional[str] = None
    resource: Optional[str] = None
    outcomes: Tuple[Outcome, ...] = ()

    @property
    def is_conflict(self) -> bool:
        """True when another holder has the resource."""
        return self.reason == "conflict"

    @property
    def is_unavailable(self) -> bool:
        """True when too few masters answered (or the manager was destroyed)."""
        return self.reason in ("no_quorum", "closed")

    @property
    def is_not_held(self) -> bool:
        """True when our lock had expired or was taken."""
        return self.reason == "not_held"

    @property
    def failed_masters(self) -> List[Outcome]:
        """The masters whose request failed, with the cause."""
        return [o for o in self.outcomes if o.status in _FAILED]


class LockAcquiringError(LockError):
    """
    Error in acquiring the lock during normal operation
    """


class LockRuntimeError(LockError):
    """
    Error in acquiring or releasing the lock due to an unexpected event
    """


class LockConflictError(LockAcquiringError):
    """The resource is locked by another holder (every attempt was refused)."""


class LockNotHeldError(LockAcquiringError):
    """The lock is not ours any more: it expired or another holder took it."""


class LockUnavailableError(LockRuntimeError):
    """Too few masters answered to decide, or the lock manager was destroyed."""


class LockLostError(LockError):
    """An auto-extended lock was lost while held (no extension reached a quorum in time,
    or the lock was found expired or taken)."""


_CLASSES = {
    "LockError": LockError,
    "LockAcquiringError": LockAcquiringError,
    "LockRuntimeError": LockRuntimeError,
    "LockConflictError": LockConflictError,
    "LockNotHeldError": LockNotHeldError,
    "LockUnavailableError": LockUnavailableError,
    "LockLostError": LockLostError,
}


def _from_native(args: Tuple[Any, ...]) -> Tuple[LockError, Optional[BaseException]]:
    """The exception (and its cause) for a native error's ``args``."""
    name, text, reason, resource, outcomes = args
    exc = _CLASSES.get(name, LockError)(text)
    exc.reason = reason
    exc.resource = resource
    exc.outcomes = tuple(Outcome(*o) for o in outcomes)
    cause: Optional[BaseException] = None
    for o in exc.outcomes:
        if o.status in _FAILED:
            kind = TimeoutError if o.status == "timeout" else ConnectionError
            cause = kind(f"{o.master}: {o.text}")
            break
    return exc, cause
