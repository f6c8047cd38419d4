#!/usr/bin/env bash
# bench_mountmem.sh - memory of a dicomfs mount of N instances (issue 17):
#   1. the first index build: peak resident (VmHWM) of the mount process;
#   2. a remount of the unchanged archive, then one `ls -lR` of patients/,
#      then one read of query/instances/manifest.csv: anonymous memory
#      (RssAnon: the LMDB map is file-backed and not counted) after each.
# The mount runs in the foreground (-f) so its own /proc status is read.
# Environment: DICOMFS (default <root>/dicomfs), BENCH_DIR (default
# /var/tmp/dicomfs-bench), N (default 100000; the archive-N of
# tests/gen_archive.py --count N, made when missing), PYTHON.
set -u -o pipefail
export LC_ALL=C
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)
DICOMFS=${DICOMFS:-$ROOT/dicomfs}
BENCH_DIR=${BENCH_DIR:-/var/tmp/dicomfs-bench}
N=${N:-100000}
PY=${PYTHON:-/usr/bin/python3}

log() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
[[ -x $DICOMFS ]] || die "no dicomfs at $DICOMFS"
ARCH=$BENCH_DIR/archive-$N
if [[ ! -f $ARCH.done ]]; then
	log "generating $N files into $ARCH"
	rm -rf "$ARCH"
	"$PY" "$ROOT/tests/gen_archive.py" "$ARCH" --count "$N" >/dev/null || die "gen_archive.py failed"
	touch "$ARCH.done"
fi
W=$(mktemp -d "$BENCH_DIR/mem.XXXXXX")
MNT=$W/mnt
mkdir -p "$MNT"
PID=
cleanup() { mountpoint -q "$MNT" && fusermount3 -u "$MNT"; [[ -n $PID ]] && wait "$PID" 2>/dev/null; rm -rf "$W"; }
trap cleanup EXIT

field() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }   # kB
mib() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }
start() {
	"$DICOMFS" -f -o index="$W/idx" -o quiet "$ARCH" "$MNT" 2>>"$W/log" &
	PID=$!
	local i
	for ((i = 0; i < 6000; i++)); do
		mountpoint -q "$MNT" && [[ -f $MNT/.dicomfs/status.json ]] && return 0
		kill -0 "$PID" 2>/dev/null || die "the mount exited: $(cat "$W/log")"
		sleep 0.1
	done
	die "not mounted after 600 s"
}
stop() { fusermount3 -u "$MNT"; wait "$PID"; PID=; }

log "first build of $N instances"
start
PEAK=$(field "$PID" VmHWM)
A0=$(field "$PID" RssAnon)
stop
log "remount"
start
A1=$(field "$PID" RssAnon)
log "ls -lR patients/"
ls -lR "$MNT/patients" > /dev/null
A2=$(field "$PID" RssAnon)
log "query/instances/manifest.csv"
wc -c < "$MNT/query/instances/manifest.csv" > "$W/mbytes"
A3=$(field "$PID" RssAnon)
H=$(field "$PID" VmHWM)
stop
printf '\n%-60s %12s\n' "mount process, $N instances" "memory"
printf '%-60s %12s\n' "first build: peak resident (VmHWM)" "$(mib "$PEAK")"
printf '%-60s %12s\n' "first build: anonymous when mounted (RssAnon)" "$(mib "$A0")"
printf '%-60s %12s\n' "remount: anonymous" "$(mib "$A1")"
printf '%-60s %12s\n' "+ ls -lR patients/: anonymous" "$(mib "$A2")"
printf '%-60s %12s\n' "+ read of query/instances/manifest.csv ($(cat "$W/mbytes") B): anonymous" "$(mib "$A3")"
printf '%-60s %12s\n' "remount: peak resident (VmHWM)" "$(mib "$H")"
