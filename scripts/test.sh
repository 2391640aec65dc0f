#!/usr/bin/env bash
# The README's test command: installs what is missing, makes sure PostgreSQL and Redis answer,
# checks formatting and lints, then runs the whole test suite (unit, integration on SQLite and
# PostgreSQL, Redis-backed code against the real Redis) and the browser tests (Chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/ensure-services.sh
echo "[test] cargo fmt --check" >&2
cargo fmt --all -- --check
echo "[test] cargo clippy --all-targets -- -D warnings" >&2
cargo clippy --all-targets --quiet -- -D warnings
echo "[test] cargo test" >&2
# Library, binaries and the integration suite; benchmarks are compiled by clippy above and run
# with `cargo bench` (see docs/BENCHMARKS.md), never as tests.
cargo test
echo "[test] browser tests" >&2
scripts/browser-tests.sh
