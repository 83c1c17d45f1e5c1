#!/usr/bin/env bash
# Checks the include graph of src/ against the layering of
# docs/ARCHITECTURE.md ("Dependencies"): each folder may include only the
# folders below it, so there is no cycle between folders, and the system
# headers of libuv, SQLite, http_parser, zlib and libargon2 stay in the one folder that owns
# each. Prints every violation as FILE:LINE: what, and exits 1 if any.
set -uo pipefail
cd "$(dirname "$0")/../src"

# folder -> the project folders it may include (besides itself).
declare -A allowed=(
    [core]=""
    [ws]="core"
    [http]="core"
    [chat]="core ws auth"
    [store]="core chat"
    [transport]="core"
    [auth]="core"
    [cluster]="core chat transport"
    [server]="core ws http chat store transport auth cluster"
    [.]="core chat store server"   # src/main.c
)
# system header -> the folders that may include it.
declare -A owners=(
    ["uv.h"]="transport"
    ["sqlite3.h"]="store"
    ["http_parser.h"]="http server"
    ["openssl/ssl.h"]="transport"
    ["zlib.h"]="ws"
    ["ini.h"]="server"
    ["argon2.h"]="auth"
    ["systemd/sd-daemon.h"]="server"
    ["hiredis/hiredis.h"]="cluster store"
    ["hiredis/async.h"]="cluster transport"
    ["hiredis/adapters/libuv.h"]="transport"
)

bad=0
while IFS= read -r file; do
    dir=$(dirname "$file")
    folder=${dir%%/*}
    [ "$dir" = "." ] && folder="."
    if [ -z "${allowed[$folder]+x}" ]; then
        echo "$file: folder '$folder' has no rule in scripts/check-includes.sh"
        bad=1
        continue
    fi
    while IFS=: read -r line inc; do
        target=$(sed -E 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"]([^>"]+)[>"].*/\1/' <<<"$inc")
        if [[ "$inc" == *'"'* ]]; then
            tfolder=${target%%/*}
            [ "$tfolder" = "$target" ] && continue # same-folder include without a path
            [ "$tfolder" = "$folder" ] && continue
            if [[ " ${allowed[$folder]} " != *" $tfolder "* ]]; then
                echo "$file:$line: $folder/ must not include $target"
                bad=1
            fi
        elif [ -n "${owners[$target]+x}" ]; then
            if [[ " ${owners[$target]} " != *" $folder "* ]]; then
                echo "$file:$line: <$target> belongs to ${owners[$target]}/ only"
                bad=1
            fi
        fi
    done < <(grep -nE '^[[:space:]]*#[[:space:]]*include' "$file")
done < <(find . -name '*.[ch]' | sed 's|^\./||' | sort)

if [ "$bad" -eq 0 ]; then
    echo "include graph: ok ($(find . -name '*.[ch]' | wc -l) files)"
fi
exit "$bad"
