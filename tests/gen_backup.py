#!/usr/bin/python3
"""Generate the archive of tests/mount_backup.sh and contrib/bench/bench_backup.sh.

usage: gen_backup.py OUTDIR [--j2k N] [--native N] [--size PIXELS]

OUTDIR/
  native/NNN.dcm        a native MR series of --native instances (patient BK1)
  j2k/NNN.dcm           a JPEG 2000 series of --j2k instances (same study)
  dup/copy.dcm          a byte copy of native/001.dcm: a duplicate (hidden)
  aaa_corrupt/x.dcm     native/002.dcm's instance with its pixel data cut
                        short; zzz_good/x.dcm: the whole copy (served)
  aaa_corrupt/j.dcm     j2k/001.dcm's instance cut in its item stream;
                        zzz_good/j.dcm: the whole copy (served)
  conflict/other.dcm    another patient and study reusing the SOP Instance
                        UID of native/003.dcm: a conflict (both shown)
  bad/broken.dcm        a JPEG 2000 instance alone, its codestream garbled
                        (its .npy cannot be decoded)
  notes.txt             not DICOM (sources/ lists it)
  pipe                  a FIFO (never served)
Prints nothing; exit 0 on success.
"""
import argparse
import os
import shutil
import subprocess
import sys
import warnings

warnings.filterwarnings("ignore")
import numpy as np
import pydicom
from pydicom.uid import ExplicitVRLittleEndian

BASE = "/usr/lib/python3/dist-packages/pydicom/data/test_files/CT_small.dcm"
ROOT = "2.25.16016"


def image(seed, n=128):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:n, 0:n]
    return ((np.sin(x / 7.0 + seed) + np.cos(y / 11.0)) * 600 + 1500 +
            rng.integers(0, 64, size=(n, n))).astype(np.uint16)


def instance(pid, pname, study, series, num, sop, modality="MR", size=128):
    ds = pydicom.dcmread(BASE)
    ds.PatientID = pid
    ds.PatientName = pname
    ds.PatientBirthDate = "19700101"
    ds.StudyInstanceUID = study
    ds.SeriesInstanceUID = series
    ds.SOPInstanceUID = sop
    ds.file_meta.MediaStorageSOPInstanceUID = sop
    ds.InstanceNumber = num
    ds.SeriesNumber = 1 if "native" in series else 2
    ds.Modality = modality
    a = image(num + (100 if "j2k" in series else 0), size)
    ds.Rows, ds.Columns = a.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelData = a.tobytes()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ds


def j2k(src, dst):
    subprocess.run(["gdcmconv", "--j2k", src, dst], check=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--j2k", type=int, default=6)
    ap.add_argument("--native", type=int, default=5)
    ap.add_argument("--size", type=int, default=128, help="rows = columns of the series' images")
    a = ap.parse_args()
    out = a.out
    os.makedirs(out, exist_ok=True)
    for d in ("native", "j2k", "dup", "aaa_corrupt", "zzz_good", "conflict", "bad"):
        os.makedirs(os.path.join(out, d), exist_ok=True)
    study = ROOT + ".1"
    for i in range(1, a.native + 1):
        ds = instance("BK1", "Backup^Alice", study, ROOT + ".1.native", i,
                      "%s.1.1.%d" % (ROOT, i), size=a.size)
        ds.save_as(os.path.join(out, "native", "%03d.dcm" % i), write_like_original=False)
    tmp = os.path.join(out, ".raw.dcm")
    for i in range(1, a.j2k + 1):
        ds = instance("BK1", "Backup^Alice", study, ROOT + ".1.j2k", i,
                      "%s.1.2.%d" % (ROOT, i), size=a.size)
        ds.save_as(tmp, write_like_original=False)
        j2k(tmp, os.path.join(out, "j2k", "%03d.dcm" % i))
    # a duplicate: the same bytes elsewhere
    shutil.copyfile(os.path.join(out, "native", "001.dcm"), os.path.join(out, "dup", "copy.dcm"))
    # a corrupt copy (pixel data cut short) beside a whole one; the corrupt
    # path sorts first
    good = open(os.path.join(out, "native", "002.dcm"), "rb").read()
    ds = pydicom.dcmread(os.path.join(out, "native", "002.dcm"))
    ds.SOPInstanceUID = ROOT + ".1.1.902"
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.InstanceNumber = 902
    ds.save_as(os.path.join(out, "zzz_good", "x.dcm"), write_like_original=False)
    whole = open(os.path.join(out, "zzz_good", "x.dcm"), "rb").read()
    open(os.path.join(out, "aaa_corrupt", "x.dcm"), "wb").write(whole[:len(whole) - 5000])
    # the same with JPEG 2000: the item stream cut in its fragment
    ds = pydicom.dcmread(os.path.join(out, "j2k", "001.dcm"))
    ds.SOPInstanceUID = ROOT + ".1.2.901"
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.InstanceNumber = 901
    ds.save_as(os.path.join(out, "zzz_good", "j.dcm"))
    whole = open(os.path.join(out, "zzz_good", "j.dcm"), "rb").read()
    open(os.path.join(out, "aaa_corrupt", "j.dcm"), "wb").write(whole[:len(whole) - 300])
    # a conflict: another patient and study with native/003.dcm's SOP UID
    ds = instance("BK2", "Other^Bob", ROOT + ".2", ROOT + ".2.native", 1, "%s.1.1.3" % ROOT)
    ds.save_as(os.path.join(out, "conflict", "other.dcm"), write_like_original=False)
    # an instance whose codestream is garbled: header fine, decode fails
    ds = instance("BK1", "Backup^Alice", study, ROOT + ".1.bad", 1, ROOT + ".1.3.1")
    ds.SeriesNumber = 3
    ds.save_as(tmp, write_like_original=False)
    j2k(tmp, os.path.join(out, "bad", "broken.dcm"))
    b = bytearray(open(os.path.join(out, "bad", "broken.dcm"), "rb").read())
    ds = pydicom.dcmread(os.path.join(out, "bad", "broken.dcm"), stop_before_pixels=False)
    start = b.find(b"\xff\x4f\xff\x51")   # SOC + SIZ of the codestream
    if start < 0:
        sys.exit("no JPEG 2000 codestream found")
    for k in range(start + 2, min(len(b) - 20, start + 400)):
        b[k] = 0xA5
    open(os.path.join(out, "bad", "broken.dcm"), "wb").write(bytes(b))
    os.remove(tmp)
    with open(os.path.join(out, "notes.txt"), "w") as f:
        f.write("not a DICOM file\n")
    os.mkfifo(os.path.join(out, "pipe"))


if __name__ == "__main__":
    main()
