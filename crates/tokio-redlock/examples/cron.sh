#!/usr/bin/env bash
# A cron job that must run on one host at a time, under `redlock exec` (the CLI of this
# repository: `cargo build -p redlock-cli`, then put target/debug/redlock on PATH, or point
# REDLOCK at it as the README shows).
#
# Install the same crontab line on every host; whichever host gets the lock runs the job, the
# others skip this run quietly:
#
#   */15 * * * *  REDLOCK_SERVERS=redis://10.0.0.1:6379,redis://10.0.0.2:6379,redis://10.0.0.3:6379 /opt/jobs/cron.sh
#
# What the options do:
#   -n       do not wait: if another host holds the lock, this run is skipped;
#   -E 0     ... and a skipped run exits 0 (cron mails nothing, monitoring sees no failure);
#   -q       no "held by another holder" message for a skipped run;
#   --ttl    the lock's TTL; `redlock` extends it every ttl/3 while the job runs, so a job may
#            run for longer than the TTL. If the lock is lost (masters unreachable for a whole
#            TTL), the job gets SIGTERM (then SIGKILL 5 s later) and `redlock` exits 75;
#   --fencing  the job gets REDLOCK_FENCING_TOKEN, a number that grows with every run: pass it
#            to stores that can refuse a stale writer.
# Exit status: the job's own; 0 for a skipped run; 69 when too few masters are reachable;
# 64 for bad usage (e.g. REDLOCK_SERVERS unset).
set -euo pipefail

# The job itself, run by `redlock exec` below while the lock is held. Replace with yours.
if [ "${1:-}" = "--locked" ]; then
  echo "cron.sh: $(hostname) runs the job (fencing token $REDLOCK_FENCING_TOKEN)"
  sleep "${CRON_JOB_SECONDS:-2}"
  echo "cron.sh: job done"
  exit 0
fi

: "${REDLOCK_SERVERS:?set REDLOCK_SERVERS to the masters, e.g. redis://10.0.0.1:6379,redis://10.0.0.2:6379,redis://10.0.0.3:6379}"
REDLOCK="${REDLOCK:-redlock}"   # the binary; defaults to the one on PATH

exec "$REDLOCK" exec -n -E 0 -q --ttl 30s --fencing jobs:cron-example -- "$0" --locked
