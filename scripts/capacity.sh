#!/usr/bin/env bash
# airouter capacity measurement (`make capacity`): how many concurrent streams the thread-per-
# connection workers hold, and what each costs. A mock backend (scripts/benchmock.c) sends one
# event per stream every CAP_EVENT_MS; scripts/streamload.c opens CAP_STREAMS streaming chat completions
# through airouter and reads each to its end. Every worker's threads, RSS and open files are
# sampled each second; the sample with the most threads (streams open at once) is reported. Prints a Markdown table ready to paste into an issue note.
# Everything runs on 127.0.0.1 and stops by itself. This is a measurement, not a test: it exits 0
# unless something could not start. Raising the open-file limits above the hard limit needs root
# (the script raises its own hard limit when it can; airouter's master then raises the workers'
# soft limit to that hard limit, its default for rlimit_nofile).
#
# Environment (defaults in brackets):
#   CAP_STREAMS [20000]   concurrent streams
#   CAP_WORKERS [2, or more if the open-file limit needs it]   airouter workers
#   CAP_EVENTS [30]       events per stream (with CAP_EVENT_MS: how long each stream stays open)
#   CAP_EVENT_MS [1000]   time between a stream's events (fewer events a second leave more CPU
#                         for taking new streams when many are open)
#   CAP_RATE [1000]       new streams per second    CAP_PORT_BASE [18700] first loopback port tried
#   CAP_KEEP [0]          keep the temp dir         AIROUTER_BIN [<repo>/airouter]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STREAMS=${CAP_STREAMS:-20000}
EVENTS=${CAP_EVENTS:-30}
EVENT_MS=${CAP_EVENT_MS:-1000}
RATE=${CAP_RATE:-1000}
PORT=${CAP_PORT_BASE:-18700}
AIROUTER_BIN=${AIROUTER_BIN:-$ROOT/airouter}
BENCHMOCK=${BENCHMOCK:-$ROOT/build/bench/benchmock}
STREAMLOAD=${STREAMLOAD:-$ROOT/build/bench/streamload}

say() { printf '%s\n' "$*" >&2; }
die() { say "capacity: $*"; exit 1; }
for b in "$AIROUTER_BIN" "$BENCHMOCK" "$STREAMLOAD"; do [ -x "$b" ] || die "$b not built (make capacity builds it)"; done

# Each worker holds a client and a backend socket per stream, the mock a socket and a timer:
# raise the hard open-file limit if allowed, else spread the streams over more processes.
need=$((2 * STREAMS + 4096))
if [ "$(ulimit -Hn)" != unlimited ] && [ "$(ulimit -Hn)" -lt "$need" ]; then
    ulimit -Hn "$need" 2>/dev/null || say "capacity: cannot raise the hard open-file limit to $need; using more processes"
fi
ulimit -n "$(ulimit -Hn)"
per_process=$(( $(ulimit -n) - 512 ))
[ "$per_process" -gt 0 ] || die "open-file limit $(ulimit -n) too low"
# at most 2/3 of what fits in one process: the kernel does not spread connections evenly
MOCKS=$(( (3 * STREAMS + per_process - 1) / per_process ))
WORKERS=${CAP_WORKERS:-$(( (3 * STREAMS + per_process - 1) / per_process ))}
[ "$WORKERS" -ge 2 ] || WORKERS=2

TMP=$(mktemp -d /tmp/airouter-capacity.XXXXXX)
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for _ in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
        local alive=0
        for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ "$alive" = 0 ] && break
        sleep 0.5
    done
    for p in "${PIDS[@]}"; do
        pkill -KILL -P "$p" 2>/dev/null || true
        kill -KILL "$p" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    if [ "${CAP_KEEP:-0}" = 1 ]; then say "capacity: kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { PORT=$((PORT + 1)); while [ -n "$(ss -Htln "sport = :$PORT" 2>/dev/null)" ]; do PORT=$((PORT + 1)); done; }
free_port
wait_http() { local end=$((SECONDS + $2)); while [ $SECONDS -lt $end ]; do curl -s -o /dev/null -m 1 "$1" && return 0; sleep 0.2; done; return 1; }

BACKENDS=""
TARGETS=""
for i in $(seq 1 "$MOCKS"); do
    [ "$i" = 1 ] || free_port
    "$BENCHMOCK" -p "$PORT" -t 2 -k "$EVENTS" -d "$EVENT_MS" 2>"$TMP/mock$i.log" &
    PIDS+=($!)
    wait_http "http://127.0.0.1:$PORT/health" 5 || die "mock did not start: $(cat "$TMP/mock$i.log")"
    BACKENDS+="${BACKENDS:+, }{ name = \"mock$i\"; type = \"openai\"; url = \"http://127.0.0.1:$PORT/v1\"; }"
    TARGETS+="${TARGETS:+, }{ backend = \"mock$i\"; }"
done
free_port; AIR_PORT=$PORT

cat >"$TMP/airouter.conf" <<EOF
listen = "127.0.0.1:$AIR_PORT";
workers = $WORKERS;
pidfile = "$TMP/airouter.pid";
log = { level = "warn"; error_log = "$TMP/airouter-error.log"; access_log = "off"; };
limits = { max_connections = $((STREAMS / WORKERS * 2 + 1024)); idle_timeout = 120; };
backends = ( $BACKENDS );
models = ( { name = "bench"; strategy = "least_inflight"; targets = ( $TARGETS ); } );
EOF
"$AIROUTER_BIN" -c "$TMP/airouter.conf" >"$TMP/airouter-out.log" 2>&1 &
MASTER=$!
PIDS+=("$MASTER")
wait_http "http://127.0.0.1:$AIR_PORT/health" 10 || die "airouter did not start: $(cat "$TMP/airouter-out.log" "$TMP/airouter-error.log" 2>/dev/null)"

workers() { pgrep -P "$MASTER" | sort -n; }
status_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
fds() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
sample() { # file: one line "pid threads rss_kb fds" per worker
    local w
    : >"$1"
    for w in $(workers); do echo "$w $(status_kb "$w" Threads) $(status_kb "$w" VmRSS) $(fds "$w")" >>"$1"; done
}
# idle figures: after one request per worker has warmed the path
for _ in $(seq 1 $((WORKERS * 2))); do
    curl -s -o /dev/null -m 5 -H 'Content-Type: application/json' \
        -d '{"model":"bench","messages":[{"role":"user","content":"hi"}]}' "http://127.0.0.1:$AIR_PORT/v1/chat/completions" || true
done
sleep 1
sample "$TMP/idle"
limit=$(awk '/Max open files/ { print $4 }' "/proc/$(workers | head -n 1)/limits")

say "capacity: $STREAMS streams at $RATE/s, $EVENTS events each $EVENT_MS ms apart, $WORKERS workers (open-file limit per worker $limit), $MOCKS mock backend(s)"
"$STREAMLOAD" -p "$AIR_PORT" -n "$STREAMS" -r "$RATE" -T $((3 * STREAMS / RATE + 2 * EVENTS * EVENT_MS / 1000 + 120)) >"$TMP/load.out" 2>&1 &
LOAD=$!
PIDS+=("$LOAD")
: >"$TMP/peak"
while kill -0 "$LOAD" 2>/dev/null; do
    sample "$TMP/now"
    # keep the sample with the most threads (the most streams open at once)
    if [ ! -s "$TMP/peak" ] || [ "$(awk '{ t += $2 } END { print t }' "$TMP/now")" -gt "$(awk '{ t += $2 } END { print t }' "$TMP/peak")" ]; then
        cp "$TMP/now" "$TMP/peak"
    fi
    sleep 1
done
wait "$LOAD" || true
result=$(grep '^result' "$TMP/load.out" || echo "result failed=1 $(tr '\n' ' ' <"$TMP/load.out")")
opened=$(grep '^all_open' "$TMP/load.out" || echo "all_open never")
failures=$(grep '^failures' "$TMP/load.out" || echo "failures unknown")
[ -s "$TMP/peak" ] || sample "$TMP/peak"

field() { sed -n "s/.*[ ]$1=\([^ ]*\).*/\1/p" <<<" $2"; }
{
    echo
    echo "### airouter capacity ($(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs shared by load, mock, proxy)"
    echo
    echo "$STREAMS concurrent streams, $EVENTS events each, one every $EVENT_MS ms, opened at $RATE/s; $WORKERS workers, open-file limit $limit per worker; $MOCKS mock backend process(es)."
    echo "Streams completed: $(field completed "$result") of $STREAMS (failed: $(field failed "$result")); open when the last one had started: $(field open "$opened") (after $(field seconds "$opened") s)."
    echo "Failures by kind: ${failures#failures } (no_answer: no HTTP answer; status: not 200; cut: a 200 stream that ended without [DONE]; running: still streaming when the load tool's time was up)."
    echo
    echo "| worker | idle RSS MB | idle fds | peak threads | peak RSS MB | peak fds | RSS per stream KB | fds per stream |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|"
    join "$TMP/idle" "$TMP/peak" | while read -r pid ithr irss ifds pthr prss pfds; do
        awk -v p="$pid" -v ithr="$ithr" -v irss="$irss" -v ifds="$ifds" -v t="$pthr" -v prss="$prss" -v pfds="$pfds" 'BEGIN {
            per = t - ithr; if (per < 1) per = 1
            printf "| %s | %.1f | %d | %d | %.1f | %d | %.1f | %.2f |\n", p, irss / 1024, ifds, t, prss / 1024, pfds,
                (prss - irss) / per, (pfds - ifds) / per }'
    done
    echo
    echo "(per stream: (peak - idle) / (peak - idle threads) of that worker: one thread per open stream.)"
}
