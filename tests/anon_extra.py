#!/usr/bin/python3
"""anon_extra.py OUTDIR: six instances of two patients with identifying values
in every place PS3.15 Table E.1-1 names (sequences, private elements,
physicians, institution, several dates) in three transfer syntaxes, two with
burned-in annotation (YES, and US without the attribute) - for
tests/mount_anon.sh and contrib/bench/anon_vs_gdcmanon.sh."""
import os, sys
import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian
out = sys.argv[1]
os.makedirs(out)
R = "2.25.27182818"
def item(**kw):
    d = Dataset()
    for k, v in kw.items():
        setattr(d, k, v)
    return d
n = 0
for k, (ts, mod, burned) in enumerate([
        (ExplicitVRLittleEndian, "CT", None), (ImplicitVRLittleEndian, "MR", "NO"),
        (ExplicitVRBigEndian, "CT", None), (ExplicitVRLittleEndian, "CT", "YES"),
        (ExplicitVRLittleEndian, "US", None), (ExplicitVRLittleEndian, "US", "NO")]):
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2" if mod != "US" else "1.2.840.10008.5.1.4.1.1.6.1"
    ds.SOPInstanceUID = "%s.3.%d" % (R, k)
    ds.StudyInstanceUID = "%s.1.%d" % (R, k // 3)
    ds.SeriesInstanceUID = "%s.2.%d" % (R, k)
    ds.FrameOfReferenceUID = "%s.4.%d" % (R, k // 3)
    ds.StudyDate = "20190704" if k < 3 else "20190705"
    ds.SeriesDate = "20190806"
    ds.AcquisitionDate = "20190807"
    ds.ContentDate = "20190808"
    ds.StudyTime = "081500"
    ds.InstanceCreationDate = "20190809"
    ds.AccessionNumber = "ACCX%04d" % k
    ds.InstitutionName = "Krankenhaus Sankt Quirin"
    ds.InstitutionAddress = "Quirinstrasse 12, Neuss"
    ds.StationName = "QUIRINCT01"
    ds.ReferringPhysicianName = "Brinkmann^Klausjuergen"
    ds.PerformingPhysicianName = "Sauerbruch^Ferdinand"
    ds.OperatorsName = "Nightingale^Florence"
    ds.StudyID = "STID%d" % k
    ds.StudyDescription = "Thorax Quirin protocol"
    ds.SeriesDescription = "Quirin axial"
    ds.Modality = mod
    ds.PatientName = "Zwackelmann^Hildegard" if k < 3 else "Oberhuber^Wolfgang"
    ds.PatientID = "QPID%d" % (k // 3)
    ds.PatientBirthDate = "19510203" if k < 3 else "19620405"
    ds.PatientSex = "F"
    ds.PatientAge = "068Y"
    ds.OtherPatientIDs = "OTHQ%d" % k
    ds.PatientAddress = "Hauptstrasse 99, Hintertupfing"
    ds.DeviceSerialNumber = "SNQ12345"
    ds.SeriesNumber = 1
    ds.InstanceNumber = k + 1
    if burned:
        ds.BurnedInAnnotation = burned
    ds.ReferencedImageSequence = Sequence([item(
        ReferencedSOPClassUID="1.2.840.10008.5.1.4.1.1.2",
        ReferencedSOPInstanceUID="%s.3.%d" % (R, (k + 1) % 6))])
    ds.RequestAttributesSequence = Sequence([item(
        RequestedProcedureID="RPQ%d" % k, ScheduledProcedureStepID="SPSQ%d" % k)])
    ds.ReferencedPatientSequence = Sequence([item(
        ReferencedSOPClassUID="1.2.840.10008.3.1.2.1.1",
        ReferencedSOPInstanceUID="%s.9.%d" % (R, k))])
    ds.add_new(0x00110010, "LO", "QUIRIN PRIVATE")
    ds.add_new(0x00111001, "LO", "Geheimnis Quirin")
    ds.add_new(0x00111002, "SQ", Sequence([item(PatientName="Versteckt^Privatus")]))
    ds.Rows, ds.Columns = 8, 8
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    px = (np.arange(64, dtype=np.uint16).reshape(8, 8) * (k + 3)) & 0xFFF
    ds.PixelData = px.astype(">u2" if ts == ExplicitVRBigEndian else "<u2").tobytes()
    fm = FileMetaDataset()
    fm.MediaStorageSOPClassUID = ds.SOPClassUID
    fm.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    fm.TransferSyntaxUID = ts
    fm.SourceApplicationEntityTitle = "QUIRINPACS"
    ds.file_meta = fm
    ds.is_little_endian = ts != ExplicitVRBigEndian
    ds.is_implicit_VR = ts == ImplicitVRLittleEndian
    ds.save_as(os.path.join(out, "q%d.dcm" % k), write_like_original=False)
