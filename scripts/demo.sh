#!/usr/bin/env bash
# The README's first command, in two parts:
# 1. the library: three local Redis masters, contending clients, one master killed midway;
#    prints acquisitions, latency and the maximum simultaneous holders per resource;
# 2. the CLI: several `redlock exec` processes contend to append numbered lines to one file
#    (read the last number, pause, append the next) under a lock on three local masters it
#    starts; then the file is checked for interleaving, gaps and duplicates.
# Every redis-server started here is stopped on every exit path (end, error, Ctrl-C, TERM).
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { echo "usage: scripts/demo.sh [--release]" >&2; exit 64; }
# The default is the debug build that `scripts/check.sh` (and CI, which runs both) compiles
# anyway: same profile, same features, so the tests reuse it instead of compiling the
# dependencies a second time. `--release` gives optimized latency figures.
PROFILE_FLAGS=()
PROFILE_DIR=debug
case "${1:-}" in
  "") ;;
  --release) PROFILE_FLAGS=(--release); PROFILE_DIR=release ;;
  *) usage ;;
esac
[ "$#" -le 1 ] || usage

scripts/install-redis.sh

# One build for both parts: the library's examples (the demo among them) and the `redlock`
# binary. Target filters (`--examples`, `--bins`) apply to every selected package, so the
# whole workspace is selected; with all its features, that is the set the tests build with.
echo "building the demo and the redlock CLI (the first run compiles for a few minutes)…" >&2
cargo build --workspace --all-features --locked --examples --bins "${PROFILE_FLAGS[@]}"
TARGET_DIR="$(scripts/target-dir.sh)"
BIN_DIR="${TARGET_DIR:-target}/$PROFILE_DIR"
for built in "$BIN_DIR/examples/demo" "$BIN_DIR/redlock"; do
  [ -x "$built" ] || { echo "demo: the build left no $built" >&2; exit 1; }
done

if [ "$PROFILE_DIR" = debug ]; then
  echo "(a debug build: latency figures are higher than optimized code's; scripts/demo.sh --release for those)" >&2
fi
library_status=0
"$BIN_DIR/examples/demo" || library_status=$?

# --- Part 2: the CLI -------------------------------------------------------------------------
WORKERS=6          # concurrent `redlock exec` loops
SECTIONS=5         # critical sections per worker

REDLOCK="$BIN_DIR/redlock"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/redlock-cli-demo.XXXXXX")"
SERVER_PIDS=()
WORKER_PIDS=()
cleanup() {
  local pid
  # A worker is a subshell running `redlock exec`: stop the redlock (it forwards the signal
  # to its command and releases), then the subshell.
  for pid in "${WORKER_PIDS[@]}"; do
    pkill -TERM -P "$pid" 2>/dev/null || true
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${WORKER_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  for pid in "${SERVER_PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  for pid in "${SERVER_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'echo "demo: interrupted: stopped the redis-servers" >&2; exit 130' INT
trap 'echo "demo: terminated: stopped the redis-servers" >&2; exit 143' TERM

# Whether something accepts connections on 127.0.0.1:$1.
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Starts a master on a free port in the background; appends its URL to URLS.
URLS=()
start_master() {
  local attempt port pid dir i
  for attempt in 1 2 3 4 5; do
    port=$(( 20000 + RANDOM % 40000 ))
    listening "$port" && continue
    dir="$WORK/redis-$port"
    mkdir -p "$dir"
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
      --daemonize no --dir "$dir" --logfile "$dir/redis.log" </dev/null >/dev/null 2>&1 &
    pid=$!
    SERVER_PIDS+=("$pid")
    for i in $(seq 1 250); do
      if listening "$port"; then URLS+=("redis://127.0.0.1:$port"); return 0; fi
      kill -0 "$pid" 2>/dev/null || break   # exited: most likely the port was taken
      sleep 0.02
    done
  done
  echo "demo: could not start a redis-server (see $WORK/redis-*/redis.log)" >&2
  return 1
}
for _ in 1 2 3; do start_master; done
SERVERS="$(IFS=,; echo "${URLS[*]}")"
FILE="$WORK/counter.txt"
: > "$FILE"

# The critical section: read the last number, pause, append the next one as a begin line and
# an end line. Without mutual exclusion two writers read the same number, or one's lines land
# between the other's.
SECTION='last=$(tail -n 1 "$F" | cut -d" " -f1); n=$(( ${last:-0} + 1 )); '\
'echo "$n begin $W" >> "$F"; sleep 0.03; echo "$n end $W" >> "$F"'

echo >&2
echo "CLI demo: $WORKERS concurrent workers × $SECTIONS critical sections, each one" \
     "\`redlock exec -w 60s demo:counter -c '<read last number, sleep, append next>'\`," \
     "on 3 masters: ${URLS[*]}" >&2
started=$(date +%s%N)
for w in $(seq 1 "$WORKERS"); do
  (
    for _ in $(seq 1 "$SECTIONS"); do
      F="$FILE" W="worker$w" REDLOCK_SERVERS="$SERVERS" \
        "$REDLOCK" exec -q -w 60s demo:counter -c "$SECTION" || exit $?
    done
  ) &
  WORKER_PIDS+=("$!")
done
failures=0
for pid in "${WORKER_PIDS[@]}"; do
  wait "$pid" || { echo "demo: a worker failed with status $?" >&2; failures=$((failures + 1)); }
done
WORKER_PIDS=()
elapsed_ms=$(( ($(date +%s%N) - started) / 1000000 ))

echo "first lines of the file:"
head -n 6 "$FILE" | sed 's/^/  /'
echo "  …"
expected=$(( WORKERS * SECTIONS ))
# Prints the first problem in file $1, which must hold $2 sections: line 2k-1 must be
# "k begin W" and line 2k "k end W" with the same W, for k = 1..$2. Prints nothing if none.
first_problem() {
  awk -v expected="$2" '
    NR % 2 == 1 { k = (NR + 1) / 2; if ($1 != k || $2 != "begin") { print "line " NR ": expected \"" k " begin …\", got \"" $0 "\""; bad = 1; exit } who = $3 }
    NR % 2 == 0 { k = NR / 2; if ($1 != k || $2 != "end" || $3 != who) { print "line " NR ": expected \"" k " end " who "\", got \"" $0 "\""; bad = 1; exit } }
    END { if (!bad && NR != 2 * expected) print NR " lines, expected " 2 * expected }
  ' "$1"
}
verdict=$(first_problem "$FILE" "$expected")

# For comparison, the same workers without the lock.
UNLOCKED="$WORK/unlocked.txt"
: > "$UNLOCKED"
for w in $(seq 1 "$WORKERS"); do
  (
    for _ in $(seq 1 "$SECTIONS"); do F="$UNLOCKED" W="worker$w" sh -c "$SECTION"; done
  ) &
  WORKER_PIDS+=("$!")
done
for pid in "${WORKER_PIDS[@]}"; do wait "$pid" || true; done
WORKER_PIDS=()
duplicates=$(cut -d' ' -f1,2 "$UNLOCKED" | sort | uniq -d | wc -l)
echo "for comparison, the same workers without redlock: $duplicates duplicated numbers;" \
     "first problem: $(first_problem "$UNLOCKED" "$expected" | head -n 1)"

cli_status=0
if [ "$failures" -eq 0 ] && [ -z "$verdict" ]; then
  echo "CLI verdict: OK: with redlock, $expected critical sections in ${elapsed_ms} ms," \
       "numbered 1..$expected with no gaps, no duplicates and no interleaved lines"
else
  echo "CLI verdict: FAILED: ${verdict:-$failures worker(s) failed}"
  cli_status=1
fi

# The verdict of both parts; the exit status is non-zero unless it is OK.
if [ "$library_status" -eq 0 ] && [ "$cli_status" -eq 0 ]; then
  echo "demo verdict: OK (library and CLI)"
  exit 0
fi
echo "demo verdict: FAILED (library demo status $library_status, CLI demo status $cli_status)"
if [ "$library_status" -ne 0 ]; then exit "$library_status"; fi
exit "$cli_status"
