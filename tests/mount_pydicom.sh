#!/bin/bash
# Mount Debian's python3-pydicom test data (real-world oddities: many
# transfer syntaxes, character sets, truncated and meta-less files, DICOMDIR
# trees) and compare with pydicom: every file pydicom reads (without force)
# that has Study, Series and SOP Instance UIDs must be served byte for byte
# or be listed in errors.tsv as a duplicate.  Every served .dcm must read,
# and the daemon must still answer at the end.
. "${srcdir:-$(dirname "$0")/..}/tests/lib.sh"
setup

DATA=${PYDICOM_DATA:-/usr/lib/python3/dist-packages/pydicom/data}
MNT="$TMP/mnt"
[ -d "$DATA/test_files" ] || fatal "pydicom test data not found at $DATA (install python3-pydicom)"

mount_start "$MNT" "$DATA" -o index="$TMP/idx" || exit 1

log "comparing with pydicom"
if timeout 300 "$PY" - "$DATA" "$MNT" <<'EOF'; then
import hashlib, os, sys, warnings
warnings.filterwarnings("ignore")
import pydicom
data, mnt = sys.argv[1:]

def sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 16), b""):
            h.update(b)
    return h.hexdigest()

def dcmtk_truncated_header(path):
    """dcmtk's dcmdump stops with 'premature end of stream' at an element
    other than the pixel data."""
    import subprocess
    try:
        r = subprocess.run(["dcmdump", path], stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return False
    err = r.stderr.decode("utf-8", "replace")
    return r.returncode != 0 and "premature end of stream" in err and "PixelData" not in err

# the archive, as pydicom sees it
src = {}            # relpath -> (sha, pydicom says placeable, note)
for dp, dns, fns in os.walk(data):
    dns.sort()
    for fn in sorted(fns):
        p = os.path.join(dp, fn)
        rel = os.path.relpath(p, data)
        if os.path.islink(p) or not os.path.isfile(p):
            continue
        note, placeable = "", False
        try:
            ds = pydicom.dcmread(p, stop_before_pixels=True)
            miss = [k for k in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")
                    if not str(ds.get(k, "") or "").strip()]
            placeable = not miss
            note = "missing " + ",".join(miss) if miss else "ok"
        except Exception as e:
            note = "pydicom: %s: %s" % (type(e).__name__, str(e)[:80])
        src[rel] = (sha(p), placeable, note)

# the mount
served = {}         # sha -> [mount paths]
read_errors = []
root = os.path.join(mnt, "patients")
for dp, dns, fns in os.walk(root):
    for fn in fns:
        p = os.path.join(dp, fn)
        rel = os.path.relpath(p, root)
        if not fn.endswith(".dcm"):
            # a derived file (metadata, pixels): it must read, except that
            # pixels GDCM cannot decode are an EIO by design
            try:
                with open(p, "rb") as f:
                    n = len(f.read())
                if n != os.stat(p).st_size:
                    read_errors.append("%s: read %d bytes, st_size %d" % (rel, n, os.stat(p).st_size))
            except OSError as e:
                if fn.endswith((".npy", ".png")):
                    print("    note: %s: %s" % (rel, e))
                else:
                    read_errors.append("%s: %s" % (rel, e))
            continue
        try:
            served.setdefault(sha(p), []).append(rel)
        except OSError as e:
            read_errors.append("%s: %s" % (rel, e))

errors = {}
with open(os.path.join(mnt, ".dicomfs", "errors.tsv"), encoding="utf-8", errors="surrogateescape") as f:
    header = f.readline().rstrip("\n")
    if header != "path\treason":
        read_errors.append("errors.tsv header is %r" % header)
    for line in f:
        path, _, reason = line.rstrip("\n").partition("\t")
        if reason.startswith("no volume:"):   # a series directory, not a file
            continue
        errors[path] = reason

bad = list(read_errors)
placed_by_us = set()
explained = set()
for rel, (h, placeable, note) in sorted(src.items()):
    is_served = h in served
    if is_served:
        placed_by_us.add(rel)
    if placeable and not is_served:
        reason = errors.get(rel)
        if reason is None:
            bad.append("%s: pydicom reads it with all UIDs, but it is neither served nor in errors.tsv" % rel)
        elif reason.startswith("duplicate"):
            pass
        elif "truncat" in reason and dcmtk_truncated_header(os.path.join(data, rel)):
            # pydicom silently stops at the end of a file cut inside its
            # data set; dicomfs (by its rules) and dcmtk call it truncated
            print("    note: pydicom reads it, dicomfs and dcmtk find it truncated before the"
                  " pixel data (%s): %s" % (reason, rel))
            explained.add(rel)
        else:
            bad.append("%s: pydicom reads it with all UIDs, but errors.tsv says: %s" % (rel, reason))
for rel in sorted(errors):
    if rel not in src:
        bad.append("errors.tsv lists %r, which is not a regular file of the archive" % rel)

# report (not a failure): files placed by one tool and not by the other
only_us = sorted(r for r in placed_by_us if not src[r][1])
only_pydicom = sorted(r for r, (h, p, n) in src.items() if p and r not in placed_by_us
                      and not errors.get(r, "").startswith("duplicate") and r not in explained)
ndup = sum(1 for r in src if r not in placed_by_us and errors.get(r, "").startswith("duplicate"))
unaccounted = sorted(r for r in src if r not in placed_by_us and r not in errors)
print("    %d regular files, %d pydicom-placeable, %d distinct served contents, %d in errors.tsv"
      " (%d duplicates)" % (len(src), sum(1 for v in src.values() if v[1]), len(served), len(errors), ndup))
for r in only_us:
    print("    note: served by dicomfs, not placeable for pydicom (%s): %s" % (src[r][2], r))
for r in only_pydicom:
    print("    note: placeable for pydicom, not served by dicomfs (%s): %s" % (errors.get(r, "not in errors.tsv"), r))
for r in unaccounted:
    print("    note: neither served nor in errors.tsv: %s" % r)
for b in bad:
    print("    " + b)
sys.exit(1 if bad else 0)
EOF
	ok "every pydicom-readable file with UIDs is served or listed as a duplicate; every .dcm reads"
else
	fail "comparison with pydicom failed (above)"
fi

log "checking that the mount still answers"
daemon_alive || fail "dicomfs died during the test"
if timeout 20 stat "$MNT/.dicomfs/status.json" >/dev/null && timeout 20 ls "$MNT/patients" >/dev/null; then
	ok "the mount still answers"
else
	fail "the mount does not answer any more"
fi
"$PY" -c 'import json,sys; json.load(open(sys.argv[1]))' "$MNT/.dicomfs/status.json" ||
	fail "status.json does not parse"
mount_stop
exit 0
