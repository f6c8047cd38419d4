#!/bin/bash
# Files shaped like those others write (issue 12, section 1;
# tests/gen_realworld.py): icons with encapsulated pixels inside sequences,
# PALETTE COLOR with 8/16-bit, segmented and 65536-entry LUTs, dcmtk's JPEG
# baseline / extended 12-bit / lossless / JPEG-LS near-lossless, frames
# spanning fragments with and without offset tables (basic, extended),
# padding, elements after Pixel Data. Every file must be indexed (none in
# errors.tsv), its .npy equal pydicom's pixel_array (tests/pixels_oracle.py,
# python3-gdcm) and, for lossless encodings, the pixels that were encoded;
# its .json equal pydicom's to_json_dict (tests/json_oracle.py), elements
# after Pixel Data included. Then pydicom's JPEG 2000 file whose item stream
# holds an embedded sequence delimiter, and the real files of python3-nibabel.
. "${srcdir:-$(dirname "$0")/..}/tests/lib.sh"
setup

MNT="$TMP/mnt"
ARCH="$TMP/rw"
PYDATA=/usr/lib/python3/dist-packages/pydicom/data/test_files
command -v dcmcjpeg >/dev/null && command -v dcmcjpls >/dev/null && command -v dcmcrle >/dev/null ||
	fatal "dcmcjpeg, dcmcjpls and dcmcrle are needed (install dcmtk)"
"$PY" -c 'import gdcm' 2>/dev/null || fatal "python3-gdcm is needed (pydicom's GDCM handler)"

log "generating the real-world-shaped files"
"$PY" "$srcdir/tests/gen_realworld.py" "$ARCH" || fatal "gen_realworld.py failed"
mkdir -p "$ARCH/pydicom"
cp "$PYDATA/JPEG2000-embedded-sequence-delimiter.dcm" "$ARCH/pydicom/" ||
	fatal "pydicom's JPEG2000-embedded-sequence-delimiter.dcm is missing"
nsrc=$(find "$ARCH" -name '*.dcm' | wc -l)
# the generated files are valid for others: dcmdump reads them all
# (gdcminfo is no oracle here: GDCM 3.0 asserts on 8-bit palette entries
# in 16-bit words, valid per PS3.3 C.7.6.3.1.6, and rejects HTJ2K)
bad=0
for f in $(find "$ARCH" -name '*.dcm' | sort); do
	dcmdump -q +E "$f" >/dev/null 2>&1 || { fail "dcmdump cannot read $f"; bad=1; }
done
[ "$bad" = 0 ] && ok "dcmdump reads all $nsrc files"

# errors.tsv lines other than its header, "no volume" notes and the files
# anon/ leaves out ("anon:", they stay in patients/)
file_errors() {
	grep -v '^path	reason$' "$1/.dicomfs/errors.tsv" | grep -v -e '	no volume: ' -e '	anon: ' | grep .
}

mount_start "$MNT" "$ARCH" -o index="$TMP/idx" -o quiet || exit 1

# every source indexed: listed once, nothing in errors.tsv
n=$(find "$MNT/patients" -name '*.dcm' | wc -l)
[ "$n" -eq "$nsrc" ] && ok "all $nsrc sources are listed" ||
	fail "$n of $nsrc sources are listed"
if file_errors "$MNT" >"$TMP/err.1"; then
	fail "errors.tsv is not empty before any pixel is read:"
	sed 's/^/    /' "$TMP/err.1"
else
	ok "errors.tsv is empty"
fi

log "pixels against pydicom"
# pydicom 2.3's GDCM handler gives GDCM the whole item stream of these
# multi-frame files (frames spanning fragments, no BOT / a BOT) and returns
# wrong frames; they are checked against the encoded pixels below instead
export PIXELS_ORACLE_WRONG=encaps/frag2_nobot.dcm:encaps/frag3_bot.dcm
if timeout 600 "$PY" "$srcdir/tests/pixels_oracle.py" compare "$ARCH" "$MNT" >"$TMP/px.out" 2>&1; then
	ok "every .npy equals pydicom's pixel_array (or the file is a listed exception)"
else
	fail "pixels differ from pydicom:"
fi
sed 's/^/  /' "$TMP/px.out"

log "pixels against what was encoded (lossless files)"
if "$PY" - "$ARCH" "$MNT" <<'EOF'; then
import hashlib, os, sys
import numpy as np
arch, mnt = sys.argv[1:]
truth = arch + ".truth"
def sha(p):
    return hashlib.sha256(open(p, "rb").read()).hexdigest()
by = {}
for dp, dns, fns in os.walk(os.path.join(mnt, "patients")):
    for f in fns:
        if f.endswith(".dcm"):
            by[sha(os.path.join(dp, f))] = os.path.join(dp, f[:-4])
bad = n = 0
for dp, dns, fns in os.walk(truth):
    for f in sorted(fns):
        rel = os.path.relpath(os.path.join(dp, f), truth)[:-4]
        want = np.load(os.path.join(dp, f))
        base = by.get(sha(os.path.join(arch, rel + ".dcm")))
        try:
            got = np.load(base + ".npy")
        except Exception as e:
            print("    FAIL: %s: %s" % (rel, e)); bad += 1; continue
        if got.shape != want.shape or not np.array_equal(got, want):
            print("    FAIL: %s: served %s %s differs from the encoded %s %s" %
                  (rel, got.dtype, got.shape, want.dtype, want.shape)); bad += 1
        n += 1
print("    %d lossless files equal to the encoded pixels, %d failures" % (n - bad, bad))
sys.exit(1 if bad or not n else 0)
EOF
	ok "lossless files decode to exactly the encoded pixels"
else
	fail "lossless files differ from the encoded pixels (above)"
fi

log "JSON against pydicom (elements after Pixel Data included)"
if "$PY" "$srcdir/tests/json_oracle.py" "$MNT" "$ARCH" >"$TMP/json.out" 2>&1; then
	ok "every .json agrees with pydicom"
else
	fail "json_oracle.py found differences:"
fi
sed 's/^/  /' "$TMP/json.out"
for f in trailer/native trailer/encaps; do
	sum=$(sha256sum <"$ARCH/$f.dcm" | cut -d' ' -f1)
	dcm=$(find "$MNT/patients" -name '*.dcm' -exec sha256sum {} + | grep "^$sum" | head -1 | cut -c67-)
	if [ -n "$dcm" ] && grep -q '"FFFAFFFA"' "${dcm%.dcm}.json" &&
		grep -q '"7FE11002"' "${dcm%.dcm}.json" && ! grep -q '"FFFCFFFC"' "${dcm%.dcm}.json"; then
		ok "$f.json has the Digital Signatures Sequence and the trailing private group, no FFFC,FFFC"
	else
		fail "$f.json lacks the elements after Pixel Data (or has FFFC,FFFC)"
	fi
done
# pydicom's JPEG 2000 file with an embedded delimiter: its item stream
# parses (one 250-byte fragment) but the codestream itself is cut short
# (OpenJPEG: "Invalid number of tiles"; pydicom's GDCM handler ignores the
# failure and returns garbage): EIO, and errors.tsv says the codec failed
# on frame 0, not that the item stream could not be read
file_errors "$MNT" >"$TMP/err.2"
if grep -q '^encaps/htj2k.dcm	cannot decode pixel data: transfer syntax 1.2.840.10008.1.2.4.201 (High-Throughput JPEG 2000 (HTJ2K)) has no decoder here$' "$TMP/err.2"; then
	ok "errors.tsv names the syntax without a decoder (HTJ2K)"
else
	fail "no errors.tsv line naming HTJ2K"
fi
if grep -v '^pydicom/JPEG2000-embedded-sequence-delimiter.dcm	cannot decode pixel data (frame 0): ' "$TMP/err.2" |
	grep -v '^encaps/htj2k.dcm	' | grep .; then
	fail "errors.tsv after reading everything (above)"
elif ! grep -q '^pydicom/JPEG2000-embedded' "$TMP/err.2"; then
	fail "no errors.tsv line for the cut JPEG 2000 codestream"
else
	ok "errors.tsv: only the cut JPEG 2000 codestream, failing in its codec"
fi
daemon_alive || fail "dicomfs died"
mount_stop

# --- real files of python3-nibabel ----------------------------------------------
NIB=/usr/lib/python3/dist-packages/nibabel
if [ -d "$NIB" ]; then
	mkdir -p "$TMP/nib"
	find "$NIB" -name '*.dcm' -exec cp --backup=numbered -t "$TMP/nib" {} + 2>/dev/null
	if [ "$(find "$TMP/nib" -type f | wc -l)" -gt 0 ]; then
		mount_start "$MNT" "$TMP/nib" -o index="$TMP/idx-nib" -o quiet || exit 1
		if timeout 600 "$PY" "$srcdir/tests/pixels_oracle.py" compare "$TMP/nib" "$MNT" >"$TMP/nib.out" 2>&1; then
			ok "python3-nibabel's DICOM files: every .npy equals pydicom"
		else
			fail "python3-nibabel's DICOM files differ from pydicom:"
		fi
		sed 's/^/  /' "$TMP/nib.out"
		mount_stop
	fi
fi
exit 0
