#!/usr/bin/env bash
# Instructions per delivery of the server, counted by callgrind, for one
# bounded fan-out run (200 clients in 4 rooms, 8,000 messages sent, so
# 400,000 deliveries), for each binary given, side by side. Instruction
# counts do not depend on what else the machine is doing, so this compares
# two builds on a busy machine, where bench/run.sh cannot.
#   bench/callgrind_fanout.sh NAME=PATH[|ARGS] [NAME=PATH[|ARGS] ...]
# ARGS, after a |, go to the generator for that binary only, so one
# invocation can compare one build under two loads:
#   bench/callgrind_fanout.sh 'v1=build/tertulia|--v1' 'typing=build/tertulia|--typing 0.1'
# Needs valgrind (scripts/deps.sh --bench) and the load generator
# (LOADGEN, default build/bench/loadgen). LG_ARGS adds generator options for
# every binary. Typing starts (--typing) come every 2.5 s of wall time, so
# their number follows how long the run takes under callgrind: the output
# says how many there were.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
loadgen=${LOADGEN:-$root/build/bench/loadgen}
[ $# -ge 1 ] || { echo "usage: $0 NAME=PATH [NAME=PATH ...]" >&2; exit 2; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
port=19300
for spec in "$@"; do
    name=${spec%%=*}
    bin=${spec#*=}
    extra=
    if [[ $bin == *"|"* ]]; then
        extra=${bin#*|}
        bin=${bin%%|*}
    fi
    port=$((port + 1))
    valgrind --tool=callgrind --callgrind-out-file="$out/$name.cg" "$bin" --listen 127.0.0.1:$port \
        --db :memory: --rate-limit 0 --log-level warn >"$out/$name.log" 2>&1 &
    pid=$!
    for _ in $(seq 150); do grep -q 'open http' "$out/$name.log" && break; sleep 0.2; done
    # shellcheck disable=SC2086 # LG_ARGS and extra are lists of options
    "$loadgen" --port $port --scenario fanout --clients 200 --rooms 4 --duration 60 \
        --max-messages 8000 --src-ips 0 --drain 5 ${LG_ARGS:-} $extra >"$out/$name.json"
    kill -INT $pid
    wait $pid || true
    python3 - "$name" "$out/$name.cg" "$out/$name.json" <<'PY'
import json, sys
name, cg, res = sys.argv[1:4]
ir = 0
for line in open(cg):
    if line.startswith(('summary:', 'totals:')):
        ir = int(line.split()[1])
r = json.loads(open(res).read().strip().splitlines()[-1])
d = r['delivered']
t = r.get('typing')
typing = f", typing: {t['sent']} starts, {t['received_start']} frames" if t else ""
print(f"{name}: {ir:,} instructions, {d:,} deliveries, {ir / d:,.1f} per delivery{typing} "
      f"({r['verdict']})")
PY
done
