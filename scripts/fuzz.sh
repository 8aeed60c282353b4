#!/usr/bin/env bash
# Runs each libFuzzer target given (build/fuzz/fuzz_NAME) for its share of FUZZ_SECONDS
# (60 by default) from its seed corpus tests/fuzz/corpus/NAME (with tests/fuzz/NAME.dict, else
# json.dict), and prints one line per target:
# executions per second, coverage (edges) and features reached. New inputs are kept in
# build/fuzz/corpus/NAME (fed back on the next run), crashing ones in build/fuzz/crashes/.
# Exits non-zero if any target crashed; its log is shown.
set -uo pipefail
cd "$(dirname "$0")/.."
total=${FUZZ_SECONDS:-60}
per=$(( total / $# ))
[ "$per" -ge 1 ] || per=1
mkdir -p build/fuzz/logs build/fuzz/crashes
export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
failed=()
printf '%-20s %10s %10s %8s %8s %8s\n' target seconds execs/s cov ft corpus
for bin in "$@"; do
    name=${bin##*/fuzz_}
    mkdir -p "build/fuzz/corpus/$name"
    log="build/fuzz/logs/$name.log"
    dict=tests/fuzz/$name.dict
    [ -f "$dict" ] || dict=tests/fuzz/json.dict
    "$bin" -max_total_time="$per" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 -dict="$dict" \
        -artifact_prefix="build/fuzz/crashes/$name-" "build/fuzz/corpus/$name" "tests/fuzz/corpus/$name" >"$log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
    last=$(grep -E '^#[0-9]+' "$log" | tail -1)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    corp=$(sed -n 's/.* corp: \([0-9]*\).*/\1/p' <<<"$last")
    printf '%-20s %10s %10s %8s %8s %8s\n' "$name" "$per" "${execs:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}"
    if [ "$rc" != 0 ]; then
        failed+=("$name")
        echo "---- $name failed (exit $rc); the end of $log:"
        tail -40 "$log"
        echo "----"
    fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: crashes in ${failed[*]}; inputs in build/fuzz/crashes/ (replay: build/fuzz/fuzz_NAME FILE)"
    exit 1
fi
echo "fuzz: no crash in $# targets"
