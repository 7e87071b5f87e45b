"""Calibration of the phantom's difficulty against the thyroid-bed uptake-ratio observer.

Generates (or reuses) a phantom cohort, reads every study back from its DICOM files, scores
it with `UptakeRatioObserver` (anterior view), and reports over the paper's 10 stratified
3:1 patient splits: test ROC AUC, and accuracy / balanced accuracy at the Youden threshold
fitted on each training part. Also reports how often a square crop of 80/100/120 mm around
`locate_thyroid_bed` holds every remnant focus (ground truth), over all residual views.
Prints a markdown table; writes
benchmarks/results/calibrate_uptake_ratio_n<patients>_difficulty<d>_<view>.json.

Example:
    python benchmarks/calibrate_uptake_ratio.py --patients 446 --residual 346 --difficulty 1.0
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from thyrocad.data.phantom import PhantomConfig, generate_cohort, parse_difficulty
from thyrocad.evaluation.baselines.uptake_ratio import UptakeRatioObserver, evaluate_on_splits
from thyrocad.io.read import read_study
from thyrocad.preprocess.landmarks import locate_thyroid_bed
from thyrocad.provenance import library_versions, machine_description

RESULTS = Path(__file__).parent / "results"
CROP_HALF_WIDTHS_MM = (40.0, 50.0, 60.0)


def score_cohort(folder: Path, view: str) -> tuple[list[str], np.ndarray, np.ndarray, dict]:
    """Patient IDs, labels (1 = residual), uptake ratios of a multiframe cohort folder, and
    the share of residual views whose bed crop (per half-width) holds every remnant focus."""
    with (folder / "labels.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    studies = [read_study(folder / r["path"]) for r in rows]
    labels = np.array([r["label"] == "residual" for r in rows], dtype=int)
    scores = UptakeRatioObserver(view=view).score(studies)
    crops = {half: [] for half in CROP_HALF_WIDTHS_MM}
    for row, study in zip(rows, studies, strict=True):
        truth = json.loads((folder / "ground_truth" / f"{row['patient_id']}.json").read_text())
        for image in study.images if truth["foci"] else ():
            bed = locate_thyroid_bed(image.counts, study.pixel_spacing_mm)
            worst = (
                max(
                    max(
                        abs(f[image.view.value]["row_px"] - bed.center_rc[0]),
                        abs(f[image.view.value]["col_px"] - bed.center_rc[1]),
                    )
                    for f in truth["foci"]
                )
                * truth["pixel_mm"]
            )
            for half in crops:
                crops[half].append(bed.found and worst <= half)
    rates = {f"{2 * half:.0f} mm": float(np.mean(v)) for half, v in crops.items()}
    rates["views"] = len(crops[CROP_HALF_WIDTHS_MM[0]])
    return [r["patient_id"] for r in rows], labels, scores, rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=446)
    parser.add_argument("--residual", type=int, default=346)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--difficulty", default="default")
    parser.add_argument("--view", default="anterior", choices=["anterior", "both"])
    parser.add_argument("--cohort", type=Path, help="Reuse this multiframe cohort folder.")
    args = parser.parse_args()
    config = PhantomConfig(
        n_patients=args.patients,
        n_residual=args.residual,
        seed=args.seed,
        difficulty=parse_difficulty(args.difficulty),
    )
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.cohort or Path(tmp)
        if args.cohort is None:
            generate_cohort(folder, config)
        ids, labels, scores, crop_rates = score_cohort(folder, args.view)
    rows = evaluate_on_splits(scores, labels, ids, n_splits=10, seed=0)
    summary = {
        k: (float(np.mean([r[k] for r in rows])), float(np.std([r[k] for r in rows])))
        for k in ("auc", "accuracy", "balanced_accuracy")
    }
    always_residual = float(labels.mean())
    print(
        "| difficulty | view | patients | AUC | accuracy | balanced accuracy | always 'residual' |"
    )
    print("|---|---|---|---|---|---|---|")
    cells = " | ".join(f"{m:.3f} ({s:.3f})" for m, s in summary.values())
    print(
        f"| {config.difficulty} | {args.view} | {len(ids)} ({labels.sum()} residual) | {cells} "
        f"| {always_residual:.3f} |"
    )
    print(
        f"\nthyroid-bed crop holds every remnant focus ({crop_rates['views']} residual views): "
        + ", ".join(f"{k} crop {v:.3f}" for k, v in crop_rates.items() if k != "views")
    )
    name = f"calibrate_uptake_ratio_n{len(ids)}_difficulty{config.difficulty}_{args.view}.json"
    out = RESULTS / name
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "config": config.to_dict(),
                "view": args.view,
                "splits": rows,
                "mean_sd": summary,
                "always_residual_accuracy": always_residual,
                "bed_crop_holds_all_foci": crop_rates,
                "seconds": time.perf_counter() - start,
                "versions": library_versions(),
                "machine": machine_description(),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
