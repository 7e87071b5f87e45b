"""The in-plane tilt that the thyroid-bed locator deskews by, against the truth, on both
phantoms: thyrocad's (`PhantomConfig(anatomy=...)`, its pose tilt) and the independently
written one (`benchmarks/independent_phantom.py`, its body tilt; its angle has the other
sign). Two estimators on the same outlines: the locator's (`shoulders.tilt_deg`: the whole
body's axis of symmetry) and the obvious alternative it replaced in the twenty-first
session, a Theil-Sen line through the neck's midline over the 120 mm above the lowest
shoulder-line candidate (0 without one).

Prints a markdown table (absolute error median / p90 and the share over 6 degrees, all
views and views tilted 8 degrees or more); writes benchmarks/results/bench_tilt.json.

    python benchmarks/bench_tilt.py --patients 200 --seed 1 --workers 2
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import scipy

from independent_phantom import simulate
from thyrocad.data.phantom import PhantomConfig, simulate_patient
from thyrocad.data.phantom.cohort import ground_truth
from thyrocad.preprocess.outline import Outline, body_outline
from thyrocad.preprocess.shoulders import shoulder_rows, tilt_deg
from thyrocad.provenance import library_versions, machine_description
from thyrocad.study import View

RESULTS = Path(__file__).parent / "results" / "bench_tilt.json"
OURS = ("default", "field_position", "arms_up", "mixed")
INDEPENDENT = ("standard", "tilted", "arms_up", "mixed")


def neck_fit_deg(outline: Outline, mm: float) -> float:
    """The alternative: the neck's midline over the 120 mm above the lowest shoulder line."""
    shoulders = shoulder_rows(outline.width_mm, mm)
    if not shoulders:
        return 0.0
    rows = np.arange(max(0, int(shoulders[0] - 120.0 / mm)), int(shoulders[0]))
    rows = rows[np.isfinite(outline.centre[rows]) & (outline.width_mm[rows] > 20.0)]
    if rows.size < 40.0 / mm:
        return 0.0
    slope = scipy.stats.theilslopes(outline.centre[rows], rows)[0]
    return float(np.clip(np.degrees(np.arctan(-slope)), -25.0, 25.0))


def measure(task: tuple[str, str, int, int, int]) -> tuple[float, float, float]:
    """(true tilt, the locator's, the neck fit's) on one non-residual anterior view."""
    phantom, setting, seed, patients, index = task
    if phantom == "ours":
        cfg = PhantomConfig(n_patients=patients, n_residual=0, seed=seed, anatomy=setting)
        sim = simulate_patient(cfg, index, residual=False)
        truth = ground_truth(cfg, sim)
        counts, mm, true = sim.counts[View.ANTERIOR], truth["pixel_mm"], truth["pose"]["tilt_deg"]
    else:
        view = simulate(seed, index, False, setting)
        counts, mm, true = view.counts, view.pixel_mm, -view.meta["tilt_deg"]
    outline = body_outline(np.asarray(counts, dtype=np.float64), mm)
    if outline is None:
        return true, 0.0, 0.0
    return true, tilt_deg(outline, mm), neck_fit_deg(outline, mm)


def summary(errors: np.ndarray) -> dict:
    if errors.size == 0:
        return {"n": 0}
    return {
        "n": int(errors.size),
        "median": float(np.median(errors)),
        "p90": float(np.percentile(errors, 90)),
        "over_6": float(np.mean(errors > 6.0)),
    }


def cells(s: dict) -> str:
    if not s["n"]:
        return "- | -"
    return f"{s['median']:.1f} / {s['p90']:.1f} | {100 * s['over_6']:.0f} % ({s['n']})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", default=str(RESULTS))
    args = parser.parse_args()
    start = time.perf_counter()
    rows = {}
    names = [("ours", s) for s in OURS] + [("independent", s) for s in INDEPENDENT]
    with ProcessPoolExecutor(args.workers) as pool:
        for phantom, setting in names:
            tasks = [(phantom, setting, args.seed, args.patients, i) for i in range(args.patients)]
            true, locator, neck = np.array(list(pool.map(measure, tasks, chunksize=8))).T
            tilted = np.abs(true) >= 8.0
            errors = {"whole body (locator)": locator - true, "neck fit": neck - true}
            rows[f"{phantom}: {setting}"] = {
                name: {"all": summary(np.abs(e)), "tilted": summary(np.abs(e[tilted]))}
                for name, e in errors.items()
            }
    print(
        "| phantom: setting | estimator | all views: error median / p90 (deg) | over 6 deg "
        "(views) | tilted >= 8 deg: median / p90 | over 6 deg (views) |"
    )
    print("|---|---|---|---|---|---|")
    for name, row in rows.items():
        for estimator, s in row.items():
            print(f"| {name} | {estimator} | {cells(s['all'])} | {cells(s['tilted'])} |")
    seconds = time.perf_counter() - start
    print(f"\n{seconds:.0f} s on {machine_description()}")
    record = {"args": vars(args), "rows": rows, "seconds": seconds,
              "versions": library_versions(), "machine": machine_description()}  # fmt: skip
    Path(args.json).write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
