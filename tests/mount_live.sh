#!/bin/bash
# mount_live: the archive changes while mounted (index.h I9, I10).
# Studies are copied in through temporary names (cp to .name.tmp, then mv,
# as rsync does) while readers of untouched instances run; files are
# deleted and replaced; a directory is moved in and out. Checked against
# the sources and pydicom: the patients/ tree and uids/, a query manifest,
# negative entries dropped at once (stat right after), inode numbers of
# untouched instances, the change feed (.dicomfs/changes.jsonl, its resume
# form changes/since/N.jsonl, across a remount) and that no read of an
# unaffected file failed.
. "$(dirname "$0")/lib.sh"
setup

ARCH="$TMP/archive"
MNT="$TMP/mnt"
STAGE="$TMP/stage"
IDX="$TMP/index"
GENL="$srcdir/tests/gen_live.py"
"$PY" "$GEN" --count 400 --jobs 2 "$ARCH" >/dev/null || fatal "gen_archive failed"
mount_start "$MNT" "$ARCH" -o index="$IDX" -o quiet || exit 1

# wait_for DESCRIPTION COMMAND...: poll up to 20 s (the target is 2 s; the
# machine may be loaded) for COMMAND to succeed
wait_for() {
	local what=$1 i
	shift
	for i in $(seq 400); do
		"$@" && return 0
		sleep 0.05
	done
	fail "$what: not seen after 20 s"
	return 1
}

# the .dcm files below patient directory $1 of patients/
count_dcm() { find "$MNT/patients/$1" -name '*.dcm' 2>/dev/null | wc -l; }

# ---- before: inodes of every instance, a negative entry cached ----
(cd "$MNT/patients" && find . -name '*.dcm' -printf '%i %P\n' | sort) >"$TMP/ino.before"
[ -s "$TMP/ino.before" ] || fatal "no instances listed"
P1="PAT P7001 (ID7001)"
stat "$MNT/patients/$P1" >/dev/null 2>&1 && fail "$P1 exists before it arrived"

# ---- readers of untouched instances, for the whole test ----
: >"$TMP/reader.fail"
(
	while [ ! -e "$TMP/readers.stop" ]; do
		find "$MNT/patients/PAT P0001 (ID0001)" -name '*.dcm' | while read -r f; do
			cat "$f" >/dev/null 2>>"$TMP/reader.fail" || echo "read failed: $f" >>"$TMP/reader.fail"
		done
		stat "$MNT/patients/PAT P0001 (ID0001)" >/dev/null 2>>"$TMP/reader.fail" ||
			echo "stat failed" >>"$TMP/reader.fail"
	done
) &
READERS=$!

# ---- arrival: 20 instances in 2 series, cp to a temporary name + mv ----
"$PY" "$GENL" "$STAGE/a" --patient 7001 --count 20 --series 2 --prefix a || fatal "gen_live failed"
mkdir -p "$ARCH/incoming"
t0=$(date +%s.%N)
for f in "$STAGE"/a/*.dcm; do
	b=$(basename "$f")
	cp "$f" "$ARCH/incoming/.$b.tmp" && mv "$ARCH/incoming/.$b.tmp" "$ARCH/incoming/$b"
done
wait_for "20 new instances of $P1" sh -c "[ \$(find '$MNT/patients/$P1' -name '*.dcm' 2>/dev/null | wc -l) -eq 20 ]" &&
	ok "20 copied-in instances visible after $(echo "$(date +%s.%N) - $t0" | bc) s (cached negative entry dropped)"

# every new .dcm has its source's bytes; the names come from pydicom's UIDs
"$PY" - "$MNT" "$ARCH/incoming" <<'EOF' || fail "new instances differ from their sources (above)"
import os, sys, pydicom
mnt, src = sys.argv[1], sys.argv[2]
bad = 0
for n in sorted(os.listdir(src)):
    p = os.path.join(src, n)
    ds = pydicom.dcmread(p)
    u = os.path.join(mnt, "uids", ds.StudyInstanceUID, ds.SeriesInstanceUID,
                     ds.SOPInstanceUID + ".dcm")
    if open(u, "rb").read() != open(p, "rb").read():
        print("uids/ copy of %s differs" % n); bad += 1
sys.exit(1 if bad else 0)
EOF
ok "uids/<study>/<series>/<sop>.dcm of every new file equals its source"

# query/ answers the new study (the catalog's next generation, C7)
man="$MNT/query/instances/PatientID=ID7001/manifest.csv"
n=$("$PY" -c 'import csv,sys; print(len(list(csv.DictReader(open(sys.argv[1])))))' "$man" 2>/dev/null)
[ "$n" = 20 ] && ok "query manifest lists the 20 new instances" ||
	fail "query/instances/PatientID=ID7001/manifest.csv lists '$n' instances, want 20"

# ---- the feed: one created line per instance, study and series lines ----
"$PY" - "$MNT/.dicomfs/changes.jsonl" "$ARCH/incoming" <<'EOF' || fail "feed after the arrival (above)"
import json, os, sys, pydicom
lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
seqs = [l["seq"] for l in lines]
assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "sequence numbers not consecutive: %s" % seqs
want = {}
for n in os.listdir(sys.argv[2]):
    ds = pydicom.dcmread(os.path.join(sys.argv[2], n))
    want[ds.SOPInstanceUID] = (ds.PatientID, ds.StudyInstanceUID, ds.SeriesInstanceUID, "incoming/" + n)
got = {l["instance"]: l for l in lines if l["level"] == "instance" and l["action"] == "created"}
assert set(got) == set(want), "created instances %d, want %d" % (len(got), len(want))
for sop, (pid, st, se, src) in want.items():
    l = got[sop]
    assert (l["patient"], l["study"], l["series"], l["source"]) == (pid, st, se, src), l
    # (the path at the time of the change: patients/ names of instances
    # widen as a series grows, 3.dcm -> 03.dcm; uids/ names never change)
    assert l["path"].startswith("patients/PAT P7001 (ID7001)/") and l["path"].endswith(".dcm"), l
studies = [l for l in lines if l["level"] == "study" and l["action"] == "created"]
series = [l for l in lines if l["level"] == "series" and l["action"] == "created"]
assert len(studies) == 1 and len(series) == 2, (studies, series)
assert os.path.isfile(os.path.join(os.path.dirname(sys.argv[1]), "..", studies[0]["path"], "study.fhir.json"))
EOF
ok "changes.jsonl: consecutive seq, 20 instance + 1 study + 2 series created lines matching pydicom"
LAST=$(tail -n 1 "$MNT/.dicomfs/changes.jsonl" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["seq"])')

# ---- delete 5, replace 1 (temporary name + mv) ----
ino_repl=$(stat -c %i "$MNT/uids/2.25.31415926.9.8001.1/2.25.31415926.9.8001.1.1/2.25.31415926.9.8001.1.1.1.dcm")
rm "$ARCH"/incoming/a_2_0000[1-5].dcm
"$PY" "$GENL" "$STAGE/r" --patient 7002 --count 1 --prefix r || fatal "gen_live failed"
cp "$STAGE/r/r_1_00001.dcm" "$ARCH/incoming/.x.tmp" && mv "$ARCH/incoming/.x.tmp" "$ARCH/incoming/a_1_00001.dcm"
wait_for "deletions" sh -c "[ \$(find '$MNT/patients/$P1' -name '*.dcm' 2>/dev/null | wc -l) -eq 14 ]" &&
	ok "5 deleted and 1 replaced instance gone from $P1"
wait_for "the replacement" test -e "$MNT/patients/PAT P7002 (ID7002)" && ok "the replacement's patient appeared"
ino_new=$(stat -c %i "$MNT/uids/2.25.31415926.9.8002.1/2.25.31415926.9.8002.1.1/2.25.31415926.9.8002.1.1.1.dcm")
[ "$ino_new" = "$ino_repl" ] && ok "a file replaced in place keeps its inode ($ino_new)" ||
	fail "replaced file: inode $ino_new, was $ino_repl (same source path)"
"$PY" - "$MNT/.dicomfs/changes/since/$LAST.jsonl" "$LAST" <<'EOF' || fail "feed since $LAST (above)"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
assert lines and lines[0]["seq"] == int(sys.argv[2]) + 1, "since/N must start at N+1: %s" % lines[:1]
inst = [(l["action"], l["source"]) for l in lines if l["level"] == "instance"]
dels = sorted(s for a, s in inst if a == "deleted")
assert dels == ["incoming/a_2_%05d.dcm" % k for k in range(1, 6)], dels
assert ("updated", "incoming/a_1_00001.dcm") in inst, inst
assert any(l["level"] == "study" and l["action"] == "created" and l["patient"] == "ID7002" for l in lines)
EOF
ok "changes/since/$LAST.jsonl: the 5 deletions and the replacement (updated), nothing before"

# ---- a directory moved in, then out: one event each ----
"$PY" "$GENL" "$TMP/movein/d" --patient 7003 --count 6 --prefix m || fatal "gen_live failed"
mv "$TMP/movein/d" "$ARCH/moved"
wait_for "moved-in directory" sh -c "[ \$(find '$MNT/patients/PAT P7003 (ID7003)' -name '*.dcm' 2>/dev/null | wc -l) -eq 6 ]" &&
	ok "a directory moved into the archive shows its 6 instances"
mv "$ARCH/moved" "$TMP/moved-out"
wait_for "moved-out directory" sh -c "! test -e '$MNT/patients/PAT P7003 (ID7003)'" &&
	ok "a directory moved out of the archive vanished"

# ---- a file added to a directory that existed at mount ----
"$PY" "$GENL" "$STAGE/late" --patient 7004 --count 1 --prefix late || fatal "gen_live failed"
# late_cycle HOW: a file copied into P0000/S1/SE1 (walked at mount) shows,
# and vanishes when removed
late_cycle() {
	cp "$STAGE/late/late_1_00001.dcm" "$ARCH/P0000/S1/SE1/late.dcm"
	wait_for "$1: a file in a directory of the mount's walk" \
		test -e "$MNT/patients/PAT P7004 (ID7004)" &&
		ok "$1: a file copied into a directory that existed at mount shows"
	rm "$ARCH/P0000/S1/SE1/late.dcm"
	wait_for "$1: its removal" sh -c "! test -e '$MNT/patients/PAT P7004 (ID7004)'" &&
		ok "$1: and vanishes when removed"
}
late_cycle inotify

# ---- untouched instances: same inodes; readers never failed ----
touch "$TMP/readers.stop"
wait "$READERS"
(cd "$MNT/patients" && find . -name '*.dcm' -printf '%i %P\n' | sort) >"$TMP/ino.after"
missing=$(comm -23 "$TMP/ino.before" "$TMP/ino.after" | wc -l)
[ "$missing" -eq 0 ] && ok "all $(wc -l <"$TMP/ino.before") original instances keep name and inode" ||
	fail "$missing original instances changed inode or name: $(comm -23 "$TMP/ino.before" "$TMP/ino.after" | head -3)"
if [ -s "$TMP/reader.fail" ]; then
	fail "reads of untouched instances failed: $(head -5 "$TMP/reader.fail")"
else
	ok "no read of an untouched instance failed during the changes"
fi
inst=$(status_get "$MNT" instances)
[ "$inst" = $((400 + 14 + 1)) ] && ok "status.json: $inst instances" ||
	fail "status.json instances $inst, want $((400 + 15))"

grep 'live: batch' "$MOUNT_LOG" | sed 's/^/    /'

# ---- the feed survives a remount; an unchanged archive is not re-parsed ----
END=$(tail -n 1 "$MNT/.dicomfs/changes.jsonl" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["seq"])')
SIZE=$(stat -c %s "$MNT/.dicomfs/changes.jsonl")
mount_stop
mount_start "$MNT" "$ARCH" -o index="$IDX" -o quiet || exit 1
[ "$(status_get "$MNT" files_parsed)" = 0 ] && ok "remount: nothing re-parsed" ||
	fail "remount re-parsed $(status_get "$MNT" files_parsed) files"
END2=$(tail -n 1 "$MNT/.dicomfs/changes.jsonl" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["seq"])')
[ "$END2" = "$END" ] && [ "$(stat -c %s "$MNT/.dicomfs/changes.jsonl")" = "$SIZE" ] &&
	ok "remount: the feed kept its $END lines" || fail "remount: feed ends at $END2 ($END before)"
[ ! -s "$MNT/.dicomfs/changes/since/$END.jsonl" ] && ok "since/<last>.jsonl is empty" ||
	fail "since/$END.jsonl not empty"
mount_stop

# ---- polling only (-o rescan, no inotify: DICOMFS_NO_WATCH) ----
DICOMFS_NO_WATCH=1 mount_start "$MNT" "$ARCH" -o index="$IDX" -o quiet -o rescan=1 || exit 1
late_cycle "-o rescan=1 without inotify"
inst=$(status_get "$MNT" instances)
[ "$inst" = 415 ] && ok "after the rescans: $inst instances (nothing lost)" ||
	fail "after the rescans: $inst instances, want 415"
mount_stop

# ---- changes before the watch exists: its catch-up (source.h R8) ----
# The watch starts on the live thread after the mount answers; here 3 s
# late (DICOMFS_WATCH_DELAY_MS, as on an archive of very many directories),
# without polling. A file copied into a directory of the mount's walk and a
# directory created with a file in it before then carry no inotify event:
# the catch-up reports their directories (mtime not older than the walk).
"$PY" "$GENL" "$STAGE/early" --patient 7005 --count 5 --prefix early || fatal "gen_live failed"
DICOMFS_WATCH_DELAY_MS=3000 mount_start "$MNT" "$ARCH" -o index="$IDX" -o quiet || exit 1
cp "$STAGE/late/late_1_00001.dcm" "$ARCH/P0000/S1/SE1/late.dcm"
cp -r "$STAGE/early" "$ARCH/early"
[ -e "$MNT/patients/PAT P7004 (ID7004)" ] && fail "catch-up: visible before the watch started (the test proves nothing)"
wait_for "catch-up: a file copied in before the watch" test -e "$MNT/patients/PAT P7004 (ID7004)" &&
	ok "catch-up: a file copied into a walked directory before its watch existed shows"
wait_for "catch-up: a directory created before the watch" sh -c "[ \$(find '$MNT/patients/PAT P7005 (ID7005)' -name '*.dcm' 2>/dev/null | wc -l) -eq 5 ]" &&
	ok "catch-up: a directory created before the watches, with 5 files, shows"
rm -r "$ARCH/early" "$ARCH/P0000/S1/SE1/late.dcm"
wait_for "catch-up: watched after it" sh -c "! test -e '$MNT/patients/PAT P7004 (ID7004)' && ! test -e '$MNT/patients/PAT P7005 (ID7005)'" &&
	ok "catch-up: the directories are watched afterwards (removals show)"
mount_stop

# ---- the tree updated in place equals a full build (index.h I11) ----
# Arrivals of a new patient, a new series in its study, deletions, a study
# and a patient emptied, a file replaced by another patient's, SOP Instance
# UID duplicates (one of them the new winner): then the whole tree
# (names, listing order, types, nlink, modes, owners, mtimes, sizes),
# status.json's counts and errors.tsv's duplicate / volume / anon lines,
# without inode numbers, against a mount that builds a fresh index. Also
# patient names that collide (suffixed, then plain again) and a patient
# without a PatientID.
snap() {
	{
		stat -c 'root %h %Y' "$MNT"
		(cd "$MNT" && find patients uids anon sources -printf '%y %n %m %U %G %T@ %s %p\n')
		for k in instances patients studies series duplicates skipped errors; do
			echo "$k $(status_get "$MNT" $k)"
		done
		# (in the order of node ids, which differ between the indexes)
		grep -E 'duplicate of|conflict:|no volume|anon:' "$MNT/.dicomfs/errors.tsv" | LC_ALL=C sort
	} >"$1"
}
status_is() { [ "$(status_get "$MNT" "$1")" = "$2" ]; }
mount_start "$MNT" "$ARCH" -o index="$IDX" -o quiet || exit 1
P10="PAT P7010 (ID7010)"
"$PY" "$GENL" "$STAGE/c1" --patient 7010 --count 4 --series 2 --prefix c || fatal "gen_live failed"
"$PY" "$GENL" "$STAGE/c2" --patient 7010 --count 2 --first-series 2 --prefix d || fatal "gen_live failed"
mkdir -p "$ARCH/cmp"
cp "$STAGE"/c1/*.dcm "$ARCH/cmp/"
wait_for "a new patient" sh -c "[ \$(find '$MNT/patients/$P10' -name '*.dcm' 2>/dev/null | wc -l) -eq 4 ]"
cp "$STAGE"/c2/*.dcm "$ARCH/cmp/"
wait_for "a new series in its study" sh -c "[ \$(find '$MNT/patients/$P10' -name '*.dcm' 2>/dev/null | wc -l) -eq 6 ]"
n0=$(status_get "$MNT" instances)
gone=$(($(find "$ARCH/P0000/S2" -type f | wc -l) + 3 + 1))
rm "$ARCH"/P0000/S1/SE2/IM0000[1-3]    # three instances of a series
rm -r "$ARCH/P0000/S2"                  # a study emptied
rm "$ARCH/incoming/a_1_00001.dcm"      # patient P7002 emptied
wait_for "deletions" status_is instances $((n0 - gone))
cp "$ARCH/cmp/c_1_00001.dcm" "$TMP/repl.dcm"
"$PY" "$GENL" "$STAGE/c3" --patient 7010 --count 1 --first-series 3 --prefix e || fatal "gen_live failed"
cp "$STAGE/c3/e_4_00001.dcm" "$ARCH/flat/.r.tmp" && mv "$ARCH/flat/.r.tmp" "$ARCH/flat/0001_1_1_00045.dcm"
cp "$ARCH/flat/0001_1_1_00002.dcm" "$ARCH/zdup.dcm"      # a duplicate that loses
mkdir -p "$ARCH/0dup" && cp "$ARCH/flat/0001_1_1_00004.dcm" "$ARCH/0dup/x.dcm"  # and wins
wait_for "replacement and duplicates" sh -c "[ \$(find '$MNT/patients/$P10' -name '*.dcm' 2>/dev/null | wc -l) -eq 7 ] && [ \"\$(grep -c 'duplicate of' '$MNT/.dicomfs/errors.tsv')\" = 2 ]"
test -e "$MNT/patients/PAT P7002 (ID7002)" && fail "an emptied patient is still listed"
# a SOP Instance UID reused by another patient: a conflict, both shown; a
# later batch in the first patient keeps the names a full build gives
"$PY" - "$ARCH/flat/0001_1_1_00003.dcm" "$STAGE/conf.dcm" <<'PYEOF' || fatal "conflict not written"
import sys, pydicom
ds = pydicom.dcmread(sys.argv[1])
ds.PatientID = "CONF1"
ds.PatientName = "CONFLICT"
ds.save_as(sys.argv[2])
PYEOF
cp "$STAGE/conf.dcm" "$ARCH/.conf.tmp" && mv "$ARCH/.conf.tmp" "$ARCH/conf.dcm"
wait_for "a conflict" sh -c "grep -q 'conflict: SOP Instance UID' '$MNT/.dicomfs/errors.tsv'"
rm "$ARCH/zdup.dcm"
wait_for "a duplicate removed" sh -c "[ \"\$(grep -c 'duplicate of' '$MNT/.dicomfs/errors.tsv')\" = 1 ]"
[ "$(find "$MNT/uids" -name '*-conflict2*' | wc -l)" -ge 1 ] &&
	ok "a conflict is shown in both patients, the second copy in uids/ as <UID>-conflict2" ||
	fail "conflict names: $(find "$MNT/uids" -name '*conflict*' | head -3)"
# colliding patient names (PatientIDs that sanitize alike: each suffixed,
# and back when the other goes) and a patient without a PatientID
"$PY" - "$srcdir/tests" "$STAGE/coll" <<'PYEOF' || fatal "colliding patients not written"
import io, os, sys, pydicom
sys.path.insert(0, sys.argv[1])
import gen_archive as ga
os.makedirs(sys.argv[2], exist_ok=True)
for n, pid, name in ((7020, "ID70/11", "COLL"), (7021, "ID70\\11", "COLL"),
                     (7022, "ID70_11", "COLL"), (7023, "ID71/22", "COLL"),
                     (7024, "ID71\\22", "COLL"), (7025, "", "NOID")):
    ds = pydicom.dcmread(io.BytesIO(ga.big_bytes(n, 0, 0, 1, ga.big_pixels(n))))
    if pid:
        ds.PatientID = pid
    else:
        del ds.PatientID
    ds.PatientName = name
    ds.save_as(os.path.join(sys.argv[2], "k%d.dcm" % n))
PYEOF
mkpat() { # mkpat N: patient N of the above into the archive, one batch
	local n
	n=$(status_get "$MNT" instances)
	cp "$STAGE/coll/k$1.dcm" "$ARCH/coll/.k$1.tmp" && mv "$ARCH/coll/.k$1.tmp" "$ARCH/coll/k$1.dcm"
	wait_for "patient $1" status_is instances $((n + 1))
}
mkdir -p "$ARCH/coll"
mkpat 7020 && mkpat 7021 && mkpat 7022 && mkpat 7023 && mkpat 7024 && mkpat 7025 ||
	fatal "colliding patients"
n=$(status_get "$MNT" instances)
rm "$ARCH/coll/k7021.dcm" "$ARCH/coll/k7024.dcm"
wait_for "colliding patients removed" status_is instances $((n - 2))
[ "$(ls "$MNT/patients" | grep -c '^COLL (ID70_11) ~')" = 2 ] && [ -d "$MNT/patients/COLL (ID71_22)" ] &&
	ok "colliding names: suffixed while they collide, plain again when the other left" ||
	fail "colliding names: $(ls "$MNT/patients" | grep COLL | tr '\n' '|')"
snap "$TMP/tree.incr"
grep -q 'tree .*CPU' "$MOUNT_LOG" || fail "no live batch in the log"
mount_stop
mount_start "$MNT" "$ARCH" -o index="$TMP/index.fresh" -o anon_key="$IDX/anon.key" -o quiet || exit 1
snap "$TMP/tree.full"
mount_stop
if cmp -s "$TMP/tree.incr" "$TMP/tree.full"; then
	ok "the tree updated in place equals a fresh full build ($(wc -l <"$TMP/tree.full") lines: patients/, uids/, anon/, sources/, counts, reports)"
else
	fail "the tree updated in place differs from a full build: $(diff "$TMP/tree.incr" "$TMP/tree.full" | head -20)"
fi
# tree.c H1, H2 (DICOMFS_TREE_AHEAD=all): every volume answer of patients/
# from the build's helper thread, and anon/'s pick in chunks of 4 taken by
# both threads, give the same tree and reports; store.h S4
# (DICOMFS_STORE_WARM=all): the page cache read ahead of the commits
# changes nothing, and what LMDB did not use of it is given back
DICOMFS_TREE_AHEAD=all DICOMFS_STORE_WARM=all mount_start "$MNT" "$ARCH" \
	-o index="$TMP/index.ahead" -o anon_key="$IDX/anon.key" || exit 1
snap "$TMP/tree.ahead"
mount_stop
if cmp -s "$TMP/tree.ahead" "$TMP/tree.full"; then
	ok "volume answers all from the helper thread, anon/'s pick in small chunks, pages read ahead: the same tree and reports as the full build"
else
	fail "helper-thread volume answers differ: $(diff "$TMP/tree.ahead" "$TMP/tree.full" | head -20)"
fi
warm=$(sed -n 's/.*commit: .*(\([0-9]*\) KiB of its pages read ahead, \([0-9]*\) KiB not used given back).*/\1 \2/p' "$MOUNT_LOG")
pages=$(mdb_stat -e "$TMP/index.ahead" | sed -n 's/^ *Number of pages used: //p')
psize=$(mdb_stat -e "$TMP/index.ahead" | sed -n 's/^ *Page size: //p')
size=$(stat -c %s "$TMP/index.ahead/data.mdb")
if [ -n "$warm" ] && [ "${warm#* }" -gt 0 ] && [ -n "$pages" ] && [ "$size" = $((pages * psize)) ]; then
	ok "pages read ahead of the commits (${warm% *} KiB), ${warm#* } KiB not used given back: data.mdb is its $pages pages"
else
	fail "read ahead: log '${warm:-none}', data.mdb $size bytes for ${pages:-?} pages of ${psize:-?}"
fi
# index.h I13: a first build in parts (a few patients at a time, as -o
# build_mem makes it for a large archive) gives the same tree
DICOMFS_TREE_PART=3 mount_start "$MNT" "$ARCH" -o index="$TMP/index.parts" \
	-o anon_key="$IDX/anon.key" -o quiet || exit 1
snap "$TMP/tree.parts"
parts=$(status_get "$MNT" tree_parts)
mount_stop
if [ "${parts:-0}" -gt 3 ] && cmp -s "$TMP/tree.parts" "$TMP/tree.full"; then
	ok "a first build in $parts parts equals the full build"
else
	fail "a build in parts (${parts:-?} parts) differs from the full build: $(diff "$TMP/tree.parts" "$TMP/tree.full" | head -20)"
fi
