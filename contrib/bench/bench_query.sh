#!/usr/bin/env bash
# bench_query.sh [N] - query latency: the first listing (`ls -l`, i.e.
# readdirplus + lstat of every entry, manifests generated for their sizes)
# of query/ directories on an N-instance index (default 100000), against a
# pydicom scan answering the same query over the source files.
#
# The pydicom side reads a SAMPLE of the files (SAMPLE, default 3000,
# evenly spread) with stop_before_pixels, evaluates the filter and
# extrapolates the time to all N files (said so in the output).
#
# The archive is tests/gen_archive.py --count N in
# ${BENCH_DIR:-/var/tmp/dicomfs-bench}/archive-N (reused when present);
# the index is kept in $BENCH_DIR/idx-query-N.
# Environment: DICOMFS, BENCH_DIR, PYTHON, SAMPLE, RUNS (default 3).
set -u -o pipefail
export LC_ALL=C
N=${1:-100000}
RUNS=${RUNS:-3}
SAMPLE=${SAMPLE:-3000}
BENCH_DIR=${BENCH_DIR:-/var/tmp/dicomfs-bench}
PY=${PYTHON:-/usr/bin/python3}
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)
DICOMFS=${DICOMFS:-$ROOT/dicomfs}
log() { printf '[bench_query %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
[[ -x $DICOMFS ]] || die "no dicomfs binary at $DICOMFS"
ARCH=$BENCH_DIR/archive-$N
IDX=$BENCH_DIR/idx-query-$N
MNT=$(mktemp -d /tmp/dicomfs-bench-query.XXXXXX)
PID=
cleanup() {
	mountpoint -q "$MNT" && fusermount3 -u "$MNT"
	[[ -n $PID ]] && wait "$PID" 2>/dev/null
	rmdir "$MNT" 2>/dev/null
}
trap cleanup EXIT
if [[ ! -f $ARCH.done ]]; then
	log "generating $N instances in $ARCH"
	"$PY" "$ROOT/tests/gen_archive.py" "$ARCH" --count "$N" >/dev/null || die "gen_archive failed"
	touch "$ARCH.done"
fi
mount_it() {
	"$DICOMFS" -f -o quiet -o index="$IDX" "$ARCH" "$MNT" 2>"$BENCH_DIR/bench_query.log" &
	PID=$!
	for _ in $(seq 6000); do mountpoint -q "$MNT" && return 0; sleep 0.05; done
	die "mount not ready"
}
umount_it() { fusermount3 -u "$MNT"; wait "$PID"; PID=; }
now() { printf '%s' "$EPOCHREALTIME"; }
ms_since() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.1f", (b-a)*1000}'; }

QUERIES=(
	"studies/PatientName=pat^p00*"
	"series/StudyDate=20230101/PatientID=ID012*"
	"instances/SeriesInstanceUID=2.25.31415926.9.1250.2.1"
	"series/Modality=CT/StudyDate=20230101-20230102/SeriesNumber=2/PatientID=ID04*"
	"studies/ModalitiesInStudy=CT"
)
log "building / checking the index (first time: a full scan of $N files)"
a=$(now); mount_it; log "mount ready in $(ms_since "$a") ms"; umount_it

printf '%-78s %10s %10s %8s %12s %9s\n' query "cold_ms" "first_ms" matches "pydicom_s" "speedup"
for q in "${QUERIES[@]}"; do
	cold=(); first=()
	for r in $(seq "$RUNS"); do
		# cold: a fresh mount, this is its first query (loads the table)
		mount_it
		a=$(now); n=$(ls -l "$MNT/query/$q" | grep -c '^l'); cold+=("$(ms_since "$a")")
		# first listing of a new query dir on a warm mount
		a=$(now); ls -l "$MNT/query/$q/InstanceNumber=" >/dev/null; first+=("$(ms_since "$a")")
		umount_it
	done
	cm=$(printf '%s\n' "${cold[@]}" | sort -g | awk '{v[NR]=$1} END{print v[int((NR+1)/2)]}')
	fm=$(printf '%s\n' "${first[@]}" | sort -g | awk '{v[NR]=$1} END{print v[int((NR+1)/2)]}')
	# pydicom over a sample of the sources, extrapolated to N
	ps=$("$PY" - "$ARCH" "$q" "$SAMPLE" "$N" <<'PYEOF'
import os, re, sys, time, warnings, fnmatch
warnings.filterwarnings("ignore")
import pydicom
arch, q, sample, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
files = []
for r, d, f in os.walk(arch):
    d.sort()
    files += [os.path.join(r, x) for x in sorted(f)]
step = max(1, len(files) // sample)
pick = files[::step][:sample]
terms = [c.split("=", 1) for c in q.split("/")[1:]]
def ok(ds):
    for k, v in terms:
        if k == "ModalitiesInStudy":
            k = "Modality"
        x = str(ds.get(k, ""))
        if "-" in v and k.endswith("Date"):
            a, b = v.split("-")
            if not ((not a or x >= a) and (not b or x <= b)):
                return False
        elif not fnmatch.fnmatchcase(x.lower() if k == "PatientName" else x, v):
            return False
    return True
t = time.perf_counter()
hits = 0
for p in pick:
    ds = pydicom.dcmread(p, stop_before_pixels=True)
    hits += ok(ds)
dt = time.perf_counter() - t
print("%.2f" % (dt / len(pick) * n))
PYEOF
)
	sp=$(awk -v p="$ps" -v c="$cm" 'BEGIN{printf "%.0fx", p*1000/c}')
	printf '%-78s %10s %10s %8s %12s %9s\n' "$q" "$cm" "$fm" "$n" "$ps" "$sp"
done
echo "cold_ms: ls -l of the query dir as the first query of a fresh mount (loads the"
echo "  instance table); first_ms: first ls -l of a new sub-query on a warm mount;"
echo "  pydicom_s: a pydicom scan (stop_before_pixels) of $SAMPLE sampled files,"
echo "  extrapolated to $N files; speedup = pydicom_s / cold_ms (medians of $RUNS)."
