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

# libcurl is not linked: loaded for a DICOMweb archive only (index/curl_load.h)
if ldd "$DICOMFS" | grep -q libcurl; then
	fail "dicomfs links libcurl: $(ldd "$DICOMFS" | grep libcurl)"
else
	ok "dicomfs does not link libcurl"
fi
# without libcurl.so.4 (here: /dev/null bound over it in a private mount
# namespace), a URL archive fails with one line naming it
LIBCURL=$(ldconfig -p 2>/dev/null | awk '$1 == "libcurl.so.4" { print $NF; exit }')
if [ "$(id -u)" -eq 0 ] && [ -n "$LIBCURL" ] && command -v unshare >/dev/null &&
   unshare -m --propagation private true 2>/dev/null; then
	timeout 20 unshare -m --propagation private sh -c \
		'mount --bind /dev/null "$1" && shift && exec "$@"' sh "$LIBCURL" \
		"$DICOMFS" -f -o index="$TMP/idx-web" http://127.0.0.1:9/dicom-web "$MNT" \
		>"$TMP/out" 2>"$TMP/err" </dev/null
	rc=$?
	n=$(wc -l <"$TMP/err")
	if [ "$rc" -eq 2 ] && [ "$n" -eq 1 ] && grep -q "cannot load libcurl.so.4" "$TMP/err"; then
		ok "no libcurl.so.4: a URL archive exits 2: $(cat "$TMP/err")"
	else
		fail "no libcurl.so.4: exit $rc, want 2 with one line naming libcurl.so.4; stderr:"
		sed 's/^/    /' "$TMP/err"
	fi
else
	log "not checked: a URL archive without libcurl.so.4 (needs root and unshare -m)"
fi
touch "$TMP/a-file"
expect_exit 2 "archive is a regular file" "$TMP/a-file" "$MNT"
expect_exit 3 "nonexistent mountpoint" "$ARCH" "$TMP/no-such-mountpoint"
expect_exit 1 "bad -o cpu_latency" -o cpu_latency=soon "$ARCH" "$MNT"
expect_exit 1 "-o cpu_latency out of range" -o cpu_latency=-1 "$ARCH" "$MNT"
expect_exit 4 "unwritable index directory" -o index=/proc/nonexistent "$ARCH" "$MNT"
# The index directory (store.h S1): never one another user owns or can write
mkdir "$TMP/idx-foreign" "$TMP/idx-gw"
chown 65534:65534 "$TMP/idx-foreign"
chmod 0770 "$TMP/idx-gw"
expect_exit 4 "index directory owned by another uid" -o index="$TMP/idx-foreign" "$ARCH" "$MNT"
grep -q "is owned by uid 65534" "$TMP/err" && ok "the line names the owner" ||
	fail "no 'is owned by uid 65534' in: $(cat "$TMP/err")"
expect_exit 4 "group-writable index directory" -o index="$TMP/idx-gw" "$ARCH" "$MNT"
grep -q "writable by group or others" "$TMP/err" && ok "the line names the mode" ||
	fail "no 'writable by group or others' in: $(cat "$TMP/err")"
[ -z "$(find "$TMP/idx-foreign" "$TMP/idx-gw" -mindepth 1)" ] && ok "nothing written into refused directories" ||
	fail "files in refused index directories: $(find "$TMP/idx-foreign" "$TMP/idx-gw" -mindepth 1)"
# the default place: a <cache>/dicomfs made first by another user
mkdir -p "$XDG_CACHE_HOME/dicomfs"
chown 65534:65534 "$XDG_CACHE_HOME/dicomfs"
expect_exit 4 "default index under a foreign <cache>/dicomfs" "$ARCH" "$MNT"
grep -q "$XDG_CACHE_HOME/dicomfs' is owned by uid 65534" "$TMP/err" &&
	ok "the line names the cache directory" || fail "wrong line: $(cat "$TMP/err")"
rm -rf "$XDG_CACHE_HOME"
# HOME and XDG_CACHE_HOME unset, not root: the passwd home directory
# (nobody's is /nonexistent), never /tmp/.cache
had=$( [ -e /tmp/.cache/dicomfs ] && echo 1)
chmod 0755 "$TMP" "$ARCH" "$MNT"
env -u HOME -u XDG_CACHE_HOME setpriv --reuid=65534 --regid=65534 --clear-groups \
	timeout 20 "$DICOMFS" -f "$ARCH" "$MNT" >"$TMP/out" 2>"$TMP/err" </dev/null
rc=$?
chmod 0700 "$TMP"
if mountpoint -q "$MNT"; then
	fusermount3 -u "$MNT" || fusermount3 -u -z "$MNT"
	fail "HOME unset: it mounted"
fi
[ "$rc" -eq 4 ] && [ "$(wc -l <"$TMP/err")" -eq 1 ] && ok "HOME unset as nobody: exit 4, one line: $(cat "$TMP/err")" ||
	fail "HOME unset as nobody: exit $rc, stderr: $(cat "$TMP/err")"
grep -q -e "-o index=" "$TMP/err" && ok "HOME unset: the line asks for -o index=" ||
	fail "HOME unset: no '-o index=' in the line"
grep -q "/tmp/" "$TMP/err" && fail "HOME unset: the line names /tmp: $(cat "$TMP/err")"
[ -n "$had" ] || [ ! -e /tmp/.cache/dicomfs ] && ok "HOME unset: no /tmp/.cache/dicomfs" ||
	fail "HOME unset: /tmp/.cache/dicomfs was made"
exit 0
