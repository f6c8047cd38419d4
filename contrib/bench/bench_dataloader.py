#!/usr/bin/python3
"""bench_dataloader.py - the PyTorch DataLoader side of bench_dataloader.sh.

  bench_dataloader.py gen OUT SIDE N_PER_SERIES SERIES
      write SERIES series of N_PER_SERIES uncompressed 16-bit MONOCHROME2
      instances of SIDE x SIDE into OUT/<series>/<SOPInstanceUID>.dcm
      (explicit VR little endian; the caller converts some with gdcmconv)
  bench_dataloader.py load MODE LIST EPOCHS WORKERS
      read every path of LIST (one a line) as a Dataset through a
      torch.utils.data.DataLoader (shuffled with a fixed seed, batches of 16,
      WORKERS persistent workers) for EPOCHS epochs; MODE npy: numpy.load,
      MODE npymmap: numpy.load(p, mmap_mode="r"); MODE npymap: the same map
      with the header read unbuffered (npy_map: no isatty() round trip);
      MODE pydicom: pydicom.dcmread(...).pixel_array. Each sample is returned
      whole as a tensor (uint16 viewed as int16 on both sides: torch 1.13
      has no uint16). MODE null: no reading at all, an empty array of the
      first .npy's shape (the DataLoader's own cost). Prints "seconds samples first_epoch_seconds".
  bench_dataloader.py npyload LIST REPEATS [raw]
      np.load of every path of LIST, REPEATS times, after one warm pass
      (raw: of the file opened with buffering=0, no isatty ioctl);
      prints the mean seconds per load.
"""
import os
import sys
import time
import warnings

import numpy as np


def gen(out, side, n, series):
    from pydicom.dataset import Dataset, FileMetaDataset
    y, x = np.mgrid[0:side, 0:side]
    for s in range(series):
        d = os.path.join(out, "s%02d" % s)
        os.makedirs(d, exist_ok=True)
        for i in range(n):
            ds = Dataset()
            ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
            ds.SOPInstanceUID = "2.25.9172%d.%d.%d" % (side, s + 1, i + 1)
            ds.StudyInstanceUID = "2.25.9172%d.%d" % (side, s + 1)
            ds.SeriesInstanceUID = "2.25.9172%d.%d.0" % (side, s + 1)
            ds.PatientName, ds.PatientID, ds.Modality = "BENCH^LOADER", "BL%d" % side, "CT"
            ds.SeriesNumber, ds.InstanceNumber = s + 1, i + 1
            ds.ImagePositionPatient = [0, 0, i]
            ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
            ds.PixelSpacing = [0.7, 0.7]
            ds.SliceThickness = 1
            ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
            ds.Rows = ds.Columns = side
            ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
            a = (1000 + 800 * np.sin((x + i * 3 + s) / 19.0) * np.cos(y / 23.0)
                 + (x * y + i) % 41).astype("<u2")
            ds.PixelData = a.tobytes()
            ds["PixelData"].VR = "OW"
            fm = FileMetaDataset()
            fm.MediaStorageSOPClassUID = ds.SOPClassUID
            fm.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            fm.TransferSyntaxUID = "1.2.840.10008.1.2.1"
            ds.file_meta = fm
            ds.is_little_endian, ds.is_implicit_VR = True, False
            ds.save_as(os.path.join(d, ds.SOPInstanceUID + ".dcm"), write_like_original=False)


def npy_map(p):
    """The array of the .npy file p, memory-mapped read-only, its header
    read from an unbuffered file (no isatty() ioctl: a FUSE round trip).
    A page that cannot be read (EIO: an instance that does not decode)
    raises SIGBUS where the array is touched, not an OSError."""
    import mmap
    fd = os.open(p, os.O_RDONLY | os.O_CLOEXEC)
    try:
        with open(fd, "rb", buffering=0, closefd=False) as f:
            v = np.lib.format.read_magic(f)
            if v == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            off = f.tell()
        m = mmap.mmap(fd, 0, prot=mmap.PROT_READ)
    finally:
        os.close(fd)
    n = int(np.prod(shape, dtype=np.int64))
    return np.frombuffer(m, dtype=dtype, count=n, offset=off).reshape(
        shape, order="F" if fortran else "C")


def as_tensor(a):
    import torch
    if a.dtype == np.uint16:
        a = a.view(np.int16)   # torch 1.13 has no uint16: same bits, no copy
    with warnings.catch_warnings():
        # a memory map is read-only: torch warns, and the DataLoader's
        # collate only reads it (into the batch's shared memory)
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(np.ascontiguousarray(a))


class Samples:
    def __init__(self, paths, mode):
        self.paths, self.mode = paths, mode
        if mode == "null":
            self.shape = np.load(paths[0]).shape

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        p = self.paths[i]
        if self.mode == "npy":
            a = np.load(p)
        elif self.mode == "npyraw":
            # the README's advice: no buffered open(), so no isatty() ioctl
            # (a FUSE round trip per open)
            with open(p, "rb", buffering=0) as f:
                a = np.load(f)
        elif self.mode == "npymmap":
            # numpy's own memory map: no copy into a fresh array (the
            # DataLoader's collate copies from the page cache); three
            # buffered opens, so three isatty() round trips through FUSE
            a = np.load(p, mmap_mode="r")
        elif self.mode == "npymap":
            # the same map without a buffered open(): no round trip
            a = npy_map(p)
        elif self.mode == "null":
            a = np.empty(self.shape, np.uint16)
        else:
            import pydicom
            a = pydicom.dcmread(p).pixel_array
        return as_tensor(a)


def load(mode, lst, epochs, workers):
    import torch
    from torch.utils.data import DataLoader
    torch.set_num_threads(1)
    with open(lst) as f:
        paths = [l.rstrip("\n") for l in f if l.strip()]
    g = torch.Generator()
    g.manual_seed(17)
    dl = DataLoader(Samples(paths, mode), batch_size=16, shuffle=True, generator=g,
                    num_workers=workers, persistent_workers=workers > 0)
    n = 0
    t0 = time.time()
    first = None
    for e in range(epochs):
        for b in dl:
            n += b.shape[0]
        if first is None:
            first = time.time() - t0
    t = time.time() - t0
    print("%.3f %d %.3f" % (t, n, first))


def npyload(lst, repeats, raw=False):
    # raw: np.load of an unbuffered file object, as a loader can open it:
    # Python's default open() asks isatty() (an ioctl, which FUSE sends to
    # the daemon: a round trip per open); buffering=0 does not
    def one(p):
        if raw:
            with open(p, "rb", buffering=0) as f:
                return np.load(f)
        return np.load(p)
    with open(lst) as f:
        paths = [l.rstrip("\n") for l in f if l.strip()]
    for p in paths:
        one(p)
    t0 = time.perf_counter()
    for _ in range(repeats):
        for p in paths:
            one(p)
    print("%.6f" % ((time.perf_counter() - t0) / (repeats * len(paths))))


if __name__ == "__main__":
    a = sys.argv
    if a[1] == "gen":
        gen(a[2], int(a[3]), int(a[4]), int(a[5]))
    elif a[1] == "load":
        load(a[2], a[3], int(a[4]), int(a[5]))
    elif a[1] == "npyload":
        npyload(a[2], int(a[3]), len(a) > 4 and a[4] == "raw")
    else:
        sys.exit(__doc__)
