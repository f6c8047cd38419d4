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
[ "$grow" -lt $((total / 2 / 1024)) ] &&
	ok "anonymous memory grew by $grow KiB (< half the manifests' $((total / 1024)) KiB)" ||
	fail "anonymous memory grew by $grow KiB reading $((total / 1024)) KiB of manifests (want < 1/2)"
daemon_alive && ok "the daemon survived" || fail "the daemon died"
mount_stop
exit 0
