#!/usr/bin/env bash
# bench_backup.sh [N] - backups and content sniffing through a dicomfs mount
# (issue 16), on the archive of tests/gen_backup.py: a native and a JPEG 2000
# series of N 512x512 images each (default 100) plus its duplicates,
# conflict and odd files. Side by side, in one run (medians of RUNS):
#
#  1. rsync: the README's recipe (--include='*/' --include='*.dcm'
#     --exclude='*' patients/) and rsync -a of sources/, against rsync -a
#     of the archive directory itself (the baseline); and the naive
#     rsync -a patients/ (every derived file) once, for scale. Bytes copied
#     and exit status are reported too.
#  2. cp -a vs cp -r of the native series directory (N .dcm, .json, .npy,
#     .png, the level files): before = -o xattrs=all (every file carries the
#     user.dicom.* attributes, as before issue 16), after = the default
#     (directories and .dcm only). The figure is the ratio cp -a / cp -r.
#  3. `file *` of the JPEG 2000 series directory on a fresh mount: after =
#     this binary; before = DICOMFS_BEFORE (a binary without P9, e.g. one
#     built from an older commit; skipped when unset). Reported with
#     status.json pixel_decodes.
#
# The archive is made once in ${BENCH_DIR:-/var/tmp/dicomfs-bench}/backup-N.
# Environment: DICOMFS, DICOMFS_BEFORE, BENCH_DIR, RUNS (default 3), PYTHON.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

N=${1:-100}
case $N in '' | *[!0-9]*) echo "usage: $0 [N]" >&2; exit 2 ;; esac
RUNS=${RUNS:-3}
bench_dicomfs
BEFORE=${DICOMFS_BEFORE:-}
command -v fusermount3 >/dev/null || die "fusermount3 not found"
command -v rsync >/dev/null || die "rsync not found"
command -v gdcmconv >/dev/null || die "gdcmconv not found (libgdcm-tools)"
[[ -e /dev/fuse ]] || die "/dev/fuse missing"

bytes() { du -sb "$1" 2>/dev/null | cut -f1; }

ARCH=$BENCH_DIR/backup-$N
if [[ ! -f $ARCH/.complete ]]; then
	log "writing the archive ($N + $N images of 512x512) to $ARCH"
	rm -rf "$ARCH"
	mkdir -p "$BENCH_DIR" || die "cannot create $BENCH_DIR"
	"$PY" "$ROOT/tests/gen_backup.py" "$ARCH" --j2k "$N" --native "$N" --size 512 ||
		die "gen_backup.py failed"
	rm -f "$ARCH/pipe"   # rsync of the archive would copy the FIFO itself
	touch "$ARCH/.complete"
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/bench_backup.XXXXXX") || die "mktemp"
MNT=$WORK/mnt
mkdir -p "$MNT"
PID=
cleanup() {
	mountpoint -q "$MNT" 2>/dev/null && fusermount3 -u "$MNT" 2>/dev/null
	[[ -n $PID ]] && wait "$PID" 2>/dev/null
	rm -rf "$WORK"
}
trap cleanup EXIT
# mnt BINARY INDEX [options]: a fresh mount (foreground daemon in the background)
mnt() {
	local bin=$1 idx=$2 i; shift 2
	"$bin" -f -o quiet,index="$idx" "$@" "$ARCH" "$MNT" >"$WORK/log" 2>&1 &
	PID=$!
	for i in $(seq 600); do mountpoint -q "$MNT" && return 0; sleep 0.1; done
	cat "$WORK/log" >&2
	die "mount failed"
}
umnt() { fusermount3 -u "$MNT"; wait "$PID" 2>/dev/null; PID=; }
decodes() { "$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["pixel_decodes"])' "$MNT/.dicomfs/status.json"; }

# ---------------------------------------------------------------- 1. rsync
mnt "$DICOMFS" "$WORK/idx"
log "1. rsync ($RUNS runs each)"
declare -a t_arch t_recipe t_src
for r in $(seq "$RUNS"); do
	rm -rf "$WORK/d"; timeit t rsync -a "$ARCH/" "$WORK/d/"; t_arch+=("$t"); b_arch=$(bytes "$WORK/d")
	rm -rf "$WORK/d"; timeit t rsync -a --include='*/' --include='*.dcm' --exclude='*' "$MNT/patients/" "$WORK/d/"
	rc_recipe=$RC; t_recipe+=("$t"); b_recipe=$(bytes "$WORK/d")
	rm -rf "$WORK/d"; timeit t rsync -a "$MNT/sources/" "$WORK/d/"; rc_src=$RC; t_src+=("$t"); b_src=$(bytes "$WORK/d")
done
d0=$(decodes)
rm -rf "$WORK/d"; timeit t_naive rsync -a "$MNT/patients/" "$WORK/d/"; rc_naive=$RC; b_naive=$(bytes "$WORK/d")
d1=$(decodes)
rm -rf "$WORK/d"
m_arch=$(printf '%s\n' "${t_arch[@]}" | median)
m_recipe=$(printf '%s\n' "${t_recipe[@]}" | median)
m_src=$(printf '%s\n' "${t_src[@]}" | median)
umnt

# ---------------------------------------------------------------- 2. cp -a vs cp -r
cpbench() {   # cpbench LABEL [options]: prints "LABEL cp-r-ms cp-a-ms ratio"
	local label=$1 ser ta tr; shift
	mnt "$DICOMFS" "$WORK/idx" "$@"
	ser=$(find "$MNT/patients" -maxdepth 3 -type d -name '001 MR*' | head -1)
	[[ -n $ser ]] || die "native series not found"
	cp -r "$ser" "$WORK/warm"; rm -rf "$WORK/warm"   # warm the caches
	local -a ar rr
	for r in $(seq "$RUNS"); do
		timeit tr cp -r "$ser" "$WORK/c"; rr+=("$tr"); rm -rf "$WORK/c"
		timeit ta cp -a "$ser" "$WORK/c"; ar+=("$ta"); rm -rf "$WORK/c"
	done
	umnt
	tr=$(printf '%s\n' "${rr[@]}" | median); ta=$(printf '%s\n' "${ar[@]}" | median)
	echo "$label $(ms "$tr") $(ms "$ta") $(ratio "$ta" "$tr")"
}
log "2. cp -a vs cp -r"
cp_before=$(cpbench before -o xattrs=all)
cp_after=$(cpbench after)

# ---------------------------------------------------------------- 3. file *
filebench() {   # filebench BINARY INDEX: prints "ms decodes" (median ms, decodes of the last run)
	local bin=$1 idx=$2 ser t dec=
	local -a tt
	for r in $(seq "$RUNS"); do
		mnt "$bin" "$idx"
		ser=$(find "$MNT/patients" -maxdepth 3 -type d -name '002 MR*' | head -1)
		[[ -n $ser ]] || die "JPEG 2000 series not found"
		local d0 d1
		d0=$(decodes)
		timeit t sh -c 'cd "$1" && file ./*' _ "$ser"; tt+=("$t")
		d1=$(decodes)
		dec=$((d1 - d0))
		umnt
	done
	echo "$(ms "$(printf '%s\n' "${tt[@]}" | median)") $dec"
}
log "3. file * of the JPEG 2000 series (fresh mount per run)"
f_after=$(filebench "$DICOMFS" "$WORK/idx")
f_before=
[[ -n $BEFORE && -x $BEFORE ]] && f_before=$(filebench "$BEFORE" "$WORK/idx-before")

# ---------------------------------------------------------------- report
echo
echo "bench_backup: N=$N (+ N) 512x512 images, RUNS=$RUNS, median ms"
echo "1. rsync (baseline: rsync -a of the archive directory, $(ms "$m_arch") ms, $b_arch bytes)"
printf '   %-44s %9s ms  x%-6s %12s bytes (x%s)  exit %s\n' \
	"recipe: --include='*/' --include='*.dcm' ..." "$(ms "$m_recipe")" "$(ratio "$m_recipe" "$m_arch")" \
	"$b_recipe" "$(ratio "$b_recipe" "$b_arch")" "$rc_recipe"
printf '   %-44s %9s ms  x%-6s %12s bytes (x%s)  exit %s\n' \
	"rsync -a sources/" "$(ms "$m_src")" "$(ratio "$m_src" "$m_arch")" \
	"$b_src" "$(ratio "$b_src" "$b_arch")" "$rc_src"
printf '   %-44s %9s ms  x%-6s %12s bytes (x%s)  exit %s, %s decodes (one run)\n' \
	"naive rsync -a patients/" "$(ms "$t_naive")" "$(ratio "$t_naive" "$m_arch")" \
	"$b_naive" "$(ratio "$b_naive" "$b_arch")" "$rc_naive" "$((d1 - d0))"
echo "2. cp of the native series directory: label cp-r-ms cp-a-ms ratio(cp -a / cp -r)"
echo "   $cp_before   (-o xattrs=all: as before)"
echo "   $cp_after   (default)"
echo "3. file * of the $N-image JPEG 2000 series: ms decodes"
echo "   after:  $f_after"
if [[ -n $f_before ]]; then
	echo "   before: $f_before  ($BEFORE)"
	echo "   ratio before/after: $(ratio "${f_before%% *}" "${f_after%% *}")"
fi
