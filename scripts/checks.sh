# Sourced by the check scripts (check-install.sh, package.sh): one line per
# check, "ok: ..." or "FAILED: ..." (scripts/test.sh counts them), and
# $failed set once any failed.
failed=0
ok() { echo "ok: $*"; }
bad() {
    echo "FAILED: $*"
    failed=1
}
# ok with $1 when $3 (what is missing) is empty, else FAILED with $2$3.
verdict() {
    if [ -z "$3" ]; then ok "$1"; else bad "$2$3"; fi
}
