#!/usr/bin/python3
"""volume_oracle.py - test oracle of volume.nii / volume.npy (tests/mount_volume.sh).

  gen OUTDIR             write synthetic series (pydicom) and OUTDIR.expect.json
  compare MNT [EXPECT]   check every series directory of the mount:
      - volume files listed iff the series is a volume (EXPECT, when given),
        else a "no volume:" line in errors.tsv (with the expected reason);
      - stat size == bytes read; partial reads == the same bytes of a full read;
      - nibabel loads volume.nii; voxels and affine == an independent pydicom
        computation (slices sorted by IPP projection on the normal);
      - volume.npy == the .nii voxels in (slices, rows, cols) order;
      - dcm2niix -z n on the same .dcm files: after as_closest_canonical the
        affines agree within 1e-3 mm and the voxels are equal.
Prints problems; exit status 1 when there are any.
"""
import glob, json, math, os, random, shutil, subprocess, sys, tempfile, warnings
warnings.filterwarnings("ignore")
import numpy as np
import nibabel as nib
import pydicom
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian
from pydicom.uid import generate_uid as _pydicom_uid

_uid_n = [0]


def generate_uid():
    """pydicom's generate_uid from a counter, not random: the same files
    every run. dcm2niix orders the images of a series without
    InstanceNumber by what else it finds, and with some random UIDs it
    wrote the "noinum" series as two files (one CI run in many)."""
    _uid_n[0] += 1
    return _pydicom_uid(entropy_srcs=["dicomfs volume_oracle", str(_uid_n[0])])

CT = "1.2.840.10008.5.1.4.1.1.2"
MR = "1.2.840.10008.5.1.4.1.1.4"
ENH = {"CT": "1.2.840.10008.5.1.4.1.1.2.1", "MR": "1.2.840.10008.5.1.4.1.1.4.1",
       "PT": "1.2.840.10008.5.1.4.1.1.130", "LEGACY": "1.2.840.10008.5.1.4.1.1.2.2"}


def rot(axis, deg):
    a = np.asarray(axis, float)
    a /= np.linalg.norm(a)
    t = math.radians(deg)
    K = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + math.sin(t) * K + (1 - math.cos(t)) * K @ K


def new_ds(path, sop_class, study, series, desc, num, modality):
    """the attributes every generated instance has"""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(path, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.is_little_endian = True
    ds.is_implicit_VR = False
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientName = "Volume^Test"
    ds.PatientID = "VOL1"
    ds.StudyInstanceUID = study
    ds.SeriesInstanceUID = series
    ds.StudyDate = "20240301"
    ds.StudyDescription = "volumes"
    ds.SeriesDescription = desc
    ds.SeriesNumber = num
    ds.Modality = modality
    ds.FrameOfReferenceUID = study + ".1"
    return ds


def pixels_save(ds, path, frames, rle):
    """16-bit greyscale frames (2-d arrays) as the pixel data; save"""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = frames[0].shape
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1 if frames[0].dtype == np.int16 else 0
    ds.PixelData = np.stack(frames).tobytes()
    if rle:
        from pydicom.uid import RLELossless
        ds.compress(RLELossless)
    ds.save_as(path, write_like_original=False)


def write(path, study, series, desc, num, ipp, iop, pix, spacing=(0.7, 0.9), inum=None,
          slope=None, inter=None, tpi=None, echo=None, acq=None, modality="CT", rle=False,
          extra=None):
    ds = new_ds(path, CT if modality == "CT" else MR, study, series, desc, num, modality)
    if inum is not None:
        ds.InstanceNumber = inum
    ds.ImagePositionPatient = ["%.6f" % v for v in ipp]
    ds.ImageOrientationPatient = ["%.8f" % v for v in iop]
    ds.PixelSpacing = ["%g" % spacing[0], "%g" % spacing[1]]
    ds.SliceThickness = "1"     # deliberately wrong: spacing comes from positions
    if slope is not None:
        ds.RescaleSlope = "%g" % slope
    if inter is not None:
        ds.RescaleIntercept = "%g" % inter
    if tpi is not None:
        ds.TemporalPositionIdentifier = tpi
    if echo is not None:
        ds.EchoNumbers = echo
    if acq is not None:
        ds.AcquisitionTime = acq
    for k, v in (extra or {}).items():
        setattr(ds, k, v)
    pixels_save(ds, path, [pix], rle)


def _item(**kw):
    d = Dataset()
    for k, v in kw.items():
        setattr(d, k, v)
    return d


def write_enhanced(path, study, series, desc, num, frames, sop="CT", per_frame=(),
                   dims=("InStackPositionNumber",), modality=None, rle=False, no_groups=False,
                   private_ipp=False, manufacturer=None):
    """one enhanced multi-frame instance. frames: dicts with ipp, iop, pix, spacing,
    slope, inter, tpi (TemporalPositionIndex), echo (EffectiveEchoTime), acq (DT),
    stack position k; per_frame: the macros kept per frame even when equal
    ("orient", "measures", "pvt"); dims: the Dimension Index Pointers."""
    ds = new_ds(path, ENH[sop], study, series, desc, num,
                modality or ("CT" if sop in ("CT", "LEGACY") else sop))
    ds.InstanceNumber = 1
    if manufacturer:
        ds.Manufacturer = manufacturer
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL", "NONE"]
    ds.ContentDate = "20240301"
    ds.ContentTime = "120000"
    ds.AcquisitionDateTime = "20240301120000"
    f0 = frames[0]
    ds.NumberOfFrames = len(frames)
    org = generate_uid()
    tags = {"StackID": 0x00209056, "InStackPositionNumber": 0x00209057,
            "TemporalPositionIndex": 0x00209128}
    if not no_groups:
        ds.DimensionOrganizationSequence = [_item(DimensionOrganizationUID=org)]
        ds.DimensionIndexSequence = [
            _item(DimensionOrganizationUID=org, DimensionIndexPointer=tags[d],
                  FunctionalGroupPointer=0x00209111) for d in dims]

    def orient(f):
        return _item(ImageOrientationPatient=["%.8f" % v for v in f["iop"]])

    def measures(f):
        sp = f.get("spacing", (0.7, 0.9))
        return _item(PixelSpacing=["%g" % sp[0], "%g" % sp[1]], SliceThickness="1")

    def pvt(f):
        return _item(RescaleSlope="%g" % f.get("slope", 1), RescaleIntercept="%g" % f.get("inter", 0),
                     RescaleType="HU" if ds.Modality == "CT" else "US")
    macros = {"orient": ("PlaneOrientationSequence", orient),
              "measures": ("PixelMeasuresSequence", measures),
              "pvt": ("PixelValueTransformationSequence", pvt)}
    if not no_groups:
        shared = Dataset()
        for k, (kw, fn) in macros.items():
            if k not in per_frame:
                setattr(shared, kw, [fn(f0)])
        ds.SharedFunctionalGroupsSequence = [shared]
        pf = []
        for f in frames:
            it = Dataset()
            fc = _item(StackID="1", InStackPositionNumber=f["k"] + 1,
                       FrameAcquisitionDateTime=f.get("acq", "20240301120000.000000"))
            vals = {"StackID": 1, "InStackPositionNumber": f["k"] + 1}
            if f.get("tpi") is not None:
                fc.TemporalPositionIndex = f["tpi"]
                vals["TemporalPositionIndex"] = f["tpi"]
            fc.DimensionIndexValues = [vals[d] for d in dims]
            it.FrameContentSequence = [fc]
            it.PlanePositionSequence = [_item(ImagePositionPatient=["%.6f" % v for v in f["ipp"]])]
            if f.get("echo") is not None:
                it.MREchoSequence = [_item(EffectiveEchoTime=f["echo"])]
            for k, (kw, fn) in macros.items():
                if k in per_frame:
                    setattr(it, kw, [fn(f)])
            if private_ipp:
                # a private sequence holding another position, as Philips
                # files have: to be ignored (this dcm2niix reads it)
                it.add_new(0x20050010, "LO", "DICOMFS TEST")
                it.add_new(0x20051001, "SQ", [_item(ImagePositionPatient=["1", "2", "3"])])
            pf.append(it)
        ds.PerFrameFunctionalGroupsSequence = pf
    else:
        ds.ImagePositionPatient = ["%.6f" % v for v in f0["ipp"]]
        ds.ImageOrientationPatient = ["%.8f" % v for v in f0["iop"]]
        ds.PixelSpacing = ["0.7", "0.9"]
    pixels_save(ds, path, [f["pix"] for f in frames], rle)


def gen(out):
    rng = random.Random(7)
    nrng = np.random.default_rng(7)
    study = generate_uid()
    expect = {}
    os.makedirs(out, exist_ok=True)
    fileno = [0]

    def fname():
        fileno[0] += 1
        return os.path.join(out, "f%05d" % rng.randrange(100000) + "_%d" % fileno[0])

    def series(desc, num, slices, expect_reason=None, dcm2niix="compare", **kw):
        """slices: list of dicts (ipp, iop, ...); written in shuffled order"""
        uid = generate_uid()
        order = list(range(len(slices)))
        rng.shuffle(order)
        for i in order:
            s = dict(kw)
            s.update(slices[i])
            pix = s.pop("pix", None)
            if pix is None:
                shape = s.pop("shape", (40, 48))
                dt = s.pop("dtype", np.int16)
                lo, hi = (-1000, 3000) if dt == np.int16 else (0, 4000)
                pix = nrng.integers(lo, hi, size=shape).astype(dt)
            else:
                s.pop("shape", None)
                s.pop("dtype", None)
            write(fname(), study, uid, desc, num, pix=pix, **s)
        expect[desc] = {"volume": expect_reason is None, "reason": expect_reason,
                        "dcm2niix": dcm2niix}

    ax = [1, 0, 0, 0, 1, 0]
    # axial; InstanceNumber opposite to the slice order
    n = 12
    series("axial", 1, [dict(ipp=(-30.5, -20.25, -50 + 2.5 * k), iop=ax, inum=n - k)
                        for k in range(n)], slope=1, inter=-1024)
    # reversed: instance 1 at the top
    series("reversed", 2, [dict(ipp=(0, 0, 100 - 3 * k), iop=ax, inum=k + 1) for k in range(8)])
    # sagittal
    series("sagittal", 3, [dict(ipp=(-40 + 1.5 * k, -60, 80), iop=[0, 1, 0, 0, 0, -1], inum=k + 1,
                                dtype=np.uint16) for k in range(10)], modality="MR")
    # oblique: rotated about an oblique axis, slices along the normal
    R = rot((1, 2, 0.5), 25)
    r, c = R[:, 0], R[:, 1]
    nrm = np.cross(r, c)
    series("oblique", 4, [dict(ipp=tuple(np.array([10.0, -5.0, 20.0]) + 3.3 * k * nrm),
                               iop=list(r) + list(c), inum=k + 1) for k in range(9)],
           modality="MR", dtype=np.uint16)
    # gantry tilt 15 degrees: positions step along z and y
    t = math.tan(math.radians(15))
    series("tilt", 5, [dict(ipp=(-25, -30 + 2 * k * t, 10 + 2 * k), iop=ax, inum=k + 1,
                            extra={"GantryDetectorTilt": "15"}) for k in range(10)],
           dcm2niix="tilt", slope=1, inter=-1024)
    # no InstanceNumber at all
    series("noinum", 6, [dict(ipp=(0, 0, 5 * k), iop=ax) for k in range(6)])
    # 4-D: 3 time points x 6 positions
    series("fourd", 7, [dict(ipp=(0, 0, 4 * k), iop=ax, tpi=tp, inum=tp * 10 + k,
                             acq="1200%02d" % (tp * 10 + k)) for tp in (1, 2, 3) for k in range(6)],
           modality="MR", dtype=np.uint16)
    # rescale differs per slice: float32
    series("rescaled", 8, [dict(ipp=(0, 0, 2 * k), iop=ax, inum=k + 1, slope=1 + 0.5 * (k % 2),
                                inter=-1024) for k in range(6)])
    # compressed (RLE): for the decode counter
    series("rle", 9, [dict(ipp=(0, 0, 2 * k), iop=ax, inum=k + 1, shape=(64, 64))
                      for k in range(20)], rle=True)
    # not volumes
    series("mixed", 10, [dict(ipp=(0, 0, 2 * k), iop=ax if k % 2 else [0, 1, 0, 0, 0, -1],
                              inum=k + 1) for k in range(4)], "mixed orientations", dcm2niix="skip")
    series("sizes", 11, [dict(ipp=(0, 0, 2 * k), iop=ax, inum=k + 1,
                              shape=(40, 48) if k != 2 else (40, 40)) for k in range(4)],
           "different image sizes", dcm2niix="skip")
    series("single", 12, [dict(ipp=(0, 0, 0), iop=ax, inum=1)], "single image", dcm2niix="skip")
    series("dups", 13, [dict(ipp=(0, 0, 2 * (k % 3)), iop=ax, inum=k + 1) for k in range(7)],
           "do not split evenly", dcm2niix="skip")
    # ---- enhanced multi-frame objects (one instance each). Frames stored
    # in a shuffled order (the volume is ordered by the functional groups;
    # the oracle sorts by position) where dcm2niix copes with it, else in
    # the order of their DimensionIndexValues, as scanners write them
    def enhanced(desc, num, frames, expect_reason=None, dcm2niix="compare", shuffle=True,
                 dtype=np.int16, shape=(36, 44), **kw):
        lo, hi = (-1000, 3000) if dtype == np.int16 else (0, 4000)
        for f in frames:
            f["pix"] = nrng.integers(lo, hi, size=shape).astype(dtype)
        order = list(range(len(frames)))
        if shuffle:
            rng.shuffle(order)
        write_enhanced(fname(), study, generate_uid(), desc, num, [frames[i] for i in order], **kw)
        expect[desc] = {"volume": expect_reason is None, "reason": expect_reason,
                        "dcm2niix": dcm2niix}

    enhanced("enh ct", 20, [dict(ipp=(-30.5, -20.25, -50 + 2.5 * k), iop=ax, k=k,
                                slope=1, inter=-1024) for k in range(10)], sop="CT")
    R = rot((0.3, 1, 0.2), 20)
    r, c = R[:, 0], R[:, 1]
    nrm = np.cross(r, c)
    enhanced("enh mr oblique", 21,
             [dict(ipp=tuple(np.array([12.0, -7.0, 30.0]) + 2.2 * k * nrm), iop=list(r) + list(c),
                   k=k, spacing=(0.8, 0.8)) for k in range(8)],
             sop="MR", per_frame=("measures",), dtype=np.uint16)
    # orientation per frame: this dcm2niix then takes SliceThickness for the
    # slice spacing (its affine is wrong): voxels only
    enhanced("enh mr orient per frame", 28,
             [dict(ipp=tuple(np.array([12.0, -7.0, 30.0]) + 2.2 * k * nrm), iop=list(r) + list(c),
                   k=k, spacing=(0.8, 0.8)) for k in range(8)],
             sop="MR", per_frame=("orient", "measures"), dtype=np.uint16, dcm2niix="voxels",
             shuffle=False)
    # 4-D: 5 positions x 3 temporal positions, dimension index (stack,
    # temporal position index, in-stack position). This dcm2niix orders the
    # frames of 4-D enhanced objects right only when they come from Philips
    enhanced("enh mr 4d", 22, [dict(ipp=(0, 0, 3 * k), iop=ax, k=k, tpi=t + 1,
                                    acq="20240301120%03d.000000" % (t * 10 + k))
                               for t in range(3) for k in range(5)],
             sop="MR", dims=("StackID", "TemporalPositionIndex", "InStackPositionNumber"),
             dtype=np.uint16, shuffle=False, manufacturer="Philips Medical Systems")
    # the same with the in-stack position before the temporal index,
    # frames shuffled
    enhanced("enh mr 4d instack first", 29,
             [dict(ipp=(0, 0, 3 * k), iop=ax, k=k, tpi=t + 1) for t in range(4) for k in range(3)],
             sop="MR", dims=("StackID", "InStackPositionNumber", "TemporalPositionIndex"),
             dtype=np.uint16, manufacturer="Philips Medical Systems")
    # per-frame rescale: float32 (this dcm2niix writes the stored values
    # unscaled: affine only)
    enhanced("enh pt rescaled", 23, [dict(ipp=(0, 0, 2 * k), iop=ax, k=k, slope=1 + 0.25 * k,
                                          inter=0) for k in range(6)],
             sop="PT", per_frame=("pvt",), dtype=np.uint16, dcm2niix="affine")
    # legacy converted enhanced CT, frames in order, top to bottom
    enhanced("enh legacy", 24, [dict(ipp=(5, 5, 100 - 1.25 * k), iop=ax, k=k, slope=1,
                                     inter=-1024) for k in range(12)],
             sop="LEGACY", shuffle=False)
    # RLE multi-frame (this dcm2niix cannot decode it: pydicom only); a
    # private sequence with another position in every frame (ignored)
    enhanced("enh ct rle", 27, [dict(ipp=(0, 0, 2 * k), iop=ax, k=k) for k in range(16)],
             sop="CT", rle=True, private_ipp=True, shape=(64, 64), dcm2niix="skip")
    # not volumes
    enhanced("enh nogroups", 25, [dict(ipp=(0, 0, 0), iop=ax, k=k) for k in range(4)],
             "without per-frame geometry", dcm2niix="skip", sop="CT", no_groups=True)
    enhanced("enh uneven", 26, [dict(ipp=(0, 0, [0, 1, 2, 4, 5][k]), iop=ax, k=k)
                                for k in range(5)],
             "uneven slice spacing", dcm2niix="skip", sop="CT")
    with open(out.rstrip("/") + ".expect.json", "w") as f:
        json.dump(expect, f, indent=1)


# ---- the oracle ----

def _fg(ds, item, seq, attr):
    """a functional group value of one frame: per-frame item, else shared"""
    for src in (item, ds.get("SharedFunctionalGroupsSequence", [None])[0]):
        if src is not None and seq in src and attr in src[seq][0]:
            return src[seq][0].get(attr)
    return None


def images(files):
    """every image of the files: single-frame instances, or each frame of an
    enhanced multi-frame one (per-frame geometry from its functional groups)"""
    out = []
    for f in files:
        d = pydicom.dcmread(f)
        if "MOSAIC" in d.get("ImageType", []):
            # Siemens mosaic: nibabel's MosaicWrapper tiles and places them
            from nibabel.nicom import dicomwrappers
            w = dicomwrappers.wrapper_from_data(d)
            data = w.get_data()
            for k in range(data.shape[2]):
                out.append(dict(ipp=(w.affine @ [0, 0, k, 1])[:3], iop=d.ImageOrientationPatient,
                                ps=d.PixelSpacing, slope=float(d.get("RescaleSlope", 1)),
                                inter=float(d.get("RescaleIntercept", 0)),
                                pix=data[:, :, k].astype(d.pixel_array.dtype),
                                t=[d.get(a) for a in ("TemporalPositionIdentifier",
                                                      "EchoNumbers", "AcquisitionTime")]))
            continue
        if "PerFrameFunctionalGroupsSequence" not in d:
            out.append(dict(ipp=d.ImagePositionPatient, iop=d.ImageOrientationPatient,
                            ps=d.PixelSpacing, slope=float(d.get("RescaleSlope", 1)),
                            inter=float(d.get("RescaleIntercept", 0)), pix=d.pixel_array,
                            t=[d.get(a) for a in ("TemporalPositionIdentifier", "EchoNumbers",
                                                  "AcquisitionTime")]))
            continue
        arr = d.pixel_array
        for i, it in enumerate(d.PerFrameFunctionalGroupsSequence):
            fc = it.FrameContentSequence[0]
            out.append(dict(
                ipp=_fg(d, it, "PlanePositionSequence", "ImagePositionPatient"),
                iop=_fg(d, it, "PlaneOrientationSequence", "ImageOrientationPatient"),
                ps=_fg(d, it, "PixelMeasuresSequence", "PixelSpacing"),
                slope=float(_fg(d, it, "PixelValueTransformationSequence", "RescaleSlope") or 1),
                inter=float(_fg(d, it, "PixelValueTransformationSequence", "RescaleIntercept") or 0),
                pix=arr[i], t=[fc.get("TemporalPositionIndex"),
                               _fg(d, it, "MREchoSequence", "EffectiveEchoTime"),
                               fc.get("FrameAcquisitionDateTime")]))
    return out


def oracle(files):
    """independent volume from pydicom: (data [x, y, z, t] float, raw, affine RAS)"""
    ims = images(files)
    iop = np.array([float(v) for v in ims[0]["iop"]])
    r, c = iop[:3], iop[3:]
    nrm = np.cross(r, c)
    proj = [float(np.dot(np.array([float(v) for v in m["ipp"]]), nrm)) for m in ims]
    keys = sorted(set(round(p, 3) for p in proj))
    nz = len(keys)
    nt = len(ims) // nz

    def tkey(m):
        for v in m["t"]:
            if v is not None and v != "":
                return float(v)
        return 0
    by = {}
    for m, p in zip(ims, proj):
        by.setdefault(round(p, 3), []).append(m)
    slopes = set()
    vols = []
    for k in keys:
        by[k].sort(key=tkey)
    for t in range(nt):
        vols.append([by[k][t] for k in keys])
    for m in ims:
        slopes.add((m["slope"], m["inter"]))
    raw = np.stack([np.stack([m["pix"].T for m in v], axis=-1) for v in vols], axis=-1)
    fl = np.stack([np.stack([m["pix"].T * m["slope"] + m["inter"] for m in v], axis=-1)
                   for v in vols], axis=-1)
    ps = [float(v) for v in ims[0]["ps"]]
    p0 = np.array([float(v) for v in vols[0][0]["ipp"]])
    pl = np.array([float(v) for v in vols[0][-1]["ipp"]])
    step = (pl - p0) / max(nz - 1, 1)
    A = np.eye(4)
    A[:3, 0] = r * ps[1]
    A[:3, 1] = c * ps[0]
    A[:3, 2] = step
    A[:3, 3] = p0
    A = np.diag([-1, -1, 1, 1]) @ A
    if nt == 1:
        raw, fl = raw[..., 0], fl[..., 0]
    return fl, raw, A, len(slopes) > 1


def read_all(p):
    with open(p, "rb") as f:
        return f.read()


def compare(mnt, expect_path=None):
    bad = []
    expect = json.load(open(expect_path)) if expect_path else None
    errors = {}
    for line in read_all(os.path.join(mnt, ".dicomfs", "errors.tsv")).decode().splitlines()[1:]:
        p, _, why = line.partition("\t")
        if why.startswith("no volume:"):
            errors[p] = why
    seen = set()
    nvol = 0
    for sd in sorted(glob.glob(os.path.join(glob.escape(mnt), "patients", "*", "*", "*"))):
        if not os.path.isdir(sd):
            continue
        rel = os.path.relpath(sd, mnt)
        name = os.path.basename(sd)
        desc = name.split(" ", 2)[2] if name.count(" ") >= 2 else name
        exp = expect.get(desc) if expect else None
        if expect is not None and exp is None:
            continue
        seen.add(desc)
        nii, npy = os.path.join(sd, "volume.nii"), os.path.join(sd, "volume.npy")
        has = os.path.exists(nii)
        if has != os.path.exists(npy):
            bad.append("%s: only one of volume.nii/volume.npy" % rel)
        files = sorted(os.path.join(sd, f) for f in os.listdir(sd) if f.endswith(".dcm"))
        if not has:
            why = errors.get(rel)
            print("    %s: no volume (%s)" % (rel, why))
            if why is None:
                bad.append("%s: no volume files and no errors.tsv line" % rel)
            if exp and exp["volume"]:
                bad.append("%s: expected a volume (%s)" % (rel, why))
            elif exp and exp["reason"] not in (why or ""):
                bad.append("%s: reason %r, want %r" % (rel, why, exp["reason"]))
            continue
        nvol += 1
        if exp and not exp["volume"]:
            bad.append("%s: volume files, expected none (%s)" % (rel, exp["reason"]))
            continue
        if rel in errors:
            bad.append("%s: a volume, but errors.tsv says %s" % (rel, errors[rel]))
        b = read_all(nii)
        bn = read_all(npy)
        if len(b) != os.stat(nii).st_size or len(bn) != os.stat(npy).st_size:
            bad.append("%s: st_size != bytes read" % rel)
        # partial reads
        rr = random.Random(len(b))
        with open(nii, "rb") as f:
            for _ in range(20):
                o = rr.randrange(len(b))
                n = rr.randrange(1, 300000)
                f.seek(o)
                if f.read(n) != b[o:o + n]:
                    bad.append("%s: read(%d, %d) differs from the full read" % (rel, o, n))
                    break
        img = nib.Nifti1Image.from_bytes(b)
        fl, raw, A, resc = oracle(files)
        hdr = img.header
        data = img.get_fdata()
        if data.shape != fl.shape:
            bad.append("%s: shape %s, oracle %s" % (rel, data.shape, fl.shape))
            continue
        if not np.allclose(data, fl, atol=1e-3):
            bad.append("%s: voxels differ from the oracle" % rel)
        if not resc and not np.array_equal(np.asanyarray(img.dataobj.get_unscaled()), raw):
            bad.append("%s: stored voxels differ from the stored values" % rel)
        if resc and hdr.get_data_dtype() != np.float32:
            bad.append("%s: rescale differs per slice, dtype %s" % (rel, hdr.get_data_dtype()))
        sform, scode = img.get_sform(coded=True)
        qform, qcode = img.get_qform(coded=True)
        if scode != 1 or qcode != 1:
            bad.append("%s: sform/qform codes %s %s" % (rel, scode, qcode))
        if not np.allclose(sform, A, atol=1e-3):
            bad.append("%s: sform\n%s\noracle\n%s" % (rel, sform, A))
        if exp is None or exp["dcm2niix"] != "tilt":
            if not np.allclose(qform, A, atol=1e-3):
                bad.append("%s: qform differs from the sform:\n%s" % (rel, qform))
        arr = np.load(npy_bytes(bn))
        u = np.asanyarray(img.dataobj.get_unscaled())
        tr = (3, 2, 1, 0) if u.ndim == 4 else (2, 1, 0)
        if arr.shape != u.transpose(tr).shape or not np.array_equal(arr, u.transpose(tr)):
            bad.append("%s: volume.npy %s differs from volume.nii voxels" % (rel, arr.shape))
        mode = exp["dcm2niix"] if exp else "compare"
        d2n(rel, files, img, mode, bad)
    if expect:
        for d in expect:
            if d not in seen:
                bad.append("series %r not found in the mount" % d)
    print("    %d volumes checked" % nvol)
    for x in bad:
        print("    FAIL " + x)
    return 1 if bad else 0


def npy_bytes(b):
    import io
    return io.BytesIO(b)


def d2n(rel, files, img, mode, bad):
    """dcm2niix -z n on the same files: affine and voxels after canonical reorientation"""
    tmp = tempfile.mkdtemp(prefix="d2n")
    try:
        src = os.path.join(tmp, "in")
        out = os.path.join(tmp, "out")
        os.makedirs(src)
        os.makedirs(out)
        for i, f in enumerate(files):
            shutil.copyfile(f, os.path.join(src, "%05d.dcm" % i))
        p = subprocess.run(["dcm2niix", "-z", "n", "-b", "n", "-f", "v_%s", "-o", out, src],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        outs = sorted(glob.glob(os.path.join(out, "*.nii")))
        if mode == "tilt":
            # dcm2niix resamples a gantry-tilted series (..._Tilt_1.nii) to an
            # orthogonal grid; its uncorrected output has the same voxels as
            # ours but cannot hold the shear: compare voxels only
            plain = [o for o in outs if "Tilt" not in o]
            if plain:
                other = nib.load(plain[0])
                a = nib.as_closest_canonical(img).get_fdata()
                b = nib.as_closest_canonical(other).get_fdata()
                if a.shape != b.shape or not np.allclose(a, b, atol=1e-3):
                    bad.append("%s: voxels differ from dcm2niix's uncorrected output" % rel)
                else:
                    print("    %s: gantry tilt: voxels equal dcm2niix's (its affine has no shear)" % rel)
            return
        if len(outs) != 1:
            print("    %s: dcm2niix wrote %d files, not compared: %s" % (
                rel, len(outs), p.stdout.decode(errors="replace").strip().splitlines()[-1:]))
            if mode != "skip":
                bad.append("%s: dcm2niix wrote %d NIfTI files" % (rel, len(outs)))
            return
        other = nib.load(outs[0])
        a, b = nib.as_closest_canonical(img), nib.as_closest_canonical(other)
        da, db = a.get_fdata(), b.get_fdata()
        if da.shape != db.shape:
            bad.append("%s: shape %s, dcm2niix %s" % (rel, da.shape, db.shape))
            return
        # modes "voxels" / "affine": the other half is a known dcm2niix
        # limitation (gen() says which, per series)
        if mode != "voxels" and not np.allclose(a.affine, b.affine, atol=1e-3):
            bad.append("%s: affine differs from dcm2niix:\n%s\n%s" % (rel, a.affine, b.affine))
        if mode == "affine":
            print("    %s: affine equals dcm2niix's (voxels: see the generator)" % rel)
        elif not np.allclose(da, db, atol=1e-3):
            bad.append("%s: voxels differ from dcm2niix (max %g)" % (rel, np.abs(da - db).max()))
        else:
            print("    %s: equals dcm2niix (shape %s)" % (rel, da.shape))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "gen":
        gen(sys.argv[2])
    elif len(sys.argv) >= 3 and sys.argv[1] == "compare":
        sys.exit(compare(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None))
    else:
        print(__doc__)
        sys.exit(2)
