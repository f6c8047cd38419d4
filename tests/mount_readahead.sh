#!/bin/bash
# Read-ahead across files (fs/readahead.c RA1-RA5) on a real mount:
# - a first read of every .dcm of a series in listing order sends fewer
#   READ requests than there are files (the rest were pushed into the page
#   cache), and every file has its source's bytes (cmp); the same for the
#   files of a folder of sources/;
# - -o no_read_ahead: one READ per file, nothing pushed;
# - a reader of every 8th file (random to read-ahead) costs at most
#   RA_FIRST (4) pushes per read;
# - a source changed after the mount is never pushed: its read fails with
#   EIO and an errors.tsv line (R2), the files around it read fine.
# Counts come from status.json ("requests": read, read_ahead_files); the
# page cache is dropped between passes (a fresh mount each).
. "${srcdir:-$(dirname "$0")/..}/tests/lib.sh"
setup

ARCH="$TMP/arch"
MNT="$TMP/mnt"
export DICOMFS_NO_WATCH=1   # a changed source stays changed (R2)
"$PY" "$srcdir/tests/gen_live.py" "$ARCH/s" --patient 3001 --count 96 --prefix ra >/dev/null ||
	fatal "gen_live.py failed"
N=96

req() {   # req KEY: status.json's requests.KEY
	"$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["requests"][sys.argv[2]])' \
		"$MNT/.dicomfs/status.json" "$1"
}
drop() { sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || :; }
series() { find "$MNT/patients" -name '*.dcm' | sort; }

# --- a reader of the whole series -------------------------------------------
drop
mount_start "$MNT" "$ARCH" -o index="$TMP/idx" -o quiet || exit 1
series >"$TMP/list"
[ "$(wc -l <"$TMP/list")" = $N ] || fatal "$(wc -l <"$TMP/list") .dcm files listed, want $N"
r0=$(req read)
bad=0
while read -r f; do
	src=$(getfattr --only-values -n user.dicom.source "$f" 2>/dev/null)
	cmp -s "$f" "$ARCH/$src" || { bad=$((bad + 1)); log "differs: $f ($src)"; }
done <"$TMP/list"
r1=$(req read)
pushed=$(req read_ahead_files)
log "whole series: $((r1 - r0)) READs for $N files, $pushed pushed"
[ "$bad" = 0 ] && ok "all $N .dcm files read in order have their sources' bytes" ||
	fail "$bad files differ from their sources"
[ "$pushed" -gt 0 ] && [ $((r1 - r0)) -lt $((N / 2)) ] &&
	ok "read-ahead: $((r1 - r0)) READ requests for $N files ($pushed pushed)" ||
	fail "read-ahead: $((r1 - r0)) READ requests for $N files, $pushed pushed"
mount_stop

# --- sources/: the files of a folder, read in order (rsync of sources/) ------
drop
mount_start "$MNT" "$ARCH" -o index="$TMP/idx" -o quiet || exit 1
ls "$MNT/sources/s" | sort >"$TMP/slist"
[ "$(wc -l <"$TMP/slist")" = $N ] || fatal "sources/s lists $(wc -l <"$TMP/slist") files, want $N"
r0=$(req read)
bad=0
while read -r n; do
	cmp -s "$MNT/sources/s/$n" "$ARCH/s/$n" || { bad=$((bad + 1)); log "differs: sources/s/$n"; }
done <"$TMP/slist"
r1=$(req read)
[ "$bad" = 0 ] && [ $((r1 - r0)) -lt $((N / 2)) ] &&
	ok "sources/: $N files read in order with $((r1 - r0)) READ requests, all equal to their sources" ||
	fail "sources/: $bad differ, $((r1 - r0)) READ requests for $N files"
mount_stop

# --- -o no_read_ahead ---------------------------------------------------------
drop
mount_start "$MNT" "$ARCH" -o index="$TMP/idx" -o quiet -o no_read_ahead || exit 1
r0=$(req read)
xargs -d '\n' cat <"$TMP/list" >/dev/null
r1=$(req read)
[ $((r1 - r0)) -ge $N ] && [ "$(req read_ahead_files)" = 0 ] &&
	ok "-o no_read_ahead: $((r1 - r0)) READ requests for $N files, none pushed" ||
	fail "-o no_read_ahead: $((r1 - r0)) READs, $(req read_ahead_files) pushed"
mount_stop

# --- a reader of every 8th file: bounded pushes (RA4) ------------------------
drop
mount_start "$MNT" "$ARCH" -o index="$TMP/idx" -o quiet || exit 1
awk 'NR % 8 == 1' "$TMP/list" >"$TMP/sparse"
ns=$(wc -l <"$TMP/sparse")
ls -l "$(dirname "$(head -n 1 "$TMP/list")")" >/dev/null   # the kernel knows every inode
xargs -d '\n' cat <"$TMP/sparse" >/dev/null
sleep 1   # the pushes of the last read
pushed=$(req read_ahead_files)
[ "$pushed" -gt 0 ] && [ "$pushed" -le $((4 * ns)) ] &&
	ok "every 8th file ($ns reads): $pushed pushed (at most 4 per read)" ||
	fail "every 8th file ($ns reads): $pushed pushed, want 1 to $((4 * ns))"
mount_stop

# --- a changed source is not pushed: EIO at its read (R2) ------------------
drop
mount_start "$MNT" "$ARCH" -o index="$TMP/idx" -o quiet || exit 1
victim=$(sed -n 40p "$TMP/list")
vsrc=$(getfattr --only-values -n user.dicom.source "$victim" 2>/dev/null)
touch -d '2001-01-01' "$ARCH/$vsrc"
n=0 eio=0
while read -r f; do
	if [ "$f" = "$victim" ]; then
		cat "$f" >/dev/null 2>"$TMP/err" && fail "changed source read without error" ||
			{ grep -q "Input/output error" "$TMP/err" && eio=1; }
	else
		cat "$f" >/dev/null || fail "read of $f failed"
		n=$((n + 1))
	fi
done <"$TMP/list"
[ "$eio" = 1 ] && ok "a source changed after the mount: EIO at its read, $n others read" ||
	fail "changed source: $(cat "$TMP/err")"
grep -q "$vsrc" "$MNT/.dicomfs/errors.tsv" && ok "errors.tsv names it" ||
	fail "errors.tsv does not name $vsrc"
mount_stop
exit 0
