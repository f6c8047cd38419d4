#!/usr/bin/env bash
# bench_dicomweb.sh [N] - a DICOMweb server as the archive (see
# contrib/bench/README), side by side in one run, over loopback:
#   1. time to a browsable tree: dicomfs mounting Orthanc's DICOMweb by URL
#      (fresh index and cache) until `find` lists every .dcm, against
#      davfs2 mounting Orthanc's own WebDAV tree (/webdav/by-uids) until
#      `find` lists every file;
#   2. reading every .dcm once (instance cache emptied) and twice (cached)
#      through the mount, against one curl process fetching the same
#      instances by WADO-RS (keep-alive), and against cat through davfs2.
# Orthanc (Debian's orthanc + orthanc-dicomweb) is started here on a
# loopback port with its storage under $BENCH_DIR; the archive is N small
# CT files from tests/gen_archive.py --count N, posted through the REST API.
#
# Environment: DICOMFS, BENCH_DIR (default /var/tmp/dicomfs-bench), PYTHON.
set -u -o pipefail
export LC_ALL=C

N=${1:-10000}
case $N in '' | *[!0-9]*) echo "usage: $0 [N]" >&2; exit 2 ;; esac
BENCH_DIR=${BENCH_DIR:-/var/tmp/dicomfs-bench}
PY=${PYTHON:-/usr/bin/python3}
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)
GEN=$ROOT/tests/gen_archive.py
DICOMFS=${DICOMFS:-$ROOT/dicomfs}
export DICOMFS_GDCM=${DICOMFS_GDCM:-$ROOT/dicomfs-gdcm.so}

log() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
now() { date +%s.%N; }
since() { "$PY" -c "import sys; print('%.2f' % (float(sys.argv[2]) - float(sys.argv[1])))" "$1" "$(now)"; }
ratio() { "$PY" -c "import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); print('%.2f' % (a/b) if b else '-')" "$1" "$2"; }

[ "$(id -u)" = 0 ] || die "run as root (FUSE and davfs2 mounts)"
command -v Orthanc >/dev/null || die "Orthanc missing (contrib/install-deps)"
[ -x "$DICOMFS" ] || die "no dicomfs at $DICOMFS"

mkdir -p "$BENCH_DIR"
ARCH=$BENCH_DIR/archive-$N
if [ ! -d "$ARCH" ] || [ "$GEN" -nt "$ARCH" ]; then
	rm -rf "$ARCH"
	log "generating $N files"
	"$PY" "$GEN" "$ARCH" --count "$N" >/dev/null || die "gen_archive.py"
fi
RUN=$(mktemp -d "$BENCH_DIR/run-dicomweb.XXXXXX")
ORTHANC_PID=
cleanup() {
	for m in "$RUN/mnt" "$RUN/dav"; do
		mountpoint -q "$m" 2>/dev/null && { fusermount3 -u "$m" 2>/dev/null || umount "$m" 2>/dev/null; }
	done
	[ -n "$ORTHANC_PID" ] && kill "$ORTHANC_PID" 2>/dev/null && wait "$ORTHANC_PID" 2>/dev/null
	rm -rf "$RUN"
}
trap cleanup EXIT
PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$RUN/db" "$RUN/mnt" "$RUN/dav"
cat >"$RUN/orthanc.json" <<EOF
{ "Name": "bench", "StorageDirectory": "$RUN/db", "IndexDirectory": "$RUN/db",
  "HttpPort": $PORT, "RemoteAccessAllowed": false, "AuthenticationEnabled": false,
  "DicomServerEnabled": false, "StorageCompression": false, "WebDavEnabled": true,
  "WebDavUploadAllowed": false, "WebDavDeleteAllowed": false,
  "Plugins": ["/usr/share/orthanc/plugins/libOrthancDicomWeb.so"],
  "DicomWeb": { "Enable": true, "Root": "/dicom-web/", "EnableWado": false } }
EOF
Orthanc "$RUN/orthanc.json" >"$RUN/orthanc.log" 2>&1 &
ORTHANC_PID=$!
O=http://127.0.0.1:$PORT
for i in $(seq 100); do curl -sf "$O/system" >/dev/null && break; sleep 0.2; done
curl -sf "$O/system" >/dev/null || die "Orthanc did not start"

log "posting $N files to Orthanc"
t0=$(now)
"$PY" - "$ARCH" "$PORT" <<'PYEOF' || die "posting failed"
import http.client, os, sys, threading
root, port = sys.argv[1], int(sys.argv[2])
files = sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs)
lock = threading.Lock()
def worker(part):
    c = http.client.HTTPConnection("127.0.0.1", port)
    for p in part:
        c.request("POST", "/instances", open(p, "rb").read(),
                  {"Content-Type": "application/dicom"})
        r = c.getresponse(); r.read()
        if r.status != 200:
            raise SystemExit("POST %s: %d" % (p, r.status))
ts = [threading.Thread(target=worker, args=(files[k::4],)) for k in range(4)]
[t.start() for t in ts]; [t.join() for t in ts]
PYEOF
log "posted in $(since "$t0") s"

# the instances' WADO-RS URLs (for curl), by QIDO-RS
"$PY" - "$O/dicom-web" >"$RUN/curl.cfg" <<'PYEOF' || die "QIDO-RS listing failed"
import json, sys, urllib.request
b = sys.argv[1]
def get(u):
    return json.load(urllib.request.urlopen(u)) if True else None
off = 0
studies = []
while True:
    page = get("%s/studies?limit=1000&offset=%d" % (b, off))
    if not page: break
    studies += [s["0020000D"]["Value"][0] for s in page]; off += len(page)
for st in sorted(set(studies)):
    off = 0
    while True:
        page = get("%s/studies/%s/instances?limit=1000&offset=%d&includefield=0020000E" % (b, st, off))
        if not page: break
        for i in page:
            print('url = "%s/studies/%s/series/%s/instances/%s"\noutput = "/dev/null"' % (
                b, st, i["0020000E"]["Value"][0], i["00080018"]["Value"][0]))
        off += len(page)
PYEOF
NI=$(grep -c '^url' "$RUN/curl.cfg")
log "$NI instances on the server"

# ---- 1. time to a browsable tree ----
log "dicomfs: mount by URL (fresh index and cache) + find"
t0=$(now)
"$DICOMFS" -o index="$RUN/idx",quiet,cache_disk=4096 "$O/dicom-web" "$RUN/mnt" || die "dicomfs mount failed"
nd=$(find "$RUN/mnt/patients" -name '*.dcm' | wc -l)
T_DFS=$(since "$t0")
log "dicomfs: $nd .dcm browsable after $T_DFS s"
fusermount3 -u "$RUN/mnt"

T_DAV=- ; T_DAV1=- ; T_DAV2=-
if command -v mount.davfs >/dev/null; then
	# buf_size 64: davfs2 1.6.1 fails readdir on Linux >= 6.16 with its
	# default (github.com/alisarctl/davfs2 issue 22); its cache is the
	# system one (/var/cache/davfs2), one folder per URL: removed below
	cat >"$RUN/davfs2.conf" <<EOF
ask_auth 0
use_locks 0
buf_size 64
cache_size 4096
EOF
	log "davfs2: mount Orthanc's WebDAV + find /by-uids"
	t0=$(now)
	if mount -t davfs -o ro,conf="$RUN/davfs2.conf" "$O/webdav/" "$RUN/dav" </dev/null >"$RUN/dav.log" 2>&1; then
		nv=$(find "$RUN/dav/by-uids" -name '*.dcm' | wc -l)
		T_DAV=$(since "$t0")
		log "davfs2: $nv files browsable after $T_DAV s"
		t0=$(now); find "$RUN/dav/by-uids" -name '*.dcm' -print0 | xargs -0 cat >/dev/null; T_DAV1=$(since "$t0")
		t0=$(now); find "$RUN/dav/by-uids" -name '*.dcm' -print0 | xargs -0 cat >/dev/null; T_DAV2=$(since "$t0")
		umount "$RUN/dav"
		rm -rf /var/cache/davfs2/*+"$(echo "${RUN#/}/dav" | tr / -)"+*
	else
		log "davfs2 mount failed: $(cat "$RUN/dav.log")"
	fi
else
	log "davfs2 not installed (contrib/install-deps installs it): no WebDAV baseline"
fi

# ---- 2. reads: uncached, cached; curl ----
"$DICOMFS" -o index="$RUN/idx",quiet,cache_disk=4096 "$O/dicom-web" "$RUN/mnt" || die "remount failed"
CACHE=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["server"]["cache_dir"])' "$RUN/mnt/.dicomfs/status.json")
find "$RUN/mnt/patients" -name '*.dcm' | sort >"$RUN/dcms"
rm -f "$CACHE"/*.dcm
log "dicomfs: cat every .dcm, cache empty"
t0=$(now); tr '\n' '\0' <"$RUN/dcms" | xargs -0 cat >/dev/null; T_R1=$(since "$t0")
log "dicomfs: cat every .dcm again (cached)"
t0=$(now); tr '\n' '\0' <"$RUN/dcms" | xargs -0 cat >/dev/null; T_R2=$(since "$t0")
log "dicomfs: cat every .dcm, cache empty, 4 readers"
rm -f "$CACHE"/*.dcm
t0=$(now); tr '\n' '\0' <"$RUN/dcms" | xargs -0 -n 64 -P 4 cat >/dev/null; T_R1P=$(since "$t0")
fusermount3 -u "$RUN/mnt"
log "curl: WADO-RS retrieve of every instance (one process, keep-alive)"
t0=$(now)
curl -s -H 'Accept: multipart/related; type="application/dicom"; transfer-syntax=*' -K "$RUN/curl.cfg" || die "curl failed"
T_CURL=$(since "$t0")
t0=$(now)
curl -s --parallel --parallel-max 4 -H 'Accept: multipart/related; type="application/dicom"; transfer-syntax=*' -K "$RUN/curl.cfg" 2>/dev/null || die "curl failed"
T_CURLP=$(since "$t0")

cat <<EOF

dicomfs over DICOMweb (Orthanc $(curl -s "$O/system" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["Version"])'), loopback), $NI instances of $(du -sh "$ARCH" | cut -f1)

| measurement | dicomfs | baseline | dicomfs / baseline (time) |
|---|---|---|---|
| browsable tree (mount + find) | $T_DFS s | davfs2 on Orthanc WebDAV: $T_DAV s | $( [ "$T_DAV" = - ] && echo - || ratio "$T_DFS" "$T_DAV") |
| cat every .dcm, cache empty | $T_R1 s | curl WADO-RS, 1 process: $T_CURL s | $(ratio "$T_R1" "$T_CURL") |
| same, 4 readers / curl --parallel 4 | $T_R1P s | $T_CURLP s | $(ratio "$T_R1P" "$T_CURLP") |
| cat every .dcm, cached | $T_R2 s | curl WADO-RS again: $T_CURL s | $(ratio "$T_R2" "$T_CURL") |
| davfs2: cat every file once / twice | - | $T_DAV1 s / $T_DAV2 s | - |
EOF
