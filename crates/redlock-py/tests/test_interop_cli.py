"""The package and Rust's `redlock` CLI on the same resources: they exclude each other.

The binary comes from ``REDLOCK_BIN`` (scripts/python.sh builds it with
``cargo build -p redlock-cli``)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import List, Tuple

import pytest

from tokio_redlock import Aioredlock, LockAcquiringError


@pytest.fixture(scope="module")
def redlock_bin() -> str:
    path = os.environ.get("REDLOCK_BIN")
    if not path:
        root = Path(__file__).resolve().parents[3]
        target = Path(os.environ.get("CARGO_TARGET_DIR", root / "target"))
        for candidate in (target / "debug" / "redlock", target / "release" / "redlock"):
            if candidate.is_file():
                path = str(candidate)
                break
    if not path or not os.access(path, os.X_OK):
        pytest.fail("the redlock CLI is needed: cargo build -p redlock-cli, then set REDLOCK_BIN", pytrace=False)
    return path


def cli_env(urls: List[str]) -> dict:
    return {**os.environ, "REDLOCK_SERVERS": ",".join(urls)}


# The CLI's exit status when too few masters answered in time (EX_UNAVAILABLE): on a loaded
# machine a fresh process may miss its 1 s connect budget; such a run is repeated.
UNAVAILABLE = 69


def cli(redlock_bin: str, urls: List[str], *args: str) -> subprocess.CompletedProcess:
    for _ in range(5):
        p = subprocess.run([redlock_bin, *args], env=cli_env(urls), capture_output=True, text=True, timeout=60)
        if p.returncode != UNAVAILABLE:
            return p
    return p


async def test_a_python_lock_excludes_the_cli(manager, urls, redlock_bin):
    lock = await manager.lock("shared", lock_timeout=10)
    p = cli(redlock_bin, urls, "exec", "-q", "-n", "shared", "--", "true")
    assert p.returncode == 1, p.stderr
    await manager.unlock(lock)
    p = cli(redlock_bin, urls, "exec", "-q", "-n", "shared", "--", "true")
    assert p.returncode == 0, p.stderr


async def test_a_cli_lock_excludes_python_until_it_exits(manager, urls, redlock_bin):
    p = None
    try:
        for _ in range(5):
            p = subprocess.Popen([redlock_bin, "exec", "-q", "shared2", "--", "sleep", "1"], env=cli_env(urls))
            deadline = time.monotonic() + 10
            while p.poll() is None and not await manager.is_locked("shared2"):
                assert time.monotonic() < deadline, "the CLI never took the lock"
                await asyncio.sleep(0.01)
            if p.poll() is None:
                break
            assert p.returncode == UNAVAILABLE, p.returncode
        assert p is not None and p.poll() is None, "the CLI never took the lock"
        other = Aioredlock(urls, retry_count=1)
        with pytest.raises(LockAcquiringError):
            await other.lock("shared2", lock_timeout=5)
        await other.destroy()
        lock = await manager.acquire("shared2", lock_timeout=5, wait=10)
        assert p.wait(5) == 0
        await manager.unlock(lock)
    finally:
        if p is not None and p.poll() is None:
            p.kill()
            p.wait()


WORKER = """
import asyncio, os, sys, time
from tokio_redlock import Aioredlock
async def main():
    out, rounds, urls = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    m = Aioredlock(urls)
    for _ in range(rounds):
        lock = await m.acquire("contended", lock_timeout=5, wait=30)
        start = time.monotonic_ns()
        await asyncio.sleep(0.01)
        end = time.monotonic_ns()
        with open(out, "a") as f:
            f.write(f"{start} {end} py{os.getpid()}\\n")
        await m.unlock(lock)
    await m.destroy()
asyncio.run(main())
"""

RECORD = (
    "import os, sys, time; s = time.monotonic_ns(); time.sleep(0.01); e = time.monotonic_ns(); "
    "open(sys.argv[1], 'a').write(f'{s} {e} cli{os.getppid()}\\n')"
)


def test_mixed_contention_never_overlaps(urls, servers, redlock_bin, tmp_path):
    out = tmp_path / "sections.txt"
    workers = [
        subprocess.Popen([sys.executable, "-c", textwrap.dedent(WORKER), str(out), "15", *urls])
        for _ in range(3)
    ]
    cli_rounds = 8
    cli = [
        subprocess.Popen(
            ["sh", "-c",
             f'for i in $(seq {cli_rounds}); do '
             f'until "$0" exec -q -w 30 contended -- "$1" -c "$2" "$3"; do rc=$?; [ $rc -eq {UNAVAILABLE} ] || exit $rc; done; '
             'done',
             redlock_bin, sys.executable, RECORD, str(out)],
            env=cli_env(urls),
        )
        for _ in range(2)
    ]
    for p in workers + cli:
        assert p.wait(120) == 0
    sections: List[Tuple[int, int, str]] = []
    for line in out.read_text().splitlines():
        s, e, who = line.split()
        sections.append((int(s), int(e), who))
    assert len(sections) == 3 * 15 + 2 * cli_rounds
    assert any(w.startswith("cli") for _, _, w in sections) and any(w.startswith("py") for _, _, w in sections)
    sections.sort()
    for (s1, e1, w1), (s2, e2, w2) in zip(sections, sections[1:]):
        assert e1 <= s2, f"overlap: {w1} [{s1}, {e1}] and {w2} [{s2}, {e2}]"


async def test_readers_of_the_cli_count_as_locked(manager, urls, redlock_bin):
    """Readers of a read-write lock (``redlock exec --shared``) hold the name: ``is_locked``
    says so, as ``lock`` refuses it."""
    p = None
    try:
        for _ in range(5):
            p = subprocess.Popen([redlock_bin, "exec", "-q", "--shared", "readers", "--", "sleep", "2"], env=cli_env(urls))
            deadline = time.monotonic() + 10
            while p.poll() is None and not await manager.is_locked("readers"):
                assert time.monotonic() < deadline, "is_locked never saw the readers"
                await asyncio.sleep(0.01)
            if p.poll() is None:
                break
            assert p.returncode == UNAVAILABLE, p.returncode
        assert p is not None and p.poll() is None, "the CLI never took the reader's lock"
        other = Aioredlock(urls, retry_count=1)
        with pytest.raises(LockAcquiringError):
            await other.lock("readers", lock_timeout=5)
        await other.destroy()
    finally:
        if p is not None and p.poll() is None:
            p.terminate()
            p.wait()
    deadline = time.monotonic() + 10
    while await manager.is_locked("readers"):
        assert time.monotonic() < deadline, "the readers never left"
        await asyncio.sleep(0.05)
