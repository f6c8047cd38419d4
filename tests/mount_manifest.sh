#!/bin/bash
# Query manifests are streamed (fs/manifest.h M2-M4, view_query.c V9): on
# a gen_archive.py --count archive, manifest.csv / manifest.jsonl of the
# three levels read whole, in odd-sized chunks, at random offsets, by two
# readers at once and by one starting at an offset after them all give the
# same bytes, st_size exact, and the whole agrees with gen_archive.py's
# expected list and pydicom (tests/manifest_readers.py). Memory: reading
# them all, many times, grows the daemon's anonymous memory (RssAnon; the
# LMDB map is file-backed) by less than half the bytes read once
# (the manifests were kept whole before: 1x and more). Not timed.
. "${srcdir:-$(dirname "$0")/..}/tests/lib.sh"
setup

ARCH="$TMP/arch"
MNT="$TMP/mnt"
N=${MANIFEST_N:-8000}
"$PY" "$GEN" "$ARCH" --count "$N" --expected "$TMP/expected" >/dev/null ||
	fatal "gen_archive.py --count $N failed"
mount_start "$MNT" "$ARCH" -o index="$TMP/idx" || exit 1
for i in $(seq 240); do
	[ "$(status_get "$MNT" instances)" = "$N" ] && break
	sleep 0.5
done
[ "$(status_get "$MNT" instances)" = "$N" ] || fatal "indexing did not finish: $(status_get "$MNT" instances) of $N"

anon() { awk '$1 == "RssAnon:" { print $2 }' "/proc/$MOUNT_PID/status"; }   # KiB
# the baseline: the catalog built, every manifest sized (stat)
total=0
for l in instances series studies; do
	for e in csv jsonl; do
		sz=$(stat -c %s "$MNT/query/$l/manifest.$e") || fail "stat query/$l/manifest.$e"
		total=$((total + sz))
	done
done
base=$(anon)
timeout 600 "$PY" "$srcdir/tests/manifest_readers.py" "$MNT" "$ARCH" "$TMP/expected" 17 >"$TMP/readers" 2>&1
rc=$?
sed 's/^/    /' "$TMP/readers"
[ "$rc" = 0 ] && ok "manifests read every way agree with the whole and the oracles" ||
	fail "manifest_readers.py exited $rc"
after=$(anon)
grow=$((after - base))
log "6 manifests, $((total / 1024)) KiB together, each read ~250 times: RssAnon $base -> $after KiB"
if grep -q libasan "/proc/$MOUNT_PID/maps"; then
	log "memory bound not checked: the daemon runs under ASan (quarantine, shadow memory)"
else
	[ "$grow" -lt $((total / 2 / 1024)) ] &&
		ok "anonymous memory grew by $grow KiB (< half the manifests' $((total / 1024)) KiB)" ||
		fail "anonymous memory grew by $grow KiB reading $((total / 1024)) KiB of manifests (want < 1/2)"
fi

# ---- a live change while manifests are read (catalog.h C7, view_query.c
# V9): an open reads the version it opened, to its end; a new open reads
# the next one, size and bytes agreeing ----
"$PY" "$srcdir/tests/gen_live.py" "$TMP/stage" --patient 7001 --count 10 --series 1 --prefix m >/dev/null ||
	fatal "gen_live.py failed"
M=$((N + 10))
"$PY" - "$MNT" "$TMP" "$M" <<'PYEOF' &
import csv, io, os, sys, time
mnt, tmp, m = sys.argv[1], sys.argv[2], int(sys.argv[3])
fails = []
for ext in ("csv", "jsonl"):
    p = os.path.join(mnt, "query", "instances", "manifest." + ext)
    with open(p, "rb") as f:
        old = f.read()
    fd = os.open(p, os.O_RDONLY)
    half = os.read(fd, len(old) // 2)
    if ext == "csv":
        open(os.path.join(tmp, "live.half"), "w").close()
        while not os.path.exists(os.path.join(tmp, "live.go")):
            time.sleep(0.05)
    rest = b"".join(iter(lambda: os.read(fd, 65537), b""))
    os.close(fd)
    # the jsonl was opened after the change: the new version throughout
    if ext == "csv" and half + rest != old:
        fails.append("the open from before the change read %d bytes, not its %d" % (len(half + rest), len(old)))
    new = open(p, "rb").read()
    if len(new) != os.stat(p).st_size:
        fails.append("after the change: %d bytes read, st_size %d" % (len(new), os.stat(p).st_size))
    n = new.count(b"\n") - (1 if ext == "csv" else 0)
    if n != m or b"PAT P7001" not in new:
        fails.append("manifest.%s after the change: %d rows (want %d with PAT P7001)" % (ext, n, m))
    if ext == "jsonl" and half + rest != new:
        fails.append("manifest.jsonl opened after the change: one read differs from the next open's")
print("\n".join(fails) if fails else "ok")
sys.exit(1 if fails else 0)
PYEOF
LIVEPY=$!
for i in $(seq 400); do [ -e "$TMP/live.half" ] && break; sleep 0.05; done
mkdir -p "$ARCH/incoming"
for f in "$TMP"/stage/*.dcm; do
	b=$(basename "$f")
	cp "$f" "$ARCH/incoming/.$b.tmp" && mv "$ARCH/incoming/.$b.tmp" "$ARCH/incoming/$b"
done
for i in $(seq 400); do [ "$(status_get "$MNT" instances)" = "$M" ] && break; sleep 0.05; done
[ "$(status_get "$MNT" instances)" = "$M" ] || fail "the 10 new instances were not indexed"
touch "$TMP/live.go"
wait "$LIVEPY" && ok "a manifest open across a live change reads its version; the next open the new one" ||
	fail "manifests across a live change (above)"
daemon_alive && ok "the daemon survived" || fail "the daemon died"
mount_stop

# ---- the map grows while a manifest is open (view_query.c V10, store.h
# S3): the batch does not wait for the reader; the open then reads its
# version to the end or ESTALE (never other bytes); a new open the new one ----
DICOMFS_INDEX_MAP_MIB=1 DICOMFS_TREE_FULL=1 mount_start "$MNT" "$ARCH" -o index="$TMP/idx" || exit 1
for i in $(seq 240); do [ "$(status_get "$MNT" instances)" = "$M" ] && break; sleep 0.5; done
"$PY" "$srcdir/tests/gen_live.py" "$TMP/stage2" --patient 7002 --count 10 --series 1 --prefix g >/dev/null ||
	fatal "gen_live.py failed"
rm -f "$TMP/live.half" "$TMP/live.go"
"$PY" - "$MNT" "$TMP" "$((M + 10))" <<'PYEOF' &
import errno, os, sys, time
mnt, tmp, m = sys.argv[1], sys.argv[2], int(sys.argv[3])
p = os.path.join(mnt, "query", "instances", "manifest.jsonl")
old = open(p, "rb").read()
fd = os.open(p, os.O_RDONLY)
half = os.read(fd, len(old) // 2)
open(os.path.join(tmp, "live.half"), "w").close()
while not os.path.exists(os.path.join(tmp, "live.go")):
    time.sleep(0.05)
fails = []
try:
    rest = b"".join(iter(lambda: os.read(fd, 65537), b""))
    if half + rest != old:
        fails.append("the open from before the growth read other bytes")
    how = "its version to the end"
except OSError as e:
    if e.errno != errno.ESTALE:
        fails.append("the open from before the growth: %s" % e)
    how = "ESTALE"
os.close(fd)
new = open(p, "rb").read()
if len(new) != os.stat(p).st_size or new.count(b"\n") != m or b"PAT P7002" not in new:
    fails.append("after the growth: %d bytes, st_size %d, %d rows (want %d)" %
                 (len(new), os.stat(p).st_size, new.count(b"\n"), m))
print("\n".join(fails) if fails else "ok: the open from before read " + how)
sys.exit(1 if fails else 0)
PYEOF
LIVEPY=$!
for i in $(seq 400); do [ -e "$TMP/live.half" ] && break; sleep 0.05; done
for f in "$TMP"/stage2/*.dcm; do
	b=$(basename "$f")
	cp "$f" "$ARCH/incoming/.$b.tmp" && mv "$ARCH/incoming/.$b.tmp" "$ARCH/incoming/$b"
done
for i in $(seq 600); do [ "$(status_get "$MNT" instances)" = "$((M + 10))" ] && break; sleep 0.05; done
[ "$(status_get "$MNT" instances)" = "$((M + 10))" ] &&
	ok "the batch was indexed while a manifest was open" || fail "the 10 new instances were not indexed: $(tail -5 "$MOUNT_LOG")"
grep -q "LMDB map grown" "$MOUNT_LOG" && ok "the map grew while mounted" ||
	log "note: the map did not grow here ($(grep -ci map "$MOUNT_LOG") map lines)"
grep -q "cannot grow" "$MOUNT_LOG" && fail "a growth failed: $(grep 'cannot grow' "$MOUNT_LOG")"
touch "$TMP/live.go"
wait "$LIVEPY" && ok "a manifest open across the growth: its version or ESTALE; the next open the new one" ||
	fail "manifests across a map growth (above)"
daemon_alive && ok "the daemon survived" || fail "the daemon died"
mount_stop
exit 0
