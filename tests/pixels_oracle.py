#!/usr/bin/python3
"""pixels_oracle.py - check dicomfs' <instance>.npy / .png against pydicom.

    pixels_oracle.py compare ARCHIVE MOUNTPOINT
        Every served .dcm is matched to its source (by content); for each
        source with pixel data that pydicom decodes, the .npy next to the
        .dcm must np.load to pydicom's pixel_array, after the conventions of
        dicomfs are applied to pydicom's array:
          - bits above HighBit cleared / sign-extended (pydicom keeps them);
          - YBR_FULL / YBR_FULL_422 converted to RGB with pydicom's
            convert_color_space when pydicom left them as YBR (whether a
            decoder already converted cannot be told from the dataset: the
            closer of the two is taken), tolerance 1 for that conversion;
          - PALETTE COLOR looked up with apply_color_lut, compared as uint16.
        Lossless transfer syntaxes must match exactly; lossy ones (JPEG
        baseline/extended, JPEG-LS near-lossless, JPEG 2000 lossy) within
        LOSSY_TOL of the sample range (decoders round differently).
        Files pydicom cannot decode are reported; dicomfs must then either
        not list a .npy, fail with EIO, or serve an array of the right
        shape and dtype. Every .npy and .png: st_size == bytes read. PNGs
        must decode with PIL with the right size and mode.
    pixels_oracle.py partial NPY...
        np.load(mmap_mode='r') equals np.load; reads at odd offsets and
        lengths equal the same bytes of a full read.
Environment: PIXELS_ORACLE_WRONG: source paths (relative to ARCHIVE,
separated by ':') on which pydicom's own array is known to be wrong (the
caller checks them against the encoded pixels instead); they are skipped.
Exit status 0: all good, 1: a failure (printed).
"""
import hashlib
import os
import signal
import random
import sys
import warnings

warnings.filterwarnings("ignore")
import numpy as np

LOSSLESS = {
    "1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2",
    "1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.5",
    "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70",
    "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.90",
}
WRONG = set(filter(None, os.environ.get("PIXELS_ORACLE_WRONG", "").split(":")))
LOSSY_TOL = 0.02      # of 2**BitsStored, at least 2


def sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 16), b""):
            h.update(b)
    return h.hexdigest()


def conventions(ds, arr):
    """pydicom's array -> what dicomfs serves (list of candidates)."""
    from pydicom.pixel_data_handlers.util import convert_color_space, apply_color_lut
    pi = str(ds.get("PhotometricInterpretation", "")).strip()
    if "PixelData" in ds and arr.dtype.kind in "ui" and ds.BitsAllocated > 1:
        hb = int(ds.get("HighBit", ds.get("BitsStored", ds.BitsAllocated) - 1))
        nbits = hb + 1
        width = arr.dtype.itemsize * 8
        if nbits < width:
            a = arr.astype(np.int64)
            a &= (1 << nbits) - 1
            if arr.dtype.kind == "i":
                a = np.where(a >= 1 << (nbits - 1), a - (1 << nbits), a)
            arr = a.astype(arr.dtype)
    if pi == "PALETTE COLOR":
        return [apply_color_lut(arr, ds).astype(np.uint16)]
    if pi in ("YBR_FULL", "YBR_FULL_422") and arr.ndim >= 3 and arr.shape[-1] == 3:
        return [arr, convert_color_space(arr, pi, "RGB")]
    return [arr]


def other_handlers(ds):
    """pydicom handlers other than GDCM that decode ds"""
    ok = []
    for name in ("numpy", "rle", "pillow", "jpeg_ls", "pylibjpeg"):
        try:
            ds._pixel_array = None
            ds._pixel_id = {}
            ds.convert_pixel_data(name)
            ok.append(name)
        except Exception:
            pass
    return ok


def check_png(path, ds_rows, ds_cols, colour):
    from PIL import Image
    size = os.stat(path).st_size
    with open(path, "rb") as f:
        data = f.read()
    if len(data) != size:
        return "st_size %d but %d bytes read" % (size, len(data))
    im = Image.open(path)
    im.load()
    want = "RGB" if colour else "L"
    if im.size != (ds_cols, ds_rows) or im.mode != want:
        return "PIL sees %s %s, want %s %s" % (im.size, im.mode, (ds_cols, ds_rows), want)
    return None


def budget_kill(data, mnt, srel):
    """The decode budget (CPU seconds) when errors.tsv says the decoder of
    srel ran past it (fs/kind_pixels.c P6), else None."""
    import re
    try:
        with open(os.path.join(mnt, ".dicomfs", "errors.tsv"), encoding="utf-8") as f:
            for line in f:
                path, _, why = line.rstrip("\n").partition("\t")
                m = re.search(r"ran past its budget \(([0-9.]+) s of CPU", why)
                if path == srel and m:
                    return float(m.group(1))
    except OSError:
        pass
    return None


def gdcm_needs_more(src, budget):
    """GDCM itself (gdcmconv --raw) cannot decode src within budget CPU
    seconds: the kernel stops it at RLIMIT_CPU (SIGXCPU/SIGKILL)."""
    import resource
    import subprocess
    import tempfile
    lim = int(budget) + 1

    def limit():
        resource.setrlimit(resource.RLIMIT_CPU, (lim, lim + 1))
    with tempfile.TemporaryDirectory() as d:
        try:
            r = subprocess.run(["gdcmconv", "--raw", src, os.path.join(d, "o.dcm")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               preexec_fn=limit, timeout=600)
        except (OSError, subprocess.TimeoutExpired):
            return False
    return r.returncode < 0 and -r.returncode in (signal.SIGXCPU, signal.SIGKILL)


def compare(data, mnt):
    import pydicom
    srcs = {}
    for dp, dns, fns in os.walk(data):
        for fn in fns:
            p = os.path.join(dp, fn)
            if os.path.isfile(p) and not os.path.islink(p):
                srcs.setdefault(sha(p), p)
    fails, notes, n_ok = [], [], 0
    by_ts = {}
    root = os.path.join(mnt, "patients")
    for dp, dns, fns in os.walk(root):
        dns.sort()
        for fn in sorted(fns):
            if not fn.endswith(".dcm"):
                continue
            dcm = os.path.join(dp, fn)
            rel = os.path.relpath(dcm, root)
            base = dcm[:-4]
            npy, png = base + ".npy", base + ".png"
            src = srcs.get(sha(dcm))
            if src is None:
                fails.append("%s: no source with the same bytes" % rel)
                continue
            srel = os.path.relpath(src, data)
            if srel in WRONG:
                notes.append("%s: pydicom's array is known to be wrong here: not compared" % srel)
                continue
            try:
                ds = pydicom.dcmread(src)
            except Exception:
                # no preamble / meta group: a bare implicit VR LE data set
                try:
                    ds = pydicom.dcmread(src, force=True)
                    if "TransferSyntaxUID" not in getattr(ds, "file_meta", {}):
                        from pydicom.dataset import FileMetaDataset
                        ds.file_meta = FileMetaDataset()
                        ds.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
                        ds.is_little_endian, ds.is_implicit_VR = True, True
                except Exception:
                    ds = None
            has_px = ds is not None and any(k in ds for k in ("PixelData", "FloatPixelData",
                                                               "DoubleFloatPixelData"))
            listed = os.path.exists(npy)
            if listed != os.path.exists(png):
                fails.append("%s: .npy listed %s but .png listed %s" % (rel, listed, os.path.exists(png)))
            if not has_px:
                if listed:
                    fails.append("%s: .npy listed for a source without pixel data" % rel)
                continue
            ts = str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "") or "")
            try:
                ref = ds.pixel_array
                perr = None
            except Exception as e:
                ref, perr = None, "%s: %s" % (type(e).__name__, str(e)[:100])
            served, serr = None, None
            if listed:
                try:
                    st = os.stat(npy).st_size
                    with open(npy, "rb") as f:
                        raw = f.read()
                    if len(raw) != st:
                        fails.append("%s: .npy st_size %d but %d bytes read" % (rel, st, len(raw)))
                    if len(raw) >= 10 and (10 + raw[8] + 256 * raw[9]) % 64:
                        fails.append("%s: .npy data does not start at a multiple of 64" % rel)
                    served = np.load(npy)
                except OSError as e:
                    serr = "read error: %s" % e
                except Exception as e:
                    fails.append("%s: np.load fails: %s" % (rel, e))
                    continue
            tag = "%s [%s] (%s)" % (rel, srel, ts or "no TS")
            if ref is None:
                if served is not None:
                    notes.append("%s: pydicom cannot decode (%s); dicomfs serves %s %s"
                                 % (tag, perr, served.dtype, served.shape))
                else:
                    notes.append("%s: pydicom cannot decode (%s); dicomfs: %s"
                                 % (tag, perr, serr or "no .npy"))
                continue
            if not listed:
                fails.append("%s: pydicom decodes it but no .npy is listed" % tag)
                continue
            if served is None:
                others = other_handlers(ds)
                budget = budget_kill(data, mnt, srel)
                if budget is not None and gdcm_needs_more(src, budget):
                    # P6: killed at its budget, and GDCM alone needs more
                    notes.append("%s: the decoder was killed at its budget of %.1f s of CPU; "
                                 "gdcmconv --raw alone needs more (a GDCM pathology): EIO"
                                 % (tag, budget))
                elif not others:
                    notes.append("%s: only pydicom's GDCM handler returns an array (it ignores "
                                 "GDCM's decode status); dicomfs: %s" % (tag, serr))
                else:
                    fails.append("%s: pydicom decodes it (%s) but the .npy fails: %s"
                                 % (tag, ",".join(others), serr))
                continue
            cands = [c.astype(c.dtype.newbyteorder("=")) for c in conventions(ds, ref)]
            best = None
            for c in cands:
                if c.shape != served.shape or c.dtype != served.dtype:
                    continue
                d = int(np.max(np.abs(c.astype(np.float64) - served.astype(np.float64)))) \
                    if c.size else 0
                if best is None or d < best:
                    best = d
            if best is None:
                fails.append("%s: dicomfs %s %s, pydicom %s" % (
                    tag, served.dtype, served.shape,
                    " or ".join("%s %s" % (c.dtype, c.shape) for c in cands)))
                continue
            tol = 0
            if ts not in LOSSLESS:
                tol = max(2, int(LOSSY_TOL * (1 << int(ds.get("BitsStored", 8)))))
            if len(cands) > 1:
                tol = max(tol, 1)
            if best > tol:
                fails.append("%s: values differ from pydicom by up to %d (tolerance %d)" % (tag, best, tol))
                continue
            n_ok += 1
            by_ts[ts] = by_ts.get(ts, 0) + 1
            if best:
                notes.append("%s: max difference %d (tolerance %d)" % (tag, best, tol))
            colour = served.shape[-1] == 3 and served.ndim == (4 if served.ndim == 4 else 3) \
                and (int(ds.get("SamplesPerPixel", 1)) == 3 or
                     str(ds.get("PhotometricInterpretation", "")).strip() == "PALETTE COLOR")
            e = check_png(png, int(ds.Rows), int(ds.Columns), colour)
            if e:
                fails.append("%s: png: %s" % (rel, e))
    for n in notes:
        print("    note: " + n)
    for ts, n in sorted(by_ts.items()):
        print("    %4d equal to pydicom, transfer syntax %s" % (n, ts or "(none)"))
    for f in fails:
        print("    FAIL: " + f)
    print("    %d .npy equal to pydicom, %d notes, %d failures" % (n_ok, len(notes), len(fails)))
    return 1 if fails else 0


def partial(paths):
    rnd = random.Random(7)
    bad = 0
    for p in paths:
        try:
            full = open(p, "rb").read()
        except OSError as e:
            print("    note: %s: %s (skipped)" % (p, e))
            continue
        a = np.load(p)
        m = np.load(p, mmap_mode="r")
        if not np.array_equal(a, np.asarray(m)):
            print("    FAIL: %s: mmap load differs" % p)
            bad += 1
        with open(p, "rb", buffering=0) as f:
            for _ in range(200):
                off = rnd.randrange(0, len(full))
                n = rnd.choice([1, 3, 7, 63, 65, 4095, 4097, 131073])
                f.seek(off)
                got = f.read(n)
                if got != full[off:off + n]:
                    print("    FAIL: %s: read(%d) at %d differs" % (p, n, off))
                    bad += 1
                    break
    print("    %d files: mmap and 200 random reads each, %d failures" % (len(paths), bad))
    return 1 if bad else 0


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "compare":
        sys.exit(compare(sys.argv[2], sys.argv[3]))
    if len(sys.argv) >= 3 and sys.argv[1] == "partial":
        sys.exit(partial(sys.argv[2:]))
    sys.exit(__doc__)
