#!/bin/bash
# A corpus of >= 1000 mutated files (tests/gen_mutants.py: bit flips,
# truncations, huge length fields, zeroed lengths, emptied values, extreme
# pixel attributes, nested-sequence / item / element / fragment bombs) made
# from Debian's pydicom test files and the generated archive. The mount
# comes up in bounded time, every entry of the tree can be stat'ed and its
# xattrs read, every file reads whole or fails with EIO (no other error, no
# hang), and the mount still answers at the end.
. "${srcdir:-$(dirname "$0")/..}/tests/lib.sh"
setup

PYD=/usr/lib/python3/dist-packages/pydicom/data/test_files
[ -d "$PYD" ] || fatal "python3-pydicom test data missing"
"$PY" "$GEN" "$TMP/src" >/dev/null || fatal "gen_archive.py failed"
ARCH="$TMP/arch"
MNT="$TMP/mnt"
n=$("$PY" "$srcdir/tests/gen_mutants.py" "$ARCH" "$PYD" "$TMP/src" --per 3 2>/dev/null) ||
	fatal "gen_mutants.py failed"
[ "$n" -ge 1000 ] && ok "$n mutated files" || fail "only $n mutated files"

t0=$(date +%s.%N)
mount_start "$MNT" "$ARCH" -o index="$TMP/idx" || exit 1
t1=$(date +%s.%N)
log "indexed in $(echo "$t1 - $t0" | bc) s: $(status_get "$MNT" instances) instances, $(status_get "$MNT" errors) errors, $(status_get "$MNT" skipped) skipped"
if timeout 120 "$PY" "$srcdir/tests/readall.py" "$MNT" --threads 8 >"$TMP/readall.out" 2>&1; then
	ok "every entry stat'ed, xattrs read, every file read or EIO: $(tail -1 "$TMP/readall.out")"
else
	fail "unexpected errors (or timeout) reading the tree:"
	sed 's/^/    /' "$TMP/readall.out" | head -40
fi
log "read in $(echo "$(date +%s.%N) - $t1" | bc) s"
daemon_alive && ok "the daemon survived" || fatal "the daemon died"
if timeout 10 stat "$MNT/.dicomfs/status.json" >/dev/null &&
   timeout 10 ls "$MNT/patients" >/dev/null; then
	ok "the mount still answers"
else
	fail "the mount does not answer"
fi
grep -E 'AddressSanitizer|runtime error|LeakSanitizer' "$MOUNT_LOG" && fail "sanitizer report in the daemon log"
mount_stop
exit 0
