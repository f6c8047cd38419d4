#!/bin/bash
# bench_failfast.sh - issue 12: bad files fail fast and never hold up good
# ones. A mount of mutated files (tests/gen_mutants.py over the generated
# archive, --per 1, plus --codecs 12: compressed images and mutants of
# their codestreams, some of which keep a codec busy for minutes) is read
# whole by 8 readers (tests/readall.py --threads 8) with the baseline
# binary and with this tree's, side by side: total time, slowest read,
# slowest successful read, slowest read of an intact image, and the ratios
# baseline / this tree (KEEP=PREFIX keeps the per-read times).
# The baseline is main's binary built into a temp dir (BASE_REF, default
# main; BASE_BUILD=DIR: a build directory holding dicomfs and
# dicomfs-gdcm.so instead). Root; after a build; needs gdcmconv.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BENCH_DIR=${BENCH_DIR:-/var/tmp/dicomfs-bench}
DICOMFS=${DICOMFS:-$ROOT/dicomfs}
BASE_REF=${BASE_REF:-main}
PY=/usr/bin/python3
log() { printf '[bench_failfast] %s\n' "$*" >&2; }
mkdir -p "$BENCH_DIR"
TMP=$(mktemp -d "$BENCH_DIR/failfast.XXXXXX")
PID=
trap 'fusermount3 -u "$TMP/mnt" 2>/dev/null; [ -n "$PID" ] && wait "$PID" 2>/dev/null; rm -rf "$TMP"' EXIT
mkdir -p "$TMP/mnt"

# the baseline binary
BASE=${BASE_BUILD:-}
if [ -z "$BASE" ]; then
	BASE=$TMP/base
	log "building $BASE_REF into $BASE"
	mkdir -p "$BASE"
	git -C "$ROOT" archive "$BASE_REF" | tar -x -C "$BASE" || exit 1
	(cd "$BASE" && autoreconf -fi && ./configure -q && make -j"$(nproc)") >"$TMP/build.log" 2>&1 ||
		{ log "baseline build failed:"; tail -20 "$TMP/build.log" >&2; exit 1; }
fi
[ -x "$BASE/dicomfs" ] || { log "no baseline binary in $BASE"; exit 1; }

# the corpus
"$PY" "$ROOT/tests/gen_archive.py" "$TMP/src" >/dev/null || exit 1
n=$("$PY" "$ROOT/tests/gen_mutants.py" "$TMP/arch" "$TMP/src" --per 1 --codecs 12 2>/dev/null) || exit 1
log "$n mutated files"

run() { # label binary
	local i t0 t1
	"$2" -f -o quiet,index="$TMP/idx.$1" "$TMP/arch" "$TMP/mnt" 2>"$TMP/log.$1" &
	PID=$!
	for i in $(seq 6000); do mountpoint -q "$TMP/mnt" && break; sleep 0.01; done
	mountpoint -q "$TMP/mnt" || { log "mount failed: $(cat "$TMP/log.$1")"; exit 1; }
	t0=$(date +%s.%N)
	"$PY" "$ROOT/tests/readall.py" "$TMP/mnt" --threads 8 --allow EIO,EAGAIN \
		--times "$TMP/times.$1" >"$TMP/out.$1" 2>&1
	t1=$(date +%s.%N)
	fusermount3 -u "$TMP/mnt"
	wait "$PID" 2>/dev/null
	PID=
	TOTAL[$1]=$(echo "$t1 - $t0" | bc)
	SLOW[$1]=$(head -1 "$TMP/times.$1" | cut -f1)
	GOOD[$1]=$(grep -P '\tok\t.*/uids/.*/2\.25\.12012\.3\.' "$TMP/times.$1" | head -1 | cut -f1)
	OK[$1]=$(grep -P '\tok\t' "$TMP/times.$1" | head -1 | cut -f1)
	[ -z "${KEEP:-}" ] || cp "$TMP/times.$1" "$KEEP.$1"
	OVER[$1]=$(awk -F'\t' '$1 >= 10' "$TMP/times.$1" | wc -l)
	log "$1: $(tail -1 "$TMP/out.$1")"
}
declare -A TOTAL SLOW GOOD OK OVER
run base "$BASE/dicomfs"
run new "$DICOMFS"
ratio() { echo "scale=1; $1 / $2" | bc; }
printf '%-34s %12s %12s %8s\n' "8 readers, $n mutated files" "$BASE_REF" "this tree" "ratio"
printf '%-34s %12s %12s %8s\n' "total time (s)" "${TOTAL[base]}" "${TOTAL[new]}" \
	"$(ratio "${TOTAL[base]}" "${TOTAL[new]}")"
printf '%-34s %12s %12s %8s\n' "slowest read (s)" "${SLOW[base]}" "${SLOW[new]}" \
	"$(ratio "${SLOW[base]}" "${SLOW[new]}")"
printf '%-34s %12s %12s %8s\n' "slowest successful read (s)" "${OK[base]}" "${OK[new]}" \
	"$(ratio "${OK[base]}" "${OK[new]}")"
printf '%-34s %12s %12s %8s\n' "slowest read of an intact image (s)" "${GOOD[base]}" "${GOOD[new]}" \
	"$(ratio "${GOOD[base]}" "${GOOD[new]}")"
printf '%-34s %12s %12s\n' "reads over 10 s" "${OVER[base]}" "${OVER[new]}"
