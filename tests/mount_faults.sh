#!/bin/bash
# Fault injection while mounted: with parallel readers running (readdir,
# stat, getxattr, reads of every file kind: .dcm .json .npy .png and level
# files), source files are mutated in place, truncated, deleted, chmod 000'd
# and replaced. Errors (EIO, ENOENT) happen only on the files derived from
# the affected sources; each affected source gets an errors.tsv line; the
# daemon neither crashes nor leaks file descriptors (/proc/PID/fd counted
# before and after); the mount answers at the end.
. "${srcdir:-$(dirname "$0")/..}/tests/lib.sh"
setup

ARCH="$TMP/arch"
MNT="$TMP/mnt"
# the per-file checks of a source changed under its index (source.h R2):
# without the watch, which would re-index the victims (mount_live.sh)
export DICOMFS_NO_WATCH=1
"$PY" "$GEN" "$ARCH" --expected "$TMP/expected" >/dev/null || fatal "gen_archive.py failed"
mount_start "$MNT" "$ARCH" -o index="$TMP/idx" || exit 1
P="$MNT/patients"

# warm-up: every file once (starts the decoder processes), then count fds
timeout 120 "$PY" "$srcdir/tests/readall.py" "$MNT" >"$TMP/warm.out" 2>&1 ||
	fail "warm-up read failed: $(head -5 "$TMP/warm.out")"
sleep 0.5
fd0=$(ls /proc/"$MOUNT_PID"/fd | wc -l)
# (children too: decoder processes)
kids0=$(pgrep -P "$MOUNT_PID" | wc -l)
log "daemon fds before: $fd0 ($kids0 child processes)"

# five victims among the served instances (sources list: "inst\tsource")
mapfile -t victims < <(awk -F'\t' 'NR % 6 == 2' "$TMP/expected.sources" | head -5)
[ "${#victims[@]}" -eq 5 ] || fatal "not enough instances to pick victims"
: >"$TMP/affected"
for v in "${victims[@]}"; do
	inst=${v%%	*}
	echo "${inst%.dcm}" >>"$TMP/affected"
done

# readers: loop over the whole tree until told to stop
: >"$TMP/stop"
rm -f "$TMP/stop"
for k in 1 2 3 4; do
	(
		while [ ! -e "$TMP/stop" ]; do
			"$PY" "$srcdir/tests/readall.py" "$MNT" --threads 4 --allow EIO,ENOENT >>"$TMP/r.$k.out" 2>&1
		done
	) &
	rpids="${rpids:-} $!"
done
sleep 1
i=0
for v in "${victims[@]}"; do
	src="$ARCH/${v#*	}"
	case $i in
	0) printf 'garbage!' | dd of="$src" bs=1 seek=200 conv=notrunc status=none; what="mutated" ;;
	1) truncate -s 300 "$src"; what="truncated" ;;
	2) rm -f "$src"; what="deleted" ;;
	3) chmod 000 "$src"; what="chmod 000" ;;
	4) cp "$src" "$src.new" && printf 'x' >>"$src.new" && mv "$src.new" "$src"; what="replaced" ;;
	esac
	log "$what: ${v#*	}"
	i=$((i + 1))
	sleep 0.5
done
sleep 2
touch "$TMP/stop"
for p in $rpids; do wait "$p"; done
ok "readers ran during the faults (errors allowed then: EIO, ENOENT)"
cat "$TMP"/r.*.out | grep -v '^entries=' | head -20 | sed 's/^/    unexpected during faults: /'
cat "$TMP"/r.*.out | grep -qv '^entries=' && fail "errors other than EIO/ENOENT during the faults"

# final pass, each file on its own: errors only for affected instances
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true; }
drop_caches
bad=0
nerr=0
while IFS= read -r -d '' f; do
	rel=${f#"$P"/}
	base=${rel%.*}
	base=${base%.fhir}
	if out=$(timeout 30 cat "$f" 2>&1 >/dev/null); then continue; fi
	nerr=$((nerr + 1))
	if grep -qxF "$base" "$TMP/affected"; then
		case "$out" in
		*"Input/output error"* | *"No such file"*) ;;
		*) fail "$rel: unexpected error: $out"; bad=1 ;;
		esac
	else
		fail "$rel (not affected) fails: $out"
		bad=1
	fi
done < <(find "$P" -type f -print0)
[ "$bad" -eq 0 ] && ok "after the faults: $nerr errors, all on files of the 5 affected instances"
# unaffected originals still byte-identical
n=0
while IFS='	' read -r m s; do
	grep -qxF "${m%.dcm}" "$TMP/affected" && continue
	cmp -s "$P/$m" "$ARCH/$s" || { fail "patients/$m differs from $s"; break; }
	n=$((n + 1))
done <"$TMP/expected.sources"
ok "$n unaffected instances read back intact"
# xattrs and stat of affected instances still answer (from the index)
while IFS= read -r b; do
	stat "$P/$b.dcm" >/dev/null 2>&1 || fail "stat $b.dcm fails"
	getfattr -d "$P/$b.dcm" >/dev/null 2>&1 || fail "getxattr $b.dcm fails"
done <"$TMP/affected"
ok "stat and xattrs of affected instances answer from the index"
# errors.tsv: a line for each affected source that was read (all of them
# except the chmod 000 one: root still reads it, nothing changed in it)
for k in 0 1 2 4; do
	v=${victims[$k]}
	s=${v#*	}
	grep -qF "$s	" "$MNT/.dicomfs/errors.tsv" && ok "errors.tsv lists $s" ||
		fail "errors.tsv has no line for $s: $(cat "$MNT/.dicomfs/errors.tsv")"
done

daemon_alive && ok "the daemon survived" || fatal "the daemon died"
sleep 0.5
fd1=$(ls /proc/"$MOUNT_PID"/fd | wc -l)
kids1=$(pgrep -P "$MOUNT_PID" | wc -l)
log "daemon fds after: $fd1 ($kids1 child processes)"
# a decoder process replaced after a failure keeps the count; allow none more
if [ "$fd1" -le "$fd0" ]; then ok "no fd leak ($fd0 -> $fd1)"; else
	fail "fd leak: $fd0 -> $fd1"
	ls -l /proc/"$MOUNT_PID"/fd | sed 's/^/    /'
fi
timeout 10 cat "$MNT/.dicomfs/status.json" >/dev/null && timeout 10 ls "$P" >/dev/null &&
	ok "the mount answers" || fail "the mount does not answer"
mount_stop
exit 0
