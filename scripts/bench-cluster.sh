#!/usr/bin/env bash
# What shared limits in Redis cost per request (`make bench-cluster`): one airouter with the
# built-in echo backend and one key with rpm, tpm, max_concurrent and a budget (a priced model),
# measured with wrk: limits in shared memory, then in a redis-server on loopback, then a key with
# rpm only. Latency percentiles at concurrency 1 and req/s at BENCH_CONNS connections, and the
# Redis commands airouter sent per request during the concurrency-1 run (from INFO commandstats:
# commands a script runs inside Redis are not counted), which does not depend on the machine's
# load. Prints a Markdown table. Loopback only; everything stops on exit. A benchmark, not a
# test: it exits 0 whatever the figures.
#
# Environment: BENCH_DURATION [10s]  BENCH_CONNS [32]  BENCH_WORKERS [2]  BENCH_PORT_BASE [18700]
#              AIROUTER_BIN [<repo>/airouter]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DURATION=${BENCH_DURATION:-10s}
CONNS=${BENCH_CONNS:-32}
WORKERS=${BENCH_WORKERS:-2}
PORT_BASE=${BENCH_PORT_BASE:-18700}
AIROUTER_BIN=${AIROUTER_BIN:-$ROOT/airouter}
KEY=sk-bench-cluster-000001

for t in wrk redis-server curl; do
    command -v "$t" >/dev/null || { echo "bench-cluster: $t not found (scripts/install-deps.sh installs it)" >&2; exit 1; }
done
[ -x "$AIROUTER_BIN" ] || { echo "bench-cluster: $AIROUTER_BIN not built" >&2; exit 1; }

DIR=$(mktemp -d /tmp/airouter-bench-cluster.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$DIR"
}
trap cleanup EXIT

free_port() { # first port from $1 nobody listens on
    local p=$1
    while (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; do p=$((p + 1)); done
    echo "$p"
}

REDIS_PORT=$(free_port "$PORT_BASE")
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no >"$DIR/redis.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.05; done

cat >"$DIR/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $KEY"
wrk.body = '{"model":"echo","max_tokens":16,"messages":[{"role":"user","content":"hello world"}]}'
LUA

# Commands airouter sent to Redis so far: scripts run, and what connections and the idle check
# send; not the commands a script runs inside Redis, nor redis-cli's own.
redis_calls() {
    redis-cli -p "$REDIS_PORT" INFO commandstats | tr -d '\r' |
        awk -F'[:=,]' '$1 ~ /^cmdstat_(evalsha|eval|ping|script\|load|select|auth)$/ {s += $3} END {print s + 0}'
}

ALL_LIMITS='rpm = 100000000; tpm = 1000000000000; max_concurrent = 100000; budget = { usd = 1000000.0; period = "month"; };'

# run NAME CLUSTER_LINE [KEY_LIMITS]: starts airouter, measures, stops it; prints a table row
run() {
    local name=$1 cluster=$2 limits=${3:-$ALL_LIMITS} port
    port=$(free_port $((REDIS_PORT + 1)))
    cat >"$DIR/$name.conf" <<CONF
listen = "127.0.0.1:$port";
workers = $WORKERS;
log = { level = "warn"; };
state_file = "$DIR/$name.state";
backends = ( { name = "echo"; type = "echo"; } );
models = ( { name = "echo"; backend = "echo"; default = true; price = { input = 0.15; output = 0.60; }; } );
api_keys = ( { key = "$KEY"; name = "bench"; $limits } );
$cluster
CONF
    "$AIROUTER_BIN" -c "$DIR/$name.conf" -p "$DIR/$name.pid" 2>"$DIR/$name.log" &
    local pid=$!
    PIDS+=("$pid")
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.05; done
    wrk -t1 -c1 -d2s -s "$DIR/post.lua" "http://127.0.0.1:$port/v1/chat/completions" >/dev/null # warm-up
    sleep 0.1 # the warm-up's settlements go out
    local calls0 calls1
    calls0=$(redis_calls)
    wrk -t1 -c1 -d"$DURATION" --latency -s "$DIR/post.lua" "http://127.0.0.1:$port/v1/chat/completions" >"$DIR/$name.c1"
    sleep 0.1
    calls1=$(redis_calls)
    wrk -t2 -c"$CONNS" -d"$DURATION" -s "$DIR/post.lua" "http://127.0.0.1:$port/v1/chat/completions" >"$DIR/$name.cN"
    local p50 p99 rps1 rpsn non2xx n1 per
    p50=$(awk '/^ +50%/ {print $2}' "$DIR/$name.c1")
    p99=$(awk '/^ +99%/ {print $2}' "$DIR/$name.c1")
    rps1=$(awk '/^Requests\/sec/ {print $2}' "$DIR/$name.c1")
    rpsn=$(awk '/^Requests\/sec/ {print $2}' "$DIR/$name.cN")
    n1=$(awk '/requests in/ {print $1}' "$DIR/$name.c1")
    per=$(awk -v c=$((calls1 - calls0)) -v n="$n1" 'BEGIN {printf "%.3f", n ? c / n : 0}')
    non2xx=$(cat "$DIR/$name.c1" "$DIR/$name.cN" | awk '/Non-2xx/ {s += $NF} END {print s + 0}')
    printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$name" "$p50" "$p99" "$rps1" "$rpsn" "$per" "$non2xx"
    kill "$pid"
    wait "$pid" 2>/dev/null || true
}

echo "| limits in | p50 (c=1) | p99 (c=1) | req/s (c=1) | req/s (c=$CONNS) | Redis calls per request | non-2xx |"
echo "|---|---|---|---|---|---|---|"
run shm ""
run redis "cluster = { redis = \"redis://127.0.0.1:$REDIS_PORT/0\"; timeout_ms = 1000; };"
run redis-rpm-only "cluster = { redis = \"redis://127.0.0.1:$REDIS_PORT/0\"; timeout_ms = 1000; };" "rpm = 100000000;"
echo
echo "($(nproc) cores, $(cut -d' ' -f1-3 /proc/loadavg) load, $WORKERS workers, wrk $DURATION per run, echo backend; one key"
echo " with rpm, tpm, max_concurrent and a budget, or rpm only in the last row)"
