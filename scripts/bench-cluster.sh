#!/usr/bin/env bash
# The live-group benchmark with members spread over two processes against all of them on one,
# alternating in one session (docs/BENCHMARKS.md, "Rooms across processes"). Both setups use
# PostgreSQL and Redis (several processes need a shared store and fan-out); each run gets a
# fresh PostgreSQL schema and Redis key prefix. Release binaries of the working tree.
#   Usage: scripts/bench-cluster.sh [GROUPS] [ROUNDS]    (defaults: 500 groups, 2 rounds)
set -euo pipefail
cd "$(dirname "$0")/.."
groups="${1:-500}"
rounds="${2:-2}"
scratch="$(mktemp -d)"
servers=()
cleanup() {
  for pid in "${servers[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$scratch"
}
trap cleanup EXIT

scripts/setup.sh
scripts/ensure-services.sh
export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$(ls -d "$PWD"/.local/onnxruntime-*/libonnxruntime.so | head -1)}"
cargo build --release --quiet --bins

start() { # PORT DATABASE_URL PREFIX
  CHORUS_RATE_LIMIT=false CHORUS_LOG=warn CHORUS_BIND="127.0.0.1:$1" DATABASE_URL="$2" \
    REDIS_URL=redis://127.0.0.1:6379 CHORUS_REDIS_KEY_PREFIX="$3" target/release/chorus serve &
  servers+=($!)
  for _ in $(seq 240); do
    curl -sf "http://127.0.0.1:$1/ready" >/dev/null && return
    sleep 0.5
  done
  echo "[bench-cluster] the server on port $1 did not get ready" >&2
  exit 1
}

for round in $(seq "$rounds"); do
  for processes in 1 2; do
    schema="bench_$(date +%s)_${round}_${processes}"
    psql -q -h 127.0.0.1 -U postgres -d test -c "CREATE SCHEMA $schema"
    url="postgres://postgres@127.0.0.1:5432/test?options[search_path]=$schema"
    prefix="chorus-bench:$schema:"
    start 18101 "$url" "$prefix"
    also=()
    if [[ $processes == 2 ]]; then
      start 18102 "$url" "$prefix"
      also=(--also http://127.0.0.1:18102)
    fi
    target/release/chorus-load --url http://127.0.0.1:18101 --duration 20 --warmup 5 \
      ws-groups --groups "$groups" --members 5 --sources 8 "${also[@]}" --out "$scratch/results" \
      > "$scratch/$processes-$round.txt" 2>&1 || true
    for pid in "${servers[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
    servers=()
    psql -q -h 127.0.0.1 -U postgres -d test -c "DROP SCHEMA $schema CASCADE"
    printf '%s process(es) round %s %s\n' "$processes" "$round" \
      "$(grep "^| $groups " "$scratch/$processes-$round.txt" || echo "(no result: $(tail -3 "$scratch/$processes-$round.txt"))")"
  done
done
