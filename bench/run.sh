#!/usr/bin/env bash
# bench/run.sh — builds what the benchmark needs and runs tertulia and its peers (Node.js ws,
# Python Tornado, C libwebsockets, and C++ uWebSockets when a build of it is present) side by
# side; bench/run.py does the runs and the report.
#   bench/run.sh            full run (about 20 minutes): writes docs/BENCHMARKS.md, docs/bench.svg
#   bench/run.sh --quick    smoke run (about 2 minutes): writes bench/results/<stamp>-quick/
#   --previous=REF          also build REF (default: HEAD~1) and run it beside this tree
#                           (fan-out, private, idle), for the before/after comparison
#   any other option goes to bench/run.py (bench/run.py --help), e.g. --servers tertulia,ws
# BUILD_DIR (default build-bench) is the build directory; the tertulia measured is built there.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build-bench}
mode=full
args=()
prev=HEAD~1
want_prev=1
for a in "$@"; do
    case $a in
    --quick) mode=quick ;;
    --previous=*) prev=${a#--previous=} ;;
    --no-previous) want_prev=0 ;;
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
# The previous commit, built the same way in a worktree of its own (outside the
# checkout, removed afterwards), so the report compares before and after.
prev_args=()
if [ "$want_prev" = 1 ] && git -C "$root" rev-parse --verify -q "$prev^{commit}" >/dev/null; then
    prev_src=$(mktemp -d /tmp/tertulia-prev-src.XXXXXX)
    prev_build=${PREV_BUILD_DIR:-$root/build-bench-prev}
    # A fresh build each run: the source directory is new every time.
    rm -rf "$prev_build"
    git -C "$root" worktree prune
    git -C "$root" worktree add -q --detach "$prev_src" "$prev"
    trap 'git -C "$root" worktree remove --force "$prev_src" 2>/dev/null || true' EXIT
    cmake -S "$prev_src" -B "$prev_build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTT_SANITIZE= \
        -DTT_TESTS=OFF -DTT_FUZZ=OFF -DTT_BENCH=OFF >/dev/null
    cmake --build "$prev_build" -j2 --target tertulia >/dev/null
    prev_args=(--tertulia-prev "$prev_build/tertulia")
    export TT_BENCH_PREV_REF="$prev ($(git -C "$root" rev-parse --short "$prev"))"
    say "previous commit $TT_BENCH_PREV_REF built in $prev_build"
fi
# The instrument checks itself before it measures anything.
"$build/bench/lg_selftest"

servers=tertulia
if command -v node >/dev/null && [ -d "$root/node_modules/ws" ]; then servers+=,ws
else say "no Node.js or npm ws: the ws peer is left out"; fi
if /usr/bin/python3 -c 'import tornado' 2>/dev/null; then servers+=,tornado
else say "no python3-tornado: the Tornado peer is left out"; fi
if [ -x "$build/bench/lws_peer" ]; then servers+=,lws
else say "no libwebsockets: the lws peer is left out"; fi
# uWebSockets (issue 15) is never built here: bench/peers/build_uws.sh builds it from fetched
# sources into a scratch folder; a build present there (or at UWS_PEER) joins the run.
uws_peer=${UWS_PEER:-${UWS_BUILD_DIR:-/tmp/tertulia-uws}/uws_peer}
uws_args=()
if [ -x "$uws_peer" ]; then servers+=,uws; uws_args=(--uws-peer "$uws_peer")
else say "no uWebSockets build: the uWS peer is left out (bench/peers/build_uws.sh builds one)"; fi

profile=()
[ "$mode" = full ] && command -v perf >/dev/null && profile=(--profile)
/usr/bin/python3 "$root/bench/run.py" --mode "$mode" --build-dir "$build" \
    --servers "$servers" --cmdline "bench/run.sh${*:+ $*}" "${profile[@]}" "${prev_args[@]}" \
    "${uws_args[@]}" "${args[@]}"
