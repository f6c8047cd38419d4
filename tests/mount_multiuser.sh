#!/bin/bash
# The access model (README "Access model", fs/access.h) on a shared mount:
# root mounts with -o allow_other an archive where one patient's files are
# 0600 root, one study's directory is 0700, and one file has an ACL that
# denies the user; the user (nobody, via setpriv) then tries everything a
# hostile local user would: ls -R / find of patients/, uids/, query/
# (manifests, link names and targets), cat of every reachable file (level
# files, FHIR, volumes), getfattr of every node, errors.tsv, and direct
# paths learnt as root. No byte, name, link target or xattr it gets may
# carry a value that exists only in a source it cannot read; what it can
# read is still served; root still sees everything.
. "${srcdir:-$(dirname "$0")/..}/tests/lib.sh"
setup
[ "$(id -u)" = 0 ] || { log "SKIP: needs root (allow_other, setpriv)"; exit 77; }
for t in setpriv setfacl getfattr; do
	command -v $t >/dev/null || fatal "$t missing (contrib/install-deps: util-linux, acl, attr)"
done
chmod 755 "$TMP"    # nobody must reach the mount point and the archive
ARCH="$TMP/arch"
MNT="$TMP/mnt"
CT=/usr/lib/python3/dist-packages/pydicom/data/test_files/CT_small.dcm
"$PY" - "$ARCH" "$CT" <<'PYEOF' || fatal "could not make the archive"
import os, sys, pydicom
d, ct = sys.argv[1], sys.argv[2]
# patient, study, series, files: (dir, PatientName, PatientID, study uid,
# study description, [(series uid, [sop uids])])
P = [
    ('open', 'Open^Delta', 'PIDDELTA', '2.25.900.1', 'OpenStudy',
     [('2.25.900.1.1', ['2.25.900.1.1.1', '2.25.900.1.1.2'])]),
    ('bravo', 'Secret^Bravo', 'PIDBRAVO', '2.25.901.1', 'BravoStudy',
     [('2.25.901.1.1', ['2.25.901.1.1.1', '2.25.901.1.1.2'])]),
    ('alpha/s1', 'Mixed^Alpha', 'PIDALPHA', '2.25.902.1', 'AlphaOpen',
     [('2.25.902.1.1', ['2.25.902.1.1.1'])]),
    ('alpha/s2', 'Mixed^Alpha', 'PIDALPHA', '2.25.902.2', 'HiddenStudyDesc',
     [('2.25.902.2.1', ['2.25.902.2.1.1', '2.25.902.2.1.2'])]),
    ('grp', 'Group^Echo', 'PIDECHO', '2.25.904.1', 'EchoStudy',
     [('2.25.904.1.1', ['2.25.904.1.1.1'])]),
    ('charlie', 'Acl^Charlie', 'PIDCHARLIE', '2.25.903.1', 'CharlieStudy',
     [('2.25.903.1.1', ['2.25.903.1.1.1', '2.25.903.1.1.2', '2.25.903.1.1.3'])]),
    # the patient directory's name comes from the protected study (its
    # PatientName sorts first): the readable study is reached in uids/
    ('fox/hidden', 'Aaa^Hiddenfox', 'PIDFOX', '2.25.905.1', 'FoxHidden',
     [('2.25.905.1.1', ['2.25.905.1.1.1'])]),
    ('fox/open', 'Zz^Fox', 'PIDFOX', '2.25.905.2', 'FoxOpen',
     [('2.25.905.2.1', ['2.25.905.2.1.1'])]),
]
for sub, pn, pid, st, desc, series in P:
    os.makedirs(os.path.join(d, sub), exist_ok=True)
    for ser, sops in series:
        for i, sop in enumerate(sops):
            ds = pydicom.dcmread(ct)
            ds.PatientName, ds.PatientID = pn, pid
            ds.StudyInstanceUID, ds.StudyDescription = st, desc
            ds.SeriesInstanceUID, ds.SOPInstanceUID = ser, sop
            ds.file_meta.MediaStorageSOPInstanceUID = sop
            ds.InstanceNumber = i + 1
            ds.ImagePositionPatient = [0, 0, i]
            ds.save_as(os.path.join(d, sub, 'f%d.dcm' % i))
PYEOF
chmod -R a+rX "$ARCH"
chmod 600 "$ARCH"/bravo/*.dcm
chmod 700 "$ARCH"/alpha/s2
setfacl -m u:nobody:--- "$ARCH"/charlie/f1.dcm || fatal "setfacl failed"
chmod 600 "$ARCH"/fox/hidden/*.dcm
chgrp adm "$ARCH"/grp/*.dcm && chmod 640 "$ARCH"/grp/*.dcm   # a supplementary group's
# values found only in what nobody cannot read
PROTECTED="Secret Bravo PIDBRAVO 2.25.901 HiddenStudyDesc 2.25.902.2 2.25.903.1.1.2 PIDECHO 2.25.904 Hiddenfox FoxHidden 2.25.905.1"
as_nobody() { setpriv --reuid=nobody --regid=nogroup --clear-groups -- "$@"; }
as_nobody test -r "$ARCH"/charlie/f1.dcm && fatal "the ACL does not deny nobody"

mount_start "$MNT" "$ARCH" -o index="$TMP/idx",allow_other || exit 1

# ---- root (the mount owner) sees everything ----
root_all=$(cd "$MNT" && find . 2>&1; cat .dicomfs/errors.tsv)
for v in "Secret Bravo" PIDBRAVO 2.25.901.1 HiddenStudyDesc 2.25.902.2 2.25.903.1.1.2; do
	grep -qF "$v" <<<"$root_all" || fail "root does not see '$v'"
done
sec=$(find "$MNT/patients" -maxdepth 1 -name '*Bravo*' | head -1)
mixed=$(find "$MNT/patients" -maxdepth 1 -name '*Alpha*' | head -1)
[ -n "$sec" ] && [ -n "$mixed" ] || fatal "patients not found as root: $(ls "$MNT/patients")"
ok "root sees every patient"
grep -q "mixed archive" "$MOUNT_LOG" && ok "the mount found the archive mixed" ||
	fail "no 'mixed archive' line in the log"

# ---- nobody: everything reachable, into one file ----
SEEN="$TMP/seen"
as_nobody bash -c '
cd "$1" || exit 1
ls -laR . 2>&1
find . 2>&1
find . -type l -printf "%p -> %l\n" 2>&1
for d in query/studies query/series query/instances \
	"query/studies/PatientID=PIDBRAVO" "query/instances/PatientName=secret*" \
	"query/studies/StudyDescription=HiddenStudyDesc" "query/instances/SOPInstanceUID=2.25.903.1.1.2" \
	"query/studies/PatientID=PIDDELTA" "query/instances/PatientID=PIDCHARLIE" \
	"query/studies/PatientID=PIDCHARLIE" "query/instances/PatientID=PIDFOX" \
	"query/series/PatientID=PIDALPHA" "query/studies/PatientID=PIDFOX"; do
	# (stderr would echo the names typed here: only what is served counts)
	ls -la "$d" 2>/dev/null
	cat "$d/manifest.csv" "$d/manifest.jsonl" 2>/dev/null
	for l in "$d"/*; do readlink "$l" 2>/dev/null; done
done
find . -type f -print0 2>/dev/null | xargs -0 -r cat 2>&1
find . -print0 2>/dev/null | xargs -0 -r getfattr -d -m - 2>&1
cat .dicomfs/errors.tsv 2>&1
' _ "$MNT" >"$SEEN" 2>&1
# paths learnt as root, tried directly
while IFS= read -r -d '' f; do
	as_nobody cat "$f" >>"$SEEN" 2>/dev/null
	as_nobody getfattr -d -m - "$f" >>"$SEEN" 2>/dev/null
	as_nobody ls -la "$f" >>"$SEEN" 2>/dev/null
done < <(find "$sec" "$mixed" "$MNT/patients" "$MNT/uids" -print0 |
	 grep -zE 'Bravo|2\.25\.90[1235]|HiddenStudy|fox' )
log "nobody got $(wc -c <"$SEEN") bytes"
for v in $PROTECTED; do
	if grep -aqF "$v" "$SEEN"; then
		fail "nobody reached protected value '$v':"
		grep -aF "$v" "$SEEN" | head -3 | cut -c1-200 | sed 's/^/    /'
	fi
done
[ "$FAILURES" = 0 ] && ok "no protected value in what nobody can reach ($(echo $PROTECTED | wc -w) values)"
as_nobody cat "$MNT/.dicomfs/errors.tsv" >/dev/null 2>&1 && fail "nobody reads errors.tsv"
as_nobody cat "$MNT/.dicomfs/status.json" >/dev/null 2>&1 || fail "nobody cannot read status.json"

# ---- anon/ (access.h A1, A2 through the anon nodes): the keyed pseudonyms
# of the instances nobody cannot read appear nowhere in what nobody got;
# those of the readable ones do ----
pseudo() { "$PY" -c 'import hashlib, hmac, sys
k = hashlib.sha256(open(sys.argv[1], "rb").read()).digest()
for u in sys.argv[2:]:
    d = hmac.new(k, b"uid\0" + u.encode(), hashlib.sha256).digest()
    print("2.25.%d" % (int.from_bytes(d[:16], "big") | 1 << 127))' "$TMP/idx/anon.key" "$@"; }
for u in $(pseudo 2.25.901.1.1.1 2.25.901.1.1.2 2.25.902.2.1.1 2.25.902.2.1.2 2.25.903.1.1.2 2.25.904.1.1.1); do
	grep -aqF "$u" "$SEEN" && fail "nobody reached the anon/ pseudonym $u of an instance it cannot read"
done
# a readable instance is in anon/ for nobody exactly when it is in patients/
n=0
for u in 2.25.900.1.1.1 2.25.900.1.1.2 2.25.902.1.1.1; do
	o=0; a=0
	grep -aqF "$u" "$SEEN" && o=1
	grep -aqF "$(pseudo "$u")" "$SEEN" && a=1
	[ "$o" = "$a" ] || fail "anon/: instance $u seen by nobody in patients/ $o, in anon/ $a"
	n=$((n + a))
done
[ "$n" -ge 2 ] && ok "anon/: nobody sees the readable instances as in patients/ ($n)" ||
	fail "anon/: nobody sees only $n readable instances"

# ---- what nobody can read is still served ----
grep -aqF "Open^Delta" "$SEEN" && grep -aqF PIDDELTA "$SEEN" ||
	fail "nobody does not see the world-readable patient"
open=$(as_nobody find "$MNT/patients" -maxdepth 1 -name '*Delta*' | head -1)
[ -n "$open" ] || fatal "nobody does not list the world-readable patient"
n=0
while IFS= read -r f; do
	as_nobody cat "$f" >/dev/null 2>&1 && n=$((n + 1)) || fail "nobody cannot read ${f#$MNT/}"
done < <(as_nobody find "$open" -type f)
[ "$n" -ge 8 ] && ok "nobody reads the $n files of the world-readable patient" ||
	fail "only $n files of the world-readable patient"
as_nobody cat "$MNT/uids/2.25.902.1/study.json" 2>/dev/null | grep -qF AlphaOpen &&
	ok "nobody reads the readable study of the mixed patient in uids/" ||
	fail "nobody cannot read uids/2.25.902.1/study.json"
# a partly readable directory lists what nobody may read; what is derived
# from all of its instances stays the owner's (access.h A2)
n=$(as_nobody ls "$MNT/uids/2.25.903.1/2.25.903.1.1" 2>/dev/null | grep -c '\.dcm$')
[ "$n" = 2 ] && ok "nobody lists the 2 readable instances of the partly readable series" ||
	fail "nobody lists $n instances of the partly readable series (want 2)"
as_nobody cat "$MNT/uids/2.25.903.1/study.json" >/dev/null 2>&1 &&
	fail "nobody reads study.json of a partly readable study"
chd=$(as_nobody find "$MNT/patients" -maxdepth 1 -name '*Charlie*' | head -1)
[ -n "$chd" ] && [ "$(as_nobody find "$chd" -name '*.dcm' | wc -l)" = 2 ] &&
	ok "patients/ shows the partly readable patient with its 2 readable instances" ||
	fail "patients/ does not show the partly readable patient to nobody"
nl=$(as_nobody stat -c %h "$chd" 2>/dev/null)
[ "$nl" = 3 ] || fail "a partly readable patient has nlink $nl for nobody (want 3)"
as_nobody getfattr -d -m - "$chd" >/dev/null 2>&1 &&
	fail "nobody reads the xattrs of a partly readable patient"
# the name of a directory shows values of the instances it comes from
as_nobody find "$MNT/patients" -maxdepth 1 | grep -qi fox &&
	fail "nobody sees a patient directory named from a protected instance"
as_nobody cat "$MNT/uids/2.25.905.2/study.json" 2>/dev/null | grep -qF FoxOpen &&
	ok "the readable study of that patient is nobody's in uids/" ||
	fail "nobody cannot read uids/2.25.905.2/study.json"

# query/ answers nobody from what nobody sees (access.h A8)
qi="$MNT/query/instances/PatientID=PIDCHARLIE"
n=$(as_nobody ls "$qi" 2>/dev/null | grep -c '\.dcm$')
m=$(as_nobody cat "$qi/manifest.csv" 2>/dev/null | grep -c 2.25.903.1.1)
[ "$n" = 2 ] && [ "$m" = 2 ] && ok "query/ gives nobody the 2 readable instances (links and manifest)" ||
	fail "query/ gives nobody $n links and $m manifest rows (want 2 and 2)"
as_nobody bash -c 'for l in "$1"/*.dcm; do cat "$l" >/dev/null || exit 1; done' _ "$qi" ||
	fail "nobody cannot follow its query links"
[ "$(ls "$qi" | grep -c '\.dcm$')" = 3 ] || fail "root does not get 3 instances after nobody's query"
grep -c 2.25.903.1.1 "$qi/manifest.csv" | grep -qx 3 || fail "root's manifest lost rows after nobody's query"
as_nobody ls "$MNT/query/studies/PatientID=PIDCHARLIE" 2>/dev/null | grep -v '^manifest' | grep -q . &&
	fail "query/studies gives nobody a partly readable study"
as_nobody cat "$MNT/query/studies/PatientID=PIDDELTA/manifest.csv" 2>/dev/null | grep -qF 2.25.900.1 &&
	ok "query/ answers nobody about the world-readable patient" ||
	fail "query/ does not answer nobody about the world-readable patient"

# a supplementary group counts
as_adm() { setpriv --reuid=nobody --regid=nogroup --groups=adm -- "$@"; }
as_adm find "$MNT/patients" "$MNT/uids" 2>&1 | grep -qF 2.25.904.1.1.1 &&
	as_adm cat "$MNT/uids/2.25.904.1/study.json" 2>/dev/null | grep -qF PIDECHO &&
	ok "nobody in group adm sees the group-readable patient" ||
	fail "nobody in group adm does not see the group-readable patient"

# ---- root again: the kernel caches did not carry nobody's view ----
find "$MNT/patients" -name '*Bravo*' | grep -q . || fail "root lost the protected patient"
cat "$sec"/*/*/*.dcm >/dev/null || fail "root cannot read the protected files"

mount_stop || exit 1

# ---- the same archive made readable by everyone: the uniform fast path ----
chmod -R a+rX "$ARCH"
setfacl -R -b "$ARCH"
mount_start "$MNT" "$ARCH" -o index="$TMP/idx",allow_other || exit 1
as_nobody find "$MNT/patients" >/dev/null 2>&1   # the kernel caches the tree
grep -q "mixed archive" "$MOUNT_LOG" && fail "a world-readable archive was found mixed"
as_nobody find "$MNT/patients" "$MNT/uids" >"$SEEN" 2>&1
for v in "Secret Bravo" HiddenStudyDesc 2.25.903.1.1.2; do
	grep -qF "$v" "$SEEN" || fail "nobody does not see '$v' once it is world-readable"
done
as_nobody cat "$MNT/query/studies/PatientID=PIDBRAVO/manifest.csv" 2>/dev/null | grep -qF 2.25.901.1 ||
	fail "nobody cannot query a world-readable archive"
as_nobody cat "$MNT/.dicomfs/errors.tsv" >/dev/null 2>&1 && fail "nobody reads errors.tsv (uniform)"
[ "$FAILURES" = 0 ] && ok "a world-readable archive is uniform: nobody sees everything, errors.tsv stays the owner's"
# a file made private while mounted: the mount finds the archive mixed
# (access.h A7: within 10 s) and drops the kernel's cached tree
chmod 600 "$ARCH"/bravo/*.dcm
for i in $(seq 1 60); do
	grep -q "changed while mounted" "$MOUNT_LOG" && break
	sleep 0.5
done
grep -q "changed while mounted" "$MOUNT_LOG" && ok "a chmod while mounted turns the archive mixed" ||
	fail "no recheck found the chmod within 30 s"
as_nobody find "$MNT/patients" "$MNT/uids" 2>&1 | grep -qF 2.25.901 &&
	fail "nobody still sees the patient made private while mounted"
find "$MNT/patients" | grep -qF Bravo || fail "root lost the patient made private while mounted"
mount_stop || exit 1
exit 0
