#!/bin/bash
# bench_containment.sh - the cost of running GDCM in child processes.
#  1. index build of archive-N (default 20000; tests/gen_archive.py --count)
#     with parser processes (default) vs in-process threads
#     (DICOMFS_INPROCESS=1, a benchmark knob read by index/scan.c and
#     fs/kind_pixels.c): files/s, median of RUNS (3) fresh builds each;
#  2. decode throughput: 400 compressed instances (RLE, JPEG lossless,
#     JPEG-LS, JPEG 2000 from Debian's pydicom test files, each copied 50
#     times with its own UIDs), every .npy read once with -o cache_size=0,
#     with decoder processes vs in-process: MB/s of .npy data.
# Prints both ratios (processes / in-process). Root; after a build.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
N=${1:-20000}
RUNS=${RUNS:-3}
BENCH_DIR=${BENCH_DIR:-/var/tmp/dicomfs-bench}
DICOMFS=${DICOMFS:-$ROOT/dicomfs}
ARCHIVE=$BENCH_DIR/archive-$N
PY=/usr/bin/python3
log() { printf '[bench_containment] %s\n' "$*" >&2; }
[ -d "$ARCHIVE" ] || { log "generating $ARCHIVE"; "$PY" "$ROOT/tests/gen_archive.py" "$ARCHIVE" --count "$N" >&2 || exit 1; }
TMP=$(mktemp -d "$BENCH_DIR/run.XXXXXX")
trap 'fusermount3 -u "$TMP/mnt" 2>/dev/null; sleep 0.5; rm -rf "$TMP"' EXIT
mkdir -p "$TMP/mnt"
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

mount_wait() { # archive, extra env...
	local arch=$1 i
	shift
	env "$@" "$DICOMFS" -f -o quiet,index="$TMP/idx",cache_size=0 "$arch" "$TMP/mnt" 2>"$TMP/log" &
	PID=$!
	for i in $(seq 6000); do mountpoint -q "$TMP/mnt" && return 0; sleep 0.01; done
	return 1
}
umount_wait() { fusermount3 -u "$TMP/mnt"; wait "$PID" 2>/dev/null; rm -rf "$TMP/idx"; }

build_fps() { # env...
	local t0 t1
	t0=$(date +%s.%N)
	mount_wait "$ARCHIVE" "$@" || { log "mount failed: $(cat "$TMP/log")"; exit 1; }
	t1=$(date +%s.%N)
	umount_wait
	echo "$N / ($t1 - $t0)" | bc -l
}
a=() b=()
for r in $(seq "$RUNS"); do
	a+=("$(build_fps DICOMFS_BENCH=1)")
	b+=("$(build_fps DICOMFS_INPROCESS=1)")
done
fa=$(median "${a[@]}") fb=$(median "${b[@]}")

# decode corpus
PYD=/usr/lib/python3/dist-packages/pydicom/data/test_files
"$PY" - "$TMP/dec" "$PYD" <<'PYEOF' || exit 1
import os, sys, pydicom
out, pyd = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
srcs = ['MR_small_RLE.dcm', 'SC_rgb_rle_16bit.dcm', 'MR_small_jpeg_ls_lossless.dcm',
        'MR_small_jp2klossless.dcm', 'JPEG2000.dcm', 'SC_rgb_jpeg_gdcm.dcm', 'JPGExtended.dcm',
        'rtdose_rle.dcm']
k = 0
for s in srcs:
    for i in range(50):
        ds = pydicom.dcmread(os.path.join(pyd, s))
        ds.SOPInstanceUID = '2.25.5151.%d' % k
        ds.save_as(os.path.join(out, 'f%04d' % k))
        k += 1
PYEOF
dec_mbs() { # env...
	mount_wait "$TMP/dec" "$@" || { log "mount failed: $(cat "$TMP/log")"; exit 1; }
	find "$TMP/mnt/patients" -name '*.npy' >"$TMP/list"
	local bytes t0 t1
	bytes=$(tr '\n' '\0' <"$TMP/list" | du -cb --files0-from=- | tail -1 | cut -f1)
	t0=$(date +%s.%N)
	tr '\n' '\0' <"$TMP/list" | xargs -0 -P 2 -n 20 cat >/dev/null 2>&1
	t1=$(date +%s.%N)
	umount_wait
	echo "$bytes / 1048576 / ($t1 - $t0)" | bc -l
}
c=() d=()
for r in $(seq "$RUNS"); do
	c+=("$(dec_mbs DICOMFS_BENCH=1)")
	d+=("$(dec_mbs DICOMFS_INPROCESS=1)")
done
fc=$(median "${c[@]}") fd=$(median "${d[@]}")
printf 'index build, %d files: parser processes %.0f files/s, in-process %.0f files/s, ratio %.2f\n' \
	"$N" "$fa" "$fb" "$(echo "$fa / $fb" | bc -l)"
printf 'decode, 400 compressed instances: decoder processes %.1f MB/s, in-process %.1f MB/s, ratio %.2f\n' \
	"$fc" "$fd" "$(echo "$fc / $fd" | bc -l)"
