#!/usr/bin/env bash
# Where the server's CPU goes under the live-group load (docs/BENCHMARKS.md, issue 21): starts
# the release server on a fresh SQLite database, runs `chorus-load ws-groups`, and inside the
# measured window takes `perf stat` per thread (CPU by thread kind) and, with PROFILE=1, a
# `perf record` with DWARF call graphs. Prints the load tool's report, the CPU split (the load
# tool's own CPU in the same window last: it shares the machine), the hypervisor's steal and the
# bytes the server wrote to its files in that window, rankings refused (the target is none) and,
# with PROFILE=1, where perf.data is; leaves everything in OUT.
#   Usage: scripts/profile-groups.sh [GROUPS] [OUT]     (defaults: 1000 groups, a temp dir)
#   Environment: BIN (default target/release), PROFILE=1, PERF_FREQ (samples per second for
#   PROFILE=1, default 149), PROFILE_LOAD=1 (with PROFILE=1, record the load tool instead of
#   the server), REFRESH=0 (event path alone), OP_RATE (operations per room per second,
#   default the load tool's 1), ADDS (the load tool's --adds: random, the default, or
#   own-genre), SYSCALLS=1 (also count the server's socket and wake-up system calls in the
#   same 10 s).
set -euo pipefail
cd "$(dirname "$0")/.."
groups="${1:-1000}"
out="${2:-$(mktemp -d)}"
bin="${BIN:-target/release}"
port="${PORT:-18097}"
mkdir -p "$out"
export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$(ls -d "$PWD"/.local/onnxruntime-*/libonnxruntime.so | head -1)}"
command -v perf >/dev/null || { echo "perf is missing: apt-get install linux-perf" >&2; exit 1; }

config="$out/chorus.toml"
: > "$config"
if [[ "${REFRESH:-1}" == 0 ]]; then
  printf '[realtime]\nrecommend_interval_ms = 600000\n' > "$config"
fi
rm -f "$out/bench.db"*
CHORUS_CONFIG="$config" CHORUS_RATE_LIMIT=false CHORUS_LOG=warn CHORUS_BIND="127.0.0.1:$port" \
  DATABASE_URL="sqlite://$out/bench.db" "$bin/chorus" serve &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 240); do
  curl -sf "http://127.0.0.1:$port/ready" >/dev/null && break
  sleep 0.5
done

extra=()
[[ -n "${OP_RATE:-}" ]] && extra+=(--op-rate "$OP_RATE")
[[ -n "${ADDS:-}" ]] && extra+=(--adds "$ADDS")
"$bin/chorus-load" --url "http://127.0.0.1:$port" --duration 20 --warmup 5 \
  ws-groups --groups "$groups" --members 5 --sources 8 "${extra[@]}" > "$out/load.txt" 2>&1 &
load=$!
# Connecting and the warm-up take a while: wait until operations run, then 3 s more.
for _ in $(seq 600); do
  grep -q "warm" "$out/load.txt" 2>/dev/null && break
  sleep 0.5
done
sleep 8
# Bytes the server writes through write(2) in the same 10 s: its files (SQLite's WAL and
# database); socket sends are not counted there (the load tool counts the frames' bytes).
written() { awk '/^wchar:/ { print $2 }' "/proc/$server/io"; }
written_before=$(written)
# The machine's CPU time by kind (/proc/stat's first line): the share the hypervisor took
# (steal) makes runs of one build differ, so every run reports it.
cpu_times() { awk '/^cpu / { print $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9, $9 }' /proc/stat; }
read -r total_before steal_before < <(cpu_times)
perf stat -e task-clock --per-thread -p "$server" -o "$out/stat.txt" -- sleep 10 &
stat=$!
# The load tool shares the machine: its CPU in the same window says what is left for the server.
perf stat -e task-clock -p "$load" -o "$out/load-stat.txt" -- sleep 10 &
load_stat=$!
if [[ "${SYSCALLS:-0}" == 1 ]]; then
  perf stat -e 'syscalls:sys_enter_sendto,syscalls:sys_enter_recvfrom,syscalls:sys_enter_write,syscalls:sys_enter_writev,syscalls:sys_enter_read,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_futex' \
    -p "$server" -o "$out/syscalls.txt" -- sleep 10 &
fi
if [[ "${PROFILE:-0}" == 1 ]]; then
  perf record -F "${PERF_FREQ:-149}" --call-graph dwarf,16384 -o "$out/perf.data" \
    -p "$([[ "${PROFILE_LOAD:-0}" == 1 ]] && echo "$load" || echo "$server")" -- sleep 6 2> "$out/record.log" || true
fi
wait "$stat" || true
written_after=$(written)
read -r total_after steal_after < <(cpu_times)
wait "$load_stat" || true
wait "$load" || true
curl -sf "http://127.0.0.1:$port/metrics" > "$out/metrics.txt" || true
grep -E "^\| (groups|$groups) " "$out/load.txt" || tail -20 "$out/load.txt"
echo "CPU per thread kind over 10 s (seconds):"
awk '/task-clock/ { name = $1; sub(/-[0-9]+$/, "", name); sub(/-[0-9]+$/, "", name); ms = $2; gsub(",", "", ms); cpu[name] += ms / 1000 }
  END { for (n in cpu) printf "  %-24s %6.2f\n", n, cpu[n] }' "$out/stat.txt" | sort -k2 -nr
awk '/task-clock/ { ms = $1; gsub(",", "", ms); printf "  %-24s %6.2f\n", "(load tool, all threads)", ms / 1000 }' "$out/load-stat.txt"
awk -v t=$((total_after - total_before)) -v s=$((steal_after - steal_before)) \
  'BEGIN { printf "Steal (CPU time the hypervisor took) over the same 10 s: %.1f%%\n", (t > 0 ? 100 * s / t : 0) }'
if [[ -f "$out/syscalls.txt" ]]; then
  echo "Server system calls over the same 10 s:"
  awk '/syscalls:/ { n = $1; gsub(",", "", n); sub(/.*sys_enter_/, "", $2); printf "  %-24s %10d\n", $2, n }' "$out/syscalls.txt"
fi
echo "Server file writes over the same 10 s (SQLite): $(( (written_after - written_before) / 1000000 )) MB"
echo "Inference time by ranking phase over the whole run (seconds):"
grep '^chorus_inference_phase_seconds_total' "$out/metrics.txt" | sed 's/^chorus_inference_phase_seconds_total/ /' || true
echo "Group appends by duration, cumulative count at or under each bound in seconds (whole run):"
grep '^chorus_group_append_duration_seconds_bucket' "$out/metrics.txt" | sed 's/.*le="\([^"]*\)"} /\1:/' | tr '\n' ' ' || true
echo
echo "Group pools by how each ranking got its candidates (whole run):"
grep '^chorus_group_pools_total' "$out/metrics.txt" | sed 's/^chorus_group_pools_total/ /' || true
echo "Members' own candidates found by a catalog scan (whole run):"
grep '^chorus_group_own_scans_total' "$out/metrics.txt" | sed 's/^chorus_group_own_scans_total/ /' || true
# The target asks for none: a refused ranking is a room left on its old list for a while.
echo "Rankings refused because the inference queue was full (whole run):"
grep '^chorus_inference_rejected_total' "$out/metrics.txt" | sed 's/^chorus_inference_rejected_total/ /' || true
if [[ "${PROFILE:-0}" == 1 ]]; then
  echo "perf data in $out/perf.data (perf report -i $out/perf.data --no-children --sort comm,symbol)"
fi
