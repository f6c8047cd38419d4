#!/usr/bin/python3
"""Check the level files and the user.dicom.* xattrs of a dicomfs mount.

Usage: meta_oracle.py MOUNTPOINT TAGS_C [--structure-only]

Walks MOUNTPOINT/patients and, with pydicom reading every served .dcm
(the bytes of the source files), checks:
  - patient.json / study.json / series.json: parse as one DICOM JSON object
    (keys GGGGEEEE ascending, "vr" always, "Value" arrays, PN objects, IS/DS
    numbers); the counts equal the tree; the attribute values equal the
    first non-empty value of the level's instances in listing order;
    ModalitiesInStudy is the set of the instances' modalities;
  - patient.fhir.json / study.fhir.json: structurally valid FHIR R4
    (required elements, types, ids, no empty elements), consistent with the
    tree and with each other (subject -> the Patient of the parent dir);
  - stat size == bytes read, and two reads are byte-identical;
  - xattrs (os.listxattr/getxattr on every directory and a sample of files):
    exactly the indexed attributes of the node's level and above that have
    a value, with the values pydicom reads.
--structure-only skips the value comparisons with pydicom (for archives
whose files pydicom and dicomfs may legitimately read differently).
Prints problems; exit status 1 when there are any.
"""

import base64
import json
import os
import re
import subprocess
import sys
import warnings

warnings.filterwarnings("ignore")
import pydicom  # noqa: E402

MNT, TAGS_C = sys.argv[1], sys.argv[2]
STRUCT_ONLY = "--structure-only" in sys.argv[3:]
PAT = os.path.join(MNT, "patients")
problems = []
nchecked = {"levelfiles": 0, "xattr_nodes": 0, "getfattr": 0}


def bad(msg):
    if len(problems) < 200:
        problems.append(msg)


# the indexed attributes: keyword -> (tag, level)
TAGS = {}
for m in re.finditer(r'\{\s*0x([0-9A-Fa-f]{8}),\s*"(\w+)",\s*\'(\w)\'\s*\}',
                     open(TAGS_C).read()):
    TAGS[m.group(2)] = (int(m.group(1), 16), m.group(3))
LEVELS = {"instance": "PSEI", "series": "PSE", "study": "PS", "patient": "P"}


# ---------------------------------------------------------------- the tree
def stem(fn):
    return fn[:-4]


def listing(d):
    return sorted(os.listdir(d))


class Series:
    def __init__(self, path):
        self.path = path
        self.files = sorted((f for f in os.listdir(path) if f.endswith(".dcm")), key=stem)
        self.ds = []
        for f in self.files:
            try:
                self.ds.append(pydicom.dcmread(os.path.join(path, f), stop_before_pixels=True,
                                               force=True))
            except Exception as e:  # the served file must read
                bad("%s: pydicom cannot read it: %s" % (os.path.join(path, f), e))
                self.ds.append(pydicom.Dataset())


tree = []   # [(patient path, [(study path, [Series])])]
for p in listing(PAT):
    pp = os.path.join(PAT, p)
    studies = []
    for s in listing(pp):
        sp = os.path.join(pp, s)
        if not os.path.isdir(sp):
            continue
        series = [Series(os.path.join(sp, e)) for e in listing(sp)
                  if os.path.isdir(os.path.join(sp, e))]
        studies.append((sp, series))
    tree.append((pp, studies))


# ---------------------------------------------------------------- values
def pyval(ds, kw):
    """The attribute as text, the way the index keeps it ('\\'-joined,
    trimmed), or ''."""
    if kw not in ds:
        return ""
    v = ds[kw].value
    if v is None:
        return ""
    if isinstance(v, (bytes, bytearray)):
        return v.decode("latin-1").strip(" \0")
    if isinstance(v, (list, tuple)) or type(v).__name__ == "MultiValue":
        return "\\".join("" if x is None else str(x) for x in v).strip(" \0")
    return str(v).strip(" \0")


def first(dss, kw):
    for ds in dss:
        v = pyval(ds, kw)
        if v:
            return v
    return ""


def level_dss(kind, node):
    if kind == "series":
        return node.ds
    if kind == "study":
        return [d for se in node for d in se.ds]
    return [d for _sp, ses in node for se in ses for d in se.ds]


def numeq(a, b):
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return False


# ---------------------------------------------------------------- files
def read_level(path):
    """Bytes of a level file; checks size and determinism."""
    try:
        st = os.stat(path)
        with open(path, "rb") as f:
            data = f.read()
        with open(path, "rb") as f:
            again = f.read()
    except OSError as e:
        bad("%s: %s" % (path, e))
        return None
    if st.st_size != len(data):
        bad("%s: stat size %d != %d bytes read" % (path, st.st_size, len(data)))
    if data != again:
        bad("%s: two reads differ" % path)
    nchecked["levelfiles"] += 1
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        bad("%s: not valid UTF-8 JSON: %s: %r" % (path, e, data[:200]))
        return None


VR_OF = {0x00080020: "DA", 0x00080021: "DA", 0x00080030: "TM", 0x00080031: "TM",
         0x00080050: "SH", 0x00080060: "CS", 0x00080061: "CS", 0x00080090: "PN",
         0x00081030: "LO", 0x0008103E: "LO", 0x00100010: "PN", 0x00100020: "LO",
         0x00100030: "DA", 0x00100040: "CS", 0x00180015: "CS", 0x0020000D: "UI",
         0x0020000E: "UI", 0x00200010: "SH", 0x00200011: "IS", 0x00201200: "IS",
         0x00201202: "IS", 0x00201204: "IS", 0x00201206: "IS", 0x00201208: "IS",
         0x00201209: "IS"}
KW = {"StudyDate": 0x00080020, "SeriesDate": 0x00080021, "StudyTime": 0x00080030,
      "SeriesTime": 0x00080031, "AccessionNumber": 0x00080050, "Modality": 0x00080060,
      "ReferringPhysicianName": 0x00080090, "StudyDescription": 0x00081030,
      "SeriesDescription": 0x0008103E, "PatientName": 0x00100010, "PatientID": 0x00100020,
      "PatientBirthDate": 0x00100030, "PatientSex": 0x00100040,
      "BodyPartExamined": 0x00180015, "StudyInstanceUID": 0x0020000D,
      "SeriesInstanceUID": 0x0020000E, "StudyID": 0x00200010, "SeriesNumber": 0x00200011}
LEVEL_ATTRS = {
    "series": (["SeriesDate", "SeriesTime", "Modality", "SeriesDescription",
                "BodyPartExamined", "StudyInstanceUID", "SeriesInstanceUID", "SeriesNumber"],
               {"NumberOfSeriesRelatedInstances": 0x00201209}),
    "study": (["StudyDate", "StudyTime", "AccessionNumber", "ReferringPhysicianName",
               "StudyDescription", "PatientName", "PatientID", "PatientBirthDate",
               "PatientSex", "StudyInstanceUID", "StudyID"],
              {"ModalitiesInStudy": 0x00080061, "NumberOfStudyRelatedSeries": 0x00201206,
               "NumberOfStudyRelatedInstances": 0x00201208}),
    "patient": (["PatientName", "PatientID", "PatientBirthDate", "PatientSex"],
                {"NumberOfPatientRelatedStudies": 0x00201200,
                 "NumberOfPatientRelatedSeries": 0x00201202,
                 "NumberOfPatientRelatedInstances": 0x00201204}),
}


def dj_text(path, key, a):
    """A DICOM JSON attribute back to '\\'-joined text; checks its shape."""
    if not isinstance(a, dict) or "vr" not in a:
        bad("%s: %s: %r is not an attribute object with a vr" % (path, key, a))
        return ""
    if set(a) - {"vr", "Value"}:
        bad("%s: %s: unexpected members %s" % (path, key, sorted(set(a) - {"vr", "Value"})))
    if "Value" not in a:
        return ""
    vals = a["Value"]
    if not isinstance(vals, list) or not vals:
        bad("%s: %s: Value %r is not a non-empty array" % (path, key, vals))
        return ""
    out = []
    for v in vals:
        if v is None:
            out.append("")
        elif a["vr"] == "PN":
            if not isinstance(v, dict) or not v or set(v) - {"Alphabetic", "Ideographic", "Phonetic"}:
                bad("%s: %s: PN value %r" % (path, key, v))
                out.append("")
                continue
            g = [v.get("Alphabetic", ""), v.get("Ideographic", ""), v.get("Phonetic", "")]
            while g and not g[-1]:
                g.pop()
            out.append("=".join(g))
        elif a["vr"] in ("IS", "DS"):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                bad("%s: %s: %s value %r is not a number" % (path, key, a["vr"], v))
            if a["vr"] == "IS" and isinstance(v, float):
                bad("%s: %s: IS value %r is not an integer" % (path, key, v))
            out.append(str(v))
        else:
            if not isinstance(v, str):
                bad("%s: %s: value %r is not a string" % (path, key, v))
            out.append(str(v))
    return "\\".join(out)


def check_level_json(kind, path, node, counts):
    obj = read_level(path)
    if obj is None:
        return None
    if not isinstance(obj, dict):
        bad("%s: not one JSON object" % path)
        return None
    keys = list(obj)
    if keys != sorted(keys) or any(not re.fullmatch(r"[0-9A-F]{8}", k) for k in keys):
        bad("%s: keys not GGGGEEEE in ascending order: %s" % (path, keys))
    attrs, computed = LEVEL_ATTRS[kind]
    want_keys = {"%08X" % KW[k] for k in attrs} | {"%08X" % t for t in computed.values()}
    if set(keys) != want_keys:
        bad("%s: keys %s, want %s" % (path, sorted(keys), sorted(want_keys)))
    text = {}
    for k in keys:
        text[k] = dj_text(path, k, obj[k])
        tag = int(k, 16)
        if tag in VR_OF and obj[k].get("vr") != VR_OF[tag]:
            bad("%s: %s has vr %r, want %s" % (path, k, obj[k].get("vr"), VR_OF[tag]))
    for name, tag in computed.items():
        if name in counts:
            got = obj.get("%08X" % tag, {}).get("Value", [None])[0]
            if got != counts[name]:
                bad("%s: %s = %r, tree has %d" % (path, name, got, counts[name]))
    if STRUCT_ONLY:
        return obj
    dss = level_dss(kind, node)
    for kw in attrs:
        k = "%08X" % KW[kw]
        want = first(dss, kw)
        got = text.get(k, "")
        if VR_OF[KW[kw]] in ("IS", "DS") and want and got:
            ok = all(numeq(a, b) for a, b in zip(want.split("\\"), got.split("\\")))
        else:
            ok = got == want
        if not ok:
            bad("%s: %s = %r, pydicom (first non-empty of the level) %r" % (path, kw, got, want))
    if kind == "study":
        mods = sorted({pyval(d, "Modality") for d in dss} - {""})
        got = text.get("00080061", "")
        if got != "\\".join(mods):
            bad("%s: ModalitiesInStudy %r, instances have %r" % (path, got, mods))
    return obj


# ---------------------------------------------------------------- FHIR
ID_RE = re.compile(r"[A-Za-z0-9\-.]{1,64}")
DATE_RE = re.compile(r"\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])")
DATETIME_RE = re.compile(r"\d{4}(-(0[1-9]|1[0-2])(-(0[1-9]|[12]\d|3[01])"
                         r"(T([01]\d|2[0-3]):[0-5]\d:([0-5]\d|60)(\.\d{1,9})?"
                         r"(Z|[+-]((0\d|1[0-3]):[0-5]\d|14:00)))?)?)?")
CODE_RE = re.compile(r"[^\s]+( [^\s]+)*")
DCM = "http://dicom.nema.org/resources/ontology/DCM"
ABSENT = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"


def no_empty(path, where, x):
    """FHIR JSON: no nulls, empty strings, arrays or objects anywhere."""
    if x is None:
        bad("%s: %s is null" % (path, where))
    elif isinstance(x, str):
        if not x.strip():
            bad("%s: %s is an empty string" % (path, where))
    elif isinstance(x, list):
        if not x:
            bad("%s: %s is an empty array" % (path, where))
        for i, y in enumerate(x):
            no_empty(path, "%s[%d]" % (where, i), y)
    elif isinstance(x, dict):
        if not x:
            bad("%s: %s is an empty object" % (path, where))
        for k, y in x.items():
            no_empty(path, "%s.%s" % (where, k), y)


def is_uint(x):
    return isinstance(x, int) and not isinstance(x, bool) and 0 <= x <= 2147483647


def coding_ok(path, where, c, system, absent_ok=False):
    if not isinstance(c, dict):
        bad("%s: %s is not a Coding" % (path, where))
        return None
    if "extension" in c:
        if not absent_ok or c["extension"][0].get("url") != ABSENT:
            bad("%s: %s: unexpected extension %r" % (path, where, c))
        return None
    if c.get("system") != system:
        bad("%s: %s.system %r, want %s" % (path, where, c.get("system"), system))
    if not isinstance(c.get("code"), str) or not CODE_RE.fullmatch(c["code"]):
        bad("%s: %s.code %r is not a FHIR code" % (path, where, c.get("code")))
    return c.get("code")


def fhir_date_of(da):
    m = re.fullmatch(r"(\d{4})(\d{2})(\d{2})", da or "")
    if not m:
        return None
    s = "%s-%s-%s" % m.groups()
    import datetime
    try:
        datetime.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError:
        return None
    return s if DATE_RE.fullmatch(s) else None


def check_patient_fhir(path, pnode):
    r = read_level(path)
    if r is None:
        return None
    no_empty(path, "Patient", r)
    if r.get("resourceType") != "Patient":
        bad("%s: resourceType %r" % (path, r.get("resourceType")))
    if not isinstance(r.get("id"), str) or not ID_RE.fullmatch(r["id"]):
        bad("%s: id %r is not a FHIR id" % (path, r.get("id")))
    if r.get("gender") not in ("male", "female", "other", "unknown"):
        bad("%s: gender %r" % (path, r.get("gender")))
    if "birthDate" in r and not DATE_RE.fullmatch(str(r["birthDate"])):
        bad("%s: birthDate %r" % (path, r["birthDate"]))
    for n in r.get("name", []):
        if not isinstance(n.get("given", []), list) or "text" not in n:
            bad("%s: name %r" % (path, n))
    if STRUCT_ONLY:
        return r
    dss = level_dss("patient", pnode)
    pid = first(dss, "PatientID")
    ids = [i.get("value") for i in r.get("identifier", [])]
    if (ids != [pid]) if pid else ids:
        bad("%s: identifier values %r, PatientID %r" % (path, ids, pid))
    sex = first(dss, "PatientSex")
    want = {"M": "male", "F": "female", "O": "other"}.get(sex, "unknown")
    if r.get("gender") != want:
        bad("%s: gender %r for PatientSex %r" % (path, r.get("gender"), sex))
    bd = fhir_date_of(first(dss, "PatientBirthDate"))
    if r.get("birthDate") != bd:
        bad("%s: birthDate %r, want %r" % (path, r.get("birthDate"), bd))
    pn = first(dss, "PatientName")
    alpha = pn.split("\\")[0].split("=")[0]
    comps = [c.strip() for c in alpha.split("^")] + [""] * 5
    names = [n for n in r.get("name", []) if "extension" not in n]
    if comps[0] and (not names or names[0].get("family") != comps[0]):
        bad("%s: family name %r, PatientName %r" % (path, names, pn))
    if comps[1] and (not names or names[0].get("given", [None])[0] != comps[1]):
        bad("%s: given name %r, PatientName %r" % (path, names, pn))
    return r


def check_study_fhir(path, series, patient_res, counts):
    r = read_level(path)
    if r is None:
        return None
    no_empty(path, "ImagingStudy", r)
    if r.get("resourceType") != "ImagingStudy":
        bad("%s: resourceType %r" % (path, r.get("resourceType")))
    if not isinstance(r.get("id"), str) or not ID_RE.fullmatch(r["id"]):
        bad("%s: id %r is not a FHIR id" % (path, r.get("id")))
    if r.get("status") != "available":
        bad("%s: status %r" % (path, r.get("status")))
    ref = r.get("subject", {}).get("reference")
    if patient_res is not None and ref != "Patient/%s" % patient_res.get("id"):
        bad("%s: subject %r, the Patient of the parent dir is %r" % (path, ref, patient_res.get("id")))
    if "started" in r and not DATETIME_RE.fullmatch(str(r["started"])):
        bad("%s: started %r is not a FHIR dateTime" % (path, r["started"]))
    if r.get("numberOfSeries") != counts["series"] or r.get("numberOfInstances") != counts["instances"]:
        bad("%s: numberOfSeries/Instances %r/%r, tree %d/%d" % (
            path, r.get("numberOfSeries"), r.get("numberOfInstances"), counts["series"], counts["instances"]))
    idents = r.get("identifier", [])
    if not idents or idents[0].get("system") != "urn:dicom:uid" or \
            not str(idents[0].get("value", "")).startswith("urn:oid:"):
        bad("%s: first identifier %r" % (path, idents[:1]))
    mods = [coding_ok(path, "modality", c, DCM) for c in r.get("modality", [])]
    ser = r.get("series", [])
    if not isinstance(ser, list) or len(ser) != len(series):
        bad("%s: %d series, tree has %d" % (path, len(ser) if isinstance(ser, list) else -1, len(series)))
        return r
    for k, (s, se) in enumerate(zip(ser, series)):
        w = "series[%d]" % k
        if not isinstance(s.get("uid"), str) or not ID_RE.fullmatch(s["uid"]):
            bad("%s: %s.uid %r" % (path, w, s.get("uid")))
        if "modality" not in s:
            bad("%s: %s has no modality (1..1)" % (path, w))
        else:
            coding_ok(path, w + ".modality", s["modality"], DCM, absent_ok=True)
        for f in ("number", "numberOfInstances"):
            if f in s and not is_uint(s[f]):
                bad("%s: %s.%s %r" % (path, w, f, s[f]))
        if s.get("numberOfInstances") != len(se.files):
            bad("%s: %s.numberOfInstances %r, %d .dcm files" % (path, w, s.get("numberOfInstances"), len(se.files)))
        if "started" in s and not DATETIME_RE.fullmatch(str(s["started"])):
            bad("%s: %s.started %r" % (path, w, s["started"]))
        if "bodySite" in s and not isinstance(s["bodySite"].get("display"), str):
            bad("%s: %s.bodySite %r" % (path, w, s["bodySite"]))
        inst = s.get("instance", [])
        if len(inst) != len(se.files):
            bad("%s: %s has %d instances, %d .dcm files" % (path, w, len(inst), len(se.files)))
            continue
        for j, (i, ds) in enumerate(zip(inst, se.ds)):
            wi = "%s.instance[%d]" % (w, j)
            if not isinstance(i.get("uid"), str) or not ID_RE.fullmatch(i["uid"]):
                bad("%s: %s.uid %r" % (path, wi, i.get("uid")))
            if "sopClass" not in i:
                bad("%s: %s has no sopClass (1..1)" % (path, wi))
            else:
                code = coding_ok(path, wi + ".sopClass", i["sopClass"], "urn:ietf:rfc:3986", True)
                if code and not code.startswith("urn:oid:"):
                    bad("%s: %s.sopClass code %r" % (path, wi, code))
            if "number" in i and not is_uint(i["number"]):
                bad("%s: %s.number %r" % (path, wi, i["number"]))
            if STRUCT_ONLY:
                continue
            if i.get("uid") != pyval(ds, "SOPInstanceUID"):
                bad("%s: %s.uid %r, file has %r" % (path, wi, i.get("uid"), pyval(ds, "SOPInstanceUID")))
            if code and code != "urn:oid:" + pyval(ds, "SOPClassUID"):
                bad("%s: %s.sopClass %r, file has %r" % (path, wi, code, pyval(ds, "SOPClassUID")))
            num = pyval(ds, "InstanceNumber")
            if num.isdigit() and i.get("number") != int(num):
                bad("%s: %s.number %r, file has %r" % (path, wi, i.get("number"), num))
        if STRUCT_ONLY:
            continue
        if s.get("uid") != first(se.ds, "SeriesInstanceUID"):
            bad("%s: %s.uid %r, want %r" % (path, w, s.get("uid"), first(se.ds, "SeriesInstanceUID")))
        mod = first(se.ds, "Modality")
        got = s.get("modality", {}).get("code")
        if (mod or None) != got:
            bad("%s: %s.modality %r, Modality %r" % (path, w, got, mod))
        num = first(se.ds, "SeriesNumber")
        if num.isdigit() and s.get("number") != int(num):
            bad("%s: %s.number %r, SeriesNumber %r" % (path, w, s.get("number"), num))
        bp = first(se.ds, "BodyPartExamined")
        if bp and s.get("bodySite", {}).get("display") != bp:
            bad("%s: %s.bodySite %r, BodyPartExamined %r" % (path, w, s.get("bodySite"), bp))
    if STRUCT_ONLY:
        return r
    dss = [d for se in series for d in se.ds]
    uid = first(dss, "StudyInstanceUID")
    if idents and idents[0].get("value") != "urn:oid:" + uid:
        bad("%s: identifier %r, StudyInstanceUID %r" % (path, idents[0], uid))
    acc = first(dss, "AccessionNumber")
    acsn = [i for i in idents[1:] if i.get("type", {}).get("coding", [{}])[0].get("code") == "ACSN"]
    if acc and (len(acsn) != 1 or acsn[0].get("value") != acc or
                acsn[0]["type"]["coding"][0].get("system") != "http://terminology.hl7.org/CodeSystem/v2-0203"):
        bad("%s: accession identifier %r, AccessionNumber %r" % (path, acsn, acc))
    if not acc and acsn:
        bad("%s: accession identifier %r without an AccessionNumber" % (path, acsn))
    want_mods = sorted({pyval(d, "Modality") for d in dss} - {""})
    if mods != want_mods:
        bad("%s: modality %r, instances have %r" % (path, mods, want_mods))
    d = fhir_date_of(first(dss, "StudyDate"))
    st = r.get("started")
    if (st[:10] if st else None) != d:
        bad("%s: started %r, StudyDate %r" % (path, st, first(dss, "StudyDate")))
    desc = first(dss, "StudyDescription")
    if desc and r.get("description") != desc:
        bad("%s: description %r, StudyDescription %r" % (path, r.get("description"), desc))
    return r


# ---------------------------------------------------------------- xattrs
def xattrs(path):
    try:
        names = os.listxattr(path)
    except OSError as e:
        bad("%s: listxattr: %s" % (path, e))
        return {}
    out = {}
    for n in names:
        try:
            out[n] = os.getxattr(path, n).decode("utf-8")
        except (OSError, UnicodeDecodeError) as e:
            bad("%s: getxattr %s: %s" % (path, n, e))
    return out


def check_xattrs(path, level, dss, got=None):
    if got is None:
        got = xattrs(path)
    nchecked["xattr_nodes"] += 1
    # user.dicom.source: the source path of a .dcm (xattr.c X5)
    got = dict(got)
    src = got.pop("user.dicom.source", None)
    if path.endswith(".dcm") and not src:
        bad("%s: no user.dicom.source" % path)
    if src is not None and not path.endswith(".dcm"):
        bad("%s: user.dicom.source on a %s" % (path, "directory" if os.path.isdir(path) else "file"))
    if STRUCT_ONLY:
        want_names = {"user.dicom." + k for k, (_t, lv) in TAGS.items() if lv in LEVELS[level]}
        extra = set(got) - want_names
        if extra:
            bad("%s: xattrs of other levels: %s" % (path, sorted(extra)))
        return
    want = {}
    for kw, (_tag, lv) in TAGS.items():
        if lv not in LEVELS[level]:
            continue
        v = first(dss, kw)
        if v:
            want["user.dicom." + kw] = v
    if set(got) != set(want):
        bad("%s: xattr names differ: missing %s, extra %s" % (
            path, sorted(set(want) - set(got)), sorted(set(got) - set(want))))
    for n in sorted(set(got) & set(want)):
        a, b = got[n], want[n]
        if n in ("user.dicom.PatientName", "user.dicom.ReferringPhysicianName"):
            # pydicom drops empty trailing component groups ("A^B=" -> "A^B")
            a = "\\".join(c.rstrip("=") for c in a.split("\\"))
        if a != b and not all(numeq(x, y) for x, y in zip(a.split("\\"), b.split("\\"))):
            bad("%s: %s = %r, pydicom %r" % (path, n, a, b))


def getfattr(path):
    """`getfattr -d -m user.dicom` (values base64-encoded, to parse them)."""
    nchecked["getfattr"] += 1
    r = subprocess.run(["getfattr", "-d", "-m", "user.dicom", "-e", "base64", "--absolute-names",
                        path], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if r.returncode != 0:
        bad("getfattr -d %s: %s" % (path, r.stderr.decode(errors="replace").strip()))
        return {}
    out = {}
    for line in r.stdout.decode().splitlines():
        if "=" not in line or line.startswith("#"):
            continue
        k, v = line.split("=", 1)
        if v.startswith("0s"):
            out[k] = base64.b64decode(v[2:]).decode("utf-8")
        else:
            out[k] = v.strip('"')
    return out


# ---------------------------------------------------------------- walk
study_ids, patient_ids = {}, {}
for pp, studies in tree:
    node = [(sp, ses) for sp, ses in studies]
    nse = sum(len(ses) for _sp, ses in studies)
    nin = sum(len(se.files) for _sp, ses in studies for se in ses)
    check_level_json("patient", os.path.join(pp, "patient.json"), node, {
        "NumberOfPatientRelatedStudies": len(studies), "NumberOfPatientRelatedSeries": nse,
        "NumberOfPatientRelatedInstances": nin})
    pres = check_patient_fhir(os.path.join(pp, "patient.fhir.json"), node)
    if pres is not None:
        if pres.get("id") in patient_ids:
            bad("%s: Patient id %r also used by %s" % (pp, pres.get("id"), patient_ids[pres.get("id")]))
        patient_ids[pres.get("id")] = pp
    pdss = level_dss("patient", node)
    check_xattrs(pp, "patient", pdss)
    for sp, ses in studies:
        nin = sum(len(se.files) for se in ses)
        check_level_json("study", os.path.join(sp, "study.json"), ses, {
            "NumberOfStudyRelatedSeries": len(ses), "NumberOfStudyRelatedInstances": nin})
        sres = check_study_fhir(os.path.join(sp, "study.fhir.json"), ses, pres,
                                {"series": len(ses), "instances": nin})
        if sres is not None:
            if sres.get("id") in study_ids:
                bad("%s: ImagingStudy id %r also used by %s" % (sp, sres.get("id"), study_ids[sres.get("id")]))
            study_ids[sres.get("id")] = sp
        sdss = level_dss("study", ses)
        check_xattrs(sp, "study", sdss)
        # a directory's derived files carry no xattrs by default (xattr.c X4)
        if xattrs(os.path.join(sp, "study.json")):
            bad("%s: xattrs on a level file (X4: directories and .dcm only)" % os.path.join(sp, "study.json"))
        for se in ses:
            check_level_json("series", os.path.join(se.path, "series.json"), se,
                             {"NumberOfSeriesRelatedInstances": len(se.files)})
            check_xattrs(se.path, "series", se.ds)
            for k, (f, ds) in enumerate(zip(se.files, se.ds)):
                if k % 5 == 0 or k == len(se.files) - 1:
                    check_xattrs(os.path.join(se.path, f), "instance", [ds])
    # getfattr -d on one instance file, series, study and patient dir
    if studies and studies[0][1] and studies[0][1][0].files:
        sp, ses = studies[0]
        se = ses[0]
        check_xattrs(os.path.join(se.path, se.files[0]), "instance", [se.ds[0]],
                     getfattr(os.path.join(se.path, se.files[0])))
        check_xattrs(se.path, "series", se.ds, getfattr(se.path))
        check_xattrs(sp, "study", level_dss("study", ses), getfattr(sp))
        check_xattrs(pp, "patient", pdss, getfattr(pp))

for p in (MNT, PAT, os.path.join(MNT, ".dicomfs"), os.path.join(MNT, ".dicomfs", "status.json")):
    if os.path.exists(p) and os.listxattr(p):
        bad("%s has xattrs %r, want none" % (p, os.listxattr(p)))

print("    %d patients, %d studies, %d series, %d instances; %d level files, %d xattr nodes, "
      "%d getfattr -d" % (len(tree), sum(len(s) for _p, s in tree),
                          sum(len(ses) for _p, s in tree for _sp, ses in s),
                          sum(len(se.files) for _p, s in tree for _sp, ses in s for se in ses),
                          nchecked["levelfiles"], nchecked["xattr_nodes"], nchecked["getfattr"]))
for p in problems:
    print("    " + p)
sys.exit(1 if problems else 0)
