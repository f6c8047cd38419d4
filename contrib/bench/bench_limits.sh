#!/bin/bash
# bench_limits.sh - peak memory of an index build of a large archive.
# Mounts ${BENCH_DIR:-/var/tmp/dicomfs-bench}/archive-N (made once with
# tests/gen_archive.py --count N, N default 100000) with a fresh index and
# samples, every 0.1 s until the mount is ready, the RSS of the daemon and
# of all its children (parser processes) from /proc; prints the peak of the
# daemon alone, the peak of the sum, the largest child, and the build time.
# Usage: contrib/bench/bench_limits.sh [N]     (root; after a build)
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
N=${1:-100000}
BENCH_DIR=${BENCH_DIR:-/var/tmp/dicomfs-bench}
DICOMFS=${DICOMFS:-$ROOT/dicomfs}
GEN=$ROOT/tests/gen_archive.py
ARCHIVE=$BENCH_DIR/archive-$N
log() { printf '[bench_limits] %s\n' "$*" >&2; }
if [ ! -d "$ARCHIVE" ]; then
	log "generating $N files into $ARCHIVE (once) ..."
	/usr/bin/python3 "$GEN" "$ARCHIVE.tmp" --count "$N" >&2 && mv "$ARCHIVE.tmp" "$ARCHIVE" &&
		sha256sum "$GEN" | cut -d' ' -f1 >"$ARCHIVE.done" || exit 1
fi
TMP=$(mktemp -d "$BENCH_DIR/run.XXXXXX")
trap 'fusermount3 -u "$TMP/mnt" 2>/dev/null; sleep 0.5; rm -rf "$TMP"' EXIT
mkdir -p "$TMP/mnt"
rss() { awk '/^VmRSS/ {print $2}' /proc/"$1"/status 2>/dev/null || echo 0; }
t0=$(date +%s.%N)
"$DICOMFS" -f -o quiet,index="$TMP/idx" "$ARCHIVE" "$TMP/mnt" 2>"$TMP/log" &
pid=$!
peak_d=0 peak_sum=0 peak_child=0 nkids=0
while ! mountpoint -q "$TMP/mnt"; do
	kill -0 "$pid" 2>/dev/null || { log "dicomfs exited: $(cat "$TMP/log")"; exit 1; }
	d=$(rss "$pid")
	sum=$d
	for c in $(pgrep -P "$pid"); do
		r=$(rss "$c")
		sum=$((sum + r))
		[ "$r" -gt "$peak_child" ] && peak_child=$r
	done
	k=$(pgrep -P "$pid" | wc -l)
	[ "$k" -gt "$nkids" ] && nkids=$k
	[ "$d" -gt "$peak_d" ] && peak_d=$d
	[ "$sum" -gt "$peak_sum" ] && peak_sum=$sum
	sleep 0.1
done
t1=$(date +%s.%N)
d=$(rss "$pid")
files=$(ls -1 "$TMP/mnt/.dicomfs" >/dev/null; /usr/bin/python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["files_seen"])' "$TMP/mnt/.dicomfs/status.json")
printf 'files %s\nbuild_seconds %.1f\npeak_rss_daemon_MiB %d\npeak_rss_daemon_plus_children_MiB %d\npeak_rss_one_parser_MiB %d\nparser_processes %d\nrss_daemon_mounted_MiB %d\n' \
	"$files" "$(echo "$t1 - $t0" | bc)" $((peak_d / 1024)) $((peak_sum / 1024)) $((peak_child / 1024)) "$nkids" $((d / 1024))
