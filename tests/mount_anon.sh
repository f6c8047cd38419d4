#!/bin/bash
# anon/: the de-identified view (README "De-identified view"). The messy
# archive plus files with identifying values everywhere (sequences, private
# elements, physicians, institutions, several dates, burned-in annotation
# flags), mounted with a known key (-o anon_key):
# - no name, file content, .dcm header or xattr under anon/ holds any
#   identifying value of the sources (tests/anon_oracle.py scan);
# - every anon .dcm reads with pydicom and dcmdump, its UIDs and PatientID
#   are the keyed pseudonyms (recomputed in Python), its pixels equal the
#   original's, dates move by one offset per patient (anon_oracle.py check);
# - ls -l sizes equal the bytes read; reads at odd offsets;
# - burned-in policy: left out and listed in errors.tsv, shown with
#   -o anon_keep_burned_in;
# - the same key gives the same anon/ on a remount, another key other
#   names; without -o anon_key a 0600 key is made beside the index and kept;
# - query/ and uids/ never lead into anon/.
. "${srcdir:-$(dirname "$0")/..}/tests/lib.sh"
setup

ARCH="$TMP/arch"
MNT="$TMP/mnt"
IDX="$TMP/idx"
ORACLE="$srcdir/tests/anon_oracle.py"
TABLE="$srcdir/index/dicom/deid_table.c"

log "generating the archive"
"$PY" "$GEN" "$ARCH" >/dev/null || fatal "gen_archive.py failed"
"$PY" "$srcdir/tests/anon_extra.py" "$ARCH/anon-extra" || fatal "writing the extra files failed"
KEY="$TMP/anon.key"
printf 'the secret of the anon test, 32+ bytes long' >"$KEY"
KEY2="$TMP/anon2.key"
printf 'another secret, another set of pseudonyms!!' >"$KEY2"

mount_start "$MNT" "$ARCH" -o index="$IDX" -o quiet -o anon_key="$KEY" || fatal "mount failed"
[ -d "$MNT/anon" ] || fatal "no anon/ at the root"

log "scanning every byte under anon/ for identifying values"
"$PY" "$ORACLE" scan "$MNT" "$ARCH" "$TABLE" && ok "anon/ reveals no identifying value" ||
	fail "anon/ reveals identifying values"
log "checking every anon .dcm against the originals and the keyed pseudonyms"
"$PY" "$ORACLE" check "$MNT" "$KEY" && ok "pseudonyms, pixels, dates, method codes" ||
	fail "anon .dcm checks"

n=0; bad=0
while IFS= read -r -d '' f; do
	n=$((n + 1))
	out=$(dcmdump -q "$f" 2>&1) || { bad=$((bad + 1)); fail "dcmdump failed on $f: $(echo "$out" | head -3)"; }
	sz=$(stat -c %s "$f"); rd=$(cat "$f" | wc -c)
	[ "$sz" = "$rd" ] || fail "$f: ls -l says $sz bytes, reading gives $rd"
done < <(find "$MNT/anon" -name '*.dcm' -print0)
[ "$n" -gt 5 ] && [ "$bad" = 0 ] && ok "dcmdump reads all $n anon .dcm; sizes match the bytes read"

# reads at odd offsets: the header/pixel seam (dd with 7-byte blocks)
f=$(find "$MNT/anon" -name '*.dcm' | head -1)
cmp <(dd if="$f" bs=7 status=none) "$f" && ok "7-byte reads give the same bytes" ||
	fail "short reads differ"

log "burned-in annotation policy"
E="$MNT/.dicomfs/errors.tsv"
for q in q3 q4; do
	grep -q "anon-extra/$q.dcm	anon: " "$E" && ok "$q left out and listed in errors.tsv" ||
		fail "$q is not listed in errors.tsv with an anon: reason"
done
for q in q0 q1 q2 q5; do
	grep -q "anon-extra/$q.dcm	anon: " "$E" && fail "$q listed as left out of anon/"
done
nanon=$(find "$MNT/anon" -name '*.dcm' | wc -l)

log "query/ and uids/ never lead into anon/"
links=$(find "$MNT/query/studies/ModalitiesInStudy=CT" -maxdepth 1 -type l | head -20)
[ -n "$links" ] || fail "no query links to check"
for l in $links; do
	case "$(readlink "$l")" in *anon/*) fail "query link $l points into anon/";; esac
done
anon_inodes=$(find "$MNT/anon" -type f -printf '%i\n' | sort -u)
uid_inodes=$(find "$MNT/uids" "$MNT/patients" -type f -printf '%i\n' | sort -u)
[ -z "$(comm -12 <(echo "$anon_inodes") <(echo "$uid_inodes"))" ] &&
	ok "no inode of anon/ is shared with patients/ or uids/" || fail "anon/ shares inodes"

"$PY" "$ORACLE" names "$MNT" >"$TMP/names1" || fail "listing anon/"
mount_stop || fail "unmount"

log "the same key again: the same anon/"
mount_start "$MNT" "$ARCH" -o index="$IDX" -o quiet -o anon_key="$KEY" || fatal "remount failed"
"$PY" "$ORACLE" names "$MNT" >"$TMP/names2"
cmp -s "$TMP/names1" "$TMP/names2" && ok "stable across remounts" || fail "anon/ changed on a remount with the same key"
mount_stop || fail "unmount"

log "another key: other pseudonyms"
mount_start "$MNT" "$ARCH" -o index="$IDX" -o quiet -o anon_key="$KEY2" || fatal "mount with another key failed"
"$PY" "$ORACLE" names "$MNT" >"$TMP/names3"
"$PY" "$ORACLE" check "$MNT" "$KEY2" >/dev/null && ok "the other key's pseudonyms check out" ||
	fail "anon .dcm checks with the other key"
common=$(comm -12 <(cut -d/ -f1 "$TMP/names1" | sort -u) <(cut -d/ -f1 "$TMP/names3" | sort -u))
[ -z "$common" ] && ok "no patient directory name in common between the keys" ||
	fail "patient names shared between two keys: $common"
mount_stop || fail "unmount"

log "-o anon_keep_burned_in"
mount_start "$MNT" "$ARCH" -o index="$IDX" -o quiet -o anon_key="$KEY" -o anon_keep_burned_in ||
	fatal "mount with anon_keep_burned_in failed"
nkeep=$(find "$MNT/anon" -name '*.dcm' | wc -l)
[ "$nkeep" -gt "$nanon" ] && ok "anon_keep_burned_in shows more instances ($nkeep > $nanon)" ||
	fail "anon_keep_burned_in: $nkeep instances, without it $nanon"
grep -q "anon-extra/q3.dcm	anon: " "$MNT/.dicomfs/errors.tsv" && fail "q3 still listed as left out"
mount_stop || fail "unmount"

log "no key given: one made beside the index, 0600, and kept"
IDX2="$TMP/idx2"
mount_start "$MNT" "$ARCH" -o index="$IDX2" -o quiet || fatal "mount without a key failed"
"$PY" "$ORACLE" names "$MNT" >"$TMP/names4"
mount_stop || fail "unmount"
[ "$(stat -c %a "$IDX2/anon.key")" = 600 ] && [ "$(stat -c %s "$IDX2/anon.key")" -ge 32 ] &&
	ok "anon.key made with mode 600" || fail "anon.key missing or not 0600"
sum1=$(md5sum <"$IDX2/anon.key")
mount_start "$MNT" "$ARCH" -o index="$IDX2" -o quiet || fatal "remount without a key failed"
"$PY" "$ORACLE" names "$MNT" >"$TMP/names5"
"$PY" "$ORACLE" check "$MNT" "$IDX2/anon.key" >/dev/null && ok "pseudonyms of the made key" ||
	fail "anon .dcm checks with the made key"
mount_stop || fail "unmount"
[ "$sum1" = "$(md5sum <"$IDX2/anon.key")" ] && cmp -s "$TMP/names4" "$TMP/names5" &&
	ok "the made key is kept: same anon/ on a remount" || fail "the made key changed anon/"

[ "$FAILURES" -eq 0 ] || exit 1
