#!/usr/bin/env bash
# bench/run.sh — builds what the benchmark needs and runs tertulia and its three peers (Node.js
# ws, Python Tornado, C libwebsockets) side by side; bench/run.py does the runs and the report.
#   bench/run.sh            full run (about 20 minutes): writes docs/BENCHMARKS.md, docs/bench.svg
#   bench/run.sh --quick    smoke run (about 2 minutes): writes bench/results/<stamp>-quick/
#   any other option goes to bench/run.py (bench/run.py --help), e.g. --servers tertulia,ws
# BUILD_DIR (default build-bench) is the build directory; the tertulia measured is built there.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build-bench}
mode=full
args=()
for a in "$@"; do
    case $a in
    --quick) mode=quick ;;
    *) args+=("$a") ;;
    esac
done
say() { echo "[bench] $*" >&2; }

"$root/scripts/deps.sh" --bench || say "scripts/deps.sh --bench failed; going on with what is installed"
for tool in taskset cmake; do
    command -v "$tool" >/dev/null || { say "missing $tool"; exit 1; }
done

cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTT_SANITIZE= -DTT_TESTS=OFF \
    -DTT_FUZZ=OFF -DTT_BENCH=ON >/dev/null
targets=(tertulia loadgen lg_selftest)
if cmake --build "$build" --target help | grep lws_peer >/dev/null; then targets+=(lws_peer); fi
cmake --build "$build" -j2 --target "${targets[@]}" >/dev/null
# The instrument checks itself before it measures anything.
"$build/bench/lg_selftest"

servers=tertulia
if command -v node >/dev/null && [ -d "$root/node_modules/ws" ]; then servers+=,ws
else say "no Node.js or npm ws: the ws peer is left out"; fi
if /usr/bin/python3 -c 'import tornado' 2>/dev/null; then servers+=,tornado
else say "no python3-tornado: the Tornado peer is left out"; fi
if [ -x "$build/bench/lws_peer" ]; then servers+=,lws
else say "no libwebsockets: the lws peer is left out"; fi

profile=()
[ "$mode" = full ] && command -v perf >/dev/null && profile=(--profile)
exec /usr/bin/python3 "$root/bench/run.py" --mode "$mode" --build-dir "$build" \
    --servers "$servers" --cmdline "bench/run.sh${*:+ $*}" "${profile[@]}" "${args[@]}"
