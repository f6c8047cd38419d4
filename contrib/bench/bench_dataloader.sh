#!/usr/bin/env bash
# bench_dataloader.sh - a PyTorch DataLoader reading <instance>.npy through a
# dicomfs mount vs the same DataLoader decoding the sources with pydicom.
#
#   1. mixed: 10 series x 40 instances of 256x256 16-bit CT, two series per
#      transfer syntax: explicit VR little endian, JPEG lossless (process
#      14), JPEG-LS, JPEG 2000 and RLE (gdcmconv);
#   2. 512: 2 series x 100 instances of uncompressed 512x512.
# Each set: the paths come from a query manifest (query/instances/
# PatientID=.../manifest.csv; .dcm -> .npy), the pydicom side reads the
# same instances' source files; shuffled (fixed seed), batches of 16, 2
# persistent workers, 5 epochs, side by side in one run on a fresh mount.
# Also: the same loader opening each .npy unbuffered (np.load(open(p, 'rb',
# buffering=0)): no isatty() ioctl, which FUSE sends to the daemon; the
# .npy memory-mapped (np.load(p, mmap_mode='r'), and npy_map of
# bench_dataloader.py: the header read unbuffered, then mmap), where the
# DataLoader's collate copies from the page cache and no fresh array is
# filled first;
# a repeated np.load of the .npy files through the mount vs the same
# files copied to tmpfs (/dev/shm), the first epoch without decode-ahead
# (DICOMFS_NO_AHEAD=1, a fresh mount), the DataLoader alone (a reader
# that returns an empty array: the floor of both sides) and the same loader
# on copies of the .npy files in tmpfs (/dev/shm: what np.load costs with
# no filesystem in the way, the ceiling of any mount). Prints samples/s
# and the ratios.
#
# python3-torch (Debian) is installed here with apt-get when missing (the
# project does not depend on it). Run as root from the project root after a
# build. Environment: DICOMFS (default <root>/dicomfs), BENCH_DIR (default
# /var/tmp/dicomfs-bench), EPOCHS (5), WORKERS (2), PYTHON (/usr/bin/python3),
# MOUNT_OPTS (extra -o options for the mount), ROUNDS (2: alternating rounds,
# the best time of each side kept).
# NPYLOAD_ONLY=1: only the repeated np.load (no torch): the mixed set through
# a default mount, through one with -o opens=each (an OPEN round trip per
# load, fs/fs.h Z1), through one with -o cpu_latency=off (the isatty()
# round trip without the wake-up latency hold, fs/cpulat.h) and from tmpfs,
# side by side, best of ROUNDS.
set -u -o pipefail
export LC_ALL=C
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)
DICOMFS=${DICOMFS:-$ROOT/dicomfs}
BENCH_DIR=${BENCH_DIR:-/var/tmp/dicomfs-bench}
EPOCHS=${EPOCHS:-5}
WORKERS=${WORKERS:-2}
PY=${PYTHON:-/usr/bin/python3}
HELP=$SCRIPT_DIR/bench_dataloader.py
MOUNT_OPTS=${MOUNT_OPTS:-}

log() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
[[ -x $DICOMFS ]] || die "no dicomfs at $DICOMFS"
command -v gdcmconv >/dev/null || die "gdcmconv missing (libgdcm-tools)"
if [[ -z ${NPYLOAD_ONLY:-} ]] && ! "$PY" -c 'import torch' 2>/dev/null; then
	log "installing python3-torch (apt-get)"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-torch >/dev/null ||
		die "cannot install python3-torch"
fi
mkdir -p "$BENCH_DIR"
W=$(mktemp -d "$BENCH_DIR/loader.XXXXXX")
MNT=$W/mnt
SHM=$(mktemp -d /dev/shm/dicomfs-loader.XXXXXX)
mkdir -p "$MNT"
cleanup() {
	mountpoint -q "$MNT" && fusermount3 -u "$MNT"
	[[ -n ${PID:-} ]] && wait "$PID" 2>/dev/null
	rm -rf "$W" "$SHM"
}
trap cleanup EXIT
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }

# ---- fixtures (cached in BENCH_DIR) ----
MIX=$BENCH_DIR/loader-mixed-256
if [[ ! -f $MIX.done ]]; then
	log "generating 400 256x256 instances in 5 transfer syntaxes into $MIX"
	rm -rf "$MIX" "$MIX.raw"
	"$PY" "$HELP" gen "$MIX.raw" 256 40 10 || die "generator failed"
	mkdir -p "$MIX"
	i=0
	for ts in raw jpeg jls j2k rle; do
		for s in 0 1; do
			src=$MIX.raw/s$(printf %02d $((i * 2 + s)))
			dst=$MIX/$ts-$s
			mkdir -p "$dst"
			for f in "$src"/*.dcm; do
				case $ts in
				raw) cp "$f" "$dst/" ;;
				jpeg) gdcmconv --jpeg "$f" "$dst/${f##*/}" ;;
				jls) gdcmconv --jpegls "$f" "$dst/${f##*/}" ;;
				j2k) gdcmconv --j2k "$f" "$dst/${f##*/}" ;;
				rle) gdcmconv --rle "$f" "$dst/${f##*/}" ;;
				esac || die "gdcmconv $ts failed"
			done
		done
		i=$((i + 1))
	done
	rm -rf "$MIX.raw"
	touch "$MIX.done"
fi
BIG=$BENCH_DIR/loader-512
if [[ ! -f $BIG.done ]]; then
	log "generating 200 512x512 uncompressed instances into $BIG"
	rm -rf "$BIG"
	"$PY" "$HELP" gen "$BIG" 512 100 2 || die "generator failed"
	touch "$BIG.done"
fi

declare -a ROWS
row() { ROWS+=("$(printf '%-46s %9s %9s %7s %s' "$@")"); }

# lists NAME ARCHIVE PATIENTID: $W/NAME.npy (mount paths) and $W/NAME.src
lists() {
	local man=$MNT/query/instances/PatientID=$3/manifest.csv
	"$PY" - "$man" "$MNT" "$2" "$W/$1" <<'EOF' || die "reading the manifest failed"
import csv, os, sys
man, mnt, arch, out = sys.argv[1:]
src = {}
for d, _, fs in os.walk(arch):
    for f in fs:
        src[f[:-4]] = os.path.join(d, f)
rows = list(csv.DictReader(open(man)))
with open(out + ".npy", "w") as a, open(out + ".src", "w") as b:
    for r in rows:
        a.write(os.path.join(mnt, r["path"][:-4] + ".npy") + "\n")
        b.write(src[r["SOPInstanceUID"]] + "\n")
EOF
}

PID=
mount_it() { # mount_it NAME ARCHIVE: a fresh daemon (nothing decoded yet)
	"$DICOMFS" -f -o index="$W/idx.$1" -o quiet ${MOUNT_OPTS:+-o "$MOUNT_OPTS"} "$2" "$MNT" \
		2>>"$W/log" &
	PID=$!
	local i
	for ((i = 0; i < 3000; i++)); do
		mountpoint -q "$MNT" && [[ -f $MNT/.dicomfs/status.json ]] && return 0
		kill -0 "$PID" 2>/dev/null || die "mount failed: $(cat "$W/log")"
		sleep 0.1
	done
	die "not mounted after 300 s"
}
umount_it() { fusermount3 -u "$MNT" || { sleep 1; fusermount3 -u "$MNT"; }; wait "$PID"; PID=; }
min() { awk -v a="$1" -v b="$2" 'BEGIN { print (b == "" || a + 0 <= b + 0) ? a : b }'; }
# fresh NAME ARCHIVE MODE: the loader MODE through a fresh mount (nothing
# decoded yet); FT, FF: its seconds and its first epoch's
fresh() {
	local out
	mount_it "$1" "$2"
	out=$("$PY" "$HELP" load "$3" "$W/$1.npy" "$EPOCHS" "$WORKERS") || die "$3 loader failed"
	umount_it
	read -r FT _ FF <<< "$out"
}
sps() { awk -v n="$1" -v e="$2" -v t="$3" 'BEGIN { printf "%.0f", n * e / t }'; }

# One round: pydicom, .npy on a fresh mount (EPOCHS), .npy first epoch
# without decode-ahead on a fresh mount (mixed only), the null reader.
# ROUNDS rounds alternate (the machine is shared): the best of each.
ROUNDS=${ROUNDS:-2}
loader() { # loader NAME ARCHIVE PATIENTID
	local name=$1 arch=$2 out n r t f
	local t_py= f_py= t_fs= f_fs= f_na= f_ah= t_null= t_raw= f_raw= t_shm=
	local t_mm= t_map= f_map= t_shmmap=
	mount_it "$name" "$arch"
	lists "$name" "$arch" "$3"
	# the same .npy files in tmpfs (the tmpfs row: no filesystem in the way)
	mkdir -p "$SHM/$name"
	local i=0 p
	while read -r p; do cp "$p" "$SHM/$name/$i.npy" || die "copy to tmpfs failed"
		echo "$SHM/$name/$i.npy"; i=$((i + 1)); done < "$W/$name.npy" > "$W/$name.shm"
	umount_it
	n=$(wc -l < "$W/$name.npy")
	xargs -a "$W/$name.src" -d '\n' cat > /dev/null   # sources warm
	for ((r = 1; r <= ROUNDS; r++)); do
		log "$name round $r: pydicom on the sources ($n samples x $EPOCHS epochs)"
		out=$("$PY" "$HELP" load pydicom "$W/$name.src" "$EPOCHS" "$WORKERS") || die "pydicom loader failed"
		read -r t _ f <<< "$out"; t_py=$(min "$t" "$t_py"); f_py=$(min "$f" "$f_py")
		log "$name round $r: .npy through a fresh mount"
		mount_it "$name" "$arch"
		out=$("$PY" "$HELP" load npy "$W/$name.npy" "$EPOCHS" "$WORKERS") || die "npy loader failed"
		read -r t _ f <<< "$out"; t_fs=$(min "$t" "$t_fs"); f_fs=$(min "$f" "$f_fs")
		if [[ $name == mixed256 && $r == 1 ]]; then
			# repeated np.load: the mount (page cache warm) vs tmpfs copies
			head -n 100 "$W/$name.npy" > "$W/np.list"
			local i=0
			while read -r p; do cp "$p" "$SHM/$i.npy"; echo "$SHM/$i.npy"; i=$((i + 1)); done \
				< "$W/np.list" > "$W/shm.list"
			# best of 3 alternating (the mount's decode-ahead may still be
			# at work after the loader: NPYLOAD_ONLY=1 measures it alone)
			local l_fs= l_shm= k
			for k in 1 2 3; do
				t=$("$PY" "$HELP" npyload "$W/np.list" 20); l_fs=$(min "$t" "$l_fs")
				t=$("$PY" "$HELP" npyload "$W/shm.list" 20); l_shm=$(min "$t" "$l_shm")
			done
			row "repeated np.load 256x256: tmpfs / dicomfs" \
				"$(awk -v a="$l_shm" 'BEGIN { printf "%.3f ms", a * 1000 }')" \
				"$(awk -v a="$l_fs" 'BEGIN { printf "%.3f ms", a * 1000 }')" \
				"$(ratio "$l_shm" "$l_fs")" "x tmpfs"
		fi
		log "$name round $r: the DataLoader alone (null reader)"
		out=$("$PY" "$HELP" load null "$W/$name.npy" "$EPOCHS" "$WORKERS") || die "null loader failed"
		read -r t _ _ <<< "$out"; t_null=$(min "$t" "$t_null")
		log "$name round $r: the same loader on tmpfs copies of the .npy files"
		out=$("$PY" "$HELP" load npy "$W/$name.shm" "$EPOCHS" "$WORKERS") || die "tmpfs loader failed"
		read -r t _ _ <<< "$out"; t_shm=$(min "$t" "$t_shm")
		umount_it
		log "$name round $r: .npy opened unbuffered, through a fresh mount"
		fresh "$name" "$arch" npyraw; t_raw=$(min "$FT" "$t_raw"); f_raw=$(min "$FF" "$f_raw")
		# memory-mapped: no copy into a fresh array, the DataLoader's
		# collate copies from the page cache (numpy's own np.load
		# mmap_mode='r', and npy_map: the header read unbuffered)
		log "$name round $r: .npy with np.load(p, mmap_mode='r'), through a fresh mount"
		fresh "$name" "$arch" npymmap; t_mm=$(min "$FT" "$t_mm")
		log "$name round $r: .npy memory-mapped by npy_map, through a fresh mount"
		fresh "$name" "$arch" npymap; t_map=$(min "$FT" "$t_map"); f_map=$(min "$FF" "$f_map")
		out=$("$PY" "$HELP" load npymap "$W/$name.shm" "$EPOCHS" "$WORKERS") || die "tmpfs npymap loader failed"
		read -r t _ _ <<< "$out"; t_shmmap=$(min "$t" "$t_shmmap")
		if [[ $name == mixed256 ]]; then
			# the first epoch without and with decode-ahead (fs/kind_pixels.c P10, on by default)
			log "$name round $r: first epoch, no decode-ahead / with"
			DICOMFS_NO_AHEAD=1 mount_it "$name" "$arch"
			out=$("$PY" "$HELP" load npy "$W/$name.npy" 1 "$WORKERS") || die "npy loader failed"
			read -r t _ _ <<< "$out"; f_na=$(min "$t" "$f_na")
			umount_it
			mount_it "$name" "$arch"
			out=$("$PY" "$HELP" load npy "$W/$name.npy" 1 "$WORKERS") || die "npy loader failed"
			read -r t _ _ <<< "$out"; f_ah=$(min "$t" "$f_ah")
			umount_it
		fi
	done
	row "$name: pydicom on the sources" "$t_py" "$(sps "$n" "$EPOCHS" "$t_py")" "" ""
	row "$name: .npy through dicomfs" "$t_fs" "$(sps "$n" "$EPOCHS" "$t_fs")" \
		"$(ratio "$t_py" "$t_fs")" "x pydicom"
	row "$name: .npy, np.load(open(p, 'rb', buffering=0))" "$t_raw" "$(sps "$n" "$EPOCHS" "$t_raw")" \
		"$(ratio "$t_py" "$t_raw")" "x pydicom"
	row "$name: .npy, np.load(p, mmap_mode='r')" "$t_mm" "$(sps "$n" "$EPOCHS" "$t_mm")" \
		"$(ratio "$t_py" "$t_mm")" "x pydicom"
	row "$name: .npy memory-mapped by npy_map" "$t_map" "$(sps "$n" "$EPOCHS" "$t_map")" \
		"$(ratio "$t_py" "$t_map")" "x pydicom"
	row "$name: npy_map on the tmpfs copies" "$t_shmmap" "$(sps "$n" "$EPOCHS" "$t_shmmap")" \
		"$(ratio "$t_py" "$t_shmmap")" "x pydicom (its ceiling)"
	row "$name: first epoch, pydicom / npy_map" "$f_py" "$f_map" "$(ratio "$f_py" "$f_map")" "x pydicom"
	row "$name: DataLoader alone (null reader)" "$t_null" "$(sps "$n" "$EPOCHS" "$t_null")" \
		"$(ratio "$t_py" "$t_null")" "x pydicom (the ceiling)"
	row "$name: the same .npy copied to tmpfs" "$t_shm" "$(sps "$n" "$EPOCHS" "$t_shm")" \
		"$(ratio "$t_py" "$t_shm")" "x pydicom (any mount's ceiling)"
	row "$name: dicomfs against those tmpfs copies" "" "" "$(ratio "$t_shm" "$t_fs")" "x tmpfs"
	row "$name: first epoch, pydicom / dicomfs" "$f_py" "$f_fs" "$(ratio "$f_py" "$f_fs")" "x pydicom"
	[[ -n $f_na ]] &&
		row "$name: first epoch, no decode-ahead / with" "$f_na" "$f_ah" "$(ratio "$f_na" "$f_ah")" "x"
	return 0
}

if [[ -n ${NPYLOAD_ONLY:-} ]]; then
	# the repeated np.load alone: default mount, opens=each, cpu_latency=off
	# (fs/cpulat.h: no wake-up latency hold), tmpfs
	mount_it mixed256 "$MIX"
	lists mixed256 "$MIX" BL256
	umount_it
	head -n 100 "$W/mixed256.npy" > "$W/np.list"
	l_fs= l_each= l_off= l_shm= l_fsraw= l_shmraw=
	for ((r = 1; r <= ROUNDS; r++)); do
		for mode in auto each off; do
			if [[ $mode == off ]]; then
				MOUNT_OPTS=cpu_latency=off mount_it mixed256 "$MIX"
			else
				MOUNT_OPTS=opens=$mode mount_it mixed256 "$MIX"
			fi
			if [[ $r == 1 && $mode == auto ]]; then
				i=0
				while read -r p; do cp "$p" "$SHM/$i.npy"; echo "$SHM/$i.npy"; i=$((i + 1)); done \
					< "$W/np.list" > "$W/shm.list"
			fi
			t=$("$PY" "$HELP" npyload "$W/np.list" 20)
			if [[ $mode == auto ]]; then
				l_fs=$(min "$t" "$l_fs")
				t=$("$PY" "$HELP" npyload "$W/np.list" 20 raw); l_fsraw=$(min "$t" "$l_fsraw")
			elif [[ $mode == each ]]; then
				l_each=$(min "$t" "$l_each")
			else
				l_off=$(min "$t" "$l_off")
			fi
			umount_it
		done
		t=$("$PY" "$HELP" npyload "$W/shm.list" 20); l_shm=$(min "$t" "$l_shm")
		t=$("$PY" "$HELP" npyload "$W/shm.list" 20 raw); l_shmraw=$(min "$t" "$l_shmraw")
	done
	ms() { awk -v a="$1" 'BEGIN { printf "%.3f ms", a * 1000 }'; }
	row "repeated np.load 256x256: tmpfs / dicomfs" "$(ms "$l_shm")" "$(ms "$l_fs")" \
		"$(ratio "$l_shm" "$l_fs")" "x tmpfs"
	row "the same, -o opens=each: tmpfs / dicomfs" "$(ms "$l_shm")" "$(ms "$l_each")" \
		"$(ratio "$l_shm" "$l_each")" "x tmpfs"
	row "the same, -o cpu_latency=off: tmpfs / dicomfs" "$(ms "$l_shm")" "$(ms "$l_off")" \
		"$(ratio "$l_shm" "$l_off")" "x tmpfs"
	row "np.load(open(p, 'rb', buffering=0)): tmpfs / dicomfs" "$(ms "$l_shmraw")" \
		"$(ms "$l_fsraw")" "$(ratio "$l_shmraw" "$l_fsraw")" "x tmpfs"
	printf '\n%-46s %9s %9s %7s\n' "measurement (best of $ROUNDS)" "tmpfs" "dicomfs" "ratio"
	printf '%s\n' "${ROWS[@]}"
	echo "($(nproc) CPUs, load $(cut -d' ' -f1 /proc/loadavg))"
	exit 0
fi
loader mixed256 "$MIX" BL256
loader u512 "$BIG" BL512

printf '\n%-46s %9s %9s %7s\n' "measurement ($WORKERS workers, $EPOCHS epochs)" "seconds" "samples/s" "ratio"
printf '%s\n' "${ROWS[@]}"
echo "(best of $ROUNDS alternating rounds; first-epoch rows: the two times in seconds;"
echo " $(nproc) CPUs, load $(cut -d' ' -f1 /proc/loadavg))"
