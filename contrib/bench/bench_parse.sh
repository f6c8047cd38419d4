#!/usr/bin/env bash
# bench_parse.sh [N] - the index build's parse phase, C header walker
# (index/dicom/dcmelem.h) against GDCM's walk, side by side in one run
# (issue 17).
#   1. contrib/bench/parsebench over the archive's files: scan.c's parse_one
#      per file in one thread, C walker vs GDCM forced vs the floor of
#      open+read 16 KiB (files/s of wall and of CPU time; records compared).
#   2. RUNS fresh index builds with each walker, alternating (DICOMFS_JSON_GDCM=1
#      for GDCM): status.json's files_per_second and phases walk / parse /
#      tree / commit, medians.
# The archive is tests/gen_archive.py --count N (default 20000), cached in
# $BENCH_DIR/archive-N as bench_index.sh caches it.
# Environment: RUNS (default 3), ROUNDS (parsebench rounds, default 3),
# DICOMFS, BENCH_DIR, PYTHON (lib.sh).
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

N=${1:-20000}
RUNS=${RUNS:-3}
ROUNDS=${ROUNDS:-3}
bench_dicomfs
PB=$(dirname "$DICOMFS")/contrib/bench/parsebench
[[ -x $PB ]] || die "no $PB: make contrib/bench/parsebench"
export DICOMFS_GDCM=${DICOMFS_GDCM:-$(dirname "$DICOMFS")/dicomfs-gdcm.so}
ARCHIVE=$BENCH_DIR/archive-$N
mkdir -p "$BENCH_DIR"
if [[ ! -d $ARCHIVE ]]; then
	log "generating $N files into $ARCHIVE ..."
	"$PY" "$GEN" "$ARCHIVE.tmp" --count "$N" >/dev/null && mv "$ARCHIVE.tmp" "$ARCHIVE" ||
		die "generator failed"
fi
TMP=$(mktemp -d "$BENCH_DIR/parse.XXXXXX") || die "mktemp failed"
MNT=$TMP/mnt
mkdir -p "$MNT"
DPID=
cleanup() {
	mountpoint -q "$MNT" 2>/dev/null && fusermount3 -u "$MNT"
	[[ -n $DPID ]] && wait "$DPID" 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT
find "$ARCHIVE" -type f -print0 | sort -z >"$TMP/list"
NF=$(tr -cd '\0' <"$TMP/list" | wc -c)
find "$ARCHIVE" -type f -print0 | xargs -0 cat >/dev/null   # warm

log "1. parsebench ($NF files, $ROUNDS rounds) ..."
"$PB" "$TMP/list" "$ROUNDS" || die "parsebench: the walkers' records differ"

# build MODE: one fresh index build; prints "fps walk parse tree commit"
build() {
	local idx=$TMP/idx.$RANDOM$RANDOM
	if [[ $1 = gdcm ]]; then
		DICOMFS_JSON_GDCM=1 "$DICOMFS" -f -o "index=$idx" "$ARCHIVE" "$MNT" >>"$TMP/log" 2>&1 &
	else
		DICOMFS_JSON_GDCM= "$DICOMFS" -f -o "index=$idx" "$ARCHIVE" "$MNT" >>"$TMP/log" 2>&1 &
	fi
	DPID=$!
	local t=0
	until mountpoint -q "$MNT"; do
		sleep 0.05
		t=$((t + 1))
		((t > 6000)) && die "not mounted after 300 s"
		kill -0 "$DPID" 2>/dev/null || die "dicomfs exited (see $TMP/log)"
	done
	"$PY" - "$MNT/.dicomfs/status.json" <<'PYEOF'
import json, sys
d = json.load(open(sys.argv[1]))
def f(k):
    def find(o):
        if isinstance(o, dict):
            if k in o: return o[k]
            o = list(o.values())
        if isinstance(o, list):
            for v in o:
                r = find(v)
                if r is not None: return r
        return None
    return find(d)
print(*[f(k) for k in ("files_per_second", "walk_seconds", "parse_seconds", "tree_seconds", "commit_seconds")])
PYEOF
	fusermount3 -u "$MNT"
	wait "$DPID" 2>/dev/null
	DPID=
	rm -rf "$idx" "$idx"-lock
}

log "2. index builds, $RUNS per walker, alternating ..."
: >"$TMP/c"; : >"$TMP/gdcm"
for ((r = 0; r < RUNS; r++)); do
	for m in gdcm c; do
		line=$(build $m)
		log "   $m: files/s walk parse tree commit = $line"
		echo "$line" >>"$TMP/$m"
	done
done
col() { awk -v c="$2" '{print $c}' "$1" | median; }
printf '\nindex build, %s files, %s runs each (medians of status.json)\n' "$NF" "$RUNS"
printf '%-14s %10s %8s %8s %8s %8s\n' walker files/s walk parse tree commit
for m in gdcm c; do
	printf '%-14s %10.0f %8.3f %8.3f %8.3f %8.3f\n' "$m" "$(col "$TMP/$m" 1)" "$(col "$TMP/$m" 2)" \
		"$(col "$TMP/$m" 3)" "$(col "$TMP/$m" 4)" "$(col "$TMP/$m" 5)"
done
printf 'ratio C/GDCM: build files/s %s, parse phase time %s\n' \
	"$(ratio "$(col "$TMP/c" 1)" "$(col "$TMP/gdcm" 1)")" \
	"$(ratio "$(col "$TMP/c" 3)" "$(col "$TMP/gdcm" 3)")"
