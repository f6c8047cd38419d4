#!/bin/bash
# <instance>.json (DICOM JSON Model): mount pydicom's test data and the
# generated archive and compare every .json with pydicom's to_json_dict()
# of its source (tests/json_oracle.py: tags, VRs, values, bulk data through
# the BulkDataURIs, from_json, json.load, st_size == bytes read); the JSON
# is byte-identical on a remount with a fresh index; a source changed after
# indexing gives EIO for its .json only, with an errors.tsv line; so do
# sources rewritten in place with the same size and mtime, also one that
# makes GDCM abort (the mount lives: GDCM runs in decoder processes only,
# and /proc/PID/maps of the mount never shows dicomfs-gdcm.so).
. "${srcdir:-$(dirname "$0")/..}/tests/lib.sh"
setup

ORACLE="$srcdir/tests/json_oracle.py"
PYDATA=/usr/lib/python3/dist-packages/pydicom/data
MNT="$TMP/mnt"

# json_digest MOUNTPOINT: sha256 of every instance .json, by path
json_digest() {
	(cd "$1/patients" && find . -name '*.json' ! -name series.json ! -name study.json \
		! -name patient.json ! -name '*.fhir.json' -print0 | sort -z |
		xargs -0 -r sha256sum)
}

# no_json_errors MOUNTPOINT: errors.tsv has no "json:" reason
no_json_errors() {
	if grep -q '	json:' "$1/.dicomfs/errors.tsv"; then
		fail "errors.tsv has json errors:"
		grep '	json:' "$1/.dicomfs/errors.tsv" | sed 's/^/    /'
	else
		ok "no json errors in errors.tsv"
	fi
}

# --- (a) pydicom's test data -------------------------------------------------
if [ -d "$PYDATA" ]; then
	mount_start "$MNT" "$PYDATA" -o index="$TMP/idx-a" || exit 1
	n=$(find "$MNT/patients" -name '*.dcm' | wc -l)
	j=$(find "$MNT/patients" -name '*.dcm' -print0 | sed -z 's/\.dcm$/.json/' |
		xargs -0 -r ls 2>/dev/null | wc -l)
	[ "$n" -gt 50 ] || fail "only $n instances under pydicom's data"
	[ "$n" -eq "$j" ] && ok "$n instances, each with a .json" ||
		fail "$n instances but $j .json files next to them"
	if "$PY" "$ORACLE" "$MNT" "$PYDATA"; then
		ok "pydicom data: every .json agrees with pydicom"
	else
		fail "pydicom data: json_oracle.py found differences (above)"
	fi
	no_json_errors "$MNT"
	json_digest "$MNT" >"$TMP/digest.1"
	mount_stop
	mount_start "$MNT" "$PYDATA" -o index="$TMP/idx-a2" -s || exit 1
	json_digest "$MNT" >"$TMP/digest.2"
	if [ -s "$TMP/digest.1" ] && cmp -s "$TMP/digest.1" "$TMP/digest.2"; then
		ok "byte-identical JSON after a remount with a fresh index ($(wc -l <"$TMP/digest.1") files)"
	else
		fail "JSON differs between two mounts of the same archive"
		diff "$TMP/digest.1" "$TMP/digest.2" | head -10 | sed 's/^/    /'
	fi
	mount_stop
else
	log "no $PYDATA (python3-pydicom): part (a) skipped"
fi

# --- (b) the generated archive ---------------------------------------------------
ARCH="$TMP/arch"
log "generating the messy archive"
"$PY" "$GEN" "$ARCH" >/dev/null || fatal "gen_archive.py failed"
# (no watch: the rewrites below test sources changed under the index, R2;
# a watched mount re-indexes them, mount_live.sh. opens=each: R2 at every
# open; with zero-message opens a .json read before stays cached until the
# watch drops it, fs/fs.h Z2, tests/mount_zeroopen.sh)
DICOMFS_NO_WATCH=1 mount_start "$MNT" "$ARCH" -o index="$TMP/idx-b",opens=each || exit 1
if "$PY" "$ORACLE" "$MNT" "$ARCH"; then
	ok "generated archive: every .json agrees with pydicom"
else
	fail "generated archive: json_oracle.py found differences (above)"
fi
no_json_errors "$MNT"

# a source changed after indexing: EIO for its .json, nothing else
victim=$(find "$MNT/patients" -name '*.dcm' | sort | head -1)
other=$(find "$MNT/patients" -name '*.dcm' | sort | tail -1)
vsum=$(sha256sum <"$victim" | cut -d' ' -f1)
src=$(find "$ARCH" -type f -print0 | xargs -0 sha256sum | awk -v s="$vsum" '$1 == s { $1 = ""; print substr($0, 2); exit }')
if [ -n "$src" ]; then
	touch -d '2001-02-03 04:05:06' "$src"
	if cat "${victim%.dcm}.json" >/dev/null 2>"$TMP/eio.err"; then
		fail "reading the .json of a changed source succeeded"
	elif grep -q 'Input/output error' "$TMP/eio.err"; then
		ok "changed source: EIO for its .json"
	else
		fail "changed source: unexpected error: $(cat "$TMP/eio.err")"
	fi
	grep -q "	json: source changed" "$MNT/.dicomfs/errors.tsv" &&
		ok "changed source listed in errors.tsv" ||
		fail "changed source not listed in errors.tsv"
	"$PY" -c 'import json,sys; json.load(open(sys.argv[1]))' "${other%.dcm}.json" &&
		ok "another instance's .json still reads" ||
		fail "another instance's .json fails after one source changed"
	daemon_alive || fail "dicomfs died"
else
	fail "could not find the source of $victim"
fi

# sources rewritten in place with the same size and mtime (the index cannot
# tell): each costs at most its own .json (EIO, or the old bytes), never the
# mount (fs.h K1: GDCM runs in decoder processes only)
# src_of MOUNTED_DCM: the archive file with the same bytes
src_of() {
	local sum
	sum=$(sha256sum <"$1" | cut -d' ' -f1)
	find "$ARCH" -type f -print0 | xargs -0 sha256sum 2>/dev/null |
		awk -v s="$sum" '$1 == s { $1 = ""; print substr($0, 2); exit }'
}
mapfile -t dcms < <(find "$MNT/patients" -name '*.dcm' | sort)
n_rw=0
for k in 1 2 3 4 5 6; do
	v=${dcms[$((k * 3))]}
	[ -n "$v" ] && [ "$v" != "$other" ] && [ "$v" != "$victim" ] || continue
	s=$(src_of "$v")
	[ -n "$s" ] || { fail "no source for $v"; continue; }
	j=${v%.dcm}.json
	cp "${j}" "$TMP/old.json" 2>/dev/null || { fail "cannot read $j before the rewrite"; continue; }
	cp -p "$s" "$TMP/ref"
	size=$(stat -c %s "$s")
	case $k in
	1 | 4)  # same length, different bytes in the data set
		"$PY" - "$s" "$k" <<'PYEOF'
import sys, random
p, k = sys.argv[1], int(sys.argv[2])
b = bytearray(open(p, 'rb').read())
r = random.Random(k)
start = min(len(b), 140 + 60 * k)
for i in range(start, min(len(b), start + 2000)):
    if r.random() < 0.3:
        b[i] = r.randrange(256)
with open(p, 'r+b') as f:       # in place: same inode
    f.write(b)
PYEOF
		;;
	2 | 5)  # truncated, then restored as garbage of the same length
		: >"$s"
		head -c 132 "$TMP/ref" >>"$s"
		head -c $((size - 132)) /dev/urandom >>"$s"
		;;
	3 | 6)  # a valid preamble and meta group, then zeros (lengths 0)
		"$PY" - "$s" <<'PYEOF'
import sys
p = sys.argv[1]
b = bytearray(open(p, 'rb').read())
for i in range(300, len(b)):
    b[i] = 0xff if i % 7 == 0 else 0
with open(p, 'r+b') as f:
    f.write(b)
PYEOF
		;;
	esac
	touch -r "$TMP/ref" "$s"
	[ "$(stat -c %s "$s")" = "$size" ] || fail "rewrite $k changed the size"
	n_rw=$((n_rw + 1))
	if cat "$j" >"$TMP/new.json" 2>"$TMP/rw.err"; then
		cmp -s "$TMP/new.json" "$TMP/old.json" &&
			ok "rewrite $k: the .json still has its old bytes" ||
			fail "rewrite $k: the .json read succeeded with new bytes"
	elif grep -q 'Input/output error' "$TMP/rw.err"; then
		ok "rewrite $k: EIO for its .json"
	else
		fail "rewrite $k: unexpected error: $(cat "$TMP/rw.err")"
	fi
	daemon_alive || fatal "rewrite $k: dicomfs died"
	"$PY" -c 'import json,sys; json.load(open(sys.argv[1]))' "${other%.dcm}.json" ||
		fail "rewrite $k: another instance's .json fails"
done
[ "$n_rw" -ge 4 ] && ok "$n_rw sources rewritten in place; the mount lives" ||
	fail "only $n_rw sources rewritten"
grep '	json: ' "$MNT/.dicomfs/errors.tsv" | cut -f2- | sort | uniq -c | sed 's/^/    errors.tsv: /'

# K1: after .json, .npy and .png reads, no GDCM in the mount process
find "$MNT/patients" \( -name '*.npy' -o -name '*.png' \) -print0 | head -z -n 12 |
	xargs -0 -r cat >/dev/null 2>&1
for j in $(find "$MNT/patients" -name '*.json' ! -name '*.fhir.json' | head -10); do
	cat "$j" >/dev/null 2>&1
done
daemon_alive || fail "dicomfs died reading .npy/.png"
if grep -E 'dicomfs-gdcm|libgdcm' "/proc/$MOUNT_PID/maps" >"$TMP/gdcm.maps"; then
	fail "GDCM is mapped in the mount process:"
	sort -u -k6 "$TMP/gdcm.maps" | awk '{print "    " $6}' | head -5
else
	ok "no dicomfs-gdcm.so / libgdcm in /proc/$MOUNT_PID/maps"
fi
mount_stop

# --- (d) a source turned in place into one that makes GDCM abort ------------
# (the deflated crasher of tests/mount_crash.sh), same size and mtime: the
# decoder process generating its .json dies, the mount does not (K1)
PYD=$PYDATA/test_files
if [ -f "$PYD/image_dfl.dcm" ]; then
	ARCHD="$TMP/arch-d"
	mkdir -p "$ARCHD"
	cp "$PYD/image_dfl.dcm" "$ARCHD/dfl"
	cp "$PYD/CT_small.dcm" "$ARCHD/ct"
	DICOMFS_NO_WATCH=1 mount_start "$MNT" "$ARCHD" -o index="$TMP/idx-d",opens=each || exit 1   # (R2, as above)
	dsum=$(sha256sum <"$ARCHD/dfl")
	jd= jc=
	while read -r f; do
		if [ "$(sha256sum <"$f")" = "$dsum" ]; then jd=${f%.dcm}.json; else jc=${f%.dcm}.json; fi
	done < <(find "$MNT/patients" -name '*.dcm')
	if [ -n "$jd" ] && [ -n "$jc" ] && cat "$jd" >/dev/null; then
		cp -p "$ARCHD/dfl" "$TMP/ref-d"
		printf '\377\377\377\377' | dd of="$ARCHD/dfl" bs=1 seek=600 conv=notrunc status=none
		touch -r "$TMP/ref-d" "$ARCHD/dfl"
		if cat "$jd" >/dev/null 2>"$TMP/d.err"; then
			fail "the .json of the rewritten deflated source read without error"
		else
			grep -q 'Input/output error' "$TMP/d.err" && ok "GDCM crasher in place: EIO" ||
				fail "GDCM crasher in place: $(cat "$TMP/d.err")"
		fi
		daemon_alive && ok "GDCM crasher in place: the mount is alive" ||
			fatal "GDCM crasher in place: dicomfs died"
		grep "	json: " "$MNT/.dicomfs/errors.tsv" | sed 's/^/    /'
		grep -q "	json: the generator process died on it" "$MNT/.dicomfs/errors.tsv" &&
			ok "errors.tsv names the generator's death" ||
			fail "no 'json: the generator process died on it' line in errors.tsv"
		"$PY" -c 'import json,sys; json.load(open(sys.argv[1]))' "$jc" &&
			ok "the other instance's .json still reads" || fail "the other .json fails"
	else
		fail "(d): no .json for the deflated file"
	fi
	mount_stop
fi

# the benchmark knob: no JSON work, no .json files
DICOMFS_NO_JSON=1 mount_start "$MNT" "$ARCH" -o index="$TMP/idx-c" || exit 1
c=$(find "$MNT/patients" -name '*.json' ! -name series.json ! -name study.json \
	! -name patient.json ! -name '*.fhir.json' | wc -l)
[ "$c" -eq 0 ] && ok "DICOMFS_NO_JSON=1: no instance .json listed" ||
	fail "DICOMFS_NO_JSON=1: $c instance .json files listed"
mount_stop
exit 0
