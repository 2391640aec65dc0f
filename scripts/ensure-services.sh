#!/usr/bin/env bash
# Starts the local PostgreSQL and Redis the test suite uses, if they are not answering.
set -euo pipefail

log() { printf '[services] %s\n' "$*" >&2; }

wait_for() {
  local what="$1" check="$2"
  for _ in $(seq 1 30); do
    if eval "${check}" >/dev/null 2>&1; then return 0; fi
    sleep 1
  done
  log "${what} did not come up"; return 1
}

if ! pg_isready -h 127.0.0.1 -p 5432 >/dev/null 2>&1; then
  log "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
  wait_for PostgreSQL "pg_isready -h 127.0.0.1 -p 5432"
fi

if ! redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; then
  log "starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
  wait_for Redis "redis-cli -h 127.0.0.1 -p 6379 ping | grep -q PONG"
fi
