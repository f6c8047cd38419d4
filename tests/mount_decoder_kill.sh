#!/bin/bash
# A decoder killed from outside (issue 12, fs/kind_pixels.c P8): while the
# mount decodes a slow image (a lossless JPEG 2000 of 8 frames of
# 1024x1024) its decoder process is killed with SIGKILL, as the OOM killer
# would; the decode is retried once on a fresh decoder, the .npy reads
# whole and equals the pixels the image was made from, and the log says so.
# A second image whose decoder is killed twice is marked bad: EIO, an
# errors.tsv line, and every later open answers EIO at once (no new decode:
# status.json pixel_decodes stays put).
. "${srcdir:-$(dirname "$0")/..}/tests/lib.sh"
setup

ARCH="$TMP/arch"
MNT="$TMP/mnt"
command -v gdcmconv >/dev/null || fatal "gdcmconv not found (libgdcm-tools)"
mkdir -p "$ARCH"
"$PY" - "$TMP" <<'PYEOF' || fatal "could not make the images"
import sys, numpy as np, pydicom
from pydicom.uid import ExplicitVRLittleEndian
ds = pydicom.dcmread('/usr/lib/python3/dist-packages/pydicom/data/test_files/CT_small.dcm')
rng = np.random.default_rng(7)
y, x = np.mgrid[0:1024, 0:1024]
a = np.stack([((np.sin(x / (9.0 + f)) + np.cos(y / 13.0)) * 1000 + 2048 +
               rng.integers(0, 256, size=(1024, 1024))).astype(np.uint16) for f in range(8)])
ds.Rows, ds.Columns, ds.NumberOfFrames = 1024, 1024, 8
ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
ds.PixelData = a.tobytes()
ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
ds.save_as(sys.argv[1] + '/raw.dcm', write_like_original=False)
np.save(sys.argv[1] + '/oracle.npy', a)
PYEOF
gdcmconv --j2k "$TMP/raw.dcm" "$TMP/j2k.dcm" || fatal "gdcmconv --j2k failed"
"$PY" - "$TMP/j2k.dcm" "$ARCH" <<'PYEOF' || fatal "could not make the copies"
import os, sys, pydicom
ds = pydicom.dcmread(sys.argv[1])
for i, name in enumerate(('once', 'twice')):
    ds.SOPInstanceUID = '2.25.1212.%d' % (i + 1)
    # a series each: decode-ahead (on by default, kind_pixels.c P10) of
    # one must not decode the other (mount_ahead.sh kills those decoders)
    ds.SeriesInstanceUID = '2.25.1213.%d' % (i + 1)
    ds.InstanceNumber = i + 1
    ds.save_as(os.path.join(sys.argv[2], name + '.dcm'))
PYEOF

mount_start "$MNT" "$ARCH" -o index="$TMP/idx" || exit 1
for i in $(seq 60); do
	[ "$(status_get "$MNT" instances)" = 2 ] && break
	sleep 0.5
done
ONCE="$MNT/uids/2.25.1212.1"
npy_once=$(find "$MNT/uids" -name '2.25.1212.1.npy' | head -1)
npy_twice=$(find "$MNT/uids" -name '2.25.1212.2.npy' | head -1)
[ -n "$npy_once" ] && [ -n "$npy_twice" ] || fatal "the two .npy files are not in uids/"

# busy_decoder: the pid of a live decoder child of the daemon that has
# used 0.3 s of CPU more than when snapshot ran (it decodes our image), or
# nothing
declare -A BASE
decoders() {
	local p
	for p in $(pgrep -P "$MOUNT_PID"); do
		grep -qa -- --decode-worker "/proc/$p/cmdline" 2>/dev/null && echo "$p"
	done
}
ticks() { awk '$3 != "Z" {print $14 + $15}' "/proc/$1/stat" 2>/dev/null; }
snapshot() {
	local p
	BASE=()
	for p in $(decoders); do BASE[$p]=$(ticks "$p"); done
}
busy_decoder() {
	local p t
	for p in $(decoders); do
		t=$(ticks "$p")
		[ -n "$t" ] || continue
		[ $((t - ${BASE[$p]:-0})) -ge $(($(getconf CLK_TCK) * 3 / 10)) ] && { echo "$p"; return; }
	done
}
# kill_decoder_while READER_PID: SIGKILL the decoder busy on the reader's
# image; prints the pid killed
kill_decoder_while() {
	local i p
	for i in $(seq 1200); do
		kill -0 "$1" 2>/dev/null || return 1
		p=$(busy_decoder)
		if [ -n "$p" ]; then
			kill -9 "$p" && { BASE[$p]=999999999; echo "$p"; return 0; }
		fi
		sleep 0.05
	done
	return 1
}

# 1. killed once: retried, the read succeeds and is right
snapshot
"$PY" -c 'import sys, numpy as np
a = np.load(sys.argv[1]); b = np.load(sys.argv[2])
sys.exit(0 if a.shape == b.shape and (a == b).all() else 1)' "$npy_once" "$TMP/oracle.npy" \
	>"$TMP/once.out" 2>&1 &
reader=$!
k1=$(kill_decoder_while $reader) || fatal "no busy decoder seen while reading (the decode ended first?)"
wait $reader
rc=$?
log "killed decoder $k1 during the first decode"
[ $rc = 0 ] && ok "the .npy read whole after the decoder was killed, equal to the source pixels" ||
	{ fail "the .npy read failed (rc $rc):"; sed 's/^/    /' "$TMP/once.out"; }
grep -q 'once.dcm: the decoder was killed from outside (signal 9): decoding again' "$MOUNT_LOG" &&
	ok "the log says it decoded again" || fail "no retry line in the log"
grep -q 'once.dcm' "$MNT/.dicomfs/errors.tsv" && fail "the retried file is in errors.tsv" ||
	ok "the retried file is not marked bad"

# 2. killed twice: marked bad
snapshot
cat "$npy_twice" >/dev/null 2>"$TMP/twice.err" &
reader=$!
k1=$(kill_decoder_while $reader) || fatal "no busy decoder seen (first)"
k2=$(kill_decoder_while $reader) || fatal "no busy decoder seen (second)"
wait $reader && fail "the twice-killed .npy read succeeded" ||
	ok "killed twice ($k1, $k2): $(cat "$TMP/twice.err")"
grep -q 'Input/output error' "$TMP/twice.err" || fail "not EIO: $(cat "$TMP/twice.err")"
grep -q 'twice.dcm.*killed from outside (signal 9, twice)' "$MNT/.dicomfs/errors.tsv" &&
	ok "errors.tsv: $(grep twice.dcm "$MNT/.dicomfs/errors.tsv")" || fail "no errors.tsv line"
n0=$(status_get "$MNT" pixel_decodes)
for f in "$npy_twice" "${npy_twice%.npy}.png"; do
	cat "$f" >/dev/null 2>"$TMP/again.err" && fail "$f read after it was marked bad"
	grep -q 'Input/output error' "$TMP/again.err" || fail "$f: not EIO: $(cat "$TMP/again.err")"
done
n1=$(status_get "$MNT" pixel_decodes)
[ "$n0" = "$n1" ] && ok "marked bad: .npy and .png answer EIO without a new decode ($n0 decodes)" ||
	fail "a file marked bad was decoded again ($n0 -> $n1 decodes)"
daemon_alive && ok "the daemon survived" || fail "the daemon died"
mount_stop
exit 0
