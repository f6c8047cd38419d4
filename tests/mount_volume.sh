#!/bin/bash
# volume.nii / volume.npy of series that form a volume (tests/volume_oracle.py):
# generated series (axial, reversed, sagittal, oblique, gantry-tilted, no
# InstanceNumber, 4-D by TemporalPositionIdentifier, per-slice rescale, RLE;
# enhanced multi-frame CT/MR/PET and legacy converted objects, 3-D and 4-D
# by dimension index, per-frame rescale, RLE multi-frame) and non-volumes (mixed orientations, different sizes, single image, uneven
# duplicates) with their errors.tsv reasons; real series from Debian
# packages (pydicom's dicomdirtests, nibabel's Siemens mosaics and Philips
# enhanced MR).
# Voxels and affines against pydicom and `dcm2niix -z n`; st_size == bytes
# read; reading the header decodes nothing, reading slice k decodes only
# slice k (status.json pixel_decodes).
. "${srcdir:-$(dirname "$0")/..}/tests/lib.sh"
setup

ORACLE="$srcdir/tests/volume_oracle.py"
MNT="$TMP/mnt"
PYD=${PYDICOM_DATA:-/usr/lib/python3/dist-packages/pydicom/data}/test_files/dicomdirtests
NIB=/usr/lib/python3/dist-packages/nibabel/nicom/tests/data
"$PY" -c 'import nibabel, numpy, pydicom' 2>/dev/null ||
	fatal "python3-nibabel, python3-numpy and python3-pydicom are needed"
command -v dcm2niix >/dev/null || fatal "dcm2niix not found (install dcm2niix)"

# --- generated series -----------------------------------------------------------
log "generating series with pydicom"
"$PY" "$ORACLE" gen "$TMP/gen" || fatal "generating failed"
mount_start "$MNT" "$TMP/gen" -o index="$TMP/idx.gen" -o quiet || exit 1
if "$PY" "$ORACLE" compare "$MNT" "$TMP/gen.expect.json"; then
	ok "generated series: volumes equal pydicom and dcm2niix, non-volumes explained"
else
	fail "generated series (above)"
fi

# the header alone decodes nothing; slice k decodes slice k only
RLE=$(ls -d "$MNT"/patients/*/*/"009 CT rle")
dec() { status_get "$MNT" pixel_decodes; }
d0=$(dec)
[ -n "$d0" ] || fail "status.json has no pixel_decodes"
head -c 352 "$RLE/volume.nii" >/dev/null
stat "$RLE/volume.npy" >/dev/null
d1=$(dec)
[ "$d1" = "$d0" ] && ok "reading the 352-byte header decoded nothing" ||
	fail "reading the header decoded $((d1 - d0)) slices"
# slice 7 of 20 (64x64 int16 = 8192 bytes each, after the 352-byte header),
# read through a fresh mount
mount_stop
mount_start "$MNT" "$TMP/gen" -o index="$TMP/idx.gen" -o quiet || exit 1
RLE=$(ls -d "$MNT"/patients/*/*/"009 CT rle")
d0=$(dec)
"$PY" -c 'import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)   # no readahead into slice 8
# page 15 (61440..65535) lies inside slice 7 (57696..65887): the page cache
# reads whole pages, so the range must not share a page with slices 6 or 8
assert len(os.pread(fd, 4096, 61440)) == 4096' "$RLE/volume.nii" ||
	fail "reading slice 7 failed"
d1=$(dec)
[ "$((d1 - d0))" = 1 ] && ok "reading slice 7 decoded exactly one instance" ||
	fail "reading slice 7 decoded $((d1 - d0)) instances"
cat "$RLE/volume.nii" >/dev/null
d2=$(dec)
[ "$((d2 - d0))" -le 20 ] && ok "reading all 20 slices decoded $((d2 - d0)) instances" ||
	fail "reading 20 slices decoded $((d2 - d0)) instances"

# an RLE enhanced object (16 frames), on this fresh mount: sizing the
# volume files decodes nothing, the whole volume decodes the instance once
# (its frames are slices of one decode)
ERLE=$(ls -d "$MNT"/patients/*/*/"027 CT enh ct rle")
d0=$(dec)
stat "$ERLE/volume.nii" "$ERLE/volume.npy" >/dev/null
d1=$(dec)
cat "$ERLE/volume.nii" >/dev/null
d2=$(dec)
[ "$d1" = "$d0" ] && [ "$((d2 - d1))" = 1 ] &&
	ok "enhanced RLE volume: stat decodes nothing, its 16 slices decode the instance once" ||
	fail "enhanced RLE volume: stat decoded $((d1 - d0)), all slices $((d2 - d1)) (want 0 and 1)"

# listing: volume files only where the series is a volume
for s in "010 CT mixed" "011 CT sizes" "012 CT single" "013 CT dups"; do
	d=$(ls -d "$MNT"/patients/*/*/"$s")
	ls "$d" | grep -q '^volume\.' && fail "$s lists volume files"
done
d=$(ls -d "$MNT"/patients/*/*/"001 CT axial")
ls "$d" | grep -qx volume.nii && ls "$d" | grep -qx volume.npy &&
	ok "volume files listed only in volume series" || fail "axial does not list volume files"
mount_stop

# --- real series from Debian packages -----------------------------------------
log "real series: pydicom dicomdirtests, nibabel nicom test data"
mkdir -p "$TMP/real/nib"
[ -d "$PYD" ] && cp -r "$PYD" "$TMP/real/pyd"
for f in "$NIB"/*.dcm "$NIB"/*.dcm.gz; do
	[ -f "$f" ] || continue
	case $f in
	*.gz) zcat "$f" >"$TMP/real/nib/$(basename "$f" .gz)" ;;
	*) cp "$f" "$TMP/real/nib/" ;;
	esac
done
mount_start "$MNT" "$TMP/real" -o index="$TMP/idx.real" -o quiet || exit 1
if "$PY" "$ORACLE" compare "$MNT"; then
	ok "real series: volumes equal pydicom and dcm2niix, the others explained"
else
	fail "real series (above)"
fi
# the Philips Enhanced MR (176 frames, per-frame Plane Position and
# Orientation, a private sequence holding other positions) is a volume; the
# oracle above compared it with pydicom and dcm2niix
MPR=$(ls -d "$MNT"/patients/*/*/*MPRAGE* 2>/dev/null | head -1)
[ -n "$MPR" ] && [ -f "$MPR/volume.nii" ] && ! grep -q 'MPRAGE.*no volume' "$MNT/.dicomfs/errors.tsv" &&
	ok "Philips enhanced multi-frame MPRAGE: a volume from its functional groups" ||
	fail "the Philips enhanced MPRAGE is not a volume"
# the Siemens DWI mosaics (b0, b1000; 7x7 tiles of 128x128, 48 slices)
# demosaiced into one 4-D volume (compared above with nibabel's
# MosaicWrapper and dcm2niix); csa_slice_norm.dcm (48 images in a 256x256
# mosaic) cannot be tiled: its reason
DWI=$(ls -d "$MNT"/patients/Unknown*/*/*CBU_DTI* 2>/dev/null | head -1)
[ -n "$DWI" ] && [ "$(stat -c %s "$DWI/volume.nii")" = $((352 + 128 * 128 * 48 * 2 * 2)) ] &&
	ok "Siemens mosaics: demosaiced into a 128x128x48x2 volume" ||
	fail "the Siemens DWI mosaics are not a 128x128x48x2 volume"
grep -q 'no volume: a Siemens mosaic of 48 images whose 256x256 pixels do not split' \
	"$MNT/.dicomfs/errors.tsv" &&
	ok "a mosaic that cannot be tiled: left out with its reason" ||
	fail "no reason for csa_slice_norm.dcm"
mount_stop
