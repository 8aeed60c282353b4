#!/usr/bin/env bash
# Requests lost to reloads: wrk (keep-alive) sends chat completions to airouter's echo backend
# while the master gets a number of HUPs, each one rolling every worker. Prints wrk's summary;
# "Socket errors" and "Non-2xx" are the requests a reload dropped or failed. A benchmark, not a
# test: loopback only, bounded, everything stopped on exit.
#
# Environment (defaults in brackets):
#   RELOAD_HUPS [20]       HUPs sent, evenly over the run     RELOAD_DURATION [30] seconds of load
#   RELOAD_CONNS [64]      wrk connections                     RELOAD_THREADS [2] wrk threads
#   RELOAD_WORKERS [2]     airouter workers                    RELOAD_PORT [18690] loopback port
#   AIROUTER_BIN [<repo>/airouter]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HUPS=${RELOAD_HUPS:-20}
DURATION=${RELOAD_DURATION:-30}
CONNS=${RELOAD_CONNS:-64}
THREADS=${RELOAD_THREADS:-2}
WORKERS=${RELOAD_WORKERS:-2}
PORT=${RELOAD_PORT:-18690}
AIROUTER_BIN=${AIROUTER_BIN:-$ROOT/airouter}
command -v wrk >/dev/null || { echo "bench-reload: wrk not found (apt-get install wrk)" >&2; exit 1; }

TMP=$(mktemp -d /tmp/airouter-reload.XXXXXX)
MASTER=""
cleanup() {
    [ -n "$MASTER" ] && kill -TERM "$MASTER" 2>/dev/null && wait "$MASTER" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

cat >"$TMP/airouter.conf" <<EOF
listen = "127.0.0.1:$PORT";
workers = $WORKERS;
log = { level = "info"; };
backends = ( { name = "echo"; type = "echo"; } );
models = ( { name = "echo"; backend = "echo"; default = true; } );
EOF
cat >"$TMP/chat.lua" <<'EOF'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"model":"echo","messages":[{"role":"user","content":"hello reload"}]}'
EOF

"$AIROUTER_BIN" -c "$TMP/airouter.conf" -p "$TMP/airouter.pid" 2>"$TMP/airouter.log" &
MASTER=$!
for _ in $(seq 100); do
    curl -fsS "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && break
    sleep 0.1
done

timeout -k 5 $((DURATION + 30)) wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" -s "$TMP/chat.lua" \
    "http://127.0.0.1:$PORT/v1/chat/completions" >"$TMP/wrk.out" 2>&1 &
WRK=$!
sleep 1
GAP=$(awk -v d="$DURATION" -v n="$HUPS" 'BEGIN { printf "%.3f", (d - 2) / n }')
for _ in $(seq "$HUPS"); do
    kill -HUP "$MASTER"
    sleep "$GAP"
done
wait "$WRK" || true
echo "airouter $("$AIROUTER_BIN" -V 2>&1 | head -1): $HUPS HUPs during ${DURATION}s of wrk -t$THREADS -c$CONNS (keep-alive)"
cat "$TMP/wrk.out"
echo "reloads logged: $(grep -c 'reload: generation' "$TMP/airouter.log" || true)"
