#!/usr/bin/env bash
# bench_pixels.sh - .npy read throughput through a dicomfs mount.
#
#   1. uncompressed: the --count archive of gen_archive.py (64x64 CT, cached
#      under $BENCH_DIR/archive-N) and BIG_N 512x512 16-bit instances
#      (BitsStored 12: the masking path) and the same as BitsStored 16 (the
#      splice path): `cat` of the sources vs first and repeated read of
#      every .npy;
#   2. compressed: the BIG set converted with gdcmconv --jpegls and --j2k:
#      first read of every .npy (decode in the decoder processes, 1 and 2
#      readers; 1 reader also without decode-ahead, DICOMFS_NO_AHEAD=1) and repeated read vs python3-gdcm decoding the same files
#      in-process (ImageReader + GetBuffer, one thread).
# Prints MB/s of .npy (or decoded) bytes and the ratios.
#
# Environment: DICOMFS (default <root>/dicomfs), BENCH_DIR (default
# /var/tmp/dicomfs-bench), N (default 2000), BIG_N (default 100),
# PYTHON (default /usr/bin/python3), SETS (default "uncompressed compressed":
# which of the two parts run).
set -u -o pipefail
export LC_ALL=C
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)
DICOMFS=${DICOMFS:-$ROOT/dicomfs}
BENCH_DIR=${BENCH_DIR:-/var/tmp/dicomfs-bench}
N=${N:-2000}
BIG_N=${BIG_N:-100}
PY=${PYTHON:-/usr/bin/python3}
SETS=${SETS:-uncompressed compressed}
GEN=$ROOT/tests/gen_archive.py

log() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
[[ -x $DICOMFS ]] || die "no dicomfs at $DICOMFS"
command -v gdcmconv >/dev/null || die "gdcmconv missing (libgdcm-tools)"
mkdir -p "$BENCH_DIR"
W=$(mktemp -d "$BENCH_DIR/pixels.XXXXXX")
MNT=$W/mnt
mkdir -p "$MNT"
cleanup() { mountpoint -q "$MNT" && fusermount3 -u "$MNT"; rm -rf "$W"; }
trap cleanup EXIT

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
mbps() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.1f", (s > 0 ? n / s / 1e6 : 0) }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }

# ---- fixtures ----
ARCH=$BENCH_DIR/archive-$N
if [[ ! -f $ARCH.done ]]; then
	log "generating $N files into $ARCH"
	rm -rf "$ARCH"
	"$PY" "$GEN" "$ARCH" --count "$N" >/dev/null || die "gen_archive.py failed"
	touch "$ARCH.done"
fi
BIG=$BENCH_DIR/pixels-big-$BIG_N
if [[ ! -f $BIG.done ]]; then
	log "generating $BIG_N 512x512 instances (+ JPEG-LS, JPEG 2000 copies)"
	rm -rf "$BIG" && mkdir -p "$BIG"/{u12,u16,jls,j2k}
	"$PY" - "$BIG" "$BIG_N" <<'EOF' || die "generating the big set failed"
import os, sys, numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
out, n = sys.argv[1], int(sys.argv[2])
y, x = np.mgrid[0:512, 0:512]
for bits in (12, 16):
    for i in range(n):
        ds = Dataset()
        ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        ds.SOPInstanceUID = "2.25.777%d.%d" % (bits, i + 1)
        ds.StudyInstanceUID = "2.25.777%d.0" % bits
        ds.SeriesInstanceUID = "2.25.777%d.0.1" % bits
        ds.PatientName, ds.PatientID, ds.Modality = "BENCH^PIXELS", "BP1", "CT"
        ds.InstanceNumber = i + 1
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.Rows = ds.Columns = 512
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, bits, bits - 1, 0
        a = (1000 + 800 * np.sin((x + i * 3) / 40.0) * np.cos(y / 55.0) + (x * y + i) % 37).astype("<u2")
        ds.PixelData = a.tobytes()
        ds["PixelData"].VR = "OW"
        fm = FileMetaDataset()
        fm.MediaStorageSOPClassUID, fm.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
        fm.TransferSyntaxUID = "1.2.840.10008.1.2.1"
        ds.file_meta = fm
        ds.is_little_endian, ds.is_implicit_VR = True, False
        ds.save_as(os.path.join(out, "u%d" % bits, "%04d.dcm" % i), write_like_original=False)
EOF
	for f in "$BIG"/u12/*.dcm; do
		b=$(basename "$f")
		gdcmconv --jpegls "$f" "$BIG/jls/$b" && gdcmconv --j2k "$f" "$BIG/j2k/$b" || die "gdcmconv failed"
	done
	touch "$BIG.done"
fi

mount_it() { # mount_it ARCHIVE NAME
	local idx
	idx=$W/idx.$(printf '%s' "$2" | tr -c 'A-Za-z0-9.' '_')
	"$DICOMFS" -o index="$idx" -o quiet "$1" "$MNT" || die "mount of $1 failed"
}
umount_it() { fusermount3 -u "$MNT" || { sleep 1; fusermount3 -u "$MNT"; }; }
npys() { find "$MNT/patients" -name '*.npy' -print0 | sort -z; }
read_all() { # read_all PARALLEL: cat every .npy
	npys | xargs -0 -n 16 -P "$1" cat >/dev/null
}
npy_bytes() { npys | du -cb --files0-from=- | tail -1 | cut -f1; }

declare -a ROWS
row() { ROWS+=("$(printf '%-44s %8s %8s %7s %s' "$@")"); }

bench_uncompressed() { # NAME ARCHIVE
	local name=$1 arch=$2 t0 t1 tsrc t1st t2nd bytes sbytes
	sbytes=$(du -cb "$arch" | tail -1 | cut -f1)
	find "$arch" -type f -print0 | xargs -0 cat >/dev/null      # warm the sources
	t0=$(now); find "$arch" -type f -print0 | xargs -0 -n 16 cat >/dev/null; t1=$(now)
	tsrc=$(secs "$t0" "$t1")
	mount_it "$arch" "$name"
	bytes=$(npy_bytes)
	t0=$(now); read_all 1; t1=$(now); t1st=$(secs "$t0" "$t1")
	t0=$(now); read_all 1; t1=$(now); t2nd=$(secs "$t0" "$t1")
	umount_it
	row "$name: cat sources" "$tsrc" "$(mbps "$sbytes" "$tsrc")" "" ""
	row "$name: .npy first read" "$t1st" "$(mbps "$bytes" "$t1st")" "$(ratio "$(mbps "$bytes" "$t1st")" "$(mbps "$sbytes" "$tsrc")")" "x cat"
	row "$name: .npy repeated read" "$t2nd" "$(mbps "$bytes" "$t2nd")" "$(ratio "$(mbps "$bytes" "$t2nd")" "$(mbps "$sbytes" "$tsrc")")" "x cat"
}

bench_compressed() { # NAME ARCHIVE
	local name=$1 arch=$2 t0 t1 tg t1st t1p t1na t2nd bytes
	find "$arch" -type f -print0 | xargs -0 cat >/dev/null
	tg=$("$PY" - "$arch" <<'EOF'
import os, sys, time, gdcm
gdcm.Trace.SetWarning(False); gdcm.Trace.SetError(False)
files = sorted(os.path.join(d, f) for d, _, fs in os.walk(sys.argv[1]) for f in fs)
t = time.time()
for p in files:
    r = gdcm.ImageReader(); r.SetFileName(p); r.Read()
    b = r.GetImage().GetBuffer()
print("%.3f" % (time.time() - t))
EOF
)
	mount_it "$arch" "$name"
	bytes=$(npy_bytes)
	t0=$(now); read_all 1; t1=$(now); t1st=$(secs "$t0" "$t1")
	t0=$(now); read_all 1; t1=$(now); t2nd=$(secs "$t0" "$t1")
	umount_it
	mount_it "$arch" "$name.p2"    # fresh daemon: nothing decoded yet
	t0=$(now); read_all 2; t1=$(now); t1p=$(secs "$t0" "$t1")
	umount_it
	DICOMFS_NO_AHEAD=1 mount_it "$arch" "$name.na"   # one decode at a time
	t0=$(now); read_all 1; t1=$(now); t1na=$(secs "$t0" "$t1")
	umount_it
	local g; g=$(mbps "$bytes" "$tg")
	row "$name: python3-gdcm decode" "$tg" "$g" "" ""
	row "$name: .npy first read" "$t1st" "$(mbps "$bytes" "$t1st")" "$(ratio "$(mbps "$bytes" "$t1st")" "$g")" "x gdcm"
	row "$name: .npy first read, no decode-ahead" "$t1na" "$(mbps "$bytes" "$t1na")" "$(ratio "$(mbps "$bytes" "$t1na")" "$g")" "x gdcm"
	row "$name: .npy first read, 2 readers" "$t1p" "$(mbps "$bytes" "$t1p")" "$(ratio "$(mbps "$bytes" "$t1p")" "$g")" "x gdcm"
	row "$name: .npy repeated read" "$t2nd" "$(mbps "$bytes" "$t2nd")" "$(ratio "$(mbps "$bytes" "$t2nd")" "$g")" "x gdcm"
}

if [[ " $SETS " == *" uncompressed "* ]]; then
	log "uncompressed: archive-$N"
	bench_uncompressed "ct64x64 x$N (u16, 12 bits)" "$ARCH"
	log "uncompressed: 512x512"
	bench_uncompressed "512x512 x$BIG_N (12 bits: masked)" "$BIG/u12"
	bench_uncompressed "512x512 x$BIG_N (16 bits: spliced)" "$BIG/u16"
fi
if [[ " $SETS " == *" compressed "* ]]; then
	log "compressed"
	bench_compressed "512x512 x$BIG_N JPEG-LS" "$BIG/jls"
	bench_compressed "512x512 x$BIG_N JPEG 2000" "$BIG/j2k"
fi

printf '\n%-44s %8s %8s %7s\n' "measurement" "seconds" "MB/s" "ratio"
printf '%s\n' "${ROWS[@]}"
echo "(MB/s of .npy bytes; sources for 'cat'; decoded bytes for python3-gdcm; $(nproc) CPUs)"
