#!/usr/bin/python3
"""anon_vs_gdcmanon.py MOUNT ARCHIVE KEYFILE GDCMOUT

Compare dicomfs's anon/ with gdcmanon (GDCM's PS3.15 E.1 implementation)
on the same sources, attribute by attribute: for every attribute of every
source (top level and inside sequences, by path), what each tool did with
it: kept, changed (value replaced), emptied, removed; plus what each added.
Prints one line per (attribute, dicomfs outcome, gdcmanon outcome) that
differs, with how many files; the README explains each of them.
"""
import collections
import hashlib
import hmac
import os
import sys

import pydicom


def pseudo_uid(key, uid):
    d = hmac.new(key, b"uid\0" + uid.encode(), hashlib.sha256).digest()
    return "2.25.%d" % (int.from_bytes(d[:16], "big") | (1 << 127))


def flat(ds, prefix=""):
    out = {}
    for el in ds:
        name = el.keyword or ("(%04X,%04X)" % (el.tag.group, el.tag.element))
        if el.tag.group & 1:
            name = "private " + name
        path = prefix + name
        if el.VR == "SQ":
            out[path] = ("SQ", len(el.value))
            for i, it in enumerate(el.value):
                out.update(flat(it, path + ">"))
        elif el.tag == 0x7FE00010:
            continue
        else:
            out[path] = (el.VR, str(el.value) if el.value not in (None, b"", "") else "")
    return out


def outcome(o, x):
    if x is None:
        return "removed"
    if o[0] == "SQ":
        return "kept" if x[1] == o[1] else ("emptied" if x[1] == 0 else "changed")
    if x[1] == o[1]:
        return "kept"
    return "emptied" if x[1] == "" else "changed"


def main(mount, archive, keyfile, gout):
    key = hashlib.sha256(open(keyfile, "rb").read()).digest()
    anon = {}
    for d, _, files in os.walk(os.path.join(mount, "anon")):
        for f in files:
            if f.endswith(".dcm"):
                ds = pydicom.dcmread(os.path.join(d, f))
                anon[ds.SOPInstanceUID] = ds
    diff = collections.Counter()
    added = collections.Counter()
    nboth = nonly_ours = nonly_gdcm = 0
    for d, _, files in os.walk(archive):
        for f in files:
            src = os.path.join(d, f)
            rel = os.path.relpath(src, archive)
            try:
                o = pydicom.dcmread(src, force=True)
                o.SOPInstanceUID
            except Exception:
                continue
            a = anon.get(pseudo_uid(key, o.SOPInstanceUID))
            gp = os.path.join(gout, rel)
            g = None
            if os.path.exists(gp):
                try:
                    g = pydicom.dcmread(gp, force=True)
                except Exception:
                    g = None
            if a is None or g is None:
                if a is not None:
                    nonly_ours += 1
                elif g is not None:
                    nonly_gdcm += 1
                continue
            nboth += 1
            fo, fa, fg = flat(o), flat(a), flat(g)
            for path, v in fo.items():
                oa, og = outcome(v, fa.get(path)), outcome(v, fg.get(path))
                if oa != og:
                    diff[(path.split(">")[-1] if ">" in path else path,
                          "in a sequence" if ">" in path else "", oa, og)] += 1
            for path in fa:
                if path not in fo and path not in fg:
                    added[("dicomfs adds", path)] += 1
            for path in fg:
                if path not in fo and path not in fa:
                    added[("gdcmanon adds", path)] += 1
    print("files de-identified by both: %d; only by dicomfs: %d; only by gdcmanon: %d"
          % (nboth, nonly_ours, nonly_gdcm))
    print("%-45s %-14s %-9s %-9s %s" % ("attribute", "where", "dicomfs", "gdcmanon", "files"))
    for (path, where, oa, og), n in sorted(diff.items()):
        print("%-45s %-14s %-9s %-9s %d" % (path, where, oa, og, n))
    for (who, path), n in sorted(added.items()):
        print("%-45s %s (%d files)" % (path, who, n))


if __name__ == "__main__":
    main(*sys.argv[1:5])
