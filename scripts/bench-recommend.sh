#!/usr/bin/env bash
# Benchmarks POST /api/v1/recommendations on the demo catalog, batched vs unbatched, in one run:
# for each configuration it starts a fresh release server (own SQLite file, rate limits off),
# runs `chorus-load rest-recommend`, stops the server, and finally prints every report.
#
#   scripts/bench-recommend.sh [concurrency] [seconds] [extra chorus-load options...]
#
# Configurations: "batched" (the defaults: max_batch 64, max_delay 1 ms) and "unbatched"
# (CHORUS_INFERENCE_MAX_BATCH=1). Reports land in loadtests/results/<configuration>/.
set -euo pipefail
cd "$(dirname "$0")/.."
concurrency="${1:-64}"
seconds="${2:-20}"
shift $(( $# > 2 ? 2 : $# ))
scripts/setup.sh >/dev/null
cargo build --release --bins --quiet
port=18080
work="$(mktemp -d)"
chorus=target/release/chorus
trap 'kill "${server:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT INT TERM
# shellcheck source=lib/bench-server.sh
. scripts/lib/bench-server.sh

run() {
    local name="$1"; shift
    bench_start "$@"
    echo "== $name ($*)" >&2
    target/release/chorus-load --url "http://127.0.0.1:$port" --concurrency "$concurrency" \
        --duration "$seconds" --warmup 3 --out "loadtests/results/$name" "${EXTRA[@]}" \
        rest-recommend >"$work/$name.out" || { cat "$work/$name.out" >&2; exit 1; }
    bench_inference_metrics > "loadtests/results/$name/inference-metrics.txt"
    bench_stop
}

EXTRA=("$@")
configurations=(batched unbatched)
# BENCH_COMMON applies to every configuration, e.g. BENCH_COMMON="CHORUS_INFERENCE_THREADS=1".
# shellcheck disable=SC2086
run batched ${BENCH_COMMON:-} CHORUS_INFERENCE_MAX_BATCH=64
# shellcheck disable=SC2086
run unbatched ${BENCH_COMMON:-} CHORUS_INFERENCE_MAX_BATCH=1
# Optional extra configuration, e.g. BENCH_EXTRA="CHORUS_INFERENCE_THREADS=2".
if [[ -n "${BENCH_EXTRA:-}" ]]; then
    # shellcheck disable=SC2086
    run extra ${BENCH_COMMON:-} $BENCH_EXTRA
    configurations+=(extra)
fi
for name in "${configurations[@]}"; do
    echo "### $name"
    cat "loadtests/results/$name/rest-recommend.md"
    awk '/batch_size_sum/{s=$2} /batch_size_count/{c=$2} END{if(c) printf "mean batch: %.1f\n", s/c}' \
        "loadtests/results/$name/inference-metrics.txt"
done
