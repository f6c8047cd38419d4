#!/bin/bash
# The persistent index (-o index=DIR): an unchanged remount parses nothing
# and keeps names and inode numbers; added, modified and deleted source
# files are picked up on remount; a source deleted while mounted gives an
# error on read without harming the rest; a corrupt index is rebuilt.
#
# Assumes status.json has "files_parsed": the number of files parsed by
# this mount's scan.
. "${srcdir:-$(dirname "$0")/..}/tests/lib.sh"
setup

ARCH="$TMP/arch"
MNT="$TMP/mnt"
EXP="$TMP/expected"
IDX="$TMP/idx"
mkdir -p "$IDX"

S1="DOE JOHN (PID001)/2020-01-15 CT Chest (ACC001)"
ADDED_SRC="PATIENT1/STUDY1/SERIES7/IM000001"
ADDED="$S1/0007 CT Added/1.dcm"
MODIFIED_SRC="PATIENT1/STUDY1/SERIES1/IM000010"
MODIFIED="$S1/0001 CT Axial/10.dcm"
DELETED_SRC="PATIENT1/STUDY1/SERIES1/IM000012"
DELETED="$S1/0001 CT Axial/12.dcm"
GONE_SRC="PATIENT1/STUDY1/SERIES1/IM000011"      # deleted while mounted
GONE="$S1/0001 CT Axial/11.dcm"

log "generating the messy archive"
"$PY" "$GEN" "$ARCH" --expected "$EXP" || fatal "gen_archive.py failed"

# inodes MOUNTPOINT OUT: "inode path" of everything under patients/
inodes() {
	(cd "$1" && find patients -noleaf -print0 | xargs -0 stat -c '%i %n') | sort -k2 >"$2"
}
# files_parsed MOUNTPOINT WANT [cmp]: check status.json's files_parsed
check_parsed() {
	local got
	got=$(status_get "$1" files_parsed)
	case "${3:-eq}" in
	eq) [ "$got" = "$2" ] && ok "files_parsed = $got" || fail "files_parsed = '$got', want $2" ;;
	ge) [ -n "$got" ] && [ "$got" -ge "$2" ] 2>/dev/null && ok "files_parsed = $got (>= $2)" ||
		fail "files_parsed = '$got', want >= $2" ;;
	esac
}

# --- first mount: builds the index ------------------------------------------
mount_start "$MNT" "$ARCH" -o index="$IDX" || exit 1
check_listing "$MNT" "$EXP"
inodes "$MNT" "$TMP/inodes.1"
ip=$(status_get "$MNT" index_path)
if "$PY" -c 'import os,sys; a,b=map(os.path.realpath,sys.argv[1:]); sys.exit(not (a==b or a.startswith(b+"/")))' "$ip" "$IDX"; then
	ok "status.json index_path '$ip' is in the index directory"
else
	fail "status.json index_path is '$ip', want (a file in) $IDX"
fi
mount_stop
[ -n "$(ls -A "$IDX")" ] || fail "the index directory $IDX is empty after a mount"

# --- unchanged remount ----------------------------------------------------------
log "remount, archive unchanged"
mount_start "$MNT" "$ARCH" -o index="$IDX" || exit 1
inodes "$MNT" "$TMP/inodes.2"
if diff -u "$TMP/inodes.1" "$TMP/inodes.2" >"$TMP/inodes.diff"; then
	ok "same names and inode numbers for all $(wc -l <"$TMP/inodes.1") entries"
else
	fail "names or inode numbers changed on an unchanged remount:"
	head -40 "$TMP/inodes.diff" | sed 's/^/    /'
fi
check_parsed "$MNT" 0
check_sources "$MNT" "$ARCH" "$EXP.sources"
mount_stop

# --- add, modify, delete ------------------------------------------------------------
log "adding $ADDED_SRC (new series), rewriting $MODIFIED_SRC, deleting $DELETED_SRC"
"$PY" - "$ARCH" "$ADDED_SRC" "$MODIFIED_SRC" <<'EOF' || fatal "could not change the archive"
import os, sys, pydicom
arch, added, modified = sys.argv[1:]
root = "2.25.31415926"
ds = pydicom.dcmread(os.path.join(arch, "PATIENT1/STUDY1/SERIES1/IM000009"))
ds.SeriesInstanceUID = root + ".1.1.7"
ds.SeriesNumber = 7
ds.SeriesDescription = "Added"
ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = root + ".1.1.7.1"
ds.InstanceNumber = 1
p = os.path.join(arch, added)
os.makedirs(os.path.dirname(p))
ds.save_as(p, write_like_original=False)
os.utime(p, (1650000000, 1650000000))
p = os.path.join(arch, modified)
st = os.stat(p)
ds = pydicom.dcmread(p)
ds.ImageComments = "modified by mount_remount.sh"
ds.PixelData = bytes(255 - b for b in ds.PixelData)
ds.save_as(p, write_like_original=False)
assert os.stat(p).st_size != st.st_size
os.utime(p, (st.st_mtime + 86400, st.st_mtime + 86400))
EOF
rm -f "$ARCH/$DELETED_SRC"
{
	grep -vxF -e "$DELETED" "$EXP"
	printf '%s\n' "$S1/0007 CT Added/" "$ADDED"
} | sort >"$TMP/expected.2"
{
	grep -vF -e "$DELETED	" "$EXP.sources"
	printf '%s\t%s\n' "$ADDED" "$ADDED_SRC"
} >"$TMP/expected.2.sources"

mount_start "$MNT" "$ARCH" -o index="$IDX" || exit 1

# A source file deleted while mounted: reading it fails (EIO or ENOENT),
# everything else still reads.  Done first, before anything reads that file
# in this mount (so that no page cache can serve it).
log "deleting $GONE_SRC while mounted"
[ -f "$MNT/patients/$GONE" ] || fail "patients/$GONE is missing before the source is deleted"
rm -f "$ARCH/$GONE_SRC"
out=$(cat "$MNT/patients/$GONE" 2>&1 >/dev/null)
rc=$?
if [ "$rc" -eq 0 ]; then
	fail "reading patients/$GONE after deleting its source succeeded"
elif printf '%s' "$out" | grep -q -e 'Input/output error' -e 'No such file or directory'; then
	ok "reading a file whose source was deleted fails: $out"
else
	fail "reading a file whose source was deleted fails with an unexpected error: $out"
fi
grep -vF -e "$GONE	" "$TMP/expected.2.sources" >"$TMP/expected.3.sources"
check_sources "$MNT" "$ARCH" "$TMP/expected.3.sources"
daemon_alive || fail "dicomfs died"

# the watch takes the deleted file out of the tree (index.h I9), within
# seconds; status.json's files_parsed stays the mount's update's
grep -vxF -e "$GONE" "$TMP/expected.2" >"$TMP/expected.3"
for i in $(seq 200); do
	list_tree "$MNT/patients" | cmp -s - "$TMP/expected.3" && break
	sleep 0.1
done
check_listing "$MNT" "$TMP/expected.3"
check_parsed "$MNT" 2
inodes "$MNT" "$TMP/inodes.3"
# unchanged instances keep their inode numbers
"$PY" - "$TMP/inodes.1" "$TMP/inodes.3" "patients/$MODIFIED" <<'EOF' && ok "unchanged instances kept their inode numbers" || fail "inode numbers of unchanged instances changed (above)"
import sys
def load(p):
    d = {}
    for l in open(p, encoding="utf-8", errors="surrogateescape"):
        ino, name = l.rstrip("\n").split(" ", 1)
        d[name] = ino
    return d
a, b = load(sys.argv[1]), load(sys.argv[2])
bad = [n for n in a if n.endswith(".dcm") and n in b and n != sys.argv[3] and a[n] != b[n]]
for n in bad[:20]:
    print("    %s: inode %s -> %s" % (n, a[n], b[n]))
sys.exit(1 if bad else 0)
EOF
mount_stop

# --- corrupt index ----------------------------------------------------------------
if [ -f "$IDX/data.mdb" ]; then
	log "overwriting $IDX/data.mdb with garbage"
	size=$(stat -c %s "$IDX/data.mdb")
	"$PY" -c 'import sys, random; r = random.Random(7); sys.stdout.buffer.write(bytes(r.getrandbits(8) for _ in range(int(sys.argv[1]))))' \
		"$size" >"$TMP/garbage"
	cp "$TMP/garbage" "$IDX/data.mdb"
	mount_start "$MNT" "$ARCH" -o index="$IDX" -o scan_threads=1 || exit 1
	check_listing "$MNT" "$TMP/expected.3"
	check_sources "$MNT" "$ARCH" "$TMP/expected.3.sources"
	check_parsed "$MNT" "$(grep -c '\.dcm$' "$TMP/expected.3")" ge
	mount_stop

	log "index truncated to 0 bytes"
	: >"$IDX/data.mdb"
	mount_start "$MNT" "$ARCH" -o index="$IDX" || exit 1
	check_listing "$MNT" "$TMP/expected.3"
	mount_stop
else
	fail "no data.mdb in the index directory; it holds: $(ls -A "$IDX" | tr '\n' ' ')"
fi

# --- commits not yet on disk (index.h I12) ---------------------------------------
# The mount's update is synced by the live thread once the mount answers: its
# "unsynced" marker then goes. A marker left by a writer of this boot (a
# killed mount: the page cache has its commits) costs nothing; one of
# another boot (the machine stopped before the commits reached the disk)
# has the index rebuilt.
N3=$(grep -c '\.dcm$' "$TMP/expected.3")
rm -rf "$IDX"
mount_start "$MNT" "$ARCH" -o index="$IDX" || exit 1
for i in $(seq 100); do [ -e "$IDX/unsynced" ] || break; sleep 0.1; done
[ ! -e "$IDX/unsynced" ] && ok "I12: the first build's marker is gone once synced" ||
	fail "I12: $IDX/unsynced still there 10 s after the mount"
mount_stop
tr -d '\n' </proc/sys/kernel/random/boot_id >"$IDX/unsynced"
mount_start "$MNT" "$ARCH" -o index="$IDX" || exit 1
check_parsed "$MNT" 0 eq
[ ! -e "$IDX/unsynced" ] && ok "I12: a marker of this boot: synced, nothing rebuilt" ||
	fail "I12: the marker of this boot stayed"
mount_stop
echo "00000000-0000-0000-0000-000000000000" >"$IDX/unsynced"
mount_start "$MNT" "$ARCH" -o index="$IDX" || exit 1
check_parsed "$MNT" "$N3" ge
check_listing "$MNT" "$TMP/expected.3"
grep -q "was being written when the machine stopped" "$MOUNT_LOG" &&
	ok "I12: a marker of another boot: the index was rebuilt, and the log says why" ||
	fail "I12: no rebuild line in the log"
mount_stop
exit 0
