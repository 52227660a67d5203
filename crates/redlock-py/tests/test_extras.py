"""What aioredlock does not have: waiting woken by releases, fencing tokens, deadlines."""

from __future__ import annotations

import asyncio
import time

import pytest

from tokio_redlock import Aioredlock
from tokio_redlock.errors import LockConflictError


async def test_waiting_acquire_is_woken_by_the_release(manager):
    holder = await manager.lock("w", lock_timeout=10)

    async def release_soon():
        await asyncio.sleep(0.3)
        await manager.unlock(holder)

    task = asyncio.ensure_future(release_soon())
    start = time.monotonic()
    lock = await manager.acquire("w", lock_timeout=5, wait=5)
    waited = time.monotonic() - start
    await task
    assert lock.valid and 0.25 < waited < 3  # woken by the release, not the 10 s TTL
    with pytest.raises(LockConflictError):
        await manager.acquire("w", lock_timeout=5, wait=0.2)
    await manager.unlock(lock)
    assert manager.subscribed_resources() == 0


async def test_fencing_tokens_grow_and_deadline_is_monotonic(urls):
    m = Aioredlock(urls, fencing=True)
    try:
        first = await m.lock("fenced", lock_timeout=5)
        t1 = first.fencing_token
        assert isinstance(t1, int)
        now = time.monotonic()
        assert now + 4 < first.deadline <= now + 5
        assert 4 < first.validity <= 5
        await m.unlock(first)
        second = await m.lock("fenced", lock_timeout=5)
        assert second.fencing_token > t1
        await m.unlock(second)
        assert second.validity == 0.0
    finally:
        await m.destroy()
    plain = Aioredlock(urls)
    try:
        lock = await plain.lock("unfenced", lock_timeout=1)
        assert lock.fencing_token is None
        await plain.unlock(lock)
    finally:
        await plain.destroy()


async def test_max_hold_bounds_auto_extension(manager):
    lock = await manager.acquire("bounded", max_hold=0.2)  # internal_lock_timeout 2 s
    assert lock.auto_extend
    await asyncio.wait_for(lock.wait_lost(), 5)
    assert not lock.valid
    await manager.unlock(lock)


async def test_setting_valid_false_releases_in_the_background(manager, servers):
    lock = await manager.lock("dropped")
    lock.valid = False
    for _ in range(100):
        if not await manager.is_locked("dropped"):
            break
        await asyncio.sleep(0.02)
    assert not await manager.is_locked("dropped")


async def test_the_gil_is_free_while_a_call_waits(manager):
    import threading

    holder = await manager.lock("gil", lock_timeout=10)
    count = 0
    stop = threading.Event()

    def spin():
        nonlocal count
        while not stop.is_set():
            count += 1

    thread = threading.Thread(target=spin)
    thread.start()
    try:
        with pytest.raises(LockConflictError):
            await manager.acquire("gil", lock_timeout=5, wait=0.5)
    finally:
        stop.set()
        thread.join()
    assert count > 1000  # Python code ran in another thread the whole time
    await manager.unlock(holder)
