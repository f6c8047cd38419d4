#!/bin/bash
# Replay every input of tests/fuzz/regressions/ (each one crashed, hung or
# exhausted memory in a fuzz harness before its fix) through every harness
# (tests/fuzz/replay_*, built by make check with the project's compiler;
# under the sanitizer build they run with ASan/UBSan). Each harness must
# finish all inputs, 60 s at most.
. "${srcdir:-$(dirname "$0")/..}/tests/lib.sh"
REG="$srcdir/tests/fuzz/regressions"
n=$(ls "$REG" | wc -l)
[ "$n" -gt 0 ] || fatal "no regression inputs in $REG"
for h in header json pixels rle query fgroups encaps palette deid; do
	bin=./tests/fuzz/replay_$h
	[ -x "$bin" ] || fatal "$bin not built (make check builds it)"
	out=$(timeout 60 "$bin" "$REG" 2>&1)
	rc=$?
	if [ "$rc" -eq 0 ]; then
		ok "replay_$h: $n inputs"
	else
		fail "replay_$h exited with status $rc on $REG:"
		printf '%s\n' "$out" | tail -25 | sed 's/^/    /'
	fi
done
# the query parser's seeds (tests/fuzz/seeds/query/) are its regressions too
out=$(timeout 60 ./tests/fuzz/replay_query "$srcdir/tests/fuzz/seeds/query" 2>&1) &&
	ok "replay_query: the query seeds" || { fail "replay_query on the query seeds:"; printf '%s\n' "$out" | tail -25; }
[ "$FAILURES" -eq 0 ] || exit 1
log PASSED
