#!/bin/bash
# query_vs_orthanc.sh - query/ side by side with Orthanc's QIDO-RS on the
# same files: the messy generated archive (tests/gen_archive.py) plus a few
# files for the conveniences of issue 16 (ACR-NEMA date, empty dates,
# mixed-case names and manufacturers) go into an Orthanc (Debian's orthanc
# + orthanc-dicomweb, started here on a loopback port, no DICOM port, its
# storage in a temporary directory); the files it accepted are mounted
# with dicomfs. For each query the UIDs of both answers are compared and
# printed: "same", or the differences. The README ("Finding things") says
# which differences are intended (its list of deviations from PS3.4).
#
# Exit status: 0 when every query marked "=" (where dicomfs's default
# and Orthanc 1.10 both follow PS3.4) gives the same UIDs; 1 otherwise.
# Printed, not judged: "d", dicomfs's documented extensions (README
# "Finding things": fuzzymatching=true, DA periods, ACR-NEMA dates, "");
# "o", where Orthanc 1.10 departs from PS3.4 C.2.2.2 (CS and wildcards
# matched case-insensitively; an empty stored date compared as text, so
# it falls in open ranges "-B").
# Environment: DICOMFS, PYTHON.
set -u -o pipefail
export LC_ALL=C
PY=${PYTHON:-/usr/bin/python3}
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)
DICOMFS=${DICOMFS:-$ROOT/dicomfs}
PLUGIN=/usr/share/orthanc/plugins/libOrthancDicomWeb.so
log() { printf '[query_vs_orthanc] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 2; }
command -v Orthanc >/dev/null || die "Orthanc not found (contrib/install-deps installs orthanc)"
[ -e "$PLUGIN" ] || die "$PLUGIN missing (orthanc-dicomweb)"
[ -x "$DICOMFS" ] || die "no dicomfs binary at $DICOMFS"
TMP=$(mktemp -d /tmp/dicomfs-qvo.XXXXXX)
MNT=$TMP/mnt
OPID= DPID=
cleanup() {
	mountpoint -q "$MNT" 2>/dev/null && fusermount3 -u "$MNT"
	[ -n "$DPID" ] && wait "$DPID" 2>/dev/null
	[ -n "$OPID" ] && kill "$OPID" 2>/dev/null && wait "$OPID" 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT

"$PY" "$ROOT/tests/gen_archive.py" "$TMP/arch" >/dev/null || die "gen_archive.py failed"
"$PY" - "$TMP/arch/qvo" <<'PYEOF' || die "writing the extra files failed"
import os, sys, warnings
warnings.filterwarnings("ignore")
from pydicom.dataset import Dataset, FileMetaDataset
out = sys.argv[1]
os.makedirs(out)
R = "2.25.31415926.66"
rows = [  # PatientName, PatientID, StudyDate, Manufacturer, Modality
    ("Meier^Peter", "QV1", "1993.04.30", "SIEMENS", "MR"),
    ("Petersen^Anna", "QV2", "", "Siemens Healthineers", "CT"),
    ("van Gogh^Vincent", "QV3", "20010615", "GE MEDICAL SYSTEMS", "ct"),
]
for k, (pn, pid, da, man, mod) in enumerate(rows, 1):
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.SOPInstanceUID = "%s.%d.1.1" % (R, k)
    ds.StudyInstanceUID = "%s.%d" % (R, k)
    ds.SeriesInstanceUID = "%s.%d.1" % (R, k)
    ds.PatientName, ds.PatientID, ds.StudyDate = pn, pid, da
    ds.Manufacturer, ds.Modality = man, mod
    ds.SeriesNumber = "1"
    ds.InstanceNumber = "1"
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.1"
    ds.is_little_endian, ds.is_implicit_VR = True, False
    ds.save_as(os.path.join(out, "qv%d.dcm" % k), write_like_original=False)
PYEOF

PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$TMP/orthanc-db"
cat >"$TMP/orthanc.json" <<EOF
{
  "Name": "dicomfs-qvo",
  "StorageDirectory": "$TMP/orthanc-db",
  "IndexDirectory": "$TMP/orthanc-db",
  "HttpPort": $PORT,
  "RemoteAccessAllowed": false,
  "AuthenticationEnabled": false,
  "DicomServerEnabled": false,
  "OverwriteInstances": false,
  "Plugins": ["$PLUGIN"],
  "DicomWeb": { "Enable": true, "Root": "/dicom-web/", "EnableWado": false }
}
EOF
Orthanc "$TMP/orthanc.json" >"$TMP/orthanc.log" 2>&1 &
OPID=$!
O="http://127.0.0.1:$PORT"
for _ in $(seq 150); do
	curl -sf "$O/system" >/dev/null 2>&1 && break
	kill -0 "$OPID" 2>/dev/null || break
	sleep 0.2
done
curl -sf "$O/dicom-web/studies" >/dev/null || die "Orthanc did not start on $O"
log "Orthanc $(curl -s "$O/system" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["Version"])') on $O"

# the files Orthanc accepts, in bytewise path order, make the mount's archive
(cd "$TMP/arch" && find . -type f -printf '%P\n' | sort) | while IFS= read -r f; do
	st=$(curl -s -X POST --data-binary @"$TMP/arch/$f" "$O/instances" |
		"$PY" -c 'import json,sys
try: print(json.load(sys.stdin).get("Status",""))
except Exception: print("")')
	if [ "$st" = "Success" ]; then
		mkdir -p "$TMP/same/$(dirname "$f")"
		cp -p "$TMP/arch/$f" "$TMP/same/$f"
	fi
done
mkdir -p "$MNT"
"$DICOMFS" -f -o quiet -o index="$TMP/idx" "$TMP/same" "$MNT" 2>"$TMP/dicomfs.log" &
DPID=$!
for _ in $(seq 600); do mountpoint -q "$MNT" && break; sleep 0.1; done
mountpoint -q "$MNT" || die "mount failed: $(cat "$TMP/dicomfs.log")"

"$PY" - "$MNT" "$O" <<'PYEOF'
import csv, io, json, os, sys, urllib.parse, urllib.request
mnt, base = sys.argv[1:3]
UID = {"studies": ("StudyInstanceUID", "0020000D"), "series": ("SeriesInstanceUID", "0020000E"),
       "instances": ("SOPInstanceUID", "00080018")}
# (judged?, level, [(keyword, value)], note)
Q = [
    ("o", "series", [("Modality", "CT")], "Orthanc: CS case-insensitive (finds 'ct')"),
    ("o", "series", [("Modality", "ct")], "PS3.4: CS is case-sensitive"),
    ("=", "series", [("Manufacturer", "SIEMENS")], ""),
    ("o", "series", [("Manufacturer", "*Siemens*")], "PS3.4: wildcards case-sensitive"),
    ("=", "studies", [("StudyDate", "20200101-20201231")], "DA range"),
    ("=", "studies", [("StudyDate", "20200115")], "DA single value"),
    ("o", "studies", [("StudyDate", "-20191231")], "Orthanc: an empty date is before 2019"),
    ("=", "studies", [("StudyDate", "20200201-")], "DA open range"),
    ("=", "studies", [("PatientName", "doe*")], "PN wildcard"),
    ("=", "studies", [("PatientName", "DOE^JOHN")], "PN whole value"),
    ("=", "studies", [("PatientName", "doe^john")], "PN whole value, other case"),
    ("=", "studies", [("PatientName", "john")], "PN: one component is no match in PS3.4"),
    ("=", "studies", [("PatientName", "peter")], ""),
    ("=", "series", [("SeriesDescription", "*T1*")], ""),
    ("=", "studies", [("PatientID", "PID001")], ""),
    ("d", "series", [("Modality", "ct"), ("fuzzymatching", "true")], "dicomfs: case-insensitive"),
    ("d", "series", [("Manufacturer", "*siemens*"), ("fuzzymatching", "true")], "dicomfs: case-insensitive"),
    ("d", "studies", [("PatientName", "peter"), ("fuzzymatching", "true")], "dicomfs: word prefixes"),
    ("d", "studies", [("StudyDate", "2001")], "dicomfs: YYYY is a year"),
    ("d", "studies", [("StudyDate", "200106-2002")], "dicomfs: YYYYMM / YYYY range ends"),
    ("d", "studies", [("StudyDate", "1993")], "dicomfs: matches the stored 1993.04.30"),
    ("d", "studies", [("StudyDate", "19930430")], "dicomfs: matches the stored 1993.04.30"),
    ("d", "studies", [("StudyDate", '""')], "PS3.4 C.2.2.2.7 Empty Value Matching"),
]

def dicomfs(level, comps):
    path = os.path.join(mnt, "query", level, *["%s=%s" % (k, urllib.parse.quote(v, safe="-*?^,\"")) for k, v in comps])
    try:
        rows = list(csv.DictReader(io.open(os.path.join(path, "manifest.csv"), newline="", encoding="utf-8")))
    except OSError as e:
        return "error: %s" % e.strerror
    return {r[UID[level][0]] for r in rows}

def orthanc(level, comps):
    # '*' and '^' unescaped: Orthanc 1.10's DICOMweb plugin takes them literally
    # only so (an escaped %2A finds nothing)
    url = "%s/dicom-web/%s?%s" % (base, level, urllib.parse.urlencode(
        comps + [("limit", "100000")], safe="*^,-", quote_via=urllib.parse.quote))
    try:
        with urllib.request.urlopen(url, timeout=60) as r:
            body = r.read()
    except urllib.error.HTTPError as e:
        return "error: HTTP %d" % e.code
    js = json.loads(body) if body.strip() else []
    return {x[UID[level][1]]["Value"][0] for x in js}

# a readable name for each UID: its tree path in the mount
desc = {}
for lv in ("studies", "series"):
    with io.open(os.path.join(mnt, "query", lv, "manifest.csv"), newline="", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            desc[r[UID[lv][0]]] = r["path"].replace("patients/", "")
fails = 0
print("%-2s %-58s %7s %7s  %s" % ("", "query", "dicomfs", "orthanc", "verdict"))
for judged, level, comps, note in Q:
    a, b = dicomfs(level, comps), orthanc(level, comps)
    label = "%s?%s" % (level, "&".join("%s=%s" % c for c in comps))
    na = a if isinstance(a, str) else len(a)
    nb = b if isinstance(b, str) else len(b)
    same = a == b
    verdict = "same" if same else "differ"
    if not same and not isinstance(a, str) and not isinstance(b, str):
        verdict += " (dicomfs only %s, orthanc only %s)" % (
            [desc.get(u, u) for u in sorted(a - b)][:3], [desc.get(u, u) for u in sorted(b - a)][:3])
    if note:
        verdict += "  [%s]" % note
    print("%-2s %-58s %7s %7s  %s" % (judged, label[:58], na, nb, verdict))
    if judged == "=" and not same:
        fails += 1
print("%d judged queries differ" % fails)
sys.exit(1 if fails else 0)
PYEOF
