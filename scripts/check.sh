#!/usr/bin/env bash
# The README's second command, and what CI runs: formatting, lints, every test against real
# redis-server processes (unit, property, integration, doc tests), the docs, and the Python
# package's tests; with REDLOCK_CHECK_SDIST=1 also the Python package built and installed
# from its sdist (scripts/python-sdist.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-redis.sh
export RUSTDOCFLAGS="-D warnings"

step() { printf '\n==> %s\n' "$*"; }
# The redis-server processes (masters, Sentinels) whose parent is gone: reparented to init or
# to a session's systemd, which adopts orphans. Sorted pids.
orphan_servers() {
  ps -eo pid=,ppid=,comm=,args= | awk '
    { comm[$1] = $3; ppid[$1] = $2; exe[$1] = $4 }
    END {
      for (p in exe)
        if (exe[p] ~ /redis-(server|sentinel)$/ && (ppid[p] == 1 || comm[ppid[p]] == "systemd"))
          print p
    }' | sort
}
servers_before="$(orphan_servers)"

step "cargo fmt --check"
cargo fmt --all -- --check
step "cargo clippy (all targets, all features, -D warnings)"
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings
step "tests (unit, property, integration against real redis-server, examples)"
# Both runners build the examples with the tests; tests/examples.rs runs them.
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --all-features --locked --profile ci
else
  cargo test --workspace --all-features --locked --lib --bins --tests --examples
fi
step "doc tests"
cargo test --workspace --all-features --locked --doc
step "cargo doc (no warnings): every feature, then the library without features"
cargo doc --workspace --all-features --no-deps --locked
# What an application that depends on the crate with default features gets.
cargo doc -p tokio-redlock --no-deps --locked
step "Python package (crates/redlock-py): build into a venv, pytest against real redis-server"
# The dev profile shares most of the debug build above; the CLI built by the tests serves the
# interop tests.
REDLOCK_BIN="$(scripts/target-dir.sh)/debug/redlock" TOKIO_REDLOCK_PY_PROFILE=dev scripts/python.sh
if [ "${REDLOCK_CHECK_SDIST:-0}" = "1" ]; then
  step "Python package from its sdist: maturin sdist, pip install into a fresh venv, a lock on redis-server"
  # Opt-in (REDLOCK_CHECK_SDIST=1 scripts/check.sh; .ci/run does not set it): pip's isolated build fetches
  # maturin and compiles the package again for a fresh venv, which adds minutes to every run
  # (4.5 on a loaded 2-CPU machine); the package's code itself is tested above.
  TOKIO_REDLOCK_PY_PROFILE=dev scripts/python-sdist.sh
fi
# Nothing may outlive the run: every test stops the servers it started. A server left behind
# by this run is an orphan (its test process is gone) that was not running before the run; a
# system service or another run's servers are neither, so they do not fail it.
orphans="$(comm -13 <(printf '%s\n' "$servers_before") <(orphan_servers))"
if [ -n "$orphans" ]; then
  echo "error: redis-server processes left running after the tests:" >&2
  for pid in $orphans; do ps -o pid=,args= -p "$pid" >&2 || true; done
  exit 1
fi
step "all checks passed"
