"""``Lock``: an acquired lock, with aioredlock's fields, methods and ``async with``, plus
its deadline, validity, fencing token and lost-lock signal."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Any, AsyncIterator, Optional

from .errors import LockLostError

if TYPE_CHECKING:  # pragma: no cover
    from .algorithm import Aioredlock

__all__ = ("Lock",)


class Lock:
    """A lock on ``resource`` held under token ``id``.

    Fields as in aioredlock: ``lock_manager``, ``resource``, ``id``, ``lock_timeout``
    (``None`` for an auto-extended lock) and ``valid``. Unlike aioredlock, ``valid`` turns
    False by itself once the lock's deadline passes or the lock is lost, not only on
    ``unlock``. Setting ``valid = False`` stops auto-extension and releases the lock in the
    background.

    ``async with lock:`` returns the lock and releases it on exit.
    """

    __hash__ = None  # type: ignore[assignment]  # field equality, unhashable (as attrs)

    def __init__(
        self,
        lock_manager: "Aioredlock",
        resource: str,
        id: str,
        lock_timeout: Optional[float] = 10.0,
        valid: bool = False,
    ) -> None:
        self.lock_manager = lock_manager
        self.resource = resource
        self.id = id
        self.lock_timeout = lock_timeout
        self._valid = valid
        self._native: Any = None
        self._event: Optional[asyncio.Event] = None
        self._watcher: Optional["asyncio.Future[Any]"] = None

    # -- aioredlock's API ----------------------------------------------------------------

    @property
    def valid(self) -> bool:
        """True while the lock is held: not released, not lost, and before its deadline."""
        if not self._valid:
            return False
        native = self._native
        return True if native is None else bool(native.valid)

    @valid.setter
    def valid(self, value: bool) -> None:
        self._valid = bool(value)
        if not value and self._native is not None:
            self._native.abandon()
            self._stop_watcher()

    async def __aenter__(self) -> "Lock":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.lock_manager.unlock(self)

    async def extend(self) -> None:
        """Extends the lock by its ``lock_timeout`` (the manager's ``extend``)."""
        await self.lock_manager.extend(self)

    async def release(self) -> None:
        """Releases the lock (the manager's ``unlock``)."""
        await self.lock_manager.unlock(self)

    async def is_locked(self) -> bool:
        """True when a quorum of masters holds the resource (by anyone)."""
        return await self.lock_manager.is_locked(self)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, Lock)
        return (self.lock_manager, self.resource, self.id, self.lock_timeout, self.valid) == (
            other.lock_manager,
            other.resource,
            other.id,
            other.lock_timeout,
            other.valid,
        )

    def __ne__(self, other: object) -> bool:
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    def __repr__(self) -> str:
        return (
            f"Lock(lock_manager={self.lock_manager!r}, resource={self.resource!r}, id={self.id!r}, "
            f"lock_timeout={self.lock_timeout!r}, valid={self.valid!r})"
        )

    # -- extras --------------------------------------------------------------------------

    @property
    def validity(self) -> float:
        """Seconds left until the deadline; 0.0 once released, lost or expired."""
        native = self._native
        if native is None:
            return 0.0
        return float(native.validity) if self._valid else 0.0

    @property
    def deadline(self) -> float:
        """The deadline in ``time.monotonic()`` terms: rely on the lock only before it."""
        return time.monotonic() + self.validity

    @property
    def fencing_token(self) -> Optional[int]:
        """The fencing token (grows with every acquisition of the resource) when the
        manager was created with ``fencing=True``; ``None`` otherwise."""
        return None if self._native is None else self._native.fencing_token

    @property
    def auto_extend(self) -> bool:
        """True when the engine extends this lock by itself (taken without ``lock_timeout``)."""
        return self._native is not None and bool(self._native.auto_extend)

    @property
    def lost(self) -> bool:
        """True once an auto-extended lock was lost."""
        return self._native is not None and bool(self._native.lost)

    @property
    def loss_cause(self) -> Optional[str]:
        """Why the lock was lost, or ``None``."""
        return None if self._native is None else self._native.loss_cause

    async def wait_lost(self) -> None:
        """Returns when the lock is lost: an auto-extended lock whose extensions failed or
        found it taken, or a lock whose deadline passed while it was not released. Never
        returns for a lock released on purpose. Cancel it freely."""
        if self._native is None:
            raise RuntimeError("this Lock was not acquired through this package's lock()")
        await self._native.wait_lost()

    @property
    def lost_event(self) -> asyncio.Event:
        """An ``asyncio.Event`` set when the lock is lost; bound to the event loop running
        at first access (prefer ``await lock.wait_lost()`` across loops)."""
        if self._event is None:
            event = asyncio.Event()
            watcher = asyncio.ensure_future(self.wait_lost())

            def done(f: "asyncio.Future[Any]") -> None:
                if not f.cancelled() and f.exception() is None:
                    event.set()

            watcher.add_done_callback(done)
            self._event, self._watcher = event, watcher
        return self._event

    @contextlib.asynccontextmanager
    async def cancel_on_loss(self) -> AsyncIterator["Lock"]:
        """``async with lock.cancel_on_loss():`` runs the block, cancelling it the moment
        the lock is lost, and then raises ``LockLostError`` (as ``asyncio.timeout`` raises
        ``TimeoutError``)."""
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("cancel_on_loss() needs a running task")
        fired = False

        def on_lost(f: "asyncio.Future[Any]") -> None:
            nonlocal fired
            if not f.cancelled() and f.exception() is None:
                fired = True
                task.cancel()

        watcher = asyncio.ensure_future(self.wait_lost())
        watcher.add_done_callback(on_lost)
        try:
            yield self
        except asyncio.CancelledError:
            if fired:
                uncancel = getattr(task, "uncancel", None)
                if uncancel is not None:
                    uncancel()
                raise LockLostError(f"Lock lost: {self.resource!r} ({self.loss_cause})") from None
            raise
        finally:
            watcher.cancel()

    def _stop_watcher(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            self._watcher = None
