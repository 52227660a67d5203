"""tokio-redlock for asyncio: aioredlock 0.7.3's API on the tokio-redlock engine.

Switch from aioredlock by changing one import::

    from tokio_redlock import Aioredlock, LockError

    lock_manager = Aioredlock([{"host": "redis1", "port": 6379}, ...])
    async with await lock_manager.lock("resource_name") as lock:
        assert lock.valid
    await lock_manager.destroy()

``import tokio_redlock as aioredlock`` works too; the submodules ``algorithm``, ``lock``,
``errors``, ``sentinel`` and ``utility`` mirror aioredlock's. Log records come from the
``tokio_redlock.*`` loggers; call :func:`refresh_logging` after changing logging levels.
"""

from __future__ import annotations

import atexit
import os

from . import _native
from .algorithm import Aioredlock
from .errors import (
    AioredlockError,
    LockAcquiringError,
    LockConflictError,
    LockError,
    LockLostError,
    LockNotHeldError,
    LockRuntimeError,
    LockUnavailableError,
    Outcome,
)
from .lock import Lock
from .sentinel import Sentinel, SentinelConfigError

__all__ = (
    "Aioredlock",
    "Lock",
    "LockError",
    "LockAcquiringError",
    "LockRuntimeError",
    "Sentinel",
    # Extras.
    "AioredlockError",
    "SentinelConfigError",
    "LockConflictError",
    "LockNotHeldError",
    "LockUnavailableError",
    "LockLostError",
    "Outcome",
    "refresh_logging",
    "background_tasks",
)


def refresh_logging() -> None:
    """Makes logging levels configured since the last call apply to the engine's log
    records (levels are cached so that filtered records never take the GIL). Creating an
    ``Aioredlock`` does this too."""
    _native.refresh_logging()


def background_tasks() -> int:
    """Background work of every live manager in this process: 0 once nothing is left."""
    return int(_native.background_tasks())


# Interpreter exit: release what live managers hold, then stop the engine's threads
# before the interpreter finalizes.
atexit.register(_native._shutdown)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_native._after_fork)
