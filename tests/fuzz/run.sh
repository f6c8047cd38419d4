#!/bin/bash
# tests/fuzz/run.sh - build the libFuzzer harnesses of dicomfs with clang
# (ASan + UBSan) in a separate build directory and run each for a bounded
# time, seeded from the test corpus.
#
# Usage: tests/fuzz/run.sh [HARNESS...]      (default: all of them)
# Environment:
#   FUZZ_SECONDS  seconds per harness (default 20)
#   FUZZ_OUT      build + corpus directory (default ./build-fuzz)
#   FUZZ_JOBS     parallel fuzzing processes per harness (default 1)
#   FUZZ_BUILD_ONLY=1   build, do not fuzz
# Exit status: 0 no new crash; 1 a harness crashed (the input is copied to
# $FUZZ_OUT/crashes/ and printed: add it to tests/fuzz/regressions/ with the
# fix); 2 the harnesses did not build (nothing was fuzzed). GDCM aborts
# on some inputs by design of its code (assertions): those are contained
# in production (parser/decoder child processes) and are reported here as
# "contained" without failing, see classify() below.
set -u
SRC=$(cd "$(dirname "$0")/../.." && pwd)
OUT=$(mkdir -p "${FUZZ_OUT:-./build-fuzz}" && cd "${FUZZ_OUT:-./build-fuzz}" && pwd)
SECS=${FUZZ_SECONDS:-20}
JOBS=${FUZZ_JOBS:-1}
HARNESSES=${*:-fuzz_header fuzz_json fuzz_pixels fuzz_rle fuzz_query fuzz_fgroups fuzz_encaps fuzz_palette fuzz_deid}
CC=${FUZZ_CC:-clang}
CXX=${FUZZ_CXX:-clang++}
PY=/usr/bin/python3
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
log() { printf '[fuzz] %s\n' "$*" >&2; }

command -v "$CC" >/dev/null || { log "clang not found (contrib/install-deps installs it)"; exit 2; }

# ---- build (incremental: make-style timestamps) ----
mkdir -p "$OUT/obj" "$OUT/bin" "$OUT/crashes" "$OUT/contained"
printf '#define PACKAGE_VERSION "fuzz"\n' >"$OUT/config.h"
CPPF="-D_GNU_SOURCE -include $OUT/config.h -I$SRC/index -I$SRC/index/base -I$SRC/index/dicom -I$SRC/index/dicom/gdcm -I$SRC/tests/fuzz $(pkg-config --cflags lmdb json-c 2>/dev/null)"
GDCM_CFLAGS=${GDCM_CFLAGS:--I/usr/include/gdcm-3.0}
GDCM_LIBS=${GDCM_LIBS:--lgdcmMSFF -lgdcmDSED -lgdcmDICT -lgdcmIOD -lgdcmCommon}
objs=()
build_obj() { # src obj compiler flags...
	local s=$1 o=$2
	shift 2
	if [ ! -f "$o" ] || [ "$s" -nt "$o" ] || [ "$0" -nt "$o" ] ||
	   [ -n "$(find "$SRC/index" -name '*.h' -newer "$o" -print -quit)" ]; then
		"$@" -c "$s" -o "$o" || { log "compile failed: $s"; exit 2; }
	fi
}
# the index sources Makefile.am lists (GDCM shim linked in directly, not
# through the module loader dcmshim_load.c)
lib_sources() {
	tr ' \t\\' '\n\n\n' <"$SRC/Makefile.am" | grep -E "^index/.*\.$1\$" |
		grep -v '^index/dicom/gdcm/dcmshim_load\.c$' | sort -u
}
for s in $(lib_sources c); do
	s=$SRC/$s
	[ "$(basename "$s")" = scan.c ] && continue   # fuzz_header includes it
	o="$OUT/obj/$(basename "$s" .c).o"
	build_obj "$s" "$o" "$CC" -std=c11 -g -O1 $SAN -fsanitize=fuzzer-no-link $CPPF
	objs+=("$o")
done
for s in $(lib_sources cc); do
	s=$SRC/$s
	o="$OUT/obj/$(basename "$s" .cc).o"
	build_obj "$s" "$o" "$CXX" -std=c++14 -g -O1 $SAN -fsanitize=fuzzer-no-link $CPPF $GDCM_CFLAGS
	objs+=("$o")
done
# an archive: a harness pulls only what it uses (scan.c is not in it)
if [ ! -f "$OUT/libfz.a" ] || [ -n "$(find "${objs[@]}" -newer "$OUT/libfz.a" -print -quit)" ]; then
	rm -f "$OUT/libfz.a"
	ar rcs "$OUT/libfz.a" "${objs[@]}" || exit 2
fi
for h in $HARNESSES; do
	o="$OUT/obj/$h.o"
	build_obj "$SRC/tests/fuzz/$h.c" "$o" "$CC" -std=c11 -g -O1 $SAN -fsanitize=fuzzer-no-link $CPPF
	if [ ! -x "$OUT/bin/$h" ] || [ -n "$(find "$o" "$OUT/libfz.a" -newer "$OUT/bin/$h" -print -quit)" ]; then
		"$CXX" -g $SAN -fsanitize=fuzzer "$o" "$OUT/libfz.a" -o "$OUT/bin/$h" \
			$GDCM_LIBS $(pkg-config --libs lmdb json-c nettle 2>/dev/null) -ldl -lpthread ||
			{ log "link failed: $h"; exit 2; }
	fi
done
log "built: $HARNESSES in $OUT/bin"
[ -n "${FUZZ_BUILD_ONLY:-}" ] && exit 0

# ---- seeds ----
PYD=/usr/lib/python3/dist-packages/pydicom/data/test_files
seed_files() { # dir: the DICOM test corpus
	local d=$1
	mkdir -p "$d"
	[ -d "$PYD" ] && find "$PYD" -name '*.dcm' -size -300k -exec cp -t "$d" {} + 2>/dev/null
	if [ ! -f "$OUT/gen.done" ]; then
		rm -rf "$OUT/gen"
		"$PY" "$SRC/tests/gen_archive.py" "$OUT/gen" >/dev/null 2>&1 && touch "$OUT/gen.done"
	fi
	[ -d "$OUT/gen" ] && find "$OUT/gen" -type f -size -300k | head -200 |
		while read -r f; do cp "$f" "$d/gen_$(echo "$f" | md5sum | cut -c1-12)"; done
	# files shaped like other writers' (icons, palettes, offset tables,
	# elements after Pixel Data: issue 12)
	if [ ! -f "$OUT/rw.done" ]; then
		rm -rf "$OUT/rw" "$OUT/rw.truth"
		"$PY" "$SRC/tests/gen_realworld.py" "$OUT/rw" >/dev/null 2>&1 && touch "$OUT/rw.done"
	fi
	[ -d "$OUT/rw" ] && find "$OUT/rw" -name '*.dcm' -size -300k |
		while read -r f; do cp "$f" "$d/rw_$(echo "$f" | md5sum | cut -c1-12)"; done
	cp "$SRC"/tests/fuzz/regressions/* "$d"/ 2>/dev/null
	# enhanced multi-frame and mosaic headers (frame tables, CSA headers)
	for f in /usr/lib/python3/dist-packages/nibabel/nicom/tests/data/*.dcm.gz; do
		[ -f "$f" ] && zcat "$f" >"$d/nib_$(basename "$f" .gz)"
	done
	true
}
seed_struct() { # dir: structured seeds for fuzz_pixels / fuzz_rle
	mkdir -p "$1"
	"$PY" - "$1" <<'PYEOF'
import os, struct, sys
d = sys.argv[1]
def rle_frag(segs):
    hdr = struct.pack('<I', len(segs)); off = 64; offs = []
    for s in segs:
        offs.append(off); off += len(s)
    hdr += b''.join(struct.pack('<I', o) for o in offs)
    hdr += b'\0' * (64 - len(hdr))
    return hdr + b''.join(segs)
def pb(data):  # literal runs only
    out = b''
    for i in range(0, len(data), 128):
        c = data[i:i + 128]; out += bytes([len(c) - 1]) + c
    return out
# rows cols frames spp bits stored high pixrep|planar photo win flags win2
seeds = {
 'mono8':  (bytes([7, 7, 1, 0, 0, 0, 0xff, 0, 0, 0, 0, 0, 1]), bytes(range(64))),
 'mono16': (bytes([7, 7, 1, 0, 1, 12, 11, 1, 0, 0, 0x80, 3, 1]), bytes(range(128))),
 'rgb8':   (bytes([3, 3, 1, 1, 0, 0, 0xff, 2, 2, 0, 0, 0, 1]), bytes(range(48))),
 'ybr422': (bytes([3, 3, 1, 1, 0, 0, 0xff, 0, 4, 0, 0, 0, 1]), bytes(range(32))),
 'bit1':   (bytes([7, 7, 1, 0, 2, 0, 0xff, 0, 0, 0, 0, 0, 1]), bytes(range(8))),
 'float':  (bytes([3, 3, 1, 0, 3, 0, 0xff, 0, 0, 0, 2, 0, 1]), bytes(range(64))),
 'be16':   (bytes([3, 3, 1, 0, 1, 0, 0xff, 1, 0, 0, 1, 0, 1]), bytes(range(32))),
}
for k, (h, body) in seeds.items():
    open(os.path.join(d, k), 'wb').write(h + body)
# RLE: 8x8 mono8, 8x8 rgb8, 4x4 mono16, 2 frames
open(os.path.join(d, 'rle_mono8'), 'wb').write(bytes([7, 7, 1, 0, 0, 0, 0xff, 0, 0, 0, 0, 0, 0]) + rle_frag([pb(bytes(range(64)))]))
open(os.path.join(d, 'rle_rgb8'), 'wb').write(bytes([7, 7, 1, 1, 0, 0, 0xff, 0, 2, 0, 0, 0, 0]) + rle_frag([pb(bytes(64))] * 3))
open(os.path.join(d, 'rle_mono16'), 'wb').write(bytes([3, 3, 1, 0, 1, 0, 0xff, 0, 0, 0, 0, 0, 0]) + rle_frag([bytes([0xfd, 1]), bytes([15]) + bytes(range(16))]))
open(os.path.join(d, 'rle_2f'), 'wb').write(bytes([3, 3, 2, 0, 0, 0, 0xff, 0, 0, 0, 0, 0, 0]) + rle_frag([pb(bytes(16))]) + rle_frag([bytes([0xf1, 7])]))
PYEOF
}

seed_csa() { # dir: nibabel's CSA headers (Siemens files) for fuzz_fgroups
	local nib=/usr/lib/python3/dist-packages/nibabel/nicom/tests/data
	mkdir -p "$1"
	cp "$nib"/csa*.bin "$1"/ 2>/dev/null
	for f in "$nib"/csa*.bin.gz; do [ -f "$f" ] && zcat "$f" >"$1/$(basename "$f" .gz)"; done
	true
}

seed_encaps() { # dir: item streams (fuzz_encaps) and palettes (fuzz_palette)
	mkdir -p "$1"
	"$PY" - "$1" "$2" <<'PYEOF'
import os, struct, sys
d, which = sys.argv[1:]
def item(b, tag=0xE000):
    return struct.pack('<HHI', 0xFFFE, tag, len(b)) + b
delim = struct.pack('<HHI', 0xFFFE, 0xE0DD, 0)
jpeg = lambda k: b'\xff\xd8' + bytes([k]) * 9 + b'\xff\xd9'
if which == 'encaps':
    frames = [jpeg(k) for k in range(3)]
    one = b''.join(item(f) for f in frames)
    offs, o = [], 0
    for f in frames:
        offs.append(o); o += 8 + len(f)
    bot = item(b''.join(struct.pack('<I', x) for x in offs))
    split = b''.join(item(f[:6]) + item(f[6:]) for f in frames)
    seeds = {
        'one_per_frame': bytes([2, 0]) + item(b'') + one + delim,
        'bot': bytes([2, 0]) + bot + one + delim,
        'eot': bytes([2, 2, 3]) + b''.join(struct.pack('<Q', x) for x in offs) + item(b'') + one + delim,
        'split_markers': bytes([2, 0]) + item(b'') + split + delim + b'\xfc\xff\xfc\xff',
        'embedded_delim': bytes([0, 0]) + item(b'') + item(b'\xff\xd8' + delim + b'\xff\xd9'),
    }
else:
    desc = struct.pack('<HHH', 4, 0, 16)
    plain = struct.pack('<4H', 0, 1000, 50176, 65535)
    segd = struct.pack('<14H', 0, 2, 10, 20, 1, 100, 30000, 2, 2, 0, 0, 1, 52, 300)
    idx = bytes([0, 1, 2, 3, 9, 255])
    seeds = {
        'plain16': bytes([0]) + desc + struct.pack('<H', len(plain)) + plain + idx,
        'plain8': bytes([8]) + struct.pack('<HHH', 0, 0, 8) + struct.pack('<H', 0) + idx,
        'seg16': bytes([1]) + struct.pack('<HHH', 256, 0, 16) + struct.pack('<H', len(segd)) + segd + idx,
        'seg8': bytes([1]) + struct.pack('<HHH', 256, 0, 8) + struct.pack('<H', 8) + bytes([0, 2, 0, 9, 1, 254, 255, 0]) + idx,
    }
for k, v in seeds.items():
    open(os.path.join(d, k), 'wb').write(v)
PYEOF
}

# classify LOG: "ours" when the crash site is in dicomfs code (index/,
# tests/fuzz/), "gdcm" when it is inside GDCM (contained by the child
# processes in production: it costs that one file)
classify() {
	local first
	first=$(grep -E '^ +#[0-9]+ ' "$1" | grep -vE '__asan|__lsan|__interceptor_|__memset|__memcpy|__memmove|operator new|std::vector|std::__|_M_default_append|libasan|libubsan|libc\.so|libstdc\+\+|compiler-rt|sanitizer_common|/asan/|/ubsan/|__GI_|abort|raise|__assert|libFuzzer|fuzzer::|pthread_kill|nptl|__sanitizer|CrashCallback' | head -1)
	case "$first" in
	*libgdcm* | *gdcm::* | *Gdcm* | *opj_* | *libopenjp* | *jpeg* | *charls* | *CharLS*) echo gdcm ;;
	*) echo ours ;;
	esac
}

status=0
for h in $HARNESSES; do
	corpus="$OUT/corpus/$h"
	mkdir -p "$corpus"
	seeds="$OUT/seeds/$h"
	rm -rf "$seeds"
	case $h in
	fuzz_pixels | fuzz_rle) seed_struct "$seeds"; maxlen=16384 ;;
	fuzz_query) mkdir -p "$seeds"; cp "$SRC"/tests/fuzz/seeds/query/* "$seeds"/; maxlen=4096 ;;
	fuzz_fgroups) seed_csa "$seeds"; maxlen=65536 ;;
	fuzz_encaps) seed_encaps "$seeds" encaps; maxlen=16384 ;;
	fuzz_palette) seed_encaps "$seeds" palette; maxlen=140000 ;;
	*) seed_files "$seeds"; maxlen=300000 ;;
	esac
	dict=
	[ -f "$SRC/tests/fuzz/dict/dicom.dict" ] && case $h in fuzz_header | fuzz_json) dict="-dict=$SRC/tests/fuzz/dict/dicom.dict" ;; esac
	[ "$h" = fuzz_query ] && dict="-dict=$SRC/tests/fuzz/dict/query.dict"
	log "$h: ${SECS}s, $(ls "$seeds" | wc -l) seeds, corpus $(ls "$corpus" | wc -l)"
	# -fork: a contained (GDCM) crash does not end the run; each crash is
	# left in $OUT/crashes/$h-* and classified below
	rm -f "$OUT/crashes/$h-"*
	(cd "$OUT" && ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1:abort_on_error=0 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		"$OUT/bin/$h" -fork="$JOBS" -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 \
		-max_total_time="$SECS" -timeout=10 -rss_limit_mb=3000 -malloc_limit_mb=2048 \
		-max_len="$maxlen" $dict -artifact_prefix="$OUT/crashes/$h-" \
		"$corpus" "$seeds" >"$OUT/$h.log" 2>&1)
	tail -3 "$OUT/$h.log" | sed "s/^/[fuzz] $h: /" >&2
	for c in "$OUT/crashes/$h-"*; do
		[ -f "$c" ] || continue
		rl="$c.replay.log"
		ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
			timeout 60 "$OUT/bin/$h" -rss_limit_mb=3000 -malloc_limit_mb=2048 "$c" >"$rl" 2>&1
		rc=$?
		kind=$(classify "$rl")
		if [ "$rc" -eq 0 ]; then
			log "$h: $(basename "$c") does not reproduce (flaky); kept"
		elif [ "$kind" = gdcm ]; then
			log "$h: $(basename "$c"): crash inside GDCM (contained by the child processes); moved to $OUT/contained"
			mv "$c" "$rl" "$OUT/contained/"
		else
			log "$h: NEW CRASH in dicomfs code: $c"
			grep -E 'ERROR|SUMMARY|runtime error|^ +#[0-9] ' "$rl" | head -15 | sed 's/^/    /' >&2
			status=1
		fi
	done
done
exit $status
