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
PYEOF

mount_start "$MNT" "$ARCH" -o index="$TMP/idx" || exit 1
log "query rules, manifests, symlinks, errnos and uids/ against pydicom"
if timeout 600 "$PY" "$ORACLE" "$MNT" "$ARCH" base; then
	ok "query/ and uids/ agree with pydicom"
else
	fail "query_oracle.py (base) found problems (above)"
fi
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
