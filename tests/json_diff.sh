#!/bin/bash
# The C header walker (index/dicom/dcmelem.h) against GDCM: tests/json_diff
# builds every instance's DICOM JSON and indexed attributes twice, with the
# default walker (C where it handles the file) and with GDCM forced
# (DCMJSON_WALK_GDCM, as DICOMFS_JSON_GDCM=1 does), and requires the same
# bytes, over every DICOM file we can reach: the generated archives (messy
# and uniform), the real-world shapes (tests/gen_realworld.py), pydicom's and
# nibabel's test files, explicit VR files re-encoded with UN, the fuzz seeds
# and regressions, and mutants of them (tests/gen_mutants.py). It also requires the C path to be taken (every
# file of the uniform archive, some of pydicom's) and GDCM to be asked for
# the rest (some of pydicom's), so neither side is compared with itself.
. "${srcdir:-$(dirname "$0")/..}/tests/lib.sh"

DIFF=${JSON_DIFF:-./tests/json_diff}
[ -x "$DIFF" ] || fatal "$DIFF not built"
[ -n "${DICOMFS_GDCM:-}" ] || export DICOMFS_GDCM="$(pwd)/dicomfs-gdcm.so"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/dicomfs-$TEST_NAME.XXXXXX") || fatal "mktemp failed"
trap 'rm -rf "$TMP"' EXIT
PYDATA=/usr/lib/python3/dist-packages/pydicom/data/test_files
NIBDATA=/usr/lib/python3/dist-packages/nibabel

"$PY" "$GEN" "$TMP/messy" >/dev/null || fatal "gen_archive.py failed"
"$PY" "$GEN" "$TMP/big" --count 200 >/dev/null || fatal "gen_archive.py --count failed"
"$PY" "$srcdir/tests/gen_realworld.py" "$TMP/rw" >/dev/null 2>&1 ||
	log "gen_realworld.py failed (dcmtk missing?): its files are left out"
# explicit VR files whose elements are re-encoded as UN (public ones in
# part, then all; private ones always): the C walker takes the dictionary
# VR for them as GDCM's walk does
mkdir -p "$TMP/un"
"$PY" - "$TMP/un" <<'PYEOF' 2>/dev/null || log "UN variants failed: left out"
import glob, os, sys, pydicom
from pydicom.dataelem import DataElement
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element
for f in sorted(glob.glob('/usr/lib/python3/dist-packages/pydicom/data/test_files/*.dcm')):
    try:
        ds = pydicom.dcmread(f)
        if ds.file_meta.TransferSyntaxUID != '1.2.840.10008.1.2.1':
            continue
        for mode in (0, 1):
            for el in list(ds):
                if el.VR == 'SQ' or el.tag == 0x7fe00010:
                    continue
                if mode == 0 and not el.tag.is_private and el.tag.element % 3:
                    continue
                fp = DicomBytesIO()
                fp.is_little_endian, fp.is_implicit_VR = True, True
                write_data_element(fp, el)
                ds[el.tag] = DataElement(el.tag, 'UN', fp.getvalue()[8:])
            ds.save_as(os.path.join(sys.argv[1], '%s_%d' % (os.path.basename(f), mode)),
                       write_like_original=True)
    except Exception:
        pass
PYEOF
srcs=("$TMP/messy")
[ -d "$PYDATA" ] && srcs+=("$PYDATA")
"$PY" "$srcdir/tests/gen_mutants.py" "$TMP/mut" "${srcs[@]}" --per 3 >/dev/null 2>&1 ||
	log "gen_mutants.py failed: mutants left out"

# run NAME DIR...: json_diff over every file under DIR...; sets C, G
run() {
	local name=$1 out
	shift
	# GDCM allocates what a garbage length says: keep that from taking
	# the machine (an allocation failure is an error GDCM reports)
	out=$( (ulimit -v 2000000; find "$@" -type f 2>/dev/null | sort | "$DIFF" -) )
	local rc=$?
	printf '%s\n' "$out" | grep -v '^files ' | sed 's/^/    /'
	local sum
	sum=$(printf '%s\n' "$out" | grep '^files ')
	log "$name: $sum"
	C=$(printf '%s\n' "$sum" | awk '{print $6}')
	G=$(printf '%s\n' "$sum" | awk '{print $8}')
	if [ $rc -eq 0 ] && [ -n "$sum" ]; then
		ok "$name: the C walker and GDCM agree"
	else
		fail "$name: json_diff exit $rc"
	fi
}

run "uniform archive" "$TMP/big"
[ "$C" = 200 ] && ok "uniform archive: all 200 through the C walker" ||
	fail "uniform archive: $C of 200 through the C walker"
run "messy archive" "$TMP/messy"
[ "${C:-0}" -gt 0 ] && [ "${G:-0}" -gt 0 ] && ok "messy archive: both walkers used" ||
	fail "messy archive: C $C, GDCM $G"
if [ -d "$PYDATA" ]; then
	run "pydicom test files" "$PYDATA"
	[ "${C:-0}" -gt 50 ] && [ "${G:-0}" -gt 0 ] && ok "pydicom: both walkers used" ||
		fail "pydicom: C $C, GDCM $G"
fi
[ -d "$NIBDATA" ] && run "nibabel test data" $(find "$NIBDATA" -type d -name data)
[ -d "$TMP/rw" ] && run "real-world shapes" "$TMP/rw"
run "UN variants" "$TMP/un"
run "fuzz seeds and regressions" "$srcdir/tests/fuzz/seeds" "$srcdir/tests/fuzz/regressions"
[ -d "$TMP/mut" ] && run "mutants" "$TMP/mut"
[ "$FAILURES" -eq 0 ] || exit 1
exit 0
