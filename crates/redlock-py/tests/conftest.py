"""Real redis-server processes for the tests, on free loopback ports (no mocks).

``servers`` is a session-wide trio, emptied before each test; tests that stop or kill
masters take their own with ``spawn_servers``. After every test, ``no_leftovers`` checks
that no lock key is left on the shared masters and no background work is running.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from typing import Iterator, List

import pytest
import redis

import tokio_redlock

REDIS_SERVER = os.environ.get("REDIS_SERVER", "redis-server")


def _free_port() -> int:
    """A free loopback port below the ephemeral range (a client never self-connects to a
    stopped server's port)."""
    for _ in range(200):
        port = random.randint(20000, 32000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free loopback port found")


class Server:
    """One redis-server process."""

    def __init__(self, workdir: str, unix: bool = False, debug: bool = False) -> None:
        if shutil.which(REDIS_SERVER) is None:
            pytest.fail(
                f"cannot start Redis: `{REDIS_SERVER}` is not on PATH "
                "(install redis-server, e.g. apt-get install redis-server)",
                pytrace=False,
            )
        self.dir = tempfile.mkdtemp(dir=workdir)
        self.socket_path = os.path.join(self.dir, "redis.sock") if unix else None
        last = ""
        for _ in range(5):
            self.port = _free_port()
            args = [
                REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", self.dir,
            ]
            if debug:  # DEBUG SLEEP (Redis 7+)
                args += ["--enable-debug-command", "local"]
            if self.socket_path:
                args += ["--unixsocket", self.socket_path, "--unixsocketperm", "700"]
            self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    last = self.proc.stdout.read().decode(errors="replace") if self.proc.stdout else ""
                    break
                try:
                    if redis.Redis(port=self.port, socket_timeout=1).ping():
                        self.client = redis.Redis(port=self.port, socket_timeout=5)
                        return
                except redis.RedisError:
                    time.sleep(0.02)
            self.stop()
        pytest.fail(f"cannot start redis-server on a loopback port: {last[-500:]}", pytrace=False)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def pause(self) -> None:
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.proc.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()

    def keys(self) -> List[bytes]:
        return [k for k in self.client.keys("*") if not k.endswith(b":fence")]


@pytest.fixture(scope="session")
def workdir() -> Iterator[str]:
    d = tempfile.mkdtemp(prefix="tokio-redlock-py-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def shared_servers(workdir: str) -> Iterator[List[Server]]:
    servers = [Server(workdir, unix=(i == 0)) for i in range(3)]
    yield servers
    for s in servers:
        s.stop()


@pytest.fixture
def servers(shared_servers: List[Server]) -> Iterator[List[Server]]:
    for s in shared_servers:
        s.client.flushall()
    yield shared_servers
    # No key left behind: every lock released (or expired) shortly after the test.
    deadline = time.monotonic() + 3
    while True:
        left = {s.url: s.keys() for s in shared_servers}
        left = {k: v for k, v in left.items() if v}
        busy = tokio_redlock.background_tasks()
        if not left and busy == 0:
            break
        if time.monotonic() > deadline:
            pytest.fail(f"left behind: keys {left}, background tasks {busy}")
        time.sleep(0.05)


@pytest.fixture
def on_masters(servers: List[Server]):
    """Checks what a call left on the masters the way Redlock promises it: a call returns
    once a quorum answered, and the last master's request may land just after. So the
    condition holds on a majority at once, and on every master within ``timeout`` s. The
    masters are the shared ``servers`` unless a test passes its own."""

    def check(condition, masters=None, timeout: float = 3.0) -> None:
        masters = servers if masters is None else masters
        quorum = len(masters) // 2 + 1
        assert sum(bool(condition(s)) for s in masters) >= quorum, {s.url: s.keys() for s in masters}
        deadline = time.monotonic() + timeout
        while not all(condition(s) for s in masters):
            assert time.monotonic() < deadline, {s.url: s.keys() for s in masters}
            time.sleep(0.02)

    return check


@pytest.fixture
def urls(servers: List[Server]) -> List[str]:
    return [s.url for s in servers]


@pytest.fixture
def spawn_servers(workdir: str):
    """Starts dedicated servers (for tests that pause or kill them)."""
    started: List[Server] = []

    def spawn(n: int, debug: bool = False) -> List[Server]:
        new = [Server(workdir, debug=debug) for _ in range(n)]
        started.extend(new)
        return new

    yield spawn
    for s in started:
        s.stop()


@pytest.fixture
async def manager(urls: List[str]):
    m = tokio_redlock.Aioredlock(urls, retry_count=3, internal_lock_timeout=2.0)
    yield m
    await m.destroy()
