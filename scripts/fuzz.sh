#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan+UBSan) and runs each for the
# given number of seconds, starting from the committed seeds
# (fuzz/corpus/<target>) and past findings (fuzz/regressions/<target>).
# New interesting inputs go to build-fuzz/corpus/<target> (not committed);
# a crash leaves its input in fuzz/crashes/ and fails the run.
#   scripts/fuzz.sh [SECONDS] [TARGET...]
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
secs=${1:-60}
shift || true
bdir="$root/build-fuzz"
cmake -S . -B "$bdir" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DTT_FUZZ=ON -DTT_TESTS=OFF -DTT_BENCH=OFF >"$bdir.log" 2>&1 || { cat "$bdir.log"; exit 1; }
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    for f in fuzz/fuzz_*.c; do targets+=("$(basename "$f" .c)"); done
fi
cmake --build "$bdir" -j"$(nproc)" --target "${targets[@]}" >>"$bdir.log" 2>&1 ||
    { tail -n 40 "$bdir.log"; exit 1; }
mkdir -p fuzz/crashes
status=0
for t in "${targets[@]}"; do
    work="$bdir/corpus/$t"
    mkdir -p "$work"
    seeds=()
    for d in "fuzz/corpus/$t" "fuzz/regressions/$t"; do [ -d "$d" ] && seeds+=("$d"); done
    log="$bdir/$t.log"
    # -rss_limit_mb keeps a leak or a runaway allocation from taking the machine.
    if "$bdir/fuzz/$t" -max_total_time="$secs" -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="fuzz/crashes/$t-" "$work" "${seeds[@]}" >"$log" 2>&1; then
        execs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$')
        cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1)
        echo "fuzz: $t ok ($execs runs in ${secs}s, $cov)"
    else
        echo "fuzz: $t FAILED (see $log; input in fuzz/crashes/)"
        grep -E 'ERROR|SUMMARY|==[0-9]+==' "$log" | head -n 10
        status=1
    fi
done
exit $status
