#!/usr/bin/python3
"""Generate files shaped like those written by other software, for
tests/mount_realworld.sh (issue 12, section 1).

Usage: /usr/bin/python3 tests/gen_realworld.py OUTDIR

OUTDIR/<group>/<name>.dcm, and OUTDIR.truth/<group>/<name>.npy: the exact pixels a
lossless file must decode to (what was encoded), for files whose encoding
is lossless; the mount test compares the .npy served for <name>.dcm with
it (besides pydicom's pixel_array, which tests/pixels_oracle.py checks).

  icon/       Icon Image Sequence (0088,0200) whose item holds encapsulated
              (JPEG baseline, undefined length OB) Pixel Data, at the top
              level and inside a nested private sequence
  palette/    PALETTE COLOR: 8-bit LUT entries (in 16-bit words and packed
              bytes), 16-bit entries, a first mapped value > 0 with values
              below and above the table, descriptor first value 0 (65536
              entries), segmented LUTs (discrete, linear, indirect), and an
              RLE-compressed palette image
  jpeg/       dcmtk's dcmcjpeg / dcmcjpls: JPEG baseline (grey and colour),
              extended 12-bit (1.2.840.10008.1.2.4.51), lossless SV1,
              JPEG-LS near-lossless; multi-frame with fragments of 1 KiB
              (frames spanning fragments) with and without a Basic Offset
              Table
  encaps/     pydicom re-encapsulations of a JPEG-LS lossless multi-frame:
              Extended Offset Table, 3 fragments per frame with a BOT, 2 per
              frame without (frame ends found by the EOI marker), odd-length
              fragments padded, and an item stream followed by Data Set
              Trailing Padding; a High-Throughput JPEG 2000 label (no
              decoder: errors.tsv must say so)
  trailer/    top-level elements after Pixel Data: a private group 7FE1,
              Digital Signatures Sequence (FFFA,FFFA), Data Set Trailing
              Padding (FFFC,FFFC); native and encapsulated

All data is synthetic and deterministic (fixed UIDs, fixed pixels).
"""
import io
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import warnings

warnings.filterwarnings("ignore")
import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate, encapsulate_extended, generate_pixel_data_frame
from pydicom.sequence import Sequence

ROOT = "2.25.271828"
EXPL = "1.2.840.10008.1.2.1"
RLE = "1.2.840.10008.1.2.5"
JPEG_LS = "1.2.840.10008.1.2.4.80"
JPEG_BASE = "1.2.840.10008.1.2.4.50"
N = [0]


def base(name, rows, cols, bits=16, stored=None, spp=1, photo="MONOCHROME2", frames=1,
         pixrep=0):
    N[0] += 1
    n = N[0]
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = "%s.%d.1" % (ROOT, n)
    ds.StudyInstanceUID = ROOT + ".9.1"
    ds.SeriesInstanceUID = "%s.9.%d" % (ROOT, 100 + n)
    ds.PatientName = "REALWORLD^" + name.upper()
    ds.PatientID = "RW%03d" % n
    ds.Modality = "OT"
    ds.SeriesNumber = n
    ds.InstanceNumber = 1
    ds.SeriesDescription = name
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel = spp
    ds.PhotometricInterpretation = photo
    if spp == 3:
        ds.PlanarConfiguration = 0
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.BitsAllocated = bits
    ds.BitsStored = stored or bits
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = pixrep
    fm = FileMetaDataset()
    fm.MediaStorageSOPClassUID = ds.SOPClassUID
    fm.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    fm.TransferSyntaxUID = EXPL
    ds.file_meta = fm
    ds.is_little_endian, ds.is_implicit_VR = True, False
    return ds


def save(ds, path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    ds.save_as(path, write_like_original=False)


def relabel(path, old, new):
    """rewrite (0002,0010) of a written file (pydicom 2.3 refuses to write
    transfer syntaxes it does not know)"""
    b = bytearray(open(path, "rb").read())
    pad = lambda u: u.encode() + b"\x00" * (len(u) % 2)
    o, n = pad(old), pad(new)
    el = b"\x02\x00\x10\x00UI" + struct.pack("<H", len(o)) + o
    i = b.index(el)
    b[i:i + len(el)] = b"\x02\x00\x10\x00UI" + struct.pack("<H", len(n)) + n
    gl = b.index(b"\x02\x00\x00\x00UL\x04\x00")
    v = struct.unpack("<I", b[gl + 8:gl + 12])[0] + len(n) - len(o)
    b[gl + 8:gl + 12] = struct.pack("<I", v)
    open(path, "wb").write(bytes(b))


def set_native(ds, arr):
    ds.PixelData = np.ascontiguousarray(arr).tobytes()
    ds["PixelData"].VR = "OW" if ds.BitsAllocated > 8 else "OB"


def set_encaps(ds, ts, frames_bytes, **kw):
    ds.file_meta.TransferSyntaxUID = ts
    ds.PixelData = encapsulate(frames_bytes, **kw)
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True


def pattern(rows, cols, frames=1, mod=256, seed=0):
    rng = np.random.RandomState(seed)
    y, x = np.mgrid[0:rows, 0:cols]
    out = []
    for f in range(frames):
        a = (x * 3 + y * 5 + f * 17 + (x * y) // 7) % mod
        a = (a + rng.randint(0, max(2, mod // 16), size=a.shape)) % mod
        out.append(a)
    return np.stack(out) if frames > 1 else out[0]


def jpeg_baseline_bytes(arr8):
    from PIL import Image
    b = io.BytesIO()
    Image.fromarray(arr8.astype(np.uint8), "L").save(b, "JPEG", quality=90)
    return b.getvalue()


def truth(out, name, arr):
    p = os.path.join(out.rstrip("/") + ".truth", name + ".npy")
    os.makedirs(os.path.dirname(p), exist_ok=True)
    np.save(p, arr)


# ---- icons -------------------------------------------------------------------

def icon_item(seed):
    it = Dataset()
    it.SamplesPerPixel = 1
    it.PhotometricInterpretation = "MONOCHROME2"
    it.Rows, it.Columns = 16, 16
    it.BitsAllocated, it.BitsStored, it.HighBit, it.PixelRepresentation = 8, 8, 7, 0
    it.PixelData = encapsulate([jpeg_baseline_bytes(pattern(16, 16, seed=seed))])
    it["PixelData"].VR = "OB"
    it["PixelData"].is_undefined_length = True
    return it


def gen_icons(out):
    ds = base("icon top", 32, 40, 16, 12)
    arr = pattern(32, 40, mod=4096, seed=1).astype("<u2")
    set_native(ds, arr)
    ds.IconImageSequence = Sequence([icon_item(2)])
    save(ds, os.path.join(out, "icon", "icon_top.dcm"))
    truth(out, "icon/icon_top", arr)

    # nested: a private sequence whose item has an icon sequence, and a
    # top-level JPEG-LS image after it
    ds = base("icon nested", 24, 24, 16, 16)
    arr = pattern(24, 24, mod=65536, seed=3).astype("<u2")
    set_native(ds, arr)
    ds.private_block(0x0029, "ACME ICONS", create=True)
    inner = Dataset()
    inner.ImageComments = "nested icon"
    inner.IconImageSequence = Sequence([icon_item(4), icon_item(5)])
    ds.add_new(0x00291010, "SQ", Sequence([inner]))
    save(ds, os.path.join(out, "icon", "icon_nested.dcm"))
    truth(out, "icon/icon_nested", arr)


# ---- palettes -----------------------------------------------------------------

def palette(name, out, pix, bits, desc, lut_bytes=None, seg_bytes=None, ts=None):
    rows, cols = pix.shape
    ds = base(name, rows, cols, bits, bits, photo="PALETTE COLOR")
    for i, c in enumerate(("Red", "Green", "Blue")):
        ds.add_new(0x00281101 + i, "US", list(desc))
        if lut_bytes is not None:
            ds.add_new(0x00281201 + i, "OW", lut_bytes[i])
        else:
            ds.add_new(0x00281221 + i, "OW", seg_bytes[i])
    set_native(ds, pix.astype("<u2" if bits == 16 else "u1"))
    path = os.path.join(out, "palette", name + ".dcm")
    save(ds, path)
    return ds, path


def seg(*vals):
    return np.array(vals, dtype="<u2").tobytes()


def gen_palettes(out, tmp):
    idx8 = pattern(20, 30, mod=256, seed=7)
    # 8-bit entries in 16-bit words (the usual case)
    luts = [np.arange(256, dtype="<u2")[::-1].tobytes(),
            (np.arange(256) * 7 % 256).astype("<u2").tobytes(),
            (np.arange(256) // 2).astype("<u2").tobytes()]
    palette("pal8_words", out, idx8, 8, (256, 0, 8), luts)
    # 8-bit entries packed in bytes
    luts = [np.arange(256, dtype="u1")[::-1].tobytes(),
            (np.arange(256) * 3 % 256).astype("u1").tobytes(),
            (255 - np.arange(256) // 3).astype("u1").tobytes()]
    palette("pal8_bytes", out, idx8, 8, (256, 0, 8), luts)
    # 16-bit entries (e.g. 50176 = 196 * 256: must not come out as 196)
    luts = [(np.arange(256) * 256).astype("<u2").tobytes(),
            (np.arange(256) * 257).astype("<u2").tobytes(),
            (65535 - np.arange(256) * 201).astype("<u2").tobytes()]
    ds, path = palette("pal16", out, idx8, 8, (256, 0, 16), luts)
    # RLE of the same (dcmtk)
    rle = os.path.join(out, "palette", "pal16_rle.dcm")
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = ROOT + ".77.1"
    ds.SeriesInstanceUID = ROOT + ".77.2"
    ds.save_as(os.path.join(tmp, "p.dcm"))
    subprocess.run(["dcmcrle", os.path.join(tmp, "p.dcm"), rle], check=True)
    # 16-bit pixels, first mapped value 100, 4096 entries: values below and
    # above the table
    idx16 = pattern(16, 24, mod=4400, seed=8)
    luts = [(np.arange(4096) * 16).astype("<u2").tobytes(),
            (65535 - np.arange(4096) * 16).astype("<u2").tobytes(),
            (np.arange(4096) % 1000 * 60).astype("<u2").tobytes()]
    palette("pal16_first100", out, idx16, 16, (4096, 100, 16), luts)
    # descriptor first value 0: 65536 entries
    idxf = pattern(16, 24, mod=65536, seed=9)
    e = np.arange(65536, dtype=np.uint32)
    luts = [(e ^ 0x5A5A).astype("<u2").tobytes(), (65535 - e).astype("<u2").tobytes(),
            ((e * 3) & 0xFFFF).astype("<u2").tobytes()]
    palette("pal16_65536", out, idxf, 16, (0, 0, 16), luts)
    # segmented, 16-bit: discrete, linear (rising, falling, flat), indirect
    segs = [seg(0, 3, 0, 1000, 2000, 1, 253, 65535),
            seg(0, 1, 5, 1, 127, 40000, 1, 128, 7),
            # discrete 2, linear 100, indirect: 2 segments from word 0
            # (discrete 2 + linear 100), linear 52 -> 256 entries
            seg(0, 2, 10, 20, 1, 100, 30000, 2, 2, 0, 0, 1, 52, 300)]
    palette("pal_seg16", out, idx8, 8, (256, 0, 16), seg_bytes=segs)
    # segmented with 8-bit entries in a 16-bit word stream (as some
    # vendors' well-known palettes)
    segs = [bytes([0, 2, 0, 9, 1, 254, 255, 0]),
            bytes([0, 1, 200, 1, 255, 0]),
            bytes([0, 4, 1, 2, 3, 4, 1, 252, 99, 0])]
    palette("pal_seg8", out, idx8, 8, (256, 0, 8), seg_bytes=segs)


# ---- dcmtk JPEG / JPEG-LS ------------------------------------------------------

def dcmtk(prog, args, src, dst):
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    subprocess.run([prog] + args + [src, dst], check=True)


def gen_jpeg(out, tmp):
    j = os.path.join(out, "jpeg")
    # grey 8-bit
    ds = base("grey8", 48, 64, 8)
    set_native(ds, pattern(48, 64, seed=11).astype("u1"))
    save(ds, os.path.join(tmp, "grey8.dcm"))
    dcmtk("dcmcjpeg", ["+eb"], os.path.join(tmp, "grey8.dcm"), os.path.join(j, "baseline_grey.dcm"))
    # colour 8-bit
    ds = base("rgb8", 40, 56, 8, spp=3, photo="RGB")
    rgb = np.stack([pattern(40, 56, seed=s) for s in (12, 13, 14)], axis=-1).astype("u1")
    set_native(ds, rgb)
    save(ds, os.path.join(tmp, "rgb8.dcm"))
    dcmtk("dcmcjpeg", ["+eb"], os.path.join(tmp, "rgb8.dcm"), os.path.join(j, "baseline_rgb.dcm"))
    # 12-bit: extended (lossy, .51) and lossless SV1 (.70)
    ds = base("grey12", 48, 64, 16, 12)
    a12 = pattern(48, 64, mod=4096, seed=15).astype("<u2")
    set_native(ds, a12)
    save(ds, os.path.join(tmp, "grey12.dcm"))
    dcmtk("dcmcjpeg", ["+ee"], os.path.join(tmp, "grey12.dcm"), os.path.join(j, "extended12.dcm"))
    # 16-bit: JPEG-LS near-lossless
    ds = base("grey16", 48, 64, 16, 16)
    set_native(ds, pattern(48, 64, mod=65536, seed=16).astype("<u2"))
    save(ds, os.path.join(tmp, "grey16.dcm"))
    dcmtk("dcmcjpls", ["+en"], os.path.join(tmp, "grey16.dcm"), os.path.join(j, "jls_near16.dcm"))
    dcmtk("dcmcjpls", ["+en", "+md", "3"], os.path.join(tmp, "grey8.dcm"),
          os.path.join(j, "jls_near8.dcm"))
    # multi-frame, fragments of 1 KiB: with and without a Basic Offset Table
    ds = base("multi", 64, 64, 16, 12, frames=4)
    mf = pattern(64, 64, frames=4, mod=4096, seed=17).astype("<u2")
    set_native(ds, mf)
    save(ds, os.path.join(tmp, "multi.dcm"))
    for name, extra in (("sv1_frag_bot", ["+ot"]), ("sv1_frag_nobot", ["-ot"])):
        dcmtk("dcmcjpeg", ["+e1", "+fs", "1"] + extra, os.path.join(tmp, "multi.dcm"),
              os.path.join(tmp, name + ".dcm"))
        d = pydicom.dcmread(os.path.join(tmp, name + ".dcm"))
        N[0] += 1
        d.SOPInstanceUID = d.file_meta.MediaStorageSOPInstanceUID = "%s.%d.1" % (ROOT, N[0])
        d.SeriesInstanceUID = "%s.9.%d" % (ROOT, 100 + N[0])
        d.SeriesDescription = name
        d.save_as(os.path.join(j, name + ".dcm"))
        truth(out, "jpeg/" + name, mf)
    ds = base("multi jls", 64, 64, 16, 12, frames=4)
    set_native(ds, mf)
    save(ds, os.path.join(tmp, "multi_jls_src.dcm"))
    dcmtk("dcmcjpls", ["+el"], os.path.join(tmp, "multi_jls_src.dcm"), os.path.join(tmp, "multi_jls.dcm"))
    return mf, os.path.join(tmp, "multi_jls.dcm")


# ---- re-encapsulations ---------------------------------------------------------

def gen_encaps(out, mf, jls):
    src = pydicom.dcmread(jls)
    nfr = int(src.NumberOfFrames)
    frames = list(generate_pixel_data_frame(src.PixelData, nfr))
    e = os.path.join(out, "encaps")

    def mk(name):
        ds = base(name, 64, 64, 16, 12, frames=nfr)
        return ds

    ds = mk("eot")
    data, offs, lens = encapsulate_extended(frames)
    set_encaps(ds, JPEG_LS, [])
    ds.PixelData = data
    ds["PixelData"].is_undefined_length = True
    ds.ExtendedOffsetTable = offs
    ds.ExtendedOffsetTableLengths = lens
    save(ds, os.path.join(e, "eot.dcm"))
    truth(out, "encaps/eot", mf)

    ds = mk("frag3_bot")
    set_encaps(ds, JPEG_LS, frames, fragments_per_frame=3, has_bot=True)
    save(ds, os.path.join(e, "frag3_bot.dcm"))
    truth(out, "encaps/frag3_bot", mf)

    ds = mk("frag2_nobot")
    set_encaps(ds, JPEG_LS, frames, fragments_per_frame=2, has_bot=False)
    save(ds, os.path.join(e, "frag2_nobot.dcm"))
    truth(out, "encaps/frag2_nobot", mf)

    # one frame, odd-length codestream padded to even, three fragments, no
    # BOT, then Data Set Trailing Padding after the item stream
    one = pydicom.dcmread(jls)
    ds = base("padded", 64, 64, 16, 12)
    f0 = frames[0]
    cs = f0.rstrip(b"\x00")
    cs = cs + b"\x00" * (2 - len(cs) % 2)          # 00 padding after EOI
    third = len(cs) // 3 & ~1
    frs = [cs[:third], cs[third:2 * third], cs[2 * third:]]
    items = b"".join(b"\xfe\xff\x00\xe0" + len(x).to_bytes(4, "little") + x for x in frs)
    ds.file_meta.TransferSyntaxUID = JPEG_LS
    ds.PixelData = b"\xfe\xff\x00\xe0\x00\x00\x00\x00" + items
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    ds.add_new(0xFFFCFFFC, "OB", b"\x00" * 32)
    save(ds, os.path.join(e, "padded_trailing.dcm"))
    truth(out, "encaps/padded_trailing", mf[0])

    # a syntax without a decoder (HTJ2K): listed, .npy EIO, errors.tsv says why
    ds = base("htj2k", 64, 64, 16, 12)
    set_encaps(ds, JPEG_LS, [frames[0]])
    path = os.path.join(e, "htj2k.dcm")
    save(ds, path)
    relabel(path, JPEG_LS, "1.2.840.10008.1.2.4.201")
    del one


# ---- elements after Pixel Data ------------------------------------------------------

def trailer(ds):
    ds.private_block(0x7FE1, "ACME TRAILER", create=True)
    ds.add_new(0x7FE11001, "OB", bytes(range(20)))
    ds.add_new(0x7FE11002, "LO", "written last")
    ds.add_new(0x7FE11003, "US", [7, 9])
    sig = Dataset()
    sig.MACIDNumber = 1
    sig.DigitalSignatureUID = ROOT + ".5.5"
    sig.DigitalSignatureDateTime = "20240101120000"
    sig.CertificateType = "X509_1993_SIG"
    sig.CertificateOfSigner = bytes(range(256)) * 5
    sig.Signature = bytes(range(64))
    ds.DigitalSignaturesSequence = Sequence([sig])
    ds.add_new(0xFFFCFFFC, "OB", b"\x00" * 16)


def gen_trailers(out, jls):
    ds = base("trailer native", 16, 16, 16, 16)
    arr = pattern(16, 16, mod=65536, seed=21).astype("<u2")
    set_native(ds, arr)
    trailer(ds)
    save(ds, os.path.join(out, "trailer", "native.dcm"))
    truth(out, "trailer/native", arr)
    src = pydicom.dcmread(jls)
    ds = base("trailer jls", 64, 64, 16, 12, frames=int(src.NumberOfFrames))
    ds.file_meta.TransferSyntaxUID = JPEG_LS
    ds.PixelData = src.PixelData
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    trailer(ds)
    save(ds, os.path.join(out, "trailer", "encaps.dcm"))


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    tmp = tempfile.mkdtemp()
    try:
        gen_icons(out)
        gen_palettes(out, tmp)
        mf, jls = gen_jpeg(out, tmp)
        gen_encaps(out, mf, jls)
        gen_trailers(out, jls)
        truth(out, "trailer/encaps", mf)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
