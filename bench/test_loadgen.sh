#!/usr/bin/env bash
# bench/test_loadgen.sh — proves that the load generator fails a run for each kind of wrong
# delivery, by pointing it at bench/peers/faulty_peer.mjs with one fault at a time, and passes
# a faultless one; in the --deflate cases the peer compresses every message. A benchmark number
# is only as good as the instrument's ability to refuse one.
#   bench/test_loadgen.sh [LOADGEN]     (default: build-bench/bench/loadgen)
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
lg=${1:-$root/build-bench/bench/loadgen}
command -v node >/dev/null || { echo "test_loadgen: no node; skipped"; exit 77; }
[ -x "$lg" ] || { echo "test_loadgen: no loadgen at $lg" >&2; exit 1; }

pass=0 fail=0
# fault  scenario-args  expected-exit  counter-that-must-be-positive
cases=(
    "none|fanout --clients 40 --rooms 2|0|"
    "none|private --pairs 20|0|"
    "drop|fanout --clients 40 --rooms 2|1|skipped"
    "drop|private --pairs 20|1|skipped"
    "dup|fanout --clients 40 --rooms 2|1|dup_or_reordered"
    "reorder|fanout --clients 40 --rooms 2|1|dup_or_reordered"
    "corrupt|fanout --clients 40 --rooms 2|1|corrupt"
    "corrupt|private --pairs 20|1|corrupt"
    "misroute|fanout --clients 40 --rooms 2|1|misrouted"
    "extra|fanout --clients 40 --rooms 2|1|unexpected"
    "close|fanout --clients 40 --rooms 2|2|dropped_on_close"
    "stall|fanout --clients 40 --rooms 2|2|late"
    "none|fanout --clients 40 --rooms 2 --deflate --text words --size 300|0|"
    "drop|fanout --clients 40 --rooms 2 --deflate --text words --size 300|1|skipped"
    "corrupt|fanout --clients 40 --rooms 2 --deflate --text words --size 300|1|corrupt"
    "misroute|fanout --clients 40 --rooms 2 --deflate|1|misrouted"
    "none|fanout --clients 40 --rooms 2 --typing 0.25|0|"
    "none|fanout --clients 40 --rooms 2 --v1|0|"
    "typing_misroute|fanout --clients 40 --rooms 2 --typing 0.25|1|misrouted"
    "typing_unasked|fanout --clients 40 --rooms 2 --v1|1|unexpected"
    "typing_unasked|fanout --clients 40 --rooms 2|1|unexpected"
    "drop|fanout --clients 40 --rooms 2 --typing 0.25|1|skipped"
)
for c in "${cases[@]}"; do
    IFS='|' read -r fault args want counter <<<"$c"
    port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    peer_opt=""
    case $args in *--deflate*) peer_opt=deflate ;; esac
    node "$root/bench/peers/faulty_peer.mjs" "$port" "$fault" $peer_opt &
    pid=$!
    for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
    # shellcheck disable=SC2086
    out=$(timeout 60 "$lg" --port "$port" --scenario $args --duration 1 --drain 1 --src-ips 4 2>/dev/null)
    code=$?
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    got=""
    if [ -n "$counter" ]; then
        got=$(printf '%s' "$out" | /usr/bin/python3 -c "import json,sys; d=json.load(sys.stdin); print(d['loss']['$counter'])" 2>/dev/null)
    fi
    if [ "$code" = "$want" ] && { [ -z "$counter" ] || [ "${got:-0}" -gt 0 ]; }; then
        pass=$((pass + 1))
        echo "ok   $fault ($args): exit $code${counter:+, $counter=$got}"
    else
        fail=$((fail + 1))
        echo "FAIL $fault ($args): exit $code (want $want)${counter:+, $counter=${got:-?}}"
        printf '%s\n' "$out" | head -c 600
        echo
    fi
done
echo "test_loadgen: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
