"""Typing: the package passes `mypy --strict`, the stubs match the extension
(`mypy.stubtest`), and an example using every public name type-checks."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "python" / "tokio_redlock"

EXAMPLE = """
    import asyncio
    from typing import List, Optional, Tuple
    from tokio_redlock import (Aioredlock, Lock, LockAcquiringError, LockError, LockRuntimeError, Sentinel,
                               refresh_logging, background_tasks)
    from tokio_redlock.errors import (AioredlockError, LockConflictError, LockLostError, LockNotHeldError,
                                      LockUnavailableError, Outcome)
    from tokio_redlock.sentinel import SentinelConfigError
    from tokio_redlock.utility import clean_password

    async def main(urls: List[str]) -> Optional[int]:
        refresh_logging()
        m = Aioredlock(urls + [Sentinel({"host": "s", "master": "m"}).url()], fencing=True, node_timeout=0.05)
        lock: Lock = await m.lock("r", lock_timeout=5.0)
        left: float = lock.validity + lock.deadline
        token: Optional[int] = lock.fencing_token
        await lock.extend()
        await m.extend(lock, 2.0)
        held: bool = await m.is_locked(lock) and await lock.is_locked()
        try:
            async with lock.cancel_on_loss():
                await asyncio.sleep(0)
        except LockLostError:
            pass
        event: asyncio.Event = lock.lost_event
        await m.unlock(lock)
        try:
            got: Lock = await m.acquire("r", wait=1.0, max_hold=10.0)
            active: List[Lock] = await m.get_active_locks()
            await m.get_lock("r", got.id)
        except (LockConflictError, LockNotHeldError, LockUnavailableError) as e:
            outs: Tuple[Outcome, ...] = e.outcomes
            print(e.reason, e.failed_masters, outs)
        except (LockAcquiringError, LockRuntimeError, LockError, AioredlockError, SentinelConfigError):
            pass
        print(clean_password(urls), background_tasks(), m.quorum, m.masters)
        await m.destroy()
        return token
"""


def mypy(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, timeout=300)


def test_package_is_strictly_typed():
    p = mypy("mypy", "--strict", str(PACKAGE))
    assert p.returncode == 0, p.stdout + p.stderr


def test_stubs_match_the_extension():
    p = mypy("mypy.stubtest", "tokio_redlock._native")
    assert p.returncode == 0, p.stdout + p.stderr


def test_an_example_using_every_public_name_type_checks(tmp_path):
    example = tmp_path / "example.py"
    example.write_text(textwrap.dedent(EXAMPLE))
    p = mypy("mypy", "--strict", str(example))
    assert p.returncode == 0, p.stdout + p.stderr
