#!/bin/bash
# Memory bounded by configuration (issue 11): with the default cache_size
# (256 MB), 16 concurrent opens each of the .png and the .npy of a sparse
# file claiming 16384x16384 16-bit pixels (512 MiB decoded) keep the daemon
# and its worker processes under 512 MiB resident; the .png is refused with
# EIO (above max_image) and one errors.tsv line; a compressed (JPEG 2000) file
# claiming that size is refused on .npy the same way, before any
# allocation; 300 opens of one manifest share one copy (fs/shared_buf.h);
# -o build_mem builds a larger archive's tree in parts (index.h I13).
. "${srcdir:-$(dirname "$0")/..}/tests/lib.sh"
setup
[ -n "${MEMTEST_TRACE:-}" ] && set -x

ARCH="$TMP/arch"
MNT="$TMP/mnt"
HOLD="$srcdir/tests/hold_open.py"
"$PY" - "$ARCH" <<'PYEOF' || fatal "could not make the archive"
import os, struct, sys, pydicom
from pydicom.uid import ExplicitVRLittleEndian
out = sys.argv[1]
src = '/usr/lib/python3/dist-packages/pydicom/data/test_files/CT_small.dcm'
def header(path, uid, name, ts):
    ds = pydicom.dcmread(src)
    del ds.PixelData
    ds.PatientName, ds.PatientID = name, name
    ds.SOPInstanceUID = uid
    ds.StudyInstanceUID = uid + '.1'
    ds.SeriesInstanceUID = uid + '.2'
    ds.Rows = ds.Columns = 16384
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = 'MONOCHROME2'
    ds.file_meta.TransferSyntaxUID = ts
    ds.is_little_endian, ds.is_implicit_VR = True, False
    os.makedirs(os.path.dirname(path), exist_ok=True)
    ds.save_as(path, write_like_original=False)
# native: the Pixel Data element as long as claimed, a hole (4 KB on disk)
p = os.path.join(out, 'huge', 'native.dcm')
header(p, '2.25.990001', 'HUGENAT', ExplicitVRLittleEndian)
n = 16384 * 16384 * 2
with open(p, 'ab') as f:
    f.write(struct.pack('<HH2sHI', 0x7fe0, 0x0010, b'OW', 0, n))
    end = f.tell() + n
os.truncate(p, end)
# JPEG 2000: an encapsulated Pixel Data of one bogus 40 KB fragment (the
# index accepts up to 16384 decoded bytes per byte of a compressed file)
p = os.path.join(out, 'huge', 'j2k.dcm')
header(p, '2.25.990002', 'HUGEJ2K', '1.2.840.10008.1.2.4.90')
frag = b'\x00' * 40000
with open(p, 'ab') as f:
    f.write(struct.pack('<HH2sHI', 0x7fe0, 0x0010, b'OB', 0, 0xffffffff))
    f.write(struct.pack('<HHI', 0xfffe, 0xe000, 0))
    f.write(struct.pack('<HHI', 0xfffe, 0xe000, len(frag)) + frag)
    f.write(struct.pack('<HHI', 0xfffe, 0xe0dd, 0))
# many small instances: a manifest of some size
ds = pydicom.dcmread(src)
os.makedirs(os.path.join(out, 'many'), exist_ok=True)
for i in range(600):
    ds.SOPInstanceUID = '2.25.4243.%d' % i
    ds.InstanceNumber = i + 1
    ds.save_as(os.path.join(out, 'many', 'ct%03d' % i))
PYEOF
[ "$(du -k "$ARCH/huge/native.dcm" | cut -f1)" -lt 64 ] || log "note: native.dcm is not sparse here"

mount_start "$MNT" "$ARCH" -o index="$TMP/idx" || exit 1
for i in $(seq 120); do   # indexing may still run
	nat=$(find "$MNT/patients" -path '*HUGENAT*' -name '*.npy')
	rle=$(find "$MNT/patients" -path '*HUGEJ2K*' -name '*.npy')
	[ -n "$nat" ] && [ -n "$rle" ] && [ "$(status_get "$MNT" instances)" = 602 ] && break
	sleep 0.5
done
[ -n "$nat" ] && [ -n "$rle" ] || fatal "huge instances not placed: $(find "$MNT/patients" | head)"
sz=$(stat -c %s "$nat")
[ "$sz" -ge $((16384 * 16384 * 2)) ] && ok "the sparse .npy announces $sz bytes" || fail "npy size $sz"

# 16 openers each of the native .npy and .png, and of the JPEG 2000 .npy, at once
timeout 120 "$PY" "$HOLD" "$MOUNT_PID" 16 "$nat" "${nat%.npy}.png" "$rle" >"$TMP/hold" 2>&1 ||
	fail "hold_open.py: $(cat "$TMP/hold")"
sed 's/^/    /' "$TMP/hold"
peak=$(awk '/^peak_kib/ {print $2}' "$TMP/hold")
[ -n "$peak" ] && [ "$peak" -lt $((512 * 1024)) ] &&
	ok "48 opens held: daemon and workers peak at $((peak / 1024)) MiB resident (< 512)" ||
	fail "daemon and workers reached ${peak:-?} KiB resident (want < 512 MiB)"
grep -q "^open 1: ok 16$" "$TMP/hold" && ok "16 opens of the sparse .npy succeed (read per read)" ||
	fail "opens of the sparse .npy: $(grep "^open 1" "$TMP/hold")"
grep -q "^open 2: Input/output error 16$" "$TMP/hold" &&
	ok "its .png is refused with EIO" || fail "png opens: $(grep "^open 2" "$TMP/hold")"
grep -q "^open 3: Input/output error 16$" "$TMP/hold" &&
	ok "the compressed image claiming 512 MiB is refused with EIO" ||
	fail "j2k opens: $(grep "^open 3" "$TMP/hold")"
grep -q "native.dcm	png: image too large" "$MNT/.dicomfs/errors.tsv" &&
	grep -q "j2k.dcm	image too large" "$MNT/.dicomfs/errors.tsv" &&
	ok "errors.tsv says why" || fail "errors.tsv: $(cat "$MNT/.dicomfs/errors.tsv")"
# a read of the sparse .npy still serves its (zero) data
"$PY" -c 'import os,sys; f=open(sys.argv[1],"rb"); f.seek(256<<20); b=f.read(1<<20); sys.exit(len(b)!=1<<20 or any(b))' "$nat" &&
	ok "the sparse .npy reads (1 MiB at 256 MiB)" || fail "sparse .npy read"

# 300 opens of one manifest: one copy (fs/shared_buf.h), not 300
man="$MNT/query/instances/manifest.jsonl"
msz=$(stat -c %s "$man")
timeout 120 "$PY" "$HOLD" "$MOUNT_PID" 300 "$man" >"$TMP/hold2" 2>&1 || fail "hold_open.py: $(cat "$TMP/hold2")"
base=$(awk '/^base_kib/ {print $2}' "$TMP/hold2")
peak=$(awk '/^peak_kib/ {print $2}' "$TMP/hold2")
grep -q "^open 1: ok 300$" "$TMP/hold2" || fail "manifest opens: $(cat "$TMP/hold2")"
grow=$(( (peak - base) * 1024 ))
log "manifest.jsonl: $msz bytes; 300 opens: resident grew by $((grow / 1024)) KiB"
[ "$grow" -lt $((msz * 20)) ] && ok "300 opens of a $msz-byte manifest cost $((grow / 1024)) KiB (< 20 copies)" ||
	fail "300 opens of a $msz-byte manifest cost $((grow / 1024)) KiB"
# lazy manifests (view_query.c V7): sizes from stat are exact
q="$MNT/query/instances/Modality=CT"
ls "$q" >/dev/null || fail "ls $q"
for m in manifest.csv manifest.jsonl; do
	a=$(stat -c %s "$q/$m"); b=$(wc -c <"$q/$m")
	[ "$a" = "$b" ] && ok "$m: st_size $a is exact" || fail "$m: st_size $a, $b bytes read"
done
# the query table stays bounded (4,096, an LRU, V3) and keeps answering
"$PY" - "$MNT/query/instances" <<'PYEOF' || fail "5000 query directories"
import os, sys
for i in range(5000):
    os.stat(os.path.join(sys.argv[1], 'InstanceNumber=%d' % (i + 1)))
PYEOF
sleep 1.5   # QDIR_TIMEOUT: the kernel looks the names up again
n=$(ls "$MNT/query/instances/InstanceNumber=1" | grep -c '\.dcm$')
[ "$n" = 3 ] && ok "after 5000 query directories the first still answers" || fail "InstanceNumber=1 lists $n instances"
n=$(ls "$q" | grep -c '\.dcm$')
[ "$n" = 602 ] && ok "and Modality=CT lists its 602 instances" || fail "Modality=CT lists $n"
daemon_alive && ok "the daemon survived" || fail "the daemon died"
tree_list() { (cd "$MNT" && find patients uids anon sources -printf '%y %n %m %T@ %s %p\n'); }
tree_list >"$TMP/tree.whole"
mount_stop
# index.h I13: -o build_mem bounds a first build's tree; this archive's
# takes more than 1 MB, so it is built in parts (patients at a time), with
# the same result
mount_start "$MNT" "$ARCH" -o index="$TMP/idx.parts" -o anon_key="$TMP/idx/anon.key" \
	-o build_mem=1 || exit 1
parts=$(status_get "$MNT" tree_parts)
tree_list >"$TMP/tree.parts"
[ "${parts:-0}" -ge 2 ] && cmp -s "$TMP/tree.whole" "$TMP/tree.parts" &&
	ok "-o build_mem=1: the tree built in $parts parts, the same $(wc -l <"$TMP/tree.parts") entries" ||
	fail "-o build_mem=1: ${parts:-?} parts; $(diff "$TMP/tree.whole" "$TMP/tree.parts" | head -5)"
mount_stop
out=$("$DICOMFS" -o build_mem=lots "$ARCH" "$MNT" 2>&1)
[ $? = 1 ] && echo "$out" | grep -q "build_mem" && ok "a bad -o build_mem is a usage error" ||
	fail "-o build_mem=lots: $out"
exit 0
