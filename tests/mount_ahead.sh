#!/bin/bash
# Decode-ahead (fs/kind_pixels.c P10), on by default: after the first read
# of a compressed series its other instances are decoded by nice-19
# decoders of their own. Checked: those decoders appear with the default
# options and not with -o no_decode_ahead; every .npy of a JPEG 2000 and a
# JPEG-LS series equals the pixels the images were made from (lossless), in
# both mounts, read in listing order and again shuffled by 4 readers; and
# SIGKILLing every decode-ahead decoder again and again while the series
# are read costs nothing but that work: every .npy still equals its pixels,
# no EIO, no errors.tsv line, no retry of a direct decode in the log.
. "${srcdir:-$(dirname "$0")/..}/tests/lib.sh"
setup

ARCH="$TMP/arch"
MNT="$TMP/mnt"
command -v gdcmconv >/dev/null || fatal "gdcmconv not found (libgdcm-tools)"
mkdir -p "$ARCH/raw" "$TMP/oracle"
"$PY" - "$ARCH/raw" "$TMP/oracle" <<'PYEOF' || fatal "could not make the images"
import os, sys, numpy as np, pydicom
from pydicom.uid import ExplicitVRLittleEndian
src = '/usr/lib/python3/dist-packages/pydicom/data/test_files/CT_small.dcm'
rng = np.random.default_rng(17)
y, x = np.mgrid[0:384, 0:384]
for s, name in enumerate(('j2k', 'jls')):
    for i in range(16):
        ds = pydicom.dcmread(src)
        a = ((np.sin(x / (7.0 + i)) + np.cos(y / (11.0 + s))) * 900 + 2048 +
             rng.integers(0, 64, size=(384, 384))).astype(np.uint16)
        ds.Rows, ds.Columns = 384, 384
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.PixelData = a.tobytes()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SeriesInstanceUID = '2.25.5150.%d' % (s + 1)
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = '2.25.5150.%d.%d' % (s + 1, i + 1)
        ds.InstanceNumber = i + 1
        ds.save_as(os.path.join(sys.argv[1], '%s%02d.dcm' % (name, i)), write_like_original=False)
        np.save(os.path.join(sys.argv[2], ds.SOPInstanceUID + '.npy'), a)
PYEOF
for f in "$ARCH"/raw/*.dcm; do
	b=${f##*/}
	case $b in
	j2k*) gdcmconv --j2k "$f" "$ARCH/$b" ;;
	jls*) gdcmconv --jpegls "$f" "$ARCH/$b" ;;
	esac || fatal "gdcmconv failed on $b"
done
rm -rf "$ARCH/raw"

# check_all LABEL [--shuffle THREADS]: every .npy equals its oracle
check_all() {
	local label=$1
	shift
	find "$MNT/uids" -name '*.npy' | sort >"$TMP/npys"
	"$PY" - "$TMP/npys" "$TMP/oracle" "$@" >"$TMP/check.out" 2>&1 <<'PYEOF'
import os, random, sys, numpy as np
from concurrent.futures import ThreadPoolExecutor
paths = [l.strip() for l in open(sys.argv[1]) if l.strip()]
oracle = sys.argv[2]
threads = 1
if '--shuffle' in sys.argv:
    threads = int(sys.argv[sys.argv.index('--shuffle') + 1])
    random.Random(5).shuffle(paths)
def one(p):
    try:
        a = np.load(p)
    except OSError as e:
        return '%s: %s' % (p, e)
    b = np.load(os.path.join(oracle, os.path.basename(p)))
    if a.dtype != b.dtype or a.shape != b.shape or not (a == b).all():
        return '%s: differs (%s %s vs %s %s)' % (p, a.dtype, a.shape, b.dtype, b.shape)
    return None
with ThreadPoolExecutor(threads) as ex:
    bad = [r for r in ex.map(one, paths) if r]
print('%d .npy files, %d bad' % (len(paths), len(bad)))
for b in bad[:10]:
    print(b)
sys.exit(1 if bad or len(paths) != 32 else 0)
PYEOF
	if [ $? = 0 ]; then ok "$label: $(head -1 "$TMP/check.out"), each equal to its pixels"; else
		fail "$label:"
		sed 's/^/    /' "$TMP/check.out"
	fi
}
# ahead_decoders: pids of the daemon's decode-ahead decoders (nice 19)
ahead_decoders() {
	local p
	for p in $(pgrep -P "$MOUNT_PID"); do
		grep -qa -- --decode-worker "/proc/$p/cmdline" 2>/dev/null || continue
		[ "$(awk '{print $19}' "/proc/$p/stat" 2>/dev/null)" = 19 ] && echo "$p"
	done
}
first_read() { # read the first .npy of the JPEG 2000 series
	local f
	f=$(find "$MNT/uids" -name '2.25.5150.1.1.npy' | head -1)
	[ -n "$f" ] && cat "$f" >/dev/null
}
wait_instances() {
	local i
	for i in $(seq 120); do
		[ "$(status_get "$MNT" instances)" = 32 ] && return 0
		sleep 0.5
	done
	fail "not 32 instances indexed"
}

# 1. without decode-ahead: no nice-19 decoder, the bytes right
mount_start "$MNT" "$ARCH" -o index="$TMP/idx" -o no_decode_ahead || exit 1
wait_instances
first_read || fail "first read failed"
[ -z "$(ahead_decoders)" ] && ok "-o no_decode_ahead: no decode-ahead decoder" ||
	fail "-o no_decode_ahead: decode-ahead decoders $(ahead_decoders)"
check_all "-o no_decode_ahead, in order"
mount_stop

# 2. the default: decode-ahead runs, the bytes are the same
mount_start "$MNT" "$ARCH" -o index="$TMP/idx" || exit 1
wait_instances
first_read || fail "first read failed"
seen=
for i in $(seq 600); do
	seen=$(ahead_decoders)
	[ -n "$seen" ] && break
	sleep 0.1
done
[ -n "$seen" ] && ok "default options: decode-ahead decoders at nice 19 ($(echo $seen))" ||
	fail "default options: no decode-ahead decoder after a first read"
check_all "decode-ahead on, in order"
mount_stop
mount_start "$MNT" "$ARCH" -o index="$TMP/idx" || exit 1
wait_instances
check_all "decode-ahead on, fresh mount, 4 readers shuffled" --shuffle 4
mount_stop

# 3. every decode-ahead decoder killed again and again while reading
mount_start "$MNT" "$ARCH" -o index="$TMP/idx" || exit 1
wait_instances
first_read || fail "first read failed"
(
	n=0
	while [ ! -e "$TMP/stop" ]; do
		for p in $(ahead_decoders); do kill -9 "$p" 2>/dev/null && n=$((n + 1)); done
		sleep 0.01
	done
	echo "$n" >"$TMP/kills"
) &
killer=$!
check_all "decode-ahead decoders killed while reading, in order"
check_all "decode-ahead decoders killed while reading, shuffled" --shuffle 4
touch "$TMP/stop"
wait $killer
kills=$(cat "$TMP/kills")
[ "${kills:-0}" -ge 1 ] && ok "$kills decode-ahead decoders killed" || fail "no decode-ahead decoder was killed"
if [ -s "$MNT/.dicomfs/errors.tsv" ] && grep -q 'j2k\|jls' "$MNT/.dicomfs/errors.tsv"; then
	fail "errors.tsv after the kills: $(grep 'j2k\|jls' "$MNT/.dicomfs/errors.tsv" | head -3)"
else
	ok "no errors.tsv line"
fi
grep -q 'decoding again' "$MOUNT_LOG" && fail "a direct decode was retried: $(grep 'decoding again' "$MOUNT_LOG" | head -2)" ||
	ok "no direct decode was retried (only decode-ahead work was lost)"
daemon_alive && ok "the daemon survived" || fail "the daemon died"
mount_stop
exit 0
