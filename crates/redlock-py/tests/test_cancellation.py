"""Cancelling asyncio tasks: no key left behind, nothing left running."""

from __future__ import annotations

import asyncio
import random

import pytest

from tokio_redlock import Aioredlock


async def test_cancelled_lock_calls_leave_no_key(manager, servers):
    # The `servers` fixture checks afterwards that no key and no background task is left.
    random.seed(7)
    got = []
    for i in range(100):
        try:
            lock = await asyncio.wait_for(manager.lock(f"c{i % 5}", lock_timeout=30), random.uniform(0, 0.003))
        except asyncio.TimeoutError:
            continue
        got.append(lock)
    for lock in got:
        await manager.unlock(lock)


async def test_many_concurrent_cancelled_tasks(manager, servers):
    tasks = [asyncio.ensure_future(manager.lock(f"many{i}", lock_timeout=30)) for i in range(200)]
    await asyncio.sleep(0.002)
    for t in tasks:
        t.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    for r in results:
        if not isinstance(r, BaseException):
            await manager.unlock(r)


async def test_cancel_inside_async_with_releases(manager):
    entered = asyncio.Event()

    async def work():
        async with await manager.lock("cw", lock_timeout=30):
            entered.set()
            await asyncio.sleep(30)

    task = asyncio.ensure_future(work())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not await manager.is_locked("cw")


async def test_cancelled_waiting_acquire_unsubscribes(manager):
    holder = await manager.lock("q", lock_timeout=30)
    task = asyncio.ensure_future(manager.acquire("q", lock_timeout=5, wait=30))
    await asyncio.sleep(0.2)
    assert manager.subscribed_resources() == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(50):
        if manager.subscribed_resources() == 0:
            break
        await asyncio.sleep(0.02)
    assert manager.subscribed_resources() == 0
    await manager.unlock(holder)


async def test_cancelled_unlock_can_be_repeated(manager):
    lock = await manager.lock("u", lock_timeout=30)
    task = asyncio.ensure_future(manager.unlock(lock))
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await manager.unlock(lock)
    assert not await manager.is_locked("u")


async def test_cancelled_lock_calls_against_a_slow_master_leave_no_key(spawn_servers):
    import threading
    import time

    import redis

    servers = spawn_servers(3, debug=True)
    manager = Aioredlock([s.url for s in servers], internal_lock_timeout=5.0)
    stop = threading.Event()

    def slow_down():  # the third master answers in bursts, 50 ms late
        client = redis.Redis(port=servers[2].port, socket_timeout=5)
        while not stop.is_set():
            client.execute_command("DEBUG", "SLEEP", "0.05")

    thread = threading.Thread(target=slow_down)
    thread.start()
    random.seed(11)
    cancelled = attempts = 0
    try:
        # Until 20 calls were cancelled mid-flight (how many of a given number are depends on
        # the machine's speed), at most 2 000.
        while cancelled < 20 and attempts < 2000:
            i = attempts
            attempts += 1
            try:
                lock = await asyncio.wait_for(manager.lock(f"slow{i % 7}", lock_timeout=30), random.uniform(0, 0.002))
            except asyncio.TimeoutError:
                cancelled += 1
                continue
            await manager.unlock(lock)
    finally:
        stop.set()
        thread.join()
    assert cancelled >= 20, (cancelled, attempts)  # the windows were hit
    # Every key written by a cancelled call is released well before its 30 s TTL.
    deadline = time.monotonic() + 3
    while any(s.keys() for s in servers):
        assert time.monotonic() < deadline, {s.url: s.keys() for s in servers}
        await asyncio.sleep(0.05)
    await manager.destroy()
