#!/usr/bin/env bash
# Builds the Python package `tokio-redlock` (crates/redlock-py) into a virtual environment
# and runs its tests against real redis-server processes. Needs only the Rust toolchain,
# python3 (>= 3.9) with venv, and pip access to PyPI.
#
#   scripts/python.sh            build (release) + install into the venv + pytest
#   scripts/python.sh --no-test  build + install only
#   extra arguments go to pytest (e.g. scripts/python.sh -k cancel)
#
# The interop tests run Rust's `redlock` CLI: REDLOCK_BIN names it, or the script builds it
# (`cargo build -p redlock-cli`, debug). After the workspace's own test build, set
# REDLOCK_BIN=target/debug/redlock to reuse that binary.
#
# TOKIO_REDLOCK_PY_PROFILE=dev builds the extension in cargo's dev profile instead of
# release (faster to compile, slower to run; the tests' margins allow either).
#
# The venv lives in the cargo target dir (scripts/target-dir.sh: $CARGO_TARGET_DIR, a cargo
# config's build.target-dir, or target/), which is git-ignored and reused when present; the
# build shares that target dir with the workspace's own builds. TOKIO_REDLOCK_VENV overrides
# the venv's path.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
scripts/install-redis.sh

target="$(scripts/target-dir.sh)"
export CARGO_TARGET_DIR="$target"
venv="${TOKIO_REDLOCK_VENV:-$target/py-venv}"
python="${PYTHON:-python3}"

step() { printf '\n==> %s\n' "$*"; }

if [ ! -x "$venv/bin/python" ]; then
  step "creating the virtual environment $venv"
  "$python" -m venv "$venv"
fi
# shellcheck disable=SC1091
. "$venv/bin/activate"
step "installing the build and test tools (pip)"
python -m pip install -q --disable-pip-version-check -U pip 'maturin>=1.9.4,<2' 'pytest>=8' \
  'pytest-asyncio>=1.2' pytest-timeout 'redis>=5' 'mypy>=1.11'
# aioredlock itself, for the API comparison (tests/test_api_surface.py); its aioredis
# dependency is stubbed there, so it is installed without dependencies.
python -m pip install -q --disable-pip-version-check --no-deps 'aioredlock==0.7.3' 'attrs>=19'

profile="${TOKIO_REDLOCK_PY_PROFILE:-release}"
step "building and installing the package (maturin develop, $profile profile)"
(cd crates/redlock-py && maturin develop --profile "$profile" --locked -q)
python -c 'import tokio_redlock, sys; print("tokio_redlock imported from", tokio_redlock.__file__, "on Python", sys.version.split()[0])'

if [ "${1:-}" = "--no-test" ]; then
  exit 0
fi
if [ -z "${REDLOCK_BIN:-}" ]; then
  step "building the redlock CLI for the interop tests"
  cargo build -p redlock-cli --locked -q
  export REDLOCK_BIN="$target/debug/redlock"
fi
step "pytest (real redis-server processes on loopback ports)"
python -m pytest crates/redlock-py/tests -q "$@"
