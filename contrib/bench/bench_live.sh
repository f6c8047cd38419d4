#!/usr/bin/env bash
# bench_live.sh [N] - a live archive (index.h I9): time to visibility and
# idle cost, side by side with their baselines in one run:
#   1. one file arriving (cp to a temporary name + mv): until its uids/ path
#      stats through the mount, against a remount (unmount, mount, stat:
#      what showing a new file took before);
#   2. 1,000 files arriving at once (cp of a directory): until status.json
#      counts them, against a remount;
#   3. CPU time of the daemon while idle for IDLE seconds with inotify
#      watches, against the same mount polling (-o rescan=10);
#   4. 1. and 2. again with the whole tree rebuilt per batch
#      (DICOMFS_TREE_FULL=1: the way before the update in place, index.h
#      I11), and the tree phase's CPU time per batch of both ways.
# Wall times include waiting for the CPU on a loaded machine; the CPU
# seconds of the daemon (live thread, tree; not the parser processes)
# are given beside them.
# The archive: N generated files (default 20,000; cached under $BENCH_DIR).
#
# Environment: DICOMFS, BENCH_DIR (default /var/tmp/dicomfs-bench), PYTHON,
# IDLE (seconds, default 60), RUNS (single arrivals measured, median; 3).
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

N=${1:-20000}
case $N in '' | *[!0-9]*) echo "usage: $0 [N]" >&2; exit 2 ;; esac
IDLE=${IDLE:-60}
RUNS=${RUNS:-3}
GENL=$ROOT/tests/gen_live.py

bench_dicomfs
command -v fusermount3 >/dev/null || die "fusermount3 not found"

since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.3f", b-a}'; }

mkdir -p "$BENCH_DIR" || die "cannot create $BENCH_DIR"
SRC=$BENCH_DIR/live-archive-$N
if [[ ! -f $SRC/.complete ]]; then
	rm -rf "$SRC"
	if [[ -f $BENCH_DIR/archive-$N.done ]]; then
		# the archive of the other benchmarks, hard-linked: new files go
		# into this copy only
		log "linking $BENCH_DIR/archive-$N to $SRC"
		cp -al "$BENCH_DIR/archive-$N" "$SRC" || die "cp -al failed"
	else
		log "generating $N files in $SRC"
		"$PY" "$GEN" --count "$N" "$SRC" >/dev/null || die "generator failed"
	fi
	touch "$SRC/.complete"
fi
WORK=$(mktemp -d "$BENCH_DIR/live.XXXXXX")
MNT=$WORK/mnt
IDX=$WORK/index
mkdir -p "$MNT"
PID=
cleanup() {
	fusermount3 -u "$MNT" 2>/dev/null
	[[ -n $PID ]] && wait "$PID" 2>/dev/null
	rm -rf "$SRC/live-in" "$WORK"
}
trap cleanup EXIT
rm -rf "$SRC/live-in"

mount_it() { # mount_it [options]: mount (foreground daemon in background)
	"$DICOMFS" -f -o index="$IDX" -o quiet "$@" "$SRC" "$MNT" 2>>"$WORK/daemon.log" &
	PID=$!
	until mountpoint -q "$MNT"; do
		kill -0 "$PID" 2>/dev/null || die "dicomfs exited (see $WORK/daemon.log)"
		sleep 0.05
	done
}
umount_it() {
	fusermount3 -u "$MNT"
	wait "$PID" 2>/dev/null
	PID=
}
wait_path() { until stat "$1" >/dev/null 2>&1; do sleep 0.01; done; }
instances() {
	"$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["instances"])' \
		"$MNT/.dicomfs/status.json"
}
uid_path() { # uid_path PATIENT N: the uids/ path of instance N of gen_live
	local st="2.25.31415926.9.$((1000 + $1)).1"
	printf '%s/uids/%s/%s.1/%s.1.%d.dcm' "$MNT" "$st" "$st" "$st" "$2"
}
median() { sort -n | awk '{v[NR]=$1} END{print v[int((NR+1)/2)]}'; }
cpu() { # CPU seconds (user + system) of the daemon and its children so far
	awk '{printf "%.2f", ($14 + $15 + $16 + $17) / 100}' "/proc/$PID/stat"
}
cpu_since() { awk -v a="$1" -v b="$(cpu)" 'BEGIN{printf "%.2f", b-a}'; }
# tree_cpu FROM: median tree CPU of the daemon log's batches after line FROM
tree_cpu() { tail -n +"$(($1 + 1))" "$WORK/daemon.log" | grep -o 'CPU [0-9.]*' | awk '{print $2}' | median; }
# arrivals PREFIX PATIENT: time to visibility of one arrival (-> ONE_T,
# ONE_C: wall, daemon CPU) and of 1,000 (-> K_T, K_C)
arrivals() {
	"$PY" "$GENL" "$WORK/$1o" --patient "$2" --count 1 --prefix "$1o"
	local f t c before
	f=$(ls "$WORK/$1o")
	c=$(cpu)
	t=$(now)
	cp "$WORK/$1o/$f" "$SRC/live-in/.$f.tmp" && mv "$SRC/live-in/.$f.tmp" "$SRC/live-in/$f"
	wait_path "$(uid_path "$2" 1)"
	ONE_T=$(since "$t")
	ONE_C=$(cpu_since "$c")
	sleep 1
	"$PY" "$GENL" "$WORK/$1k" --patient $(($2 + 1)) --count 1000 --series 4 --prefix "$1k"
	before=$(instances)
	c=$(cpu)
	t=$(now)
	cp -r "$WORK/$1k" "$SRC/live-in/$1k"
	until [[ $(instances 2>/dev/null) -ge $((before + 1000)) ]]; do sleep 0.02; done
	K_T=$(since "$t")
	K_C=$(cpu_since "$c")
}

log "first mount (index build of $N files)"
mount_it
mkdir -p "$SRC/live-in"
sleep 2   # the parser process of the live thread starts (I9)

# ---- 1. one arrival ----
: >"$WORK/one"
for r in $(seq "$RUNS"); do
	"$PY" "$GENL" "$WORK/one$r" --patient $((9000 + r)) --count 1 --prefix one$r
	f=$(ls "$WORK/one$r")
	t=$(now)
	cp "$WORK/one$r/$f" "$SRC/live-in/.$f.tmp" && mv "$SRC/live-in/.$f.tmp" "$SRC/live-in/$f"
	wait_path "$(uid_path $((9000 + r)) 1)"
	since "$t" >>"$WORK/one"
	echo >>"$WORK/one"
	sleep 1
done
ONE=$(median <"$WORK/one")
# baseline: the same arrival shown by a remount
"$PY" "$GENL" "$WORK/oneb" --patient 9100 --count 1 --prefix oneb
t=$(now)
cp "$WORK/oneb/"* "$SRC/live-in/"
umount_it
mount_it
wait_path "$(uid_path 9100 1)"
ONE_REMOUNT=$(since "$t")
log "one arrival: live ${ONE}s, remount ${ONE_REMOUNT}s"
sleep 2

# ---- 2. 1,000 arrivals at once ----
"$PY" "$GENL" "$WORK/k" --patient 9200 --count 1000 --series 4 --prefix k
before=$(instances)
t=$(now)
cp -r "$WORK/k" "$SRC/live-in/k"
until [[ $(instances 2>/dev/null) -ge $((before + 1000)) ]]; do sleep 0.02; done
THOUSAND=$(since "$t")
"$PY" "$GENL" "$WORK/kb" --patient 9300 --count 1000 --series 4 --prefix kb
t=$(now)
cp -r "$WORK/kb" "$SRC/live-in/kb"
umount_it
mount_it
until [[ $(instances 2>/dev/null) -ge $((before + 2000)) ]]; do sleep 0.02; done
THOUSAND_REMOUNT=$(since "$t")
log "1,000 arrivals: live ${THOUSAND}s, remount ${THOUSAND_REMOUNT}s"
grep 'live: batch' "$WORK/daemon.log" >&2
# the tree phase's CPU time per batch: what an idle machine would wait
TREE_CPU=$(grep -o 'CPU [0-9.]*' "$WORK/daemon.log" | awk '{print $2}' | median)

# ---- 4. the update in place against the whole tree rebuilt ----
sleep 2
mark=$(wc -l <"$WORK/daemon.log")
arrivals n 9600
N_ONE=$ONE_T N_ONE_C=$ONE_C N_K=$K_T N_K_C=$K_C N_TREE=$(tree_cpu "$mark")
log "update in place: 1 arrival ${N_ONE}s (CPU ${N_ONE_C}), 1,000 ${N_K}s (CPU ${N_K_C}), tree CPU ${N_TREE}s"
umount_it
DICOMFS_TREE_FULL=1 mount_it
sleep 2
mark=$(wc -l <"$WORK/daemon.log")
arrivals f 9700
F_ONE=$ONE_T F_ONE_C=$ONE_C F_K=$K_T F_K_C=$K_C F_TREE=$(tree_cpu "$mark")
log "whole tree rebuilt: 1 arrival ${F_ONE}s (CPU ${F_ONE_C}), 1,000 ${F_K}s (CPU ${F_K_C}), tree CPU ${F_TREE}s"
umount_it
mount_it

# ---- 3. idle CPU: watches vs polling ----
sleep 3
c0=$(cpu); sleep "$IDLE"; c1=$(cpu)
IDLE_WATCH=$(awk -v a="$c0" -v b="$c1" 'BEGIN{printf "%.2f", b-a}')
umount_it
mount_it -o rescan=10
sleep 3
c0=$(cpu); sleep "$IDLE"; c1=$(cpu)
IDLE_POLL=$(awk -v a="$c0" -v b="$c1" 'BEGIN{printf "%.2f", b-a}')
umount_it
log "idle ${IDLE}s: watches ${IDLE_WATCH} CPU s, polling every 10 s ${IDLE_POLL} CPU s"

ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b > 0) printf "%.3f", a/b; else print "-" }'; }
cat <<EOF

Live archive, $N files (2 cores; load $(cut -d' ' -f1-3 /proc/loadavg))
| measurement | dicomfs live | baseline | ratio | target |
|---|---|---|---|---|
| 1 arrival visible (median of $RUNS) | ${ONE} s | remount ${ONE_REMOUNT} s | $(ratio "$ONE" "$ONE_REMOUNT") | <= 2 s |
| 1,000 arrivals visible | ${THOUSAND} s | remount ${THOUSAND_REMOUNT} s | $(ratio "$THOUSAND" "$THOUSAND_REMOUNT") | <= 2 s |
| tree phase per batch, CPU (median) | ${TREE_CPU} s | - | - | - |
| idle CPU, ${IDLE} s | ${IDLE_WATCH} s (inotify) | ${IDLE_POLL} s (rescan=10) | $(ratio "$IDLE_WATCH" "$IDLE_POLL") | ~0 |

Update in place (I11) against the whole tree rebuilt per batch (DICOMFS_TREE_FULL=1), same mount options
| measurement | in place: wall (daemon CPU) | whole rebuild: wall (daemon CPU) | ratio wall | ratio CPU |
|---|---|---|---|---|
| 1 arrival visible | ${N_ONE} s (${N_ONE_C} s) | ${F_ONE} s (${F_ONE_C} s) | $(ratio "$N_ONE" "$F_ONE") | $(ratio "$N_ONE_C" "$F_ONE_C") |
| 1,000 arrivals visible | ${N_K} s (${N_K_C} s) | ${F_K} s (${F_K_C} s) | $(ratio "$N_K" "$F_K") | $(ratio "$N_K_C" "$F_K_C") |
| tree phase per batch, CPU (median) | ${N_TREE} s | ${F_TREE} s | - | $(ratio "$N_TREE" "$F_TREE") |
EOF
