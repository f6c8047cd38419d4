#!/usr/bin/env bash
# bench_volume.sh [SLICES] [classic|enhanced] - volume.nii through the mount
# against dcm2niix.
#
# Generates (once, cached under $BENCH_DIR) a CT series of SLICES (default
# 300) uncompressed 512x512 int16 slices: classic (default) one file per
# slice; enhanced one Enhanced CT object of SLICES frames (per-frame Plane
# Position, shared Plane Orientation / Pixel Measures / Pixel Value
# Transformation), then in one run, warm page cache
# for the sources (both sides read the same cached .dcm files):
#   1. dcm2niix -z n converting the series to a NIfTI file on disk;
#   2. through a fresh mount: time to the first byte of volume.nii, time to
#      read the whole volume.nii (cat > /dev/null) and to copy it to disk
#      (cp, same disk as dcm2niix's output); a second whole read (the
#      kernel page cache of the mount);
# and prints the figures and the ratios mount / dcm2niix (median of RUNS).
#
# Environment:
#   DICOMFS=path   dicomfs binary (default ./dicomfs, else <root>/dicomfs)
#   BENCH_DIR=dir  cache + scratch (default /var/tmp/dicomfs-bench)
#   RUNS=n         repetitions, median (default 3)
#   PYTHON=path    python with pydicom and numpy (default /usr/bin/python3)
set -u -o pipefail
export LC_ALL=C

SLICES=${1:-300}
KIND=${2:-classic}
case $SLICES in '' | *[!0-9]*) echo "usage: $0 [SLICES] [classic|enhanced]" >&2; exit 2 ;; esac
case $KIND in classic | enhanced) ;; *) echo "usage: $0 [SLICES] [classic|enhanced]" >&2; exit 2 ;; esac
RUNS=${RUNS:-3}
BENCH_DIR=${BENCH_DIR:-/var/tmp/dicomfs-bench}
PY=${PYTHON:-/usr/bin/python3}
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)
DICOMFS=${DICOMFS:-}
[ -n "$DICOMFS" ] || { [ -x ./dicomfs ] && DICOMFS=$(pwd)/dicomfs || DICOMFS=$ROOT/dicomfs; }

log() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
[ -x "$DICOMFS" ] || die "dicomfs not found at $DICOMFS"
command -v dcm2niix >/dev/null || die "dcm2niix not found (apt-get install dcm2niix)"

ARCH=$BENCH_DIR/volume-$SLICES${KIND#classic}
mkdir -p "$BENCH_DIR" || die "mkdir $BENCH_DIR"
WORK=$(mktemp -d "$BENCH_DIR/volrun.XXXXXX") || die "mktemp"
MNT=$WORK/mnt
PID=
cleanup() {
	if [ -n "$PID" ]; then
		fusermount3 -u "$MNT" 2>/dev/null
		wait "$PID" 2>/dev/null
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT

if [ ! -f "$ARCH/.done" ]; then
	log "generating $SLICES slices of 512x512 int16 ($KIND) in $ARCH"
	rm -rf "$ARCH"
	mkdir -p "$ARCH"
	"$PY" - "$ARCH" "$SLICES" "$KIND" <<'EOF' || die "generating failed"
import os, sys
import numpy as np
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
out, n, kind = sys.argv[1], int(sys.argv[2]), sys.argv[3]
study, series = generate_uid(), generate_uid()
rng = np.random.default_rng(1)
base = rng.integers(-1024, 2000, size=(512, 512)).astype(np.int16)
def new_ds(sop_class, desc, number):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.is_little_endian, ds.is_implicit_VR = True, False
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientName, ds.PatientID = "Bench^Volume", "BENCHVOL"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
    ds.StudyDate, ds.Modality, ds.SeriesNumber = "20240301", "CT", 1
    ds.SeriesDescription = desc
    ds.InstanceNumber = number
    return ds
def item(**kw):
    d = Dataset()
    for k, v in kw.items():
        setattr(d, k, v)
    return d
if kind == "enhanced":
    ds = new_ds("1.2.840.10008.5.1.4.1.1.2.1", "bench enhanced volume", 1)
    ds.NumberOfFrames = n
    ds.SharedFunctionalGroupsSequence = [item(
        PlaneOrientationSequence=[item(ImageOrientationPatient=["1", "0", "0", "0", "1", "0"])],
        PixelMeasuresSequence=[item(PixelSpacing=["0.9765625", "0.9765625"], SliceThickness="1.25")],
        PixelValueTransformationSequence=[item(RescaleSlope="1", RescaleIntercept="-1024",
                                               RescaleType="HU")])]
    ds.PerFrameFunctionalGroupsSequence = [item(
        FrameContentSequence=[item(InStackPositionNumber=k + 1, DimensionIndexValues=[k + 1])],
        PlanePositionSequence=[item(ImagePositionPatient=["-250", "-250", "%g" % (-300 + 1.25 * k)])])
        for k in range(n)]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows = ds.Columns = 512
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.PixelData = b"".join(np.roll(base, k, axis=0).tobytes() for k in range(n))
    ds.save_as(os.path.join(out, "IM00001"), write_like_original=False)
    sys.exit(0)
for k in range(n):
    ds = new_ds("1.2.840.10008.5.1.4.1.1.2", "bench volume", k + 1)
    ds.ImagePositionPatient = ["-250", "-250", "%g" % (-300 + 1.25 * k)]
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    ds.PixelSpacing = ["0.9765625", "0.9765625"]
    ds.SliceThickness = "1.25"
    ds.RescaleSlope, ds.RescaleIntercept = "1", "-1024"
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows = ds.Columns = 512
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.PixelData = np.roll(base, k, axis=0).tobytes()
    ds.save_as(os.path.join(out, "IM%05d" % (n - k)), write_like_original=False)
EOF
	touch "$ARCH/.done"
fi

now() { date +%s.%N; }
median() { sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
warm() { cat "$ARCH"/IM* >/dev/null; }

# 1. dcm2niix
log "dcm2niix -z n ($RUNS runs)"
: >"$WORK/t.d2n"
for r in $(seq "$RUNS"); do
	rm -rf "$WORK/d2n" && mkdir -p "$WORK/d2n"
	warm
	t0=$(now)
	dcm2niix -z n -b n -f vol -o "$WORK/d2n" "$ARCH" >/dev/null 2>&1 || die "dcm2niix failed"
	t1=$(now)
	echo "$t1 - $t0" | bc -l >>"$WORK/t.d2n"
done
D2N=$(median <"$WORK/t.d2n")
D2N_SIZE=$(stat -c %s "$WORK"/d2n/*.nii)

# 2. the mount
: >"$WORK/t.first"; : >"$WORK/t.cat"; : >"$WORK/t.cp"; : >"$WORK/t.again"
for r in $(seq "$RUNS"); do
	mkdir -p "$MNT"
	"$DICOMFS" -f -o quiet -o index="$WORK/idx" "$ARCH" "$MNT" >"$WORK/log" 2>&1 &
	PID=$!
	for i in $(seq 600); do mountpoint -q "$MNT" && break; sleep 0.1; done
	mountpoint -q "$MNT" || die "mount failed: $(cat "$WORK/log")"
	V=$(ls -d "$MNT"/patients/*/*/*/volume.nii) || die "no volume.nii"
	SIZE=$(stat -c %s "$V")
	warm
	t0=$(now)
	head -c 1 "$V" >/dev/null
	t1=$(now)
	echo "$t1 - $t0" | bc -l >>"$WORK/t.first"
	fusermount3 -u "$MNT"; wait "$PID"; PID=
	# whole file: a fresh mount each, so nothing is in the mount's page cache
	"$DICOMFS" -f -o quiet -o index="$WORK/idx" "$ARCH" "$MNT" >"$WORK/log" 2>&1 &
	PID=$!
	for i in $(seq 600); do mountpoint -q "$MNT" && break; sleep 0.1; done
	warm
	t0=$(now)
	cat "$V" >/dev/null
	t1=$(now)
	cat "$V" >/dev/null
	t2=$(now)
	echo "$t1 - $t0" | bc -l >>"$WORK/t.cat"
	echo "$t2 - $t1" | bc -l >>"$WORK/t.again"
	fusermount3 -u "$MNT"; wait "$PID"; PID=
	"$DICOMFS" -f -o quiet -o index="$WORK/idx" "$ARCH" "$MNT" >"$WORK/log" 2>&1 &
	PID=$!
	for i in $(seq 600); do mountpoint -q "$MNT" && break; sleep 0.1; done
	warm
	rm -f "$WORK/copy.nii"
	t0=$(now)
	cp "$V" "$WORK/copy.nii"
	t1=$(now)
	echo "$t1 - $t0" | bc -l >>"$WORK/t.cp"
	fusermount3 -u "$MNT"; wait "$PID"; PID=
done
FIRST=$(median <"$WORK/t.first")
CAT=$(median <"$WORK/t.cat")
CP=$(median <"$WORK/t.cp")
AGAIN=$(median <"$WORK/t.again")
MB=$(echo "$SIZE / 1048576" | bc -l)

printf '\nvolume.nii of %d slices 512x512 int16, %s (%.1f MiB; dcm2niix wrote %.1f MiB), median of %d runs\n' \
	"$SLICES" "$KIND" "$MB" "$(echo "$D2N_SIZE / 1048576" | bc -l)" "$RUNS"
printf '  %-44s %8.3f s\n' "dcm2niix -z n (series -> .nii on disk)" "$D2N"
printf '  %-44s %8.3f s   ratio to dcm2niix %6.3f\n' "mount: first byte of volume.nii" "$FIRST" \
	"$(echo "$FIRST / $D2N" | bc -l)"
printf '  %-44s %8.3f s   ratio to dcm2niix %6.3f  (%.0f MiB/s)\n' "mount: whole volume.nii (cat > /dev/null)" \
	"$CAT" "$(echo "$CAT / $D2N" | bc -l)" "$(echo "$MB / $CAT" | bc -l)"
printf '  %-44s %8.3f s   ratio to dcm2niix %6.3f\n' "mount: cp volume.nii to disk" "$CP" \
	"$(echo "$CP / $D2N" | bc -l)"
printf '  %-44s %8.3f s   ratio to dcm2niix %6.3f\n' "mount: whole volume.nii again (page cache)" \
	"$AGAIN" "$(echo "$AGAIN / $D2N" | bc -l)"
