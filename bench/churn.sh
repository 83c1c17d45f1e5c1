#!/usr/bin/env bash
# bench/churn.sh — opens and closes many connections against one server for a bounded time and
# samples the server's RSS, to show that memory returns to its baseline (nothing is kept per
# closed connection). Each cycle opens --clients connections (each confirmed logged in), then
# closes them all and lets the server settle.
#   bench/churn.sh [--server tertulia|ws|tornado|lws] [--clients N] [--cycles K] [--seconds S]
# Exit status: 0 when RSS after the last cycle is back to the baseline or flat across cycles,
# 1 when it keeps growing, 3 when the run itself failed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build-bench}
server=tertulia clients=5000 cycles=5 seconds=90
while [ $# -gt 0 ]; do
    case $1 in
    --server) server=$2; shift 2 ;;
    --clients) clients=$2; shift 2 ;;
    --cycles) cycles=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    *) echo "usage: $0 [--server tertulia|ws|tornado|lws] [--clients N] [--cycles K] [--seconds S]" >&2
       exit 64 ;;
    esac
done

cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTT_SANITIZE= -DTT_TESTS=OFF \
    -DTT_FUZZ=OFF -DTT_BENCH=ON >/dev/null
targets=(loadgen)
case $server in
tertulia) targets+=(tertulia) ;;
lws) targets+=(lws_peer) ;;
esac
cmake --build "$build" -j2 --target "${targets[@]}" >/dev/null

out=$(mktemp -d /tmp/churn.XXXXXX)
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
case $server in
tertulia) cmd=("$build/tertulia" --listen "127.0.0.1:$port" --log-level warn --db "$out/tertulia.db") ;;
ws) cmd=(node "$root/bench/peers/ws_peer.mjs" "$port") ;;
tornado) cmd=(/usr/bin/python3 "$root/bench/peers/tornado_peer.py" "$port") ;;
lws) cmd=("$build/bench/lws_peer" "$port") ;;
*) echo "unknown server $server" >&2; exit 64 ;;
esac
taskset -c 0 "${cmd[@]}" >"$out/server.log" 2>&1 &
spid=$!
cleanup() {
    kill "$spid" 2>/dev/null || true
    wait "$spid" 2>/dev/null || true
    rm -rf "$out"
}
trap cleanup EXIT
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
done

rss() { awk '/^VmRSS:/ {print $2}' "/proc/$spid/status" 2>/dev/null || echo 0; }
baseline=$(rss)
echo "churn: $server (pid $spid) on port $port: $cycles cycles of $clients connections, at most ${seconds} s"
echo "churn: baseline RSS ${baseline} KiB"
taskset -c 1 "$build/bench/loadgen" --port "$port" --scenario churn --clients "$clients" \
    --cycles "$cycles" --duration "$seconds" --settle 1 --server-pid "$spid" --label "$server" \
    >"$out/result.json" &
lpid=$!
# Sample the server's RSS twice a second while the generator runs (it is bounded by --duration).
: >"$out/rss.tsv"
while kill -0 "$lpid" 2>/dev/null; do
    printf '%s\t%s\n' "$(date +%s.%N)" "$(rss)" >>"$out/rss.tsv"
    sleep 0.5
done
code=0
wait "$lpid" || code=$?
if [ "$code" -ne 0 ]; then
    echo "churn: the generator failed (exit $code):" >&2
    cat "$out/result.json" >&2
    exit 3
fi
/usr/bin/python3 - "$out/result.json" "$baseline" "$out/rss.tsv" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
base = int(sys.argv[2])
samples = [l.split("\t") for l in open(sys.argv[3]).read().split("\n") if l]
print(f"churn: {r['connects']} logins confirmed, {r['connects_per_s']:.0f}/s; {r['verdict']}")
print("cycle  RSS all open (KiB)  RSS after close (KiB)")
for i, c in enumerate(r["churn"], 1):
    print(f"{i:5}  {c['rss_open_kb']:18,}  {c['rss_closed_kb']:21,}")
peak = max((int(s[1]) for s in samples), default=0)
span = float(samples[-1][0]) - float(samples[0][0]) if samples else 0
print(f"samples: {len(samples)} over {span:.1f} s, peak {peak:,} KiB")
last, first = r["churn"][-1]["rss_closed_kb"], r["churn"][0]["rss_closed_kb"]
if last - base <= max(base * 0.05, 512):
    print(f"churn: RSS returns to the baseline ({base:,} -> {last:,} KiB)")
    sys.exit(0)
if last - first <= max(first * 0.02, 256):
    print(f"churn: RSS stays flat across cycles ({first:,} -> {last:,} KiB after closing; "
          f"baseline {base:,}): memory is reused, not leaked, but not given back to the system")
    sys.exit(0)
print(f"churn: RSS GROWS across cycles ({first:,} -> {last:,} KiB after closing; baseline {base:,})")
sys.exit(1)
PY
