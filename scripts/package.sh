#!/usr/bin/env bash
# make package: the Debian package of the tree (debian/, dpkg-buildpackage
# with debhelper's cmake build), built from a copy of the tree in
# build/package/ so nothing is written beside the sources; the .deb, its
# .changes and .buildinfo land there, and lintian checks them (any error or
# warning fails: the few accepted tags are overridden, with the reason, in
# debian/tertulia.lintian-overrides).
#   scripts/package.sh           build and lintian
#   scripts/package.sh --check   also inspect the .deb: one "ok: ..." or
#                                "FAILED: ..." line per check (scripts/test.sh)
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
check=false
[ "${1:-}" = "--check" ] && check=true
out=${PACKAGE_DIR:-$root/build/package}
. "$root/scripts/checks.sh"

version=$(dpkg-parsechangelog -l debian/changelog -S Version)
cmake_version=$(sed -nE 's/^project\(tertulia VERSION ([0-9.]+).*/\1/p' CMakeLists.txt)
if [ "$version" != "$cmake_version" ]; then
    bad "debian/changelog says $version, CMakeLists.txt $cmake_version"
    exit 1
fi
arch=$(dpkg --print-architecture)
deb="$out/tertulia_${version}_${arch}.deb"

# The tree as git sees it: tracked files and new ones it does not ignore.
rm -rf "$out"
src="$out/tertulia-$version"
mkdir -p "$src"
git ls-files -z --cached --others --exclude-standard |
    tar --null -T - --ignore-failed-read -cf - 2>/dev/null | tar -C "$src" -xf -

t0=$SECONDS
if (cd "$src" && dpkg-buildpackage -us -uc -b) >"$out/build.log" 2>&1 && [ -f "$deb" ]; then
    ok "dpkg-buildpackage -us -uc -b: $(basename "$deb") in $((SECONDS - t0)) s"
else
    bad "dpkg-buildpackage (log: $out/build.log):"
    tail -n 30 "$out/build.log" | sed 's/^/    /'
    exit 1
fi
rm -rf "$src"

lint=$(lintian --info --display-info --show-overrides "$out/tertulia_${version}_${arch}.changes" 2>&1)
lint_st=$?
complaints=$(grep -E '^[EW]: ' <<<"$lint")
if [ -z "$complaints" ] && [ "$lint_st" -ne 0 ]; then
    bad "lintian did not run (exit $lint_st):"
    echo "$lint" | tail -n 10 | sed 's/^/    /'
elif [ -z "$complaints" ]; then
    ok "lintian: no error, no warning ($(grep -cE '^[IO]: ' <<<"$lint") info and overridden lines)"
else
    bad "lintian:"
    echo "$complaints" | sed 's/^/    /'
fi
grep -E '^[IO]: ' <<<"$lint" | sed 's/^/    /'
$check || exit "$failed"

# What the package holds.
contents=$(dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\./|/|')
for f in /usr/bin/tertulia /usr/share/man/man8/tertulia.8.gz /lib/systemd/system/tertulia.service \
    /etc/tertulia/tertulia.conf /usr/share/doc/tertulia/copyright; do
    if grep -qxF "$f" <<<"$contents"; then ok "the package holds $f"; else bad "the package lacks $f"; fi
done
info=$(dpkg-deb -I "$deb")
depends=$(sed -nE 's/^ Depends: //p' <<<"$info")
miss=""
for lib in libuv1 libjansson4 libssl3 libsqlite3-0 libinih1 libsystemd0 zlib1g libhttp-parser2.9 libc6; do
    grep -qE "(^|, )$lib( |,|$)" <<<"$depends" || miss="$miss $lib"
done
verdict "Depends (from \${shlibs:Depends}): $depends" "Depends: $depends; lacks" "$miss"
if dpkg-deb --ctrl-tarfile "$deb" | tar -xOf - ./conffiles 2>/dev/null | grep -qx /etc/tertulia/tertulia.conf; then
    ok "/etc/tertulia/tertulia.conf is a conffile"
else
    bad "/etc/tertulia/tertulia.conf is not a conffile"
fi
if dpkg-deb --ctrl-tarfile "$deb" | tar -xOf - ./postinst 2>/dev/null | grep -q 'deb-systemd-helper.*tertulia.service'; then
    ok "postinst enables tertulia.service (dh_installsystemd)"
else
    bad "postinst does not enable tertulia.service"
fi
# The packaged binary and config work together.
x="$out/extract"
dpkg-deb -x "$deb" "$x"
if r=$(env -u TERTULIA_BIN "$x/usr/bin/tertulia" --config "$x/etc/tertulia/tertulia.conf" --check-config 2>&1); then
    ok "the packaged binary accepts the packaged config"
else
    bad "the packaged config: $r"
fi
rm -rf "$x"
# Build-Depends are the libraries scripts/deps.sh installs for building.
want=$(sed -n '/^pkgs=(/,/)/p' scripts/deps.sh | tr -d '()' | sed 's/pkgs=//' | tr ' ' '\n' |
    grep -vE '^(build-essential|)$' | sort)
got=$(sed -n '/^Build-Depends:/,/^[A-Z]/p' debian/control | sed 's/^Build-Depends://' | tr ',' '\n' |
    sed -E 's/^ +//; s/ .*//' | grep -vE '^(debhelper-compat|Standards-Version:.*|)$' | sort)
if [ "$want" = "$got" ]; then
    ok "debian/control's Build-Depends are scripts/deps.sh --run's packages"
else
    bad "Build-Depends and scripts/deps.sh --run differ:"
    diff <(echo "$want") <(echo "$got") | sed 's/^/    /'
fi
exit "$failed"
