#!/usr/bin/env bash
# airouter benchmark (`make bench`): a fast local mock OpenAI backend (scripts/benchmock.c) hit
# directly, through nginx, and through airouter, with wrk; non-streaming and streaming chat
# completions; plus time to first SSE chunk (scripts/ttfb.c). Prints Markdown tables ready to
# paste into an issue note. Everything runs on 127.0.0.1 and is stopped on exit.
# This is a benchmark, not a test: it exits 0 even when a target is slow or skipped.
#
# Environment (defaults in brackets):
#   BENCH_DURATION [10s]       wrk duration per run          BENCH_WARMUP [2s] wrk warm-up run ("0" = none)
#   BENCH_CONNS [64]           wrk connections               BENCH_THREADS [2] wrk threads
#   BENCH_CHUNKS [20]          content chunks per mock stream
#   BENCH_CHUNK_DELAY_MS [0]   mock delay before each stream chunk
#   BENCH_MOCK_THREADS [2]     mock threads                  BENCH_WORKERS [2] airouter and nginx workers
#   BENCH_TTFB_N [2000]        streaming requests for the time-to-first-chunk measurement
#   BENCH_TTFB_CONNS [1]       concurrent connections for it
#   BENCH_SLOW_DELAY_MS [5]    a second mock paced at this many ms per chunk: TTFC through it shows
#   BENCH_SLOW_N [200]         whether the relay forwards the first chunk at once ("0" = skip)
#   BENCH_PORT_BASE [18600]    first loopback port tried     BENCH_KEEP [0] keep the temp dir
#   BENCH_RUNS [3]             measurement rounds, each against all targets; a summary row per run
#   BENCH_C1_DURATION [5s]     wrk -c1 chat run per target: the p99 the proxy adds at concurrency 1
#   AIROUTER_BIN [<repo>/airouter]  BENCHMOCK [<repo>/build/bench/benchmock]  TTFB [<repo>/build/bench/ttfb]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DURATION=${BENCH_DURATION:-10s}
WARMUP=${BENCH_WARMUP:-2s}
CONNS=${BENCH_CONNS:-64}
THREADS=${BENCH_THREADS:-2}
CHUNKS=${BENCH_CHUNKS:-20}
DELAY=${BENCH_CHUNK_DELAY_MS:-0}
MOCK_THREADS=${BENCH_MOCK_THREADS:-2}
WORKERS=${BENCH_WORKERS:-2}
TTFB_N=${BENCH_TTFB_N:-2000}
TTFB_CONNS=${BENCH_TTFB_CONNS:-1}
SLOW_DELAY=${BENCH_SLOW_DELAY_MS:-5}
SLOW_N=${BENCH_SLOW_N:-200}
PORT_BASE=${BENCH_PORT_BASE:-18600}
RUNS=${BENCH_RUNS:-3}
C1_DURATION=${BENCH_C1_DURATION:-5s}
HZ=$(getconf CLK_TCK)
AIROUTER_BIN=${AIROUTER_BIN:-$ROOT/airouter}
BENCHMOCK=${BENCHMOCK:-$ROOT/build/bench/benchmock}
TTFB=${TTFB:-$ROOT/build/bench/ttfb}
CFLAGS_HELPERS="-O2 -Wall -Wextra -Werror -pthread"

say() { printf '%s\n' "$*" >&2; }
die() { say "bench: $*"; exit 1; }

# ---- prerequisites -------------------------------------------------------------------------
if ! command -v wrk >/dev/null || ! command -v nginx >/dev/null || ! command -v curl >/dev/null; then
    if [ -x "$ROOT/scripts/install-deps.sh" ] || [ -f "$ROOT/scripts/install-deps.sh" ]; then
        say "bench: wrk/nginx/curl missing; running scripts/install-deps.sh"
        bash "$ROOT/scripts/install-deps.sh" >&2 || true
    fi
fi
for t in wrk nginx curl; do
    command -v "$t" >/dev/null || die "$t not found (Debian: apt-get install wrk nginx-light curl)"
done
NGINX=$(command -v nginx)

# helpers: build them if missing or older than their source (make bench normally did it already)
build_helper() { # bin src
    if [ ! -x "$1" ] || [ "$2" -nt "$1" ]; then
        say "bench: building $1"
        mkdir -p "$(dirname "$1")"
        # shellcheck disable=SC2086
        ${CC:-cc} $CFLAGS_HELPERS -o "$1" "$2" || die "cannot build $1"
    fi
}
build_helper "$BENCHMOCK" "$ROOT/scripts/benchmock.c"
build_helper "$TTFB" "$ROOT/scripts/ttfb.c"

# ---- temp dir, cleanup ---------------------------------------------------------------------
TMP=$(mktemp -d /tmp/airouter-bench.XXXXXX)
PIDS=()
CUR=""
# run a bounded foreground job in the background and wait, so that a TERM/INT trap runs at once
run_bounded() { # seconds outfile cmd...
    local secs=$1 out=$2
    shift 2
    timeout -k 5 "$secs" "$@" >"$out" 2>&1 &
    CUR=$!
    wait "$CUR" || true
    CUR=""
}
# shellcheck disable=SC2317  # invoked by the trap
cleanup() {
    local p
    [ -n "$CUR" ] && kill -TERM "$CUR" 2>/dev/null
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        local alive=0
        for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ "$alive" = 0 ] && break
        sleep 0.2
    done
    for p in "${PIDS[@]}"; do
        pkill -KILL -P "$p" 2>/dev/null || true # leftover workers of that master
        kill -KILL "$p" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    if [ "${BENCH_KEEP:-0}" = 1 ]; then say "bench: kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- ports ---------------------------------------------------------------------------------
PORT=$PORT_BASE
free_port() { # sets PORT to the next loopback port nobody listens on
    PORT=$((PORT + 1))
    while [ -n "$(ss -Htln "sport = :$PORT" 2>/dev/null)" ]; do PORT=$((PORT + 1)); done
}
free_port; MOCK_PORT=$PORT
free_port; NGINX_PORT=$PORT
free_port; AIR_PORT=$PORT
free_port; SLOW_PORT=$PORT
free_port; NGINX_SLOW_PORT=$PORT

wait_http() { # url, seconds -> 0 when it answers at all
    local end=$((SECONDS + $2))
    while [ $SECONDS -lt $end ]; do
        curl -s -o /dev/null -m 1 "$1" && return 0
        sleep 0.1
    done
    return 1
}

CHAT_BODY='{"model":"bench","messages":[{"role":"system","content":"You are a benchmark."},{"role":"user","content":"Say hello to the benchmark."}],"max_tokens":64}'
STREAM_BODY='{"model":"bench","messages":[{"role":"system","content":"You are a benchmark."},{"role":"user","content":"Say hello to the benchmark."}],"max_tokens":64,"stream":true}'

# ---- mock ----------------------------------------------------------------------------------
"$BENCHMOCK" -p "$MOCK_PORT" -t "$MOCK_THREADS" -k "$CHUNKS" -d "$DELAY" 2>"$TMP/mock.log" &
PIDS+=($!)
wait_http "http://127.0.0.1:$MOCK_PORT/health" 5 || die "mock did not start: $(cat "$TMP/mock.log")"
if [ "$SLOW_DELAY" != 0 ]; then
    "$BENCHMOCK" -p "$SLOW_PORT" -t 1 -k "$CHUNKS" -d "$SLOW_DELAY" 2>"$TMP/mock-slow.log" &
    PIDS+=($!)
    wait_http "http://127.0.0.1:$SLOW_PORT/health" 5 || die "slow mock did not start: $(cat "$TMP/mock-slow.log")"
fi

# ---- nginx ---------------------------------------------------------------------------------
mkdir -p "$TMP/nginx"
NGINX_USER=""
[ "$(id -u)" = 0 ] && NGINX_USER="user root;"
cat >"$TMP/nginx/nginx.conf" <<EOF
$NGINX_USER
daemon off;
master_process on;
worker_processes $WORKERS;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    client_body_temp_path $TMP/nginx/body;
    proxy_temp_path $TMP/nginx/proxy;
    fastcgi_temp_path $TMP/nginx/fastcgi;
    uwsgi_temp_path $TMP/nginx/uwsgi;
    scgi_temp_path $TMP/nginx/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    upstream mock {
        server 127.0.0.1:$MOCK_PORT;
        keepalive 256;
        keepalive_requests 1000000;
    }
    upstream slow {
        server 127.0.0.1:$SLOW_PORT;
        keepalive 64;
    }
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_buffering off;
    server {
        listen 127.0.0.1:$NGINX_PORT backlog=4096;
        location / { proxy_pass http://mock; }
    }
    server {
        listen 127.0.0.1:$NGINX_SLOW_PORT;
        location / { proxy_pass http://slow; }
    }
}
EOF
"$NGINX" -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" -e "$TMP/nginx/error.log" 2>"$TMP/nginx/stderr.log" &
PIDS+=($!)
NGINX_MASTER=$!
NGINX_OK=1
if ! wait_http "http://127.0.0.1:$NGINX_PORT/health" 5; then
    say "bench: nginx did not start, skipping it: $(tail -n 3 "$TMP/nginx/error.log" "$TMP/nginx/stderr.log")"
    NGINX_OK=0
fi

# ---- airouter ------------------------------------------------------------------------------
AIR_OK=0
AIR_NOTE=""
if [ ! -x "$AIROUTER_BIN" ]; then
    AIR_NOTE="airouter skipped: $AIROUTER_BIN not found (run make first)"
else
    cat >"$TMP/airouter.conf" <<EOF
listen = "127.0.0.1:$AIR_PORT";
workers = $WORKERS;
pidfile = "$TMP/airouter.pid";
log = {
  level = "warn";
  error_log = "$TMP/airouter-error.log";
  access_log = "off";
};
backends = (
  { name = "mock"; type = "openai"; url = "http://127.0.0.1:$MOCK_PORT/v1"; },
  { name = "slow"; type = "openai"; url = "http://127.0.0.1:$SLOW_PORT/v1"; }
);
models = (
  { name = "bench"; backend = "mock"; },
  { name = "bench-slow"; backend = "slow"; }
);
EOF
    if ! "$AIROUTER_BIN" -t -c "$TMP/airouter.conf" >"$TMP/airouter-t.log" 2>&1; then
        AIR_NOTE="airouter skipped: config test failed: $(tr '\n' ' ' <"$TMP/airouter-t.log")"
    else
        "$AIROUTER_BIN" -c "$TMP/airouter.conf" >"$TMP/airouter-out.log" 2>&1 &
        PIDS+=($!)
        AIR_MASTER=$!
        if ! wait_http "http://127.0.0.1:$AIR_PORT/health" 10; then
            AIR_NOTE="airouter skipped: did not answer /health: $(tail -n 3 "$TMP/airouter-out.log" "$TMP/airouter-error.log" 2>/dev/null | tr '\n' ' ')"
        else
            code=$(curl -s -o "$TMP/probe.json" -w '%{http_code}' -m 5 -H 'Content-Type: application/json' \
                -d "$CHAT_BODY" "http://127.0.0.1:$AIR_PORT/v1/chat/completions" || true)
            if [ "$code" != 200 ]; then
                AIR_NOTE="airouter skipped: POST /v1/chat/completions model bench -> HTTP $code $(head -c 300 "$TMP/probe.json" 2>/dev/null)"
            else
                AIR_OK=1
            fi
        fi
    fi
fi
[ -n "$AIR_NOTE" ] && say "bench: $AIR_NOTE"

TARGETS=("direct $MOCK_PORT")
[ $NGINX_OK = 1 ] && TARGETS+=("nginx $NGINX_PORT")
[ $AIR_OK = 1 ] && TARGETS+=("airouter $AIR_PORT")
SLOW_TARGETS=("direct $SLOW_PORT")
[ $NGINX_OK = 1 ] && SLOW_TARGETS+=("nginx $NGINX_SLOW_PORT")
[ $AIR_OK = 1 ] && SLOW_TARGETS+=("airouter $AIR_PORT")

# ---- wrk -----------------------------------------------------------------------------------
lua_script() { # file body
    cat >"$1" <<EOF
wrk.method = "POST"
wrk.body = '$2'
wrk.headers["Content-Type"] = "application/json"
done = function(summary, latency, requests)
  local sockerr = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  io.write(string.format("BENCHRESULT rps=%.1f p50=%.3f p99=%.3f requests=%d non2xx=%d sockerr=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, summary.requests, summary.errors.status, sockerr))
end
EOF
}
lua_script "$TMP/chat.lua" "$CHAT_BODY"
lua_script "$TMP/stream.lua" "$STREAM_BODY"

secs() { # "10s" | "1m" | "10" -> seconds
    case "$1" in
        *m) echo $((${1%m} * 60)) ;;
        *s) echo "${1%s}" ;;
        *) echo "$1" ;;
    esac
}

# (not called inside $(...): the traps must see CUR)
run_wrk() { # port lua duration -> sets LINE to the BENCHRESULT line or ""
    run_bounded $(($(secs "$3") + 20)) "$TMP/wrk.out" wrk -t "$THREADS" -c "$CONNS" -d "$3" \
        --timeout 5s -s "$2" "http://127.0.0.1:$1/v1/chat/completions"
    LINE=$(grep '^BENCHRESULT' "$TMP/wrk.out" || true)
}
run_ttfb() { # port args... -> sets LINE to the result line
    run_bounded 60 "$TMP/ttfb.out" "$TTFB" -p "$@"
    LINE=$(tail -n 1 "$TMP/ttfb.out")
}

RESULTS="$TMP/results"
: >"$RESULTS"
field() { sed -n "s/.*[ ]$1=\([^ ]*\).*/\1/p" <<<" $2"; }

# CPU ticks (user + system) the proxy's workers have used: the master's children
master_of() { case "$1" in nginx) echo "${NGINX_MASTER:-}" ;; airouter) echo "${AIR_MASTER:-}" ;; esac; }
cpu_ticks() { # master pid -> ticks of its children, "" if none
    local w t=0
    [ -n "$1" ] || return 0
    for w in $(pgrep -P "$1"); do t=$((t + $(awk '{print $14 + $15}' "/proc/$w/stat" 2>/dev/null || echo 0))); done
    echo "$t"
}

ALL_RESULTS="$TMP/all-results"
: >"$ALL_RESULTS"
for run in $(seq 1 "$RUNS"); do
: >"$RESULTS"
say "bench: run $run of $RUNS"
for mode in chat stream; do
    for t in "${TARGETS[@]}"; do
        name=${t% *}
        port=${t#* }
        say "bench: $mode -> $name (wrk -t$THREADS -c$CONNS -d$DURATION)"
        [ "$WARMUP" != 0 ] && run_wrk "$port" "$TMP/$mode.lua" "$WARMUP"
        master=$(master_of "$name")
        t0=$(cpu_ticks "$master")
        run_wrk "$port" "$TMP/$mode.lua" "$DURATION"
        t1=$(cpu_ticks "$master")
        line=$LINE
        reqs=$(field requests "$line")
        if [ -n "$t0" ] && [ -n "$t1" ] && [ -n "$reqs" ] && [ "$reqs" -gt 0 ]; then
            line="$line cpu_us=$(awk -v d=$((t1 - t0)) -v hz="$HZ" -v r="$reqs" 'BEGIN { printf "%.1f", d / hz * 1e6 / r }')"
        fi
        ttfb_line=""
        if [ "$mode" = stream ]; then
            say "bench: $mode -> $name (time to first chunk, $TTFB_N requests, $TTFB_CONNS conn)"
            run_ttfb "$port" -n "$TTFB_N" -c "$TTFB_CONNS" -T 30
            ttfb_line=$LINE
        fi
        printf '%s %s %s %s\n' "$mode" "$name" "${line:-BENCHRESULT failed=1}" "$ttfb_line" >>"$RESULTS"
        sleep 1
    done
done

# concurrency 1: what the proxy adds to a lone client's p99 (chat; the stream's first chunk is
# the TTFC run above, also on one connection by default)
for t in "${TARGETS[@]}"; do
    name=${t% *}
    port=${t#* }
    say "bench: chat at concurrency 1 -> $name (wrk -t1 -c1 -d$C1_DURATION)"
    run_bounded $(($(secs "$C1_DURATION") + 20)) "$TMP/wrk.out" wrk -t 1 -c 1 -d "$C1_DURATION" \
        --timeout 5s -s "$TMP/chat.lua" "http://127.0.0.1:$port/v1/chat/completions"
    printf '%s %s %s\n' chat1 "$name" "$(grep '^BENCHRESULT' "$TMP/wrk.out" || echo 'BENCHRESULT failed=1')" >>"$RESULTS"
done

if [ "$SLOW_DELAY" != 0 ] && [ "$SLOW_N" != 0 ]; then
    for t in "${SLOW_TARGETS[@]}"; do
        name=${t% *}
        port=${t#* }
        say "bench: paced stream -> $name (time to first chunk, $SLOW_N requests, 4 conns)"
        run_ttfb "$port" -m bench-slow -n "$SLOW_N" -c 4 -W 1 -T 40
        ttfb_line=$LINE
        printf '%s %s %s\n' "paced" "$name" "$ttfb_line" >>"$RESULTS"
    done
fi

# ---- report --------------------------------------------------------------------------------
num_or_dash() { if [ -n "$1" ]; then echo "$1"; else echo "-"; fi; }
get() { # mode target key
    local l
    l=$(awk -v m="$1" -v t="$2" '$1 == m && $2 == t' "$RESULTS")
    field "$3" "$l"
}
ratio() { # a b -> a/b with 2 decimals or "-"
    if [ -n "$1" ] && [ -n "$2" ]; then
        awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "-" }'
    else
        echo "-"
    fi
}

{
    echo
    echo "### airouter bench, run $run of $RUNS ($(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs shared by wrk, mock, proxy)"
    echo
    echo "wrk -t$THREADS -c$CONNS -d$DURATION (warm-up $WARMUP); mock: $MOCK_THREADS threads, $CHUNKS content chunks per stream, ${DELAY} ms/chunk;"
    echo "nginx $("$NGINX" -v 2>&1 | sed 's/.*nginx\///') and airouter with $WORKERS workers, backend keep-alive; TTFC: $TTFB_N sequential streaming requests on $TTFB_CONNS keep-alive connection(s)."
    echo
    echo "| mode | target | req/s | p50 ms | p99 ms | errors | TTFC p50 ms | TTFC p99 ms |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|"
    while read -r mode name rest; do
        l=" $rest"
        [ "$mode" = paced ] && continue
        [ "$mode" = chat1 ] && continue
        if [ -n "$(field failed "$l")" ]; then
            echo "| $mode | $name | failed | | | | | |"
            continue
        fi
        n2=$(field non2xx "$l"); se=$(field sockerr "$l"); errs=$(( ${n2:-0} + ${se:-0} ))
        ttfc50="-"; ttfc99="-"
        if [ "$mode" = stream ]; then
            ttfc50=$(num_or_dash "$(field ttfc_p50_ms "$l")")
            ttfc99=$(num_or_dash "$(field ttfc_p99_ms "$l")")
            te=$(field errors "$l")
            [ -n "$te" ] && [ "$te" != 0 ] && ttfc99="$ttfc99 ($te err)"
        fi
        printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$mode" "$name" "$(field rps "$l")" \
            "$(field p50 "$l")" "$(field p99 "$l")" "$errs" "$ttfc50" "$ttfc99"
    done <"$RESULTS"
    echo
    if [ $AIR_OK = 1 ]; then
        echo "| mode | metric | airouter/nginx | airouter/direct |"
        echo "|---|---|---:|---:|"
        for mode in chat stream; do
            metrics="rps p50 p99"
            [ "$mode" = stream ] && metrics="rps p50 p99 ttfc_p50_ms ttfc_p99_ms"
            for k in $metrics; do
                a=$(get "$mode" airouter "$k")
                case $k in rps) label="req/s" ;; p50) label="p50 latency" ;; p99) label="p99 latency" ;;
                    ttfc_p50_ms) label="TTFC p50" ;; ttfc_p99_ms) label="TTFC p99" ;; esac
                printf '| %s | %s | %s | %s |\n' "$mode" "$label" "$(ratio "$a" "$(get "$mode" nginx "$k")")" \
                    "$(ratio "$a" "$(get "$mode" direct "$k")")"
            done
        done
        echo
        echo "(req/s ratio: higher is better; latency ratios: lower is better.)"
        echo
        echo "| target | chat CPU µs/req | stream CPU µs/req | chat p99 at c=1 ms |"
        echo "|---|---:|---:|---:|"
        for t in nginx airouter direct; do
            printf '| %s | %s | %s | %s |\n' "$t" "$(num_or_dash "$(get chat "$t" cpu_us)")" \
                "$(num_or_dash "$(get stream "$t" cpu_us)")" "$(num_or_dash "$(get chat1 "$t" p99)")"
        done
        echo
        echo "(CPU: the workers' user + system time over the wrk run ÷ its requests; none for the mock.)"
    else
        echo "_${AIR_NOTE}_"
    fi
    if grep -q '^paced ' "$RESULTS"; then
        echo
        echo "Paced stream (mock sends a chunk every $SLOW_DELAY ms, $CHUNKS content chunks; $SLOW_N requests on 4 connections):"
        echo "TTFC stays far below one chunk interval if the relay forwards each event at once."
        echo
        echo "| target | TTFC p50 ms | TTFC p99 ms | total p50 ms | total p99 ms | errors |"
        echo "|---|---:|---:|---:|---:|---:|"
        while read -r mode name rest; do
            [ "$mode" = paced ] || continue
            l=" $rest"
            printf '| %s | %s | %s | %s | %s | %s |\n' "$name" "$(num_or_dash "$(field ttfc_p50_ms "$l")")" \
                "$(num_or_dash "$(field ttfc_p99_ms "$l")")" "$(num_or_dash "$(field total_p50_ms "$l")")" \
                "$(num_or_dash "$(field total_p99_ms "$l")")" "$(num_or_dash "$(field errors "$l")")"
        done <"$RESULTS"
    fi
}
sed "s/^/$run /" "$RESULTS" >>"$ALL_RESULTS"
done

# ---- summary over the runs: the figures of the performance targets -------------------------
if [ $AIR_OK = 1 ] && [ $NGINX_OK = 1 ]; then
    rget() { # run mode target key
        field "$4" "$(awk -v r="$1" -v m="$2" -v t="$3" '$1 == r && $2 == m && $3 == t' "$ALL_RESULTS")"
    }
    diff_us() { # a b (ms) -> (a - b) in µs or "-"
        if [ -n "$1" ] && [ -n "$2" ]; then awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", (a - b) * 1000 }'; else echo "-"; fi
    }
    echo
    echo "### Summary: airouter against nginx and the direct backend, $RUNS runs"
    echo
    echo "| run | chat req/s ×nginx | chat p99 ×nginx | stream req/s ×nginx | TTFC p50 − nginx µs | c=1 chat p99 − direct µs | c=1 first chunk p99 − direct µs | chat CPU µs/req (nginx) | stream CPU µs/req (nginx) |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    for run in $(seq 1 "$RUNS"); do
        printf '| %s | %s | %s | %s | %s | %s | %s | %s (%s) | %s (%s) |\n' "$run" \
            "$(ratio "$(rget "$run" chat airouter rps)" "$(rget "$run" chat nginx rps)")" \
            "$(ratio "$(rget "$run" chat airouter p99)" "$(rget "$run" chat nginx p99)")" \
            "$(ratio "$(rget "$run" stream airouter rps)" "$(rget "$run" stream nginx rps)")" \
            "$(diff_us "$(rget "$run" stream airouter ttfc_p50_ms)" "$(rget "$run" stream nginx ttfc_p50_ms)")" \
            "$(diff_us "$(rget "$run" chat1 airouter p99)" "$(rget "$run" chat1 direct p99)")" \
            "$(diff_us "$(rget "$run" stream airouter ttfc_p99_ms)" "$(rget "$run" stream direct ttfc_p99_ms)")" \
            "$(num_or_dash "$(rget "$run" chat airouter cpu_us)")" "$(num_or_dash "$(rget "$run" chat nginx cpu_us)")" \
            "$(num_or_dash "$(rget "$run" stream airouter cpu_us)")" "$(num_or_dash "$(rget "$run" stream nginx cpu_us)")"
    done
    echo
    echo "Targets: req/s ≥ 1.0× nginx (chat and stream), chat p99 ≤ 1.2× nginx, TTFC within 20 µs of nginx,"
    echo "added p99 at c=1 ≤ 40 µs (chat) and ≤ 50 µs (first chunk)."
fi
exit 0
