"""tokio_redlock against aioredlock 0.7.3, same machine, same run.

    python crates/redlock-py/bench/compare.py [--cycles 400] [--duration 3] [--rounds 3]

Needs both packages importable and redis-server on the PATH (the run starts three masters
on loopback ports and stops them at the end). After scripts/python.sh has built the
package in place:

    python3 -m venv target/bench-venv
    target/bench-venv/bin/pip install aioredlock==0.7.3
    PYTHONPATH=crates/redlock-py/python target/bench-venv/bin/python crates/redlock-py/bench/compare.py

or with the release build scripts/python-sdist.sh installs from the package's sdist:

    target/sdist-venv/bin/pip install aioredlock==0.7.3
    target/sdist-venv/bin/python crates/redlock-py/bench/compare.py --rounds 5

S1: one task, sequential lock+unlock on distinct resources (TTL 10 s), the contenders
interleaved cycle by cycle; p50/p99 latency. S2: 64 tasks, each locking and unlocking its
own resources for --duration seconds; lock+unlock cycles per second. Medians over rounds.
Speed depends on the machine's load: compare the ratios within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

warnings.simplefilter("ignore")  # aioredis 1.x deprecation noise


def free_port() -> int:
    while True:
        port = random.randint(20000, 32000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue


def start_masters(n: int):
    procs, ports = [], []
    d = tempfile.mkdtemp()
    for _ in range(n):
        port = free_port()
        procs.append(subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", d],
            stdout=subprocess.DEVNULL))
        ports.append(port)
    for port in ports:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), 0.1).close()
                break
            except OSError:
                time.sleep(0.02)
    return procs, ports


def contenders(ports):
    import aioredlock
    import tokio_redlock

    conns = [{"host": "127.0.0.1", "port": p} for p in ports]
    return {"aioredlock 0.7.3": aioredlock.Aioredlock(conns), "tokio_redlock": tokio_redlock.Aioredlock(conns)}


async def s1(managers, cycles):
    lat = {name: [] for name in managers}
    names = list(managers)
    for i in range(cycles):
        random.shuffle(names)
        for name in names:
            m = managers[name]
            t0 = time.perf_counter()
            lock = await m.lock(f"s1:{name}:{i}", lock_timeout=10)
            await m.unlock(lock)
            lat[name].append(time.perf_counter() - t0)
    out = {}
    for name, xs in lat.items():
        xs.sort()
        out[name] = (xs[len(xs) // 2] * 1e6, xs[int(len(xs) * 0.99)] * 1e6)
    return out


async def s2(m, name, duration, tasks=64):
    done = 0
    stop = time.perf_counter() + duration

    async def worker(k):
        nonlocal done
        i = 0
        while time.perf_counter() < stop:
            lock = await m.lock(f"s2:{name}:{k}:{i}", lock_timeout=10)
            await m.unlock(lock)
            done += 1
            i += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(k) for k in range(tasks)))
    return done / (time.perf_counter() - t0)


async def main(args):
    procs, ports = start_masters(3)
    try:
        managers = contenders(ports)
        for m in managers.values():  # connect
            lock = await m.lock("warmup", lock_timeout=10)
            await m.unlock(lock)
        r1 = {n: [] for n in managers}
        r2 = {n: [] for n in managers}
        order = list(managers)
        for rnd in range(args.rounds):
            for name, v in (await s1(managers, args.cycles)).items():
                r1[name].append(v)
            order = order[1:] + order[:1]
            for name in order:
                r2[name].append(await s2(managers[name], name, args.duration))
        for m in managers.values():
            await m.destroy()
    finally:
        for p in procs:
            p.terminate()
            p.wait()
    base1 = statistics.median(v[0] for v in r1["aioredlock 0.7.3"])
    base2 = statistics.median(r2["aioredlock 0.7.3"])
    print(f"load average: {os.getloadavg()}")
    print("| package | S1 p50 µs | S1 p99 µs | S1 p50 vs aioredlock | S2 64 tasks, cycles/s | S2 vs aioredlock |")
    print("|---|---|---|---|---|---|")
    for name in managers:
        p50 = statistics.median(v[0] for v in r1[name])
        p99 = statistics.median(v[1] for v in r1[name])
        rate = statistics.median(r2[name])
        print(f"| {name} | {p50:.0f} | {p99:.0f} | {p50 / base1:.2f}× | {rate:.0f} | {rate / base2:.2f}× |")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cycles", type=int, default=400)
    ap.add_argument("--duration", type=float, default=3.0)
    ap.add_argument("--rounds", type=int, default=3)
    asyncio.run(main(ap.parse_args()))
