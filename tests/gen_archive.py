#!/usr/bin/python3
"""Generate synthetic DICOM archives for the dicomfs tests and benchmarks.

Usage:
    /usr/bin/python3 tests/gen_archive.py OUTDIR [--expected FILE]
    /usr/bin/python3 tests/gen_archive.py OUTDIR --count N [--expected FILE]

Without --count: a small *messy* archive that looks like a real export
(nested folders, odd file names, a DICOMDIR, several character sets and
transfer syntaxes, junk files, truncated files, duplicates, symlinks, names
that need sanitizing, name collisions).  A file that must NOT be reachable
through the mount is written next to OUTDIR, in OUTDIR + ".outside/", and a
symlink inside the archive points at it.

With --count N: a big uniform archive of N small valid CT files (64x64,
16-bit, explicit VR little endian, mixed nesting) for benchmarks.

--expected FILE writes
    FILE          the expected listing of the mounted patients/ tree: one
                  path per line relative to patients/, directories ending
                  in '/', sorted bytewise;
    FILE.sources  "<path relative to patients/>\\t<source path relative to
                  OUTDIR>" for every instance that must be served;
    FILE.errors   the sorted source paths (relative to OUTDIR) expected in
                  .dicomfs/errors.tsv (regular files only);
    FILE.optional source paths that may or may not be listed in errors.tsv
                  (the symlinks, which must not be followed).

All data is synthetic and the output is deterministic: fixed UIDs, fixed
pixel contents, fixed file and directory mtimes.

The expected names of the messy archive are written out literally below
(from the naming rules in the project's documentation), NOT computed by a
generic re-implementation of the naming code: the test is only worth
something if it is independent of the program's logic.
"""

import argparse
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import warnings

# StudyDate '2017.01.01' is deliberately not a valid DA value.
warnings.filterwarnings("ignore", message="Invalid value for VR")

ROOT = "2.25.31415926"          # UID root of all synthetic UIDs
BASE_MTIME = 1577836800         # 2020-01-01T00:00:00Z
DIR_MTIME = 1600000000

CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
MR_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
US_STORAGE = "1.2.840.10008.5.1.4.1.1.6.1"
SC_STORAGE = "1.2.840.10008.5.1.4.1.1.7"
BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"
DICOMDIR_STORAGE = "1.2.840.10008.1.3.10"
IMPL_CLASS_UID = ROOT + ".0.1"

TS_IMPLICIT = "1.2.840.10008.1.2"
TS_EXPLICIT = "1.2.840.10008.1.2.1"
TS_DEFLATED = "1.2.840.10008.1.2.1.99"
TS_BIG = "1.2.840.10008.1.2.2"


def fnv8(s):
    """First 8 hex digits of the 64-bit FNV-1a hash of s (the collision
    suffix of the naming rules)."""
    h = 0xcbf29ce484222325
    for b in s.encode():
        h ^= b
        h = (h * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return format(h, "016x")[:8]


# ---------------------------------------------------------------------------
# The messy archive
# ---------------------------------------------------------------------------

R = ROOT
# Patients: (PatientName, PatientID, SpecificCharacterSet)
P1 = ("Doe^John", "PID001", None)
P1_UPPER = ("DOE^JOHN", "PID001", None)      # second spelling, same ID
P2 = ("Müller^Jürgen", "PID002", "ISO_IR 100")
P3 = ("Yamada^Tarou=山田^太郎=やまだ^たろう", "PID003", ["", "ISO 2022 IR 87"])
P4 = ("Иванов^Иван", "PID004", "ISO_IR 192")
P5 = ("Smith^Anna", "PID005", None)
P6 = ("", "PID006", None)
P7 = ("Anon^Ymous", "", None)
P8 = ("", "", None)
P_OUT = ("Outside^Target", "OUTSIDE1", None)

# Studies: (StudyInstanceUID, StudyDate, StudyDescription, AccessionNumber)
ST1 = (R + ".1.1", "20200115", "CT Chest", "ACC001")
ST2 = (R + ".1.2", "", "..", "")
ST3 = (R + ".2.1", "20210302", "MRT Schädel", "")
ST4 = (R + ".3.1", "20220410", "胸部CT", "J-100")
ST5 = (R + ".5.1", "20190707", "Shared Study", "ACC77")   # under PID004 and PID005
ST6 = (R + ".6.1", "20200229", "  Knee   left  ", "")
ST7 = (R + ".7.1", "20180505", "Follow-up", "")
ST8 = (R + ".7.2", "20180505", "Follow-up", "")          # same name as ST7
ST9 = (R + ".8.1", "2017.01.01", "", "")                  # not 8 digits
ST10 = (R + ".9.1", "", "", "")
ST_OUT = (R + ".99.1", "20000101", "Outside", "")

# Series: (SeriesInstanceUID, SeriesNumber, Modality, SeriesDescription)
SE1 = (R + ".1.1.1", 1, "CT", "Axial")
SE2 = (R + ".1.1.2", 2, "CT", "Bone/Window\x01Test")
SE3 = (R + ".1.1.1001", 1001, "SR", "Report")
SE4 = (R + ".1.2.1", 1, "MR", "")
SE5A = (R + ".1.2.5", 5, "MR", "T1")
SE5B = (R + ".1.2.6", 5, "MR", "T1")                       # same name as SE5A
SE6 = (R + ".2.1.3", 3, "MR", "T2 Übersicht")
SE7 = (R + ".3.1.2", 2, "CT", "単純")
SE8 = (R + ".5.1.1", 1, "CT", "Грудь")
SE9 = (R + ".5.1.2", 2, "MR", "  Sag   PD  ")
SE10 = (R + ".6.1.1", 1, "MR", "PD")
SE11 = (R + ".7.1.1", 1, "US", "")
SE12 = (R + ".7.2.1", 1, "US", "")
SE13 = (R + ".8.1.1", 10, "OT", "")
SE14 = (R + ".9.1.1", None, "", "")
SE_OUT = (R + ".99.1.1", 1, "CT", "Outside")

# Expected directory names, written out by hand from the naming rules.
D_P1 = "DOE JOHN (PID001)"                 # bytewise smallest of the spellings
D_P2 = "Müller Jürgen (PID002)"
D_P3 = "Yamada Tarou (PID003)"             # alphabetic group only
D_P4 = "Иванов Иван (PID004)"
D_P5 = "Smith Anna (PID005)"
D_P6 = "PID006"
D_P7 = "Anon Ymous"
D_P8 = "Unknown patient"
D_ST1 = "2020-01-15 CT Chest (ACC001)"
D_ST2 = "_."                               # '..' -> leading '.' becomes '_'
D_ST3 = "2021-03-02 MRT Schädel"
D_ST4 = "2022-04-10 胸部CT (J-100)"
D_ST5 = "2019-07-07 Shared Study (ACC77)"
D_ST6 = "2020-02-29 Knee left"
D_ST7 = "2018-05-05 Follow-up ~" + fnv8(ST7[0])
D_ST8 = "2018-05-05 Follow-up ~" + fnv8(ST8[0])
D_ST9 = "2017-01-01"                   # ACR-NEMA YYYY.MM.DD, named as a date
D_ST10 = "Study 2.25.31415926.9.1"
D_SE1 = "0001 CT Axial"                    # width 4 because of series 1001
D_SE2 = "0002 CT Bone_Window_Test"
D_SE3 = "1001 SR Report"
D_SE4 = "001 MR"
D_SE5A = "005 MR T1 ~" + fnv8(SE5A[0])
D_SE5B = "005 MR T1 ~" + fnv8(SE5B[0])
D_SE6 = "003 MR T2 Übersicht"
D_SE7 = "002 CT 単純"
D_SE8 = "001 CT Грудь"
D_SE9 = "002 MR Sag PD"
D_SE10 = "001 MR PD"
D_SE11 = "001 US"
D_SE12 = "001 US"
D_SE13 = "010 OT"
D_SE14 = "Series 2.25.31415926.9.1.1"

S1 = D_P1 + "/" + D_ST1 + "/"
S2 = D_P1 + "/" + D_ST2 + "/"

# Placed instances:
#   (source relpath, patient, study, series, InstanceNumber, SOPInstanceUID,
#    encoding, expected path relative to patients/)
# Encodings: implicit, explicit, big, deflate, raw (no preamble / meta
# header, implicit VR LE), rle, jpeg, jpegls, j2k (made with gdcmconv),
# sr (explicit, no pixel data), trunc_pixels (explicit, cut inside the
# pixel data).
PLACED = [
    ("PATIENT1/STUDY1/SERIES1/IM000001", P1, ST1, SE1, 1, R + ".1.1.1.1", "implicit", S1 + D_SE1 + "/01.dcm"),
    ("PATIENT1/STUDY1/SERIES1/IM000002", P1, ST1, SE1, 2, R + ".1.1.1.2", "explicit", S1 + D_SE1 + "/02.dcm"),
    ("PATIENT1/STUDY1/SERIES1/IM000003", P1, ST1, SE1, 3, R + ".1.1.1.3", "big", S1 + D_SE1 + "/03.dcm"),
    ("PATIENT1/STUDY1/SERIES1/IM000004", P1, ST1, SE1, 4, R + ".1.1.1.4", "deflate", S1 + D_SE1 + "/04.dcm"),
    ("PATIENT1/STUDY1/SERIES1/IM000005", P1, ST1, SE1, 5, R + ".1.1.1.5", "rle", S1 + D_SE1 + "/05.dcm"),
    ("PATIENT1/STUDY1/SERIES1/IM000006", P1, ST1, SE1, 6, R + ".1.1.1.6", "jpeg", S1 + D_SE1 + "/06.dcm"),
    ("PATIENT1/STUDY1/SERIES1/IM000007", P1, ST1, SE1, 7, R + ".1.1.1.7", "jpegls", S1 + D_SE1 + "/07.dcm"),
    ("PATIENT1/STUDY1/SERIES1/IM000008", P1, ST1, SE1, 8, R + ".1.1.1.8", "j2k", S1 + D_SE1 + "/08.dcm"),
    ("PATIENT1/STUDY1/SERIES1/IM000009", P1, ST1, SE1, 9, R + ".1.1.1.9", "explicit", S1 + D_SE1 + "/09.dcm"),
    ("PATIENT1/STUDY1/SERIES1/IM000010", P1, ST1, SE1, 10, R + ".1.1.1.10", "explicit", S1 + D_SE1 + "/10.dcm"),
    ("PATIENT1/STUDY1/SERIES1/IM000011", P1, ST1, SE1, 11, R + ".1.1.1.11", "explicit", S1 + D_SE1 + "/11.dcm"),
    ("PATIENT1/STUDY1/SERIES1/IM000012", P1, ST1, SE1, 12, R + ".1.1.1.12", "explicit", S1 + D_SE1 + "/12.dcm"),
    ("PATIENT1/STUDY1/SERIES2/0000A3F2", P1, ST1, SE2, 1, R + ".1.1.2.1", "explicit", S1 + D_SE2 + "/1.dcm"),
    ("PATIENT1/STUDY1/SERIES2/0000A3F3", P1, ST1, SE2, 2, R + ".1.1.2.2", "implicit", S1 + D_SE2 + "/2.dcm"),
    ("PATIENT1/STUDY1/SERIES2/0000A3F4", P1, ST1, SE2, None, R + ".1.1.2.3", "explicit", S1 + D_SE2 + "/2.25.31415926.1.1.2.3.dcm"),
    ("PATIENT1/STUDY1/sr/report", P1_UPPER, ST1, SE3, 1, R + ".1.1.1001.1", "sr", S1 + D_SE3 + "/1.dcm"),
    ("misc/img_7.DCM", P1, ST2, SE4, 7, R + ".1.2.1.7", "explicit", S2 + D_SE4 + "/7.dcm"),
    ("misc/nohdr_8", P1, ST2, SE4, 8, R + ".1.2.1.8", "raw", S2 + D_SE4 + "/8.dcm"),
    ("misc/a/b/c/deep_1", P1, ST2, SE5A, 1, R + ".1.2.5.1", "explicit", S2 + D_SE5A + "/1 ~" + fnv8(R + ".1.2.5.1") + ".dcm"),
    ("misc/a/b/c/deep_2", P1, ST2, SE5A, 1, R + ".1.2.5.2", "explicit", S2 + D_SE5A + "/1 ~" + fnv8(R + ".1.2.5.2") + ".dcm"),
    ("misc/a/b/c/deep_3", P1, ST2, SE5A, 2, R + ".1.2.5.3", "explicit", S2 + D_SE5A + "/2.dcm"),
    ("misc/a/b/d/x1", P1, ST2, SE5B, 1, R + ".1.2.6.1", "explicit", S2 + D_SE5B + "/1.dcm"),
    ("Export 2021/MUELLER/MR/I0001", P2, ST3, SE6, 1, R + ".2.1.3.1", "big", D_P2 + "/" + D_ST3 + "/" + D_SE6 + "/1.dcm"),
    ("Export 2021/MUELLER/MR/I0002", P2, ST3, SE6, 2, R + ".2.1.3.2", "deflate", D_P2 + "/" + D_ST3 + "/" + D_SE6 + "/2.dcm"),
    ("YAMADA/CT/00000001", P3, ST4, SE7, 1, R + ".3.1.2.1", "explicit", D_P3 + "/" + D_ST4 + "/" + D_SE7 + "/1.dcm"),
    ("Export 2021/IVANOV/1.dcm", P4, ST5, SE8, 1, R + ".5.1.1.1", "explicit", D_P4 + "/" + D_ST5 + "/" + D_SE8 + "/1.dcm"),
    ("Export 2021/IVANOV/2.dcm", P4, ST5, SE8, 2, R + ".5.1.1.2", "implicit", D_P4 + "/" + D_ST5 + "/" + D_SE8 + "/2.dcm"),
    ("smith/shared/a", P5, ST5, SE9, 1, R + ".5.1.2.1", "explicit", D_P5 + "/" + D_ST5 + "/" + D_SE9 + "/1.dcm"),
    ("smith/shared/b", P5, ST5, SE9, 2, R + ".5.1.2.2", "trunc_pixels", D_P5 + "/" + D_ST5 + "/" + D_SE9 + "/2.dcm"),
    ("smith/knee/IM1", P5, ST6, SE10, 1, R + ".6.1.1.1", "explicit", D_P5 + "/" + D_ST6 + "/" + D_SE10 + "/1.dcm"),
    ("nested/x/y/z/PID006_a", P6, ST7, SE11, 1, R + ".7.1.1.1", "explicit", D_P6 + "/" + D_ST7 + "/" + D_SE11 + "/1.dcm"),
    ("nested/x/y/z/PID006_b", P6, ST8, SE12, 1, R + ".7.2.1.1", "explicit", D_P6 + "/" + D_ST8 + "/" + D_SE12 + "/1.dcm"),
    ("anon/IMG00003.dcm", P7, ST9, SE13, 3, R + ".8.1.1.3", "explicit", D_P7 + "/" + D_ST9 + "/" + D_SE13 + "/3.dcm"),
    ("unknown/0000A3F2", P8, ST10, SE14, None, R + ".9.1.1.1", "explicit", D_P8 + "/" + D_ST10 + "/" + D_SE14 + "/2.25.31415926.9.1.1.1.dcm"),
]

# Source files that must be listed in errors.tsv (besides the junk written
# by write_junk()):
#   (source relpath, patient, study, series, InstanceNumber, SOPInstanceUID, encoding)
NOT_PLACED = [
    # same SOPInstanceUID as "Export 2021/IVANOV/1.dcm", which sorts first
    ("Export 2021/IVANOV/dup/1.dcm", P4, ST5, SE8, 1, R + ".5.1.1.1", "implicit"),
    ("PATIENT1/STUDY1/SERIES1/IM000013", P1, ST1, SE1, 13, R + ".1.1.1.13", "trunc_meta"),
    ("PATIENT1/STUDY1/SERIES2/0000A3F5", P1, ST1, SE2, 4, R + ".1.1.2.4", "trunc_header"),
    ("PATIENT1/STUDY1/noseries.dcm", P1, ST1, None, 1, R + ".1.1.0.1", "explicit"),
]
JUNK = ["DICOMDIR", "notes.txt", "EMPTY", "thumbnails.db"]
SYMLINKS = ["misc/loop", "misc/outside.dcm"]
MODE_0640 = "misc/img_7.DCM"       # served as 0440


def pixels16(seed, rows=16, cols=16, bits=12):
    import numpy as np
    a = (np.arange(rows * cols, dtype=np.uint32) * (seed * 37 + 11) + seed * 101) % (1 << bits)
    return a.astype(np.uint16).reshape(rows, cols)


def make_ds(patient, study, series, inst, sop, encoding, seed):
    from pydicom.dataset import Dataset, FileMetaDataset
    ds = Dataset()
    name, pid, charset = patient
    is_sr = encoding == "sr"
    sop_class = BASIC_TEXT_SR if is_sr else {
        "CT": CT_STORAGE, "MR": MR_STORAGE, "US": US_STORAGE
    }.get(series[2] if series else "CT", SC_STORAGE)
    if charset is not None:
        ds.SpecificCharacterSet = charset
    if not is_sr:
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop
    if study[1]:
        ds.StudyDate = study[1]
    ds.StudyTime = "101500"
    ds.AccessionNumber = study[3]
    if series and series[2]:
        ds.Modality = series[2]
    ds.Manufacturer = "dicomfs synthetic"
    ds.StudyDescription = study[2]
    if series and series[3]:
        ds.SeriesDescription = series[3]
    ds.PatientName = name
    ds.PatientID = pid
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "O"
    ds.StudyInstanceUID = study[0]
    if series is not None:
        ds.SeriesInstanceUID = series[0]
    ds.StudyID = "1"
    if series and series[1] is not None:
        ds.SeriesNumber = series[1]
    if inst is not None:
        ds.InstanceNumber = inst
    if is_sr:
        ds.ValueType = "CONTAINER"
        ds.CompletionFlag = "COMPLETE"
        ds.VerificationFlag = "UNVERIFIED"
        ds.ContinuityOfContent = "SEPARATE"
    else:
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows = 16
        ds.Columns = 16
        ds.BitsAllocated = 16
        ds.BitsStored = 12
        ds.HighBit = 11
        ds.PixelRepresentation = 0
        arr = pixels16(seed)
        ds.PixelData = arr.astype(">u2" if encoding == "big" else "<u2").tobytes()
        ds["PixelData"].VR = "OW"
    fm = FileMetaDataset()
    fm.MediaStorageSOPClassUID = sop_class
    fm.MediaStorageSOPInstanceUID = sop
    fm.TransferSyntaxUID = {
        "implicit": TS_IMPLICIT, "raw": TS_IMPLICIT, "big": TS_BIG,
        "deflate": TS_DEFLATED,
    }.get(encoding, TS_EXPLICIT)
    fm.ImplementationClassUID = IMPL_CLASS_UID
    fm.ImplementationVersionName = "DICOMFS_GEN_1"
    ds.file_meta = fm
    ds.preamble = b"\0" * 128
    ds.is_little_endian = encoding != "big"
    ds.is_implicit_VR = encoding in ("implicit", "raw")
    return ds


def write_instance(path, ds, encoding, tmpdir):
    import pydicom
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if encoding == "raw":
        # No preamble, no "DICM", no file meta group: the bare data set in
        # implicit VR little endian, as old ACR-NEMA style exports write.
        del ds.file_meta
        ds.preamble = None
        pydicom.dcmwrite(path, ds, write_like_original=True)
        return
    if encoding in ("rle", "jpeg", "jpegls", "j2k"):
        src = os.path.join(tmpdir, "in.dcm")
        pydicom.dcmwrite(src, ds, write_like_original=False)
        flag = {"rle": "--rle", "jpeg": "--jpeg", "jpegls": "--jpegls",
                "j2k": "--j2k"}[encoding]
        subprocess.run(["gdcmconv", flag, src, path], check=True)
        os.unlink(src)
        return
    pydicom.dcmwrite(path, ds, write_like_original=False)
    if encoding == "trunc_pixels":
        size = os.path.getsize(path)
        # the 16x16x2 = 512 bytes of pixel data are the last bytes: keep half
        os.truncate(path, size - 256)
    elif encoding == "trunc_meta":
        os.truncate(path, 128 + 4 + 40)      # inside the file meta group
    elif encoding == "trunc_header":
        with open(path, "rb") as f:
            data = f.read()
        # cut in the middle of the value of StudyDescription (0008,1030),
        # before any of the UIDs of group 0020
        i = data.index(b"\x08\x00\x30\x10")
        os.truncate(path, i + 8 + 3)


def write_dicomdir(path):
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    ds = Dataset()
    fm = FileMetaDataset()
    fm.MediaStorageSOPClassUID = DICOMDIR_STORAGE
    fm.MediaStorageSOPInstanceUID = ROOT + ".0.2"
    fm.TransferSyntaxUID = TS_EXPLICIT
    fm.ImplementationClassUID = IMPL_CLASS_UID
    fm.ImplementationVersionName = "DICOMFS_GEN_1"
    ds.file_meta = fm
    ds.preamble = b"\0" * 128
    ds.is_little_endian = True
    ds.is_implicit_VR = False
    ds.FileSetID = "SYNTH"
    ds.OffsetOfTheFirstDirectoryRecordOfTheRootDirectoryEntity = 0
    ds.OffsetOfTheLastDirectoryRecordOfTheRootDirectoryEntity = 0
    ds.FileSetConsistencyFlag = 0
    ds.DirectoryRecordSequence = []
    pydicom.dcmwrite(path, ds, write_like_original=False)


def write_junk(out):
    write_dicomdir(os.path.join(out, "DICOMDIR"))
    with open(os.path.join(out, "notes.txt"), "w") as f:
        f.write("Exported 2021-03-04 by the PACS.\nNot a DICOM file.\n")
    open(os.path.join(out, "EMPTY"), "wb").close()
    rnd = random.Random(1234)
    with open(os.path.join(out, "thumbnails.db"), "wb") as f:
        f.write(bytes(rnd.getrandbits(8) for _ in range(4096)))


def set_times(out, files):
    """Fixed mtimes: files by their index in `files`, then every directory
    (deepest first), symlinks without following them."""
    for i, rel in enumerate(files):
        t = BASE_MTIME + i * 3600
        p = os.path.join(out, rel)
        os.utime(p, (t, t), follow_symlinks=not os.path.islink(p))
    dirs = []
    for dp, dn, fn in os.walk(out):
        dirs.append(dp)
    for d in sorted(dirs, key=lambda d: -d.count(os.sep)):
        os.utime(d, (DIR_MTIME, DIR_MTIME))


def gen_messy(out):
    tmpdir = tempfile.mkdtemp(prefix="gen_archive.")
    try:
        seed = 0
        for rel, pat, st, se, inst, sop, enc, _exp in PLACED:
            seed += 1
            write_instance(os.path.join(out, rel), make_ds(pat, st, se, inst, sop, enc, seed), enc, tmpdir)
        for rel, pat, st, se, inst, sop, enc in NOT_PLACED:
            seed += 1
            write_instance(os.path.join(out, rel), make_ds(pat, st, se, inst, sop, enc, seed), enc, tmpdir)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    write_junk(out)

    # A valid DICOM file outside the archive, reachable only via a symlink.
    outside_dir = os.path.abspath(out).rstrip("/") + ".outside"
    os.makedirs(outside_dir, exist_ok=True)
    outside = os.path.join(outside_dir, "outside.dcm")
    write_instance(outside, make_ds(P_OUT, ST_OUT, SE_OUT, 1, R + ".99.1.1.1", "explicit", 99), "explicit", None)
    os.utime(outside, (BASE_MTIME, BASE_MTIME))
    os.utime(outside_dir, (DIR_MTIME, DIR_MTIME))
    misc = os.path.join(out, "misc")
    os.symlink("..", os.path.join(misc, "loop"))
    os.symlink(os.path.relpath(outside, misc), os.path.join(misc, "outside.dcm"))

    os.chmod(os.path.join(out, MODE_0640), 0o640)
    files = [p[0] for p in PLACED] + [p[0] for p in NOT_PLACED] + JUNK + SYMLINKS
    set_times(out, files)


def write_expected_messy(path):
    entries = set()
    sources = []
    for rel, _pat, _st, _se, _inst, _sop, _enc, exp in PLACED:
        parts = exp.split("/")
        for i in range(1, len(parts)):
            entries.add("/".join(parts[:i]) + "/")
        entries.add(exp)
        sources.append((exp, rel))
    errors = [p[0] for p in NOT_PLACED] + JUNK
    write_lists(path, entries, sources, errors, SYMLINKS)


def bsort(items):
    return sorted(items, key=lambda s: s.encode("utf-8", "surrogateescape"))


def write_lists(path, entries, sources, errors, optional):
    with open(path, "w", encoding="utf-8") as f:
        for e in bsort(entries):
            f.write(e + "\n")
    with open(path + ".sources", "w", encoding="utf-8") as f:
        for m, s in sorted(sources, key=lambda t: t[0].encode()):
            f.write(m + "\t" + s + "\n")
    with open(path + ".errors", "w", encoding="utf-8") as f:
        for e in bsort(errors):
            f.write(e + "\n")
    with open(path + ".optional", "w", encoding="utf-8") as f:
        for e in bsort(optional):
            f.write(e + "\n")


# ---------------------------------------------------------------------------
# The big uniform archive (--count)
# ---------------------------------------------------------------------------
# Hand-encoded explicit VR little endian: much faster than pydicom and the
# layout is trivial.  Patients p, 2 studies each, 2 series per study.

def _el(group, elem, vr, value):
    if isinstance(value, str):
        value = value.encode("ascii")
        if len(value) % 2:
            value += b"\0" if vr == "UI" else b" "
    elif len(value) % 2:
        value += b"\0"
    if vr in ("OB", "OW", "OF", "SQ", "UT", "UN"):
        return struct.pack("<HH2s2xI", group, elem, vr.encode(), len(value)) + value
    return struct.pack("<HH2sH", group, elem, vr.encode(), len(value)) + value


def _us(v):
    return struct.pack("<H", v)


BIG_ROWS = 64


def big_layout(n):
    """Yield (index, relpath, p, study, series, instance, instances_in_series)."""
    npat = max(1, min(n, round(n / 200)))
    for p in range(npat):
        start, end = p * n // npat, (p + 1) * n // npat
        cnt = end - start
        bounds = [start + cnt * k // 4 for k in range(5)]
        for sidx in range(4):
            st, se = sidx // 2, sidx % 2
            m = bounds[sidx + 1] - bounds[sidx]
            for k in range(m):
                i = bounds[sidx] + k
                inst = k + 1
                if p % 3 == 0:
                    rel = "P%04d/S%d/SE%d/IM%05d" % (p, st + 1, se + 1, inst)
                elif p % 3 == 1:
                    rel = "flat/%04d_%d_%d_%05d.dcm" % (p, st + 1, se + 1, inst)
                else:
                    rel = "export/%04d/%d%d/deep/er/%d" % (p, st + 1, se + 1, inst)
                yield i, rel, p, st, se, inst, m


def big_uids(p, st, se, inst):
    study = "%s.9.%d.%d" % (ROOT, 1000 + p, st + 1)
    series = "%s.%d" % (study, se + 1)
    sop = "%s.%d" % (series, inst)
    return study, series, sop


def big_bytes(p, st, se, inst, pixel_bytes):
    study, series, sop = big_uids(p, st, se, inst)
    ds = b"".join([
        _el(0x0008, 0x0008, "CS", "ORIGINAL\\PRIMARY\\AXIAL"),
        _el(0x0008, 0x0016, "UI", CT_STORAGE),
        _el(0x0008, 0x0018, "UI", sop),
        _el(0x0008, 0x0020, "DA", "202301%02d" % (st + 1)),
        _el(0x0008, 0x0030, "TM", "120000"),
        _el(0x0008, 0x0050, "SH", "A%04d%d" % (p, st + 1)),
        _el(0x0008, 0x0060, "CS", "CT"),
        _el(0x0008, 0x0070, "LO", "dicomfs synthetic"),
        _el(0x0008, 0x1030, "LO", "Bench study %d" % (st + 1)),
        _el(0x0008, 0x103E, "LO", "Bench series %d" % (se + 1)),
        _el(0x0010, 0x0010, "PN", "PAT^P%04d" % p),
        _el(0x0010, 0x0020, "LO", "ID%04d" % p),
        _el(0x0010, 0x0030, "DA", "19700101"),
        _el(0x0010, 0x0040, "CS", "O"),
        _el(0x0018, 0x0050, "DS", "1.0"),
        _el(0x0020, 0x000D, "UI", study),
        _el(0x0020, 0x000E, "UI", series),
        _el(0x0020, 0x0010, "SH", "1"),
        _el(0x0020, 0x0011, "IS", str(se + 1)),
        _el(0x0020, 0x0013, "IS", str(inst)),
        _el(0x0020, 0x0032, "DS", "0\\0\\%d" % inst),
        _el(0x0020, 0x0037, "DS", "1\\0\\0\\0\\1\\0"),
        _el(0x0028, 0x0002, "US", _us(1)),
        _el(0x0028, 0x0004, "CS", "MONOCHROME2"),
        _el(0x0028, 0x0010, "US", _us(BIG_ROWS)),
        _el(0x0028, 0x0011, "US", _us(BIG_ROWS)),
        _el(0x0028, 0x0030, "DS", "0.5\\0.5"),
        _el(0x0028, 0x0100, "US", _us(16)),
        _el(0x0028, 0x0101, "US", _us(12)),
        _el(0x0028, 0x0102, "US", _us(11)),
        _el(0x0028, 0x0103, "US", _us(0)),
        _el(0x0028, 0x1050, "DS", "40"),
        _el(0x0028, 0x1051, "DS", "400"),
        _el(0x7FE0, 0x0010, "OW", pixel_bytes),
    ])
    meta = b"".join([
        _el(0x0002, 0x0001, "OB", b"\x00\x01"),
        _el(0x0002, 0x0002, "UI", CT_STORAGE),
        _el(0x0002, 0x0003, "UI", sop),
        _el(0x0002, 0x0010, "UI", TS_EXPLICIT),
        _el(0x0002, 0x0012, "UI", IMPL_CLASS_UID),
        _el(0x0002, 0x0013, "SH", "DICOMFS_GEN_1"),
    ])
    return (b"\0" * 128 + b"DICM" + _el(0x0002, 0x0000, "UL", struct.pack("<I", len(meta)))
            + meta + ds)


def big_pixels(p):
    # Fixed per-patient contents (a ramp), 64x64 16-bit little endian.
    v = bytearray()
    for i in range(BIG_ROWS * BIG_ROWS):
        v += struct.pack("<H", (i * 3 + p * 17) & 0x0FFF)
    return bytes(v)


def _big_worker(args):
    out, n, part, nparts = args
    pixcache = {}
    made = set()
    for i, rel, p, st, se, inst, _m in big_layout(n):
        if i % nparts != part:
            continue
        if p not in pixcache:
            pixcache = {p: big_pixels(p)}
        path = os.path.join(out, rel)
        d = os.path.dirname(path)
        if d not in made:
            os.makedirs(d, exist_ok=True)
            made.add(d)
        with open(path, "wb") as f:
            f.write(big_bytes(p, st, se, inst, pixcache[p]))
        t = BASE_MTIME + i
        os.utime(path, (t, t))
    return True


def gen_big(out, n, jobs):
    jobs = max(1, min(jobs, n))
    args = [(out, n, k, jobs) for k in range(jobs)]
    if jobs == 1:
        _big_worker(args[0])
    else:
        import multiprocessing
        with multiprocessing.Pool(jobs) as pool:
            pool.map(_big_worker, args)
    dirs = [dp for dp, _dn, _fn in os.walk(out)]
    for d in sorted(dirs, key=lambda d: -d.count(os.sep)):
        os.utime(d, (DIR_MTIME, DIR_MTIME))


def write_expected_big(path, n):
    entries = set()
    sources = []
    for _i, rel, p, st, se, inst, m in big_layout(n):
        pat = "PAT P%04d (ID%04d)" % (p, p)
        study = "2023-01-%02d Bench study %d (A%04d%d)" % (st + 1, st + 1, p, st + 1)
        series = "%03d CT Bench series %d" % (se + 1, se + 1)
        inst_name = "%0*d.dcm" % (len(str(m)), inst)
        entries.update([pat + "/", pat + "/" + study + "/", pat + "/" + study + "/" + series + "/"])
        exp = "/".join([pat, study, series, inst_name])
        entries.add(exp)
        sources.append((exp, rel))
    write_lists(path, entries, sources, [], [])


# ---------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("outdir")
    ap.add_argument("--count", type=int, default=None,
                    help="write a big uniform archive of N files instead of the messy one")
    ap.add_argument("--expected", metavar="FILE",
                    help="write the expected listing to FILE (and FILE.sources, FILE.errors, FILE.optional)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                    help="processes used with --count (default: number of CPUs)")
    a = ap.parse_args()

    out = a.outdir.rstrip("/") or "/"
    if os.path.exists(out) and (not os.path.isdir(out) or os.listdir(out)):
        sys.exit("gen_archive.py: %s exists and is not an empty directory" % out)
    os.makedirs(out, exist_ok=True)
    if a.count is not None:
        if a.count < 1:
            sys.exit("gen_archive.py: --count must be >= 1")
        gen_big(out, a.count, a.jobs)
        if a.expected:
            write_expected_big(a.expected, a.count)
    else:
        gen_messy(out)
        if a.expected:
            write_expected_messy(a.expected)


if __name__ == "__main__":
    main()
