#!/bin/bash
# A file that makes GDCM abort (a deflated data set with a corrupt stream:
# Debian's GDCM 3.0.21 hits an assertion) costs that one file: the parser
# runs in child processes, the file is listed in errors.tsv as a parser
# crash, every other file is placed and the mount answers.
. "${srcdir:-$(dirname "$0")/..}/tests/lib.sh"
setup

PYD=/usr/lib/python3/dist-packages/pydicom/data/test_files
[ -f "$PYD/image_dfl.dcm" ] || fatal "python3-pydicom test data missing"
ARCH="$TMP/arch"
MNT="$TMP/mnt"
mkdir -p "$ARCH/a" "$ARCH/b"
cp "$PYD/CT_small.dcm" "$ARCH/a/ct"
cp "$PYD/MR_small.dcm" "$ARCH/b/mr"
cp "$PYD/image_dfl.dcm" "$ARCH/a/crasher"
printf '\377\377\377\377' | dd of="$ARCH/a/crasher" bs=1 seek=600 conv=notrunc status=none
# several more crashers, so a batch holds more than one
for i in 1 2 3; do cp "$ARCH/a/crasher" "$ARCH/b/crasher$i"; done

mount_start "$MNT" "$ARCH" -o index="$TMP/idx" || exit 1
n=$(find "$MNT/patients" -name '*.dcm' | wc -l)
[ "$n" = 2 ] && ok "both good files placed" || fail "$n instances placed, want 2"
for f in a/crasher b/crasher1 b/crasher2 b/crasher3; do
	if grep -q "^$f	.*crashed" "$MNT/.dicomfs/errors.tsv"; then
		ok "$f listed as a contained parser crash"
	else
		fail "$f not listed as a parser crash; errors.tsv:"
		sed 's/^/    /' "$MNT/.dicomfs/errors.tsv"
	fi
done
grep -q "crashed" "$MOUNT_LOG" && ok "the crash is logged" || fail "no log line for the crash"
got=$(find "$MNT/patients" -name '*.dcm' -exec cat {} + | sha256sum)
want=$(cat "$ARCH/a/ct" "$ARCH/b/mr" | sha256sum)
want2=$(cat "$ARCH/b/mr" "$ARCH/a/ct" | sha256sum)
[ "$got" = "$want" ] || [ "$got" = "$want2" ] && ok "placed files read back intact" ||
	fail "placed files differ from their sources"
daemon_alive && ok "the mount is alive" || fail "daemon died"
mount_stop
exit 0
