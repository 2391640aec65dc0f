# Sourced by the benchmark scripts: start and stop a throwaway Chorus server for one
# configuration. The caller sets `chorus` (the binary), `port` and `work` (a scratch directory
# for its SQLite file) and traps EXIT to kill "${server:-0}".

# bench_start ENV=VALUE...: a fresh server with rate limits off, ready when this returns.
bench_start() {
    if curl -s "http://127.0.0.1:$port/health" >/dev/null; then
        echo "port $port is already in use; stop that server first" >&2
        exit 1
    fi
    rm -f "$work"/chorus.db*
    env "$@" CHORUS_RATE_LIMIT=false CHORUS_LOG=warn CHORUS_BIND="127.0.0.1:$port" \
        DATABASE_URL="sqlite://$work/chorus.db" "$chorus" serve &
    server=$!
    for _ in $(seq 240); do
        kill -0 "$server" 2>/dev/null || { echo "the server did not start" >&2; exit 1; }
        curl -sf "http://127.0.0.1:$port/ready" >/dev/null && return
        sleep 0.5
    done
    echo "the server was not ready within 120 s" >&2
    exit 1
}

# bench_inference_metrics: the server's batch-size and phase-time counters.
bench_inference_metrics() {
    curl -s "http://127.0.0.1:$port/metrics" \
        | grep -E '^chorus_inference_(batch_size_(sum|count)|phase_seconds_total)'
}

bench_stop() {
    kill "$server"
    wait "$server" 2>/dev/null || true
}
