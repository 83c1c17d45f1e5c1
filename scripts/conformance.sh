#!/usr/bin/env bash
# Runs the Autobahn|Testsuite fuzzingclient against tertulia's /echo and
# prints a per-section table of the outcomes (docs/CONFORMANCE.md says how
# to prepare the suite, which no registry of ours carries). Not part of
# `make test`.
#   scripts/conformance.sh                    every case (about 25 minutes)
#   CASES='1.*,2.*' scripts/conformance.sh    only these (comma-separated, wstest's patterns)
#   AUTOBAHN_URL=ws://127.0.0.1:PORT/ scripts/conformance.sh
#                                             a server already running (no build, no tertulia)
# Environment:
#   AUTOBAHN_DIR      the prepared suite (default /work/scratch/autobahn)
#   AUTOBAHN_OUT      report folder, emptied first (default build/conformance, git-ignored)
#   AUTOBAHN_PYTHON   a python3 with Debian's autobahn and twisted (default /usr/bin/python3)
#   AUTOBAHN_AGENT    the agent name in the report (default tertulia)
#   AUTOBAHN_TIMEOUT  wall-clock cap on wstest in seconds (default 2700)
#   AUTOBAHN_STALL    wstest is also killed when its log has not grown for this
#                     many seconds (default 600; no single case takes a minute)
# Exit status: 0 every case OK or INFORMATIONAL; 1 a case NON-STRICT, FAILED
# or UNIMPLEMENTED, or the run failed; 2 the suite is not prepared.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
suite=${AUTOBAHN_DIR:-/work/scratch/autobahn}
out=${AUTOBAHN_OUT:-$root/build/conformance}
py=${AUTOBAHN_PYTHON:-/usr/bin/python3}
agent=${AUTOBAHN_AGENT:-tertulia}
cap=${AUTOBAHN_TIMEOUT:-2700}
stall=${AUTOBAHN_STALL:-600}
cases=${CASES:-*}
url=${AUTOBAHN_URL:-}

# The Debian packages the suite runs on (Debian 12: autobahn 22.7.1,
# twisted 22.4). Only this script installs them; `make test` does not need them.
install_suite_deps() {
    local pkgs=(python3 python3-autobahn python3-twisted python3-txaio
                python3-zope.interface python3-wsaccel python3-jinja2
                python3-openssl python3-service-identity)
    local missing=() p
    for p in "${pkgs[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' \
            || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "conformance: installing ${missing[*]}"
    local sudo_cmd=()
    [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
    export DEBIAN_FRONTEND=noninteractive
    "${sudo_cmd[@]}" apt-get update -qq &&
        "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

pkg_dir="$suite/autobahntestsuite"
if [ ! -f "$pkg_dir/autobahntestsuite/wstest.py" ] || [ ! -f "$pkg_dir/autobahntestsuite/fuzzing.py" ]; then
    cat >&2 <<EOF
conformance: the Autobahn|Testsuite is not prepared: looked for
  $pkg_dir/autobahntestsuite/wstest.py
(set AUTOBAHN_DIR to the folder of your clone). docs/CONFORMANCE.md, "How to
run", says how to prepare it; it is not part of \`make test\`.
EOF
    exit 2
fi

install_suite_deps || { echo "conformance: could not install the suite's Debian packages" >&2; exit 1; }
if ! "$py" -c 'import twisted, autobahn' 2>/dev/null; then
    echo "conformance: $py cannot import twisted and autobahn (set AUTOBAHN_PYTHON to Debian's python3)" >&2
    exit 1
fi

server_pid=
wstest_pid=
cleanup() {
    [ -n "$wstest_pid" ] && kill -KILL "$wstest_pid" 2>/dev/null
    if [ -n "$server_pid" ]; then
        kill -TERM "$server_pid" 2>/dev/null
        for _ in $(seq 1 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$server_pid" 2>/dev/null
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

rm -rf "$out"
mkdir -p "$out"

if [ -z "$url" ]; then
    make -C "$root" --no-print-directory build >"$out/build.log" 2>&1 ||
        { tail -n 30 "$out/build.log" >&2; echo "conformance: build failed ($out/build.log)" >&2; exit 1; }
    "$root/build/tertulia" --echo --max-message 16777216 --db :memory: \
        --listen 127.0.0.1:0 --log-level warn >"$out/server.log" 2>&1 &
    server_pid=$!
    port=
    for _ in $(seq 1 100); do  # up to 10 s for the listening line
        port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$out/server.log" | head -n 1)
        [ -n "$port" ] && break
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    if [ -z "$port" ]; then
        cat "$out/server.log" >&2
        echo "conformance: tertulia did not start ($out/server.log)" >&2
        exit 1
    fi
    url="ws://127.0.0.1:$port/echo"
    echo "conformance: tertulia $(git -C "$root" rev-parse --short HEAD 2>/dev/null) (pid $server_pid) on $url"
fi

cases_json=$("$py" -c 'import json, sys; print(json.dumps([c.strip() for c in sys.argv[1].split(",") if c.strip()]))' "$cases")
"$py" - "$out/spec.json" "$out/report" "$agent" "$url" "$cases_json" <<'EOF'
import json, sys
path, outdir, agent, url, cases = sys.argv[1:]
spec = {"outdir": outdir, "servers": [{"agent": agent, "url": url}],
        "cases": json.loads(cases), "exclude-cases": [], "exclude-agent-cases": {}}
with open(path, "w") as f:
    json.dump(spec, f, indent=2)
EOF

echo "conformance: wstest -m fuzzingclient, cases $cases_json, at most ${cap}s; log in $out/wstest.log"
start=$(date +%s)
(cd "$out" && exec env PYTHONPATH="$pkg_dir" "$py" -m autobahntestsuite.wstest \
    -m fuzzingclient -s "$out/spec.json") >"$out/wstest.log" 2>&1 &
wstest_pid=$!
timed_out=
last_size=-1
last_growth=$start
while kill -0 "$wstest_pid" 2>/dev/null; do
    now=$(date +%s)
    size=$(stat -c %s "$out/wstest.log" 2>/dev/null || echo 0)
    if [ "$size" != "$last_size" ]; then
        last_size=$size
        last_growth=$now
    fi
    [ $(( now - start )) -ge "$cap" ] && timed_out="did not finish within ${cap}s"
    [ $(( now - last_growth )) -ge "$stall" ] && timed_out="wrote nothing for ${stall}s"
    if [ -n "$timed_out" ]; then
        kill -TERM "$wstest_pid" 2>/dev/null
        for _ in $(seq 1 50); do kill -0 "$wstest_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$wstest_pid" 2>/dev/null
        break
    fi
    sleep 1
done
wait "$wstest_pid" 2>/dev/null
wstest_rc=$?
wstest_pid=
elapsed=$(( $(date +%s) - start ))
ran=$(grep -c '^Running test case ID' "$out/wstest.log")
echo "conformance: wstest ended after ${elapsed}s (exit status $wstest_rc), $ran cases past the opening handshake"

st=0
if [ -n "$timed_out" ]; then
    echo "conformance: wstest $timed_out and was killed; last lines of $out/wstest.log:" >&2
    tail -n 5 "$out/wstest.log" >&2
    st=1
fi
if [ -n "$server_pid" ] && ! kill -0 "$server_pid" 2>/dev/null; then
    echo "conformance: tertulia exited during the run; $out/server.log:" >&2
    tail -n 20 "$out/server.log" >&2
    server_pid=
    st=1
fi
if [ ! -f "$out/report/index.json" ]; then
    echo "conformance: no report ($out/report/index.json); last lines of $out/wstest.log:" >&2
    tail -n 15 "$out/wstest.log" >&2
    exit 1
fi
"$py" "$root/scripts/conformance-summary.py" --agent "$agent" \
    --markdown "$out/summary.md" "$out/report/index.json"
sum_st=$?
echo "conformance: report $out/report/index.html"
[ $sum_st -ne 0 ] && st=1
exit $st
