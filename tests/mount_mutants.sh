#!/bin/bash
# A corpus of >= 1000 mutated files (tests/gen_mutants.py: bit flips,
# truncations, huge length fields, zeroed lengths, emptied values, extreme
# pixel attributes, nested-sequence / item / element / fragment bombs) made
# from Debian's pydicom test files and the generated archive. The mount
# comes up in bounded time, every entry of the tree can be stat'ed and its
# xattrs read, every file reads whole or fails with EIO (no other error, no
# hang), and the mount still answers at the end.
# Bad files fail fast (issue 12, fs/kind_pixels.c P6..P8): the corpus also
# holds compressed images and mutants of their codestreams, some of which
# keep a codec busy for minutes (gen_mutants.py --codecs). With 8 readers
# no read takes over 30 s beside the other tests (10 s on a quiet machine:
# bench_failfast.sh) and no read of an intact image over 6 s (the old
# decoder pool took 120 s on each such file and good files waited behind
# them); the slowest reads are printed. The intact images decode to
# their pixels. A file whose decoder ran past its budget is in errors.tsv
# and answers EIO at once afterwards (no new decode).
. "${srcdir:-$(dirname "$0")/..}/tests/lib.sh"
setup

PYD=/usr/lib/python3/dist-packages/pydicom/data/test_files
[ -d "$PYD" ] || fatal "python3-pydicom test data missing"
"$PY" "$GEN" "$TMP/src" >/dev/null || fatal "gen_archive.py failed"
ARCH="$TMP/arch"
MNT="$TMP/mnt"
command -v gdcmconv >/dev/null || fatal "gdcmconv not found (libgdcm-tools)"
n=$("$PY" "$srcdir/tests/gen_mutants.py" "$ARCH" "$PYD" "$TMP/src" --per 3 --codecs 12 2>/dev/null) ||
	fatal "gen_mutants.py failed"
[ "$n" -ge 1000 ] && ok "$n mutated files" || fail "only $n mutated files"

t0=$(date +%s.%N)
mount_start "$MNT" "$ARCH" -o index="$TMP/idx" || exit 1
t1=$(date +%s.%N)
log "indexed in $(echo "$t1 - $t0" | bc) s: $(status_get "$MNT" instances) instances, $(status_get "$MNT" errors) errors, $(status_get "$MNT" skipped) skipped"
# EAGAIN: a decoder starved by a busy machine (P6), not the file's fault.
# anon/'s .npy and .png are the very decodes of patients/ (one cache entry,
# one verdict: kind_pixels.c): read once, there; its .dcm and .json (the
# de-identified headers of the mutants) are read.
if timeout 120 "$PY" "$srcdir/tests/readall.py" "$MNT" --threads 8 --allow EIO,EAGAIN \
	--skip-re '/anon/.*\.(npy|png)$' --times "$TMP/times" >"$TMP/readall.out" 2>&1; then
	ok "every entry stat'ed, xattrs read, every file read or EIO: $(tail -1 "$TMP/readall.out")"
	log "slowest reads:"
	head -5 "$TMP/times" | sed 's/^/    /'
	slow=$(head -1 "$TMP/times" | cut -f1)
	# the 10 s target is the benchmark's (contrib/bench/bench_failfast.sh,
	# a quiet machine); beside the other tests of make -j2 a CPU-budgeted
	# decode stretches in wall time, so the test holds a bound the old
	# behaviour (a decoder held up to 120 s, good files queued behind)
	# still fails
	[ "$(echo "$slow < 30" | bc)" = 1 ] && ok "the slowest read took $slow s (< 30)" ||
		fail "a read took $slow s (>= 30)"
	slowgood=$(grep -P '\tok\t.*/uids/.*/2\.25\.12012\.3\.' "$TMP/times" | head -1 | cut -f1)
	log "intact compressed images: $(grep -cP '\tok\t.*/uids/.*/2\.25\.12012\.3\.' "$TMP/times") reads ok, slowest $slowgood s"
	[ -n "$slowgood" ] && [ "$(echo "$slowgood < 6" | bc)" = 1 ] &&
		ok "no read of an intact image over 6 s ($slowgood s)" ||
		fail "an intact image took ${slowgood:-?} s (>= 6)"
	grep -P '\tEIO\t.*/uids/.*/2\.25\.12012\.3\.' "$TMP/times" >"$TMP/goodeio" &&
		{ fail "intact images read as EIO:"; sed 's/^/    /' "$TMP/goodeio"; }
	nagain=$(grep -cP '\tEAGAIN\t' "$TMP/times")
	[ "$nagain" = 0 ] || log "note: $nagain reads were EAGAIN (decoders starved: a busy machine)"
else
	fail "unexpected errors (or timeout) reading the tree:"
	sed 's/^/    /' "$TMP/readall.out" | head -40
fi
log "read in $(echo "$(date +%s.%N) - $t1" | bc) s"

# the intact compressed images decode to the pixels they were made from
"$PY" - "$MNT" "$ARCH/good" >"$TMP/good.out" 2>&1 <<'PYEOF' && ok "$(cat "$TMP/good.out")" ||
import glob, os, sys, numpy as np, pydicom
bad = n = 0
for npy in sorted(glob.glob(sys.argv[2] + '/*.npy')):
    uid = pydicom.dcmread(npy[:-4] + '.dcm', stop_before_pixels=True).SOPInstanceUID
    got = glob.glob(sys.argv[1] + '/uids/*/*/' + uid + '.npy')
    if len(got) != 1 or not (np.load(got[0]) == np.load(npy)).all():
        print('wrong pixels:', os.path.basename(npy))
        bad += 1
    n += 1
print('%d intact compressed images decode to their pixels' % n)
sys.exit(1 if bad or not n else 0)
PYEOF
	{ fail "intact images:"; sed 's/^/    /' "$TMP/good.out"; }

# a JPEG 2000 file that keeps OpenJPEG busy for seconds of CPU and a
# gigabyte: killed at its budget (P6), EIO, errors.tsv; then EIO at once
hog=$(find "$MNT/uids" -name "$("$PY" -c 'import pydicom,sys; print(pydicom.dcmread(sys.argv[1], stop_before_pixels=True).SOPInstanceUID)' "$ARCH/codec/j2k512_siz1.dcm").npy" | head -1)
if [ -z "$hog" ]; then
	fail "codec/j2k512_siz1.dcm has no .npy"
else
	for i in 1 2 3 4 5; do   # EAGAIN: starved by a busy machine (P6)
		cat "$hog" >/dev/null 2>"$TMP/hog.err" && break
		grep -q 'Resource temporarily unavailable' "$TMP/hog.err" || break
	done
	grep -q 'Input/output error' "$TMP/hog.err" && ok "the CPU hog: EIO" ||
		fail "the CPU hog: $(cat "$TMP/hog.err")"
	grep -P '^codec/j2k512_siz1.dcm\t.*ran past its budget' "$MNT/.dicomfs/errors.tsv" >"$TMP/hog.tsv" &&
		ok "errors.tsv: $(cat "$TMP/hog.tsv")" || fail "no budget line for the CPU hog in errors.tsv"
	grep -q 'j2k512_siz1.dcm: cannot decode pixel data: the decoder ran past its budget' "$MOUNT_LOG" &&
		ok "and in the log" || fail "no budget line for the CPU hog in the log"
	n0=$(status_get "$MNT" pixel_decodes)
	t0=$(date +%s.%N)
	cat "$hog" "${hog%.npy}.png" >/dev/null 2>&1 && fail "the CPU hog read after it was marked bad"
	t=$(echo "$(date +%s.%N) - $t0" | bc)
	[ "$(status_get "$MNT" pixel_decodes)" = "$n0" ] &&
		ok "marked bad: EIO again without a new decode (in $t s)" ||
		fail "the CPU hog was decoded again"
fi
daemon_alive && ok "the daemon survived" || fatal "the daemon died"
if timeout 10 stat "$MNT/.dicomfs/status.json" >/dev/null &&
   timeout 10 ls "$MNT/patients" >/dev/null; then
	ok "the mount still answers"
else
	fail "the mount does not answer"
fi
grep -E 'AddressSanitizer|runtime error|LeakSanitizer' "$MOUNT_LOG" && fail "sanitizer report in the daemon log"
mount_stop
exit 0
