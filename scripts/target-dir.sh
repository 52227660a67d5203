#!/usr/bin/env bash
# Prints the workspace's cargo target directory, wherever cargo puts its output:
# CARGO_TARGET_DIR, a cargo config's build.target-dir, or ./target. The scripts that run what
# cargo built (the demo, the checks, the Python step) ask here.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo metadata --format-version 1 --no-deps --locked |
  sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p'
