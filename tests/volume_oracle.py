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
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

CT = "1.2.840.10008.5.1.4.1.1.2"
MR = "1.2.840.10008.5.1.4.1.1.4"


def rot(axis, deg):
    a = np.asarray(axis, float)
    a /= np.linalg.norm(a)
    t = math.radians(deg)
    K = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + math.sin(t) * K + (1 - math.cos(t)) * K @ K


def write(path, study, series, desc, num, ipp, iop, pix, spacing=(0.7, 0.9), inum=None,
          slope=None, inter=None, tpi=None, echo=None, acq=None, modality="CT", rle=False,
          extra=None):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CT if modality == "CT" else MR
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
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = pix.shape
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1 if pix.dtype == np.int16 else 0
    ds.PixelData = pix.tobytes()
    if rle:
        from pydicom.uid import RLELossless
        ds.compress(RLELossless)
    ds.save_as(path, write_like_original=False)


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
    with open(out.rstrip("/") + ".expect.json", "w") as f:
        json.dump(expect, f, indent=1)


# ---- the oracle ----

def oracle(files):
    """independent volume from pydicom: (data [x, y, z, t] float, raw, affine RAS)"""
    dss = [pydicom.dcmread(f) for f in files]
    iop = np.array([float(v) for v in dss[0].ImageOrientationPatient])
    r, c = iop[:3], iop[3:]
    nrm = np.cross(r, c)
    proj = [float(np.dot(np.array([float(v) for v in d.ImagePositionPatient]), nrm)) for d in dss]
    keys = sorted(set(round(p, 3) for p in proj))
    nz = len(keys)
    nt = len(dss) // nz

    def tkey(d):
        for a in ("TemporalPositionIdentifier", "EchoNumbers", "AcquisitionTime"):
            if a in d:
                return float(d.get(a))
        return 0
    by = {}
    for d, p in zip(dss, proj):
        by.setdefault(round(p, 3), []).append(d)
    slopes = set()
    vols = []
    for k in keys:
        by[k].sort(key=tkey)
    for t in range(nt):
        vols.append([by[k][t] for k in keys])
    for d in dss:
        slopes.add((float(d.get("RescaleSlope", 1)), float(d.get("RescaleIntercept", 0))))
    raw = np.stack([np.stack([d.pixel_array.T for d in v], axis=-1) for v in vols], axis=-1)
    fl = np.stack([np.stack([d.pixel_array.T * float(d.get("RescaleSlope", 1)) +
                             float(d.get("RescaleIntercept", 0)) for d in v], axis=-1)
                   for v in vols], axis=-1)
    ps = [float(v) for v in dss[0].PixelSpacing]
    p0 = np.array([float(v) for v in vols[0][0].ImagePositionPatient])
    pl = np.array([float(v) for v in vols[0][-1].ImagePositionPatient])
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
            if mode == "compare":
                bad.append("%s: dcm2niix wrote %d NIfTI files" % (rel, len(outs)))
            return
        other = nib.load(outs[0])
        a, b = nib.as_closest_canonical(img), nib.as_closest_canonical(other)
        da, db = a.get_fdata(), b.get_fdata()
        if da.shape != db.shape:
            bad.append("%s: shape %s, dcm2niix %s" % (rel, da.shape, db.shape))
            return
        if not np.allclose(a.affine, b.affine, atol=1e-3):
            bad.append("%s: affine differs from dcm2niix:\n%s\n%s" % (rel, a.affine, b.affine))
        if not np.allclose(da, db, atol=1e-3):
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
