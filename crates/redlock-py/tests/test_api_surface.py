"""The package against aioredlock 0.7.3 itself (installed by scripts/python.sh with
``--no-deps``; its aioredis dependency is stubbed, since only names, signatures, classes
and validation are compared here — no aioredlock code talks to Redis)."""

from __future__ import annotations

import importlib
import inspect
import sys
import types
import warnings

import pytest

import tokio_redlock


@pytest.fixture(scope="module")
def aioredlock():
    stub = types.ModuleType("aioredis")
    stub.sentinel = types.ModuleType("aioredis.sentinel")  # type: ignore[attr-defined]
    saved = {k: sys.modules.get(k) for k in ("aioredis", "aioredis.sentinel")}
    sys.modules["aioredis"] = stub
    sys.modules["aioredis.sentinel"] = stub.sentinel  # type: ignore[attr-defined]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # its `distutils` import
            try:
                module = importlib.import_module("aioredlock")
            except ImportError:
                pytest.fail(
                    "aioredlock 0.7.3 is not installed: pip install --no-deps aioredlock==0.7.3 attrs "
                    "(scripts/python.sh does)",
                    pytrace=False,
                )
        assert module.__name__ == "aioredlock"
        yield module
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


def test_all_names(aioredlock):
    assert set(aioredlock.__all__) <= set(tokio_redlock.__all__)
    for name in aioredlock.__all__:
        assert getattr(tokio_redlock, name).__name__ == getattr(aioredlock, name).__name__
    for module in ("algorithm", "lock", "errors", "sentinel", "utility"):
        theirs = importlib.import_module(f"aioredlock.{module}")
        ours = importlib.import_module(f"tokio_redlock.{module}")
        public = [n for n, v in vars(theirs).items() if not n.startswith("_") and getattr(v, "__module__", None) == theirs.__name__]
        for name in public:
            assert hasattr(ours, name), f"tokio_redlock.{module}.{name} missing"


def _params(f):
    return [(p.name, p.default, p.kind) for p in inspect.signature(f).parameters.values()]


def test_signatures_are_a_prefix_with_equal_defaults(aioredlock):
    pairs = [(aioredlock.Aioredlock, tokio_redlock.Aioredlock), (aioredlock.Lock, tokio_redlock.Lock),
             (aioredlock.Sentinel, tokio_redlock.Sentinel)]
    for theirs, ours in pairs:
        for name, member in vars(theirs).items():
            if name.startswith("_") and name not in ("__init__", "__aenter__", "__aexit__"):
                continue
            if not callable(member):
                continue
            if theirs.__name__ == "Sentinel" and name in ("get_sentinel", "get_master"):
                continue  # they return aioredis objects: no equivalent (docs/python.md)
            mine = getattr(ours, name)
            t, o = _params(member), _params(mine)
            if name == "__init__":
                t = [x for x in t if x[0] != "self"]
                o = [x for x in o if x[0] != "self"]
                # The default connection list is built per instance (None means it).
                t = [(n, None if n == "redis_connections" else d, k) for n, d, k in t]
            if name == "__aexit__":
                assert len(o) == 2 and o[1][2] == inspect.Parameter.VAR_POSITIONAL
                continue
            assert o[: len(t)] == t, f"{theirs.__name__}.{name}: {t} vs {o}"
            assert all(p[1] is not inspect.Parameter.empty or p[2] == inspect.Parameter.KEYWORD_ONLY for p in o[len(t):]), name
            assert inspect.iscoroutinefunction(member) == inspect.iscoroutinefunction(mine), name


def test_exception_classes(aioredlock):
    from aioredlock import errors as theirs
    from aioredlock import sentinel as their_sentinel

    for name in ("AioredlockError", "LockError", "LockAcquiringError", "LockRuntimeError"):
        t, o = getattr(theirs, name), getattr(tokio_redlock.errors, name)
        assert [c.__name__ for c in t.__mro__] == [c.__name__ for c in o.__mro__]
    assert [c.__name__ for c in their_sentinel.SentinelConfigError.__mro__] == [
        c.__name__ for c in tokio_redlock.sentinel.SentinelConfigError.__mro__
    ]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"retry_count": 0}, {"retry_count": "string"}, {"retry_count": None},
        {"retry_delay_min": 0}, {"retry_delay_max": -0.5}, {"retry_delay_min": None},
        {"internal_lock_timeout": 0}, {"internal_lock_timeout": "x"},
    ],
)
def test_constructor_validation_matches(aioredlock, kwargs):
    conns = [{"host": "127.0.0.1", "port": 6379}]
    with pytest.raises(Exception) as theirs:
        aioredlock.Aioredlock(conns, **kwargs)
    with pytest.raises(Exception) as ours:
        tokio_redlock.Aioredlock(conns, **kwargs)
    assert type(ours.value) is type(theirs.value)
    if isinstance(theirs.value, ValueError) and "must be" in str(theirs.value):
        assert str(ours.value) == str(theirs.value)


def test_sentinel_errors_match(aioredlock):
    for args, kwargs in [(({"host": "s"},), {}), ((42,), {}), ((("s", 1),), {})]:
        with pytest.raises(aioredlock.sentinel.SentinelConfigError) as theirs:
            aioredlock.Sentinel(*args, **kwargs)
        with pytest.raises(tokio_redlock.sentinel.SentinelConfigError) as ours:
            tokio_redlock.Sentinel(*args, **kwargs)
        assert str(ours.value) == str(theirs.value)


@pytest.mark.parametrize(
    "conns",
    [
        [{"host": "localhost", "port": 6379}],
        [{"host": "h", "port": 1, "password": "hunter2", "db": 2}],
        ["redis://:hunter2@h:1/0", ("h2", 2)],
        ["redis://h:1"],
    ],
)
def test_reprs_and_equality_match(aioredlock, conns):
    theirs = aioredlock.Aioredlock(conns)
    ours = tokio_redlock.Aioredlock(conns)
    assert repr(ours) == repr(theirs)
    assert "hunter2" not in repr(ours)
    assert repr(tokio_redlock.Lock(ours, "r", "i", None, True)) == repr(aioredlock.Lock(theirs, "r", "i", None, True))
    assert ours == tokio_redlock.Aioredlock(conns) and ours != tokio_redlock.Aioredlock(conns, retry_count=5)
    for obj in (theirs, ours, aioredlock.Lock(theirs, "r", "i"), tokio_redlock.Lock(ours, "r", "i")):
        with pytest.raises(TypeError):
            hash(obj)
    assert tokio_redlock.utility.clean_password(conns) == aioredlock.utility.clean_password(conns)
