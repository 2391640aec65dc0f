#!/usr/bin/env bash
# The multi-process checks on their own: three real `chorus` processes over PostgreSQL and Redis
# with one killed by SIGKILL mid-session (tests/integration/processes.rs), and the in-process
# cluster tests (three servers, a Redis restart, a PostgreSQL outage: tests/integration/cluster.rs).
# Part of the whole suite too; this runs just them. Needs PostgreSQL and Redis as for the suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-services.sh
cargo test --test integration -- processes:: cluster:: "$@"
