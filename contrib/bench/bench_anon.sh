#!/usr/bin/env bash
# bench_anon.sh [N] - anon/ (README "De-identified view"), side by side in
# one run on an N-file archive (default 2000; tests/gen_archive.py --count:
# 64x64 16-bit CT, explicit VR little endian), each figure on a fresh mount
# (the index built beforehand), warm page cache for the sources:
#   ls -lR anon/ vs ls -lR patients/   (getattr: anon reads each header)
#   cat of every anon .dcm vs cat of every patients/ .dcm
#   cat of every anon .dcm vs gdcmanon writing a de-identified copy of the
#     archive (gdcmanon -e -r, one process, a throw-away certificate)
# Prints the times, the ratios, and MB/s. Environment: DICOMFS=path,
# BENCH_DIR=dir (archives kept there), RUNS=n (default 3, median),
# GRUNS=n (gdcmanon runs, default 1).
set -u -o pipefail
export LC_ALL=C
N=${1:-2000}
RUNS=${RUNS:-3}
GRUNS=${GRUNS:-1}
BENCH_DIR=${BENCH_DIR:-/var/tmp/dicomfs-bench}
PY=${PYTHON:-/usr/bin/python3}
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)
DICOMFS=${DICOMFS:-$ROOT/dicomfs}
log() { printf '[bench_anon %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
[[ -x $DICOMFS ]] || die "no dicomfs binary at $DICOMFS"
command -v gdcmanon >/dev/null || die "gdcmanon not found (libgdcm-tools)"

now() { printf '%s' "${EPOCHREALTIME}"; }
timeit() { # VAR cmd...
	local __v=$1 a b; shift
	a=$(now); "$@" >/dev/null 2>&1; b=$(now)
	printf -v "$__v" '%s' "$(awk -v a="$a" -v b="$b" 'BEGIN{printf "%.6f", b-a}')"
}
median() { sort -g | awk '{v[NR]=$1} END{print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b > 0) printf "%.2f", a/b; else print "-" }'; }
mbs() { awk -v by="$1" -v s="$2" 'BEGIN{ if (s > 0) printf "%.1f", by/s/1e6; else print "-" }'; }

ARCH=$BENCH_DIR/uniform-$N
if [[ ! -f $ARCH/.complete ]]; then
	log "generating $N files in $ARCH"
	rm -rf "$ARCH" && mkdir -p "$ARCH" || die "cannot create $ARCH"
	"$PY" "$ROOT/tests/gen_archive.py" "$ARCH" --count "$N" >/dev/null || die "gen_archive failed"
	touch "$ARCH/.complete"
fi
T=$(mktemp -d "${TMPDIR:-/tmp}/bench-anon.XXXXXX")
MNT=$T/m
mkdir -p "$MNT"
trap 'fusermount3 -u "$MNT" 2>/dev/null; rm -rf "$T"' EXIT
printf 'bench_anon key: not a secret, long enough' >"$T/key"
mnt() { "$DICOMFS" -o index="$T/idx" -o quiet -o anon_key="$T/key" "$ARCH" "$MNT" || die "mount"; }
umnt() { fusermount3 -u "$MNT"; }
readall() { find "$MNT/$1" -name '*.dcm' -print0 | xargs -0 cat >/dev/null; }
lsr() { ls -lR "$MNT/$1" >/dev/null; }

log "building the index"
mnt; umnt
find "$ARCH" -type f -print0 | xargs -0 cat >/dev/null   # warm sources
for what in "lsr patients" "lsr anon" "readall patients" "readall anon"; do
	vals=()
	for r in $(seq "$RUNS"); do
		mnt; timeit t $what; umnt
		vals+=("$t")
	done
	key=${what// /_}
	printf -v "T_$key" '%s' "$(printf '%s\n' "${vals[@]}" | median)"
done
mnt
bytes_p=$(find "$MNT/patients" -name '*.dcm' -printf '%s\n' | awk '{s+=$1} END{print s}')
bytes_a=$(find "$MNT/anon" -name '*.dcm' -printf '%s\n' | awk '{s+=$1} END{print s}')
umnt

log "gdcmanon writing a de-identified copy"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$T/k.pem" -out "$T/c.pem" \
	-subj /CN=bench -days 1 2>/dev/null
gvals=()
for r in $(seq "$GRUNS"); do
	rm -rf "$T/g"; mkdir -p "$T/g"
	a=$(now)
	gdcmanon -e -c "$T/c.pem" -r --continue -i "$ARCH" -o "$T/g" >/dev/null 2>&1
	b=$(now)
	gvals+=("$(awk -v a="$a" -v b="$b" 'BEGIN{printf "%.6f", b-a}')")
done
T_g=$(printf '%s\n' "${gvals[@]}" | median)

echo "bench_anon: $N files, median of $RUNS (gdcmanon: $GRUNS), fresh mount each"
printf '%-42s %10s %10s %8s\n' "measurement" "anon/ s" "baseline s" "ratio"
printf '%-42s %10.3f %10.3f %8s\n' "ls -lR anon/ vs ls -lR patients/" "$T_lsr_anon" "$T_lsr_patients" \
	"$(ratio "$T_lsr_patients" "$T_lsr_anon")"
printf '%-42s %10.3f %10.3f %8s\n' "cat every .dcm: anon/ vs patients/" "$T_readall_anon" \
	"$T_readall_patients" "$(ratio "$T_readall_patients" "$T_readall_anon")"
printf '%-42s %10.3f %10.3f %8s\n' "cat every anon .dcm vs gdcmanon copy" "$T_readall_anon" "$T_g" \
	"$(ratio "$T_g" "$T_readall_anon")"
echo "throughput: anon/ $(mbs "$bytes_a" "$T_readall_anon") MB/s, patients/ $(mbs "$bytes_p" "$T_readall_patients") MB/s"
echo "(ratio = baseline time / anon/ time: above 1, anon/ is faster)"
