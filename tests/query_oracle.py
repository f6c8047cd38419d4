#!/usr/bin/python3
"""Check dicomfs query/ directories and the uids/ view against pydicom.

Usage: query_oracle.py MOUNTPOINT ARCHIVE PHASE
  PHASE "base":   default index (no index_tags)
  PHASE "extra":  after a remount with -o index_tags=PatientWeight,00091001

An independent evaluation: every source file under ARCHIVE is read with
pydicom; the filters are evaluated here in Python with the documented
matching rules (PS3.4 C.2.2.2 as QIDO-RS uses it) and compared with the
UIDs in the mount's manifests; the listing, the symlinks and the manifests
are checked against each other. Exit 0 when everything agrees.
"""
import csv
import errno
import io
import json
import os
import re
import sys
import urllib.parse
import warnings

warnings.filterwarnings("ignore")
import pydicom  # noqa: E402
from pydicom.multival import MultiValue  # noqa: E402

MNT, ARCH, PHASE = sys.argv[1:4]
bad = []
ASCII_VRS = {"DA", "TM", "DT", "IS", "DS", "UI", "CS", "AS", "AE"}


def raw_text(ds, tag):
    """The attribute as dicomfs indexes it: trimmed text, '\\'-joined."""
    if tag not in ds:
        return ""
    el = ds[tag]
    vr = el.VR
    if vr in ASCII_VRS:
        raw = ds.get_item(tag)
        v = raw.value if hasattr(raw, "value") else el.value
        if isinstance(v, bytes):
            return v.decode("ascii", "replace").strip(" \0")
    v = el.value
    if v is None:
        return ""
    if isinstance(v, bytes):
        return v.decode("latin-1").strip(" \0")
    if isinstance(v, MultiValue):
        return "\\".join(str(x) for x in v).strip(" \0")
    return str(v).strip(" \0")


# ---- the sources ----
insts = {}
for root, dirs, files in os.walk(ARCH):
    dirs.sort()
    for f in sorted(files):
        p = os.path.join(root, f)
        if os.path.islink(p):
            continue
        rel = os.path.relpath(p, ARCH)
        try:
            ds = pydicom.dcmread(p, stop_before_pixels=True, force=True)
        except Exception:
            continue
        uids = [raw_text(ds, t) for t in (0x0020000D, 0x0020000E, 0x00080018)]
        if not all(uids) or f == "DICOMDIR":
            continue
        sop = uids[2]
        if sop in insts and insts[sop][0].encode() < rel.encode():
            continue
        insts[sop] = (rel, ds)
print("oracle: %d instances in the sources" % len(insts))


def norm_stored(vr, s):
    """A stored DA / TM / DT value padded with zeros to full precision, or
    None: DA is YYYYMMDD or the ACR-NEMA YYYY.MM.DD (PS3.5 notes it as the
    old form)."""
    if vr == "DA":
        if re.fullmatch(r"\d{8}", s):
            return s
        m = re.fullmatch(r"(\d{4})\.(\d{2})\.(\d{2})", s)
        return "".join(m.groups()) if m else None
    return norm_tmdt(vr, s, "0")


def norm_tmdt(vr, s, fill):
    s = s.replace(":", "") if vr == "TM" else s
    whole = 6 if vr == "TM" else 14
    m = re.fullmatch(r"(\d+)(?:\.(\d{1,6}))?", s)
    if not m:
        return None
    w, f = m.group(1), m.group(2) or ""
    if len(w) % 2 or len(w) > whole or (vr == "DT" and len(w) < 4) or (m.group(2) and len(w) != whole):
        return None
    return w.ljust(whole, fill) + "." + f.ljust(6, fill)


def query_end(vr, s, fill):
    """One end of a query's DA / TM / DT range: the start (fill '0') or
    the end (fill '9') of the period the value names (README: a value
    stands for its period; DA also YYYY and YYYYMM)."""
    if vr == "DA":
        full = norm_stored("DA", s)
        if full:
            return full
        if re.fullmatch(r"\d{4}|\d{6}", s):
            return s.ljust(8, fill)
        return None
    return norm_tmdt(vr, s, fill)


def wild_re(p, ci):
    rx = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in p)
    return re.compile(rx + r"\Z", re.S | (re.I if ci else 0))


def ascii_ci_equal(a, b):
    """ASCII-only case-insensitivity, as documented (no Unicode folding)."""
    low = {c: c + 32 for c in range(65, 91)}
    return a.encode().translate(bytes(low.get(i, i) for i in range(256))) == \
        b.encode().translate(bytes(low.get(i, i) for i in range(256)))


def ascii_re(p):
    """'*'/'?' pattern, ASCII case-insensitive (re.I would fold non-ASCII too)."""
    out = []
    for c in p:
        if c == "*":
            out.append(".*")
        elif c == "?":
            out.append(".")
        elif c.isascii() and c.isalpha():
            out.append("[%s%s]" % (c.lower(), c.upper()))
        else:
            out.append(re.escape(c))
    return re.compile("".join(out) + r"\Z", re.S)


def vr_of(tag):
    if tag == 0x00080061:
        return "CS"
    try:
        return pydicom.datadict.dictionary_VR(tag)
    except KeyError:
        return "UN"


def pn_default(q, v):
    """PS3.4: the whole value or one whole component group, ASCII
    case-insensitive, '*' and '?' wildcards."""
    rx = ascii_re(q)
    whole = v.rstrip("^= ")
    if rx.match(whole):
        return True
    return "=" in whole and any(g.rstrip("^ ") and rx.match(g.rstrip("^ "))
                                for g in whole.split("="))


def pn_fuzzy(q, v):
    """fuzzymatching=true: PS3.4's match, or every word of the query
    (split at ' ', '^', '=') starts a word of the value (split likewise)."""
    if pn_default(q, v):
        return True
    qw = [w for w in re.split(r"[ ^=]", q) if w]
    vw = [w for w in re.split(r"[ ^=]", v) if w]
    return bool(qw) and all(any(ascii_re(w + "*").match(x) for x in vw) for w in qw)


def match(tag, q, v, fuzzy=False):
    vr = vr_of(tag)
    if q == "":
        return True
    if q == '""':
        return v.strip(" \\") == ""
    if v == "":
        return False
    if vr == "UI":
        return v in re.split(r"[,\\]", q)
    values = [v] + (v.split("\\") if "\\" in v else [])
    if vr in ("DA", "TM", "DT"):
        if "-" in q:
            a, b = q.split("-")
        else:
            a = b = q
        lo = query_end(vr, a, "0") if a else None
        hi = query_end(vr, b, "9") if b else None
        for x in values:
            n = norm_stored(vr, x)
            if n is not None and (lo is None or n >= lo) and (hi is None or n <= hi):
                return True
        return False
    wild = "*" in q or "?" in q
    if vr == "PN":
        return any(x and (pn_fuzzy(q, x) if fuzzy else pn_default(q, x)) for x in values)

    def one(x):
        if not x:
            return False
        if wild:
            return bool((ascii_re(q) if fuzzy else wild_re(q, False)).match(x))
        if vr in ("IS", "DS"):
            try:
                return float(x) == float(q)
            except ValueError:
                return False
        return ascii_ci_equal(x, q) if fuzzy else x == q
    return any(one(x) for x in values)


def kw_tag(kw):
    if re.fullmatch(r"[0-9A-Fa-f]{8}", kw):
        return int(kw, 16)
    if kw == "ModalitiesInStudy":
        return 0x00080061
    return pydicom.datadict.tag_for_keyword(kw)


def expected(level, comps):
    fuzzy = ("fuzzymatching", "true") in comps
    terms = [(kw_tag(k), v) for k, v in comps if k != "fuzzymatching"]
    by_study = {}
    for sop, (rel, ds) in insts.items():
        by_study.setdefault(raw_text(ds, 0x0020000D), []).append(ds)
    out = set()
    for sop, (rel, ds) in insts.items():
        ok = True
        for tag, q in terms:
            if tag == 0x00080061:
                mods = {raw_text(d, 0x00080060) for d in by_study[raw_text(ds, 0x0020000D)]} - {""}
                if q == '""':
                    ok = ok and not mods
                elif q and not any(match(0x00080060, x, m, fuzzy)
                                   for x in re.split(r"[,\\]", q) for m in mods):
                    ok = False
            elif not match(tag, q, raw_text(ds, tag), fuzzy):
                ok = False
        if ok:
            out.add(raw_text(ds, [0x0020000D, 0x0020000E, 0x00080018][level]))
    return out


LEVELS = {"studies": 0, "series": 1, "instances": 2}
UIDCOL = ["StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"]


def enc(v):
    return urllib.parse.quote(v, safe="-.,*?^ _\\\"")


def check_query(level, comps, want_nonempty=False):
    path = os.path.join(MNT, "query", level, *["%s=%s" % (k, enc(v)) for k, v in comps])
    label = "query/%s/%s" % (level, "/".join("%s=%s" % c for c in comps))
    try:
        names = sorted(os.listdir(path))
    except OSError as e:
        bad.append("%s: %s" % (label, e))
        return
    links = [n for n in names if n not in ("manifest.csv", "manifest.jsonl")]
    rows = list(csv.DictReader(io.open(os.path.join(path, "manifest.csv"), newline="",
                                       encoding="utf-8")))
    jrows = [json.loads(line) for line in open(os.path.join(path, "manifest.jsonl"),
                                               encoding="utf-8")]
    got = {r[UIDCOL[LEVELS[level]]] for r in rows}
    want = expected(LEVELS[level], comps)
    if got != want:
        bad.append("%s: manifest has %d UIDs, pydicom says %d (missing %s, extra %s)" % (
            label, len(got), len(want), sorted(want - got)[:3], sorted(got - want)[:3]))
    if want_nonempty and not want:
        bad.append("%s: the test wants matches here, the archive has none" % label)
    if len(rows) != len(links) or len(jrows) != len(rows):
        bad.append("%s: %d links, %d csv rows, %d jsonl rows" % (label, len(links), len(rows), len(jrows)))
    if sorted(r["link"] for r in rows) != links:
        bad.append("%s: csv link names differ from the listing" % label)
    if [r["path"] for r in rows] != [j["path"] for j in jrows]:
        bad.append("%s: csv and jsonl disagree on paths/order" % label)
    for r, j in zip(rows, jrows):
        for k, v in r.items():
            jv = j.get(k)
            if (jv if jv is not None else "") != v and str(jv) != v:
                bad.append("%s: %s: csv %r != jsonl %r" % (label, k, v, jv))
                break
        full = os.path.join(MNT, r["path"])
        if not os.path.exists(full):
            bad.append("%s: manifest path %s does not exist" % (label, r["path"]))
            continue
        lp = os.path.join(path, r["link"])
        if not os.path.islink(lp) or os.path.realpath(lp) != os.path.realpath(full):
            bad.append("%s: link %s does not resolve to %s" % (label, r["link"], r["path"]))
        elif os.readlink(lp).startswith("/"):
            bad.append("%s: link %s is absolute" % (label, r["link"]))
        if level == "instances":
            ds = pydicom.dcmread(lp, stop_before_pixels=True, force=True)
            if ds.SOPInstanceUID != r["SOPInstanceUID"]:
                bad.append("%s: %s has SOP UID %s" % (label, r["link"], ds.SOPInstanceUID))
    if level == "studies":
        check_modalities(label, rows)
    # stable: a second listing is identical
    if sorted(os.listdir(path)) != names:
        bad.append("%s: listing changed" % label)
    print("oracle: %-70s %4d matches" % (label[:70], len(got)))


def study_modalities(path):
    """ModalitiesInStudy as dicomfs gives it: the distinct non-empty
    Modality values of the study's instances, sorted (by bytes), '\\'-joined."""
    mods = set()
    for root, dirs, files in os.walk(os.path.join(MNT, path)):
        for f in files:
            if f.endswith(".dcm"):
                ds = pydicom.dcmread(os.path.join(root, f), stop_before_pixels=True, force=True)
                m = raw_text(ds, 0x00080060)
                if m:
                    mods.add(m)
    return "\\".join(sorted(mods, key=lambda m: m.encode()))


def check_modalities(label, rows):
    """manifest ModalitiesInStudy == pydicom's == study.json's (00080061)"""
    for r in rows:
        want = study_modalities(r["path"])
        if r["ModalitiesInStudy"] != want:
            bad.append("%s: %s: ModalitiesInStudy %r, want %r" % (
                label, r["path"], r["ModalitiesInStudy"], want))
        sj = os.path.join(MNT, r["path"], "study.json")
        if os.path.exists(sj):
            a = json.load(open(sj, encoding="utf-8")).get("00080061", {})
            if "\\".join(a.get("Value", [])) != r["ModalitiesInStudy"]:
                bad.append("%s: %s: study.json ModalitiesInStudy %r, manifest %r" % (
                    label, r["path"], a.get("Value"), r["ModalitiesInStudy"]))


def check_errno(level, comp, want):
    label = "query/%s/%s" % (level, comp)
    try:
        os.listdir(os.path.join(MNT, "query", level, comp))
        bad.append("%s: listed, want %s" % (label, errno.errorcode[want]))
    except OSError as e:
        if e.errno != want:
            bad.append("%s: %s, want %s" % (label, e, errno.errorcode[want]))
        else:
            print("oracle: %-70s %s" % (label, errno.errorcode[want]))


# a few real values to query with
sops = sorted(insts)
two = sops[:2]
studies = sorted({raw_text(d, 0x0020000D) for _, d in insts.values()})

if PHASE == "base":
    check_query("studies", [("Modality", "CT")], True)
    check_query("series", [("Modality", "MR"), ("PatientSex", "F")])
    check_query("series", [("00080060", "CT")], True)
    check_query("instances", [("SeriesDescription", "*T1*")])
    check_query("series", [("SeriesDescription", "C? *")])
    check_query("instances", [("SOPInstanceUID", ",".join(two))], True)
    check_query("instances", [("SOPInstanceUID", "\\".join(two))], True)
    check_query("studies", [("StudyInstanceUID", studies[0])], True)
    check_query("studies", [("StudyDate", "20200101-20201231")], True)
    check_query("studies", [("StudyDate", "20200201-")], True)
    check_query("studies", [("StudyDate", "-20191231")], True)
    check_query("studies", [("StudyDate", "20200115")], True)
    check_query("series", [("StudyTime", "100000-110000")])
    check_query("studies", [("PatientName", "doe*")], True)
    check_query("studies", [("PatientName", "doe^john")], True)
    check_query("studies", [("PatientName", "JOHN")])            # PS3.4: whole value
    check_query("studies", [("PatientName", "*mada*")])
    check_query("instances", [("PatientName", "qa*"), ("PatientSex", "F")], True)
    check_query("series", [("ModalitiesInStudy", "SR")], True)
    check_query("studies", [("ModalitiesInStudy", "CT,MR")], True)
    check_query("instances", [("SeriesNumber", "7")])
    check_query("studies", [("StudyDescription", "A/B test")], True)
    check_query("instances", [("Modality", "CT"), ("StudyDate", "20200101-20241231"),
                              ("InstanceNumber", "1")], True)
    check_query("studies", [("Modality", "XX")])
    check_query("studies", [("PatientBirthDate", "")], True)
    check_errno("series", "Foo=1", errno.EINVAL)
    check_errno("series", "NoEquals", errno.EINVAL)
    check_errno("series/Modality=CT", "NoEquals.dcm", errno.EINVAL)
    check_errno("series", "Patient Name=x", errno.EINVAL)
    check_errno("series", ".hidden", errno.ENOENT)
    check_errno("studies", "fuzzymatching=maybe", errno.EINVAL)
    check_errno("studies", "StudyDate=202", errno.EINVAL)
    check_errno("studies", "StudyDate=202013", errno.EINVAL)
    check_errno("studies", "StudyDate=2021-2020", errno.EINVAL)
    # the conveniences of issue 16: DA periods, legacy dates, "", fuzzy
    check_query("studies", [("StudyDate", "2020")], True)
    check_query("studies", [("StudyDate", "202001")], True)
    check_query("studies", [("StudyDate", "2019-2020")], True)
    check_query("studies", [("StudyDate", "-2019")], True)
    check_query("studies", [("StudyDate", "202002-")], True)
    check_query("studies", [("StudyDate", "2017")], True)       # 2017.01.01 (ACR-NEMA)
    check_query("studies", [("StudyDate", "20170101")], True)
    check_query("studies", [("StudyDate", "1993.04.30")], True)
    check_query("studies", [("StudyDate", '""')], True)          # Empty Value Matching
    check_query("series", [("StudyDescription", '""')], True)
    check_query("studies", [("ModalitiesInStudy", '""')])
    check_query("studies", [("StudyTime", "10-11")])
    check_query("studies", [("Modality", "ct")])                 # PS3.4: case-sensitive
    check_query("studies", [("Modality", "ct"), ("fuzzymatching", "true")], True)
    check_query("studies", [("fuzzymatching", "true"), ("Modality", "ct")], True)
    check_query("studies", [("Modality", "ct"), ("fuzzymatching", "false")])
    check_query("series", [("Manufacturer", "*siemens*")])
    check_query("series", [("Manufacturer", "*siemens*"), ("fuzzymatching", "true")], True)
    check_query("studies", [("PatientName", "peter")])
    check_query("studies", [("PatientName", "peter"), ("fuzzymatching", "true")], True)
    check_query("studies", [("PatientName", "meier pet"), ("fuzzymatching", "true")], True)
    check_query("studies", [("PatientName", "john"), ("fuzzymatching", "true")], True)
    check_query("studies", [("ModalitiesInStudy", "sr"), ("fuzzymatching", "true")], True)
    check_query("instances", [("SeriesDescription", "qa*"), ("fuzzymatching", "true")], True)
    check_errno("studies", "StudyDate=2020-01-01", errno.EINVAL)
    check_errno("studies", "StudyDate=2020x", errno.EINVAL)
    check_errno("instances", "SOPInstanceUID=1.2*", errno.EINVAL)
    check_errno("studies", "StudyDescription=%zz", errno.EINVAL)
    check_errno("series", "PatientWeight=70", errno.EOPNOTSUPP)
    check_errno("instances", "00091001=QA*", errno.EOPNOTSUPP)
else:
    check_query("instances", [("00091001", "QA*")], True)
    check_query("series", [("00091001", "QA-2")], True)
    check_query("instances", [("PatientWeight", "70")], True)
    check_query("studies", [("PatientWeight", "70"), ("Modality", "CT")], True)
    check_query("studies", [("Modality", "CT")], True)

# ---- uids/: names are UIDs, same inodes as patients/ ----
if PHASE == "base":
    pino = {}
    for root, dirs, files in os.walk(os.path.join(MNT, "patients")):
        for f in files:
            st = os.lstat(os.path.join(root, f))
            if f.endswith(".dcm"):
                pino[st.st_ino] = os.path.join(root, f)
    n = 0
    uino = set()
    for st_uid in sorted(os.listdir(os.path.join(MNT, "uids"))):
        for se_uid in sorted(os.listdir(os.path.join(MNT, "uids", st_uid))):
            d = os.path.join(MNT, "uids", st_uid, se_uid)
            if not os.path.isdir(d):
                continue
            for f in sorted(os.listdir(d)):
                p = os.path.join(d, f)
                if not f.endswith(".dcm"):
                    continue
                n += 1
                st = os.lstat(p)
                uino.add(st.st_ino)
                ds = pydicom.dcmread(p, stop_before_pixels=True, force=True)
                if (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID + ".dcm") != (st_uid, se_uid, f):
                    bad.append("uids/%s/%s/%s: UIDs in the file are %s %s %s" % (
                        st_uid, se_uid, f, ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID))
                if st.st_ino not in pino:
                    bad.append("uids/%s/%s/%s: inode %d not in patients/" % (st_uid, se_uid, f, st.st_ino))
                elif st.st_nlink != 2 or os.lstat(pino[st.st_ino]).st_nlink != 2:
                    bad.append("uids/%s/%s/%s: st_nlink %d, want 2" % (st_uid, se_uid, f, st.st_nlink))
    if uino != set(pino):
        bad.append("uids/ has %d .dcm inodes, patients/ %d" % (len(uino), len(pino)))
    if n != len(insts):
        bad.append("uids/ has %d instances, pydicom found %d" % (n, len(insts)))
    print("oracle: uids/: %d instances, same inodes as patients/" % n)

for b in bad:
    print("oracle: FAIL:", b)
sys.exit(1 if bad else 0)
