# Shared helpers of the dicomfs mount tests (sourced, not run).
#
# The tests run from the build directory (automake `make check`), with
# $srcdir pointing at the source directory and the binary at ./dicomfs;
# DICOMFS overrides the binary.  Exit codes: 0 pass, 1 fail, 77 skip (only
# when /dev/fuse is missing).

TEST_NAME=$(basename "$0" .sh)
srcdir=$(cd "${srcdir:-$(dirname "$0")/..}" && pwd)
PY=/usr/bin/python3
GEN="$srcdir/tests/gen_archive.py"
DICOMFS=${DICOMFS:-./dicomfs}
case "$DICOMFS" in
	/*) ;;
	*/*) DICOMFS="$(pwd)/$DICOMFS" ;;
esac
export LC_ALL=C      # English error messages, bytewise sort

FAILURES=0
TMP=
MOUNTED=
MOUNT_PID=
MOUNT_LOG=
MOUNT_SEQ=0
MOUNT_RC=

log() { printf '[%s] %s\n' "$TEST_NAME" "$*"; }
ok() { printf '[%s] ok: %s\n' "$TEST_NAME" "$*"; }
# fail MESSAGE: record a failure and go on (the test exits 1 at the end)
fail() {
	printf '[%s] FAIL: %s\n' "$TEST_NAME" "$*"
	FAILURES=$((FAILURES + 1))
}
# fatal MESSAGE: record a failure and stop now
fatal() {
	fail "$@"
	exit 1
}

need_fuse() {
	if [ ! -e /dev/fuse ]; then
		log "SKIP: /dev/fuse is missing"
		exit 77
	fi
}

need_binary() {
	[ -x "$DICOMFS" ] || fatal "dicomfs binary not found at $DICOMFS (set DICOMFS)"
	command -v fusermount3 >/dev/null || fatal "fusermount3 not found (install fuse3)"
	[ -x "$PY" ] || fatal "$PY not found"
}

# setup: temp dir, cleanup trap
setup() {
	need_fuse
	need_binary
	TMP=$(mktemp -d "${TMPDIR:-/tmp}/dicomfs-$TEST_NAME.XXXXXX") || fatal "mktemp failed"
	# a default index (no -o index=) should land in here, not in ~/.cache
	export XDG_CACHE_HOME="$TMP/cache"
	trap cleanup EXIT
	trap 'exit 1' INT TERM HUP
	start_watchdog
}

# A hung mount must not hang `make check`: after DICOMFS_TEST_TIMEOUT
# seconds (default 300) kill the daemon (which aborts its FUSE connection,
# so stuck readers get ENOTCONN) and then the test.
WATCHDOG=
start_watchdog() {
	local main=$$
	(
		trap 'kill "$sp" 2>/dev/null; exit 0' TERM
		sleep "${DICOMFS_TEST_TIMEOUT:-300}" >/dev/null 2>&1 </dev/null &
		sp=$!
		wait "$sp"
		printf '[%s] FAIL: timeout after %s s; killing dicomfs and the test\n' \
			"$TEST_NAME" "${DICOMFS_TEST_TIMEOUT:-300}"
		p=$(cat "$TMP/daemon.pid" 2>/dev/null)
		[ -n "$p" ] && kill -9 "$p" 2>/dev/null
		sleep 2
		kill -TERM "$main" 2>/dev/null
	) &
	WATCHDOG=$!
}

# forget_default_index MOUNTPOINT: a mount without -o index= put its index
# in a default place (status.json index_path); remove it at cleanup if it
# is under a dicomfs cache directory outside $TMP (root: /var/cache/dicomfs)
DEFAULT_INDEX=
forget_default_index() {
	local ip
	ip=$(status_get "$1" index_path)
	[ -n "$ip" ] || return 0
	[ -f "$ip" ] && ip=$(dirname "$ip")
	case "$ip" in
	"$TMP"/*) ;;
	/var/cache/dicomfs/?* | */.cache/dicomfs/?*) DEFAULT_INDEX=$ip ;;
	esac
}

cleanup() {
	local rc=$?
	trap - EXIT
	cd /
	if [ -n "$WATCHDOG" ]; then
		kill "$WATCHDOG" 2>/dev/null
		wait "$WATCHDOG" 2>/dev/null
	fi
	if [ -n "$MOUNTED" ]; then
		mount_stop quiet
	fi
	if [ -n "$TMP" ]; then
		# never leave a mount behind inside what we delete
		grep -F " $TMP/" /proc/mounts 2>/dev/null | while read -r _ mp _; do
			fusermount3 -u -z "$mp" 2>/dev/null
		done
		rm -rf "$TMP"
	fi
	if [ -n "$DEFAULT_INDEX" ] && [ -d "$DEFAULT_INDEX" ]; then
		rm -rf "$DEFAULT_INDEX"
	fi
	if [ "$rc" -eq 77 ]; then exit 77; fi
	if [ "$rc" -ne 0 ] || [ "$FAILURES" -ne 0 ]; then
		log "FAILED (exit status $rc, $FAILURES failure(s) recorded)"
		exit 1
	fi
	log "PASSED"
	exit 0
}

# mount_start MOUNTPOINT ARCHIVE [dicomfs options...]
# Starts dicomfs in the foreground (-f) in the background and waits up to
# 30 s for the mount.  Returns 1 (after printing the log) on failure.
mount_start() {
	local mnt=$1 arch=$2 i
	shift 2
	mkdir -p "$mnt"
	MOUNT_SEQ=$((MOUNT_SEQ + 1))
	MOUNT_LOG="$TMP/dicomfs.$MOUNT_SEQ.log"
	log "mount: dicomfs -f${*:+ $*} '$arch' '$mnt'"
	"$DICOMFS" -f "$@" "$arch" "$mnt" >"$MOUNT_LOG" 2>&1 </dev/null &
	MOUNT_PID=$!
	echo "$MOUNT_PID" >"$TMP/daemon.pid"
	MOUNTED=$mnt
	for i in $(seq 300); do
		if timeout 10 mountpoint -q "$mnt"; then
			return 0
		fi
		if ! kill -0 "$MOUNT_PID" 2>/dev/null; then
			wait "$MOUNT_PID"
			MOUNT_RC=$?
			MOUNTED=
			fail "dicomfs exited with status $MOUNT_RC before the mount was ready; its output:"
			sed 's/^/    /' "$MOUNT_LOG"
			return 1
		fi
		sleep 0.1
	done
	fail "mount not ready after 30 s; dicomfs output:"
	sed 's/^/    /' "$MOUNT_LOG"
	return 1
}

# mount_stop [quiet]: unmount the current mount, wait for the daemon; a
# non-zero exit status or a daemon that does not exit is a failure.
mount_stop() {
	local quiet=${1:-} i
	[ -n "$MOUNTED" ] || return 0
	cd /
	for i in 1 2 3 4 5 6 7 8 9 10; do
		if ! mountpoint -q "$MOUNTED" 2>/dev/null; then break; fi
		fusermount3 -u "$MOUNTED" 2>/dev/null && break
		sleep 0.5
	done
	if mountpoint -q "$MOUNTED" 2>/dev/null; then
		[ -n "$quiet" ] || fail "fusermount3 -u $MOUNTED failed; lazy unmount"
		fusermount3 -u -z "$MOUNTED" 2>/dev/null
	fi
	for i in $(seq 100); do
		kill -0 "$MOUNT_PID" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$MOUNT_PID" 2>/dev/null; then
		[ -n "$quiet" ] || fail "dicomfs (pid $MOUNT_PID) still running 10 s after unmount; killing it"
		kill "$MOUNT_PID" 2>/dev/null
		sleep 1
		kill -9 "$MOUNT_PID" 2>/dev/null
	fi
	wait "$MOUNT_PID" 2>/dev/null
	MOUNT_RC=$?
	if [ -z "$quiet" ] && [ "$MOUNT_RC" -ne 0 ]; then
		fail "dicomfs exited with status $MOUNT_RC after unmount; its output:"
		sed 's/^/    /' "$MOUNT_LOG"
	fi
	MOUNTED=
	MOUNT_PID=
}

# daemon_alive: the dicomfs process of the current mount is still running
daemon_alive() {
	[ -n "$MOUNT_PID" ] && kill -0 "$MOUNT_PID" 2>/dev/null
}

# list_tree DIR: the directories and .dcm originals below DIR, relative,
# directories with a trailing '/', sorted bytewise (the format of
# gen_archive.py --expected); derived files (.json, .npy, level files) are
# checked by their own tests
list_tree() {
	(cd "$1" && timeout 60 find . -noleaf -mindepth 1 \
		\( -type d -printf '%P/\n' \) -o \( -name '*.dcm' -printf '%P\n' \)) | sort
}

# check_listing MOUNTPOINT EXPECTED: patients/ listing equals EXPECTED
check_listing() {
	local mnt=$1 exp=$2 got
	got="$TMP/listing.$$.$RANDOM"
	list_tree "$mnt/patients" >"$got"
	if diff -u "$exp" "$got" >"$got.diff"; then
		ok "patients/ listing matches $(wc -l <"$exp") expected entries"
	else
		fail "patients/ listing differs from the expected one (- expected, + got):"
		sed 's/^/    /' "$got.diff"
	fi
}

# check_sources MOUNTPOINT ARCHIVE SOURCES: every instance has the bytes,
# size and mtime of its source file, mode 0444 masked by the source mode
check_sources() {
	local mnt=$1 arch=$2 sources=$3 m s n=0 bad=0 ms ss want
	while IFS='	' read -r m s; do
		n=$((n + 1))
		if ! cmp -s "$mnt/patients/$m" "$arch/$s"; then
			fail "content of patients/$m differs from $s"
			bad=$((bad + 1))
			continue
		fi
		ms=$(stat -c '%s %Y %a %F' "$mnt/patients/$m")
		ss=$(stat -c '%s %Y %a' "$arch/$s")
		want="${ss% *} $(printf '%o' $((0444 & 0${ss##* }))) regular file"
		if [ "$ms" != "$want" ]; then
			fail "patients/$m: size mtime mode type = '$ms', want '$want' (from $s)"
			bad=$((bad + 1))
		fi
	done <"$sources"
	[ "$bad" -eq 0 ] && ok "$n instances: same bytes, size, mtime as their sources; mode 0444 & source mode"
}

# parallel_readers MOUNTPOINT ARCHIVE SOURCES N: N concurrent readers
# (cmp, cat, small dd reads) over all instances, 3 rounds each
parallel_readers() {
	local mnt=$1 arch=$2 sources=$3 n=$4 k pids="" rc=0 p
	for k in $(seq "$n"); do
		(
			if [ $((k % 2)) -eq 0 ]; then order="sort -r"; else order=cat; fi
			for round in 1 2 3; do
				$order "$sources" | while IFS='	' read -r m s; do
					case $((k % 4)) in
					0) dd if="$mnt/patients/$m" bs=77 status=none | cmp -s - "$arch/$s" ;;
					1) cmp -s "$mnt/patients/$m" "$arch/$s" ;;
					2) cat "$mnt/patients/$m" | cmp -s - "$arch/$s" ;;
					3) cmp -s "$mnt/patients/$m" "$arch/$s" ;;
					esac || echo "reader $k round $round: patients/$m differs from $s"
				done
			done
		) >"$TMP/reader.$k.out" 2>&1 &
		pids="$pids $!"
	done
	k=0
	for p in $pids; do
		k=$((k + 1))
		wait "$p" || rc=1
		if [ -s "$TMP/reader.$k.out" ]; then
			rc=1
			sed 's/^/    /' "$TMP/reader.$k.out" | head -20
		fi
	done
	if [ "$rc" -eq 0 ]; then
		ok "$n parallel readers x 3 rounds read every instance correctly"
	else
		fail "parallel readers saw errors (above)"
	fi
}

# status_get MOUNTPOINT KEY: print one value of .dicomfs/status.json
status_get() {
	"$PY" -c 'import json,sys; v=json.load(open(sys.argv[1]))[sys.argv[2]]; print(v)' \
		"$1/.dicomfs/status.json" "$2" 2>/dev/null
}
