#!/usr/bin/python3
"""Generate a corpus of mutated DICOM files for tests/mount_mutants.sh.

Usage: /usr/bin/python3 tests/gen_mutants.py OUTDIR SOURCE_DIR... [--per N]
                                            [--codecs N]

From every DICOM file (< 1 MiB) under the SOURCE_DIRs, deterministically
(fixed seed), writes mutants into OUTDIR/<kind>/:
  flip      1..8 random bit flips (header area mostly)
  trunc     truncations: inside the preamble, the meta group, the data set,
            the pixel data
  biglen    one element length field (explicit VR: 16 or 32 bit; implicit:
            32 bit) set to 0xFFFF / 0xFFFFFFFF / 0x7FFFFFFF / 0xFFFFFFF0 /
            file size + 1
  zero      every element length in a byte range set to 0
  empty     (pydicom) every value emptied except the three UIDs, so the
            file is still placed with absurd attributes
  dims      (pydicom) Rows / Columns / NumberOfFrames / BitsAllocated /
            SamplesPerPixel set to extreme or inconsistent values
plus synthetic bombs in OUTDIR/bomb/: sequences nested 70, 1000 and
100000 deep (undefined and defined lengths), 200000 empty items, a data set
of 100000 tiny elements, a 4 GiB item length, a Pixel Data item stream
with 100000 fragments, a UN of undefined length holding garbage.
--codecs N (needs gdcmconv) adds compressed images (issue 12): in
OUTDIR/good/ intact JPEG 2000, JPEG-LS, JPEG lossless and RLE images made
from generated 512x512 and 1024x1024 pixels (with their pixels as .npy
beside them, the oracle; SOP Instance UIDs 2.25.12012.3.*), in
OUTDIR/codec/ N mutants (2.25.12012.2.*) of each with bit
flips in the first bytes of the codestream (where the codec's headers
are), and JPEG 2000 images whose SIZ marker claims a few more rows or
columns than the codestream holds: OpenJPEG spends seconds of CPU and
hundreds of megabytes on those (minutes with other flips).
Prints the number of files written.
"""
import os
import random
import struct
import sys

try:
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian
except ImportError:  # pragma: no cover
    pydicom = None

LONG_VRS = {b'OB', b'OD', b'OF', b'OL', b'OV', b'OW', b'SQ', b'SV', b'UC',
            b'UN', b'UR', b'UT', b'UV'}


def elements(data):
    """Offsets of plausible element headers: (pos, kind) with kind
    'short' (2-byte length at pos+6), 'long' (4 bytes at pos+8) or
    'implicit' (4 bytes at pos+4)."""
    out = []
    for pos in range(0, len(data) - 12, 2):
        vr = data[pos + 4:pos + 6]
        if len(vr) == 2 and 65 <= vr[0] <= 90 and 65 <= vr[1] <= 90:
            group = data[pos] | data[pos + 1] << 8
            if group in (0x0002, 0x0008, 0x0010, 0x0018, 0x0020, 0x0028, 0x7FE0) or \
                    (group < 0x6000 and not group & 1):
                out.append((pos, 'long' if vr in LONG_VRS else 'short'))
        elif data[pos:pos + 2] in (b'\x08\x00', b'\x10\x00', b'\x20\x00', b'\x28\x00'):
            out.append((pos, 'implicit'))
    return out


def set_len(data, pos, kind, value):
    d = bytearray(data)
    if kind == 'short':
        d[pos + 6:pos + 8] = struct.pack('<H', value & 0xFFFF)
    elif kind == 'long':
        d[pos + 8:pos + 12] = struct.pack('<I', value & 0xFFFFFFFF)
    else:
        d[pos + 4:pos + 8] = struct.pack('<I', value & 0xFFFFFFFF)
    return bytes(d)


def meta(ts=b'1.2.840.10008.1.2.1\0'):
    def el(tag, vr, val):
        g, e = tag
        if vr in LONG_VRS:
            return struct.pack('<HH2sHI', g, e, vr, 0, len(val)) + val
        return struct.pack('<HH2sH', g, e, vr, len(val)) + val
    body = el((2, 1), b'OB', b'\0\1') + el((2, 2), b'UI', b'1.2.840.10008.5.1.4.1.1.7\0') + \
        el((2, 3), b'UI', b'1.2.3.4\0') + el((2, 0x10), b'UI', ts)
    return b'\0' * 128 + b'DICM' + el((2, 0), b'UL', struct.pack('<I', len(body))) + body


def uids(n):
    def el(g, e, vr, val):
        return struct.pack('<HH2sH', g, e, vr, len(val)) + val
    s = b'1.2.3.%d\0' % n
    s = s if len(s) % 2 == 0 else s + b'\0'
    return (el(8, 0x16, b'UI', b'1.2.840.10008.5.1.4.1.1.7\0') + el(8, 0x18, b'UI', s) +
            el(0x20, 0xD, b'UI', s) + el(0x20, 0xE, b'UI', s))


def sq_nested(depth, defined):
    """(0008,1115) SQ nested depth deep."""
    if not defined:
        head = (struct.pack('<HH2sHI', 8, 0x1115, b'SQ', 0, 0xFFFFFFFF) +
                struct.pack('<HHI', 0xFFFE, 0xE000, 0xFFFFFFFF))
        tail = struct.pack('<HHI', 0xFFFE, 0xE00D, 0) + struct.pack('<HHI', 0xFFFE, 0xE0DD, 0)
        return head * depth + tail * depth
    item = b''
    for _ in range(depth):
        it = struct.pack('<HHI', 0xFFFE, 0xE000, len(item)) + item
        item = struct.pack('<HH2sHI', 8, 0x1115, b'SQ', 0, len(it)) + it
    return item


def bombs(outdir):
    d = os.path.join(outdir, 'bomb')
    os.makedirs(d, exist_ok=True)
    files = {}
    for depth in (70, 1000, 100000):
        files['nest_undef_%d' % depth] = meta() + uids(depth) + sq_nested(depth, False)
        if depth <= 1000:
            files['nest_def_%d' % depth] = meta() + uids(depth + 1) + sq_nested(depth, True)
    items = struct.pack('<HHI', 0xFFFE, 0xE000, 0) * 200000
    files['items_200k'] = (meta() + uids(7) + struct.pack('<HH2sHI', 8, 0x1115, b'SQ', 0, 0xFFFFFFFF) +
                           items + struct.pack('<HHI', 0xFFFE, 0xE0DD, 0))
    tiny = b''.join(struct.pack('<HH2sH', 0x0009, 0x1000 + (i % 0xEFFF), b'LO', 0) for i in range(100000))
    files['elements_100k'] = meta() + uids(8) + tiny
    files['item_4gib'] = (meta() + uids(9) + struct.pack('<HH2sHI', 8, 0x1115, b'SQ', 0, 0xFFFFFFFF) +
                          struct.pack('<HHI', 0xFFFE, 0xE000, 0xFFFFFFF0) + b'\0' * 64)
    px = b''.join(struct.pack('<HH', 0x28, x[0]) + x[1] for x in [
        (0x02, b'US\2\0\1\0'), (0x04, b'CS\x0cMONOCHROME2 '[:2] + b'\x0c\0MONOCHROME2 '),
        (0x10, b'US\2\0\x10\0'), (0x11, b'US\2\0\x10\0'), (0x100, b'US\2\0\x08\0'),
        (0x101, b'US\2\0\x08\0'), (0x102, b'US\2\0\x07\0'), (0x103, b'US\2\0\0\0')])
    frags = struct.pack('<HHI', 0xFFFE, 0xE000, 0) + \
        (struct.pack('<HHI', 0xFFFE, 0xE000, 2) + b'\0\0') * 100000
    files['fragments_100k'] = (meta(b'1.2.840.10008.1.2.5\0') + uids(10) + px +
                               struct.pack('<HH2sHI', 0x7FE0, 0x10, b'OB', 0, 0xFFFFFFFF) + frags +
                               struct.pack('<HHI', 0xFFFE, 0xE0DD, 0))
    files['un_undef_garbage'] = (meta() + uids(11) + struct.pack('<HH2sHI', 0x0009, 0x1010, b'UN', 0, 0xFFFFFFFF) +
                                 bytes(random.Random(5).randrange(256) for _ in range(4096)))
    for k, v in files.items():
        with open(os.path.join(d, k), 'wb') as f:
            f.write(v)
    return len(files)


def codecs(outdir, n_mut, rnd):
    """Compressed images and mutants of their codestreams (--codecs)."""
    import subprocess
    import numpy as np
    from pydicom.uid import generate_uid
    good, bad = os.path.join(outdir, 'good'), os.path.join(outdir, 'codec')
    os.makedirs(good, exist_ok=True)
    os.makedirs(bad, exist_ok=True)
    tmp = os.path.join(outdir, 'codec.tmp')
    os.makedirs(tmp, exist_ok=True)
    base = '/usr/lib/python3/dist-packages/pydicom/data/test_files/CT_small.dcm'
    total = 0
    uid = 0

    def fresh_uids(path, kind):
        nonlocal uid
        ds = pydicom.dcmread(path)
        uid += 1
        ds.StudyInstanceUID = '2.25.12012.1'
        ds.SeriesInstanceUID = '2.25.12012.1.%d' % (uid % 4)
        ds.SOPInstanceUID = '2.25.12012.%d.%d' % (kind, uid)
        ds.InstanceNumber = uid
        ds.save_as(path)
        return ds

    for size in (512, 1024):
        ds = pydicom.dcmread(base)
        y, x = np.mgrid[0:size, 0:size]
        a = ((np.sin(x / 17.0) + np.cos(y / 23.0)) * 1000 + 2048 +
             np.random.default_rng(size).integers(0, 64, size=(size, size))).astype(np.uint16)
        ds.Rows, ds.Columns = a.shape
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.PixelData = a.tobytes()
        ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
        raw = os.path.join(tmp, 'raw%d.dcm' % size)
        ds.save_as(raw, write_like_original=False)
        for codec in ('j2k', 'jpegls', 'jpeg', 'rle'):
            name = '%s%d' % (codec, size)
            out = os.path.join(good, name + '.dcm')
            if subprocess.run(['gdcmconv', '--' + codec, raw, out],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode:
                continue
            fresh_uids(out, 3)
            np.save(os.path.join(good, name + '.npy'), a)
            total += 1
            data = open(out, 'rb').read()
            px = data.rfind(b'\xe0\x7f\x10\x00')
            bot = int.from_bytes(data[px + 16:px + 20], 'little')
            cs = px + 12 + 8 + bot + 8      # the first fragment's bytes
            muts = []
            for i in range(n_mut if size == 512 else max(1, n_mut // 4)):
                d = bytearray(data)
                for _ in range(rnd.randint(1, 3)):
                    d[cs + rnd.randrange(120)] ^= 1 << rnd.randrange(8)
                muts.append(('%s_%d' % (name, i), d))
            siz = data.find(b'\xff\x4f\xff\x51', cs, cs + 16)
            if siz >= 0:
                # SIZ: ff51 Lsiz Rsiz Xsiz Ysiz ...: an image taller or wider
                # than its codestream
                for i, (off, more) in enumerate([(10, 1), (10, 64), (6, 64)]):
                    d = bytearray(data)
                    v = int.from_bytes(d[siz + off:siz + off + 4], 'big') + more
                    d[siz + off:siz + off + 4] = v.to_bytes(4, 'big')
                    muts.append(('%s_siz%d' % (name, i), d))
            for mname, d in muts:
                path = os.path.join(bad, mname + '.dcm')
                with open(path, 'wb') as f:
                    f.write(d)
                try:
                    fresh_uids(path, 2)
                except Exception:
                    pass
                total += 1
    for f in os.listdir(tmp):
        os.unlink(os.path.join(tmp, f))
    os.rmdir(tmp)
    return total


def with_pydicom(src, outdir, rnd, n):
    if pydicom is None:
        return 0
    try:
        ds = pydicom.dcmread(src, force=True)
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID
    except Exception:
        return 0
    wrote = 0
    # empty: everything but the UIDs (and the transfer syntax) emptied
    try:
        e = pydicom.dcmread(src, force=True)
        keep = {0x0020000D, 0x0020000E, 0x00080018}
        for el in e.iterall():
            if el.tag in keep or el.VR == 'SQ' or el.tag == 0x7FE00010:
                continue
            try:
                el.value = None if el.VR not in ('OB', 'OW', 'UN') else b''
            except Exception:
                pass
        e.SOPInstanceUID = '2.25.999.1.%d' % n   # placed, not a duplicate
        e.save_as(os.path.join(outdir, 'empty', '%d.dcm' % n))
        wrote += 1
    except Exception:
        pass
    # dims: extreme pixel attributes
    if 'PixelData' in ds:
        variants = [dict(Rows=65535, Columns=65535), dict(NumberOfFrames='2147483647'),
                    dict(BitsAllocated=64), dict(BitsAllocated=1, SamplesPerPixel=3),
                    dict(SamplesPerPixel=4), dict(Rows=0), dict(Columns=1, Rows=1),
                    dict(PhotometricInterpretation='YBR_FULL_422', SamplesPerPixel=3),
                    dict(PhotometricInterpretation='PALETTE COLOR'),
                    dict(BitsStored=40, HighBit=60), dict(NumberOfFrames='1000')]
        for i, v in enumerate(rnd.sample(variants, 4)):
            try:
                e = pydicom.dcmread(src, force=True)
                for k, val in v.items():
                    setattr(e, k, val)
                e.SOPInstanceUID = '2.25.999.2.%d.%d' % (n, i)
                e.save_as(os.path.join(outdir, 'dims', '%d_%d.dcm' % (n, i)))
                wrote += 1
            except Exception:
                pass
    return wrote


def main():
    args = [a for a in sys.argv[1:] if not a.startswith('--')]
    per = 6
    if '--per' in sys.argv:
        per = int(sys.argv[sys.argv.index('--per') + 1])
        args.remove(str(per))
    if '--codecs' in sys.argv:
        args.remove(sys.argv[sys.argv.index('--codecs') + 1])
    outdir, srcs = args[0], args[1:]
    rnd = random.Random(20240601)
    for k in ('flip', 'trunc', 'biglen', 'zero', 'empty', 'dims'):
        os.makedirs(os.path.join(outdir, k), exist_ok=True)
    files = []
    for s in srcs:
        for root, dirs, names in os.walk(s):
            dirs.sort()
            for nm in sorted(names):
                p = os.path.join(root, nm)
                if os.path.isfile(p) and not os.path.islink(p) and 132 < os.path.getsize(p) < (1 << 20):
                    files.append(p)
    total = bombs(outdir)
    if '--codecs' in sys.argv:
        total += codecs(outdir, int(sys.argv[sys.argv.index('--codecs') + 1]),
                        random.Random(12))
    for n, p in enumerate(files):
        data = open(p, 'rb').read()
        els = elements(data[:65536])
        hdr = min(len(data), 4096)
        out = []
        for i in range(per):
            d = bytearray(data)
            for _ in range(rnd.randint(1, 8)):
                pos = rnd.randrange(hdr) if rnd.random() < 0.9 else rnd.randrange(len(d))
                d[pos] ^= 1 << rnd.randrange(8)
            out.append(('flip', bytes(d)))
        for cut in sorted({rnd.randrange(1, 132), rnd.randrange(132, hdr + 1) if hdr > 132 else 100,
                           rnd.randrange(hdr, len(data)) if len(data) > hdr else len(data) - 1,
                           len(data) - 1}):
            out.append(('trunc', data[:cut]))
        for i in range(per):
            if not els:
                break
            pos, kind = rnd.choice(els)
            val = rnd.choice([0xFFFF, 0xFFFFFFFF, 0x7FFFFFFF, 0xFFFFFFF0, len(data) + 1, len(data) - pos])
            out.append(('biglen', set_len(data, pos, kind, val)))
        if els:
            a = rnd.randrange(len(els))
            z = data
            for pos, kind in els[a:a + rnd.randint(3, 40)]:
                z = set_len(z, pos, kind, 0)
            out.append(('zero', z))
            z = data
            for pos, kind in els:
                z = set_len(z, pos, kind, 0)
            out.append(('zero', z))
        for i, (k, b) in enumerate(out):
            with open(os.path.join(outdir, k, '%d_%d' % (n, i)), 'wb') as f:
                f.write(b)
        total += len(out)
        total += with_pydicom(p, outdir, rnd, n)
    print(total)


if __name__ == '__main__':
    main()
