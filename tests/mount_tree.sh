#!/bin/bash
# Mount the messy synthetic archive and check the whole tree: names
# (exact listing), bytes, sizes, mtimes, modes, errors.tsv, status.json,
# EROFS on every kind of write, symlinks not followed, parallel readers;
# then again single-threaded (-s).
. "${srcdir:-$(dirname "$0")/..}/tests/lib.sh"
setup

ARCH="$TMP/arch"
MNT="$TMP/mnt"
EXP="$TMP/expected"

log "generating the messy archive"
"$PY" "$GEN" "$ARCH" --expected "$EXP" || fatal "gen_archive.py failed"

mount_start "$MNT" "$ARCH" || exit 1
forget_default_index "$MNT"

# --- layout of the root ----------------------------------------------------
[ -d "$MNT/patients" ] || fail "no patients/ directory at the mount root"
[ -f "$MNT/.dicomfs/status.json" ] || fail "no .dicomfs/status.json"
[ -f "$MNT/.dicomfs/errors.tsv" ] || fail "no .dicomfs/errors.tsv"
mode=$(stat -c %a "$MNT/patients")
[ "$mode" = 555 ] || fail "patients/ has mode $mode, want 555"
d=$(head -1 "$EXP")
mode=$(stat -c %a "$MNT/patients/$d")
[ "$mode" = 555 ] || fail "patients/$d has mode $mode, want 555"

# --- the tree ---------------------------------------------------------------
log "checking the listing (a symlink loop must not make this hang)"
start=$(date +%s)
check_listing "$MNT" "$EXP"
[ $(($(date +%s) - start)) -lt 30 ] || fail "listing the tree took more than 30 s"
if list_tree "$MNT/patients" | grep -q -e OUTSIDE1 -e 'Outside'; then
	fail "the file behind the symlink pointing outside the archive is served"
else
	ok "the symlink pointing outside the archive was not followed"
fi
check_sources "$MNT" "$ARCH" "$EXP.sources"

# --- errors.tsv ---------------------------------------------------------------
log "checking .dicomfs/errors.tsv"
ERR="$MNT/.dicomfs/errors.tsv"
hdr=$(head -1 "$ERR")
[ "$hdr" = "path	reason" ] || fail "errors.tsv header is '$hdr', want 'path<TAB>reason'"
# "no volume:" lines name series directories, not source files (volumes);
# "anon:" lines name files placed in patients/ but left out of anon/
tail -n +2 "$ERR" | grep -v -e '	no volume: ' -e '	anon: ' >"$TMP/errors.body"
cut -f1 "$TMP/errors.body" | sort >"$TMP/errors.got"
# the symlinks may or may not be listed
grep -vxF -f "$EXP.optional" "$TMP/errors.got" >"$TMP/errors.cmp"
if diff -u "$EXP.errors" "$TMP/errors.cmp" >"$TMP/errors.diff"; then
	ok "errors.tsv lists exactly the $(wc -l <"$EXP.errors") expected source files"
else
	fail "errors.tsv paths differ (- expected, + got):"
	sed 's/^/    /' "$TMP/errors.diff"
fi
if awk -F'\t' 'NF < 2 || $2 == "" { bad = 1 } END { exit bad }' "$TMP/errors.body"; then
	ok "every errors.tsv line has a reason"
else
	fail "errors.tsv has lines without a reason"
fi
dupreason=$(awk -F'\t' '$1 == "Export 2021/IVANOV/dup/1.dcm" { print $2 }' "$TMP/errors.body")
case "$dupreason" in
duplicate*) ok "the duplicate is listed with reason '$dupreason'" ;;
*) fail "reason for 'Export 2021/IVANOV/dup/1.dcm' is '$dupreason', want 'duplicate...'" ;;
esac
sed 's/^/    /' "$ERR"

# --- status.json ---------------------------------------------------------------
log "checking .dicomfs/status.json"
nreg=$(find "$ARCH" -type f | wc -l)
nsym=$(find "$ARCH" -type l | wc -l)
if "$PY" - "$MNT" "$EXP" "$nreg" "$nsym" "$TMP/errors.got" "$EXP.optional" <<'EOF'
import json, sys
mnt, exp, nreg, nsym, errgot, optional = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6]
raw = open(mnt + "/.dicomfs/status.json", "rb").read()
try:
    s = json.loads(raw)
except ValueError as e:
    print("    status.json does not parse: %s\n    %r" % (e, raw[:500])); sys.exit(1)
print("    " + json.dumps(s, sort_keys=True))
bad = []
keys = ["files_seen", "instances", "patients", "studies", "series", "skipped", "errors",
        "duplicates", "index_path", "index_format", "build_seconds", "files_per_second"]
for k in keys:
    if k not in s:
        bad.append("key %s missing" % k)
for k in ["files_seen", "instances", "patients", "studies", "series", "skipped", "errors", "duplicates"]:
    if k in s and not (isinstance(s[k], int) and not isinstance(s[k], bool) and s[k] >= 0):
        bad.append("%s is %r, want a non-negative integer" % (k, s[k]))
for k in ["build_seconds", "files_per_second"]:
    if k in s and not (isinstance(s[k], (int, float)) and not isinstance(s[k], bool) and s[k] >= 0):
        bad.append("%s is %r, want a non-negative number" % (k, s[k]))
for k in ["index_path", "index_format"]:
    if k in s and not isinstance(s[k], (str, type(None))):
        bad.append("%s is %r, want a string" % (k, s[k]))
lines = [l.rstrip("\n") for l in open(exp, encoding="utf-8")]
inst = sum(1 for l in lines if l.endswith(".dcm"))
depth = lambda n: sum(1 for l in lines if l.endswith("/") and l.count("/") == n)
pats, studies, series = depth(1), depth(2), depth(3)
# the shared study is one StudyInstanceUID under two patients
distinct_studies = studies - 1
errs = [l.rstrip("\n") for l in open(errgot)]
opt = set(l.rstrip("\n") for l in open(optional))
err_reg = sum(1 for e in errs if e not in opt)
def want(k, ok_values):
    if k in s and s[k] not in ok_values:
        bad.append("%s = %r, want %s" % (k, s[k], " or ".join(map(str, sorted(set(ok_values))))))
want("instances", [inst])
want("patients", [pats])
want("studies", [studies, distinct_studies])
want("series", [series])
want("duplicates", [1])
if inst + err_reg != nreg:
    bad.append("instances (%d) + regular files in errors.tsv (%d) != %d regular files in the archive"
               % (inst, err_reg, nreg))
want("files_seen", [nreg, nreg + nsym])
nerr_lines = len(errs)
if "errors" in s and "duplicates" in s and "skipped" in s:
    combos = {s["errors"], s["errors"] + s["duplicates"], s["errors"] + s["skipped"],
              s["errors"] + s["duplicates"] + s["skipped"]}
    if nerr_lines not in combos and err_reg not in combos:
        bad.append("errors.tsv has %d entries, not explained by errors=%d duplicates=%d skipped=%d"
                   % (nerr_lines, s["errors"], s["duplicates"], s["skipped"]))
for b in bad:
    print("    " + b)
sys.exit(1 if bad else 0)
EOF
then
	ok "status.json parses and its counts agree with the tree"
else
	fail "status.json checks failed (above)"
fi

# --- read-only ------------------------------------------------------------------
log "checking that every kind of write fails with EROFS"
F="$MNT/patients/$(sed -n 's/\t.*//p' "$EXP.sources" | head -1)"
FSRC="$ARCH/$(head -1 "$EXP.sources" | cut -f2)"
D=$(dirname "$F")
erofs() {
	local what=$1 out rc
	shift
	out=$("$@" 2>&1 </dev/null)
	rc=$?
	if [ "$rc" -eq 0 ]; then
		fail "$what: succeeded, want EROFS"
	elif printf '%s' "$out" | grep -q 'Read-only file system'; then
		ok "$what: EROFS"
	else
		fail "$what: failed, but not with EROFS: $out"
	fi
}
erofs "touch a new file" touch "$MNT/patients/newfile"
erofs "touch a new file in a series" touch "$D/new.dcm"
erofs "touch an existing file (utimens)" touch "$F"
erofs "append to a .dcm" sh -c 'echo x >> "$1"' sh "$F"
erofs "overwrite a .dcm" sh -c 'echo x > "$1"' sh "$F"
erofs "truncate a .dcm" truncate -s 0 "$F"
erofs "rm a .dcm" rm -f "$F"
erofs "mv a .dcm" mv "$F" "$D/moved.dcm"
erofs "mkdir" mkdir "$D/newdir"
erofs "mkdir in patients/" mkdir "$MNT/patients/newdir"
erofs "rmdir a series" rmdir "$D"
erofs "chmod" chmod 600 "$F"
erofs "chown" chown 1:1 "$F"
erofs "setfattr" setfattr -n user.dicomfs -v 1 "$F"
erofs "ln -s" ln -s target "$D/link"
erofs "ln (hard link)" ln "$F" "$D/hard.dcm"
erofs "write into .dicomfs/" touch "$MNT/.dicomfs/x"
cmp -s "$F" "$FSRC" || fail "the file changed after the write attempts"
check_listing "$MNT" "$EXP"

# --- concurrency ------------------------------------------------------------------
log "4 parallel readers (multithreaded daemon)"
parallel_readers "$MNT" "$ARCH" "$EXP.sources" 4
daemon_alive || fail "dicomfs died"
mount_stop

log "remount single-threaded (-s)"
mount_start "$MNT" "$ARCH" -s || exit 1
check_listing "$MNT" "$EXP"
log "4 parallel readers (single-threaded daemon)"
parallel_readers "$MNT" "$ARCH" "$EXP.sources" 4
daemon_alive || fail "dicomfs died"
mount_stop
exit 0
