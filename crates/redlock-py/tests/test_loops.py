"""Many event loops over a process's life: managers are not bound to a loop."""

from __future__ import annotations

import asyncio

import pytest

from tokio_redlock import Aioredlock

_shared = {}


def test_one_manager_across_asyncio_run_calls(urls):
    manager = Aioredlock(urls)  # built outside any loop
    lock = asyncio.run(manager.lock("loops", lock_timeout=10))
    assert asyncio.run(manager.is_locked("loops"))
    asyncio.run(manager.unlock(lock))  # released from another loop
    auto = asyncio.run(manager.lock("loops-auto"))
    assert asyncio.run(auto.is_locked())
    asyncio.run(manager.destroy())
    assert not auto.valid


@pytest.mark.parametrize("round_", range(5))
async def test_session_manager_used_by_successive_test_loops(urls, round_):
    # pytest-asyncio gives every test its own loop; the same manager serves them all.
    manager = _shared.setdefault("m", Aioredlock(urls))
    async with await manager.lock(f"per-loop-{round_}", lock_timeout=5) as lock:
        assert lock.valid
    assert not await manager.is_locked(f"per-loop-{round_}")


def test_calling_outside_a_loop_fails_at_await_not_before(urls):
    manager = Aioredlock(urls)
    coro = manager.lock("x")
    with pytest.raises(RuntimeError):
        coro.send(None)
    coro.close()
