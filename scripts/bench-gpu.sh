#!/usr/bin/env bash
# CPU vs CUDA execution provider on a GPU machine, from binaries built elsewhere (such a machine
# may have no Rust toolchain and no network). Build them where cargo works:
#
#   cargo build --release --features cuda --bin chorus --bin chorus-load
#   cargo bench --features cuda --bench inference --no-run   # prints the bench binary's path
#
# then, on the GPU machine, from the repository root:
#
#   scripts/bench-gpu.sh BIN_DIR ORT_GPU_DIR [concurrency] [seconds]
#
# BIN_DIR holds `chorus`, `chorus-load` and the bench binary as `inference-bench`; ORT_GPU_DIR
# holds ONNX Runtime's GPU build (libonnxruntime.so.*, libonnxruntime_providers_cuda.so and
# libonnxruntime_providers_shared.so, from the `onnxruntime-gpu` wheel). CUDA 13 and cuDNN 9
# must be loadable (e.g. the nvidia-* wheels that PyTorch installs; found automatically below).
#
# Runs: the in-process inference bench on each provider, then the server on each provider,
# batched and unbatched, under `chorus-load rest-recommend`; with WS_GROUPS (e.g. "1000 2000"),
# then live groups (`chorus-load ws-groups`, 5 members each, one operation per group per second)
# on each provider instead. PROVIDERS (default "cuda cpu") picks the providers. Reports go to
# stdout and, with OUT_DIR set, to files there.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="$(realpath "${1:?BIN_DIR}")"
ort="$(realpath "${2:?ORT_GPU_DIR}")"
concurrency="${3:-64}"
seconds="${4:-20}"
out="${OUT_DIR:-$(mktemp -d)}"
mkdir -p "$out"

# CUDA and cuDNN from Python's nvidia-* packages, if there are any.
for d in $(python3 - <<'EOF' 2>/dev/null
import glob, os, site
roots = site.getsitepackages() + [site.getusersitepackages()]
print(" ".join(sorted({os.path.dirname(p) for r in roots for p in glob.glob(f"{r}/nvidia/**/lib*.so*", recursive=True)})))
EOF
); do
    LD_LIBRARY_PATH="$d:${LD_LIBRARY_PATH:-}"
done
export LD_LIBRARY_PATH="$ort:${LD_LIBRARY_PATH:-}"
export ORT_DYLIB_PATH
ORT_DYLIB_PATH="$(ls "$ort"/libonnxruntime.so.* | head -1)"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
echo "cpu: $(nproc) cores; ONNX Runtime: $ORT_DYLIB_PATH"

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
echo "open files: $(ulimit -n)"

providers="${PROVIDERS:-cuda cpu}"
if [[ -z "${WS_GROUPS:-}" ]]; then
    for provider in $providers; do
        echo "== inference bench, $provider"
        CHORUS_EXECUTION_PROVIDER=$provider CHORUS_BENCH_BATCHES="${BENCH_BATCHES:-1,8,32,64,256}" \
            "$bin/inference-bench" | tee "$out/bench-$provider.md"
    done
fi

port=18080
work="$(mktemp -d)"
chorus="$bin/chorus"
trap 'kill "${server:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT INT TERM
# shellcheck source=lib/bench-server.sh
. scripts/lib/bench-server.sh
serve() {
    local name="$1"; shift
    bench_start "$@"
    echo "== server $name ($*)"
    curl -s "http://127.0.0.1:$port/ready"; echo   # names the execution provider in use
    "$bin/chorus-load" --url "http://127.0.0.1:$port" --concurrency "$concurrency" \
        --duration "$seconds" --warmup 3 --out "$work/$name" rest-recommend >/dev/null
    tee "$out/server-$name.md" <"$work/$name/rest-recommend.md"
    bench_inference_metrics | tee -a "$out/server-$name.md"
    bench_stop
}
groups() {
    local name="$1" count="$2"; shift 2
    bench_start "$@"
    echo "== groups $name, $count x 5 ($*)"
    "$bin/chorus-load" --url "http://127.0.0.1:$port" --duration "$seconds" --warmup 5 \
        --out "$work/$name" ws-groups --groups "$count" --members 5 --sources 8 \
        --server-pid "$server" >/dev/null
    tee "$out/groups-$name.md" <"$work/$name/ws-groups.md"
    bench_stop
}
if [[ -n "${WS_GROUPS:-}" ]]; then
    for count in $WS_GROUPS; do
        for provider in $providers; do
            groups "$provider-$count" "$count" CHORUS_EXECUTION_PROVIDER=$provider ${SERVER_ENV:-}
        done
    done
    exit 0
fi
for provider in $providers; do
    serve "$provider-batched" CHORUS_EXECUTION_PROVIDER=$provider CHORUS_INFERENCE_MAX_BATCH=64 ${SERVER_ENV:-}
    serve "$provider-unbatched" CHORUS_EXECUTION_PROVIDER=$provider CHORUS_INFERENCE_MAX_BATCH=1 ${SERVER_ENV:-}
done
