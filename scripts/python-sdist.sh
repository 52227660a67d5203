#!/usr/bin/env bash
# Packaging proof for the Python package `tokio-redlock` (crates/redlock-py): builds its
# source distribution with maturin, installs it into a fresh virtual environment from the
# sdist file alone (pip runs maturin as the PEP 517 backend in an isolated build
# environment; cargo compiles the Rust code the sdist carries, with its Cargo.lock), then
# imports the installed package and takes and releases a lock on a real redis-server.
#
#   scripts/python-sdist.sh
#
# Needs the Rust toolchain, python3 (>= 3.9) with venv, and pip access to PyPI (for
# maturin). Everything it writes lives in the cargo target dir ($CARGO_TARGET_DIR, default
# target/): the sdist in dist/, the fresh venv in sdist-venv/ (both recreated every run).
#
# TOKIO_REDLOCK_PY_PROFILE=dev builds the extension in cargo's dev profile (passed to the
# PEP 517 build as `--config-settings build-args=…`) instead of the release profile pip
# uses by default, and reuses what an earlier dev build in the same target dir compiled (as
# in scripts/check.sh). Measured on a 2-CPU machine shared with other builds (load average
# about 10): 4.5 minutes in the dev profile after scripts/python.sh, 19 minutes for a
# release build into an empty release dir. On a quiet machine expect a fraction of that.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
scripts/install-redis.sh

target="${CARGO_TARGET_DIR:-$root/target}"
export CARGO_TARGET_DIR="$target"
python="${PYTHON:-python3}"
tools="$target/py-venv"
dist="$target/dist"
venv="$target/sdist-venv"
profile="${TOKIO_REDLOCK_PY_PROFILE:-release}"

step() { printf '\n==> %s\n' "$*"; }
started=$SECONDS

step "building the sdist (maturin sdist)"
if [ ! -x "$tools/bin/python" ]; then
  "$python" -m venv "$tools"
fi
"$tools/bin/python" -m pip install -q --disable-pip-version-check 'maturin>=1.9.4,<2'
rm -rf "$dist"
"$tools/bin/maturin" sdist -m crates/redlock-py/Cargo.toml -o "$dist"
sdists=("$dist"/tokio_redlock-*.tar.gz)
[ "${#sdists[@]}" -eq 1 ] && [ -f "${sdists[0]}" ] || {
  echo "expected exactly one sdist in $dist, found: ${sdists[*]}" >&2
  exit 1
}
sdist="${sdists[0]}"
echo "sdist: $(basename "$sdist") ($(du -h "$sdist" | cut -f1))"

step "the sdist's Cargo.lock pins its build: resolving the sdist's crates changes no version"
# The sdist's workspace holds only the two crates of the package, so cargo drops the lock
# entries of the repository's other crates (which is why the build below cannot pass
# --locked); every package it keeps must keep the version the repository locked.
unpacked="$(mktemp -d)"
tar xzf "$sdist" -C "$unpacked"
src="$unpacked/$(basename "$sdist" .tar.gz)"
cp "$src/Cargo.lock" "$unpacked/Cargo.lock.shipped"
(cd "$src" && cargo metadata --format-version 1 -q >/dev/null)
"$python" - "$unpacked/Cargo.lock.shipped" "$src/Cargo.lock" <<'PY'
import re
import sys


def packages(path):
    text = open(path, encoding="utf-8").read()
    found = re.findall(r'\[\[package\]\]\nname = "([^"]+)"\nversion = "([^"]+)"', text)
    return set(found)


shipped, resolved = packages(sys.argv[1]), packages(sys.argv[2])
changed = sorted(resolved - shipped)
if not resolved or changed:
    sys.exit(f"the sdist's build resolves versions its Cargo.lock does not pin: {changed}")
print(f"{len(resolved)} packages resolved, all at the versions of the shipped Cargo.lock "
      f"({len(shipped - resolved)} entries of the repository's other crates dropped)")
PY
rm -rf "$unpacked"

step "installing it into a fresh venv from the sdist alone (pip, $profile profile)"
rm -rf "$venv"
"$python" -m venv "$venv"
build_args=()
if [ "$profile" != "release" ]; then
  build_args+=(--profile "$profile")
fi
"$venv/bin/python" -m pip install -q --disable-pip-version-check --no-cache-dir \
  ${build_args[@]+--config-settings "build-args=${build_args[*]}"} "$sdist"

step "a lock and an unlock through the installed package, against a real redis-server"
port="$("$venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
redis_dir="$(mktemp -d)"
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$redis_dir" \
  --daemonize no --logfile "$redis_dir/redis.log" &
redis_pid=$!
cleanup() {
  kill "$redis_pid" 2>/dev/null || true
  wait "$redis_pid" 2>/dev/null || true
  rm -rf "$redis_dir"
}
trap cleanup EXIT
for _ in $(seq 100); do
  if redis-cli -p "$port" ping 2>/dev/null | grep -q PONG; then
    break
  fi
  sleep 0.05
done
redis-cli -p "$port" ping | grep -q PONG || {
  echo "redis-server on port $port did not start:" >&2
  cat "$redis_dir/redis.log" >&2
  exit 1
}
# Run from the venv's directory, so that nothing of the checkout can be imported.
(cd "$venv" && REDIS_PORT="$port" VENV="$venv" bin/python - <<'PY'
import asyncio
import os

import tokio_redlock
from tokio_redlock import Aioredlock, LockError

venv = os.path.realpath(os.environ["VENV"])
where = os.path.realpath(tokio_redlock.__file__)
assert where.startswith(venv + os.sep), f"imported from {where}, not from the fresh venv"
port = int(os.environ["REDIS_PORT"])


async def main() -> None:
    manager = Aioredlock([{"host": "127.0.0.1", "port": port}], retry_count=1)
    lock = await manager.lock("sdist-check", lock_timeout=10)
    assert lock.valid and await manager.is_locked("sdist-check"), "the lock is held"
    try:
        await manager.lock("sdist-check", lock_timeout=10)
    except LockError:
        pass
    else:
        raise AssertionError("a second lock on a held resource was granted")
    await manager.unlock(lock)
    assert not lock.valid and not await manager.is_locked("sdist-check"), "released"
    await manager.destroy()


asyncio.run(main())
print(f"tokio_redlock from {where}: lock, conflict, unlock OK")
PY
)
keys="$(redis-cli -p "$port" dbsize)"
[ "$keys" = "0" ] || {
  echo "the redis-server still holds $keys key(s) after the unlock" >&2
  exit 1
}
step "sdist check passed in $((SECONDS - started)) s"
