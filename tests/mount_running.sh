#!/bin/bash
# Running it (issue 16): options checked before indexing (exit 1, no index
# made), the archive messages, -o log=FILE in the background, SIGHUP
# rescans and keeps the mount, SIGTERM unmounts, progress lines of every
# phase, the man page covers every option of main.c's table and renders
# without warnings, a mount under `ulimit -v` whose LMDB map must grow,
# --list-indexes / --prune-indexes, contrib/demo and a foreign sample
# directory.
. "${srcdir:-$(dirname "$0")/..}/tests/lib.sh"
setup

ARCH="$TMP/arch"
MNT="$TMP/mnt"
mkdir -p "$MNT"
# 3000 instances: an index of ~5 MiB (format 13), more than a 1 MiB
# starting map, and a tree (rebuilt by a live batch) larger than 1 MiB
"$PY" "$GEN" "$ARCH" --count 3000 >/dev/null 2>&1 || fatal "gen_archive failed"
NFILES=$(find "$ARCH" -type f | wc -l)
log "archive: $NFILES files"

# ---- 1. options before indexing -------------------------------------------
# expect_usage WHAT WANT_IN_STDERR ARGS...: exit 1, the stderr names it, no
# index directory made, no parser started, nothing mounted
expect_usage() {
	local what=$1 want=$2 rc
	shift 2
	rm -rf "$TMP/idx-u"
	timeout 20 "$DICOMFS" -f -o index="$TMP/idx-u" "$@" "$ARCH" "$MNT" \
		>"$TMP/u.out" 2>"$TMP/u.err" </dev/null
	rc=$?
	if mountpoint -q "$MNT"; then
		fusermount3 -u "$MNT" || fusermount3 -u -z "$MNT"
		fail "$what: it mounted"
	fi
	[ "$rc" -eq 1 ] && ok "$what: exit 1" || fail "$what: exit $rc, want 1: $(cat "$TMP/u.err")"
	grep -qF -- "$want" "$TMP/u.err" && ok "$what: stderr names '$want'" ||
		fail "$what: no '$want' in stderr: $(cat "$TMP/u.err")"
	[ ! -e "$TMP/idx-u" ] && ok "$what: no index directory made" ||
		fail "$what: index directory made: $(ls -A "$TMP/idx-u")"
	grep -q "indexing" "$TMP/u.err" && fail "$what: indexing started: $(cat "$TMP/u.err")"
}
expect_usage "mistyped -o option" "cache_sise" -o cache_sise=64
expect_usage "unknown -o flag" "allow_otter" -o allow_otter
expect_usage "bad cache_size value" "cache_size=lots" -o cache_size=lots
expect_usage "bad max_image value" "max_image=-3" -o max_image=-3
expect_usage "bad rescan value" "rescan=-5" -o rescan=-5
expect_usage "unknown index_tags keyword" "NoSuchKeyword" -o index_tags=NoSuchKeyword
expect_usage "log file in a missing directory" "log=$TMP/no/such/dir/d.log" \
	-o log="$TMP/no/such/dir/d.log"

# ---- 2. archive messages ------------------------------------------------------
timeout 20 "$DICOMFS" -f -o index="$TMP/idx-u" "$TMP/no-such-archive" "$MNT" \
	>/dev/null 2>"$TMP/a.err" </dev/null
rc=$?
[ "$rc" -eq 2 ] && grep -q "No such file or directory" "$TMP/a.err" &&
	! grep -q "Not a directory" "$TMP/a.err" &&
	ok "missing archive: exit 2, $(cat "$TMP/a.err")" ||
	fail "missing archive: exit $rc: $(cat "$TMP/a.err")"
touch "$TMP/plain-file"
timeout 20 "$DICOMFS" -f -o index="$TMP/idx-u" "$TMP/plain-file" "$MNT" \
	>/dev/null 2>"$TMP/a.err" </dev/null
rc=$?
[ "$rc" -eq 2 ] && grep -q "is not a directory" "$TMP/a.err" &&
	ok "archive is a file: exit 2, $(cat "$TMP/a.err")" ||
	fail "archive is a file: exit $rc: $(cat "$TMP/a.err")"

# ---- 3. background mount with -o log=FILE; SIGHUP; SIGTERM -----------------------
# the pid of the daemon serving mountpoint $1 (its command line names it)
daemon_pid() {
	local p
	for p in /proc/[0-9]*; do
		{ tr '\0' '\n' <"$p/cmdline"; } 2>/dev/null | grep -qxF "$1" || continue
		{ tr '\0' '\n' <"$p/cmdline"; } 2>/dev/null | grep -qx -e '--parse-worker' -e '--decode-worker' &&
			continue
		echo "${p#/proc/}"
		return 0
	done
	return 1
}
LOGF="$TMP/dicomfs.log"
# relative log name: taken from the start directory, though the daemon
# works in /
(cd "$TMP" && DICOMFS_NO_WATCH=1 DICOMFS_INDEX_MAP_MIB=1 DICOMFS_TREE_FULL=1 timeout 120 "$DICOMFS" \
	-o index="$TMP/idx",log=dicomfs.log "$ARCH" "$MNT" >"$TMP/bg.out" 2>"$TMP/bg.err" </dev/null)
rc=$?
if [ "$rc" -ne 0 ] || ! mountpoint -q "$MNT"; then
	fatal "background mount failed (exit $rc): $(cat "$TMP/bg.err")"
fi
MOUNTED=$MNT   # cleanup unmounts it
PID=$(daemon_pid "$MNT") || fatal "no daemon process found for $MNT"
echo "$PID" >"$TMP/daemon.pid"
ok "background mount, daemon pid $PID"
n=$(find "$MNT/patients" -name '*.dcm' | wc -l)
[ "$n" -eq "$NFILES" ] && ok "all $n instances served (the map grew from 1 MiB)" ||
	fail "$n instances served, want $NFILES"
[ -s "$LOGF" ] && ok "log file written: $(wc -l <"$LOGF") lines" || fail "no log file $LOGF"
for phase in "indexing: walk: $NFILES files" "indexing: parse: $NFILES/$NFILES files" \
	"indexing: tree: $NFILES instances" "indexing: commit:" "$NFILES files, $NFILES parsed" \
	"LMDB map grown from 1 to"; do
	grep -qF "$phase" "$LOGF" && ok "log has '$phase'" ||
		fail "log lacks '$phase': $(cat "$LOGF")"
done
grep -qE '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z dicomfs\[[0-9]+\]: ' "$LOGF" &&
	ok "log lines are time-stamped" || fail "log lines without time stamp: $(head -2 "$LOGF")"
grep -q "files/s" "$TMP/bg.err" && ok "progress on stderr before daemonizing" ||
	fail "no progress on stderr: $(cat "$TMP/bg.err")"
grep -q " 1 files/s\| 0 files/s" "$TMP/bg.err" "$LOGF" &&
	fail "a rate of 0 or 1 files/s: $(grep -h 'files/s' "$TMP/bg.err" "$LOGF")"

# a new patient, invisible without the watch, appears after SIGHUP
"$PY" "$srcdir/tests/gen_live.py" "$TMP/new" --patient 77 --count 3 >/dev/null 2>&1 ||
	fatal "gen_live failed"
mv "$TMP/new" "$ARCH/arrived"
touch -d '-1 minute' "$ARCH/arrived" "$ARCH/arrived"/*
sleep 2
n=$(find "$MNT/patients" -name '*.dcm' | wc -l)
[ "$n" -eq "$NFILES" ] && ok "without the watch the new files are not seen yet" ||
	log "note: $n instances before SIGHUP"
kill -HUP "$PID"
got=0
for i in $(seq 100); do
	n=$(find "$MNT/patients" -name '*.dcm' 2>/dev/null | wc -l)
	[ "$n" -eq $((NFILES + 3)) ] && { got=1; break; }
	sleep 0.2
done
mountpoint -q "$MNT" && kill -0 "$PID" 2>/dev/null && ok "SIGHUP: still mounted, daemon alive" ||
	fail "SIGHUP unmounted or killed the daemon"
[ "$got" -eq 1 ] && ok "SIGHUP: the 3 new instances appeared" ||
	fail "SIGHUP: $n instances, want $((NFILES + 3))"
grep -q "SIGHUP: re-walking" "$LOGF" && ok "SIGHUP logged to the log file (daemonized)" ||
	fail "no SIGHUP line in the log file: $(tail -3 "$LOGF")"
grep -q "live: batch" "$LOGF" && ok "the daemon's messages go to the log file, not syslog" ||
	fail "no live batch line in the log file"
# the mount's map started at data + 1 MiB (DICOMFS_INDEX_MAP_MIB): the live
# batch (a whole new tree: DICOMFS_TREE_FULL=1, index.h I11) outgrows it while the query catalog holds a
# snapshot; the catalog lets go, the map grows, query/ sees the new series
[ "$(grep -c 'LMDB map grown' "$LOGF")" -ge 2 ] && ok "the map grew while mounted: $(grep 'LMDB map grown' "$LOGF" | tail -1 | cut -d' ' -f3-)" ||
	fail "no growth while mounted: $(grep -i 'map\|live' "$LOGF")"
grep -q "cannot grow" "$LOGF" && fail "a growth failed: $(grep 'cannot grow' "$LOGF")"
sleep 1.5   # query directories' kernel cache timeout
nq=$(ls "$MNT/query/series/PatientID=ID0077/" | grep -vc '^manifest')
[ "$nq" -ge 1 ] && ok "query/ after the growth: $nq series of the new patient" ||
	fail "query/ does not see the new patient after the growth: $(ls "$MNT/query/series/PatientID=ID0077/")"
kill -TERM "$PID"
for i in $(seq 100); do
	kill -0 "$PID" 2>/dev/null || break
	sleep 0.1
done
! mountpoint -q "$MNT" && ! kill -0 "$PID" 2>/dev/null && ok "SIGTERM: unmounted, daemon gone" ||
	fail "SIGTERM: still mounted or still running"
MOUNTED=
mountpoint -q "$MNT" && fusermount3 -u -z "$MNT"

# ---- 4. progress in the foreground -------------------------------------------------
rm -rf "$TMP/idx"
mount_start "$MNT" "$ARCH" -o index="$TMP/idx" || exit 1
mount_stop
for phase in "indexing: walk:" "indexing: parse:" "indexing: tree:" "indexing: commit:"; do
	grep -q "^dicomfs: $phase" "$MOUNT_LOG" && ok "-f: stderr has '$phase'" ||
		fail "-f: stderr lacks '$phase': $(cat "$MOUNT_LOG")"
done
mount_start "$MNT" "$ARCH" -o index="$TMP/idx",quiet || exit 1
mount_stop
grep -q "indexing" "$MOUNT_LOG" && fail "-o quiet: progress on stderr: $(cat "$MOUNT_LOG")" ||
	ok "-o quiet: no progress"

# ---- 5. the man page ---------------------------------------------------------------
MAN="$srcdir/fs/dicomfs.1"
opts=$(sed -n 's/^[[:space:]]*OPT("\([a-z_]*\).*/\1/p' "$srcdir/fs/main.c")
[ "$(printf '%s\n' "$opts" | wc -l)" -ge 15 ] && ok "main.c's option table: $(printf '%s\n' "$opts" | wc -l) options" ||
	fail "could not read main.c's option table: '$opts'"
rendered=$(LC_ALL=C MANWIDTH=200 man -l "$MAN" 2>"$TMP/man.err" | col -b)
[ ! -s "$TMP/man.err" ] && ok "man -l renders without a message" ||
	fail "man -l: $(cat "$TMP/man.err")"
groff -man -ww -z "$MAN" 2>"$TMP/groff.err"
[ ! -s "$TMP/groff.err" ] && ok "groff -ww: no warning" || fail "groff: $(cat "$TMP/groff.err")"
missing=
for o in $opts allow_other; do
	printf '%s\n' "$rendered" | grep -qE -- "-o $o(=|\$| |,)" || missing="$missing $o"
done
[ -z "$missing" ] && ok "every option of main.c's table is an '-o NAME' entry of the man page" ||
	fail "options missing from the man page:$missing"
for sec in "QUERY" "VIEWS" "SIGNALS" "EXIT STATUS" "ENVIRONMENT" "FILES" "MESSAGES" \
	"THE TREE AND ITS FILE KINDS"; do
	printf '%s\n' "$rendered" | grep -qx "$sec" || missing="$missing $sec"
done
for w in patients/ uids/ query/ anon/ .dicomfs/ --list-indexes --prune-indexes SIGHUP \
	fusermount3 "fuser" RLIMIT_AS .npy .png volume.nii status.json; do
	printf '%s\n' "$rendered" | grep -qF -- "$w" || missing="$missing $w"
done
[ -z "$missing" ] && ok "the man page has its sections and names every view, file kind and signal" ||
	fail "man page lacks:$missing"
# decode-ahead is on by default (kind_pixels.c P10): the page and --help say so
printf '%s\n' "$rendered" | tr -s ' \n' '  ' | grep -qF -- "-o decode_ahead is accepted and is the default" &&
	printf '%s\n' "$rendered" | grep -qF "DICOMFS_NO_AHEAD" &&
	"$DICOMFS" --help 2>&1 | grep -qF -- "-o no_decode_ahead" &&
	! "$DICOMFS" --help 2>&1 | grep -qF "decode_ahead        " &&
	ok "man page and --help: decode-ahead on by default, -o no_decode_ahead turns it off" ||
	fail "man page or --help do not say decode-ahead is the default"

# ---- 6. ulimit -v: the map sized to the archive, grown under the limit --------
rm -rf "$TMP/idx-v"
(ulimit -v 4194304 && exec env DICOMFS_INDEX_MAP_MIB=1 "$DICOMFS" -f -o index="$TMP/idx-v" \
	"$ARCH" "$MNT") >"$TMP/v.log" 2>&1 </dev/null &
VPID=$!
echo "$VPID" >"$TMP/daemon.pid"
for i in $(seq 300); do
	mountpoint -q "$MNT" && break
	kill -0 "$VPID" 2>/dev/null || break
	sleep 0.1
done
if mountpoint -q "$MNT"; then
	n=$(find "$MNT/patients" -name '*.dcm' | wc -l)
	[ "$n" -eq $((NFILES + 3)) ] && ok "ulimit -v 4 GiB: mounted, $n instances" ||
		fail "ulimit -v 4 GiB: $n instances, want $((NFILES + 3))"
	grep -q "LMDB map grown" "$TMP/v.log" && ok "ulimit -v: $(grep -m1 'LMDB map grown' "$TMP/v.log")" ||
		fail "ulimit -v: the map did not grow: $(cat "$TMP/v.log")"
	fusermount3 -u "$MNT"
	wait "$VPID"
	rc=$?
	[ "$rc" -eq 0 ] && ok "ulimit -v: exit 0 after unmount" || fail "ulimit -v: exit $rc"
else
	wait "$VPID"
	fail "ulimit -v 4 GiB: no mount: $(cat "$TMP/v.log")"
fi
# without the override: the map fits the archive (tens of MiB, not 256 GiB)
rm -rf "$TMP/idx-v"
(ulimit -v 1048576 && exec "$DICOMFS" -f -o index="$TMP/idx-v" "$ARCH" "$MNT") \
	>"$TMP/v2.log" 2>&1 </dev/null &
VPID=$!
for i in $(seq 300); do
	mountpoint -q "$MNT" && break
	kill -0 "$VPID" 2>/dev/null || break
	sleep 0.1
done
if mountpoint -q "$MNT"; then
	ok "ulimit -v 1 GiB: mounted"
	grep -q "ulimit -v" "$TMP/v2.log" && fail "ulimit -v 1 GiB: a limit line: $(cat "$TMP/v2.log")"
	fusermount3 -u "$MNT"
	wait "$VPID"
else
	wait "$VPID"
	fail "ulimit -v 1 GiB: no mount: $(cat "$TMP/v2.log")"
fi
if command -v mdb_stat >/dev/null; then
	ms=$(mdb_stat -e "$TMP/idx-v" | sed -n 's/^ *Map size: //p')
	[ -n "$ms" ] && [ "$ms" -lt $((1 << 30)) ] && ok "map sized to the archive: $((ms >> 20)) MiB" ||
		fail "map size $ms"
fi

# ---- 7. --list-indexes / --prune-indexes (default cache place) ------------------
export XDG_CACHE_HOME="$TMP/cache"
for a in keep gone old; do
	mkdir -p "$TMP/arch-$a"
	cp "$(find "$ARCH" -type f | head -1)" "$TMP/arch-$a/x.dcm"
done
for a in gone old; do
	mount_start "$MNT" "$TMP/arch-$a" -o quiet || exit 1
	mount_stop
done
mount_start "$MNT" "$TMP/arch-keep" -o quiet || exit 1   # stays mounted: in use
rm -rf "$TMP/arch-gone"
sleep 1.1
out=$(timeout 30 "$DICOMFS" --list-indexes 2>&1)
rc=$?
log "--list-indexes:"
printf '%s\n' "$out" | sed 's/^/    /'
[ "$rc" -eq 0 ] && [ "$(printf '%s\n' "$out" | grep -c "^$TMP/cache/dicomfs/")" -eq 3 ] &&
	ok "--list-indexes: 3 indexes" || fail "--list-indexes: exit $rc"
printf '%s\n' "$out" | grep -qP "\t$TMP/arch-gone\t.*\tno\tno\$" && ok "--list-indexes: the vanished archive is 'no'" ||
	fail "--list-indexes: arch-gone not marked missing"
printf '%s\n' "$out" | grep -qP "\t$TMP/arch-keep\t.*\tyes\tyes\$" && ok "--list-indexes: the mounted one is in use" ||
	fail "--list-indexes: arch-keep not in use"
printf '%s\n' "$out" | grep -qP "\t$TMP/arch-old\t[0-9.]+\t[0-9-]+ [0-9:]+\t[^\t]+\tyes\tno\$" &&
	ok "--list-indexes: size, last use and format columns" || fail "--list-indexes: columns"
out=$(timeout 30 "$DICOMFS" --prune-indexes 2>&1)
printf '%s\n' "$out" | sed 's/^/    /'
idx_of() { printf '%s\n' "$out" | grep -P "\t$TMP/arch-$1\t" | cut -f1; }
gone_dir=$(idx_of gone) old_dir=$(idx_of old) keep_dir=$(idx_of keep)
[ -n "$gone_dir" ] && [ ! -e "$gone_dir" ] && ok "--prune-indexes: the vanished archive's index removed" ||
	fail "--prune-indexes: $gone_dir still there"
[ -d "$old_dir" ] && [ -d "$keep_dir" ] && ok "--prune-indexes: the others kept" ||
	fail "--prune-indexes: removed too much"
touch "$old_dir/my-notes.txt"
out=$(timeout 30 "$DICOMFS" --prune-indexes --older-than 0 2>&1)
printf '%s\n' "$out" | sed 's/^/    /'
[ -d "$keep_dir" ] && printf '%s\n' "$out" | grep -q "in use" && ok "--older-than 0: the index in use kept" ||
	fail "--older-than 0: the mounted index was removed or not reported"
[ -f "$old_dir/my-notes.txt" ] && ok "--older-than 0: a directory holding a foreign file kept" ||
	fail "--older-than 0: removed a directory with a foreign file"
rm "$old_dir/my-notes.txt"
timeout 30 "$DICOMFS" --prune-indexes --older-than 0 >/dev/null 2>&1
[ ! -e "$old_dir" ] && [ -d "$keep_dir" ] && ok "--older-than 0: the unused index removed, the mounted one kept" ||
	fail "--older-than 0: old=$(ls -d "$old_dir" 2>&1) keep=$(ls -d "$keep_dir" 2>&1)"
mountpoint -q "$MNT" && [ -n "$(ls "$MNT/patients")" ] && ok "the mount in use still serves" ||
	fail "the mount in use broke"
mount_stop
timeout 30 "$DICOMFS" --prune-indexes --older-than x >/dev/null 2>&1
[ $? -eq 1 ] && ok "--older-than x: exit 1" || fail "--older-than x: not a usage error"

# ---- 8. contrib/demo ------------------------------------------------------------------
out=$(sh "$srcdir/contrib/demo" --help 2>&1)
printf '%s\n' "$out" | grep -q "DICOMFS_SAMPLE" && printf '%s\n' "$out" | grep -q "MOUNTPOINT" &&
	ok "contrib/demo --help prints its options" || fail "contrib/demo --help: $out"
mkdir -p "$TMP/sample"
echo precious >"$TMP/sample/notes.txt"
DICOMFS_SAMPLE="$TMP/sample" timeout 30 sh "$srcdir/contrib/demo" "$TMP/demo-mnt" >"$TMP/demo.out" 2>&1
rc=$?
[ "$rc" -ne 0 ] && [ "$(cat "$TMP/sample/notes.txt")" = precious ] &&
	grep -q "not made by contrib/demo" "$TMP/demo.out" &&
	ok "contrib/demo keeps a directory it did not make: $(cat "$TMP/demo.out")" ||
	fail "contrib/demo: exit $rc: $(cat "$TMP/demo.out")"
out=$(sh "$srcdir/contrib/install-deps" --help 2>&1)
printf '%s\n' "$out" | grep -q -- "--runtime" && ok "contrib/install-deps --help names --runtime" ||
	fail "install-deps --help: $out"
exit 0
