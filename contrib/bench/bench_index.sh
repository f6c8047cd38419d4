#!/usr/bin/env bash
# bench_index.sh [N] - dicomfs index / tree benchmark (see contrib/bench/README).
#
# Generates an archive of N small DICOM files once (cached under $BENCH_DIR),
# then measures, side by side in one run:
#   1. index build files/s (fresh index; warm and cold page cache) against
#      readfloor (open+read 16 KiB+close, 1 and 2 threads) and pydicom
#      dcmread(stop_before_pixels=True) over a sample of files;
#   2. remount time with an existing index against `find -printf '%s %T@'`;
#   3. first and second `ls -lR` of the mount against a tmpfs copy;
#   4. `cat` of every .dcm through the mount (first, repeated) against the
#      source files.
# and prints a table of figures and ratios plus a summary block for a README.
#
# Environment:
#   DICOMFS=path      dicomfs binary (default ./dicomfs, else <root>/dicomfs)
#   BENCH_DIR=dir     cache + scratch (default /var/tmp/dicomfs-bench)
#   RUNS=n            repetitions of the warm measurements, median (default 3)
#   PYDICOM_SAMPLE=n  files in the pydicom sample (default 2000)
#   NO_COLD=1         skip the cold-cache measurements
#   READFLOOR=path    prebuilt readfloor (default: built into $BENCH_DIR)
#   PYTHON=path       python with pydicom (default /usr/bin/python3)
#   GEN=path          fixture generator (default <root>/tests/gen_archive.py)
#   MOUNT_TIMEOUT=s   give up waiting for a mount after s seconds (default 900)
#   MOUNT_OPTS=opts   extra -o options of every mount (e.g. opens=each: the
#                     open round trips of every file, fs/fs.h Z1)
set -u -o pipefail
export LC_ALL=C

N=${1:-20000}
case $N in '' | *[!0-9]*) echo "usage: $0 [N]" >&2; exit 2 ;; esac
RUNS=${RUNS:-3}
BENCH_DIR=${BENCH_DIR:-/var/tmp/dicomfs-bench}
PY=${PYTHON:-/usr/bin/python3}
PYDICOM_SAMPLE=${PYDICOM_SAMPLE:-2000}
MOUNT_TIMEOUT=${MOUNT_TIMEOUT:-900}
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)
GEN=${GEN:-$ROOT/tests/gen_archive.py}

log() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

if [[ -z ${DICOMFS:-} ]]; then
	if [[ -x ./dicomfs && ! -d ./dicomfs ]]; then DICOMFS=$PWD/dicomfs
	else DICOMFS=$ROOT/dicomfs; fi
fi
[[ -x $DICOMFS && ! -d $DICOMFS ]] || die "no dicomfs binary at $DICOMFS (build it, or set DICOMFS=)"
[[ $DICOMFS = /* ]] || DICOMFS=$PWD/$DICOMFS
command -v fusermount3 >/dev/null || die "fusermount3 not found (apt-get install fuse3)"
[[ -e /dev/fuse ]] || die "/dev/fuse missing"

# ---------------------------------------------------------------- helpers
stamp() { # stamp VAR: VAR=current wall time in seconds (float)
	if [[ -n ${EPOCHREALTIME:-} ]]; then printf -v "$1" '%s' "$EPOCHREALTIME"
	else printf -v "$1" '%s' "$(date +%s.%N)"; fi
}
timeit() { # timeit VAR cmd...: VAR=elapsed seconds of cmd; returns cmd's status
	local __var=$1 __a __b __rc; shift
	stamp __a; "$@"; __rc=$?; stamp __b
	printf -v "$__var" '%s' "$(awk -v a="$__a" -v b="$__b" 'BEGIN{printf "%.6f", b-a}')"
	return $__rc
}
calc() { awk "BEGIN{ printf \"%.6f\", $* }"; }
div() { # div A B [fmt]: A/B, or n/a
	awk -v a="${1:-}" -v b="${2:-}" -v f="${3:-%.6f}" 'BEGIN{
		if (a == "" || b == "" || a == "n/a" || b == "n/a" || b + 0 == 0) print "n/a";
		else printf f "\n", a / b }'
}
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END{
	if (NR == 0) print "n/a"; else if (NR % 2) print v[(NR+1)/2];
	else printf "%.6f\n", (v[NR/2] + v[NR/2+1]) / 2 }'; }
minimum() { printf '%s\n' "$@" | sort -g | head -n1; }
fmt_int() { # 12345.6 -> 12,346
	[[ $1 = n/a ]] && { echo n/a; return; }
	awk -v v="$1" 'BEGIN{ s = sprintf("%.0f", v); n = length(s); o = "";
		for (i = 1; i <= n; i++) { o = o substr(s, i, 1); if ((n - i) % 3 == 0 && i < n) o = o "," }
		print o }'
}
fmt_num() { [[ $1 = n/a ]] && { echo n/a; return; }; printf "${2:-%.3f}" "$1"; }
verdict() { # verdict VALUE OP TARGET -> PASS/FAIL/n/a
	[[ $1 = n/a ]] && { echo n/a; return; }
	awk -v v="$1" -v t="$3" -v op="$2" 'BEGIN{
		ok = (op == ">=") ? (v >= t) : (v <= t); print ok ? "PASS" : "FAIL" }'
}

COLD=1
drop_caches() { sync && { echo 3 >/proc/sys/vm/drop_caches; } 2>/dev/null; }
if [[ ${NO_COLD:-0} = 1 ]]; then COLD=0; log "NO_COLD=1: skipping cold-cache measurements"
elif ! drop_caches; then COLD=0; log "cannot write /proc/sys/vm/drop_caches (not root?): skipping cold-cache measurements"; fi

# ---------------------------------------------------------------- archive
mkdir -p "$BENCH_DIR" || die "cannot create $BENCH_DIR"
ARCHIVE=$BENCH_DIR/archive-$N
STAMP=$BENCH_DIR/archive-$N.done
[[ -f $GEN ]] || die "fixture generator $GEN not found"
gen_sum=$(sha256sum "$GEN" | cut -d' ' -f1)
if [[ ! -f $STAMP || $(cat "$STAMP") != "$gen_sum" || ! -d $ARCHIVE ]]; then
	[[ -f $STAMP ]] && log "generator changed since the cached archive was made: regenerating"
	rm -rf "$ARCHIVE" "$ARCHIVE.tmp" "$STAMP"
	log "generating $N DICOM files into $ARCHIVE (once; cached) ..."
	timeit t_gen "$PY" "$GEN" "$ARCHIVE.tmp" --count "$N" >&2 || die "generator failed"
	mv "$ARCHIVE.tmp" "$ARCHIVE" && echo "$gen_sum" >"$STAMP"
	log "generated in ${t_gen}s"
else
	log "using cached archive $ARCHIVE"
fi

TMP=$(mktemp -d "$BENCH_DIR/run.XXXXXX") || die "mktemp failed"
MNT=$TMP/mnt
SHM=
LOG=$TMP/dicomfs.log
mkdir -p "$MNT"
DPID=

umount_fs() {
	if mountpoint -q "$MNT" 2>/dev/null; then
		fusermount3 -u "$MNT" 2>/dev/null || { sleep 1; fusermount3 -u "$MNT" 2>/dev/null; } ||
			{ log "fusermount3 -u failed; lazy unmount"; fusermount3 -uz "$MNT"; }
	fi
	if [[ -n $DPID ]]; then
		local i
		for ((i = 0; i < 300; i++)); do kill -0 "$DPID" 2>/dev/null || break; sleep 0.1; done
		if kill -0 "$DPID" 2>/dev/null; then
			log "dicomfs (pid $DPID) still running 30 s after unmount; killing it"
			kill "$DPID" 2>/dev/null
		fi
		wait "$DPID" 2>/dev/null
		DPID=
	fi
}
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	umount_fs
	[[ -n $SHM ]] && rm -rf "$SHM"
	if [[ $rc -ne 0 && -s $LOG ]]; then
		log "last lines of the dicomfs log ($LOG):"; tail -n 20 "$LOG" >&2
		log "keeping $TMP for inspection"
	else
		rm -rf "$TMP"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
# run a private copy, so that a rebuild of the binary during the run cannot
# disturb it (the path of the original is what the report shows)
DICOMFS_ORIG=$DICOMFS
DICOMFS_BUILT=$(date -u -r "$DICOMFS" '+%Y-%m-%d %H:%MZ')
cp "$DICOMFS" "$TMP/dicomfs" || die "cannot copy $DICOMFS"
# the GDCM module lives next to the binary (or in PKGLIBDIR when installed)
if [[ -f $(dirname "$DICOMFS")/dicomfs-gdcm.so ]]; then
	cp "$(dirname "$DICOMFS")/dicomfs-gdcm.so" "$TMP/" || die "cannot copy the GDCM module"
fi
DICOMFS=$TMP/dicomfs

MNT_ESC=${MNT//\\/\\134}; MNT_ESC=${MNT_ESC// /\\040}
in_mount_table() { # is $MNT in /proc/self/mountinfo? (no fork)
	local _a _b _c _d mp _rest
	while read -r _a _b _c _d mp _rest; do [[ $mp = "$MNT_ESC" ]] && return 0; done </proc/self/mountinfo
	return 1
}
# nap: wait 2 ms without a process (an external sleep per poll is a fork
# and an exec that compete with the mount being timed for 2 CPUs): a read
# with a timeout from a pipe nobody writes to
exec {NAP_FD}<> <(:)
nap() { read -r -t 0.002 -u "$NAP_FD" _ || :; }
mount_fs() { # mount_fs INDEXPATH: mount, set MOUNT_SECS (launch to mounted)
	local idx=$1 a b start=$SECONDS rc
	echo "=== $(date '+%T') $DICOMFS -f -o index=$idx $ARCHIVE $MNT" >>"$LOG"
	stamp a
	"$DICOMFS" -f -o "index=$idx" ${MOUNT_OPTS:+-o "$MOUNT_OPTS"} "$ARCHIVE" "$MNT" >>"$LOG" 2>&1 &
	DPID=$!
	# Wait for the mount table entry (a bash loop: cheap, cannot block),
	# then for the file system to answer a stat of its root (a builtin
	# test, so that no fork+exec latency of a helper lands in the figure);
	# mountpoint -q confirms afterwards.
	until in_mount_table; do
		if ! kill -0 "$DPID" 2>/dev/null; then
			wait "$DPID"; rc=$?; DPID=
			die "dicomfs exited with status $rc before mounting"
		fi
		((SECONDS - start > MOUNT_TIMEOUT)) && die "not mounted after ${MOUNT_TIMEOUT}s"
		nap
	done
	[[ -d $MNT/. ]] || die "mounted, but stat of the mount point fails"
	stamp b
	timeout 60 mountpoint -q "$MNT" || die "mountpoint -q $MNT fails after mounting"
	MOUNT_SECS=$(awk -v a="$a" -v b="$b" 'BEGIN{printf "%.6f", b-a}')
	[[ -r $MNT/.dicomfs/status.json ]] || log "warning: $MNT/.dicomfs/status.json not readable"
}
status_get() { # status_get KEY...: values (first match at any depth) from status.json
	"$PY" - "$MNT/.dicomfs/status.json" "$@" <<'EOF' 2>/dev/null || { local k; for k in "${@}"; do printf 'n/a '; done; echo; }
import json, sys
try:
    d = json.load(open(sys.argv[1]))
except Exception:
    d = {}
def find(o, k):
    if isinstance(o, dict):
        if k in o:
            return o[k]
        o = list(o.values())
    if isinstance(o, list):
        for v in o:
            r = find(v, k)
            if r is not None:
                return r
    return None
out = []
for k in sys.argv[2:]:
    v = find(d, k)
    out.append("n/a" if v is None or isinstance(v, (dict, list)) else str(v))
print(" ".join(out))
EOF
}

IDXN=0
new_index() { IDXN=$((IDXN + 1)); NEWIDX=$TMP/index.$IDXN; rm -rf "$NEWIDX" "$NEWIDX"-lock; }
rm_index() { rm -rf "$1" "$1"-lock; }

# build_once warm|cold: fresh index, mount, read status, unmount.
# Sets B_WALL (s), B_SFPS, B_SBS (status.json files_per_second/build_seconds)
# and B_PH (status.json walk/parse/tree/commit seconds, "n/a" where absent).
build_once() {
	new_index
	[[ $1 = cold ]] && { drop_caches || die "drop_caches failed"; }
	mount_fs "$NEWIDX"
	B_WALL=$MOUNT_SECS
	read -r B_SFPS B_SBS B_PH < <(status_get files_per_second build_seconds \
		walk_seconds parse_seconds tree_seconds commit_seconds)
	[[ $IDXN = 1 ]] && { log "status.json after the first build:"; cat "$MNT/.dicomfs/status.json" >&2; echo >&2; }
	umount_fs
}

tree_ls() { ls -lR "$1" >/dev/null; }
clone_tree() { # clone_tree SRC DST: same names, types, sizes, modes, mtimes
	"$PY" - "$1" "$2" <<'EOF'
import os, sys
src, dst = sys.argv[1], sys.argv[2]
dirs = []
def walk(s, d):
    st = os.lstat(s)
    os.mkdir(d)
    dirs.append((d, st))
    with os.scandir(s) as it:
        for e in it:
            sp, dp = os.path.join(s, e.name), os.path.join(d, e.name)
            if e.is_dir(follow_symlinks=False):
                walk(sp, dp)
            elif e.is_symlink():
                os.symlink(os.readlink(sp), dp)
            else:
                est = e.stat(follow_symlinks=False)
                with open(dp, "wb") as f:
                    f.truncate(est.st_size)
                os.chmod(dp, est.st_mode & 0o7777)
                os.utime(dp, ns=(est.st_atime_ns, est.st_mtime_ns))
walk(src, dst)
for d, st in reversed(dirs):
    os.chmod(d, st.st_mode & 0o7777)
    os.utime(d, ns=(st.st_atime_ns, st.st_mtime_ns))
EOF
}
cat_dcm() { find "$1" -type f -name '*.dcm' -print0 | xargs -0 -r cat >/dev/null; }
cat_all() { find "$1" -type f -print0 | xargs -0 -r cat >/dev/null; }
find_stat() { find "$1" -type f -printf '%s %T@\n' >/dev/null; }

# ---------------------------------------------------------------- readfloor
if [[ -n ${READFLOOR:-} ]]; then RF=$READFLOOR
elif [[ -x $SCRIPT_DIR/readfloor && ! $SCRIPT_DIR/readfloor -ot $SCRIPT_DIR/readfloor.c ]]; then RF=$SCRIPT_DIR/readfloor
else
	RF=$BENCH_DIR/readfloor
	if [[ ! -x $RF || $RF -ot $SCRIPT_DIR/readfloor.c ]]; then
		${CC:-gcc} -O2 -pthread -o "$RF" "$SCRIPT_DIR/readfloor.c" || die "cannot build readfloor"
	fi
fi
rf_fps() { "$RF" -q -t "$1" "$LIST"; } # prints files/s
rf_whole_mbs() { # rf_whole_mbs THREADS LIST: MB/s reading every file whole
	"$RF" -a -t "$1" "$2" | sed -n 's/.*MB_per_second=\([0-9.]*\).*/\1/p'
}

# ---------------------------------------------------------------- inventory
LIST=$TMP/files.list
find "$ARCHIVE" -type f -print0 | sort -z >"$LIST"
NSRC=$(tr -cd '\0' <"$LIST" | wc -c)
SRC_BYTES=$(find "$ARCHIVE" -type f -printf '%s\n' | awk '{s+=$1} END{printf "%.0f", s}')
SRC_MB=$(calc "$SRC_BYTES / 1e6")
((NSRC > 0)) || die "archive $ARCHIVE is empty"
log "archive: $NSRC files, $(fmt_num "$SRC_MB" %.1f) MB; dicomfs: $DICOMFS_ORIG; runs: $RUNS"
cat_all "$ARCHIVE" # warm the page cache
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

# ================================================================ 1. warm
log "1. readfloor (warm) ..."
a=(); b=()
for ((r = 0; r < RUNS; r++)); do a+=("$(rf_fps 1)"); b+=("$(rf_fps 2)"); done
RF1_W=$(median "${a[@]}"); RF2_W=$(median "${b[@]}")

log "2. find -printf baseline (warm) ..."
a=()
for ((r = 0; r < RUNS; r++)); do timeit t find_stat "$ARCHIVE"; a+=("$t"); done
FIND_W=$(median "${a[@]}")

log "1. dicomfs index build (warm, fresh index each run) ..."
a=(); s=(); sb=(); ph=()
for ((r = 0; r < RUNS; r++)); do
	build_once warm
	a+=("$B_WALL"); s+=("$B_SFPS"); sb+=("$B_SBS"); ph+=("$B_PH")
	log "   build $((r + 1)): ${B_WALL}s to mounted; status.json files_per_second=$B_SFPS build_seconds=$B_SBS walk/parse/tree/commit=$B_PH"
	((r < RUNS - 1)) && rm_index "$NEWIDX"
done
KEEPIDX=$NEWIDX # the remount tests reuse this index
BUILD_W=$(median "${a[@]}")
BUILD_W_FPS=$(div "$NSRC" "$BUILD_W")
if [[ " ${s[*]} " = *" n/a "* ]]; then ST_FPS_W=n/a; else ST_FPS_W=$(median "${s[@]}"); fi
if [[ " ${sb[*]} " = *" n/a "* ]]; then ST_BS_W=n/a; else ST_BS_W=$(median "${sb[@]}"); fi
# phases of the build whose wall time is the median one
ST_PH_W=n/a
for ((r = 0; r < RUNS; r++)); do [[ ${a[r]} = "$BUILD_W" ]] && ST_PH_W=${ph[r]}; done

log "1. pydicom dcmread(stop_before_pixels=True) over $PYDICOM_SAMPLE files (warm) ..."
pydicom_fps() { # prints "files failed seconds files_per_second"
	"$PY" - "$LIST" "$PYDICOM_SAMPLE" <<'EOF'
import os, sys, time
from pydicom import dcmread
paths = [p for p in open(sys.argv[1], 'rb').read().split(b'\0') if p]
n = int(sys.argv[2])
if len(paths) > n:
    step = len(paths) / n
    paths = [paths[int(i * step)] for i in range(n)]
paths = [os.fsdecode(p) for p in paths]
failed = 0
t0 = time.perf_counter()
for p in paths:
    try:
        dcmread(p, stop_before_pixels=True)
    except Exception:
        failed += 1
t = time.perf_counter() - t0
print(len(paths), failed, "%.6f" % t, "%.1f" % (len(paths) / t))
EOF
}
read -r PYN PYFAIL PYT PY_W < <(pydicom_fps) || die "pydicom measurement failed (is pydicom installed for $PY?)"
((PYFAIL > 0)) && log "warning: pydicom could not read $PYFAIL of $PYN sampled files"

# ================================================================ 2. remount
log "2. remount with existing index (warm) ..."
a=(); b=()
for ((r = 0; r < RUNS; r++)); do
	mount_fs "$KEEPIDX"; a+=("$MOUNT_SECS")
	b+=("$(status_get build_seconds)")
	umount_fs
done
REMOUNT_W=$(median "${a[@]}")
if [[ " ${b[*]} " = *" n/a "* ]]; then ST_REMOUNT_BS=n/a; else ST_REMOUNT_BS=$(median "${b[@]}"); fi
log "   remount: ${REMOUNT_W}s to mounted; status.json build_seconds=$ST_REMOUNT_BS"

# ================================================================ 3. ls -lR
log "3. ls -lR: fresh mount vs tmpfs copy ..."
mount_fs "$KEEPIDX"
NMNT=$(find "$MNT/patients" -type f -name '*.dcm' -printf . 2>/dev/null | wc -c)
umount_fs # count on one mount, then time ls on a fresh one
mount_fs "$KEEPIDX"
timeit LS1 tree_ls "$MNT/patients" || log "warning: ls -lR on the mount reported errors"
timeit LS2 tree_ls "$MNT/patients" || log "warning: ls -lR on the mount reported errors"
SHM=$(mktemp -d /dev/shm/dicomfs-bench.XXXXXX) || die "mktemp in /dev/shm failed"
# Copy the tree's metadata only (names, types, sizes as sparse files, modes,
# mtimes): ls -lR does not look at contents, and cp -a would read every file
# (rendering every derived .png/.npy) and every user.dicom.* xattr through
# FUSE, minutes for nothing.
timeit t clone_tree "$MNT/patients" "$SHM/patients" || die "copying the tree to tmpfs failed"
NMNT_ALL=$(find "$SHM/patients" -type f -printf . | wc -c)
log "   (copied the tree's metadata to tmpfs in ${t}s: $NMNT_ALL files)"
umount_fs
a=()
for ((r = 0; r < RUNS + 1; r++)); do timeit t tree_ls "$SHM/patients"; a+=("$t"); done
LS_TMPFS=$(minimum "${a[@]}")
rm -rf "$SHM"; SHM=
LS1_R=$(div "$LS_TMPFS" "$LS1"); LS2_R=$(div "$LS_TMPFS" "$LS2")

# ================================================================ 4. cat
log "4. cat of every .dcm: mount (first, repeated) vs source ..."
a=()
for ((r = 0; r < RUNS; r++)); do timeit t cat_all "$ARCHIVE"; a+=("$t"); done
CAT_SRC=$(median "${a[@]}")
mount_fs "$KEEPIDX"
timeit CAT1 cat_dcm "$MNT/patients" || log "warning: cat through the mount reported errors"
a=()
for ((r = 0; r < RUNS; r++)); do timeit t cat_dcm "$MNT/patients"; a+=("$t"); done
CAT2=$(median "${a[@]}")
MNT_BYTES=$(find "$MNT/patients" -type f -name '*.dcm' -printf '%s\n' | awk '{s+=$1} END{printf "%.0f", s}')
# the same without cat's per-file cost (cat mmaps/munmaps a buffer per file)
MLIST=$TMP/mnt.list
find "$MNT/patients" -type f -name '*.dcm' -print0 | sort -z >"$MLIST"
a=(); b=(); c=(); d=()
for ((r = 0; r < RUNS; r++)); do
	a+=("$(rf_whole_mbs 1 "$MLIST")"); b+=("$(rf_whole_mbs 1 "$LIST")")
	c+=("$(rf_whole_mbs 2 "$MLIST")"); d+=("$(rf_whole_mbs 2 "$LIST")")
done
RFA_M1=$(median "${a[@]}"); RFA_S1=$(median "${b[@]}"); RFA_M2=$(median "${c[@]}"); RFA_S2=$(median "${d[@]}")
umount_fs
MNT_MB=$(calc "$MNT_BYTES / 1e6")
CAT_SRC_MBS=$(div "$SRC_MB" "$CAT_SRC"); CAT1_MBS=$(div "$MNT_MB" "$CAT1"); CAT2_MBS=$(div "$MNT_MB" "$CAT2")
CAT1_R=$(div "$CAT1_MBS" "$CAT_SRC_MBS"); CAT2_R=$(div "$CAT2_MBS" "$CAT_SRC_MBS")
RFA_R1=$(div "$RFA_M1" "$RFA_S1"); RFA_R2=$(div "$RFA_M2" "$RFA_S2")

# ================================================================ cold
RF1_C=n/a RF2_C=n/a BUILD_C=n/a BUILD_C_FPS=n/a ST_FPS_C=n/a ST_BS_C=n/a PY_C=n/a FIND_C=n/a REMOUNT_C=n/a
if ((COLD)); then
	log "cold cache (drop_caches before each) ..."
	drop_caches; RF1_C=$(rf_fps 1)
	drop_caches; RF2_C=$(rf_fps 2)
	build_once cold
	BUILD_C=$B_WALL; BUILD_C_FPS=$(div "$NSRC" "$BUILD_C"); ST_FPS_C=$B_SFPS; ST_BS_C=$B_SBS
	rm_index "$NEWIDX"
	log "   cold build: ${BUILD_C}s to mounted; status.json files_per_second=$ST_FPS_C build_seconds=$ST_BS_C"
	drop_caches; read -r _ _ _ PY_C < <(pydicom_fps)
	drop_caches; timeit FIND_C find_stat "$ARCHIVE"
	drop_caches; mount_fs "$KEEPIDX"; REMOUNT_C=$MOUNT_SECS; umount_fs
fi
rm_index "$KEEPIDX"

# ================================================================ report
R_RF1_W=$(div "$BUILD_W_FPS" "$RF1_W"); R_RF2_W=$(div "$BUILD_W_FPS" "$RF2_W"); R_PY_W=$(div "$BUILD_W_FPS" "$PY_W")
R_RF1_C=$(div "$BUILD_C_FPS" "$RF1_C"); R_RF2_C=$(div "$BUILD_C_FPS" "$RF2_C"); R_PY_C=$(div "$BUILD_C_FPS" "$PY_C")
R_ST_PY_W=$(div "$ST_FPS_W" "$PY_W")
R_REMOUNT_W=$(div "$REMOUNT_W" "$FIND_W"); R_REMOUNT_C=$(div "$REMOUNT_C" "$FIND_C")
# the targets of issue 17 (README "Benchmarks")
V_BUILD=$(verdict "$R_RF1_W" ">=" 0.25); V_PY=$(verdict "$R_PY_W" ">=" 15)
V_REMOUNT=$(verdict "$R_REMOUNT_W" "<=" 1.3); V_LS1=$(verdict "$LS1_R" ">=" 0.3); V_LS2=$(verdict "$LS2_R" ">=" 0.9)
V_CAT1=$(verdict "$CAT1_R" ">=" 0.3); V_CAT2=$(verdict "$CAT2_R" ">=" 0.9)

CPU=$(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)
HDR="dicomfs benchmark: N=$NSRC files ($(fmt_num "$SRC_MB" %.1f) MB), $(date -u '+%Y-%m-%d %H:%MZ'), $(uname -r), $(nproc) cpu ($CPU), runs=$RUNS (median)"
ms() { [[ $1 = n/a ]] && echo n/a || awk -v s="$1" 'BEGIN{printf "%.1f ms", s*1000}'; }
x() { [[ $1 = n/a ]] && echo n/a || printf '%.2fx' "$1"; }

{
echo
echo "$HDR"
echo "load average at start: $LOAD_START, at end: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews the figures)"
echo "archive: $ARCHIVE   binary: $DICOMFS_ORIG ($(sha256sum "$DICOMFS" | cut -c1-12), built $DICOMFS_BUILT)"
echo
printf '%-58s %16s\n' "1. INDEX BUILD" "files/s"
printf '  %-56s %16s   (%s to mounted)\n' "dicomfs build, warm, launch->mounted" "$(fmt_int "$BUILD_W_FPS")" "$(ms "$BUILD_W")"
printf '  %-56s %16s   (build_seconds %s)\n' "dicomfs build, warm, status.json files_per_second" "$(fmt_int "$ST_FPS_W")" "$ST_BS_W"
[[ $ST_PH_W != n/a && $ST_PH_W != "n/a n/a n/a n/a" ]] &&
	printf '    (status.json phases: walk %s s, parse %s s, tree %s s, commit %s s)\n' $ST_PH_W
printf '  %-56s %16s\n' "readfloor 1 thread, warm" "$(fmt_int "$RF1_W")"
printf '  %-56s %16s\n' "readfloor 2 threads, warm" "$(fmt_int "$RF2_W")"
printf '  %-56s %16s   (%s files sampled)\n' "pydicom dcmread(stop_before_pixels=True), warm" "$(fmt_int "$PY_W")" "$PYN"
printf '  %-56s %16s   (%s to mounted)\n' "dicomfs build, cold, launch->mounted" "$(fmt_int "$BUILD_C_FPS")" "$(ms "$BUILD_C")"
printf '  %-56s %16s   (build_seconds %s)\n' "dicomfs build, cold, status.json files_per_second" "$(fmt_int "$ST_FPS_C")" "$ST_BS_C"
printf '  %-56s %16s\n' "readfloor 1 thread, cold" "$(fmt_int "$RF1_C")"
printf '  %-56s %16s\n' "readfloor 2 threads, cold" "$(fmt_int "$RF2_C")"
printf '  %-56s %16s\n' "pydicom dcmread(stop_before_pixels=True), cold" "$(fmt_int "$PY_C")"
printf '  %-56s %16s\n' "ratio dicomfs/readfloor-1t, warm" "$(fmt_num "$R_RF1_W")"
printf '  %-56s %16s\n' "ratio dicomfs/readfloor-2t, warm" "$(fmt_num "$R_RF2_W")"
printf '  %-56s %16s   target >= 15    %s\n' "ratio dicomfs/pydicom, warm" "$(x "$R_PY_W")" "$V_PY"
printf '  %-56s %16s\n' "ratio dicomfs(status.json)/pydicom, warm" "$(x "$R_ST_PY_W")"
printf '  %-56s %16s\n' "ratio dicomfs/readfloor-1t, cold" "$(fmt_num "$R_RF1_C")"
printf '  %-56s %16s\n' "ratio dicomfs/readfloor-2t, cold" "$(fmt_num "$R_RF2_C")"
printf '  %-56s %16s\n' "ratio dicomfs/pydicom, cold" "$(x "$R_PY_C")"
printf '  %-56s %16s   target >= 0.25  %s\n' "ratio warm build (launch->mounted)/readfloor-1t" "$(fmt_num "$R_RF1_W" %.3f)" "$V_BUILD"
echo
printf '%-58s %16s\n' "2. REMOUNT (index exists, archive unchanged)" "time"
printf '  %-56s %16s\n' "dicomfs remount, warm, launch->mounted" "$(ms "$REMOUNT_W")"
printf '  %-56s %16s\n' "  of which inside dicomfs (status.json build_seconds)" "$(ms "$ST_REMOUNT_BS")"
printf '  %-56s %16s\n' "find ARCHIVE -type f -printf '%s %T@\\n', warm" "$(ms "$FIND_W")"
printf '  %-56s %16s   target <= 1.3   %s\n' "ratio remount/find, warm" "$(x "$R_REMOUNT_W")" "$V_REMOUNT"
printf '  %-56s %16s\n' "dicomfs remount, cold" "$(ms "$REMOUNT_C")"
printf '  %-56s %16s\n' "find ..., cold" "$(ms "$FIND_C")"
printf '  %-56s %16s\n' "ratio remount/find, cold" "$(x "$R_REMOUNT_C")"
echo
printf '%-58s %16s\n' "3. ls -lR MNT/patients ($NMNT_ALL files, $NMNT .dcm)" "time"
printf '  %-56s %16s\n' "mount, first (fresh mount)" "$(ms "$LS1")"
printf '  %-56s %16s\n' "mount, second" "$(ms "$LS2")"
printf '  %-56s %16s\n' "tmpfs copy of the same tree (best of $((RUNS + 1)))" "$(ms "$LS_TMPFS")"
printf '  %-56s %16s   target >= 0.3   %s\n' "ratio tmpfs/mount, first" "$(fmt_num "$LS1_R")" "$V_LS1"
printf '  %-56s %16s   target >= 0.9   %s\n' "ratio tmpfs/mount, second" "$(fmt_num "$LS2_R")" "$V_LS2"
echo
printf '%-58s %16s\n' "4. cat every .dcm (find -print0 | xargs -0 cat)" "MB/s"
printf '  %-56s %16s   (%s MB, %s)\n' "mount, first (fresh mount)" "$(fmt_num "$CAT1_MBS" %.1f)" "$(fmt_num "$MNT_MB" %.1f)" "$(ms "$CAT1")"
printf '  %-56s %16s   (%s)\n' "mount, repeated" "$(fmt_num "$CAT2_MBS" %.1f)" "$(ms "$CAT2")"
printf '  %-56s %16s   (%s MB, %s)\n' "source files, warm" "$(fmt_num "$CAT_SRC_MBS" %.1f)" "$(fmt_num "$SRC_MB" %.1f)" "$(ms "$CAT_SRC")"
printf '  %-56s %16s   target >= 0.3   %s\n' "ratio mount/source, first" "$(fmt_num "$CAT1_R")" "$V_CAT1"
printf '  %-56s %16s   target >= 0.9   %s\n' "ratio mount/source, repeated" "$(fmt_num "$CAT2_R")" "$V_CAT2"
printf '  %-56s %16s\n' "readfloor -a (whole files, no cat), 1 thread, mount" "$(fmt_num "$RFA_M1" %.1f)"
printf '  %-56s %16s\n' "readfloor -a (whole files, no cat), 1 thread, source" "$(fmt_num "$RFA_S1" %.1f)"
printf '  %-56s %16s\n' "ratio mount/source, readfloor -a 1 thread, repeated" "$(fmt_num "$RFA_R1")"
printf '  %-56s %16s\n' "readfloor -a, 2 threads, mount" "$(fmt_num "$RFA_M2" %.1f)"
printf '  %-56s %16s\n' "readfloor -a, 2 threads, source" "$(fmt_num "$RFA_S2" %.1f)"
printf '  %-56s %16s\n' "ratio mount/source, readfloor -a 2 threads, repeated" "$(fmt_num "$RFA_R2")"
[[ $MNT_BYTES = "$SRC_BYTES" ]] || printf '  note: bytes served by the mount (%s) differ from the archive (%s)\n' "$MNT_BYTES" "$SRC_BYTES"
[[ $NMNT = "$NSRC" ]] || printf '  note: the mount shows %s .dcm files, the archive has %s files\n' "$NMNT" "$NSRC"
echo
echo "----- summary (paste into README) -----"
echo "$HDR"
echo "load average at start: $LOAD_START"
echo
echo "| measurement | dicomfs | baseline | ratio | target |"
echo "|---|---|---|---|---|"
echo "| index build, warm (files/s) | $(fmt_int "$BUILD_W_FPS") (status.json $(fmt_int "$ST_FPS_W")) | readfloor 1t $(fmt_int "$RF1_W"), 2t $(fmt_int "$RF2_W") | $(fmt_num "$R_RF1_W" %.2f) / $(fmt_num "$R_RF2_W" %.2f) | >= 0.25 (1t): $V_BUILD |"
echo "| index build, warm vs pydicom (files/s) | $(fmt_int "$BUILD_W_FPS") | pydicom $(fmt_int "$PY_W") | $(x "$R_PY_W") | >= 15x: $V_PY |"
echo "| index build, cold (files/s) | $(fmt_int "$BUILD_C_FPS") (status.json $(fmt_int "$ST_FPS_C")) | readfloor 1t $(fmt_int "$RF1_C"), 2t $(fmt_int "$RF2_C"); pydicom $(fmt_int "$PY_C") | $(fmt_num "$R_RF1_C" %.2f) / $(fmt_num "$R_RF2_C" %.2f) / $(x "$R_PY_C") | - |"
echo "| remount, warm | $(ms "$REMOUNT_W") | find -printf $(ms "$FIND_W") | $(x "$R_REMOUNT_W") | <= 1.3x: $V_REMOUNT |"
echo "| remount, cold | $(ms "$REMOUNT_C") | find -printf $(ms "$FIND_C") | $(x "$R_REMOUNT_C") | - |"
echo "| ls -lR, first | $(ms "$LS1") | tmpfs $(ms "$LS_TMPFS") | $(fmt_num "$LS1_R" %.2f) | >= 0.3: $V_LS1 |"
echo "| ls -lR, second | $(ms "$LS2") | tmpfs $(ms "$LS_TMPFS") | $(fmt_num "$LS2_R" %.2f) | >= 0.9: $V_LS2 |"
echo "| cat all .dcm, first (MB/s) | $(fmt_num "$CAT1_MBS" %.1f) | source $(fmt_num "$CAT_SRC_MBS" %.1f) | $(fmt_num "$CAT1_R" %.2f) | >= 0.3: $V_CAT1 |"
echo "| cat all .dcm, repeated (MB/s) | $(fmt_num "$CAT2_MBS" %.1f) | source $(fmt_num "$CAT_SRC_MBS" %.1f) | $(fmt_num "$CAT2_R" %.2f) | >= 0.9: $V_CAT2 |"
echo "| read all .dcm whole, no cat, repeated, 1 / 2 threads (MB/s) | $(fmt_num "$RFA_M1" %.1f) / $(fmt_num "$RFA_M2" %.1f) | source $(fmt_num "$RFA_S1" %.1f) / $(fmt_num "$RFA_S2" %.1f) | $(fmt_num "$RFA_R1" %.2f) / $(fmt_num "$RFA_R2" %.2f) | - |"
echo "---------------------------------------"
}
log "done"
