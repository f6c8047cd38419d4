#!/bin/bash
# anon_vs_gdcmanon.sh [ARCHIVE]: anon/ against gdcmanon (GDCM's PS3.15 E.1
# "Basic Application Level Confidentiality Profile", with a throw-away
# certificate for its encrypted attributes) on the same sources, attribute
# by attribute (anon_vs_gdcmanon.py). Without ARCHIVE: the messy test
# archive plus tests/anon_extra.py. The README's "De-identified view"
# explains every line it prints.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
DICOMFS=${DICOMFS:-$SRC/dicomfs}
PY=/usr/bin/python3
T=$(mktemp -d "${TMPDIR:-/tmp}/anon-vs-gdcm.XXXXXX")
trap 'fusermount3 -u "$T/m" 2>/dev/null; rm -rf "$T"' EXIT
ARCH=${1:-}
if [ -z "$ARCH" ]; then
	ARCH="$T/a"
	"$PY" "$SRC/tests/gen_archive.py" "$ARCH" >/dev/null
	"$PY" "$SRC/tests/anon_extra.py" "$ARCH/anon-extra"
fi
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$T/k.pem" -out "$T/c.pem" \
	-subj /CN=anon-vs-gdcmanon -days 1 2>/dev/null
printf 'a key for comparing with gdcmanon, long enough' >"$T/key"
mkdir -p "$T/g" "$T/m"
nfail=0
while IFS= read -r -d '' f; do
	rel=${f#"$ARCH"/}
	mkdir -p "$T/g/$(dirname "$rel")"
	gdcmanon -e -c "$T/c.pem" -i "$f" -o "$T/g/$rel" >/dev/null 2>&1 || nfail=$((nfail + 1))
done < <(find "$ARCH" -type f -print0)
echo "gdcmanon failed (not DICOM, or aborted) on $nfail files"
"$DICOMFS" -o index="$T/idx" -o quiet -o anon_key="$T/key" -o anon_keep_burned_in "$ARCH" "$T/m"
"$PY" "$HERE/anon_vs_gdcmanon.py" "$T/m" "$ARCH" "$T/key" "$T/g"
