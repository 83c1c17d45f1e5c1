#!/usr/bin/env bash
# Checks `make install` and what it installs, from the build in BUILD
# (default build/): PREFIX=/usr and PREFIX=/usr/local into temporary
# DESTDIRs, each file list exactly as expected; the installed binary runs;
# the installed default config passes --check-config; tertulia(8) formats
# without a single warning (man --warnings); the installed systemd unit
# passes systemd-analyze verify with no complaint, and a broken copy of it
# does not (so this check can fail). One line per check, "ok: ..." or
# "FAILED: ...", and exit 1 if any failed.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
build=${BUILD:-build}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
. "$root/scripts/checks.sh"

# make install PREFIX=$1 into $2; its file list (sorted, DESTDIR-relative).
install_into() {
    make --no-print-directory install BUILD="$build" PREFIX="$1" DESTDIR="$2" \
        >"$tmp/install-$(basename "$2").log" 2>&1 || return 1
    (cd "$2" && find . -type f -o -type l | sed 's|^\./|/|' | sort)
}

check_list() { # name, got, want
    if [ "$2" = "$3" ]; then
        ok "$1: installs exactly: $(echo $2)"
    else
        bad "$1: file list differs:"
        diff <(echo "$3") <(echo "$2") | sed 's/^/    /'
    fi
}

# --- PREFIX=/usr/local (the default): unit and config only as examples
d="$tmp/local"
got=$(install_into /usr/local "$d") || bad "make install PREFIX=/usr/local: $(tail -5 "$tmp/install-local.log")"
check_list "PREFIX=/usr/local" "$got" "/usr/local/bin/tertulia
/usr/local/share/doc/tertulia/examples/tertulia.conf
/usr/local/share/doc/tertulia/examples/tertulia.service
/usr/local/share/man/man8/tertulia.8"

# --- PREFIX=/usr (a distribution's layout)
d="$tmp/usr"
got=$(install_into /usr "$d") || bad "make install PREFIX=/usr: $(tail -5 "$tmp/install-usr.log")"
check_list "PREFIX=/usr" "$got" "/etc/tertulia/tertulia.conf
/lib/systemd/system/tertulia.service
/usr/bin/tertulia
/usr/share/man/man8/tertulia.8"
# Back to the default prefix, as the build directory was configured.
make --no-print-directory install BUILD="$build" PREFIX=/usr/local DESTDIR="$tmp/again" \
    >/dev/null 2>&1 || bad "make install back to PREFIX=/usr/local"

bin="$d/usr/bin/tertulia"
if out=$("$bin" --version 2>&1) && [[ "$out" == "tertulia "* ]]; then
    ok "the installed binary runs: $out"
else
    bad "the installed binary: $out"
fi

conf="$d/etc/tertulia/tertulia.conf"
if out=$(env -u TERTULIA_BIN "$bin" --config "$conf" --check-config 2>&1); then
    ok "the default config passes --check-config"
else
    bad "the default config: $out"
fi
# Every option of the table is in it (commented out with its default, or
# set), and the history is where the unit's StateDirectory= is.
missing=$("$bin" --help | sed -nE 's/^  --([a-z-]+).*/\1/p' | while read -r name; do
    case "$name" in config | check-config | print-config | genconfig | help | help-man | version) continue ;; esac
    grep -qE "^#? ?$name =" "$conf" || echo "$name"
done)
grep -qx 'db = /var/lib/tertulia/tertulia.db' "$conf" || missing="$missing db = /var/lib/tertulia/tertulia.db"
grep -qx 'admin-listen = 127.0.0.1:9091' "$conf" || missing="$missing admin-listen = 127.0.0.1:9091"
verdict "the default config names every option and sets db = /var/lib/tertulia/tertulia.db and admin-listen = 127.0.0.1:9091" \
    "the default config misses:" "$missing"

man8="$d/usr/share/man/man8/tertulia.8"
warn=$(MANROFFSEQ='' MANWIDTH=80 man --warnings -E UTF-8 -l "$man8" 2>&1 >/dev/null)
if [ -z "$warn" ] && [ -s "$man8" ]; then
    ok "tertulia(8) formats without warnings"
else
    bad "man --warnings on tertulia(8):"
    echo "$warn" | sed 's/^/    /'
fi
text=$(MANWIDTH=200 man -l "$man8" 2>/dev/null)
sections="NAME SYNOPSIS DESCRIPTION OPTIONS SIGNALS FILES EXIT STATUS SEE ALSO"
miss=""
for s in NAME SYNOPSIS DESCRIPTION OPTIONS SIGNALS FILES "EXIT STATUS" "SEE ALSO"; do
    grep -qx "$s" <<<"$text" || miss="$miss [$s]"
done
for name in $("$bin" --help | sed -nE 's/^  --([a-z-]+).*/\1/p'); do
    grep -qE "^ +--$name( |$)" <<<"$text" || miss="$miss --$name"
done
verdict "tertulia(8) has $sections and every option of --help" "tertulia(8) lacks:" "$miss"

# systemd-analyze verify needs ExecStart's binary to exist: a copy of the
# installed unit that runs the installed binary. Any complaint fails, not
# only errors (verify exits 0 on unknown keys and bad values). man finds
# the installed page for Documentation=.
verify() { # unit file -> its complaints
    MANPATH="$d/usr/share/man" systemd-analyze verify "$1" 2>&1
}
mkdir -p "$tmp/unit" "$tmp/broken"
sed "s|^ExecStart=/usr/bin/tertulia |ExecStart=$bin |" "$d/lib/systemd/system/tertulia.service" \
    >"$tmp/unit/tertulia.service"
if ! grep -q "^ExecStart=$bin " "$tmp/unit/tertulia.service"; then
    bad "the unit's ExecStart is not /usr/bin/tertulia --config ..."
elif out=$(verify "$tmp/unit/tertulia.service") && [ -z "$out" ]; then
    ok "systemd-analyze verify: the unit is clean"
else
    bad "systemd-analyze verify:"
    echo "$out" | sed 's/^/    /'
fi
for k in 'Type=notify' 'ExecStart=/usr/bin/tertulia --config /etc/tertulia/tertulia.conf' \
    'ExecReload=/bin/kill -HUP $MAINPID' 'WatchdogSec=10' 'Restart=on-failure' 'DynamicUser=yes' \
    'StateDirectory=tertulia' 'ProtectSystem=strict' 'NoNewPrivileges=yes' 'LimitNOFILE=65536'; do
    grep -qxF "$k" "$d/lib/systemd/system/tertulia.service" || bad "the unit lacks $k"
done
# The same check on units broken three ways must complain.
n=0
for breakage in 's/^WatchdogSec=10/WatchdogSec=ten/' 's/^Type=notify/Type=notifyy/' \
    "s|^ExecStart=$bin |ExecStart=$tmp/missing |"; do
    sed "$breakage" "$tmp/unit/tertulia.service" >"$tmp/broken/tertulia.service"
    out=$(verify "$tmp/broken/tertulia.service")
    [ -n "$out" ] && n=$((n + 1))
done
if [ "$n" -eq 3 ]; then
    ok "systemd-analyze verify complains about each of 3 broken units"
else
    bad "the unit check passed $((3 - n)) broken units"
fi
exit "$failed"
