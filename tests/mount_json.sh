#!/bin/bash
# <instance>.json (DICOM JSON Model): mount pydicom's test data and the
# generated archive and compare every .json with pydicom's to_json_dict()
# of its source (tests/json_oracle.py: tags, VRs, values, bulk data through
# the BulkDataURIs, from_json, json.load, st_size == bytes read); the JSON
# is byte-identical on a remount with a fresh index; a source changed after
# indexing gives EIO for its .json only, with an errors.tsv line.
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
mount_start "$MNT" "$ARCH" -o index="$TMP/idx-b" || exit 1
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
mount_stop

# the benchmark knob: no JSON work, no .json files
DICOMFS_NO_JSON=1 mount_start "$MNT" "$ARCH" -o index="$TMP/idx-c" || exit 1
c=$(find "$MNT/patients" -name '*.json' ! -name series.json ! -name study.json \
	! -name patient.json ! -name '*.fhir.json' | wc -l)
[ "$c" -eq 0 ] && ok "DICOMFS_NO_JSON=1: no instance .json listed" ||
	fail "DICOMFS_NO_JSON=1: $c instance .json files listed"
mount_stop
exit 0
