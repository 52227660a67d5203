"""Masters paused or killed: which exception, the auto-extension, the lost-lock signal."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

import tokio_redlock
from tokio_redlock import Aioredlock, LockAcquiringError, LockRuntimeError
from tokio_redlock.errors import LockLostError, LockUnavailableError


@pytest.fixture
async def trio(spawn_servers):
    servers = spawn_servers(3)
    m = Aioredlock([s.url for s in servers], retry_count=2, retry_delay_min=0.02, retry_delay_max=0.05,
                   internal_lock_timeout=0.6)
    yield servers, m
    for s in servers:
        s.resume()
    await m.destroy()


async def test_conflict_with_a_paused_master_is_a_runtime_error(trio):
    servers, m = trio
    # Another holder on one master, one master paused, one free: refused and failed.
    servers[0].client.set("r", "another-holder", px=5000)
    servers[1].pause()
    try:
        with pytest.raises(LockRuntimeError) as info:
            await m.lock("r", lock_timeout=5)
        # aioredlock's priority rule: a failed master makes it a runtime error.
        assert [o.status for o in info.value.failed_masters] == ["timeout"]
        assert any(o.status == "held" for o in info.value.outcomes)
        assert isinstance(info.value.__cause__, TimeoutError)
    finally:
        servers[1].resume()
    # With every master answering, the same refusal is an acquiring error.
    holder = await m.lock("r2", lock_timeout=5)
    with pytest.raises(LockAcquiringError):
        await m.lock("r2", lock_timeout=5)
    await m.unlock(holder)
    servers[0].client.delete("r")


async def test_a_master_not_awaited_is_no_failure_and_its_late_grant_is_released(spawn_servers):
    servers = spawn_servers(3)
    # A per-master timeout far above the refusals' round trips: the third master is left
    # unanswered by the verdict, not timed out.
    m = Aioredlock([s.url for s in servers], retry_count=1, node_timeout=3.0)
    try:
        servers[0].client.set("na", "another-holder", px=30_000)
        servers[1].client.set("na", "another-holder", px=30_000)
        servers[2].pause()
        try:
            with pytest.raises(LockAcquiringError) as info:
                await m.lock("na", lock_timeout=30)
        finally:
            servers[2].resume()
        # Two refusals decide it: a conflict, not a runtime error, whatever the third does.
        e = info.value
        assert not isinstance(e, LockRuntimeError) and e.is_conflict, e
        assert [o.status for o in e.outcomes] == ["held", "held", "not_awaited"], e.outcomes
        assert e.failed_masters == [] and e.__cause__ is None
        # Resumed, the third master runs the request late (a `SET … NX`) and grants it, the
        # key being free there: the engine releases that grant long before its 30 s TTL.
        def landed() -> bool:
            stats = servers[2].client.info("commandstats").get("cmdstat_set", {})
            return int(stats.get("calls", 0)) > 0

        deadline = time.monotonic() + 10
        while not (landed() and not servers[2].client.exists("na")):
            assert time.monotonic() < deadline, (
                f"late request ran: {landed()}; key left with PTTL {servers[2].client.pttl('na')}"
            )
            await asyncio.sleep(0.02)
        assert servers[0].client.get("na") == b"another-holder"
    finally:
        await m.destroy()


async def test_no_quorum_is_unavailable_and_is_locked_raises(trio):
    servers, m = trio
    servers[0].kill()
    servers[1].kill()
    with pytest.raises(LockUnavailableError) as info:
        await m.lock("r", lock_timeout=1)
    assert str(info.value).startswith("Can not set lock: ") and info.value.is_unavailable
    assert isinstance(info.value.__cause__, ConnectionError)
    with pytest.raises(LockRuntimeError, match="^Can not get lock"):
        await m.is_locked("r")


async def test_auto_extension_keeps_the_lock_and_survives_a_blocked_loop(trio, on_masters):
    servers, m = trio
    lock = await m.lock("auto")  # internal_lock_timeout 0.6 s, extended every 0.2 s
    assert lock.lock_timeout is None and lock.auto_extend
    await asyncio.sleep(1.5)
    assert lock.valid and await m.is_locked("auto")
    time.sleep(1.0)  # the event loop is blocked: the engine's threads keep extending
    assert lock.valid and not lock.lost
    assert sum(s.client.get("auto") == lock.id.encode() for s in servers) >= 2
    await m.extend(lock, 3)  # an explicit extension of an auto-extended lock
    assert lock.validity > 2
    await m.unlock(lock)
    on_masters(lambda s: s.client.exists("auto") == 0, servers)


async def test_losing_the_quorum_signals_loss_before_the_keys_expire(trio, caplog):
    servers, m = trio
    caplog.set_level(logging.WARNING, logger="tokio_redlock")
    tokio_redlock.refresh_logging()
    lock = await m.lock("fragile")
    event = lock.lost_event
    acquired = time.monotonic()
    servers[0].pause()
    servers[1].pause()
    await asyncio.wait_for(lock.wait_lost(), 5)
    lost_at = time.monotonic()
    assert event.is_set() or await asyncio.wait_for(event.wait(), 1)
    assert not lock.valid and lock.lost and lock.loss_cause
    # Before anyone else could acquire: the survivor's key still has time left.
    assert servers[2].client.pttl("fragile") > 0
    assert lost_at - acquired < 0.6 + 0.6  # within a TTL of the last extension
    # The engine's warning reaches Python's logging, under the tokio_redlock loggers.
    for _ in range(50):
        if any(r.name == "tokio_redlock.guard" and r.levelno == logging.WARNING for r in caplog.records):
            break
        await asyncio.sleep(0.02)
    assert any(r.name == "tokio_redlock.guard" and "lost" in r.getMessage() for r in caplog.records), caplog.records
    with pytest.raises(RuntimeError, match="^Lock is not valid$"):
        await m.extend(lock)
    servers[0].resume()
    servers[1].resume()
    await m.unlock(lock)


async def test_a_lock_lost_early_is_invalid_at_once(trio):
    # Another holder takes the keys well before the deadline (an operator's forced release,
    # then a new holder): once the loss is signalled, `valid` is False at once, not at the
    # old deadline.
    servers, m = trio
    lock = await m.lock("taken")  # auto-extended: 0.6 s TTL, extended every 0.2 s
    for s in servers:
        s.client.set("taken", "someone-else", px=5000)
    await asyncio.wait_for(lock.wait_lost(), 5)
    assert lock.lost
    assert not lock.valid
    assert lock.validity == 0
    for s in servers:
        s.client.delete("taken")


async def test_cancel_on_loss_cancels_the_block(trio):
    servers, m = trio
    lock = await m.lock("job")
    reached_end = False
    with pytest.raises(LockLostError):
        async with lock.cancel_on_loss():
            servers[0].pause()
            servers[1].pause()
            await asyncio.sleep(10)
            reached_end = True
    assert not reached_end and not lock.valid
    servers[0].resume()
    servers[1].resume()
    await m.unlock(lock)
