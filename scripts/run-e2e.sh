#!/usr/bin/env bash
# Runs the end-to-end suite against the release binary, then against the
# ASan+UBSan build (sanitizer reports from any process fail the run).
set -euo pipefail
cd "$(dirname "$0")/.."
tests=(tests/e2e/*.test.js)

echo "== e2e: release build =="
AIROUTER_BIN="$PWD/airouter" node --test --test-concurrency=1 "${tests[@]}"

echo "== e2e: ASan+UBSan build =="
logdir=$(mktemp -d /tmp/airouter-asan.XXXXXX)
export ASAN_OPTIONS="log_path=$logdir/asan:detect_leaks=1:abort_on_error=0"
export UBSAN_OPTIONS="log_path=$logdir/ubsan:print_stacktrace=1"
AIROUTER_BIN="$PWD/airouter-asan" node --test --test-concurrency=1 "${tests[@]}"
if compgen -G "$logdir/*" >/dev/null; then
    echo "sanitizer reports:"
    cat "$logdir"/*
    exit 1
fi
rm -rf "$logdir"
echo "e2e: sanitizer build clean"
