"""aioredlock 0.7.3's public API: names, signatures, defaults, validation texts, reprs,
and the behaviour of every call against real masters."""

from __future__ import annotations

import asyncio
import inspect

import pytest

import tokio_redlock
from tokio_redlock import Aioredlock, Lock, LockAcquiringError, LockError, LockRuntimeError, Sentinel
from tokio_redlock.errors import AioredlockError, LockConflictError, LockNotHeldError, LockUnavailableError
from tokio_redlock.sentinel import SentinelConfigError


def test_names_and_submodules_mirror_aioredlock():
    for name in ("Aioredlock", "Lock", "LockError", "LockAcquiringError", "LockRuntimeError", "Sentinel"):
        assert name in tokio_redlock.__all__
    from tokio_redlock import algorithm, lock, utility

    assert algorithm.Aioredlock is Aioredlock
    assert lock.Lock is Lock
    assert utility.clean_password({"password": "x"}) == "{'password': '*******'}"
    assert utility.clean_password("redis://:secret@h:1/0") == "redis://:*******@h:1/0"
    # aioredlock's pattern shows a `user:password@` password after its mask; this one does not.
    assert utility.clean_password("redis://app:s3cret@h:1/0") == "redis://app:*******@h:1/0"
    assert utility.clean_password("rediss://app:p@ss:w@h:1") == "rediss://app:*******@h:1"


def test_exception_hierarchy():
    assert LockError.__mro__[1] is AioredlockError
    assert issubclass(LockAcquiringError, LockError) and issubclass(LockRuntimeError, LockError)
    assert issubclass(LockConflictError, LockAcquiringError)
    assert issubclass(LockNotHeldError, LockAcquiringError)
    assert issubclass(LockUnavailableError, LockRuntimeError)
    assert issubclass(SentinelConfigError, Exception)


def test_signatures_and_defaults():
    sig = inspect.signature(Aioredlock)
    assert [p for p in sig.parameters][:5] == [
        "redis_connections", "retry_count", "retry_delay_min", "retry_delay_max", "internal_lock_timeout",
    ]
    assert [sig.parameters[p].default for p in list(sig.parameters)[1:5]] == [3, 0.1, 0.3, 10.0]
    assert str(inspect.signature(Aioredlock.lock)) == "(self, resource: 'str', lock_timeout: 'Optional[float]' = None, lock_identifier: 'Optional[str]' = None) -> 'Lock'"
    assert list(inspect.signature(Aioredlock.extend).parameters) == ["self", "lock", "lock_timeout"]
    assert list(inspect.signature(Aioredlock.get_lock).parameters) == ["self", "resource", "lock_identifier"]
    lock_sig = inspect.signature(Lock)
    assert list(lock_sig.parameters) == ["lock_manager", "resource", "id", "lock_timeout", "valid"]
    assert lock_sig.parameters["lock_timeout"].default == 10.0 and lock_sig.parameters["valid"].default is False
    for name in ("lock", "unlock", "extend", "is_locked", "destroy", "get_active_locks", "get_lock"):
        assert inspect.iscoroutinefunction(getattr(Aioredlock, name)), name
    for name in ("extend", "release", "is_locked", "__aenter__", "__aexit__"):
        assert inspect.iscoroutinefunction(getattr(Lock, name)), name


def test_constructor_validation_texts(urls):
    with pytest.raises(ValueError, match=r"^Retry count must be greater or equal 1\.$"):
        Aioredlock(urls, retry_count=0)
    with pytest.raises(ValueError, match=r"^Retry delay must be greater than 0 seconds\.$"):
        Aioredlock(urls, retry_delay_min=0)
    with pytest.raises(ValueError, match=r"^Retry delay must be greater than 0 seconds\.$"):
        Aioredlock(urls, retry_delay_max=-1)
    with pytest.raises(ValueError, match=r"^Internal lock_timeout must be greater than 0 seconds\.$"):
        Aioredlock(urls, internal_lock_timeout=0)
    with pytest.raises(ValueError):
        Aioredlock(urls, retry_count="string")
    with pytest.raises(TypeError):
        Aioredlock(urls, retry_delay_min=None)
    # Converters run first: strings of numbers are accepted.
    m = Aioredlock(urls, retry_count="2", internal_lock_timeout="1.5")
    assert m.retry_count == 2 and m.internal_lock_timeout == 1.5
    # min > max is accepted (a uniform draw between them).
    Aioredlock(urls, retry_delay_min=0.3, retry_delay_max=0.1)


def test_connection_forms_and_their_errors(servers):
    unix = servers[0].socket_path
    forms = [
        {"host": "127.0.0.1", "port": servers[0].port, "db": 0, "encoding": "utf-8", "minsize": 1},
        ("127.0.0.1", servers[1].port),
        f"redis://127.0.0.1:{servers[2].port}/0?encoding=utf-8",
    ]
    m = Aioredlock(forms)
    assert m.quorum == 2 and len(m.masters) == 3
    Aioredlock([unix])
    with pytest.raises(ValueError, match="empty"):
        Aioredlock([])
    with pytest.raises(ValueError, match="more than once"):
        Aioredlock([servers[0].url, servers[0].url])
    with pytest.raises(TypeError, match="pass its address"):
        Aioredlock([object()])
    with pytest.raises(TypeError, match="unexpected connection option"):
        Aioredlock([{"host": "h", "port": 1, "bogus": 1}])


def test_repr_masks_passwords_and_objects_are_unhashable(urls):
    m = Aioredlock([{"host": "127.0.0.1", "port": 1, "password": "hunter2"}])
    assert "hunter2" not in repr(m) and "*******" in repr(m)
    assert repr(m).startswith("Aioredlock(redis_connections=")
    assert "hunter2" not in " ".join(m.masters)
    with pytest.raises(TypeError):
        hash(m)
    lock = Lock(m, "r", "id1")
    with pytest.raises(TypeError):
        hash(lock)
    assert lock == Lock(m, "r", "id1") and lock != Lock(m, "r", "id2")
    assert repr(lock).startswith("Lock(lock_manager=Aioredlock(") and "resource='r', id='id1', lock_timeout=10.0, valid=False)" in repr(lock)


async def test_a_password_with_url_characters_works_unencoded_and_is_never_shown(spawn_servers):
    # The engine reads the userinfo up to the last `@`, so `/ ? # @` need no percent-encoding;
    # dropping aioredis's pool options from the query must leave the password as written.
    (server,) = spawn_servers(1)
    password = "p/a?s@s#w"
    server.client.config_set("requirepass", password)
    url = f"redis://:{password}@127.0.0.1:{server.port}"
    for given in (url, f"{url}/0?encoding=utf-8&minsize=2"):
        m = Aioredlock([given], retry_count=1)
        try:
            assert all(password not in shown for shown in (repr(m), " ".join(m.masters)))
            lock = await m.lock("pw", lock_timeout=5)
            await m.unlock(lock)
        finally:
            await m.destroy()
    wrong = Aioredlock([f"redis://:{password}X@127.0.0.1:{server.port}"], retry_count=1)
    try:
        with pytest.raises(LockUnavailableError) as info:
            await wrong.lock("pw", lock_timeout=5)
        assert "authentication" in str(info.value)
        for shown in (str(info.value), repr(info.value), repr(wrong)):
            assert password not in shown and "p/a" not in shown, shown
    finally:
        await wrong.destroy()


def test_sentinel_configuration_errors_and_urls():
    with pytest.raises(SentinelConfigError, match="^Master name required for sentinel to be configured$"):
        Sentinel({"host": "s1"})
    with pytest.raises(SentinelConfigError, match="^Invalid Sentinel Configuration$"):
        Sentinel(42)
    assert Sentinel({"host": "s1", "master": "m"}).url() == "redis+sentinel://s1:26379/m"
    assert Sentinel([("s1", 1), ("s2", 2)], master="m", password="p w", db=3).url() == "redis+sentinel://:p%20w@s1:1,s2:2/m/3"
    assert Sentinel("redis://s1:26380/0?master=jobs").url() == "redis+sentinel://s1:26380/jobs/0"
    assert Sentinel(("s1", 5), master="m", ssl_context=__import__("ssl").create_default_context()).url().startswith("rediss+sentinel://")


async def test_lock_unlock_and_async_with(manager, servers):
    lock = await manager.lock("resource", lock_timeout=5)
    assert isinstance(lock, Lock) and lock.valid and lock.resource == "resource" and lock.lock_timeout == 5
    assert lock.lock_manager is manager
    assert len(lock.id) == 32
    assert await manager.is_locked("resource") and await manager.is_locked(lock) and await lock.is_locked()
    # A quorum answered before lock() returned (the third may still be in flight).
    assert sum(s.client.get("resource") == lock.id.encode() and 4000 < s.client.pttl("resource") <= 5000 for s in servers) >= 2
    await manager.unlock(lock)
    assert not lock.valid and not await manager.is_locked("resource")
    async with await manager.lock("resource", lock_timeout=5) as held:
        assert held.valid and await manager.is_locked("resource")
    assert not held.valid and not await manager.is_locked("resource")
    again = await manager.lock("resource", lock_timeout=5)
    await again.release()
    assert not await manager.is_locked("resource")


async def test_lock_timeout_validation_happens_at_await(manager):
    call = manager.lock("r", lock_timeout=0)  # nothing raised yet: a coroutine
    with pytest.raises(ValueError, match=r"^Lock timeout must be greater than 0 seconds\.$"):
        await call
    with pytest.raises(ValueError, match=r"^Lock timeout must be greater than 0 seconds\.$"):
        await manager.lock("r", lock_timeout=-1)
    with pytest.raises(TypeError, match="Argument should be ether aioredlock.Lock instance or string, <class 'int'> is given."):
        await manager.is_locked(42)
    # An empty resource (most often an unset variable) and a token in the engine's own
    # namespace of values are refused before any request.
    with pytest.raises(ValueError, match="empty"):
        await manager.lock("", lock_timeout=1)
    with pytest.raises(ValueError, match="empty"):
        await manager.is_locked("")
    with pytest.raises(ValueError, match="reserved"):
        await manager.lock("r", lock_timeout=1, lock_identifier="redlock:shared")


async def test_contention_raises_acquiring_error_after_retry_count_attempts(manager, urls):
    lock = await manager.lock("busy", lock_timeout=5)
    other = Aioredlock(urls, retry_count=2, retry_delay_min=0.05, retry_delay_max=0.05)
    try:
        with pytest.raises(LockAcquiringError) as info:
            await other.lock("busy", lock_timeout=5)
        e = info.value
        assert isinstance(e, LockConflictError) and e.is_conflict and e.reason == "conflict"
        assert str(e).startswith("Can not set lock: ") and "2 attempt(s)" in str(e)
        assert e.resource == "busy" and len(e.outcomes) == 3
        assert any(o.status == "held" for o in e.outcomes)
    finally:
        await other.destroy()
    await manager.unlock(lock)


async def test_extend(manager, servers):
    lock = await manager.lock("ext", lock_timeout=1)
    await manager.extend(lock, 5)
    assert lock.lock_timeout == 1  # as aioredlock: the field is not updated
    assert lock.validity > 4
    assert sum(s.client.pttl("ext") > 4000 for s in servers) >= 2
    await lock.extend()  # its own lock_timeout
    assert sum(0 < s.client.pttl("ext") <= 1000 for s in servers) >= 2
    with pytest.raises(ValueError, match=r"^Lock timeout must be greater than 0 seconds\.$"):
        await manager.extend(lock, 0)
    await manager.unlock(lock)
    with pytest.raises(RuntimeError, match="^Lock is not valid$"):
        await manager.extend(lock)


async def test_valid_turns_false_at_the_deadline_and_extend_never_recreates(manager, servers):
    lock = await manager.lock("short", lock_timeout=0.2)
    assert lock.valid
    await asyncio.sleep(0.35)
    assert not lock.valid and lock.validity == 0.0
    with pytest.raises(RuntimeError, match="^Lock is not valid$"):
        await manager.extend(lock)
    # Keys gone while the lock still looks valid (expired on the masters): extend raises
    # and never re-creates them (aioredlock would take the lock again).
    lock2 = await manager.lock("short2", lock_timeout=5)
    for s in servers:
        s.client.delete("short2")
    with pytest.raises(LockNotHeldError) as info:
        await manager.extend(lock2, 5)
    assert str(info.value).startswith("Can not set lock: ") and info.value.is_not_held
    assert not lock2.valid
    assert all(s.client.exists("short2") == 0 for s in servers)


async def test_unlocking_an_expired_lock_succeeds(manager, servers):
    lock = await manager.lock("gone", lock_timeout=0.1)
    await asyncio.sleep(0.25)
    await manager.unlock(lock)
    await manager.unlock(lock)  # a second unlock also succeeds


async def test_unlock_of_a_lock_taken_by_another_holder_raises(manager, urls, servers):
    lock = await manager.lock("stolen", lock_timeout=5)
    for s in servers:
        s.client.set("stolen", "someone-else", px=5000)
    with pytest.raises(LockAcquiringError) as info:
        await manager.unlock(lock)
    assert str(info.value).startswith("Can not unset lock") and info.value.is_not_held
    for s in servers:
        assert s.client.get("stolen") == b"someone-else"
        s.client.delete("stolen")


async def test_get_lock_get_active_locks_and_destroy(manager, urls, servers, on_masters):
    a = await manager.lock("a", lock_timeout=5)
    b = await manager.lock("b")  # auto-extended
    c = await manager.lock("c", lock_timeout=5)
    await manager.unlock(c)
    active = await manager.get_active_locks()
    assert sorted(l.resource for l in active) == ["a", "b"]
    got = await manager.get_lock("a", a.id)
    assert got.id == a.id and got.valid and isinstance(got.lock_timeout, float)
    assert 4.0 < got.lock_timeout <= 5.0
    with pytest.raises(LockError, match='^Could not fetch the TTL for lock "nothing"$'):
        await manager.get_lock("nothing", "x")
    with pytest.raises(LockAcquiringError, match="^Can not get lock$"):
        await manager.get_lock("a", "not-the-id")
    # A hand-built Lock with the same fields releases the tracked lock.
    await manager.unlock(Lock(manager, "a", a.id, 5, valid=True))
    assert not await manager.is_locked("a")
    await manager.destroy()
    on_masters(lambda s: s.keys() == [])
    assert not b.valid
    with pytest.raises(LockRuntimeError, match="^lock manager destroyed$"):
        await manager.lock("a")


async def test_non_lock_value_counts_as_locked(manager, servers):
    for s in servers:
        s.client.hset("h", "f", "v")
    assert await manager.is_locked("h")
    with pytest.raises(LockAcquiringError) as info:
        await manager.lock("h", lock_timeout=1)
    assert info.value.reason == "not_a_lock"
    for s in servers:
        s.client.delete("h")
