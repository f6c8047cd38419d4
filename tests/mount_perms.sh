#!/bin/bash
# Permissions with -o allow_other (default_permissions is always on): an
# unprivileged user (nobody, via setpriv) who cannot read a source file
# cannot read anything derived from it (.dcm .json .npy .png, xattrs),
# nor list the directories made only of such sources, nor read their
# level files; files and directories from world-readable sources are
# readable by them.
. "${srcdir:-$(dirname "$0")/..}/tests/lib.sh"
setup
command -v setpriv >/dev/null || fatal "setpriv (util-linux) missing"
[ "$(id -u)" = 0 ] || { log "SKIP: needs root (to mount with allow_other and switch to nobody)"; exit 77; }
chmod 755 "$TMP"    # nobody must reach the mount point
ARCH="$TMP/arch"
MNT="$TMP/mnt"
"$PY" - "$ARCH" <<'PYEOF' || fatal "could not make the archive"
import os, sys, pydicom
d = sys.argv[1]
os.makedirs(d + '/pub', exist_ok=True)
os.makedirs(d + '/sec', exist_ok=True)
for kind, pid in (('pub', 'PUB'), ('sec', 'SEC')):
    for i in range(2):
        ds = pydicom.dcmread('/usr/lib/python3/dist-packages/pydicom/data/test_files/CT_small.dcm')
        ds.PatientID = pid
        ds.PatientName = 'Perm^' + pid
        ds.StudyInstanceUID = '2.25.77.%s' % ('1' if pid == 'PUB' else '2')
        ds.SeriesInstanceUID = ds.StudyInstanceUID + '.1'
        ds.SOPInstanceUID = ds.SeriesInstanceUID + '.%d' % i
        ds.InstanceNumber = i + 1
        ds.save_as('%s/%s/f%d' % (d, kind, i))
PYEOF
chmod 644 "$ARCH"/pub/*
chmod 600 "$ARCH"/sec/*
mount_start "$MNT" "$ARCH" -o index="$TMP/idx",allow_other || exit 1
as_nobody() { setpriv --reuid=nobody --regid=nogroup --clear-groups -- "$@"; }
pub=$(find "$MNT/patients" -maxdepth 1 -name 'Perm PUB*')
sec=$(find "$MNT/patients" -maxdepth 1 -name 'Perm SEC*')
[ -n "$pub" ] && [ -n "$sec" ] || fatal "patients not found: $(ls "$MNT/patients")"

# as nobody: everything below the public patient reads
n=0
while IFS= read -r -d '' f; do
	if as_nobody cat "$f" >/dev/null 2>&1; then n=$((n + 1)); else fail "nobody cannot read ${f#$MNT/}"; fi
done < <(find "$pub" -type f -print0)
[ "$n" -gt 0 ] && ok "nobody reads all $n files below the world-readable patient"
as_nobody ls -R "$pub" >/dev/null 2>&1 && ok "nobody lists the world-readable patient" ||
	fail "nobody cannot list $pub"
f=$(find "$pub" -name '*.dcm' | head -1)
as_nobody getfattr -d "$f" 2>/dev/null | grep -q PatientID && ok "nobody reads xattrs of a public instance" ||
	fail "nobody cannot read xattrs of $f"

# as nobody: nothing below the secret patient (found as root)
n=0
while IFS= read -r -d '' f; do
	n=$((n + 1))
	if as_nobody cat "$f" >/dev/null 2>&1; then fail "nobody READS ${f#$MNT/}"; fi
	m=$(stat -c %a "$f")
	case $m in *[4567]) fail "${f#$MNT/} has mode $m (readable by others)" ;; esac
done < <(find "$sec" -type f -print0)
[ "$n" -ge 8 ] && ok "nobody reads none of the $n files below the unreadable patient (.dcm .json .npy .png, level files)" ||
	fail "only $n files below $sec (want the 2 instances x 4 kinds + level files)"
while IFS= read -r -d '' d; do
	if as_nobody ls "$d" >/dev/null 2>&1; then fail "nobody LISTS ${d#$MNT/}"; fi
done < <(find "$sec" -type d -print0)
ok "nobody lists none of the directories of the unreadable patient"
f=$(find "$sec" -name '*.dcm' | head -1)
if as_nobody getfattr -d "$f" 2>/dev/null | grep -q PatientID; then fail "nobody reads xattrs of $f"; else
	ok "nobody cannot read xattrs of an unreadable instance"; fi
# root (owner of the sources) reads them
find "$sec" -type f -exec cat {} + >/dev/null 2>&1 && ok "root reads the unreadable patient" ||
	fail "root cannot read $sec"
# the patients/ listing itself is public (it mixes both)
as_nobody ls "$MNT/patients" >/dev/null 2>&1 && ok "nobody lists patients/" || fail "nobody cannot list patients/"
mount_stop
exit 0
