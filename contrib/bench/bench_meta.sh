#!/usr/bin/env bash
# bench_meta.sh [N] - `ls -l` of one N-instance series directory (default
# 1000) through a dicomfs mount against the same directory copied to tmpfs,
# first listing (fresh mount) and second listing (right after); also the
# study directory above it (its study.json / study.fhir.json are generated
# for the listing) and reading the level files.
#
# The archive (one patient, one study, one series of N 64x64 CT files, the
# files of tests/gen_archive.py --count) is made once and kept in
# ${BENCH_DIR:-/var/tmp/dicomfs-bench}/series-N.
#
# Environment: DICOMFS=path, BENCH_DIR=dir, RUNS=n (default 5; first
# listings: one fresh mount each), PYTHON=path (/usr/bin/python3).
set -u -o pipefail
export LC_ALL=C

N=${1:-1000}
case $N in '' | *[!0-9]*) echo "usage: $0 [N]" >&2; exit 2 ;; esac
RUNS=${RUNS:-5}
BENCH_DIR=${BENCH_DIR:-/var/tmp/dicomfs-bench}
PY=${PYTHON:-/usr/bin/python3}
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)
GEN=$ROOT/tests/gen_archive.py

log() { printf '[bench_meta %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

if [[ -z ${DICOMFS:-} ]]; then
	if [[ -x ./dicomfs && ! -d ./dicomfs ]]; then DICOMFS=$PWD/dicomfs
	else DICOMFS=$ROOT/dicomfs; fi
fi
[[ -x $DICOMFS ]] || die "no dicomfs binary at $DICOMFS"
[[ $DICOMFS = /* ]] || DICOMFS=$PWD/$DICOMFS
command -v fusermount3 >/dev/null || die "fusermount3 not found"
[[ -e /dev/fuse ]] || die "/dev/fuse missing"

now() { printf '%s' "${EPOCHREALTIME:-$(date +%s.%N)}"; }
# timeit VAR cmd...: VAR = elapsed seconds
timeit() {
	local __v=$1 a b; shift
	a=$(now); "$@" >/dev/null 2>&1; b=$(now)
	printf -v "$__v" '%s' "$(awk -v a="$a" -v b="$b" 'BEGIN{printf "%.6f", b-a}')"
}
median() { sort -g | awk '{v[NR]=$1} END{print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
ms() { awk -v s="$1" 'BEGIN{printf "%.2f", s*1000}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b > 0) printf "%.2f", a/b; else print "-" }'; }

# ---------------------------------------------------------------- archive
ARCH=$BENCH_DIR/series-$N
if [[ ! -f $ARCH/.complete ]]; then
	log "writing a $N-instance series to $ARCH"
	rm -rf "$ARCH"
	mkdir -p "$ARCH" || die "cannot create $ARCH"
	"$PY" - "$GEN" "$ARCH" "$N" <<'EOF' || die "generating the series failed"
import importlib.util, os, sys
gen, out, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
spec = importlib.util.spec_from_file_location("gen_archive", gen)
g = importlib.util.module_from_spec(spec)
spec.loader.exec_module(g)
pix = g.big_pixels(0)
d = os.path.join(out, "P0000", "S1", "SE1")
os.makedirs(d)
for k in range(1, n + 1):
    p = os.path.join(d, "IM%05d" % k)
    with open(p, "wb") as f:
        f.write(g.big_bytes(0, 0, 0, k, pix))
    os.utime(p, (g.BASE_MTIME + k, g.BASE_MTIME + k))
EOF
	touch "$ARCH/.complete"
fi

RUN=$(mktemp -d "$BENCH_DIR/run.XXXXXX") || die "mktemp failed"
MNT=$RUN/mnt
SHM=$(mktemp -d /dev/shm/dicomfs-bench-meta.XXXXXX) || die "mktemp in /dev/shm failed"
PID=
cleanup() {
	if [[ -n $PID ]]; then
		fusermount3 -u "$MNT" 2>/dev/null || fusermount3 -u -z "$MNT" 2>/dev/null
		wait "$PID" 2>/dev/null
	fi
	rm -rf "$RUN" "$SHM"
}
trap cleanup EXIT
mkdir -p "$MNT"

mount_fs() {
	"$DICOMFS" -f -o index="$RUN/idx" "$ARCH" "$MNT" >"$RUN/dicomfs.log" 2>&1 &
	PID=$!
	for _ in $(seq 6000); do
		mountpoint -q "$MNT" && return 0
		kill -0 "$PID" 2>/dev/null || { cat "$RUN/dicomfs.log" >&2; die "dicomfs exited"; }
		sleep 0.05
	done
	die "mount not ready"
}
umount_fs() {
	fusermount3 -u "$MNT" || die "unmount failed"
	wait "$PID"
	PID=
}

log "indexing (first mount)"
mount_fs
STUDY=$(find "$MNT/patients" -mindepth 2 -maxdepth 2 -type d | head -1)
SERIES=$(find "$STUDY" -mindepth 1 -maxdepth 1 -type d | head -1)
[[ -n $SERIES ]] || die "no series directory in the mount"
NENT=$(ls "$SERIES" | wc -l)
NDCM=$(ls "$SERIES" | grep -c '\.dcm$')
log "series: $NDCM instances, $NENT entries: ${SERIES#$MNT/}"
cp -a "$STUDY" "$SHM/study" || die "copy to tmpfs failed"
SHM_STUDY=$SHM/study
SHM_SERIES=$SHM_STUDY/$(basename "$SERIES")
umount_fs

first_series=() second_series=() first_study=() second_study=() cat_fhir=()
for r in $(seq "$RUNS"); do
	mount_fs
	timeit t ls -l "$SERIES"; first_series+=("$t")
	timeit t ls -l "$SERIES"; second_series+=("$t")
	timeit t ls -l "$STUDY"; first_study+=("$t")
	timeit t ls -l "$STUDY"; second_study+=("$t")
	timeit t cat "$STUDY/study.fhir.json" "$STUDY/study.json" "$SERIES/series.json"
	cat_fhir+=("$t")
	umount_fs
done
tmp_series=() tmp_study=()
for r in $(seq $((RUNS + 1))); do
	timeit t ls -l "$SHM_SERIES"; tmp_series+=("$t")
	timeit t ls -l "$SHM_STUDY"; tmp_study+=("$t")
done
med() { printf '%s\n' "$@" | median; }
F_SE=$(med "${first_series[@]}") S_SE=$(med "${second_series[@]}")
F_ST=$(med "${first_study[@]}") S_ST=$(med "${second_study[@]}")
T_SE=$(med "${tmp_series[@]}") T_ST=$(med "${tmp_study[@]}")
CAT=$(med "${cat_fhir[@]}")
FH=$(stat -c %s "$SHM_STUDY/study.fhir.json")

printf '\nls -l of a %d-instance series directory (%d entries), median of %d runs\n' "$NDCM" "$NENT" "$RUNS"
printf '%-34s %10s %10s %18s\n' "what" "mount ms" "tmpfs ms" "tmpfs/mount"
printf '%-34s %10s %10s %18s\n' "series dir, first (fresh mount)" "$(ms "$F_SE")" "$(ms "$T_SE")" "$(ratio "$T_SE" "$F_SE")"
printf '%-34s %10s %10s %18s\n' "series dir, second" "$(ms "$S_SE")" "$(ms "$T_SE")" "$(ratio "$T_SE" "$S_SE")"
printf '%-34s %10s %10s %18s\n' "study dir, first (level files)" "$(ms "$F_ST")" "$(ms "$T_ST")" "$(ratio "$T_ST" "$F_ST")"
printf '%-34s %10s %10s %18s\n' "study dir, second" "$(ms "$S_ST")" "$(ms "$T_ST")" "$(ratio "$T_ST" "$S_ST")"
printf '%-34s %10s\n' "cat study.fhir.json ($FH B) + 2" "$(ms "$CAT")"
