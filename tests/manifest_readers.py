#!/usr/bin/python3
"""Read query manifests through a dicomfs mount in every way a reader may
(tests/mount_manifest.sh): whole, in odd-sized chunks, at random offsets,
two readers at once, one more starting at an offset after the others, and
compare every byte with the whole read; check the whole against the
outside oracles: the expected listing of tests/gen_archive.py --count and
pydicom on the sources.

Usage: manifest_readers.py MOUNT ARCHIVE EXPECTED SEED
Prints "ok: ..." lines, "FAIL: ..." lines; exits 1 when any check failed.
"""
import csv
import io
import json
import os
import random
import sys
import threading

import pydicom

MNT, ARCH, EXPECTED, SEED = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
FAILS = []


def check(cond, what):
    print(("ok: " if cond else "FAIL: ") + what, flush=True)
    if not cond:
        FAILS.append(what)


def forget(fd):
    # if the manifest went through the page cache, the next read must not
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    except OSError:
        pass


def whole(path):
    with open(path, "rb") as f:
        forget(f.fileno())
        return f.read()


def chunked(path, sizes):
    fd = os.open(path, os.O_RDONLY)
    try:
        forget(fd)
        out, k = [], 0
        while True:
            b = os.read(fd, sizes[k % len(sizes)])
            k += 1
            if not b:
                return b"".join(out), k
            out.append(b)
    finally:
        os.close(fd)


def random_reads(path, data, rng, n):
    fd = os.open(path, os.O_RDONLY)
    bad = 0
    try:
        for _ in range(n):
            forget(fd)
            off = rng.randrange(0, len(data) + 100)
            size = rng.choice([1, 2, 17, 511, 4097, 65535, 131073, 300001, rng.randrange(1, 200000)])
            if os.pread(fd, size, off) != data[off:off + size]:
                bad += 1
    finally:
        os.close(fd)
    return bad


def two_readers(path, data):
    """A and B read at once (their own opens, their own chunk sizes); C
    opens after they started and reads from offset N = 3/5 of the file,
    then from 0 to N."""
    res = {}
    started = threading.Barrier(3)

    def reader(name, sizes, start=None):
        fd = os.open(path, os.O_RDONLY)
        try:
            if start is None:
                started.wait()
                out, k = [], 0
                while True:
                    b = os.read(fd, sizes[k % len(sizes)])
                    k += 1
                    if not b:
                        break
                    out.append(b)
                res[name] = b"".join(out)
            else:
                started.wait()
                tail = []
                off = start
                while True:
                    b = os.pread(fd, sizes[0], off)
                    if not b:
                        break
                    tail.append(b)
                    off += len(b)
                head = os.pread(fd, start, 0)
                res[name] = head + b"".join(tail)
        finally:
            os.close(fd)

    ts = [threading.Thread(target=reader, args=("A", [4093, 1, 65537])),
          threading.Thread(target=reader, args=("B", [131071, 333])),
          threading.Thread(target=reader, args=("C", [77777], len(data) * 3 // 5))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return res


def main():
    rng = random.Random(SEED)
    exp_inst = {}   # path below the mount -> source path
    with open(EXPECTED + ".sources") as f:
        for line in f:
            p, s = line.rstrip("\n").split("\t")
            exp_inst["patients/" + p] = s
    manifests = {}
    for lvl in ("instances", "series", "studies"):
        for ext in ("csv", "jsonl"):
            path = os.path.join(MNT, "query", lvl, "manifest." + ext)
            data = whole(path)
            size = os.stat(path).st_size
            check(len(data) == size, "%s/manifest.%s: %d bytes read, st_size %d" % (lvl, ext, len(data), size))
            manifests[(lvl, ext)] = data
            for sizes in ([1, 7, 4093], [65537, 3, 131071, 262147], [1 << 20]):
                if sizes[0] == 1 and len(data) > 3 << 20:
                    continue   # byte-sized reads of megabytes: too slow to be worth it
                got, n = chunked(path, sizes)
                check(got == data, "%s/manifest.%s in %d reads of %s bytes = the whole" %
                      (lvl, ext, n, "/".join(map(str, sizes))))
            bad = random_reads(path, data, rng, 120)
            check(bad == 0, "%s/manifest.%s: 120 reads at random offsets agree with the whole (%d differ)" %
                  (lvl, ext, bad))
            res = two_readers(path, data)
            check(res.get("A") == data and res.get("B") == data,
                  "%s/manifest.%s: two readers at once read the whole" % (lvl, ext))
            check(res.get("C") == data,
                  "%s/manifest.%s: a reader from offset %d after them reads the same" %
                  (lvl, ext, len(data) * 3 // 5))

    # the whole, against the oracles
    rows = list(csv.DictReader(io.StringIO(manifests[("instances", "csv")].decode("utf-8"), newline="")))
    check(sorted(r["path"] for r in rows) == sorted(exp_inst),
          "instances/manifest.csv: %d rows, the paths gen_archive.py expects (%d)" % (len(rows), len(exp_inst)))
    js = [json.loads(l) for l in manifests[("instances", "jsonl")].decode("utf-8").splitlines()]
    same = len(js) == len(rows) and all(
        j["path"] == r["path"] and j["link"] == r["link"] and
        all((j[k] if j[k] is not None else "") == (str(j[k]) if isinstance(j[k], int) else r[k])
            for k in r if k in j)
        for j, r in zip(js, rows))
    check(same, "instances/manifest.jsonl: the same rows and values as the CSV")
    sample = rng.sample(rows, min(300, len(rows)))
    bad = []
    for r in sample:
        src = exp_inst.get(r["path"])
        ds = pydicom.dcmread(os.path.join(ARCH, src), stop_before_pixels=True) if src else None
        if not ds or any(str(ds.get(k, "")) != r[k] for k in
                         ("SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID", "PatientID",
                          "InstanceNumber")):
            bad.append(r["path"])
    check(not bad, "%d sampled rows agree with pydicom on their sources (%s)" % (len(sample), bad[:3]))
    # series: every series once, with its instance count (from pydicom via the expected sources)
    per = {}
    for p in exp_inst:
        per.setdefault(p.rsplit("/", 1)[0], 0)
        per[p.rsplit("/", 1)[0]] += 1
    srows = list(csv.DictReader(io.StringIO(manifests[("series", "csv")].decode("utf-8"), newline="")))
    check({r["path"]: int(r["NumberOfSeriesRelatedInstances"]) for r in srows} == per and len(srows) == len(per),
          "series/manifest.csv: %d series with their instance counts" % len(per))
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
