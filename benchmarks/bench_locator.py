"""Thyroid-bed locator time per view on the default cohort, upright vs tilted views.

Tilted views (the locator rotates them upright, method ending in "+deskew") cost about twice as
much as upright ones and set the preprocessing p95. With `--compare FILE` (another version of
`thyrocad/landmarks.py`, e.g. `git show 9c0b41f:src/thyrocad/landmarks.py > /tmp/old.py`),
both versions run interleaved on the same views, their outputs are compared, and the median
ratio is printed.

Usage: python benchmarks/bench_locator.py [--files 100] [--compare FILE]
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from dataclasses import astuple
from pathlib import Path

import numpy as np

from thyrocad.data.phantom import ensure_default_cohort
from thyrocad.io.read import read_study
from thyrocad.preprocess import landmarks


def timed_locate(module, counts, spacing) -> tuple[object, float]:
    start = time.perf_counter()
    found = module.locate_thyroid_bed(counts, spacing)
    return found, (time.perf_counter() - start) * 1000.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100)
    parser.add_argument("--compare", type=Path, help="another landmarks.py to time against")
    args = parser.parse_args()
    other = None
    if args.compare:
        spec = importlib.util.spec_from_file_location("landmarks_other", args.compare)
        other = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = other  # dataclasses look their module up there
        spec.loader.exec_module(other)
    files = sorted((ensure_default_cohort() / "images").glob("*.dcm"))[: args.files]
    times = {"upright": [], "tilted": [], "other": [], "this": []}
    same = 0
    for path in files:
        study = read_study(path)
        for image in study.images:
            found, ms = timed_locate(landmarks, image.counts, study.pixel_spacing_mm)
            times["tilted" if "deskew" in found.method else "upright"].append(ms)
            if other is not None:
                theirs, ms_other = timed_locate(other, image.counts, study.pixel_spacing_mm)
                _, ms_this = timed_locate(landmarks, image.counts, study.pixel_spacing_mm)
                times["other"].append(ms_other)
                times["this"].append(ms_this)
                same += astuple(theirs) == astuple(found)
    n = len(times["upright"]) + len(times["tilted"])
    for kind in ("upright", "tilted"):
        print(f"{kind}: {len(times[kind])} of {n} views, median {np.median(times[kind]):.1f} ms")
    if other is not None:
        this, theirs = np.median(times["this"]), np.median(times["other"])
        print(
            f"this {this:.1f} ms vs {args.compare.name} {theirs:.1f} ms per view (median, "
            f"interleaved): {theirs / this:.2f}x; identical output on {same} of {n} views"
        )


if __name__ == "__main__":
    main()
