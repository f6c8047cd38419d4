#!/bin/bash
# The smaller items of issue 11, on a real mount:
# - manifest.csv: a cell a spreadsheet would take for a formula (= + - @)
#   starts with a single quote (manifest.c M1); manifest.jsonl keeps the
#   value and is valid UTF-8 even for a name that is not;
# - query names go into the log escaped (log.h L1: no control character)
#   and throttled (L2: at most 10 lines a second, the rest counted);
# - invalid DA ranges (00000000-99999999, month 13, day 32) are EINVAL;
# - a series wider than 32767 columns has no volume.nii (NIfTI-1 dim[] is
#   int16) and errors.tsv says why; a normal series keeps its volume;
# - under ulimit -v 3000000 the mount works (a smaller LMDB map, a log
#   line); under a limit too small for any map, one clear line, exit 4.
. "${srcdir:-$(dirname "$0")/..}/tests/lib.sh"
setup

ARCH="$TMP/arch"
MNT="$TMP/mnt"
"$PY" "$srcdir/tests/gen_hygiene.py" "$ARCH" >/dev/null || fatal "gen_hygiene.py failed"
mount_start "$MNT" "$ARCH" -o index="$TMP/idx" || exit 1

# --- manifests ---------------------------------------------------------------
for level in studies series instances; do
	"$PY" - "$MNT/query/$level" <<'PYEOF' && ok "$level: csv formulas quoted, jsonl valid UTF-8 with the values" || fail "$level manifests (above)"
import csv, io, json, sys
d = sys.argv[1]
bad = []
raw = open(d + "/manifest.jsonl", "rb").read()
try:
    text = raw.decode("utf-8")          # strict: invalid UTF-8 raises
except UnicodeDecodeError as e:
    print("manifest.jsonl is not UTF-8:", e); sys.exit(1)
jrows = [json.loads(l) for l in text.splitlines()]
rows = list(csv.DictReader(io.open(d + "/manifest.csv", newline="", encoding="utf-8")))
if len(rows) != len(jrows) or not rows:
    print("rows: csv %d, jsonl %d" % (len(rows), len(jrows))); sys.exit(1)
seen = set()
for r, j in zip(rows, jrows):
    for k, v in r.items():
        if v[:1] in ("=", "+", "-", "@", "\t", "\r"):
            bad.append("%s: csv cell %r starts a formula" % (k, v))
        jv = j.get(k)
        jv = "" if jv is None else str(jv)
        if jv[:1] in ("=", "+", "-", "@"):
            if v != "'" + jv:
                bad.append("%s: csv %r, want %r" % (k, v, "'" + jv))
            seen.add(jv)
        elif v != jv:
            bad.append("%s: csv %r != jsonl %r" % (k, v, jv))
want = {'=HYPERLINK("http://example.invalid/x","y")', "+41", "-2+3"}
if not want <= seen:
    bad.append("formula values not seen in jsonl: %s" % sorted(want - seen))
if "\ufffd" not in text:
    bad.append("the non-UTF-8 PatientName is not in manifest.jsonl as U+FFFD")
for b in bad[:10]:
    print("   ", b)
sys.exit(1 if bad else 0)
PYEOF
done

# --- query names in the log: escaped and throttled ---------------------------
evil=$'StudyDate=x\033[31mRED\ndicomfs: forged line\177'
ls "$MNT/query/studies/$evil" >/dev/null 2>&1
sleep 0.2
if LC_ALL=C grep -q "$(printf '\033')" "$MOUNT_LOG" || grep -q '^dicomfs: forged line' "$MOUNT_LOG"; then
	fail "a control character or a forged line reached the log:"
	cat -v "$MOUNT_LOG" | grep -i -e forged -e RED | sed 's/^/    /'
else
	grep -qF 'x\x1b[31mRED\x0adicomfs: forged line\x7f' "$MOUNT_LOG" &&
		ok "query name logged escaped (\\xNN)" ||
		fail "no escaped query name in the log: $(grep RED "$MOUNT_LOG" | cat -v)"
fi
before=$(grep -c "query 'studies/StudyDate=flood" "$MOUNT_LOG")
t0=$(date +%s.%N)
"$PY" - "$MNT/query/studies" <<'PYEOF'
import os, sys
for i in range(2000):
    try:
        os.stat(os.path.join(sys.argv[1], "StudyDate=flood%d" % i))
    except OSError:
        pass
PYEOF
t1=$(date +%s.%N)
sleep 1.2
ls "$MNT/query/studies/StudyDate=after-the-flood" >/dev/null 2>&1
sleep 0.2
n=$(($(grep -c "query 'studies/StudyDate=flood" "$MOUNT_LOG") - before))
secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%d", b - a }')
max=$(((${secs:-0} + 2) * 10))
[ "$n" -le "$max" ] && [ "$n" -gt 0 ] && ok "2000 bad queries in ${secs}s: $n log lines (at most $max)" ||
	fail "2000 bad queries in ${secs}s: $n log lines, want 1..$max"
grep -q "similar lines dropped (at most 10 a second)" "$MOUNT_LOG" &&
	ok "the dropped lines are counted: $(grep 'similar lines dropped' "$MOUNT_LOG" | tail -1)" ||
	fail "no 'similar lines dropped' line"
daemon_alive || fail "dicomfs died"

# --- DA ranges that name no day ------------------------------------------------
for q in StudyDate=00000000-99999999 StudyDate=20201301 StudyDate=20200132 \
	StudyDate=20201231-20200101; do
	if ls "$MNT/query/studies/$q" >/dev/null 2>"$TMP/q.err"; then
		fail "$q: listed, want EINVAL"
	elif grep -q "Invalid argument" "$TMP/q.err"; then
		ok "$q: EINVAL"
	else
		fail "$q: $(cat "$TMP/q.err")"
	fi
done
n=$(ls "$MNT/query/studies/StudyDate=20200101-20200131" | grep -vc manifest)
[ "$n" -eq 4 ] && ok "a valid range still matches ($n studies)" || fail "valid range: $n studies, want 4"

# --- NIfTI-1 dims ----------------------------------------------------------------
wide=$(find "$MNT/patients" -path '*WIDE*' -name '*.dcm' | head -1)
vol=$(find "$MNT/patients" -path '*VOL*' -name '*.dcm' | head -1)
[ -n "$wide" ] && [ -n "$vol" ] || fatal "series not found"
[ ! -e "$(dirname "$wide")/volume.nii" ] && [ ! -e "$(dirname "$wide")/volume.npy" ] &&
	ok "40000 columns: no volume.nii / volume.npy" || fail "40000 columns: a volume is listed"
grep -q "no volume: .*32767" "$MNT/.dicomfs/errors.tsv" && ok "errors.tsv says why" ||
	fail "no 'no volume: ... 32767' in errors.tsv"
[ -s "$(dirname "$vol")/volume.nii" ] && ok "a 3-column series keeps its volume.nii" ||
	fail "the 4x3 series has no volume.nii"
mount_stop

# --- the LMDB map under an address-space limit -------------------------------------
(ulimit -v 3000000 && exec "$DICOMFS" -f -o index="$TMP/idx-v" "$ARCH" "$MNT") \
	>"$TMP/v.log" 2>&1 </dev/null &
MOUNT_PID=$!
echo "$MOUNT_PID" >"$TMP/daemon.pid"
MOUNTED=$MNT
for i in $(seq 100); do timeout 10 mountpoint -q "$MNT" && break; kill -0 $MOUNT_PID 2>/dev/null || break; sleep 0.2; done
if timeout 10 mountpoint -q "$MNT"; then
	ok "ulimit -v 3000000: mounted"
	[ "$(find "$MNT/patients" -name '*.dcm' | wc -l)" -eq 6 ] && ok "ulimit -v 3000000: 6 instances" ||
		fail "ulimit -v 3000000: instances missing"
	# the map is sized to the archive (store.h S3): it fits, nothing to say
	grep -q "ulimit -v" "$TMP/v.log" && fail "a limit line, though the map fits: $(cat "$TMP/v.log")" ||
		ok "the map fits under the limit: no limit line"
	mount_stop
else
	fail "ulimit -v 3000000: no mount: $(cat "$TMP/v.log")"
	MOUNTED=
fi
(ulimit -v 40000 && exec "$DICOMFS" -f -o index="$TMP/idx-w" "$ARCH" "$MNT") \
	>"$TMP/w.out" 2>"$TMP/w.err" </dev/null
rc=$?
grep -v '^dicomfs: indexing' "$TMP/w.err" >"$TMP/w.err2"
# the map shrinks to what the limit leaves (lines saying so), then what
# fails says the limit is the reason
if [ "$rc" -eq 4 ] && tail -1 "$TMP/w.err2" | grep -q "RLIMIT_AS, ulimit -v"; then
	ok "ulimit -v 40000: exit 4, last line: $(tail -1 "$TMP/w.err2")"
else
	fail "ulimit -v 40000: exit $rc: $(cat "$TMP/w.err")"
fi
mountpoint -q "$MNT" && fusermount3 -u "$MNT"
exit 0
