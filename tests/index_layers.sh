#!/bin/bash
# The layers of index/ (drawn in index/index.h) have no circle:
# 1. the include graph of index/*.[ch] between modules (x.c and x.h are
#    module x; index.h and report.h, declarations only, are the public API
#    of fs/, module "api");
# 2. the call graph between the objects of libdfsindex.a (who uses a symbol
#    another one defines);
# and the floor (store) includes and calls nothing of index/ above it.
# tsort(1) reports a loop when there is a circle.
srcdir=$(cd "${srcdir:-$(dirname "$0")/..}" && pwd)
LIB=${LIB:-./libdfsindex.a}
fail=0
say() { printf '[index_layers] %s\n' "$*"; }

module() {   # file name -> module name
	case "$1" in
	index.h|report.h) echo api ;;
	*) echo "${1%.*}" ;;
	esac
}

# --- 1. includes -------------------------------------------------------------
inc_edges=$(
	cd "$srcdir/index" || exit 1
	for f in *.c *.h; do
		m=$(module "$f")
		sed -n 's/^#include "\([^"]*\)".*/\1/p' "$f" | while read -r h; do
			[ -e "$h" ] || continue          # base/, dicom/: leaves
			n=$(module "$h")
			[ "$m" != "$n" ] && echo "$m $n"
		done
	done | sort -u
)
if ! printf '%s\n' "$inc_edges" | tsort >/dev/null 2>"${TMPDIR:-/tmp}/layers.$$"; then
	say "FAIL: include circle: $(cat "${TMPDIR:-/tmp}/layers.$$")"
	fail=1
else
	say "ok: includes form no circle ($(printf '%s\n' "$inc_edges" | wc -l) edges)"
fi
rm -f "${TMPDIR:-/tmp}/layers.$$"
bad=$(printf '%s\n' "$inc_edges" | awk '$1 == "store" && $2 != "api" && $2 != "source"')
[ -z "$bad" ] || { say "FAIL: store.[ch] include above the floor: $bad"; fail=1; }
[ ! -e "$srcdir/index/index_int.h" ] || { say "FAIL: index_int.h is back"; fail=1; }

# --- 2. calls ------------------------------------------------------------------
if [ -f "$LIB" ]; then
	syms=$(nm -A "$LIB" 2>/dev/null | sed 's/^[^:]*:\([^:]*\)\.o: */\1 /')
	def=$(printf '%s\n' "$syms" | awk 'NF == 4 && $3 ~ /^[TDBRVW]$/ { print $4, $1 }' | sort -u)
	use=$(printf '%s\n' "$syms" | awk 'NF == 3 && $2 == "U" { print $3, $1 }' | sort -u)
	call_edges=$(join <(printf '%s\n' "$use") <(printf '%s\n' "$def") |
		awk '$2 != $3 { print $2, $3 }' | sort -u)
	if ! printf '%s\n' "$call_edges" | tsort >/dev/null 2>&1; then
		say "FAIL: call circle between objects:"
		printf '%s\n' "$call_edges" | tsort 2>&1 >/dev/null | sed 's/^/    /'
		fail=1
	else
		say "ok: calls form no circle ($(printf '%s\n' "$call_edges" | wc -l) edges)"
	fi
	up=$(printf '%s\n' "$call_edges" |
		awk '$1 == "store" && ($2 == "index" || $2 == "scan" || $2 == "tree" || $2 == "report" || $2 == "volreport")')
	[ -z "$up" ] || { say "FAIL: store calls above the floor: $up"; fail=1; }
else
	say "no $LIB: call graph not checked"
fi
exit $fail
