#!/usr/bin/python3
"""Outside checks of anon/ (tests/mount_anon.sh), written from the standard
and the README, not from dicomfs's code.

    anon_oracle.py scan   MOUNT ARCHIVE DEID_TABLE_C
        every identifying value of the sources (collected with pydicom from
        every element, sequences included, per the actions of PS3.15 Table
        E.1-1 read from deid_table.c) must appear in no name, no file
        content (the .dcm up to its Pixel Data element, .json, level and
        FHIR files, the .npy/NIfTI headers, PNG chunks other than IDAT) and
        no xattr under anon/.
    anon_oracle.py check  MOUNT KEYFILE
        every anon .dcm: read by pydicom; its UIDs are the keyed pseudonyms
        of the README (2.25 + HMAC-SHA256 of the original, computed here
        with Python's hmac); its pixels equal the original's in patients/;
        PatientIdentityRemoved YES and the method codes; every DA of a
        patient moved by one offset, 365..3651 days back; PatientID the
        keyed pseudonym.
    anon_oracle.py names  MOUNT
        the sorted list of paths under anon/ (for stability checks).
Exit status 0 when all checks hold; failures are printed.
"""
import datetime
import hashlib
import hmac
import os
import re
import sys

import pydicom

FAIL = []


def fail(msg):
    FAIL.append(msg)
    if len(FAIL) <= 40:
        print("FAIL:", msg)


def walk_files(root):
    for d, dirs, files in os.walk(root):
        dirs.sort()
        for f in sorted(files):
            yield os.path.join(d, f)


def table(path):
    """tag -> (vr, basic action, modified dates action) from deid_table.c"""
    rows = {}
    rx = re.compile(r'\{ 0x([0-9A-F]{8}), 0x([0-9A-F]{8}), "(..)", "([^"]*)", "([^"]*)"')
    for line in open(path):
        m = rx.search(line)
        if m:
            rows[int(m.group(1), 16)] = (m.group(2), m.group(3), m.group(4), m.group(5))
    return rows


def rule(rows, tag):
    if tag in rows and rows[tag][0] == "FFFFFFFF":
        return rows[tag]
    for t, r in rows.items():
        if r[0] != "FFFFFFFF" and tag & int(r[0], 16) == t:
            return r
    return None


TEXT_VRS = {"LO", "SH", "PN", "ST", "LT", "UT", "UC", "DA", "DT", "UI", "AE", "CS"}


def identifiers(archive, rows):
    """every identifying value of the sources (values of 4 characters or
    more: shorter ones, such as a sex 'M', are not searchable)"""
    vals = set()

    def add(v):
        v = v.strip(" \0")
        if len(v) >= 4:
            vals.add(v)

    def visit(ds):
        for el in ds:
            tag = int(el.tag)
            if el.VR == "SQ":
                for it in el.value:
                    visit(it)
                continue
            if el.value is None or el.VR not in TEXT_VRS:
                continue
            private = (tag >> 16) & 1
            r = rule(rows, tag)
            acts = r[2] if r else ""
            # kept attributes (not in the table, or K / C of a time) are not identifying
            if not private and (not r or acts in ("K", "C")):
                continue
            if el.VR == "TM":
                continue
            values = el.value if isinstance(el.value, pydicom.multival.MultiValue) else [el.value]
            for v in values:
                s = str(v)
                add(s)
                if el.VR == "PN":
                    for part in re.split(r"[\^= ]", s):
                        add(part)
                if el.VR == "DA" and re.fullmatch(r"\d{8}", s.strip()):
                    s = s.strip()
                    add("%s-%s-%s" % (s[:4], s[4:6], s[6:8]))
                if el.VR == "CS":
                    vals.discard(s.strip())   # codes are vocabulary, not identity
    for f in walk_files(archive):
        try:
            ds = pydicom.dcmread(f, stop_before_pixels=True, force=True)
        except Exception:
            continue
        if "SOPInstanceUID" not in ds:
            continue
        visit(ds.file_meta) if hasattr(ds, "file_meta") else None
        visit(ds)
    return vals


def header_part(data):
    """the bytes of a .dcm before its top-level Pixel Data element"""
    cut = len(data)
    for t in (b"\xe0\x7f\x10\x00", b"\x7f\xe0\x00\x10"):
        i = data.find(t, 132)
        if i >= 0:
            cut = min(cut, i)
    return data[:cut]


def png_text(data):
    out, p = b"", 8
    while p + 8 <= len(data):
        n = int.from_bytes(data[p:p + 4], "big")
        typ = data[p + 4:p + 8]
        if typ != b"IDAT":
            out += typ + data[p + 8:p + 8 + n]
        p += 12 + n
    return out


def scan(mount, archive, table_c):
    rows = table(table_c)
    ids = identifiers(archive, rows)
    if len(ids) < 20:
        fail("only %d identifying values collected: the oracle is blind" % len(ids))
    needles = sorted(ids, key=len, reverse=True)
    low = [n.encode("utf-8") for n in needles]
    root = os.path.join(mount, "anon")
    nfiles = 0

    def search(what, blob):
        b = blob
        for n, raw in zip(low, needles):
            if n in b:
                fail("%s reveals %r" % (what, raw))
                return

    for d, dirs, files in os.walk(root):
        for name in dirs + files:
            search("name %s" % os.path.join(d, name), name.encode("utf-8", "surrogateescape"))
        for name in files:
            p = os.path.join(d, name)
            data = open(p, "rb").read()
            nfiles += 1
            if name.endswith(".dcm"):
                data = header_part(data)
            elif name.endswith(".npy"):
                data = data[:data.find(b"\n") + 1]
            elif name.endswith(".nii"):
                data = data[:352]
            elif name.endswith(".png"):
                data = png_text(data)
            search(p, data)
        for p in [d] + [os.path.join(d, n) for n in files]:
            for x in os.listxattr(p):
                search("xattr %s of %s" % (x, p), os.getxattr(p, x))
    print("scanned %d files under anon/ for %d identifying values" % (nfiles, len(ids)))
    if nfiles < 10:
        fail("only %d files under anon/" % nfiles)


def pseudo_uid(key, uid):
    d = hmac.new(key, b"uid\0" + uid.encode(), hashlib.sha256).digest()
    return "2.25.%d" % (int.from_bytes(d[:16], "big") | (1 << 127))


def pseudo_pid(key, pid):
    return hmac.new(key, b"pid\0" + pid.encode("utf-8"), hashlib.sha256).hexdigest()[:16].upper()


def days(a, b):
    f = lambda s: datetime.date(int(s[:4]), int(s[4:6]), int(s[6:8]))
    return (f(b) - f(a)).days


def check(mount, keyfile):
    key = hashlib.sha256(open(keyfile, "rb").read()).digest()
    orig = {}
    for f in walk_files(os.path.join(mount, "patients")):
        if f.endswith(".dcm"):
            try:
                ds = pydicom.dcmread(f, force=True)
                orig[pseudo_uid(key, ds.SOPInstanceUID)] = (f, ds)
            except Exception:
                pass
    offsets = {}
    mshift = {}
    n = 0
    for f in walk_files(os.path.join(mount, "anon")):
        if not f.endswith(".dcm"):
            continue
        n += 1
        try:
            a = pydicom.dcmread(f)
        except Exception as e:
            fail("pydicom cannot read %s: %s" % (f, e))
            continue
        if a.file_meta.MediaStorageSOPInstanceUID != a.SOPInstanceUID:
            fail("%s: MediaStorageSOPInstanceUID differs from SOPInstanceUID" % f)
        if a.SOPInstanceUID not in orig:
            fail("%s: SOPInstanceUID %s is not the pseudonym of any original" % (f, a.SOPInstanceUID))
            continue
        of, o = orig[a.SOPInstanceUID]
        for kw in ("StudyInstanceUID", "SeriesInstanceUID"):
            if getattr(a, kw) != pseudo_uid(key, getattr(o, kw)):
                fail("%s: %s is not the keyed pseudonym" % (f, kw))
        if "FrameOfReferenceUID" in o and a.get("FrameOfReferenceUID") != pseudo_uid(key, o.FrameOfReferenceUID):
            fail("%s: FrameOfReferenceUID is not the keyed pseudonym" % f)
        # a file's mtime is a date too: moved by the patient's offset
        mt = int(round(os.stat(f).st_mtime - os.stat(of).st_mtime))
        if mt % 86400:
            fail("%s: mtime moved by %d s, not by whole days" % (f, mt))
        mshift.setdefault(str(o.get("PatientID", "") or "\0N" + str(o.get("PatientName", ""))),
                          set()).add(mt // 86400)
        if ("PixelData" in o) != ("PixelData" in a) or ("PixelData" in o and o.PixelData != a.PixelData):
            fail("%s: pixel data differs from %s" % (f, of))
        if a.get("PatientIdentityRemoved") != "YES":
            fail("%s: PatientIdentityRemoved is not YES" % f)
        codes = [it.CodeValue for it in a.get("DeidentificationMethodCodeSequence", [])]
        if codes != ["113100", "113107"]:
            fail("%s: DeidentificationMethodCodeSequence %s" % (f, codes))
        pkey = o.get("PatientID", "") or "\0N" + str(o.get("PatientName", ""))
        if o.get("PatientID") and a.PatientID != pseudo_pid(key, o.PatientID):
            fail("%s: PatientID %s is not the keyed pseudonym" % (f, a.PatientID))
        if [k for k in a.keys() if k.group & 1]:
            fail("%s: private elements left" % f)
        j = f[:-4] + ".json"
        if os.path.exists(j):
            try:
                jd = pydicom.Dataset.from_json(open(j).read())
                for kw in ("SOPInstanceUID", "PatientID", "StudyDate", "PatientIdentityRemoved"):
                    if str(jd.get(kw, "")) != str(a.get(kw, "")):
                        fail("%s: %s %r, the .dcm has %r" % (j, kw, jd.get(kw), a.get(kw)))
            except Exception as e:
                fail("%s: pydicom cannot read it: %s" % (j, e))
        elif "PixelData" in a:
            fail("%s: no .json beside it" % f)
        for kw in ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate"):
            ov, av = str(o.get(kw, "") or ""), str(a.get(kw, "") or "")
            if re.fullmatch(r"\d{8}", ov) and ov[:4] > "0010":
                if not re.fullmatch(r"\d{8}", av):
                    fail("%s: %s %r became %r" % (f, kw, ov, av))
                    continue
                offsets.setdefault(pkey, set()).add(days(ov, av))
            elif av:
                fail("%s: %s %r is not a date but became %r" % (f, kw, ov, av))
    for p, m in mshift.items():
        if len(m) != 1 or not -3651 <= next(iter(m)) <= -365:
            fail("patient %r: mtimes moved by %s days" % (p, sorted(m)))
        elif p in offsets and offsets[p] != m:
            fail("patient %r: mtimes moved by %s days, dates by %s" % (p, m, offsets[p]))
    for p, s in offsets.items():
        if len(s) != 1:
            fail("patient %r: dates moved by different offsets %s" % (p, sorted(s)))
        elif not -3651 <= next(iter(s)) <= -365:
            fail("patient %r: offset %s out of range" % (p, s))
    print("checked %d anon .dcm files, %d patients with dates" % (n, len(offsets)))
    if n < 5:
        fail("only %d anon .dcm files" % n)


def names(mount):
    root = os.path.join(mount, "anon")
    for d, dirs, files in os.walk(root):
        dirs.sort()
        for x in sorted(dirs + files):
            print(os.path.relpath(os.path.join(d, x), root))


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "scan":
        scan(sys.argv[2], sys.argv[3], sys.argv[4])
    elif cmd == "check":
        check(sys.argv[2], sys.argv[3])
    elif cmd == "names":
        names(sys.argv[2])
    sys.exit(1 if FAIL else 0)
