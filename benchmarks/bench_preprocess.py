"""Speed of the preprocessing pipeline: one view (median), and a whole cohort cold vs warm cache.

Usage (after `thyrocad phantom data/phantom --patients 446 --residual 346 --seed 0`):

    python benchmarks/bench_preprocess.py data/phantom --preset default --repeats 50

Prints a markdown table and writes benchmarks/results/bench_preprocess_<preset>.json. Targets:
< 100 ms per view cold, < 5 ms per view warm.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from thyrocad.data.cohort import load_cohort
from thyrocad.preprocess import Pipeline, PreprocessCache, preset
from thyrocad.provenance import library_versions, machine_description

RESULTS = Path(__file__).parent / "results"


def load_views(cohort_dir: Path, limit: int | None) -> list[tuple]:
    """(counts, spacing) of every view of the first `limit` patients, read into memory."""
    patients = load_cohort(cohort_dir, read=False, require_both_classes=False).patients[:limit]
    views = []
    for patient in patients:
        study = patient.load_study()
        views += [(im.counts, study.pixel_spacing_mm) for im in study.images]
    return views


def time_one_view(pipeline: Pipeline, counts, spacing, repeats: int) -> float:
    """Median seconds of `pipeline.run` on one view."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        pipeline.run(counts, spacing)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_cohort(pipeline: Pipeline, views: list[tuple], cache: PreprocessCache) -> float:
    """Seconds for `get_or_compute` over every view."""
    start = time.perf_counter()
    for counts, spacing in views:
        cache.get_or_compute(pipeline, counts, spacing)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cohort", type=Path, help="cohort folder (e.g. a phantom cohort)")
    parser.add_argument("--preset", default="default", help="pipeline preset (default|paper)")
    parser.add_argument("--repeats", type=int, default=50, help="runs of the single-view timing")
    parser.add_argument("--limit", type=int, default=None, help="only the first N patients")
    parser.add_argument("--out", type=Path, default=None, help="JSON result file")
    args = parser.parse_args()

    pipeline = Pipeline(preset(args.preset))
    views = load_views(args.cohort, args.limit)
    shape = views[0][0].shape
    one = time_one_view(pipeline, *views[0], args.repeats)
    with tempfile.TemporaryDirectory() as tmp:
        cache = PreprocessCache(tmp)
        cold = time_cohort(pipeline, views, cache)
        warm = time_cohort(pipeline, views, cache)
    n = len(views)
    rows = {
        f"one view {shape[0]}x{shape[1]}, median of {args.repeats} (ms)": one * 1e3,
        f"cohort, {n} views, cold cache (ms per view)": cold / n * 1e3,
        f"cohort, {n} views, warm cache (ms per view)": warm / n * 1e3,
        "cold / warm": cold / warm,
    }
    print(f"| preprocessing ({args.preset}) | value |\n|---|---|")
    for name, value in rows.items():
        print(f"| {name} | {value:.2f} |")
    out = args.out or RESULTS / f"bench_preprocess_{args.preset}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "preset": args.preset,
        "config_hash": pipeline.config.config_hash(),
        "views": n,
        "one_view_median_s": one,
        "cohort_cold_s": cold,
        "cohort_warm_s": warm,
        "cold_over_warm": cold / warm,
        "machine": machine_description(),
        "versions": library_versions(),
    }
    out.write_text(json.dumps(record, indent=2), encoding="utf-8")
    print(f"\nwritten {out}")


if __name__ == "__main__":
    main()
