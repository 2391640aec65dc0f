#!/usr/bin/env bash
# The live-group benchmark for two revisions in one session, alternating, so that the noise of
# this shared machine falls on both alike (docs/BENCHMARKS.md, "The live-group benchmark before
# and after"). Builds REV's release binaries in a git worktree (sharing this checkout's target
# directory, so only the chorus crate rebuilds), then runs `chorus-load ws-groups` against each
# revision's server ROUNDS times.
#   Usage: scripts/bench-groups-compare.sh REV [GROUPS] [ROUNDS]    (defaults: 500 groups, 2)
set -euo pipefail
cd "$(dirname "$0")/.."
rev="${1:?usage: scripts/bench-groups-compare.sh REV [GROUPS] [ROUNDS]}"
groups="${2:-500}"
rounds="${3:-2}"
root="$PWD"
scratch="$(mktemp -d)"
port=18095
server=0
cleanup() {
  # `kill 0` would signal this whole process group: only a server that is running.
  if [[ "$server" != 0 ]]; then kill "$server" 2>/dev/null || true; fi
  git -C "$root" worktree remove --force "$scratch/before" 2>/dev/null || true
  rm -rf "$scratch"
}
trap cleanup EXIT

scripts/setup.sh
export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$(ls -d "$root"/.local/onnxruntime-*/libonnxruntime.so | head -1)}"
echo "[compare] building $rev (before) and the working tree (now)" >&2
git worktree add -q --detach "$scratch/before" "$rev"
mkdir -p "$scratch/bin/before" "$scratch/bin/now"
(cd "$scratch/before" && CARGO_TARGET_DIR="$root/target" cargo build --release --quiet --bins)
cp target/release/chorus target/release/chorus-load "$scratch/bin/before/"
# The worktree's files are newer than this checkout's, so cargo would take the build it just
# made for the working tree's too: touch the crate roots so that it rebuilds them.
touch src/lib.rs src/main.rs loadtests/main.rs
cargo build --release --quiet --bins
cp target/release/chorus target/release/chorus-load "$scratch/bin/now/"

for round in $(seq "$rounds"); do
  for variant in before now; do
    dir=$([[ $variant == before ]] && echo "$scratch/before" || echo "$root")
    db="$scratch/$variant-$round.db"
    (cd "$dir" && CHORUS_RATE_LIMIT=false CHORUS_LOG=warn CHORUS_BIND="127.0.0.1:$port" \
      DATABASE_URL="sqlite://$db" exec "$scratch/bin/$variant/chorus" serve) &
    server=$!
    for _ in $(seq 240); do
      curl -sf "http://127.0.0.1:$port/ready" >/dev/null && break
      sleep 0.5
    done
    "$scratch/bin/$variant/chorus-load" --url "http://127.0.0.1:$port" --duration 20 --warmup 5 \
      ws-groups --groups "$groups" --members 5 --sources 8 --out "$scratch/results" \
      > "$scratch/$variant-$round.txt" 2>&1 || true
    # The server's own counters: refused rankings, rankings and their time, kept pools; and
    # the CPU time it used over the whole run (start, connections, warm-up and load).
    curl -sf "http://127.0.0.1:$port/metrics" | grep -E \
      '^chorus_(inference_rejected_total|group_pools_total|group_recommendation_duration_seconds_(count|sum))' \
      > "$scratch/$variant-$round.metrics" || true
    awk -v hz="$(getconf CLK_TCK)" '{ printf "server CPU %.1f s (user %.1f, system %.1f)\n", ($14 + $15) / hz, $14 / hz, $15 / hz }' \
      "/proc/$server/stat" >> "$scratch/$variant-$round.metrics" || true
    kill "$server"
    wait "$server" 2>/dev/null || true
    server=0
    printf '%-6s round %s %s\n' "$variant" "$round" "$(grep "^| $groups " "$scratch/$variant-$round.txt" || echo '(no result; see the load tool output)')"
    sed 's/^/         /' "$scratch/$variant-$round.metrics"
  done
done
