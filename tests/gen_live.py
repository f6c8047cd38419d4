#!/usr/bin/python3
"""Write new, valid CT instances for the live-archive tests and benchmarks.

    /usr/bin/python3 tests/gen_live.py OUTDIR --patient P [--count N]
        [--series K] [--first-series F] [--prefix NAME]

Files are the big-archive instances of tests/gen_archive.py for patient
number P (UIDs ROOT.9.<1000+P>.<study>.<series>.<n>, so a P the archive does
not hold gives new patients, studies, series and instances): N files split
over K series of one study (series F+1 .. F+K: --first-series adds series
to a study written before), written as OUTDIR/<prefix>_<series>_<n>.dcm.
The outside oracle of the tests is pydicom, which reads them back.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_archive as ga  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("outdir")
    ap.add_argument("--patient", type=int, required=True)
    ap.add_argument("--count", type=int, default=1)
    ap.add_argument("--series", type=int, default=1)
    ap.add_argument("--first-series", type=int, default=0)
    ap.add_argument("--prefix", default="new")
    a = ap.parse_args()
    os.makedirs(a.outdir, exist_ok=True)
    pix = ga.big_pixels(a.patient)
    for i in range(a.count):
        se = a.first_series + i % a.series
        inst = i // a.series + 1
        name = "%s_%d_%05d.dcm" % (a.prefix, se + 1, inst)
        with open(os.path.join(a.outdir, name), "wb") as f:
            f.write(ga.big_bytes(a.patient, 0, se, inst, pix))


if __name__ == "__main__":
    main()
