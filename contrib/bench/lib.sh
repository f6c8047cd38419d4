# contrib/bench/lib.sh - what the bench scripts share. Source it first:
#   . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# It sets: strict mode (set -u -o pipefail, LC_ALL=C); BENCH_DIR (default
# /var/tmp/dicomfs-bench), PY ($PYTHON or /usr/bin/python3), SCRIPT_DIR,
# ROOT (the source tree), GEN (tests/gen_archive.py); log and die (lines
# on stderr named after the script); bench_dicomfs (DICOMFS: $DICOMFS,
# else ./dicomfs, else the tree's; made absolute, must be executable);
# now, timeit, median and ms (below).
set -u -o pipefail
export LC_ALL=C
BENCH_DIR=${BENCH_DIR:-/var/tmp/dicomfs-bench}
PY=${PYTHON:-/usr/bin/python3}
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[1]}")" && pwd)
ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)
GEN=$ROOT/tests/gen_archive.py
BENCH_NAME=$(basename "${BASH_SOURCE[1]}" .sh)

log() { printf '[%s %(%H:%M:%S)T] %s\n' "$BENCH_NAME" -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

bench_dicomfs() {
	if [[ -z ${DICOMFS:-} ]]; then
		if [[ -x ./dicomfs && ! -d ./dicomfs ]]; then DICOMFS=$PWD/dicomfs
		else DICOMFS=$ROOT/dicomfs; fi
	fi
	[[ -x $DICOMFS ]] || die "no dicomfs binary at $DICOMFS"
	[[ $DICOMFS = /* ]] || DICOMFS=$PWD/$DICOMFS
}

# now: seconds since the epoch, microseconds
now() { printf '%s' "${EPOCHREALTIME:-$(date +%s.%N)}"; }
# timeit VAR cmd...: VAR = elapsed seconds of cmd (its output discarded);
# RC = its exit status
timeit() {
	local __v=$1 a b; shift
	a=$(now); "$@" >/dev/null 2>&1; RC=$?; b=$(now)
	printf -v "$__v" '%s' "$(awk -v a="$a" -v b="$b" 'BEGIN{printf "%.6f", b-a}')"
}
# median: of the numbers on stdin (the mean of the middle two for an even count)
median() { sort -g | awk '{v[NR]=$1} END{print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
# ms SECONDS: in milliseconds, one decimal
ms() { awk -v s="$1" 'BEGIN{printf "%.1f", s*1000}'; }
# ratio A B: A/B, two decimals ("-" when B is not positive)
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b > 0) printf "%.2f", a/b; else print "-" }'; }
