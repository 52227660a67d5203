"""``Aioredlock``: aioredlock 0.7.3's lock manager on the tokio-redlock engine."""

from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional, Tuple, Union

from . import _connections
from . import _native
from .errors import LockAcquiringError, LockError, LockRuntimeError, _from_native
from .lock import Lock
from .utility import clean_password

__all__ = ("Aioredlock",)

_DEFAULT_CONNECTIONS = [{"host": "localhost", "port": 6379}]


async def _call(awaitable: Any) -> Any:
    """Awaits a native awaitable, turning native errors into ``tokio_redlock.errors``."""
    try:
        return await awaitable
    except _native.NativeError as e:
        exc, cause = _from_native(e.args)
        raise exc from cause


def _positive_int(value: Any) -> int:
    return int(value)


class Aioredlock:
    """The lock manager: ``Aioredlock(redis_connections=[{'host': 'localhost', 'port': 6379}],
    retry_count=3, retry_delay_min=0.1, retry_delay_max=0.3, internal_lock_timeout=10.0)``.

    ``redis_connections`` lists the Redis masters: dicts (``host``, ``port``, ``db``,
    ``password``, ``ssl``), ``redis://`` / ``rediss://`` URLs, socket paths, ``(host,
    port)`` tuples or ``Sentinel`` groups. Each must be a distinct server; a lock needs a
    majority of them. ``retry_count`` is the number of attempts in all; between two, a
    delay drawn uniformly from ``[retry_delay_min, retry_delay_max]`` seconds.
    ``internal_lock_timeout`` (seconds) is the TTL of locks taken without ``lock_timeout``,
    which the engine then extends by itself.

    Extras (keyword-only): ``fencing=True`` issues a fencing token with every lock;
    ``node_timeout`` (seconds) bounds each request to a master (default
    ``internal_lock_timeout / 10`` within 5 ms–1 s); ``notifications=False`` turns off
    release notifications for waiting acquisitions.

    Nothing connects until the first operation. Raises ``ValueError`` for a retry count
    below 1, a delay or timeout not above 0, an empty connection list, or a server listed
    twice; ``TypeError`` for a connection form it does not take.
    """

    __hash__ = None  # type: ignore[assignment]

    def __init__(
        self,
        redis_connections: Any = None,
        retry_count: int = 3,
        retry_delay_min: float = 0.1,
        retry_delay_max: float = 0.3,
        internal_lock_timeout: float = 10.0,
        *,
        fencing: bool = False,
        node_timeout: Optional[float] = None,
        notifications: bool = True,
    ) -> None:
        if redis_connections is None:
            redis_connections = [dict(c) for c in _DEFAULT_CONNECTIONS]
        retry_count = int(retry_count)
        retry_delay_min = float(retry_delay_min)
        retry_delay_max = float(retry_delay_max)
        internal_lock_timeout = float(internal_lock_timeout)
        if retry_count < 1:
            raise ValueError("Retry count must be greater or equal 1.")
        if retry_delay_min <= 0 or retry_delay_max <= 0:
            raise ValueError("Retry delay must be greater than 0 seconds.")
        if internal_lock_timeout <= 0:
            raise ValueError("Internal lock_timeout must be greater than 0 seconds.")
        self.redis_connections = redis_connections
        self.retry_count = retry_count
        self.retry_delay_min = retry_delay_min
        self.retry_delay_max = retry_delay_max
        self.internal_lock_timeout = internal_lock_timeout
        urls = _connections.to_urls(redis_connections)
        if node_timeout is None:
            node_timeout = min(max(internal_lock_timeout / 10, 0.005), 1.0)
        lo, hi = sorted((retry_delay_min, retry_delay_max))
        _native.refresh_logging()
        self._native = _native.NativeManager(
            urls,
            internal_lock_timeout,
            retry_count - 1,
            (lo + hi) / 2,
            (hi - lo) / 2,
            float(node_timeout),
            fencing=bool(fencing),
            notifications=bool(notifications),
        )
        self._locks: Dict[Tuple[str, str], Lock] = {}

    # -- aioredlock's API ----------------------------------------------------------------

    @property
    def log(self) -> logging.Logger:
        """The logger of the manager's own messages (the engine logs under ``tokio_redlock.*``)."""
        return logging.getLogger("tokio_redlock.algorithm")

    async def lock(
        self,
        resource: str,
        lock_timeout: Optional[float] = None,
        lock_identifier: Optional[str] = None,
    ) -> Lock:
        """Acquires ``resource``, making ``retry_count`` attempts in all.

        With ``lock_timeout`` (seconds) the lock expires after it unless extended; without,
        it is taken for ``internal_lock_timeout`` and extended by the engine every third of
        it until released (or lost: then ``valid`` turns False and ``wait_lost()`` returns).

        ``lock_identifier`` (a str of at most 256 bytes, no control characters) becomes
        ``lock.id`` instead of a random one; a resource already held under that id counts
        as acquired (its TTL is raised to this lock's, never lowered). The newest lock
        under an id supersedes this manager's earlier ones: they can no longer be extended,
        and dropping them releases nothing; unlocking any of them releases the resource.

        Raises ``ValueError`` for a ``lock_timeout`` not above 0 or a bad
        ``lock_identifier``, ``TypeError`` for one that is not a str; ``LockAcquiringError``
        (``LockConflictError``) when the resource stayed held elsewhere;
        ``LockRuntimeError`` when masters failed (``LockUnavailableError``: no quorum
        reachable, not retried); ``LockError('Lock timeout…')`` when no validity was left.
        A cancelled call leaves no key behind.
        """
        return await self._acquire(resource, lock_timeout, lock_identifier, None, None, None)

    async def acquire(
        self,
        resource: str,
        *,
        lock_timeout: Optional[float] = None,
        wait: Optional[float] = None,
        retry_count: Optional[int] = None,
        max_hold: Optional[float] = None,
    ) -> Lock:
        """Acquires ``resource`` like ``lock``, with extras: ``wait`` (seconds, or
        ``float('inf')``) keeps trying that long while the resource is held elsewhere, woken
        by release notifications instead of polling; ``retry_count`` overrides the
        manager's; ``max_hold`` (seconds) stops auto-extension after that long (bounds the
        hold of a hung program).

        Raises as ``lock``; ``LockConflictError`` when ``wait`` ran out.
        """
        return await self._acquire(resource, lock_timeout, None, wait, retry_count, max_hold)

    async def _acquire(
        self,
        resource: str,
        lock_timeout: Optional[float],
        lock_identifier: Optional[str],
        wait: Optional[float],
        retry_count: Optional[int],
        max_hold: Optional[float],
    ) -> Lock:
        if lock_timeout is not None and lock_timeout <= 0:
            raise ValueError("Lock timeout must be greater than 0 seconds.")
        # aioredlock: ``lock_identifier or str(uuid4())``; the engine draws a random token.
        token = lock_identifier or None
        if token is not None and not isinstance(token, str):
            raise TypeError(f"lock_identifier must be a str, not {type(token).__name__}")
        if not isinstance(resource, str):
            raise TypeError(f"resource must be a str, not {type(resource).__name__}")
        ttl = float(lock_timeout or self.internal_lock_timeout)
        attempts = int(self.retry_count if retry_count is None else retry_count)
        if attempts < 1:
            raise ValueError("Retry count must be greater or equal 1.")
        if wait is not None and wait < 0:
            raise ValueError("wait must be 0 seconds or more")
        delay = self._retry_delay()
        native = await _call(
            self._native.lock(
                resource,
                ttl,
                retries=attempts - 1,
                wait=None if wait is None else float(wait),
                auto_extend=lock_timeout is None,
                max_hold=None if max_hold is None else float(max_hold),
                token=token,
                retry_delay=delay,
            )
        )
        lock = Lock(self, resource, native.token, lock_timeout, valid=True)
        lock._native = native
        self._locks[(resource, lock.id)] = lock
        return lock

    def _retry_delay(self) -> Tuple[float, float]:
        """``(delay, jitter)`` from the current ``retry_delay_min``/``retry_delay_max``,
        re-read on every call as aioredlock does (a uniform draw between them)."""
        lo, hi = sorted((float(self.retry_delay_min), float(self.retry_delay_max)))
        if lo <= 0:
            raise ValueError("Retry delay must be greater than 0 seconds.")
        return ((lo + hi) / 2, (hi - lo) / 2)

    async def _adopt(self, lock: Lock) -> Any:
        """The native handle of a ``Lock`` this manager did not acquire (built by hand, or
        from ``get_lock``): adopted from the masters, where ``lock.id`` must hold it on a
        quorum. Dropping an adopted handle releases nothing."""
        native = await _call(self._native.adopt(lock.resource, lock.id))
        lock._native = native
        return native

    def _native_of(self, lock: Lock) -> Any:
        if lock._native is not None:
            return lock._native
        tracked = self._locks.get((lock.resource, lock.id))
        return None if tracked is None else tracked._native

    async def extend(self, lock: Lock, lock_timeout: Optional[float] = None) -> None:
        """Extends ``lock`` to ``lock_timeout`` (default: its own, else
        ``internal_lock_timeout``) seconds from now, on every master where it is still
        ours. An expired lock is not re-created: the call raises ``LockNotHeldError`` (a
        ``LockAcquiringError``). On failure the lock is released, as in aioredlock.

        Raises ``RuntimeError('Lock is not valid')`` for a lock that is not valid and
        ``ValueError`` for a ``lock_timeout`` not above 0.
        """
        if not lock.valid:
            raise RuntimeError("Lock is not valid")
        if lock_timeout is not None and lock_timeout <= 0:
            raise ValueError("Lock timeout must be greater than 0 seconds.")
        ttl = float(lock_timeout or lock.lock_timeout or self.internal_lock_timeout)
        native = self._native_of(lock)
        try:
            if native is None:
                native = await self._adopt(lock)
            await _call(native.extend(ttl))
        except Exception:
            try:
                await self.unlock(lock)
            except LockError:
                pass
            raise

    async def unlock(self, lock: Lock) -> None:
        """Releases ``lock`` on every master where it is still ours. Releasing a lock
        whose keys already expired succeeds, as in aioredlock.

        Raises ``LockAcquiringError`` (``LockNotHeldError``) when another holder has the
        resource on a majority, ``LockRuntimeError`` (``LockUnavailableError``) when too few
        masters answered; the lock then stays tracked, and calling ``unlock`` again retries.
        """
        lock._valid = False
        lock._stop_watcher()
        native = self._native_of(lock)
        if native is None:
            await self._unlock_untracked(lock)
        else:
            await _call(native.unlock())
        self._locks.pop((lock.resource, lock.id), None)

    async def _unlock_untracked(self, lock: Lock) -> None:
        """A hand-built ``Lock`` (or one from ``get_lock``) unknown to this manager: adopted
        and released when ``lock.id`` holds it on a quorum; otherwise released as aioredlock
        counts it (absent keys count as released; keys of ``lock.id`` left on a minority
        expire by their TTL)."""
        try:
            native = await self._adopt(lock)
        except LockError as e:
            if not e.is_not_held:
                raise
        else:
            await _call(native.unlock())
            return
        keys = await _call(self._native.inspect(lock.resource))
        quorum = self._native.quorum()
        others = sum(1 for _, state, holder, _, _ in keys if state == "held" and holder != lock.id)
        failed = sum(1 for _, state, _, _, _ in keys if state == "failed")
        if failed and len(keys) - failed < quorum:
            raise LockRuntimeError("Can not unset lock: too few masters answered")
        if others >= quorum:
            raise LockAcquiringError("Can not unset lock")

    async def is_locked(self, resource_or_lock: Union[str, Lock]) -> bool:
        """True when a quorum of masters holds the resource (by anyone).

        Raises ``TypeError`` for an argument that is neither a ``Lock`` nor a ``str``, and
        ``LockUnavailableError`` (a ``LockRuntimeError``) when too few masters answer.
        """
        if isinstance(resource_or_lock, Lock):
            resource = resource_or_lock.resource
        elif isinstance(resource_or_lock, str):
            resource = resource_or_lock
        else:
            raise TypeError(
                "Argument should be ether aioredlock.Lock instance or string, "
                f"{type(resource_or_lock)} is given."
            )
        state, _, _ = await _call(self._native.is_locked(resource))
        if state != "unsettled":
            return bool(state == "held")
        # No single holder on a quorum: aioredlock counts any value as "locked".
        keys = await _call(self._native.inspect(resource))
        held = sum(1 for _, s, _, _, _ in keys if s in ("held", "shared", "not_a_lock"))
        return held >= self._native.quorum()

    async def get_active_locks(self) -> List[Lock]:
        """The locks this manager acquired that are still valid and locked."""
        active = []
        for lock in list(self._locks.values()):
            if lock.valid and await lock.is_locked():
                active.append(lock)
        return active

    async def get_lock(self, resource: str, lock_identifier: str) -> Lock:
        """A ``Lock`` for ``resource`` held under ``lock_identifier`` on a quorum of
        masters (by this or another process), its ``lock_timeout`` the quorum's remaining
        time in seconds (a float, a safe lower bound). It can be extended and unlocked;
        dropping it releases nothing.

        Raises ``LockRuntimeError`` when masters failed, ``LockAcquiringError`` when another
        holder has the key, ``LockError`` otherwise.
        """
        tracked = self._locks.get((resource, lock_identifier))
        try:
            native = await _call(self._native.adopt(resource, lock_identifier))
        except LockError as e:
            if not e.is_not_held:
                raise
        else:
            lock = Lock(self, resource, lock_identifier, float(native.ttl), valid=True)
            # Operations go through the handle that acquired it, when this manager did.
            lock._native = native if tracked is None else tracked._native
            return lock
        keys = await _call(self._native.inspect(resource))
        if any(state == "failed" for _, state, _, _, _ in keys):
            raise LockRuntimeError("Can not get lock")
        if any(state in ("held", "not_a_lock") for _, state, _, _, _ in keys):
            raise LockAcquiringError("Can not get lock")
        raise LockError(f'Could not fetch the TTL for lock "{resource}"')

    async def destroy(self) -> None:
        """Releases every lock this manager still holds, stops its background work and
        closes its connections. Later operations raise ``LockUnavailableError``."""
        for lock in list(self._locks.values()):
            if lock.valid:
                try:
                    await self.unlock(lock)
                except Exception:
                    self.log.exception("Can not unlock %s", lock)
            lock._stop_watcher()
        self._locks.clear()
        await _call(self._native.close())

    # -- extras --------------------------------------------------------------------------

    @property
    def quorum(self) -> int:
        """Masters needed for a quorum: ``N // 2 + 1``."""
        return int(self._native.quorum())

    @property
    def masters(self) -> List[str]:
        """The masters' addresses, passwords redacted."""
        return list(self._native.masters())

    def background_tasks(self) -> int:
        """Background work still running (cleanup releases); 0 once nothing is left."""
        return int(self._native.background_tasks())

    def subscribed_resources(self) -> int:
        """Resources with waiting acquisitions subscribed to release notifications."""
        return int(self._native.subscribed_resources())

    # -- attrs-like dunders ----------------------------------------------------------------

    def _fields(self) -> Tuple[Any, ...]:
        return (
            self.redis_connections,
            self.retry_count,
            self.retry_delay_min,
            self.retry_delay_max,
            self.internal_lock_timeout,
        )

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, Aioredlock)
        return self._fields() == other._fields()

    def __ne__(self, other: object) -> bool:
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    def __repr__(self) -> str:
        return (
            f"Aioredlock(redis_connections={clean_password(self.redis_connections)}, "
            f"retry_count={self.retry_count!r}, retry_delay_min={self.retry_delay_min!r}, "
            f"retry_delay_max={self.retry_delay_max!r}, "
            f"internal_lock_timeout={self.internal_lock_timeout!r})"
        )
