#!/usr/bin/env bash
# bench/peers/build_uws.sh — builds bench/peers/uws_peer.cpp on uWebSockets and uSockets into a
# scratch folder outside the checkout; bench/run.sh then runs it beside tertulia (issue 15).
#   bench/peers/build_uws.sh [UWS_SRC [USOCKETS_SRC]]
# UWS_SRC and USOCKETS_SRC (arguments or environment) are uWebSockets' and uSockets' sources
# fetched beforehand: each a bare git directory (a mirror; HEAD is taken, and for uSockets the
# commit uWebSockets pins as its submodule when the mirror has it) or a plain source tree.
# Nothing is downloaded here, and nothing of theirs enters the repository.
# UWS_BUILD_DIR (default /tmp/tertulia-uws) is the scratch folder; the last line printed is
# the binary's path, UWS_BUILD_DIR/uws_peer, which bench/run.sh looks for (or UWS_PEER=path).
# Flags are upstream's defaults without TLS or zlib: uSockets -O3 -flto -DLIBUS_NO_SSL (its
# Makefile), uWebSockets -O3 -flto -march=native -std=c++2b -DUWS_NO_ZLIB (its build.c).
# Needs g++ and nlohmann-json3-dev (scripts/deps.sh --bench).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
uws_src=${1:-${UWS_SRC:-}}
us_src=${2:-${USOCKETS_SRC:-}}
out=${UWS_BUILD_DIR:-/tmp/tertulia-uws}
say() { echo "[build_uws] $*" >&2; }
if [ -z "$uws_src" ] || [ -z "$us_src" ]; then
    say "usage: bench/peers/build_uws.sh UWS_SRC USOCKETS_SRC (or set UWS_SRC, USOCKETS_SRC)"
    exit 2
fi
case $out in "$root" | "$root"/*)
    case $out in "$root"/build*) ;; *) say "UWS_BUILD_DIR must be outside the checkout (or under build*/)"; exit 2 ;; esac
esac
[ -f /usr/include/nlohmann/json.hpp ] || { say "missing nlohmann/json.hpp (nlohmann-json3-dev)"; exit 1; }

# Copies a source (bare git directory or tree) to $2; a git one at commit $3 if given and present.
unpack() {
    local src=$1 dst=$2 want=${3:-} rev=HEAD
    rm -rf "$dst"
    mkdir -p "$dst"
    if git --git-dir="$src" rev-parse -q --verify HEAD >/dev/null 2>&1; then
        if [ -n "$want" ]; then
            if git --git-dir="$src" cat-file -e "$want^{commit}" 2>/dev/null; then rev=$want
            else say "$src has no commit $want (uWebSockets' pinned uSockets); taking its HEAD"; fi
        fi
        git --git-dir="$src" archive "$rev" | tar -x -C "$dst"
        say "$(basename "$(dirname "$src")") at $(git --git-dir="$src" rev-parse --short "$rev")"
    elif [ -d "$src/src" ]; then
        cp -a "$src/." "$dst/"
        say "$src (a source tree)"
    else
        say "$src is neither a git directory nor a source tree"
        exit 1
    fi
}

mkdir -p "$out"
unpack "$uws_src" "$out/uWebSockets"
pin=
if git --git-dir="$uws_src" rev-parse -q --verify HEAD >/dev/null 2>&1; then
    pin=$(git --git-dir="$uws_src" ls-tree HEAD uSockets | awk '$2 == "commit" { print $3 }')
fi
unpack "$us_src" "$out/uSockets" "$pin"

obj=$out/obj
rm -rf "$obj"
mkdir -p "$obj"
(cd "$obj" && ${CC:-gcc} -O3 -flto -DLIBUS_NO_SSL -std=c11 -I"$out/uSockets/src" \
    -c "$out"/uSockets/src/*.c "$out"/uSockets/src/eventing/*.c "$out"/uSockets/src/crypto/*.c)
${CXX:-g++} -O3 -flto=auto -march=native -std=c++2b -DLIBUS_NO_SSL -DUWS_NO_ZLIB \
    -I"$out/uWebSockets/src" -I"$out/uSockets/src" \
    "$root/bench/peers/uws_peer.cpp" "$obj"/*.o -pthread -o "$out/uws_peer.new"
mv "$out/uws_peer.new" "$out/uws_peer"
echo "$out/uws_peer"
