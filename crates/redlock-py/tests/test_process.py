"""Whole processes: exit without destroy, SIGINT, fork."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest


def run(code: str, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True, text=True, timeout=timeout,
    )


def test_exit_without_destroy_releases_and_does_not_crash(urls, servers):
    code = """
        import asyncio, sys
        from tokio_redlock import Aioredlock
        async def main():
            m = Aioredlock(sys.argv[1:])
            await m.lock("exit-plain", lock_timeout=30)
            await m.lock("exit-auto")
        asyncio.run(main())
    """
    for _ in range(10):
        p = run(code, *urls)
        assert p.returncode == 0, p.stderr
        assert "panicked" not in p.stderr and "Fatal Python error" not in p.stderr, p.stderr
        assert all(s.client.exists("exit-plain", "exit-auto") == 0 for s in servers)


def test_sigint_during_lock_leaves_no_key(urls, servers):
    servers[0].client.set("busy", "other", px=60000)
    servers[1].client.set("busy", "other", px=60000)
    code = """
        import asyncio, sys
        from tokio_redlock import Aioredlock
        async def main():
            m = Aioredlock(sys.argv[1:])
            print("ready", flush=True)
            await m.acquire("busy", lock_timeout=30, wait=60)
        asyncio.run(main())
    """
    p = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *urls],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    time.sleep(0.5)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=30)
    assert p.returncode in (1, 130, -signal.SIGINT), err
    assert "KeyboardInterrupt" in err and "panicked" not in err and "Fatal Python error" not in err
    assert servers[2].client.exists("busy") == 0
    servers[0].client.delete("busy")
    servers[1].client.delete("busy")


def test_fork_child_must_create_its_own_manager(urls, servers):
    code = """
        import asyncio, os, sys
        from tokio_redlock import Aioredlock
        urls = sys.argv[1:]
        m = Aioredlock(urls)
        asyncio.run(m.is_locked("f"))  # the runtime is running before the fork
        pid = os.fork()
        if pid == 0:
            try:
                asyncio.run(m.lock("f", lock_timeout=5))
                os._exit(3)
            except RuntimeError as e:
                assert "create a new Aioredlock after fork" in str(e), e
            own = Aioredlock(urls)
            async def child():
                lock = await own.lock("f", lock_timeout=5)
                await own.unlock(lock)
                await own.destroy()
            asyncio.run(child())
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, status
        # A child that exits normally (atexit runs) leaves the parent's lock alone.
        held = asyncio.run(m.lock("parent", lock_timeout=30))
        pid = os.fork()
        if pid == 0:
            sys.exit(0)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, status
        assert asyncio.run(m.is_locked("parent"))
        asyncio.run(m.unlock(held))
        asyncio.run(m.destroy())
        print("ok")
    """
    p = run(code, *urls)
    assert p.returncode == 0 and p.stdout.strip() == "ok", p.stderr
