#!/bin/bash
# <instance>.npy and <instance>.png against pydicom (tests/pixels_oracle.py):
# pydicom's test data (split into archives without duplicate SOP Instance
# UIDs, so every file is served), the generated messy archive, a big
# multi-frame JPEG 2000 and JPEG-LS instance; partial reads, mmap, several
# processes reading one compressed .npy at once, a small cache, and
# corrupt codestreams (EIO + errors.tsv, the mount survives).
. "${srcdir:-$(dirname "$0")/..}/tests/lib.sh"
setup

DATA=${PYDICOM_DATA:-/usr/lib/python3/dist-packages/pydicom/data}
ORACLE="$srcdir/tests/pixels_oracle.py"
MNT="$TMP/mnt"
[ -d "$DATA/test_files" ] || fatal "pydicom test data not found at $DATA (install python3-pydicom)"
"$PY" -c 'import PIL, numpy, pydicom' 2>/dev/null || fatal "python3-pil, python3-numpy and python3-pydicom are needed"
command -v gdcmconv >/dev/null || fatal "gdcmconv not found (install libgdcm-tools)"

# --- pydicom's test data ------------------------------------------------------
log "splitting pydicom's pixel files into archives with unique SOP Instance UIDs"
"$PY" - "$DATA" "$TMP/pyd" <<'EOF' || fatal "splitting failed"
import os, shutil, sys, warnings
warnings.filterwarnings("ignore")
import pydicom
data, out = sys.argv[1:]
parts = []   # list of sets of SOP UIDs
for dp, dns, fns in os.walk(data):
    dns.sort()
    for fn in sorted(fns):
        p = os.path.join(dp, fn)
        if os.path.islink(p):
            continue
        try:
            ds = pydicom.dcmread(p, stop_before_pixels=True)
        except Exception:
            continue
        if not any(k in ds for k in ("Rows", "PixelData")):
            continue
        uid = str(ds.get("SOPInstanceUID", "")) + "|" + str(ds.get("StudyInstanceUID", "")) + \
              "|" + str(ds.get("SeriesInstanceUID", ""))
        for i, s in enumerate(parts):
            if uid not in s:
                break
        else:
            parts.append(set())
            i = len(parts) - 1
        parts[i].add(uid)
        dst = os.path.join(out, "p%02d" % i, os.path.relpath(p, data))
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copy2(p, dst)
print("    %d archives" % len(parts))
EOF
for part in "$TMP"/pyd/p*; do
	name=$(basename "$part")
	mount_start "$MNT" "$part" -o index="$TMP/idx.$name" -o quiet || exit 1
	log "pydicom data, archive $name: comparing with pydicom"
	if timeout 600 "$PY" "$ORACLE" compare "$part" "$MNT" 2>"$TMP/oracle.$name.err"; then
		ok "pydicom data $name: every .npy equals pydicom's pixel_array, .png decode"
	else
		fail "pydicom data $name: .npy/.png differ from pydicom (above)"
	fi
	daemon_alive || fail "dicomfs died on pydicom data $name"
	if [ "$name" = p00 ]; then
		# odd sizes and layouts: partial reads of every .npy of this archive
		find "$MNT/patients" -name '*.npy' -print0 | sort -z |
			xargs -0 "$PY" "$ORACLE" partial >"$TMP/partial.out" 2>&1 ||
			{ fail "partial reads (pydicom data)"; }
		cat "$TMP/partial.out"
	fi
	mount_stop
done

# --- the generated archive, plus big compressed instances -------------------------------
ARCH="$TMP/arch"
log "generating the messy archive and big multi-frame compressed instances"
"$PY" "$GEN" "$ARCH" || fatal "gen_archive.py failed"
"$PY" - "$TMP/big.dcm" <<'EOF' || fatal "making the big instance failed"
import sys, numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
ds = Dataset()
ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
ds.SOPInstanceUID = "2.25.1234567.1"
ds.StudyInstanceUID = "2.25.1234567.2"
ds.SeriesInstanceUID = "2.25.1234567.3"
ds.PatientName = "BIG^MULTIFRAME"
ds.PatientID = "BIG1"
ds.Modality = "MR"
ds.InstanceNumber = 1
ds.SamplesPerPixel = 1
ds.PhotometricInterpretation = "MONOCHROME2"
ds.NumberOfFrames = 12
ds.Rows, ds.Columns = 384, 320
ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
ds.WindowCenter, ds.WindowWidth = 2000, 3000
y, x = np.mgrid[0:384, 0:320]
frames = [((x * 7 + y * 3 + f * 101) % 4096 ^ ((x * y) % 97)).astype("<u2") for f in range(12)]
ds.PixelData = np.stack(frames).tobytes()
ds["PixelData"].VR = "OW"
fm = FileMetaDataset()
fm.MediaStorageSOPClassUID = ds.SOPClassUID
fm.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
fm.TransferSyntaxUID = "1.2.840.10008.1.2.1"
ds.file_meta = fm
ds.is_little_endian, ds.is_implicit_VR = True, False
ds.save_as(sys.argv[1], write_like_original=False)
EOF
mkdir -p "$ARCH/big"
gdcmconv --j2k "$TMP/big.dcm" "$ARCH/big/j2k.dcm" || fatal "gdcmconv --j2k failed"
# same pixels, other UIDs: a JPEG-LS copy
"$PY" -c 'import sys, pydicom; ds = pydicom.dcmread(sys.argv[1]); ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = "2.25.1234567.4"; ds.InstanceNumber = 2; ds.save_as(sys.argv[2])' \
	"$TMP/big.dcm" "$TMP/big2.dcm" && gdcmconv --jpegls "$TMP/big2.dcm" "$ARCH/big/jls.dcm" ||
	fatal "making the JPEG-LS copy failed"

mount_start "$MNT" "$ARCH" -o index="$TMP/idx.gen" -o cache_size=8 -o quiet || exit 1
log "generated archive: comparing with pydicom"
if timeout 600 "$PY" "$ORACLE" compare "$ARCH" "$MNT" 2>"$TMP/oracle.gen.err"; then
	ok "generated archive: every .npy equals pydicom's pixel_array, .png decode"
else
	fail "generated archive: .npy/.png differ from pydicom (above)"
fi
log "generated archive: mmap and partial reads of every .npy"
find "$MNT/patients" -name '*.npy' -print0 | sort -z |
	xargs -0 "$PY" "$ORACLE" partial >"$TMP/partial.out" 2>&1 || fail "partial reads (generated archive)"
cat "$TMP/partial.out"

# --- concurrent readers of one compressed .npy ----------------------------------
log "8 processes reading the big JPEG 2000 and JPEG-LS .npy at once (cache 8 MB < 2.9 MB x 2 + reuse)"
J2K=$(find "$MNT/patients" -path '*BIG*' -name '1.npy' | head -1)
JLS=$(find "$MNT/patients" -path '*BIG*' -name '2.npy' | head -1)
[ -n "$J2K" ] && [ -n "$JLS" ] || fail "the big compressed instances are not listed"
if "$PY" - "$J2K" "$JLS" "$TMP/big.dcm" <<'EOF'; then
import hashlib, sys, numpy as np, pydicom
from multiprocessing import Pool
j2k, jls, src = sys.argv[1:]
def rd(a):
    p, bs = a
    h = hashlib.sha256()
    with open(p, "rb", buffering=0) as f:
        for b in iter(lambda: f.read(bs), b""):
            h.update(b)
    return p, h.hexdigest()
jobs = [(p, bs) for p in (j2k, jls) for bs in (4096, 65536, 131072, 1 << 20)]
with Pool(8) as pool:
    res = pool.map(rd, jobs * 2)
want = pydicom.dcmread(src).pixel_array
bad = 0
for p in (j2k, jls):
    if len({h for q, h in res if q == p}) != 1:
        print("    readers of %s disagree" % p); bad = 1
    if not np.array_equal(np.load(p), want):
        print("    %s differs from the source pixels" % p); bad = 1
    a = np.load(p)
    if a.shape != (12, 384, 320) or a.dtype != np.uint16:
        print("    %s: %s %s" % (p, a.shape, a.dtype)); bad = 1
sys.exit(bad)
EOF
	ok "16 concurrent readers of the big JPEG 2000 / JPEG-LS .npy agree and equal the source"
else
	fail "concurrent readers of compressed .npy (above)"
fi
"$PY" "$ORACLE" partial "$J2K" "$JLS" || fail "partial reads of the big compressed .npy"
PNG=${J2K%.npy}.png
"$PY" -c 'import sys; from PIL import Image; im = Image.open(sys.argv[1]); im.load(); assert im.size == (320, 384) and im.mode == "L", (im.size, im.mode)' "$PNG" &&
	ok "the big instance's .png is a 320x384 grey PNG" || fail "the big instance's .png"
daemon_alive || fail "dicomfs died"
mount_stop

# --- corrupt codestreams -------------------------------------------------------------
log "corrupt codestreams: EIO for that file, errors.tsv, the mount survives"
BAD="$TMP/bad"
mkdir -p "$BAD"
"$PY" - "$ARCH/big/j2k.dcm" "$ARCH/big/jls.dcm" "$BAD" <<'EOF' || fatal "corrupting failed"
import os, sys, pydicom
j2k, jls, out = sys.argv[1:]
def corrupt(src, dst, uid, how):
    ds = pydicom.dcmread(src)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = uid
    ds.save_as(dst)
    data = bytearray(open(dst, "rb").read())
    # the first fragment after the basic offset table item
    i = data.rfind(b"\xe0\x7f\x10\x00")
    k = data.find(b"\xfe\xff\x00\xe0", i + 12)          # BOT item
    k = data.find(b"\xfe\xff\x00\xe0", k + 8)           # first fragment
    ln = int.from_bytes(data[k + 4:k + 8], "little")
    body = k + 8
    if how == "garble":
        for j in range(body + 2, body + ln - 2, 7):
            data[j] ^= 0x5A
    elif how == "zero":
        for j in range(body, body + ln):
            data[j] = 0
    open(dst, "wb").write(bytes(data))
corrupt(j2k, os.path.join(out, "j2k_garbled.dcm"), "2.25.1234567.11", "garble")
corrupt(jls, os.path.join(out, "jls_garbled.dcm"), "2.25.1234567.12", "garble")
corrupt(j2k, os.path.join(out, "j2k_zero.dcm"), "2.25.1234567.13", "zero")
corrupt(jls, os.path.join(out, "jls_zero.dcm"), "2.25.1234567.14", "zero")
EOF
cp "$ARCH/big/j2k.dcm" "$BAD/good.dcm"
mount_start "$MNT" "$BAD" -o index="$TMP/idx.bad" -o quiet || exit 1
nbad=0
nok=0
while IFS= read -r f; do
	if cat "$f" >/dev/null 2>"$TMP/cat.err"; then
		"$PY" -c 'import sys, numpy as np; a = np.load(sys.argv[1]); assert a.shape == (12, 384, 320)' "$f" &&
			nok=$((nok + 1)) || fail "$f reads but does not load"
	else
		grep -q 'Input/output error' "$TMP/cat.err" || fail "reading $f failed, but not with EIO: $(cat "$TMP/cat.err")"
		nbad=$((nbad + 1))
		cat "${f%.npy}.png" >/dev/null 2>&1 && fail "${f%.npy}.png reads although its .npy fails"
		cat "${f%.npy}.dcm" >/dev/null || fail "${f%.npy}.dcm does not read any more"
	fi
done < <(find "$MNT/patients" -name '*.npy' | sort)
daemon_alive || fatal "dicomfs died on corrupt codestreams"
nerr=$(grep -c 'cannot decode pixel data' "$MNT/.dicomfs/errors.tsv")
log "$nbad of 5 .npy give EIO, $nok load; errors.tsv has $nerr decode lines:"
grep 'decode' "$MNT/.dicomfs/errors.tsv" | sed 's/^/    /'
[ "$nbad" -ge 2 ] || fail "want at least the two zeroed codestreams to fail with EIO, got $nbad"
[ "$nok" -ge 1 ] || fail "the intact instance next to corrupt ones does not load"
[ "$nerr" -eq "$nbad" ] || fail "errors.tsv has $nerr decode lines for $nbad failing .npy"
mount_stop
exit 0
