#!/usr/bin/python3
"""Archive for tests/mount_hygiene.sh: usage gen_hygiene.py OUTDIR

- a/1.dcm: attribute values a spreadsheet takes for formulas
  (PatientName "=HYPERLINK(...)", PatientID "+41", StudyDescription
  "-2+3", SeriesDescription "@SUM(A1)")
- b/1.dcm: ISO_IR 192 (UTF-8) with a PatientName that is not UTF-8
  (bytes C3 28 FF FE: a cut sequence and bytes never valid)
- wide/1,2.dcm: a two-slice series 40000 columns x 1 row (NIfTI-1 dim[]
  is int16: no volume)
- vol/1,2.dcm: a two-slice series 4 x 3 (a volume)
"""
import os
import sys

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

CT = "1.2.840.10008.5.1.4.1.1.2"


def ds_for(name, pid, study, series, sop, rows, cols, z, charset=None,
           sdesc="study", serdesc="series"):
    ds = Dataset()
    if charset:
        ds.SpecificCharacterSet = charset
    ds.SOPClassUID = CT
    ds.SOPInstanceUID = sop
    ds.StudyDate = "20200102"
    ds.StudyTime = "101500"
    ds.Modality = "CT"
    ds.StudyDescription = sdesc
    ds.SeriesDescription = serdesc
    ds.PatientName = name
    ds.PatientID = pid
    ds.StudyInstanceUID = study
    ds.SeriesInstanceUID = series
    ds.SeriesNumber = 1
    ds.InstanceNumber = int(z) + 1
    ds.ImagePositionPatient = [0, 0, z]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [0.5, 0.5]
    ds.SliceThickness = 1
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = rows
    ds.Columns = cols
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.PixelData = bytes((i * 7 + int(z)) & 0xff for i in range(rows * cols * 2))
    ds["PixelData"].VR = "OW"
    fm = FileMetaDataset()
    fm.MediaStorageSOPClassUID = CT
    fm.MediaStorageSOPInstanceUID = sop
    fm.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = fm
    ds.preamble = b"\0" * 128
    return ds


def save(ds, path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    try:
        ds.save_as(path, enforce_file_format=True)
    except TypeError:
        ds.is_little_endian = True
        ds.is_implicit_VR = False
        ds.save_as(path, write_like_original=False)


def main():
    out = sys.argv[1]
    st = generate_uid()
    save(ds_for('=HYPERLINK("http://example.invalid/x","y")', "+41", st,
                generate_uid(), generate_uid(), 4, 3, 0,
                sdesc="-2+3", serdesc="@SUM(A1)"), os.path.join(out, "a/1.dcm"))
    p = os.path.join(out, "b/1.dcm")
    save(ds_for("CafeXXXX", "B1", generate_uid(), generate_uid(), generate_uid(),
                4, 3, 0, charset="ISO_IR 192"), p)
    b = open(p, "rb").read()
    assert b.count(b"CafeXXXX") == 1
    open(p, "wb").write(b.replace(b"CafeXXXX", b"Caf\xc3\x28\xff\xfeX"))
    for d, cols in (("wide", 40000), ("vol", 3)):
        se = generate_uid()
        stu = generate_uid()
        for z in (0, 1):
            save(ds_for(d.upper(), d.upper(), stu, se, generate_uid(),
                        1 if cols > 100 else 4, cols, float(z)),
                 os.path.join(out, "%s/%d.dcm" % (d, z + 1)))
    print("ok")


main()
