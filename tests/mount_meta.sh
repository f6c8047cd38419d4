#!/bin/bash
# Level files (patient.json, patient.fhir.json, study.json, study.fhir.json,
# series.json) and user.dicom.* xattrs: mount the messy archive (plus a few
# files with the attributes it lacks: time zone, body part, referring
# physician, series date/time) and check them all against pydicom
# (tests/meta_oracle.py); getfattr -d on each level; ENODATA and ERANGE;
# byte-identical content across remounts; then the same oracle over Debian's
# pydicom test data.
. "${srcdir:-$(dirname "$0")/..}/tests/lib.sh"
setup

ARCH="$TMP/arch"
MNT="$TMP/mnt"
ORACLE="$srcdir/tests/meta_oracle.py"
TAGS_C="$srcdir/index/dicom/tags.c"

log "generating the messy archive"
"$PY" "$GEN" "$ARCH" || fatal "gen_archive.py failed"
"$PY" - "$ARCH/meta-extra" <<'EOF' || fatal "writing the extra files failed"
import os, sys
from pydicom.dataset import Dataset, FileMetaDataset
out = sys.argv[1]
os.makedirs(out)
R = "2.25.31415926.77"
for k in range(1, 4):
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.SOPInstanceUID = "%s.1.1.%d" % (R, k)
    ds.StudyDate = "20240229"
    ds.StudyTime = "235959.123"
    ds.SeriesDate = "20240301"
    ds.SeriesTime = "0005"
    ds.TimezoneOffsetFromUTC = "+0130"
    ds.AccessionNumber = "ZZ9"
    ds.Modality = "CT" if k < 3 else "PT"
    ds.ReferringPhysicianName = "Welby^Marcus^A^Dr.^MD"
    ds.StudyDescription = "Zeitzone \"quoted\" / test"
    ds.SeriesDescription = "Tz"
    ds.PatientName = "Ødegård^Åse=オーデゴール^アセ"
    ds.PatientID = "TZ/1"
    ds.PatientBirthDate = "19800230" if k == 1 else ""   # not a date
    ds.PatientSex = "F"
    ds.BodyPartExamined = "CHEST"
    ds.StudyInstanceUID = R + ".1"
    ds.SeriesInstanceUID = R + ".1." + ("1" if k < 3 else "2")
    ds.StudyID = "S77"
    ds.SeriesNumber = "+07" if k < 3 else "8"
    ds.InstanceNumber = str(k)
    ds.SliceThickness = ".5"
    fm = FileMetaDataset()
    fm.MediaStorageSOPClassUID = ds.SOPClassUID
    fm.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    fm.TransferSyntaxUID = "1.2.840.10008.1.2.1"
    ds.file_meta = fm
    ds.is_little_endian = True
    ds.is_implicit_VR = False
    ds.save_as(os.path.join(out, "tz%d.dcm" % k), write_like_original=False)
EOF

mount_start "$MNT" "$ARCH" -o index="$TMP/idx" || exit 1

log "checking every level file and the xattrs against pydicom"
if timeout 600 "$PY" "$ORACLE" "$MNT" "$TAGS_C"; then
	ok "level files and xattrs agree with pydicom and the tree"
else
	fail "meta_oracle.py found problems (above)"
fi

# --- the extra study: FHIR dateTime with a zone, bodySite, referrer ----------
P=$(find "$MNT/patients" -maxdepth 1 -name '*TZ_1*' | head -1)
S=$(find "$P" -mindepth 1 -maxdepth 1 -type d | head -1)
if [ -n "$S" ] && "$PY" - "$P" "$S" <<'EOF'

import json, os, sys
p, s = sys.argv[1:]
st = json.load(open(os.path.join(s, "study.fhir.json")))
pt = json.load(open(os.path.join(p, "patient.fhir.json")))
sj = json.load(open(os.path.join(s, "study.json")))
bad = []
def want(what, got, exp):
    if got != exp:
        bad.append("%s = %r, want %r" % (what, got, exp))
want("started", st.get("started"), "2024-02-29T23:59:59.123+01:30")
want("series[0].started", st["series"][0].get("started"), "2024-03-01T00:05:00+01:30")
want("series[0].bodySite", st["series"][0].get("bodySite"), {"display": "CHEST"})
want("series[0].number", st["series"][0].get("number"), 7)
want("referrer", st.get("referrer"), {"display": "Dr. Marcus A Welby MD"})
want("description", st.get("description"), 'Zeitzone "quoted" / test')
want("modality", [c["code"] for c in st["modality"]], ["CT", "PT"])
want("gender", pt.get("gender"), "female")
want("birthDate", "birthDate" in pt, False)
want("name[0]", pt["name"][0], {"text": "Åse Ødegård", "family": "Ødegård", "given": ["Åse"]})
want("name[1].ext", pt["name"][1]["extension"][0]["valueCode"], "IDE")
want("identifier", pt.get("identifier"), [{"value": "TZ/1"}])
want("ModalitiesInStudy", sj["00080061"], {"vr": "CS", "Value": ["CT", "PT"]})
want("StudyDescription", sj["00081030"]["Value"], ['Zeitzone "quoted" / test'])
want("PatientName", sj["00100010"]["Value"], [{"Alphabetic": "Ødegård^Åse", "Ideographic": "オーデゴール^アセ"}])
want("ReferringPhysicianName", sj["00080090"]["Value"], [{"Alphabetic": "Welby^Marcus^A^Dr.^MD"}])
want("PatientBirthDate (19800230 as indexed)", sj["00100030"]["Value"], ["19800230"])
for b in bad:
    print("    " + b)
sys.exit(1 if bad else 0)
EOF
then
	ok "FHIR dateTime with zone, bodySite, referrer, names, ModalitiesInStudy"
else
	fail "the extra study's level files are wrong (above)"
fi

# --- xattrs with the command line tools -------------------------------------
D=$(find "$S" -mindepth 1 -maxdepth 1 -type d | head -1)
F=$(find "$D" -name '*.dcm' | sort | head -1)
for x in "$F" "$D" "$S" "$P"; do
	log "getfattr -d -m user.dicom '${x#$MNT/}'"
	getfattr --absolute-names -d -m user.dicom "$x" 2>&1 | sed 's/^/    /'
done
got=$(getfattr --absolute-names --only-values -n user.dicom.BodyPartExamined "$D" 2>&1)
[ "$got" = CHEST ] && ok "series dir: user.dicom.BodyPartExamined = CHEST" ||
	fail "series dir: user.dicom.BodyPartExamined = '$got', want CHEST"
got=$(getfattr --absolute-names --only-values -n user.dicom.SOPInstanceUID "$F" 2>&1)
[ "$got" = 2.25.31415926.77.1.1.1 ] && ok "instance: user.dicom.SOPInstanceUID" ||
	fail "instance: user.dicom.SOPInstanceUID = '$got'"
out=$(getfattr -n user.dicom.SOPInstanceUID "$D" 2>&1) &&
	fail "series dir has user.dicom.SOPInstanceUID: $out" ||
	ok "series dir: no instance-level attribute"
for x in "$F" "$D" "$MNT/patients" "$MNT"; do
	out=$(getfattr -n user.dicom.Nope "$x" 2>&1)
	case "$out" in
	*"No such attribute"*) ok "getfattr -n user.dicom.Nope ${x#$MNT}: No such attribute" ;;
	*) fail "getfattr -n user.dicom.Nope $x: '$out', want 'No such attribute'" ;;
	esac
done
out=$(getfattr -d -m - "$MNT/.dicomfs/status.json" "$MNT/patients" 2>&1)
[ -z "$out" ] && ok ".dicomfs and patients/ have no attributes" ||
	fail "unexpected attributes: $out"
if "$PY" - "$F" "$D" <<'EOF'

import errno, os, sys, ctypes, ctypes.util
libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
bad = []
for path in sys.argv[1:]:
    p, n = path.encode(), b"user.dicom.PatientName"
    size = libc.getxattr(p, n, None, 0)           # size query
    want = os.getxattr(path, "user.dicom.PatientName")
    if size != len(want):
        bad.append("%s: size query %d, value has %d bytes" % (path, size, len(want)))
    buf = ctypes.create_string_buffer(4)
    r = libc.getxattr(p, n, buf, 4)
    if r != -1 or ctypes.get_errno() != errno.ERANGE:
        bad.append("%s: getxattr with a 4-byte buffer: %d errno %d, want ERANGE" % (path, r, ctypes.get_errno()))
    lsize = libc.listxattr(p, None, 0)
    if lsize != len(b"".join(x.encode() + b"\0" for x in os.listxattr(path))):
        bad.append("%s: listxattr size query %d" % (path, lsize))
    r = libc.listxattr(p, ctypes.create_string_buffer(8), 8)
    if r != -1 or ctypes.get_errno() != errno.ERANGE:
        bad.append("%s: listxattr with an 8-byte buffer: %d errno %d, want ERANGE" % (path, r, ctypes.get_errno()))
for b in bad:
    print("    " + b)
sys.exit(1 if bad else 0)
EOF
then
	ok "size queries and ERANGE for getxattr and listxattr"
else
	fail "xattr size / ERANGE checks failed (above)"
fi

# --- ls -l, determinism across mounts ----------------------------------------
ls -l "$S" | sed 's/^/    /'
(cd "$MNT/patients" && find . -name '*.json' ! -name '*.dcm.json' -path '*/*' \
	\( -name series.json -o -name study.json -o -name patient.json -o -name '*.fhir.json' \) \
	-print0 | sort -z | xargs -0 sha256sum) >"$TMP/sums1"
mount_stop
mount_start "$MNT" "$ARCH" -o index="$TMP/idx2" || exit 1
(cd "$MNT/patients" && find . -name '*.json' ! -name '*.dcm.json' -path '*/*' \
	\( -name series.json -o -name study.json -o -name patient.json -o -name '*.fhir.json' \) \
	-print0 | sort -z | xargs -0 sha256sum) >"$TMP/sums2"
n=$(wc -l <"$TMP/sums1")
if [ "$n" -gt 0 ] && cmp -s "$TMP/sums1" "$TMP/sums2"; then
	ok "$n level files byte-identical across two mounts with fresh indexes"
else
	fail "level files differ across mounts ($n files)"
	diff "$TMP/sums1" "$TMP/sums2" | head | sed 's/^/    /'
fi
daemon_alive || fail "dicomfs died"
mount_stop

# --- Debian's pydicom test data --------------------------------------------
DATA=${PYDICOM_DATA:-/usr/lib/python3/dist-packages/pydicom/data}
if [ -d "$DATA/test_files" ]; then
	mount_start "$MNT" "$DATA" -o index="$TMP/idx3" || exit 1
	log "pydicom test data: every level file parses; counts, structure, values, xattrs"
	if timeout 600 "$PY" "$ORACLE" "$MNT" "$TAGS_C"; then
		ok "pydicom test data: level files and xattrs agree with pydicom and the tree"
	else
		fail "pydicom test data: problems (above)"
	fi
	daemon_alive || fail "dicomfs died"
	mount_stop
else
	log "no pydicom test data at $DATA: skipped that part"
fi
exit 0
