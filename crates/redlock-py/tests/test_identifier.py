"""Caller-chosen lock ids (``lock_identifier``), ``get_lock`` and hand-built ``Lock`` objects
on a lock taken by another manager, and retry delays re-read on every call."""

import gc
import time

import pytest

from tokio_redlock import Aioredlock, Lock, LockAcquiringError


async def test_lock_identifier_is_the_id_and_reentrant(manager, urls, servers, on_masters):
    first = await manager.lock("r", lock_timeout=5, lock_identifier="job-1")
    assert first.id == "job-1"
    on_masters(lambda s: s.client.get("r") == b"job-1")
    # The same id again: acquired, the TTL raised to the new lock's, never lowered.
    second = await manager.lock("r", lock_timeout=20, lock_identifier="job-1")
    assert second.id == "job-1" and second.valid
    third = await manager.lock("r", lock_timeout=1, lock_identifier="job-1")
    assert third.valid
    on_masters(lambda s: s.client.pttl("r") > 15_000)
    other = Aioredlock(urls, retry_count=1)
    try:
        with pytest.raises(LockAcquiringError):
            await other.lock("r", lock_timeout=5, lock_identifier="job-2")
    finally:
        await other.destroy()
    # The earlier lock was superseded: it can no longer be extended (that could cut the
    # newer lock's TTL), and the extension's failure releases the resource, as in aioredlock.
    with pytest.raises(LockAcquiringError):
        await manager.extend(first, 1)
    on_masters(lambda s: s.client.get("r") is None)


async def test_superseded_lock_dropped_releases_nothing(manager, servers, on_masters):
    first = await manager.lock("r", lock_timeout=5, lock_identifier="job-1")
    second = await manager.lock("r", lock_timeout=5, lock_identifier="job-1")
    del first
    gc.collect()
    time.sleep(0.3)
    assert all(s.client.get("r") == b"job-1" for s in servers)
    await manager.unlock(second)
    on_masters(lambda s: s.client.get("r") is None)


async def test_auto_extended_lock_with_identifier(manager, servers, on_masters):
    lock = await manager.lock("r", lock_identifier="job-1")  # auto-extended
    assert lock.id == "job-1" and lock.auto_extend
    await manager.unlock(lock)
    on_masters(lambda s: s.client.get("r") is None)


async def test_bad_lock_identifiers(manager, servers, on_masters):
    with pytest.raises(ValueError, match="control character"):
        await manager.lock("r", lock_timeout=1, lock_identifier="a\nb")
    with pytest.raises(ValueError, match="at most 256"):
        await manager.lock("r", lock_timeout=1, lock_identifier="x" * 257)
    with pytest.raises(TypeError, match="lock_identifier"):
        await manager.lock("r", lock_timeout=1, lock_identifier=42)  # type: ignore[arg-type]
    # aioredlock: ``lock_identifier or str(uuid4())``: an empty id means a random one.
    lock = await manager.lock("r", lock_timeout=1, lock_identifier="")
    assert len(lock.id) == 32
    await manager.unlock(lock)
    on_masters(lambda s: s.keys() == [])


async def test_get_lock_and_hand_built_lock_of_another_manager(manager, urls, servers, on_masters):
    await manager.lock("r", lock_timeout=5, lock_identifier="job-1")
    other = Aioredlock(urls)
    try:
        got = await other.get_lock("r", "job-1")
        assert got.id == "job-1" and got.valid
        assert isinstance(got.lock_timeout, float) and 3.0 < got.lock_timeout <= 5.0
        # Dropping a handle of someone else's lock releases nothing.
        del got
        gc.collect()
        time.sleep(0.2)
        assert all(s.client.get("r") == b"job-1" for s in servers)
        # A hand-built Lock is adopted from the masters: extend and unlock work.
        hand = Lock(other, "r", "job-1", 5, valid=True)
        await other.extend(hand, 8)
        on_masters(lambda s: s.client.pttl("r") > 7_000)
        assert hand.valid and 7.0 < hand.validity <= 8.0
        await other.unlock(hand)
        on_masters(lambda s: s.client.get("r") is None)
        # Unlocking a hand-built lock whose keys are gone succeeds, as in aioredlock.
        await other.unlock(Lock(other, "r", "job-1", 5, valid=True))
        # Extending one that is not held fails (and, as in aioredlock, releases).
        with pytest.raises(LockAcquiringError):
            await other.extend(Lock(other, "r", "job-1", 5, valid=True))
    finally:
        await other.destroy()


async def test_retry_delay_is_reread_on_every_call(urls, servers):
    m = Aioredlock(urls, retry_count=3, retry_delay_min=0.001, retry_delay_max=0.001)
    holder = Aioredlock(urls)
    try:
        await holder.lock("r", lock_timeout=10)
        m.retry_delay_min = m.retry_delay_max = 0.3
        started = time.monotonic()
        with pytest.raises(LockAcquiringError):
            await m.lock("r", lock_timeout=1)
        assert time.monotonic() - started >= 0.55, "two sleeps of 0.3 s"
        m.retry_delay_min = 0
        with pytest.raises(ValueError, match="Retry delay must be greater than 0 seconds."):
            await m.lock("r", lock_timeout=1)
        m.retry_delay_min = m.retry_delay_max = 100.0
        with pytest.raises(ValueError, match="retry"):
            await m.lock("r", lock_timeout=1)
    finally:
        await m.destroy()
        await holder.destroy()
