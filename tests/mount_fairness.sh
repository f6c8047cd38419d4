#!/bin/bash
# Fairness (issue 11): while one user holds 36 pending opens of .npy files
# that are slow to decode (JPEG 2000, 2048x2048, decoded by the mount's few
# decoder processes), another user's metadata requests still find a free
# FUSE thread: `cat .dicomfs/status.json` and `ls patients/` answer within
# 2 s (a functional deadline, not a timing benchmark: they need no decoder).
# Every .npy open ends (ok, or EAGAIN when decoders stay busy past their
# deadline); none hangs.
. "${srcdir:-$(dirname "$0")/..}/tests/lib.sh"
setup

ARCH="$TMP/arch"
MNT="$TMP/mnt"
N=36
command -v gdcmconv >/dev/null || fatal "gdcmconv not found (libgdcm-tools)"
mkdir -p "$ARCH"
"$PY" - "$TMP/raw.dcm" <<'PYEOF' || fatal "could not make the image"
import sys, numpy as np, pydicom
from pydicom.uid import ExplicitVRLittleEndian
ds = pydicom.dcmread('/usr/lib/python3/dist-packages/pydicom/data/test_files/CT_small.dcm')
a = np.random.default_rng(1).integers(0, 4096, size=(2048, 2048), dtype=np.uint16)
ds.Rows, ds.Columns = a.shape
ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
ds.PixelData = a.tobytes()
ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
ds.is_little_endian, ds.is_implicit_VR = True, False
ds.save_as(sys.argv[1], write_like_original=False)
PYEOF
gdcmconv --j2k "$TMP/raw.dcm" "$TMP/j2k.dcm" || fatal "gdcmconv --j2k failed"
"$PY" - "$TMP/j2k.dcm" "$ARCH" "$N" <<'PYEOF' || fatal "could not make the copies"
import os, sys, pydicom
ds = pydicom.dcmread(sys.argv[1])
for i in range(int(sys.argv[3])):
    ds.SOPInstanceUID = '2.25.5151.%d' % i
    ds.InstanceNumber = i + 1
    ds.save_as(os.path.join(sys.argv[2], 'j%02d.dcm' % i))
PYEOF

chmod 0755 "$TMP"   # the loading user reaches the mount point
mount_start "$MNT" "$ARCH" -o index="$TMP/idx" -o allow_other || exit 1
for i in $(seq 60); do
	[ "$(status_get "$MNT" instances)" = "$N" ] && break
	sleep 0.5
done
mapfile -t npys < <(find "$MNT/patients" -name '*.npy' | sort)
[ "${#npys[@]}" = "$N" ] || fatal "${#npys[@]} .npy files, want $N"

# user nobody (65534): N concurrent cold opens; each reads 4 KiB
setpriv --reuid=65534 --regid=65534 --clear-groups \
	"$PY" - "${npys[@]}" >"$TMP/opens" 2>&1 <<'PYEOF' &
import os, sys, threading, time
res = {}
def one(p):
    t = time.monotonic()
    try:
        with open(p, 'rb') as f:
            f.read(4096)
        r = 'ok'
    except OSError as e:
        r = e.strerror
    res[p] = (r, time.monotonic() - t)
ts = [threading.Thread(target=one, args=(p,)) for p in sys.argv[1:]]
for t in ts: t.start()
for t in ts: t.join()
for r in sorted(set(v[0] for v in res.values())):
    print('opens', r, sum(1 for v in res.values() if v[0] == r))
print('slowest %.1f' % max(v[1] for v in res.values()))
PYEOF
opener=$!
sleep 1.5   # the opens are queued on the decoders by now
# root: metadata, with a deadline
t0=$(date +%s.%N)
timeout 10 cat "$MNT/.dicomfs/status.json" >"$TMP/status" || fail "status.json: no answer within 10 s"
t1=$(date +%s.%N)
timeout 10 ls "$MNT/patients/" >"$TMP/ls" || fail "ls patients/: no answer within 10 s"
t2=$(date +%s.%N)
ds=$(echo "$t1 - $t0" | bc)
dl=$(echo "$t2 - $t1" | bc)
still=$(kill -0 $opener 2>/dev/null && echo yes || echo no)
log "during $N pending .npy opens (still pending: $still): status.json in $ds s, ls patients/ in $dl s"
[ "$still" = yes ] || log "note: the opens finished before the metadata reads (fast machine): not a contended run"
[ "$(echo "$ds < 2" | bc)" = 1 ] && ok "status.json answered in $ds s (< 2)" || fail "status.json took $ds s"
[ "$(echo "$dl < 2" | bc)" = 1 ] && ok "ls patients/ answered in $dl s (< 2)" || fail "ls patients/ took $dl s"
"$PY" -c 'import json,sys; json.load(open(sys.argv[1]))' "$TMP/status" || fail "status.json does not parse"
[ -s "$TMP/ls" ] || fail "ls patients/ empty"
timeout 240 tail --pid=$opener -f /dev/null || fail "the opens did not end within 240 s"
wait $opener
sed 's/^/    /' "$TMP/opens"
bad=$(grep '^opens' "$TMP/opens" | grep -v -e '^opens ok ' -e '^opens Resource temporarily unavailable ' || true)
[ -z "$bad" ] && ok "every .npy open ended: ok or EAGAIN" || fail "opens: $bad"
grep -q '^opens ok ' "$TMP/opens" || fail "no .npy open succeeded"
daemon_alive && ok "the daemon survived" || fail "the daemon died"
mount_stop
exit 0
