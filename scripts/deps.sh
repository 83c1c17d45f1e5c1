#!/usr/bin/env bash
# Installs what tertulia needs on Debian 12, by package name. Idempotent:
# packages already present are skipped, so a second run is quick.
#   scripts/deps.sh [--run]    building and running the server (make run)
#   scripts/deps.sh --test     also the test tools: cmocka, clang for the
#                              fuzzers, Chromium, Node.js and the npm packages
#                              (make test)
#   scripts/deps.sh --bench    the test tools and the benchmark peers and tools
set -euo pipefail

mode=${1:---run}
case "$mode" in
--run | --test | --bench) ;;
*)
    echo "usage: scripts/deps.sh [--run|--test|--bench]" >&2
    exit 2
    ;;
esac

pkgs=(build-essential cmake pkg-config
      libuv1-dev libhttp-parser-dev libjansson-dev libssl-dev zlib1g-dev
      libsqlite3-dev libinih-dev libargon2-dev libsystemd-dev libhiredis-dev)
if [ "$mode" != "--run" ]; then
    pkgs+=(sqlite3 libcmocka-dev clang libclang-rt-14-dev chromium fonts-dejavu-core)
    # The notification test's datagram socket (python3); the man page, unit
    # file and Debian package checks (man-db, systemd's systemd-analyze,
    # debhelper, devscripts, lintian).
    pkgs+=(python3 man-db systemd debhelper devscripts lintian)
    # promtool (in Debian's prometheus package) checks the /metrics text.
    # redis-server: the cluster tests start their own on a free loopback port.
    pkgs+=(redis-server)
    pkgs+=(prometheus)
    # Node.js and npm: the machine's own if present (npm ships inside some
    # nodejs builds, which conflict with Debian's separate npm package).
    command -v node >/dev/null 2>&1 || pkgs+=(nodejs)
    command -v npm >/dev/null 2>&1 || pkgs+=(npm)
fi
if [ "$mode" = "--bench" ]; then
    pkgs+=(python3-tornado libwebsockets-dev gnuplot-nox linux-perf valgrind)
    # The optional uWebSockets peer (bench/peers/build_uws.sh; its sources are fetched apart).
    pkgs+=(g++ nlohmann-json3-dev)
fi

missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' \
        || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "deps: installing ${missing[*]}"
    sudo_cmd=()
    [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
    export DEBIAN_FRONTEND=noninteractive
    "${sudo_cmd[@]}" apt-get update -qq
    "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# JavaScript test tooling (ws, playwright-core) from the committed lockfile.
[ "$mode" = "--run" ] && exit 0
root=$(cd "$(dirname "$0")/.." && pwd)
if [ -f "$root/package-lock.json" ]; then
    if [ ! -d "$root/node_modules" ] || [ "$root/package-lock.json" -nt "$root/node_modules/.package-lock.json" ]; then
        (cd "$root" && npm ci --no-audit --no-fund --loglevel=error)
    fi
fi
