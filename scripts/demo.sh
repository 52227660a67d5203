#!/usr/bin/env bash
# The README's first command: three local Redis masters, contending clients, one master
# killed midway; prints acquisitions, latency and the maximum simultaneous holders per resource.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-redis.sh
echo "building the demo (the first run compiles for ~2 minutes)…" >&2
exec cargo run --release -p tokio-redlock --example demo
