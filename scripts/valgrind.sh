#!/usr/bin/env bash
# Runs the integration suite against the server under Valgrind memcheck and
# fails on any error or leak it reports. Slow (every server runs 20-50x
# slower), so it is `make valgrind`, not part of `make test`.
#   scripts/valgrind.sh [node --test file filters...]
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/deps.sh --test >/dev/null
command -v valgrind >/dev/null || apt-get install -y -qq valgrind
bdir="$root/build-valgrind"
cmake -S . -B "$bdir" -DCMAKE_BUILD_TYPE=Debug -DTT_BENCH=OFF >/dev/null &&
    cmake --build "$bdir" -j"$(nproc)" --target tertulia >/dev/null || exit 1
logs="$bdir/vg-logs"
rm -rf "$logs"
mkdir -p "$logs"
wrapper="$bdir/tertulia-vg"
cat >"$wrapper" <<WRAP
#!/bin/sh
exec valgrind --tool=memcheck --leak-check=full --show-leak-kinds=definite,indirect,possible \
  --errors-for-leak-kinds=definite,indirect,possible --error-exitcode=99 \
  --log-file="$logs/vg.%p.log" "$bdir/tertulia" "\$@"
WRAP
chmod +x "$wrapper"
files=("$@")
[ ${#files[@]} -eq 0 ] && files=(tests/integration/)
TERTULIA_BIN="$wrapper" TT_SLOW=1 node --test --test-concurrency=1 "${files[@]}"
st=$?
bad=0
killed=0
for f in "$logs"/*.log; do
    [ -e "$f" ] || continue
    # A server the crash tests end with kill -9 never writes a summary:
    # nothing can be checked there unless valgrind already reported errors.
    if ! grep -q 'ERROR SUMMARY' "$f" && ! grep -qE 'Invalid|uninitialised|Mismatched|lost in' "$f"; then
        killed=$((killed + 1))
        continue
    fi
    if ! grep -q 'ERROR SUMMARY: 0 errors' "$f"; then
        echo "valgrind: errors in $f"
        grep -E 'ERROR SUMMARY|definitely lost|indirectly lost|possibly lost|Invalid|uninitialised' "$f" | head -n 20
        bad=$((bad + 1))
    fi
done
n=$(ls "$logs" | wc -l)
echo "valgrind: $((n - killed)) server runs checked, $bad with errors or leaks ($killed ended by kill -9, not checkable)"
[ $st -eq 0 ] && [ $bad -eq 0 ]
