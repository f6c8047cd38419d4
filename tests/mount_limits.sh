#!/bin/bash
# Limits: with `ulimit -n 256` (inherited by the daemon and its parser and
# decoder processes) the generated archive indexes, mounts and serves every
# file kind to 16 parallel readers; the open-file count stays under the
# limit.
. "${srcdir:-$(dirname "$0")/..}/tests/lib.sh"
setup

ARCH="$TMP/arch"
MNT="$TMP/mnt"
"$PY" "$GEN" "$ARCH" --expected "$TMP/expected" >/dev/null || fatal "gen_archive.py failed"
# more files than fds: 400 copies of one instance with their own UIDs
"$PY" - "$ARCH/many" <<'PYEOF' || fatal "could not make the copies"
import os, sys, pydicom
src = '/usr/lib/python3/dist-packages/pydicom/data/test_files/CT_small.dcm'
os.makedirs(sys.argv[1], exist_ok=True)
ds = pydicom.dcmread(src)
for i in range(400):
    ds.SOPInstanceUID = '2.25.4242.%d' % i
    ds.InstanceNumber = i + 1
    ds.save_as(os.path.join(sys.argv[1], 'ct%03d' % i))
PYEOF
ulimit -n 256 || fatal "ulimit -n 256 failed"
mount_start "$MNT" "$ARCH" -o index="$TMP/idx" || exit 1
lim=$(awk '/Max open files/ {print $4}' /proc/"$MOUNT_PID"/limits)
[ "$lim" = 256 ] && ok "daemon runs with an open-file limit of 256" || fail "daemon limit is $lim"
n=$(find "$MNT/patients" -name '*.dcm' | wc -l)
want=$(($(wc -l <"$TMP/expected.sources") + 400))
[ "$n" = "$want" ] && ok "$n instances placed" || fail "$n instances placed, want $want"
# 16 readers holding files open at once, every kind
for k in $(seq 16); do
	# no EIO either: a source opened past the fd budget is read without a
	# kept fd (index/fdbudget.h F4), never failed
	timeout 120 "$PY" "$srcdir/tests/readall.py" "$MNT" --threads 8 --allow ENOENT >"$TMP/r.$k" 2>&1 &
	pids="${pids:-} $!"
done
maxfd=0
while kill -0 $pids 2>/dev/null; do
	c=$(ls /proc/"$MOUNT_PID"/fd 2>/dev/null | wc -l)
	[ "$c" -gt "$maxfd" ] && maxfd=$c
	sleep 0.05
	jobs -r | grep -q . || break
done
rc=0
for p in $pids; do wait "$p" || rc=1; done
if [ "$rc" -eq 0 ]; then ok "16 parallel readers: every file read ($(tail -1 "$TMP/r.1"))"; else
	fail "readers failed:"
	cat "$TMP"/r.* | grep -v '^entries=' | sort | uniq -c | head -20 | sed 's/^/    /'
fi
log "daemon open files peak (sampled): $maxfd of 256"
grep -i "too many open files" "$MOUNT_LOG" && fail "EMFILE in the daemon log"
daemon_alive && ok "the daemon survived" || fail "the daemon died"
mount_stop
exit 0
