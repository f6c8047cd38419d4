#!/bin/bash
# bench_frames.sh - first decode of compressed multi-frame .npy files:
# dicomfs (frames cut from the item stream by encaps.c, one codestream per
# codec call) vs a BASELINE dicomfs binary (e.g. a build of an earlier
# commit, where GDCM's ImageReader reads the whole file), side by side in
# one run, alternating, two rounds.
#
# Usage: BASELINE=/path/to/old/dicomfs contrib/bench/bench_frames.sh [COPIES]
#   COPIES  instances per transfer syntax (default 6), each 12 frames of
#           512x512 16-bit (JPEG baseline: 8-bit)
# Prints, per syntax, the wall and CPU seconds to read every .npy once
# (cold: a fresh index and mount, so every read decodes) and the ratios
# new / baseline.
set -u
NEW=${DICOMFS:-./dicomfs}
OLD=${BASELINE:?set BASELINE to the baseline dicomfs binary}
N=${1:-6}
PY=/usr/bin/python3
W=$(mktemp -d "${TMPDIR:-/tmp}/bench_frames.XXXXXX")
trap 'fusermount3 -u -z "$W/mnt" 2>/dev/null; rm -rf "$W"' EXIT
mkdir -p "$W/mnt" "$W/src"

"$PY" - "$W/src/raw.dcm" "$W/src/raw8.dcm" <<'EOF' || exit 1
import sys, numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
def make(path, bits):
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
    ds.SOPInstanceUID = ds.StudyInstanceUID = ds.SeriesInstanceUID = "2.25.99"
    ds.PatientName, ds.PatientID, ds.Modality = "BENCH^FRAMES", "BF", "MR"
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.NumberOfFrames, ds.Rows, ds.Columns = 12, 512, 512
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits if bits == 8 else 12, (bits if bits == 8 else 12) - 1, 0
    y, x = np.mgrid[0:512, 0:512]
    mod = 256 if bits == 8 else 4096
    fr = [((x * 3 + y * 5 + f * 11 + (x * y) // 9) % mod) for f in range(12)]
    ds.PixelData = np.stack(fr).astype("u1" if bits == 8 else "<u2").tobytes()
    fm = FileMetaDataset()
    fm.MediaStorageSOPClassUID, fm.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    fm.TransferSyntaxUID = "1.2.840.10008.1.2.1"
    ds.file_meta = fm
    ds.is_little_endian, ds.is_implicit_VR = True, False
    ds.save_as(path, write_like_original=False)
make(sys.argv[1], 16)
make(sys.argv[2], 8)
EOF
gdcmconv --j2k "$W/src/raw.dcm" "$W/src/j2k.dcm" &&
	gdcmconv --jpegls "$W/src/raw.dcm" "$W/src/jls.dcm" &&
	dcmcjpeg +e1 "$W/src/raw.dcm" "$W/src/sv1.dcm" &&
	dcmcjpeg +eb "$W/src/raw8.dcm" "$W/src/base.dcm" || exit 1
"$PY" - "$W" "$N" <<'EOF' || exit 1
import os, sys, pydicom
w, n = sys.argv[1], int(sys.argv[2])
for k, name in enumerate(("j2k", "jls", "sv1", "base")):
    ds = pydicom.dcmread(os.path.join(w, "src", name + ".dcm"))
    os.makedirs(os.path.join(w, "arch", name))
    for i in range(n):
        uid = "2.25.99.%d.%d" % (k, i)
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = uid
        ds.SeriesInstanceUID = "2.25.99.%d" % k
        ds.SeriesDescription = name
        ds.InstanceNumber = i + 1
        ds.save_as(os.path.join(w, "arch", name, "%02d.dcm" % i))
EOF

# run BIN NAME: "wall cpu" seconds to read every .npy of syntax NAME once
# on a fresh index and mount; cpu: the mount process and its decoder
# processes (reaped at unmount), user + system, which load on the machine
# disturbs less than the wall time
run() {
	local bin=$1 name=$2 i pid t0 t1
	rm -rf "$W/idx"
	/usr/bin/time -f '%U %S' -o "$W/cpu" \
		"$bin" -f -o index="$W/idx" -o cache_size=1024 -o quiet "$W/arch/$name" "$W/mnt" 2>/dev/null &
	pid=$!
	for i in $(seq 300); do mountpoint -q "$W/mnt" && break; sleep 0.1; done
	mapfile -t files < <(find "$W/mnt/patients" -name '*.npy' | sort)
	t0=$(date +%s.%N)
	for f in "${files[@]}"; do cat "$f" >/dev/null || echo "read failed: $f" >&2; done
	t1=$(date +%s.%N)
	fusermount3 -u "$W/mnt"
	wait "$pid"
	echo "$(echo "$t1 - $t0" | bc) $(awk '{print $1 + $2}' "$W/cpu")"
}

echo "first decode of every .npy ($N instances x 12 frames per syntax), two rounds;"
echo "wall and CPU seconds (mount + decoders), ratio new / baseline"
printf '%-5s %-16s %-16s %-16s %-16s %s\n' syntax "wall baseline" "wall new" "cpu baseline" "cpu new" "ratio wall | cpu"
for name in j2k jls sv1 base; do
	ow="" nw="" oc="" nc="" rw="" rc=""
	for round in 1 2; do
		read -r a b < <(run "$OLD" "$name")
		read -r c d < <(run "$NEW" "$name")
		ow="$ow $a" oc="$oc $b" nw="$nw $c" nc="$nc $d"
		rw="$rw $(echo "scale=2; $c / $a" | bc)"
		rc="$rc $(echo "scale=2; $d / $b" | bc)"
	done
	printf '%-5s %-16s %-16s %-16s %-16s %s\n' "$name" "$ow" "$nw" "$oc" "$nc" "$rw |$rc"
done
