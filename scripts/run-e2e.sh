#!/usr/bin/env bash
# Runs the end-to-end suite against the release binary, then against the
# ASan+UBSan build (sanitizer reports from any process fail the run).
set -euo pipefail
cd "$(dirname "$0")/.."
tests=(tests/e2e/*.test.js)

# One pass takes about two minutes; a pass that hangs is stopped (and reported) well before CI's
# own limit, and routers it left behind are killed.
PASS_LIMIT=${E2E_PASS_LIMIT:-900}
run_pass() { # binary
    local rc=0
    AIROUTER_BIN="$1" timeout --kill-after=10 "$PASS_LIMIT" node --test --test-concurrency=1 "${tests[@]}" || rc=$?
    if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
        echo "e2e: the pass did not finish within $PASS_LIMIT s (hung?); stopped"
        pkill -KILL -f "^$1 " 2>/dev/null || true
    fi
    return "$rc"
}

echo "== e2e: release build =="
run_pass "$PWD/airouter"

echo "== e2e: ASan+UBSan build =="
logdir=$(mktemp -d /tmp/airouter-asan.XXXXXX)
export ASAN_OPTIONS="log_path=$logdir/asan:detect_leaks=1:abort_on_error=0"
export UBSAN_OPTIONS="log_path=$logdir/ubsan:print_stacktrace=1"
# Workers check for leaks after a graceful stop (worker/worker.c); third-party leaks only are
# suppressed, each with its reason.
export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp"
run_pass "$PWD/airouter-asan"
if compgen -G "$logdir/*" >/dev/null; then
    echo "sanitizer reports:"
    cat "$logdir"/*
    exit 1
fi
rm -rf "$logdir"
echo "e2e: sanitizer build clean"
