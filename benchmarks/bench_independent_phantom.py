"""The thyroid-bed locator and the uptake-ratio observer on a phantom that thyrocad's own
phantom did not make: `benchmarks/independent_phantom.py`, written (by a separate author, from
the published numbers of ../shared/PHANTOM_NUMBERS.md) without reading thyrocad's phantom,
locator or observer.

Per setting of that phantom (`independent_phantom.SETTINGS`): the share of residual views whose
crop (as the default pipeline makes it, larger when flagged uncertain) holds every remnant focus
centre; the crop-centre error to the phantom's true bed centre (its own definition: the level
of the removed lobes' centres, on the tracheal midline); the shares flagged `bed_uncertain`
and `bed_not_found`; the uptake-ratio observer's AUC (mean (SD) over the paper's 10 stratified
3:1 splits) with its ROI on the located and on the true bed; and over all patients the
locator's cost (located- minus true-bed AUC) with the 95 % CI of the paired DeLong test. Over
all settings, per confidence level, the share of residual views whose plain (not enlarged)
crop holds every focus: the confidence's calibration.

Prints a markdown table; writes benchmarks/results/bench_independent_phantom.json.

    python benchmarks/bench_independent_phantom.py --patients 200 --residual 100 --workers 2
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from bench_anatomy import (
    LOCATOR_COLUMNS,
    bed_ratios,
    cohort_parser,
    locator_cells,
    measure_view,
    print_calibration,
    print_header,
    summarise,
)
from independent_phantom import SETTINGS, simulate
from thyrocad.evaluation.stats import delong_paired_test
from thyrocad.provenance import library_versions, machine_description

RESULTS = Path(__file__).parent / "results" / "bench_independent_phantom.json"


def measure_patient(args: tuple[int, int, bool, str]) -> dict:
    """One anterior view of the independent phantom through the default pipeline."""
    seed, index, residual, setting = args
    view = simulate(seed, index, residual, setting)
    measured, result = measure_view(view.counts, view.pixel_mm, view.bed_rc, list(view.foci_rc))
    return {
        "residual": residual,
        "views": [measured],
        **bed_ratios(view.counts, view.pixel_mm, result, view.bed_rc),
    }


def locator_cost(summary: dict) -> dict:
    """Located- minus true-bed AUC over all patients, paired DeLong test."""
    test = delong_paired_test(summary["labels"], summary["ratio_located"], summary["ratio_true"])
    return {"delta": test.delta, "ci": (test.ci_low, test.ci_high), "p": test.p_value}


def measure_setting(args, pool, name: str) -> dict:
    """Every patient of one setting; the residual ones are a seeded random subset."""
    residual = np.zeros(args.patients, dtype=bool)
    residual[np.random.default_rng(args.seed).permutation(args.patients)[: args.residual]] = True
    tasks = [(args.seed, i, bool(residual[i]), name) for i in range(args.patients)]
    start = time.perf_counter()
    summary = summarise(list(pool.map(measure_patient, tasks, chunksize=8)))
    summary["locator_cost"] = locator_cost(summary)
    for key in ("labels", "ratio_located", "ratio_true"):  # served the paired test only
        del summary[key]
    summary["seconds"] = time.perf_counter() - start
    return summary


def print_row(name: str, s: dict) -> None:
    cost = s["locator_cost"]
    print(
        f"| {name} | {locator_cells(s)} | {s['auc_all'][0]:.3f} / {s['auc_all'][1]:.3f} | "
        f"{cost['delta']:+.3f} ({cost['ci'][0]:+.3f}, {cost['ci'][1]:+.3f}) |"
    )


def main() -> None:
    args = cohort_parser(__doc__, 200, 100, SETTINGS, RESULTS).parse_args()
    start = time.perf_counter()
    summaries = {}
    with ProcessPoolExecutor(args.workers) as pool:
        for name in args.settings:
            summaries[name] = measure_setting(args, pool, name)
            print(f"  {name}: {summaries[name]['seconds']:.0f} s", flush=True)
    last = ("all patients: AUC located / true bed", "locator cost (95 % CI)")
    print_header(("setting", *LOCATOR_COLUMNS, *last))
    for name, s in summaries.items():
        print_row(name, s)
    print_calibration(summaries)
    seconds = time.perf_counter() - start
    print(f"\n{seconds:.0f} s on {machine_description()}")
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "args": vars(args),
        "settings": summaries,
        "seconds": seconds,
        "versions": library_versions(),
        "machine": machine_description(),
    }
    out.write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
