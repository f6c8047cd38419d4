#!/bin/bash
# query/ directories and the uids/ view: mount the messy archive plus a few
# files with a private tag and PatientWeight, check every matching rule, the
# manifests, the symlinks and the errnos against pydicom (query_oracle.py);
# then remount on the same index with -o index_tags=PatientWeight,00091001
# and check the log and status.json say it re-indexed, and the new tags
# match.
. "${srcdir:-$(dirname "$0")/..}/tests/lib.sh"
setup

ARCH="$TMP/arch"
MNT="$TMP/mnt"
ORACLE="$srcdir/tests/query_oracle.py"

log "generating the messy archive and the query extras"
"$PY" "$GEN" "$ARCH" >/dev/null || fatal "gen_archive.py failed"
"$PY" - "$ARCH/query-extra" <<'PYEOF' || fatal "writing the extra files failed"
import os, sys
from pydicom.dataset import Dataset, FileMetaDataset
out = sys.argv[1]
os.makedirs(out)
R = "2.25.31415926.88"
for k in range(1, 4):
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.SOPInstanceUID = "%s.1.1.%d" % (R, k)
    ds.StudyDate = "20230310"
    ds.StudyTime = "101500"
    ds.Modality = "SR" if k == 1 else "CT"   # ModalitiesInStudy: sorted, not SR\\CT
    ds.StudyDescription = "A/B test"
    ds.SeriesDescription = "QA series"
    ds.PatientName = "QA^Alice"
    ds.PatientID = "QA1"
    ds.PatientSex = "F"
    ds.PatientWeight = "70" if k < 3 else "71.5"
    ds.StudyInstanceUID = R + ".1"
    ds.SeriesInstanceUID = R + ".1." + str(k)
    ds.SeriesNumber = str(k)
    ds.InstanceNumber = "1"
    ds.add_new(0x00090010, "LO", "DICOMFS QA")
    ds.add_new(0x00091001, "LO", "QA-%d" % k)
    fm = FileMetaDataset()
    fm.MediaStorageSOPClassUID = ds.SOPClassUID
    fm.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    fm.TransferSyntaxUID = "1.2.840.10008.1.2.1"
    ds.file_meta = fm
    ds.is_little_endian = True
    ds.is_implicit_VR = False
    ds.save_as(os.path.join(out, "qa%d.dcm" % k), write_like_original=False)
# glob specials and an ACR-NEMA date in the values that name things
import warnings
warnings.filterwarnings("ignore")
for k in range(1, 3):
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
    ds.SOPInstanceUID = "%s.2.1.%d" % (R, k)
    ds.StudyInstanceUID = R + ".2"
    ds.SeriesInstanceUID = R + ".2.%d" % k
    ds.PatientName = "Meier^Peter"
    ds.PatientID = "Q[1]*"
    ds.StudyDate = "1993.04.30"
    ds.StudyDescription = "Scan [v2] final?"
    ds.AccessionNumber = "[A1]"
    ds.Modality = "MR"
    ds.Manufacturer = "SIEMENS"
    ds.SeriesDescription = "~tilde*" if k == 1 else "x[!a]y"
    ds.SeriesNumber = str(k)
    ds.InstanceNumber = "1"
    fm = FileMetaDataset()
    fm.MediaStorageSOPClassUID = ds.SOPClassUID
    fm.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    fm.TransferSyntaxUID = "1.2.840.10008.1.2.1"
    ds.file_meta = fm
    ds.is_little_endian = True
    ds.is_implicit_VR = False
    ds.save_as(os.path.join(out, "glob%d.dcm" % k), write_like_original=False)
PYEOF

mount_start "$MNT" "$ARCH" -o index="$TMP/idx" || exit 1
log "names are glob-safe: glob.glob and pathlib.glob find what os.walk finds"
if "$PY" - "$MNT" <<'PYEOF'; then
import glob, os, pathlib, sys
mnt = sys.argv[1]
bad = []
walk = set()
dirs = 0
for top in ("patients", "uids", "anon"):
    for d, sub, files in os.walk(os.path.join(mnt, top)):
        dirs += 1
        names = sorted(n for n in sub + files if not n.startswith("."))
        # the directory's own path as a pattern: a name holding * ? [ ]
        # would be taken as glob syntax here
        got = sorted(os.path.basename(p) for p in glob.glob(os.path.join(d, "*")))
        if got != names:
            bad.append("glob.glob(%r): %d names, os.listdir %d" % (d, len(got), len(names)))
        for n in names:
            if set(n) & set("*?[]") or n.startswith("~"):
                bad.append("glob special in %r" % os.path.join(d, n))
        walk.update(os.path.join(d, f) for f in files if f.endswith(".dcm"))
g = set(glob.glob(os.path.join(mnt, "patients", "**", "*.dcm"), recursive=True))
g |= set(glob.glob(os.path.join(mnt, "uids", "*", "*", "*.dcm")))
g |= set(glob.glob(os.path.join(mnt, "anon", "**", "*.dcm"), recursive=True))
p = set()
for top in ("patients", "uids", "anon"):
    p |= {str(x) for x in pathlib.Path(mnt, top).rglob("*.dcm")}
if g != walk:
    bad.append("glob.glob finds %d .dcm, os.walk %d (e.g. %s)" % (len(g), len(walk), sorted(walk - g)[:2]))
if p != walk:
    bad.append("pathlib rglob finds %d .dcm, os.walk %d" % (len(p), len(walk)))
studies = [d for d in glob.glob(os.path.join(mnt, "patients", "*", "*")) if "Scan" in d]
if not studies or any("[" in s for s in studies):
    bad.append("the study with '[v2]' / '[A1]' is not there as expected: %s" % studies)
else:
    print("  e.g. %s" % os.path.relpath(studies[0], mnt))
    # the issue's case: a path made from a listing, used as a pattern
    n = len(glob.glob(os.path.join(studies[0], "*", "*.dcm")))
    if n != 2:
        bad.append("glob below %r finds %d .dcm, want 2" % (studies[0], n))
# query/ link names (the tree's names) too
q = os.path.join(mnt, "query", "series", "Manufacturer=SIEMENS")
links = sorted(n for n in os.listdir(q) if not n.startswith("manifest"))
if sorted(os.path.basename(x) for x in glob.glob(os.path.join(q, "*")) if not x.endswith(("manifest.csv", "manifest.jsonl"))) != links or len(links) != 2:
    bad.append("query/ links %s and glob disagree" % links)
for b in bad:
    print("FAIL:", b)
print("%d directories, %d .dcm: glob.glob, pathlib and os.walk agree" % (dirs, len(walk)) if not bad else "")
sys.exit(1 if bad else 0)
PYEOF
	ok "glob.glob / pathlib find every .dcm os.walk finds"
else
	fail "glob-unsafe names (above)"
fi
log "query rules, manifests, symlinks, errnos and uids/ against pydicom"
if timeout 600 "$PY" "$ORACLE" "$MNT" "$ARCH" base; then
	ok "query/ and uids/ agree with pydicom"
else
	fail "query_oracle.py (base) found problems (above)"
fi
# the oracle's burst of errors may fill a second of the log limiter
# (log.h: at most a few similar lines a second): ask once more, alone
sleep 1.1
stat "$MNT/query/series/PatientWeight=71" >/dev/null 2>&1
grep -q "is not indexed: remount with -o index_tags=00101030" "$MOUNT_LOG" &&
	ok "an unindexed tag logs what to do" || fail "no log line for the unindexed tag"
grep -q "'Foo' is not a DICOM keyword" "$MOUNT_LOG" &&
	ok "a bad keyword logs why" || fail "no log line for the bad keyword"
[ "$(status_get "$MNT" tags_reindexed)" = "False" ] || fail "status.json: tags_reindexed on a fresh index"
mount_stop

log "remount on the same index with -o index_tags=PatientWeight,00091001"
mount_start "$MNT" "$ARCH" -o index="$TMP/idx" -o index_tags=PatientWeight,00091001 || exit 1
if grep -q "the indexed tag set grew by 2 tag(s): 00091001 (private), 00101030 (PatientWeight).*re-parsed" "$MOUNT_LOG"; then
	ok "the log says the index was re-indexed for the new tags"
else
	fail "no re-index log line:"; sed 's/^/    /' "$MOUNT_LOG"
fi
[ "$(status_get "$MNT" tags_reindexed)" = "True" ] && ok "status.json: tags_reindexed" ||
	fail "status.json: tags_reindexed is not true"
"$PY" -c 'import json,sys; t=json.load(open(sys.argv[1]))["indexed_tags"]; sys.exit(0 if "00091001" in t and "00101030" in t else 1)' \
	"$MNT/.dicomfs/status.json" && ok "status.json lists the new tags" || fail "status.json indexed_tags lacks the new tags"
if timeout 600 "$PY" "$ORACLE" "$MNT" "$ARCH" extra; then
	ok "private tag and PatientWeight match after index_tags"
else
	fail "query_oracle.py (extra) found problems (above)"
fi
mount_stop

log "remount without index_tags: nothing re-parsed, the tags stay indexed"
mount_start "$MNT" "$ARCH" -o index="$TMP/idx" || exit 1
[ "$(status_get "$MNT" files_parsed)" = "0" ] && ok "nothing re-parsed" ||
	fail "files_parsed=$(status_get "$MNT" files_parsed) on an unchanged remount"
n=$(ls "$MNT/query/instances/00091001=QA-1" | grep -vc manifest)
[ "$n" = "1" ] && ok "00091001 still queryable" || fail "00091001=QA-1 lists $n links"
mount_stop
