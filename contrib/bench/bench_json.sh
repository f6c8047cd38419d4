#!/usr/bin/env bash
# bench_json.sh [N] - <instance>.json throughput and its indexing cost.
#
# On an archive of N generated files (default 20000, cached under
# $BENCH_DIR/archive-N as bench_index.sh does), in one run:
#   1. index build time with the JSON sizing (normal) and without it
#      (DICOMFS_NO_JSON=1, a benchmark knob: no .json files then), fresh
#      index, warm page cache, median of RUNS;
#   2. JSON files/s produced by the mount: read every instance .json once
#      on a fresh mount (each open regenerates the JSON from the source
#      header), with readfloor -a (open + read to EOF + close, no per-file
#      process costs), 1 and 2 threads;
#   3. pydicom on a sample of the same sources: dcmread + to_json_dict (bulk
#      data above 1024 bytes as a URI, like ours) + json.dumps, files/s;
# and prints the figures and ratios (target: mount >= 10x pydicom).
#
# Environment: DICOMFS, BENCH_DIR (/var/tmp/dicomfs-bench), RUNS (3),
# PYDICOM_SAMPLE (2000), PYTHON (/usr/bin/python3), GEN.
set -u -o pipefail
export LC_ALL=C

N=${1:-20000}
case $N in '' | *[!0-9]*) echo "usage: $0 [N]" >&2; exit 2 ;; esac
RUNS=${RUNS:-3}
BENCH_DIR=${BENCH_DIR:-/var/tmp/dicomfs-bench}
PY=${PYTHON:-/usr/bin/python3}
SAMPLE=${PYDICOM_SAMPLE:-2000}
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)
GEN=${GEN:-$ROOT/tests/gen_archive.py}

log() { printf '[bench_json %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
now() { printf '%s\n' "${EPOCHREALTIME:-$(date +%s.%N)}"; }
calc() { awk "BEGIN{ printf \"%.3f\", $* }"; }
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END{ print v[int((NR+1)/2)] }'; }

if [[ -z ${DICOMFS:-} ]]; then
	if [[ -x ./dicomfs && ! -d ./dicomfs ]]; then DICOMFS=$PWD/dicomfs; else DICOMFS=$ROOT/dicomfs; fi
fi
[[ -x $DICOMFS ]] || die "no dicomfs binary at $DICOMFS"
[[ $DICOMFS = /* ]] || DICOMFS=$PWD/$DICOMFS
[[ -e /dev/fuse ]] || die "/dev/fuse missing"

ARCH=$BENCH_DIR/archive-$N
mkdir -p "$BENCH_DIR"
if [[ ! -e $ARCH.done ]]; then
	log "generating $N files into $ARCH"
	rm -rf "$ARCH"
	"$PY" "$GEN" "$ARCH" --count "$N" >/dev/null || die "gen_archive.py failed"
	touch "$ARCH.done"
fi
WORK=$(mktemp -d "$BENCH_DIR/json.XXXXXX")
MNT=$WORK/mnt
PID=
cleanup() {
	[[ -n $PID ]] && { fusermount3 -u "$MNT" 2>/dev/null; wait "$PID" 2>/dev/null; }
	rm -rf "$WORK"
}
trap cleanup EXIT
mkdir -p "$MNT"

mount_it() { # mount_it INDEXDIR [env...]: mount, wait; prints build seconds
	env "${@:2}" "$DICOMFS" -f -o index="$1" "$ARCH" "$MNT" >"$WORK/log" 2>&1 </dev/null &
	PID=$!
	for _ in $(seq 6000); do
		mountpoint -q "$MNT" && break
		kill -0 "$PID" 2>/dev/null || die "dicomfs exited: $(cat "$WORK/log")"
		sleep 0.05
	done
	"$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["build_seconds"])' \
		"$MNT/.dicomfs/status.json"
}
umount_it() { fusermount3 -u "$MNT"; wait "$PID" 2>/dev/null; PID=; }

log "warming the page cache"
find "$ARCH" -type f -print0 | xargs -0 cat >/dev/null

declare -a with without
for r in $(seq "$RUNS"); do
	rm -rf "$WORK/idx"; with+=("$(mount_it "$WORK/idx")"); umount_it
	rm -rf "$WORK/idx"; without+=("$(mount_it "$WORK/idx" DICOMFS_NO_JSON=1)"); umount_it
	log "index build run $r: ${with[-1]} s with JSON, ${without[-1]} s without"
done
T_WITH=$(median "${with[@]}")
T_WITHOUT=$(median "${without[@]}")

RF=${READFLOOR:-$BENCH_DIR/readfloor}
if [[ ! -x $RF ]]; then
	gcc -O2 -pthread -o "$RF" "$SCRIPT_DIR/readfloor.c" || die "cannot build readfloor"
fi
# read_all THREADS: files/s of open + read to EOF + close of every .json
# (readfloor -a: no per-file process costs), on a fresh mount
read_all() {
	rm -rf "$WORK/idx"
	mount_it "$WORK/idx" >/dev/null
	(cd "$MNT/patients" && find "$PWD" -name '*.dcm' -print0 | sed -z 's/\.dcm$/.json/' | sort -z) >"$WORK/list"
	"$RF" -a -0 -q -t "$1" "$WORK/list"
	umount_it
}
NJ=$(find "$ARCH" -type f | wc -l)
log "reading every .json (1 reader, fresh mount)"
R1=$(read_all 1) || die "readfloor failed"
log "reading every .json (2 readers, fresh mount)"
R2=$(read_all 2) || die "readfloor failed"
NJ=$(tr -cd '\0' <"$WORK/list" | wc -c)

log "pydicom: dcmread + to_json_dict + json.dumps on $SAMPLE files"
PYRATE=$("$PY" - "$ARCH" "$SAMPLE" <<'EOF'
import os, sys, time, json, warnings
warnings.simplefilter("ignore")
import pydicom
arch, n = sys.argv[1], int(sys.argv[2])
files = []
for root, _, fs in os.walk(arch):
    for f in sorted(fs):
        files.append(os.path.join(root, f))
files.sort()
step = max(1, len(files) // n)
files = files[::step][:n]
t = time.perf_counter()
for p in files:
    ds = pydicom.dcmread(p, force=True)
    json.dumps(ds.to_json_dict(bulk_data_threshold=1024,
                               bulk_data_element_handler=lambda e: "bulk"))
print("%.3f" % (len(files) / (time.perf_counter() - t)))
EOF
) || die "pydicom run failed"

cat <<EOF

dicomfs <instance>.json benchmark ($N source files, $NJ instances; $(nproc) CPUs)
  index build, with JSON sizing     ${T_WITH} s  ($(calc "$N / $T_WITH") files/s)
  index build, DICOMFS_NO_JSON=1    ${T_WITHOUT} s  ($(calc "$N / $T_WITHOUT") files/s)
  JSON cost at index time           x$(calc "$T_WITH / $T_WITHOUT") build time
  mount, 1 reader                   ${R1} JSON files/s
  mount, 2 readers                  ${R2} JSON files/s
  pydicom (sample of $SAMPLE)          ${PYRATE} files/s
  ratio mount/pydicom, 1 reader     $(calc "$R1 / $PYRATE")x   (target >= 10x)
  ratio mount/pydicom, 2 readers    $(calc "$R2 / $PYRATE")x
EOF
