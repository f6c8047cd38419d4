#!/bin/bash
# Two mounts of one archive with one index: the second mount cannot update
# the index the first one serves, so it builds a private one; neither
# corrupts the shared index, and both serve the same tree. Also: rsync -a
# of the tree twice transfers nothing the second time (stable sizes/mtimes);
# a mount right after an umount waits for the closing mount's lock and
# uses the shared index (index.h I5).
. "${srcdir:-$(dirname "$0")/..}/tests/lib.sh"
setup

ARCH="$TMP/arch"
IDX="$TMP/idx"
"$PY" "$GEN" "$ARCH" --expected "$TMP/expected" || fatal "gen_archive.py failed"

mount_start "$TMP/m1" "$ARCH" -o index="$IDX" || exit 1
PID1=$MOUNT_PID LOG1=$MOUNT_LOG
[ "$(status_get "$TMP/m1" private_index)" = False ] && ok "first mount uses the shared index" ||
	fail "first mount: private_index = $(status_get "$TMP/m1" private_index)"
# change the archive so that the second mount must update the index
touch -d '2001-01-01' "$ARCH/PATIENT1/STUDY1/SERIES1/IM000001" 2>/dev/null ||
	touch -d '2001-01-01' "$(find "$ARCH" -type f -name 'IM*' | head -1)"
M1=$MOUNTED
MOUNTED=
mount_start "$TMP/m2" "$ARCH" -o index="$IDX" || exit 1
PID2=$MOUNT_PID LOG2=$MOUNT_LOG
[ "$(status_get "$TMP/m2" private_index)" = True ] && ok "second mount built a private index" ||
	fail "second mount: private_index = $(status_get "$TMP/m2" private_index)"
grep -q "in use by another mount" "$LOG2" && ok "and said so" || fail "no log line about the private index"
if diff <(list_tree "$TMP/m1/patients") <(list_tree "$TMP/m2/patients") >/dev/null; then
	ok "both mounts serve the same tree"
else
	fail "the two mounts differ"
fi
# rsync from the up-to-date mount: the second run has nothing to transfer
rsync -a "$TMP/m2/patients/" "$TMP/backup/" || fail "rsync -a failed"
n=$(rsync -a -i "$TMP/m2/patients/" "$TMP/backup/" | wc -l)
[ "$n" = 0 ] && ok "a second rsync -a transfers nothing" || fail "second rsync -a lists $n changes"
diff -r "$TMP/m2/patients" "$TMP/backup" >/dev/null && ok "backup equals the mount" || fail "backup differs"
mount_stop
MOUNTED=$M1 MOUNT_PID=$PID1 MOUNT_LOG=$LOG1
mount_stop
# the shared index is intact, and up to date: the first mount re-indexed
# the touched file while mounted (index.h I9), so a remount parses none
mount_start "$TMP/m1" "$ARCH" -o index="$IDX" || exit 1
[ "$(status_get "$TMP/m1" files_parsed)" = 0 ] && ok "shared index intact and current (nothing re-parsed)" ||
	fail "files_parsed after remount = $(status_get "$TMP/m1" files_parsed), want 0 (the first mount re-indexed the touched file)"
mount_stop
# index.h I5: umount, then mount at once: the old mount is still closing
# (DICOMFS_CLOSE_DELAY_MS=2000: a slow last sync) and holds the lock, but
# serves no more; the new mount waits for it instead of indexing anew
DICOMFS_CLOSE_DELAY_MS=2000 mount_start "$TMP/m1" "$ARCH" -o index="$IDX" || exit 1
OLD=$MOUNT_PID
fusermount3 -u "$TMP/m1" || fail "umount"
kill -0 "$OLD" 2>/dev/null || fail "the old mount is gone already (the test needs it closing)"
mount_start "$TMP/m1" "$ARCH" -o index="$IDX" || exit 1
[ "$(status_get "$TMP/m1" private_index)" = False ] &&
	[ "$(status_get "$TMP/m1" files_parsed)" = 0 ] && grep -q "waiting up to" "$MOUNT_LOG" &&
	ok "mounted again while the last mount closes: it waited and uses the shared index" ||
	fail "mount after umount: private_index $(status_get "$TMP/m1" private_index), parsed $(status_get "$TMP/m1" files_parsed)"
kill -0 "$OLD" 2>/dev/null && fail "the old mount still runs"
mount_stop
exit 0
