#!/usr/bin/env bash
# bench_access.sh [N] - what the access model (fs/access.h, README "Access
# model") costs on a shared mount (-o allow_other, made by root).
#
# One archive of N files (tests/gen_archive.py --count N, default 5000),
# copied once per run and mounted three ways, side by side:
#   uniform   every file and directory readable by others (kernel caches on)
#   mixed     the same with one file 0600 (every request of other users
#             checked, kernel caches off)
# and walked by root (the mount owner) and by nobody (checked) with:
#   find      find of patients/ and uids/ with sizes (lookup + getattr
#             of every entry), first and second pass
#   query     cat of query/instances/Modality=CT/manifest.csv
#   read      cat of every .json under patients/ (open + read)
# Ratios are against the uniform mount's figure for the same user and work.
#
# Environment: DICOMFS=path, BENCH_DIR=dir, RUNS=n (default 3, median),
# PYTHON=path (/usr/bin/python3). Needs root (allow_other, setpriv).
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

N=${1:-5000}
case $N in '' | *[!0-9]*) echo "usage: $0 [N]" >&2; exit 2 ;; esac
RUNS=${RUNS:-3}
[[ $(id -u) = 0 ]] || die "needs root (allow_other, setpriv)"
bench_dicomfs
command -v setpriv >/dev/null || die "setpriv missing (util-linux)"

# ---------------------------------------------------------------- archive
mkdir -p "$BENCH_DIR" || die "cannot create $BENCH_DIR"
ARCHIVE=$BENCH_DIR/archive-$N
STAMP=$BENCH_DIR/archive-$N.done
gen_sum=$(sha256sum "$GEN" | cut -d' ' -f1)
if [[ ! -f $STAMP || $(cat "$STAMP") != "$gen_sum" || ! -d $ARCHIVE ]]; then
	rm -rf "$ARCHIVE" "$ARCHIVE.tmp" "$STAMP"
	log "generating $N DICOM files into $ARCHIVE (once; cached) ..."
	"$PY" "$GEN" "$ARCHIVE.tmp" --count "$N" >&2 || die "generator failed"
	mv "$ARCHIVE.tmp" "$ARCHIVE" && echo "$gen_sum" >"$STAMP"
fi

RUN=$(mktemp -d "$BENCH_DIR/run.XXXXXX") || die "mktemp failed"
chmod 755 "$BENCH_DIR" "$RUN"
MNT=$RUN/mnt
PID=
cleanup() {
	if [[ -n $PID ]]; then
		fusermount3 -u "$MNT" 2>/dev/null || fusermount3 -u -z "$MNT" 2>/dev/null
		wait "$PID" 2>/dev/null
	fi
	rm -rf "$RUN"
}
trap cleanup EXIT
mkdir -p "$MNT"
cp -a "$ARCHIVE" "$RUN/arch" || die "copy failed"
chmod -R a+rX "$RUN/arch"

as_nobody() { setpriv --reuid=nobody --regid=nogroup --clear-groups -- "$@"; }
start() {   # start LABEL
	"$DICOMFS" -f -o index="$RUN/idx",allow_other "$RUN/arch" "$MNT" 2>"$RUN/$1.log" &
	PID=$!
	for _ in $(seq 1 600); do
		mountpoint -q "$MNT" && [[ -d $MNT/patients ]] && return 0
		sleep 0.1
	done
	die "mount ($1) did not come up: $(tail -3 "$RUN/$1.log")"
}
stop() {
	fusermount3 -u "$MNT" || die "unmount failed"
	wait "$PID" 2>/dev/null
	PID=
}

declare -A R
measure() {   # measure CONFIG: fill R[config,user,work]
	local cfg=$1 user t run who
	for user in root nobody; do
		who=""
		[[ $user = nobody ]] && who=as_nobody
		local f1=() f2=() q=() rd=()
		for run in $(seq 1 "$RUNS"); do
			stop; start "$cfg"
			$who find "$MNT/patients" "$MNT/uids" -printf '%s\n' >/dev/null 2>&1
			timeit t $who find "$MNT/patients" "$MNT/uids" -printf '%s\n'
			f2+=("$t")
			stop; start "$cfg"
			timeit t $who find "$MNT/patients" "$MNT/uids" -printf '%s\n'; f1+=("$t")
			timeit t $who cat "$MNT/query/instances/Modality=CT/manifest.csv"; q+=("$t")
			timeit t $who sh -c 'find "$1/patients" -name "*.json" -print0 | xargs -0 cat' _ "$MNT"
			rd+=("$t")
		done
		R[$cfg,$user,find1]=$(printf '%s\n' "${f1[@]}" | median)
		R[$cfg,$user,find2]=$(printf '%s\n' "${f2[@]}" | median)
		R[$cfg,$user,query]=$(printf '%s\n' "${q[@]}" | median)
		R[$cfg,$user,read]=$(printf '%s\n' "${rd[@]}" | median)
	done
}

log "uniform archive ($N files)"
start uniform
grep -q "mixed archive" "$RUN/uniform.log" && die "the uniform archive was found mixed"
measure uniform
stop
f=$(find "$RUN/arch" -type f | head -1)
chmod 600 "$f"
log "mixed archive (one file 0600)"
start mixed
grep -q "mixed archive" "$RUN/mixed.log" || die "the mixed archive was not found mixed"
scan=$(grep -o "kernel caches off ([0-9.]* s)" "$RUN/mixed.log" | grep -o "[0-9.]* s")
measure mixed
stop

printf '\naccess model cost, %s files, median of %s runs (ms; ratio = mixed / uniform)\n' "$N" "$RUNS"
printf '%-8s %-8s %10s %10s %8s\n' user work uniform mixed ratio
for user in root nobody; do
	for w in find1 find2 query read; do
		u=${R[uniform,$user,$w]} m=${R[mixed,$user,$w]}
		printf '%-8s %-8s %10s %10s %8s\n' "$user" "$w" "$(ms "$u")" "$(ms "$m")" "$(ratio "$m" "$u")"
	done
done
printf 'mount-time check of the mixed archive: %s\n' "${scan:-?}"
