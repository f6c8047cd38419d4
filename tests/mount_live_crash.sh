#!/bin/bash
# mount_live_crash: kill -9 of a live mount during a burst of arrivals
# (index.h I9: one write transaction per batch). The next mount must use
# the index as it is: no rebuild, only the files that arrived after the last
# committed batch parsed, every arrival present, and each new instance in
# the change feed exactly once ("created"), with consecutive sequence
# numbers across the crash.
. "$(dirname "$0")/lib.sh"
setup

ARCH="$TMP/archive"
MNT="$TMP/mnt"
IDX="$TMP/index"
GENL="$srcdir/tests/gen_live.py"
N=300
"$PY" "$GEN" --count 300 --jobs 2 "$ARCH" >/dev/null || fatal "gen_archive failed"
"$PY" "$GENL" "$TMP/stage" --patient 7100 --count $N --series 3 --prefix b || fatal "gen_live failed"
# an earlier change, so the feed has lines before the crash
"$PY" "$GENL" "$TMP/early" --patient 7101 --count 2 --prefix e || fatal "gen_live failed"
mount_start "$MNT" "$ARCH" -o index="$IDX" -o quiet || exit 1
mkdir -p "$ARCH/early"
cp "$TMP"/early/*.dcm "$ARCH/early/"
for i in $(seq 400); do
	[ -e "$MNT/patients/PAT P7101 (ID7101)" ] && break
	sleep 0.05
done
[ -e "$MNT/patients/PAT P7101 (ID7101)" ] || fail "the early arrival did not show"

# the burst: files arrive through temporary names, one after the other
mkdir -p "$ARCH/burst"
(
	for f in "$TMP"/stage/*.dcm; do
		b=$(basename "$f")
		cp "$f" "$ARCH/burst/.$b.part" && mv "$ARCH/burst/.$b.part" "$ARCH/burst/$b"
	done
) &
COPIER=$!
# kill once some of the burst is visible (a batch committed), while the
# rest still arrives
for i in $(seq 400); do
	n=$(find "$MNT/patients/PAT P7100 (ID7100)" -name '*.dcm' 2>/dev/null | wc -l)
	[ "$n" -gt 0 ] && break
	sleep 0.02
done
log "killing dicomfs (pid $MOUNT_PID) with $n of $N burst instances visible"
kill -9 "$MOUNT_PID"
wait "$MOUNT_PID" 2>/dev/null
fusermount3 -u -z "$MNT" 2>/dev/null
MOUNTED=
wait "$COPIER"
[ "$n" -gt 0 ] || fail "no burst instance was visible before the kill"
[ "$n" -lt $N ] || log "note: the whole burst was visible before the kill"

mount_start "$MNT" "$ARCH" -o index="$IDX" -o quiet || exit 1
parsed=$(status_get "$MNT" files_parsed)
inst=$(status_get "$MNT" instances)
[ "$inst" = $((300 + 2 + N)) ] && ok "remount after kill -9: all $inst instances" ||
	fail "remount after kill -9: $inst instances, want $((300 + 2 + N))"
if [ "$parsed" -le $((N - n)) ]; then
	ok "remount parsed $parsed files (the $((N - n)) or fewer not committed before the kill): no full re-parse"
else
	fail "remount parsed $parsed files; at most $((N - n)) arrived after the last visible batch"
fi
grep -q "rebuilding" "$MOUNT_LOG" && fail "the index was rebuilt: $(grep rebuilding "$MOUNT_LOG")"
"$PY" - "$MNT/.dicomfs/changes.jsonl" "$TMP/stage" <<'EOF' || fail "feed across the crash (above)"
import collections, json, os, sys, pydicom
lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
seqs = [l["seq"] for l in lines]
assert seqs == list(range(1, len(seqs) + 1)), "seq not 1..n: %s" % seqs[:10]
created = collections.Counter(l["instance"] for l in lines
                              if l["level"] == "instance" and l["action"] == "created")
want = {pydicom.dcmread(os.path.join(sys.argv[2], n)).SOPInstanceUID for n in os.listdir(sys.argv[2])}
missing = [u for u in want if created[u] != 1]
assert not missing, "%d burst instances not created exactly once: %s" % (len(missing), missing[:3])
assert sum(1 for l in lines if l["level"] == "study" and l["action"] == "created") == 2
EOF
ok "feed: seq 1..n, each of the $N burst instances created exactly once across the crash"
mount_stop
