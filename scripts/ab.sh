#!/usr/bin/env bash
# A/B cost per request of airouter binaries (`make ab`, or scripts/ab.sh BIN...): for each binary,
# start it against scripts/benchmock, load it with wrk on non-streaming chat and on streams of
# BENCH_CHUNKS+1 events, and count with perf stat what the workers spend: task-clock µs (and
# the user/system split from /proc), context switches and system calls per request, next to req/s. On a shared machine req/s is
# noisy; CPU per request is what to compare. Binaries are measured back to back, AB_ROUNDS times
# in alternation.
#
# Environment (defaults in brackets):
#   AB_DURATION [5]   seconds of load per measurement     AB_ROUNDS [2] alternations
#   AB_CONNS [50]     wrk connections                     AB_THREADS [2] wrk threads
#   BENCH_CHUNKS [20] content chunks per mock stream      BENCH_WORKERS [2] airouter workers
#   AB_MODES ["chat stream"]  AB_PERF_RECORD [0] 1 = also perf record -g the workers (kept in AB_OUT)
#   AB_OUT [/tmp/airouter-ab] where logs and perf data go
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DUR=${AB_DURATION:-5}
ROUNDS=${AB_ROUNDS:-2}
CONNS=${AB_CONNS:-50}
THREADS=${AB_THREADS:-2}
CHUNKS=${BENCH_CHUNKS:-20}
WORKERS=${BENCH_WORKERS:-2}
MODES=${AB_MODES:-chat stream}
OUT=${AB_OUT:-/tmp/airouter-ab}
BENCHMOCK=${BENCHMOCK:-$ROOT/build/bench/benchmock}
[ $# -ge 1 ] || set -- "$ROOT/airouter"
for t in wrk perf "$BENCHMOCK"; do command -v "$t" >/dev/null || { echo "ab: $t not found" >&2; exit 1; }; done
mkdir -p "$OUT"

PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { # $1 first candidate -> prints a loopback port nobody listens on
    local p=$1
    while [ -n "$(ss -Htln "sport = :$p" 2>/dev/null)" ]; do p=$((p + 1)); done
    echo "$p"
}
wait_http() {
    local i
    for i in $(seq 1 100); do curl -s -o /dev/null -m 1 "$1" && return 0; sleep 0.1; done
    return 1
}

MOCK_PORT=$(free_port 18700)
"$BENCHMOCK" -p "$MOCK_PORT" -t 2 -k "$CHUNKS" 2>"$OUT/mock.log" &
PIDS+=($!)
wait_http "http://127.0.0.1:$MOCK_PORT/health" || { echo "ab: mock did not start" >&2; exit 1; }
AIR_PORT=$(free_port $((MOCK_PORT + 1)))

for mode in chat stream; do
    s=""
    [ $mode = stream ] && s=',"stream":true'
    cat >"$OUT/$mode.lua" <<EOF
wrk.method = "POST"
wrk.body = '{"model":"bench","messages":[{"role":"system","content":"You are a benchmark."},{"role":"user","content":"Say hello to the benchmark."}],"max_tokens":64$s}'
wrk.headers["Content-Type"] = "application/json"
done = function(summary, latency, requests)
  io.write(string.format("ABRESULT requests=%d rps=%.1f p99=%.3f errors=%d\n", summary.requests,
    summary.requests / (summary.duration / 1e6), latency:percentile(99) / 1000,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
EOF
done

cat >"$OUT/airouter.conf" <<EOF
listen = "127.0.0.1:$AIR_PORT";
workers = $WORKERS;
pidfile = "$OUT/airouter.pid";
log = { level = "warn"; error_log = "$OUT/airouter-error.log"; access_log = "off"; };
backends = ( { name = "mock"; type = "openai"; url = "http://127.0.0.1:$MOCK_PORT/v1"; } );
models = ( { name = "bench"; backend = "mock"; } );
EOF

measure() { # label bin mode
    local label=$1 bin=$2 mode=$3 master workers
    "$bin" -c "$OUT/airouter.conf" >"$OUT/airouter-out.log" 2>&1 &
    master=$!
    PIDS+=("$master")
    wait_http "http://127.0.0.1:$AIR_PORT/health" || { echo "ab: $bin did not start" >&2; return 1; }
    workers=$(pgrep -d, -P "$master")
    wrk -t "$THREADS" -c "$CONNS" -d 1 -s "$OUT/$mode.lua" "http://127.0.0.1:$AIR_PORT/v1/chat/completions" >/dev/null 2>&1 || true
    cputimes() { local w; for w in ${workers//,/ }; do awk '{print $14, $15}' "/proc/$w/stat"; done | awk '{u += $1; s += $2} END {print u, s}'; }
    local before after
    before=$(cputimes)
    perf stat -x, -e task-clock,context-switches,raw_syscalls:sys_enter -p "$workers" -o "$OUT/perf-stat.txt" &
    local pstat=$! prec=""
    if [ "${AB_PERF_RECORD:-0}" = 1 ]; then
        perf record -q -g -F 999 -p "$workers" -o "$OUT/perf-$label-$mode.data" >/dev/null 2>&1 &
        prec=$!
    fi
    wrk -t "$THREADS" -c "$CONNS" -d "$DUR" -s "$OUT/$mode.lua" "http://127.0.0.1:$AIR_PORT/v1/chat/completions" >"$OUT/wrk.out" 2>&1 || true
    kill -INT "$pstat"; [ -n "$prec" ] && kill -INT "$prec"
    wait "$pstat" 2>/dev/null || true
    [ -n "$prec" ] && { wait "$prec" 2>/dev/null || true; }
    after=$(cputimes)
    kill -TERM "$master"; wait "$master" 2>/dev/null || true
    local line req tc cs sc
    line=$(grep '^ABRESULT' "$OUT/wrk.out" || echo "ABRESULT requests=0")
    req=$(sed -n 's/.*requests=\([0-9]*\).*/\1/p' <<<"$line")
    tc=$(awk -F, '$3 == "task-clock" {print $1}' "$OUT/perf-stat.txt")          # ms
    cs=$(awk -F, '$3 == "context-switches" {print $1}' "$OUT/perf-stat.txt")
    sc=$(awk -F, '$3 == "raw_syscalls:sys_enter" {print $1}' "$OUT/perf-stat.txt")
    local hz
    hz=$(getconf CLK_TCK)
    awk -v l="$label" -v m="$mode" -v r="$req" -v tc="$tc" -v cs="$cs" -v sc="$sc" -v line="$line" \
        -v bef="$before" -v aft="$after" -v hz="$hz" 'BEGIN {
        split(bef, bb, " "); split(aft, aa, " "); usr = (aa[1] - bb[1]) / hz * 1e6; sys = (aa[2] - bb[2]) / hz * 1e6
        split(line, a, " "); rps = "-"; p99 = "-"; err = "-"
        for (i in a) { split(a[i], kv, "="); if (kv[1] == "rps") rps = kv[2]; if (kv[1] == "p99") p99 = kv[2]; if (kv[1] == "errors") err = kv[2] }
        if (r > 0) printf "%-12s %-6s %9s req/s  p99 %6s ms  err %s  cpu %6.1f us/req (usr %5.1f sys %5.1f)  ctx %5.2f/req  syscalls %5.2f/req\n", l, m, rps, p99, err, tc * 1000 / r, usr / r, sys / r, cs / r, sc / r
        else printf "%-12s %-6s failed\n", l, m }'
}

for round in $(seq 1 "$ROUNDS"); do
    for bin in "$@"; do
        label=$(basename "$bin")
        [ "$#" -gt 1 ] && [ "$label" = "$(basename "$1")" ] && [ "$bin" != "$1" ] && label="$bin"
        for mode in $MODES; do measure "$label" "$bin" "$mode"; done
    done
done
