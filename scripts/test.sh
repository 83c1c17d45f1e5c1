#!/usr/bin/env bash
# Builds tertulia and runs every test: unit tests (ctest) and integration
# tests against the real binary, browser end-to-end tests, then the unit and
# integration tests again under AddressSanitizer + UndefinedBehaviorSanitizer,
# and a short run of each fuzzer. Ends with one summary line:
#   "N passed, N failed"   (test counts over every suite)
# and exits non-zero if anything failed, including any sanitizer report.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
jobs=$(nproc 2>/dev/null || echo 2)
logdir="$root/build-logs"
rm -rf "$logdir"
mkdir -p "$logdir"

bash scripts/deps.sh --test || { echo "deps: installation failed"; exit 1; }

total_pass=0
total_fail=0
failed_steps=()

step() { printf '\n==== %s ====\n' "$*"; }
record() { # name status pass fail
    total_pass=$((total_pass + $3))
    total_fail=$((total_fail + $4))
    if [ "$2" -ne 0 ] || [ "$4" -ne 0 ]; then
        failed_steps+=("$1")
        [ "$4" -eq 0 ] && total_fail=$((total_fail + 1))
    fi
    printf -- '---- %s: %d passed, %d failed (exit %d)\n' "$1" "$3" "$4" "$2"
}

build() { # dir, cmake args...
    local dir=$1
    shift
    cmake -S "$root" -B "$dir" "$@" >"$logdir/$(basename "$dir")-configure.log" 2>&1 &&
        cmake --build "$dir" -j"$jobs" 2>&1 | tail -n 30
    return "${PIPESTATUS[0]}"
}

run_ctest() { # name, build dir, extra env...
    local name=$1 dir=$2
    shift 2
    local out="$logdir/$name.log"
    env "$@" ctest --test-dir "$dir" --output-on-failure -j"$jobs" 2>&1 | tee "$out" | tail -n 40
    local st=${PIPESTATUS[0]}
    local line pass=0 fail=0 tot
    line=$(grep -E '[0-9]+% tests passed, [0-9]+ tests failed out of [0-9]+' "$out" | tail -1)
    if [ -n "$line" ]; then
        fail=$(sed -E 's/.* ([0-9]+) tests failed out of ([0-9]+).*/\1/' <<<"$line")
        tot=$(sed -E 's/.* tests failed out of ([0-9]+).*/\1/' <<<"$line")
        pass=$((tot - fail))
    fi
    record "$name" "$st" "$pass" "$fail"
}

# Test files run side by side: TEST_JOBS at once (default 2: the
# integration files each start their own servers and mostly wait on them;
# node's own default is one fewer than the cores, 1 here). The browser
# files run one at a time (E2E_JOBS, default 1): each drives a Chromium.
run_node() { # name, test dir, files at once, extra env...
    local name=$1 dir=$2 jobs=$3
    shift 3
    local out="$logdir/$name.log"
    env "$@" node --test --test-concurrency="$jobs" --test-reporter=spec "$dir" 2>&1 | tee "$out" |
        grep -vE '^\s+✔' | tail -n 60
    local st=${PIPESTATUS[0]}
    local pass fail
    pass=$(grep -E '^ℹ pass [0-9]+' "$out" | tail -1 | awk '{print $3}')
    fail=$(grep -E '^ℹ fail [0-9]+' "$out" | tail -1 | awk '{print $3}')
    record "$name" "$st" "${pass:-0}" "${fail:-0}"
}

step "build (release with debug info)"
build "$root/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTT_TESTS=ON
record "build" $? 0 0

step "include graph (docs/ARCHITECTURE.md: Dependencies)"
bash scripts/check-includes.sh
st=$?
record "include-graph" "$st" $((st == 0 ? 1 : 0)) 0

step "unit tests"
run_ctest unit "$root/build"

# Checks that print "ok: ..." or "FAILED: ..." lines, counted as tests.
run_checks() { # name, command...
    local name=$1
    shift
    local out="$logdir/$name.log" t0=$SECONDS
    "$@" 2>&1 | tee "$out" | tail -n 40
    local st=${PIPESTATUS[0]}
    echo "($name: $((SECONDS - t0)) s)"
    record "$name" "$st" "$(grep -c '^ok: ' "$out")" "$(grep -c '^FAILED: ' "$out")"
}

step "make install, the unit file, the default config, the manual page"
run_checks install env BUILD="$root/build" bash scripts/check-install.sh

step "Debian package (dpkg-buildpackage, lintian, its contents)"
run_checks package bash scripts/package.sh --check

if [ -d tests/integration ] && ls tests/integration/*.test.mjs >/dev/null 2>&1; then
    step "integration tests"
    run_node integration tests/integration "${TEST_JOBS:-2}" TERTULIA_BIN="$root/build/tertulia"
fi

if [ -d tests/e2e ] && ls tests/e2e/*.test.mjs >/dev/null 2>&1; then
    step "browser tests (Chromium)"
    run_node e2e tests/e2e "${E2E_JOBS:-1}" TERTULIA_BIN="$root/build/tertulia"
fi

step "build with AddressSanitizer + UndefinedBehaviorSanitizer"
build "$root/build-asan" -DCMAKE_BUILD_TYPE=Debug -DTT_SANITIZE=address,undefined -DTT_BENCH=OFF -DTT_TESTS=ON
record "build-asan" $? 0 0

# Sanitizer reports go to files: a test may pass while the server logged a
# report, and that must still fail the run.
sanlog="$logdir/sanitizer"
mkdir -p "$sanlog"
san_env=(ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:log_path=$sanlog/asan"
         UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$sanlog/ubsan"
         LSAN_OPTIONS="log_path=$sanlog/lsan")

step "unit tests under sanitizers"
run_ctest unit-asan "$root/build-asan" "${san_env[@]}"

if [ -d tests/integration ] && ls tests/integration/*.test.mjs >/dev/null 2>&1; then
    step "integration tests under sanitizers"
    run_node integration-asan tests/integration "${TEST_JOBS:-2}" TERTULIA_BIN="$root/build-asan/tertulia" \
        TT_SANITIZED=1 "${san_env[@]}"
fi

reports=$(find "$sanlog" -type f 2>/dev/null | wc -l)
if [ "$reports" -gt 0 ]; then
    echo "sanitizer reports:"
    for f in "$sanlog"/*; do echo "== $f"; head -n 40 "$f"; done
    record "sanitizer-reports" 1 0 "$reports"
else
    record "sanitizer-reports" 0 1 0
fi

if [ -f fuzz/CMakeLists.txt ]; then
    step "fuzzers (short run)"
    out="$logdir/fuzz.log"
    bash scripts/fuzz.sh "${FUZZ_SECONDS:-12}" 2>&1 | tee "$out" | tail -n 20
    st=${PIPESTATUS[0]}
    n=$(grep -c '^fuzz: .* ok' "$out")
    f=$(grep -c '^fuzz: .* FAILED' "$out")
    record fuzz "$st" "$n" "$f"
fi

echo
echo "==== summary ===="
if [ ${#failed_steps[@]} -gt 0 ]; then
    echo "failed: ${failed_steps[*]} (logs in build-logs/)"
fi
echo "tests: $total_pass passed, $total_fail failed"
[ ${#failed_steps[@]} -eq 0 ] && [ "$total_fail" -eq 0 ]
