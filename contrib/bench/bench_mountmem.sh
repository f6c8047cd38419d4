#!/usr/bin/env bash
# bench_mountmem.sh - memory of a dicomfs mount of N instances (issue 17):
#   1. the first index build: peak resident (VmHWM) of the mount process
#      (parser processes not included);
#   2. a remount of the unchanged archive; the query catalog loaded (an
#      empty query waits for it, fs/catalog.h C1); one `ls -lR` of
#      patients/; one read of query/instances/manifest.csv, then of
#      manifest.jsonl: anonymous memory (RssAnon: the LMDB map is
#      file-backed and not counted) after each, and the seconds each read
#      of a manifest took.
# With BASELINE=<another dicomfs binary> the same steps run with it too, on
# an index of its own, side by side in one run, and the table shows both
# and the ratio (memory is not timing: the figures are steady between runs;
# the read times are not, compare their ratio only).
# Then the first build again with -o build_mem=MB for each of BUILD_MEMS
# (default "16 64 256"; index.h I13: the tree in parts) and with none:
# its parts, peak resident, anonymous peak (RssAnon sampled every 10 ms
# while it builds) and build seconds (status.json), dicomfs only.
# The mount runs in the foreground (-f) so its own /proc status is read.
# Environment: DICOMFS (default: the tree's ./dicomfs), BASELINE, BENCH_DIR
# (default /var/tmp/dicomfs-bench), N (default 100000; the archive-N of
# tests/gen_archive.py --count N, made when missing), PYTHON.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_dicomfs
N=${N:-100000}
BASELINE=${BASELINE:-}
[[ -z $BASELINE || -x $BASELINE ]] || die "no baseline binary at $BASELINE"
ARCH=$BENCH_DIR/archive-$N
mkdir -p "$BENCH_DIR"
if [[ ! -f $ARCH.done ]]; then
	log "generating $N files into $ARCH"
	rm -rf "$ARCH"
	"$PY" "$GEN" "$ARCH" --count "$N" >/dev/null || die "gen_archive.py failed"
	touch "$ARCH.done"
fi
W=$(mktemp -d "$BENCH_DIR/mem.XXXXXX")
MNT=$W/mnt
mkdir -p "$MNT"
PID=
cleanup() { mountpoint -q "$MNT" && fusermount3 -u "$MNT"; [[ -n $PID ]] && wait "$PID" 2>/dev/null; rm -rf "$W"; }
trap cleanup EXIT

field() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }   # kB
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
ANON_PEAK=0
exec {NAP_FD}<> <(:)   # read -t on it: a 10 ms wait without a fork
start() {   # start BINARY INDEX [options]: ANON_PEAK = RssAnon's peak (kB, sampled)
	local bin=$1 idx=$2 k v _
	shift 2
	"$bin" -f -o index="$idx" -o quiet "$@" "$ARCH" "$MNT" 2>>"$W/log" &
	PID=$!
	ANON_PEAK=0
	local i
	for ((i = 0; i < 60000; i++)); do
		[[ -f $MNT/.dicomfs/status.json ]] && mountpoint -q "$MNT" && return 0
		kill -0 "$PID" 2>/dev/null || die "the mount exited: $(cat "$W/log")"
		while read -r k v _; do
			[[ $k == RssAnon: ]] && ((v > ANON_PEAK)) && ANON_PEAK=$v
		done < "/proc/$PID/status"
		read -rt 0.01 -u "$NAP_FD" _ || :
	done
	die "not mounted after 600 s"
}
stop() { fusermount3 -u "$MNT"; wait "$PID"; PID=; }

# run NAME BINARY: the steps; figures in R_<NAME>_<step>
run() {
	local n=$1 bin=$2 t
	log "$n: first build of $N instances"
	start "$bin" "$W/idx-$n"
	printf -v "R_${n}_peak" '%s' "$(field "$PID" VmHWM)"
	printf -v "R_${n}_built" '%s' "$(field "$PID" RssAnon)"
	stop
	log "$n: remount"
	start "$bin" "$W/idx-$n"
	printf -v "R_${n}_remount" '%s' "$(field "$PID" RssAnon)"
	ls "$MNT/query/instances/Modality=NONE" >/dev/null 2>&1
	printf -v "R_${n}_catalog" '%s' "$(field "$PID" RssAnon)"
	log "$n: ls -lR patients/"
	ls -lR "$MNT/patients" >/dev/null
	printf -v "R_${n}_lslr" '%s' "$(field "$PID" RssAnon)"
	log "$n: query/instances/manifest.csv, manifest.jsonl"
	timeit t cat "$MNT/query/instances/manifest.csv"
	printf -v "R_${n}_csvs" '%s' "$t"
	MBYTES=$(stat -c %s "$MNT/query/instances/manifest.csv")
	printf -v "R_${n}_csv" '%s' "$(field "$PID" RssAnon)"
	timeit t cat "$MNT/query/instances/manifest.jsonl"
	printf -v "R_${n}_jss" '%s' "$t"
	JBYTES=$(stat -c %s "$MNT/query/instances/manifest.jsonl")
	printf -v "R_${n}_js" '%s' "$(field "$PID" RssAnon)"
	printf -v "R_${n}_hwm" '%s' "$(field "$PID" VmHWM)"
	stop
}

run new "$DICOMFS"
[[ -n $BASELINE ]] && run base "$BASELINE"

row() {   # row LABEL STEP [raw]
	local new base
	new=R_new_$2
	if [[ ${3:-} == raw ]]; then new=${!new}; else new=$(mib "${!new}"); fi
	if [[ -n $BASELINE ]]; then
		base=R_base_$2
		if [[ ${3:-} == raw ]]; then base=${!base}; else base=$(mib "${!base}"); fi
		printf '%-58s %10s %10s %7s\n' "$1" "$new" "$base" "$(ratio "$new" "$base")"
	else
		printf '%-58s %10s\n' "$1" "$new"
	fi
}
printf '\n%-58s %10s' "mount process, $N instances (MiB; s)" "dicomfs"
[[ -n $BASELINE ]] && printf ' %10s %7s' "baseline" "ratio"
printf '\n'
row "first build: peak resident (VmHWM)" peak
row "first build: anonymous when mounted (RssAnon)" built
row "remount: anonymous" remount
row "+ query catalog loaded: anonymous" catalog
row "+ ls -lR patients/: anonymous" lslr
row "+ read of manifest.csv ($MBYTES B): anonymous" csv
row "+ read of manifest.jsonl ($JBYTES B): anonymous" js
row "remount: peak resident (VmHWM, LMDB pages included)" hwm
row "seconds: read of manifest.csv" csvs raw
row "seconds: read of manifest.jsonl" jss raw

# I13: the first build with -o build_mem
jget() { "$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' \
	"$MNT/.dicomfs/status.json" "$1"; }
printf '\n%-26s %6s %12s %12s %9s\n' "first build, $N instances" parts "VmHWM MiB" "anon peak" seconds
for bm in ${BUILD_MEMS-16 64 256} none; do
	log "first build, -o build_mem=$bm"
	rm -rf "$W/idx-bm"
	if [[ $bm == none ]]; then start "$DICOMFS" "$W/idx-bm"
	else start "$DICOMFS" "$W/idx-bm" -o build_mem="$bm"; fi
	printf '%-26s %6s %12s %12s %9s\n' "-o build_mem=$bm" "$(jget tree_parts)" \
		"$(mib "$(field "$PID" VmHWM)")" "$(mib "$ANON_PEAK")" "$(jget build_seconds)"
	stop
done
