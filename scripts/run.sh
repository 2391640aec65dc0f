#!/usr/bin/env bash
# The README's run command: installs what is missing, then serves on 127.0.0.1:8080 with the
# embedded defaults (SQLite file chorus.db, in-process cache and limits, CPU inference, demo
# catalog). Extra arguments go to `chorus` (e.g. `scripts/run.sh import generic tracks.csv`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec cargo run --release --bin chorus -- "${@:-serve}"
