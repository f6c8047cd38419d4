#!/bin/bash
# Command line: --help, --version, and the exit codes of the errors found
# before mounting (2 bad archive, 3 bad mountpoint, 4 unusable index).
. "${srcdir:-$(dirname "$0")/..}/tests/lib.sh"
setup

ARCH="$TMP/arch"
MNT="$TMP/mnt"
mkdir -p "$ARCH" "$MNT"

out=$(timeout 20 "$DICOMFS" --help 2>&1)
rc=$?
[ "$rc" -eq 0 ] && ok "--help exits 0" || fail "--help exits $rc, want 0"
printf '%s' "$out" | grep -q -e '-o index=' && ok "--help mentions -o index=" ||
	fail "--help does not mention '-o index=':$(printf '\n%s' "$out" | sed 's/^/    /')"

out=$(timeout 20 "$DICOMFS" --version 2>&1)
rc=$?
[ "$rc" -eq 0 ] && ok "--version exits 0" || fail "--version exits $rc, want 0"
vline=$(printf '%s\n' "$out" | grep -E 'dicomfs.*[0-9]+\.[0-9]+' | head -1)
[ -n "$vline" ] && ok "--version prints a version: $vline" ||
	fail "--version prints no 'dicomfs <version>' line: $out"

# expect_exit WANT DESCRIPTION ARGS...: dicomfs -f ARGS exits WANT with
# exactly one line on stderr, without mounting anything
expect_exit() {
	local want=$1 what=$2 rc n
	shift 2
	timeout 20 "$DICOMFS" -f "$@" >"$TMP/out" 2>"$TMP/err" </dev/null
	rc=$?
	if mountpoint -q "$MNT"; then
		fusermount3 -u "$MNT" || fusermount3 -u -z "$MNT"
		fail "$what: it mounted"
	fi
	if [ "$rc" -eq "$want" ]; then
		ok "$what: exit $rc"
	else
		fail "$what: exit $rc, want $want; stderr: $(cat "$TMP/err")"
	fi
	n=$(wc -l <"$TMP/err")
	if [ "$n" -eq 1 ] && [ -s "$TMP/err" ]; then
		ok "$what: one line on stderr: $(cat "$TMP/err")"
	else
		fail "$what: $n lines on stderr, want 1:"
		sed 's/^/    /' "$TMP/err"
	fi
}

expect_exit 2 "nonexistent archive" "$TMP/no-such-archive" "$MNT"
touch "$TMP/a-file"
expect_exit 2 "archive is a regular file" "$TMP/a-file" "$MNT"
expect_exit 3 "nonexistent mountpoint" "$ARCH" "$TMP/no-such-mountpoint"
expect_exit 4 "unwritable index directory" -o index=/proc/nonexistent "$ARCH" "$MNT"
exit 0
