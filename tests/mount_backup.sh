#!/bin/bash
# Backups and file managers (issue 16), through a real mount of the archive
# of tests/gen_backup.py (a native and a JPEG 2000 series, a duplicate, a
# corrupt copy beside a whole one (native and JPEG 2000), a SOP Instance
# UID conflict across patients, an undecodable image, a file that is not
# DICOM, a FIFO):
# - the README's rsync recipe copies exactly the .dcm files, byte-identical
#   to their sources, exit 0 although one image cannot be decoded;
# - sources/ reaches every regular source file (duplicates, conflicts, the
#   non-DICOM file) with its original bytes, and no FIFO;
# - the whole copy of an instance is served, not the corrupt one with the
#   smaller path; a conflict is shown (both instances, an errors.tsv line);
# - -o only_dcm / -o files=...: only those files, everywhere (patients/,
#   uids/, anon/), others ENOENT; a bad list is exit 1 before indexing;
# - xattrs: none on .npy/.png (cp -a copies none), the .dcm and directories
#   keep theirs, user.dicom.source names the source; -o xattrs=all;
# - file(1) on every .npy and .png of a compressed series decodes nothing.
. "${srcdir:-$(dirname "$0")/..}/tests/lib.sh"
setup

ARCH="$TMP/archive"
MNT="$TMP/mnt"
command -v gdcmconv >/dev/null || fatal "gdcmconv not found (install libgdcm-tools)"
command -v rsync >/dev/null || fatal "rsync not found"
command -v getfattr >/dev/null || fatal "getfattr not found (install attr)"
command -v file >/dev/null || fatal "file not found"
"$PY" "$srcdir/tests/gen_backup.py" "$ARCH" || fatal "gen_backup.py failed"

decodes() { status_get "$MNT" pixel_decodes; }
# the source path of a .dcm (user.dicom.source)
source_of() { getfattr --only-values -n user.dicom.source "$1" 2>/dev/null; }

# opens=each: file(1)'s prefix without a decode (kind_pixels.c P9) needs an
# open of its own (fs/fs.h Z3; zero-message opens: tests/mount_zeroopen.sh)
mount_start "$MNT" "$ARCH" -o index="$TMP/idx",opens=each,no_decode_ahead || exit 1

# --- the rsync recipe ---------------------------------------------------------
rsync -a --include='*/' --include='*.dcm' --exclude='*' "$MNT/patients/" "$TMP/backup/"
rc=$?
[ "$rc" -eq 0 ] && ok "rsync recipe: exit 0" || fail "rsync recipe: exit $rc"
other=$(cd "$TMP/backup" && find . -type f ! -name '*.dcm' | head -3)
[ -z "$other" ] && ok "rsync recipe: only .dcm files copied" || fail "rsync recipe copied $other"
ndcm=$(cd "$MNT/patients" && find . -name '*.dcm' | wc -l)
nbk=$(cd "$TMP/backup" && find . -type f -name '*.dcm' | wc -l)
[ "$ndcm" -eq "$nbk" ] && [ "$nbk" -gt 0 ] && ok "rsync recipe: all $nbk .dcm copied" ||
	fail "rsync recipe: $nbk of $ndcm .dcm copied"
bad=0
while IFS= read -r -d '' f; do
	src=$(source_of "$MNT/patients/$f")
	[ -n "$src" ] && cmp -s "$TMP/backup/$f" "$ARCH/$src" || { bad=$((bad + 1)); log "differs: $f ($src)"; }
done < <(cd "$MNT/patients" && find . -name '*.dcm' -printf '%P\0')
[ "$bad" -eq 0 ] && ok "rsync recipe: every copy is byte-identical to its source" ||
	fail "$bad copies differ from their sources"
# the undecodable image really is undecodable (so the exit 0 above means something)
broken=$(cd "$MNT/patients" && find . -name '*.npy' -path '*003 MR*' | head -1)
if [ -n "$broken" ] && ! cat "$MNT/patients/$broken" >/dev/null 2>&1; then
	ok "the garbled JPEG 2000 image's .npy is EIO (the recipe does not read it)"
else
	fail "expected an undecodable .npy in series 003 ($broken)"
fi

# --- sources/ -------------------------------------------------------------------
want=$(cd "$ARCH" && find . -type f -printf '%P\n' | sort)
got=$(cd "$MNT/sources" && find . -printf '%P %y\n' | grep ' f$' | sed 's/ f$//' | sort)
[ "$want" = "$got" ] && ok "sources/ lists every regular source file ($(echo "$got" | wc -l))" ||
	fail "sources/ differs: $(diff <(echo "$want") <(echo "$got") | head -5 | tr '\n' ' ')"
[ ! -e "$MNT/sources/pipe" ] && ok "the FIFO is not served" || fail "sources/pipe exists"
rsync -a "$MNT/sources/" "$TMP/backup2/"
rc=$?
diffs=$(diff -r "$ARCH" "$TMP/backup2" 2>&1 | grep -v "^Only in $ARCH: pipe$")
[ "$rc" -eq 0 ] && [ -z "$diffs" ] && ok "rsync -a sources/: exit 0, identical to the archive" ||
	fail "rsync -a sources/: exit $rc, $diffs"
m_src=$(stat -c '%s %Y %a' "$MNT/sources/native/001.dcm")
m_arch=$(stat -c '%s %Y' "$ARCH/native/001.dcm")
case "$m_src" in
"$m_arch "*) ok "sources/ files have the size and mtime of their sources" ;;
*) fail "sources/native/001.dcm: '$m_src' vs the archive's '$m_arch'" ;;
esac
[ "$(source_of "$MNT/sources/dup/copy.dcm")" = "dup/copy.dcm" ] &&
	ok "user.dicom.source on a sources/ file" || fail "no user.dicom.source on sources/dup/copy.dcm"

# --- duplicates and conflicts ---------------------------------------------------
ERR="$MNT/.dicomfs/errors.tsv"
srcs=$(cd "$MNT/patients" && find . -name '*.dcm' -print0 | while IFS= read -r -d '' f; do source_of "$f"; echo; done | sort)
for want in zzz_good/x.dcm zzz_good/j.dcm; do
	echo "$srcs" | grep -qx "$want" && ok "the whole copy $want is served" || fail "$want is not served"
done
for bad in aaa_corrupt/x.dcm aaa_corrupt/j.dcm; do
	echo "$srcs" | grep -qx "$bad" && fail "the corrupt copy $bad is served" || ok "the corrupt copy $bad is not served"
	awk -F'\t' -v p="$bad" '$1 == p && $2 ~ /^duplicate/ { f = 1 } END { exit !f }' "$ERR" &&
		ok "$bad: a duplicate line in errors.tsv" || fail "$bad: no duplicate line in errors.tsv"
done
j=$(cd "$MNT/patients" && find . -name '901.npy' | head -1)
[ -n "$j" ] && "$PY" -c 'import numpy, sys; a = numpy.load(sys.argv[1]); assert a.shape == (128, 128)' \
	"$MNT/patients/$j" && ok "the served JPEG 2000 copy decodes" || fail "901.npy does not load ($j)"
for both in native/003.dcm conflict/other.dcm; do
	echo "$srcs" | grep -qx "$both" && ok "conflict: $both is shown in patients/" || fail "conflict: $both is not shown"
done
grep -q $'\tconflict: SOP Instance UID 2.25.16016.1.1.3 ' "$ERR" && ok "errors.tsv: a conflict line" ||
	fail "errors.tsv has no conflict line"
nuid=$(find "$MNT/uids" -name '2.25.16016.1.1.3*.dcm' | wc -l)
[ "$nuid" -eq 2 ] && ok "uids/: both conflicting instances, distinct names" || fail "uids/: $nuid conflicting instances"
echo "$srcs" | grep -qx "native/001.dcm" && fail "the byte duplicate native/001.dcm is shown twice" ||
	ok "the byte duplicate is shown once"

# --- xattrs -----------------------------------------------------------------
# the native series (cp -a of the JPEG 2000 one would decode it before file(1) runs)
SER=$(dirname "$(cd "$MNT/patients" && find . -name '001.npy' -path '*001 MR*' | head -1)")
SER="$MNT/patients/$SER"
n=$(getfattr -d -m - "$SER/001.npy" "$SER/001.png" "$SER/001.json" 2>/dev/null | grep -c '^user\.')
[ "$n" -eq 0 ] && ok "no xattrs on .npy, .png, .json" || fail "$n xattrs on derived files"
getfattr -n user.dicom.PatientName "$SER/001.dcm" >/dev/null 2>&1 && ok ".dcm keeps user.dicom.PatientName" ||
	fail ".dcm has no user.dicom.PatientName"
getfattr -n user.dicom.PatientName "$SER" >/dev/null 2>&1 && ok "directories keep their xattrs" ||
	fail "the series directory has no user.dicom.PatientName"
cp -a "$SER" "$TMP/cpa" || fail "cp -a failed"
n=$(cd "$TMP/cpa" && getfattr -d -m - ./*.npy ./*.png 2>/dev/null | grep -c '^user\.dicom')
[ "$n" -eq 0 ] && ok "cp -a: no identifying attributes on the .npy/.png copies" ||
	fail "cp -a copied $n user.dicom attributes onto .npy/.png"

# --- file(1) decodes nothing --------------------------------------------------
JS=$(dirname "$(cd "$MNT/patients" && find . -name '901.npy' | head -1)")
before=$(decodes)
out=$(cd "$MNT/patients/$JS" && file ./*.npy ./*.png)
after=$(decodes)
nnpy=$(echo "$out" | grep -c 'NumPy')
npng=$(echo "$out" | grep -c 'PNG image data, 128 x 128')
[ "$nnpy" -eq 7 ] && [ "$npng" -eq 7 ] && ok "file(1) recognises 7 .npy and 7 .png" ||
	fail "file(1) output: $out"
[ -n "$before" ] && [ "$before" = "$after" ] && ok "file(1) over a JPEG 2000 series: 0 decodes" ||
	fail "file(1) decoded: pixel_decodes $before -> $after"
# a non-blocking read past the prefix does not wait for a decoder: EAGAIN
"$PY" - "$MNT/patients/$JS/003.npy" <<'EOF' && ok "O_NONBLOCK read past the header: EAGAIN, no decode" || fail "O_NONBLOCK read"
import errno, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_NONBLOCK)
h = os.read(fd, 1 << 20)
assert h.startswith(b"\x93NUMPY") and len(h) % 64 == 0, h[:10]
try:
    os.pread(fd, 4096, len(h))
    sys.exit("read past the header did not fail")
except OSError as e:
    assert e.errno == errno.EAGAIN, e
EOF
[ "$(decodes)" = "$after" ] || fail "the O_NONBLOCK reads decoded"
dd if="$MNT/patients/$JS/002.png" iflag=nonblock bs=64 count=1 2>/dev/null | od -c | head -1 | grep -q 'P   N   G' &&
	[ "$(decodes)" = "$after" ] && ok "dd iflag=nonblock of a .png: its signature, no decode" ||
	fail "dd iflag=nonblock of a .png"
"$PY" -c 'import numpy, sys; numpy.load(sys.argv[1])' "$MNT/patients/$JS/003.npy" &&
	[ "$(decodes)" -gt "$after" ] && ok "a blocking open still decodes and serves the pixels" ||
	fail "a blocking open of 003.npy failed"
mount_stop

# --- -o only_dcm / -o files=... -------------------------------------------------
mount_start "$MNT" "$ARCH" -o index="$TMP/idx",only_dcm || exit 1
kinds=$(cd "$MNT" && find patients uids anon -type f | sed 's/.*\.//' | sort -u | tr '\n' ' ')
[ "$kinds" = "dcm " ] && ok "only_dcm: patients/, uids/, anon/ list .dcm only" || fail "only_dcm lists: $kinds"
[ ! -e "$SER/001.npy" ] && [ ! -e "$SER/series.json" ] && [ -e "$SER/001.dcm" ] &&
	ok "only_dcm: lookup of .npy and series.json is ENOENT" || fail "only_dcm: lookups"
rsync -a "$MNT/patients/" "$TMP/backup3/"
rc=$?
n3=$(find "$TMP/backup3" -type f | wc -l)
[ "$rc" -eq 0 ] && [ "$n3" -eq "$ndcm" ] && ok "only_dcm: plain rsync -a copies the $n3 .dcm, exit 0" ||
	fail "only_dcm: rsync exit $rc, $n3 files"
nl=$(stat -c %h "$SER")
[ "$nl" -eq 2 ] && ok "only_dcm: series nlink 2" || fail "only_dcm: series nlink $nl"
mount_stop

mount_start "$MNT" "$ARCH" -o index="$TMP/idx",files=dcm,npy,xattrs=all || exit 1
kinds=$(cd "$MNT/patients" && find . -type f | sed 's/.*\.//' | sort -u | tr '\n' ' ')
[ "$kinds" = "dcm npy " ] && ok "files=dcm,npy: .dcm and .npy only" || fail "files=dcm,npy lists: $kinds"
getfattr -n user.dicom.PatientName "$SER/001.npy" >/dev/null 2>&1 && ok "xattrs=all: .npy has user.dicom.PatientName" ||
	fail "xattrs=all: no user.dicom.PatientName on .npy"
mount_stop

# --- sources/ under the access model (fs/access.h A1, A2), as root ---------------
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
	chmod 755 "$TMP"
	chmod 600 "$ARCH/dup/copy.dcm"
	chmod 700 "$ARCH/conflict"
	mount_start "$MNT" "$ARCH" -o index="$TMP/idx",allow_other || exit 1
	seen=$(setpriv --reuid=nobody --regid=nogroup --clear-groups -- \
		bash -c 'cd "$1/sources" && find . 2>/dev/null; cat conflict/other.dcm dup/copy.dcm 2>/dev/null' _ "$MNT" | tr -d '\0')
	case "$seen" in
	*copy.dcm* | *conflict* | *Other^Bob*) fail "nobody reaches sources/ files it cannot read in the archive" ;;
	*native/001.dcm*) ok "sources/: nobody sees what it can read, not the 0600 file nor the 0700 folder" ;;
	*) fail "nobody sees nothing in sources/: $seen" ;;
	esac
	mount_stop
	chmod 644 "$ARCH/dup/copy.dcm"
	chmod 755 "$ARCH/conflict"
fi

# options checked before indexing: exit 1, no index made
"$DICOMFS" -f -o index="$TMP/idx2",files=dcm+bogus "$ARCH" "$MNT" >"$TMP/bad.log" 2>&1
rc=$?
[ "$rc" -eq 1 ] && [ ! -e "$TMP/idx2" ] && grep -q "bogus" "$TMP/bad.log" &&
	ok "files=dcm+bogus: exit 1 before indexing, says why" || fail "files=dcm+bogus: exit $rc, $(cat "$TMP/bad.log")"
"$DICOMFS" -f -o index="$TMP/idx2",files=npy "$ARCH" "$MNT" >"$TMP/bad.log" 2>&1
rc=$?
[ "$rc" -eq 1 ] && ok "files=npy (no dcm): exit 1" || fail "files=npy: exit $rc"
"$DICOMFS" -f -o index="$TMP/idx2",xattrs=some "$ARCH" "$MNT" >"$TMP/bad.log" 2>&1
rc=$?
[ "$rc" -eq 1 ] && ok "xattrs=some: exit 1" || fail "xattrs=some: exit $rc"
exit 0
