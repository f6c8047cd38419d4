#!/bin/bash
# A DICOMweb server as the archive (index/source_dicomweb.c), against a real
# Orthanc (Debian's orthanc + orthanc-dicomweb) started here on a loopback
# port with a generated configuration (no remote access, no DICOM port, its
# storage in $TMP). The messy generated archive goes in through Orthanc's
# REST API (POST /instances); the files Orthanc stored make the folder
# "same". Checked: the tree, every file below patients/ and uids/ (.dcm
# bytes, .json, level files, FHIR, .npy, .png) and query/ answers (listings,
# link targets, manifests) of the URL mount equal a mount of "same"; a
# remount of the unchanged server parses nothing; with Orthanc stopped
# (SIGSTOP: it hangs) and then killed, cached instances and metadata still
# read, an uncached instance gives EIO within 30 s with a log line,
# status.json says "down", and the mount answers throughout.
# Orthanc missing or not starting is a failure, not a skip.
# ~4 minutes on a quiet machine (seven mounts, Orthanc, a 25 s hang by
# design): the default 300 s watchdog trips under load
export DICOMFS_TEST_TIMEOUT=${DICOMFS_TEST_TIMEOUT:-600}
. "${srcdir:-$(dirname "$0")/..}/tests/lib.sh"
setup

ARCH="$TMP/arch"
SAME="$TMP/same"
ORTHANC_PID=
stop_orthanc() {
	if [ -n "$ORTHANC_PID" ]; then
		kill -CONT "$ORTHANC_PID" 2>/dev/null
		kill -9 "$ORTHANC_PID" 2>/dev/null
		wait "$ORTHANC_PID" 2>/dev/null
		ORTHANC_PID=
	fi
}
trap 'stop_orthanc; cleanup' EXIT

command -v Orthanc >/dev/null || fatal "Orthanc not found (contrib/install-deps installs orthanc)"
PLUGIN=/usr/share/orthanc/plugins/libOrthancDicomWeb.so
[ -e "$PLUGIN" ] || fatal "$PLUGIN missing (contrib/install-deps installs orthanc-dicomweb)"
command -v curl >/dev/null || fatal "curl not found"

log "generating the messy archive, plus larger instances"
"$PY" "$GEN" "$ARCH" >/dev/null || fatal "gen_archive.py failed"
# the messy archive's files are small: three 256x256 16-bit MR images
# (two uncompressed, one RLE: encapsulated) make the scan's prefix matter
"$PY" - "$ARCH/large" <<'PYEOF' || fatal "writing the larger instances failed"
import os, sys
import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, RLELossless
out = sys.argv[1]
os.makedirs(out)
R = "2.25.31415926.77"
for k in range(1, 4):
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
    ds.SOPInstanceUID = "%s.1.1.%d" % (R, k)
    ds.StudyInstanceUID = R + ".1"
    ds.SeriesInstanceUID = R + ".1.1"
    ds.PatientName = "Large^Pixel"
    ds.PatientID = "PIDL"
    ds.StudyDate = "20210304"
    ds.Modality = "MR"
    ds.SeriesNumber = 1
    ds.InstanceNumber = k
    ds.Rows = ds.Columns = 256
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    px = (np.arange(256 * 256, dtype=np.uint16).reshape(256, 256) * k) % 4096
    ds.PixelData = px.tobytes()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.is_little_endian, ds.is_implicit_VR = True, False
    if k == 3:
        ds.compress(RLELossless, px)
    ds.save_as(os.path.join(out, "L%d.dcm" % k), write_like_original=False)
PYEOF

# a free loopback port
PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$TMP/orthanc-db"
cat >"$TMP/orthanc.json" <<EOF
{
  "Name": "dicomfs-test",
  "StorageDirectory": "$TMP/orthanc-db",
  "IndexDirectory": "$TMP/orthanc-db",
  "HttpPort": $PORT,
  "RemoteAccessAllowed": false,
  "AuthenticationEnabled": true,
  "RegisteredUsers": { "dicomfs": "s3cret" },
  "DicomServerEnabled": false,
  "StorageCompression": false,
  "OverwriteInstances": false,
  "Plugins": ["$PLUGIN"],
  "DicomWeb": { "Enable": true, "Root": "/dicom-web/", "EnableWado": false }
}
EOF
Orthanc "$TMP/orthanc.json" >"$TMP/orthanc.log" 2>&1 &
ORTHANC_PID=$!
O="http://127.0.0.1:$PORT"
# basic auth: curl from this file, dicomfs from -o netrc= (its own HOME has
# no ~/.netrc)
printf 'machine 127.0.0.1 login dicomfs password s3cret\n' >"$TMP/netrc"
chmod 600 "$TMP/netrc"
export HOME="$TMP/home"
mkdir -p "$HOME"
CURL="curl --netrc-file $TMP/netrc"
for i in $(seq 150); do
	$CURL -sf "$O/system" >/dev/null 2>&1 && break
	kill -0 "$ORTHANC_PID" 2>/dev/null || break
	sleep 0.2
done
$CURL -sf "$O/dicom-web/studies" >/dev/null ||
	{ sed 's/^/    /' "$TMP/orthanc.log" | tail -20; fatal "Orthanc did not start on $O"; }
ok "Orthanc $($CURL -s "$O/system" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["Version"])') on $O"

# POST in bytewise path order: Orthanc keeps the first of two files with
# one SOP Instance UID, a local mount the smallest path: the same one
n_ok=0
(cd "$ARCH" && find . -type f -printf '%P\n' | sort) >"$TMP/files"
while IFS= read -r f; do
	st=$($CURL -s -X POST --data-binary @"$ARCH/$f" "$O/instances" |
		"$PY" -c 'import json,sys
try: print(json.load(sys.stdin).get("Status",""))
except Exception: print("")')
	if [ "$st" = "Success" ]; then
		mkdir -p "$SAME/$(dirname "$f")"
		cp -p "$ARCH/$f" "$SAME/$f"
		n_ok=$((n_ok + 1))
	fi
done <"$TMP/files"
[ "$n_ok" -ge 20 ] || fatal "Orthanc stored only $n_ok files"
ok "Orthanc stored $n_ok of $(wc -l <"$TMP/files") files"

# what a mount shows: every file's size, content hash; query answers
QUERIES="studies/PatientID=PID001 series/Modality=MR instances/Modality=CT
studies/StudyDate=20200101-20201231 instances/PatientName=*"
snapshot() {
	local mnt=$1 out=$2 q
	mkdir -p "$out"
	list_tree "$mnt/patients" >"$out/tree"
	(cd "$mnt" && find patients uids -type f -printf '%p %s\n' | sort) >"$out/sizes"
	(cd "$mnt" && find patients uids -type f -print0 | sort -z | xargs -0 md5sum) >"$out/md5" 2>&1
	: >"$out/query"
	for q in $QUERIES; do
		(cd "$mnt/query/$q" && for e in $(ls -A | sort); do
			if [ -L "$e" ]; then echo "$q/$e -> $(readlink "$e")"; else echo "$q/$e"; fi
		done && cat manifest.csv manifest.jsonl) >>"$out/query" 2>&1
	done
	"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["instances"], d["patients"], d["studies"], d["series"])' \
		"$mnt/.dicomfs/status.json" >"$out/counts"
}

log "mounting the folder Orthanc stored"
mount_start "$TMP/m_local" "$SAME" -o index="$TMP/i_local" || exit 1
snapshot "$TMP/m_local" "$TMP/s_local"
# libcurl is loaded for a DICOMweb archive only (index/curl_load.h L2)
maps_curl() { # PID...: the processes among them that map libcurl
	local p
	for p in "$@"; do
		grep -q 'libcurl' "/proc/$p/maps" 2>/dev/null && echo "$p"
	done
}
kids=$(pgrep -P "$MOUNT_PID" | xargs)
m=$(maps_curl "$MOUNT_PID" $kids)
[ -z "$m" ] && ok "the folder mount (pid $MOUNT_PID, children: ${kids:-none}) maps no libcurl" ||
	fail "the folder mount maps libcurl: pids $m"
mount_stop

log "the server without credentials: the mount fails with one line"
mkdir -p "$TMP/m_noauth"
"$DICOMFS" -f -o index="$TMP/i_noauth" "$O/dicom-web" "$TMP/m_noauth" >"$TMP/noauth.log" 2>&1
rc=$?
[ "$rc" -ne 0 ] && grep -q "HTTP 401" "$TMP/noauth.log" && ok "no credentials: exit $rc, HTTP 401 said" ||
	{ fail "no credentials: exit $rc"; sed 's/^/    /' "$TMP/noauth.log"; }

log "mounting the server by URL"
MNT="$TMP/m_web"
WEBOPT="netrc=$TMP/netrc"
mount_start "$MNT" "$O/dicom-web" -o index="$TMP/i_web",$WEBOPT || exit 1
snapshot "$MNT" "$TMP/s_web"
m=$(maps_curl "$MOUNT_PID")
[ -n "$m" ] && ok "the URL mount loaded libcurl" || fail "the URL mount maps no libcurl"
for k in tree sizes md5 query counts; do
	if diff -u "$TMP/s_local/$k" "$TMP/s_web/$k" >"$TMP/$k.diff"; then
		ok "$k: the URL mount equals the folder mount ($(wc -l <"$TMP/s_web/$k") lines)"
	else
		fail "$k differs (- folder, + URL):"
		head -40 "$TMP/$k.diff" | sed 's/^/    /'
	fi
done
n_dcm=$(grep -c '\.dcm$' "$TMP/s_web/tree")
[ "$n_dcm" -ge 20 ] || fail "only $n_dcm instances in the URL mount"
state=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["server"]["state"])' "$MNT/.dicomfs/status.json")
[ "$state" = up ] && ok "status.json: server up" || fail "status.json server state '$state', want up"
CACHE=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["server"]["cache_dir"])' "$MNT/.dicomfs/status.json")
mount_stop

# the scan stops each transfer after DICOMFS_DW_PREFIX bytes (a test knob;
# default 64 KiB; the parser reads 16 KiB first): headers longer than that,
# encapsulated and deflated instances are fetched whole when the parser
# wants more, uncompressed pixel data is not fetched at all
log "again with a fresh index and cache, the scan fetching 20,000-byte prefixes"
export DICOMFS_DW_PREFIX=20000
mount_start "$TMP/m_web2" "$O/dicom-web" -o index="$TMP/i_web2",cache_dir="$TMP/c2",$WEBOPT || exit 1
unset DICOMFS_DW_PREFIX
n_cached=$(ls "$TMP/c2" | grep -c '\.dcm$')
# whole: the small ones (in their prefix) and the RLE one (the .json needs
# its item stream's extent); not the two uncompressed 128 KiB ones
want=$((n_dcm - 2))
[ "$n_cached" -eq "$want" ] && ok "after the index $n_cached of $n_dcm instances are whole in the cache (not the 2 uncompressed 128 KiB ones)" ||
	fail "after the prefix scan $n_cached instances are whole in the cache, want $want"
snapshot "$TMP/m_web2" "$TMP/s_web2"
for k in tree sizes md5 query counts; do
	if diff -u "$TMP/s_local/$k" "$TMP/s_web2/$k" >"$TMP/$k.diff"; then
		ok "$k (prefix scan): the URL mount equals the folder mount"
	else
		fail "$k (prefix scan) differs (- folder, + URL):"
		head -40 "$TMP/$k.diff" | sed 's/^/    /'
	fi
done
mount_stop

log "a bearer token (through tests/bearer_proxy.py), re-read when its file changes"
PPORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
echo tok-1 >"$TMP/want"
echo tok-1 >"$TMP/token"
"$PY" "$srcdir/tests/bearer_proxy.py" "$PPORT" "$O" "$TMP/want" dicomfs:s3cret &
PROXY_PID=$!
for i in $(seq 50); do
	curl -s -o /dev/null -H 'Authorization: Bearer tok-1' "http://127.0.0.1:$PPORT/system" && break
	sleep 0.2
done
mount_start "$TMP/m_tok" "http://127.0.0.1:$PPORT/dicom-web" \
	-o index="$TMP/i_tok",cache_dir="$TMP/c_tok",bearer_token_file="$TMP/token" || exit 1
mapfile -t TDCMS < <(cd "$TMP/m_tok/patients" && find . -name '*.dcm' | sort)
[ "${#TDCMS[@]}" = "$n_dcm" ] && ok "token mount lists the $n_dcm instances" ||
	fail "token mount lists ${#TDCMS[@]} instances"
echo tok-2 >"$TMP/want"
echo tok-2 >"$TMP/token.new"
mv "$TMP/token.new" "$TMP/token"
rm -f "$TMP/c_tok"/*.dcm
cat "$TMP/m_tok/patients/${TDCMS[0]}" >/dev/null && ok "token file replaced: the new token is sent" ||
	fail "reading with the replaced token file"
echo tok-3 >"$TMP/want"
cat "$TMP/m_tok/patients/${TDCMS[1]}" >/dev/null 2>&1 && fail "a refused token still read" ||
	ok "a refused token: EIO"
grep -q "HTTP 401" "$MOUNT_LOG" && ok "the 401 is in the log" || fail "no HTTP 401 in the log"
mount_stop
kill "$PROXY_PID" 2>/dev/null
wait "$PROXY_PID" 2>/dev/null

log "remount of the unchanged server, -o allow_other"
mount_start "$MNT" "$O/dicom-web" -o index="$TMP/i_web",$WEBOPT,allow_other || exit 1
parsed=$(status_get "$MNT" files_parsed)
# a server has no per-file permissions: uniform (access.h A3, source.h R9)
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
	chmod 755 "$TMP"
	n_other=$(setpriv --reuid=nobody --regid=nogroup --clear-groups -- \
		find "$MNT/patients" -name '*.dcm' 2>/dev/null | wc -l)
	first=$(cd "$MNT/patients" && find . -name '*.dcm' | sort | head -1)
	if [ "$n_other" = "$n_dcm" ] &&
		setpriv --reuid=nobody --regid=nogroup --clear-groups -- cat "$MNT/patients/$first" | cmp -s - "$MNT/patients/$first"; then
		ok "another user (nobody) sees and reads all $n_other instances (uniform)"
	else
		fail "nobody sees $n_other of $n_dcm instances or cannot read $first"
	fi
fi
req=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["server"]["requests"])' "$MNT/.dicomfs/status.json")
[ "$parsed" = 0 ] && ok "remount parsed nothing ($req requests, the study listing only)" ||
	fail "remount parsed $parsed files"
[ "$req" -le 3 ] || fail "remount made $req requests (want the study listing only)"

# two instances leave the cache: reading them needs the server
mapfile -t DCMS < <(cd "$MNT/patients" && find . -name '*.dcm' | sort)
rm -f "$CACHE"/*.dcm
cat "$MNT/patients/${DCMS[0]}" >/dev/null || fail "reading ${DCMS[0]} with the server up"
md5_0=$(md5sum <"$MNT/patients/${DCMS[0]}")

log "Orthanc stopped (SIGSTOP: connections hang)"
kill -STOP "$ORTHANC_PID"
t0=$(date +%s)
if timeout 60 cat "$MNT/patients/${DCMS[1]}" >/dev/null 2>"$TMP/err1"; then
	fail "an uncached instance read while the server hangs"
else
	t=$(( $(date +%s) - t0 ))
	grep -q "Input/output error" "$TMP/err1" && [ "$t" -le 31 ] &&
		ok "uncached instance: EIO after $t s" ||
		fail "uncached instance: $(cat "$TMP/err1") after $t s (want EIO within 30 s)"
fi
t0=$(date +%s)
[ "$(md5sum <"$MNT/patients/${DCMS[0]}")" = "$md5_0" ] || fail "cached instance unreadable while the server hangs"
timeout 10 ls -R "$MNT/patients" >/dev/null || fail "ls -R with the server hanging"
j=$(find "$MNT/patients" -name 'study.json' | head -1)
timeout 10 cat "$j" >/dev/null || fail "study.json with the server hanging"
[ $(( $(date +%s) - t0 )) -le 5 ] && ok "cached instance, ls -R and level files answer while the server hangs" ||
	fail "cached reads took $(( $(date +%s) - t0 )) s while the server hangs"
state=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["server"]["state"])' "$MNT/.dicomfs/status.json")
[ "$state" = down ] && ok "status.json: server down" || fail "status.json server state '$state', want down"
grep -q "no answer before the deadline\|timed out\|Timeout" "$MOUNT_LOG" &&
	ok "the failed read is in the log" || fail "no log line for the failed read"

log "Orthanc killed (connections refused)"
stop_orthanc
t0=$(date +%s)
timeout 60 cat "$MNT/patients/${DCMS[2]}" >/dev/null 2>"$TMP/err2" &&
	fail "an uncached instance read with the server gone"
t=$(( $(date +%s) - t0 ))
grep -q "Input/output error" "$TMP/err2" && [ "$t" -le 31 ] && ok "server gone: EIO after $t s" ||
	fail "server gone: '$(cat "$TMP/err2")' after $t s"
grep -q "errors\|server" "$MNT/.dicomfs/errors.tsv" && ok "errors.tsv lists the failed reads" ||
	fail "errors.tsv does not list the failed reads"
mount_stop

log "remount with the server gone: the last listing, from the index"
mount_start "$MNT" "$O/dicom-web" -o index="$TMP/i_web",$WEBOPT || exit 1
n=$(list_tree "$MNT/patients" | grep -c '\.dcm$')
[ "$n" = "$n_dcm" ] && ok "offline remount lists the $n instances" || fail "offline remount lists $n of $n_dcm"
[ "$(md5sum <"$MNT/patients/${DCMS[0]}")" = "$md5_0" ] || fail "cached instance unreadable offline"
mount_stop
