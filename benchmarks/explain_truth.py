"""Does Grad-CAM point at the remnant? Heatmap peaks vs the phantom's ground-truth foci.

Trains a bundle (head mode, the paper's default; or takes one with --bundle) on a phantom
training cohort, diagnoses a separately seeded phantom test cohort, and for every correctly
classified residual test patient checks, per used view, whether the Grad-CAM peak lies inside a
remnant focus mask, or within `--radius-mm` (default 12 mm, about one system resolution length)
of a focus centre. Views whose CAM is constant (all zero: nothing in the view raises the
residual score) have no peak and are counted apart. "Chance" is the share of the crop box's
pixels within that radius: the hit rate of a peak placed uniformly at random in the crop.

Usage (about 10 min on 2 cores for the defaults):

    python benchmarks/explain_truth.py --train-patients 120 --test-patients 60 --epochs 80

Prints a markdown table and writes benchmarks/results/explain_truth.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
from pathlib import Path

import numpy as np

from thyrocad.data.cohort import load_cohort
from thyrocad.data.phantom import PhantomConfig, ensure_default_cohort
from thyrocad.diagnosis.predictor import Predictor
from thyrocad.files import thyrocad_home
from thyrocad.provenance import library_versions, machine_description
from thyrocad.training import TrainConfig
from thyrocad.training.workflow import train_bundle

RESULTS = Path(__file__).parent / "results"
RESIDUAL_SHARE = 346 / 446  # the paper's class balance


def phantom(n_patients: int, seed: int) -> Path:
    """A cached phantom cohort of `n_patients` with the paper's residual share."""
    n_residual = max(1, min(n_patients - 1, round(n_patients * RESIDUAL_SHARE)))
    return ensure_default_cohort(PhantomConfig(n_patients=n_patients, n_residual=n_residual,
                                               seed=seed))  # fmt: skip


def make_bundle(
    cohort_dir: Path, out: Path, model: str, weights: str, epochs: int, mode: str = "head"
) -> Path:
    """Train `model` on every view of `cohort_dir` and write its bundle to `out`, as
    `thyrocad train` does."""
    config = TrainConfig(model=model, weights=weights, mode=mode, epochs=epochs, device="cpu")
    return train_bundle(cohort_dir, config, out).path


def view_hits(heatmap, truth: dict, masks: dict, radius_mm: float) -> dict:
    """Inside-mask and within-radius hits of one view's CAM peak, and the chance rate."""
    view = heatmap.view.value
    mask = masks[view]
    spacing = truth["pixel_mm"]
    centres = np.array([[f[view]["row_px"], f[view]["col_px"]] for f in truth["foci"]])
    row, col = heatmap.peak_rc
    distance = float(np.min(np.hypot(centres[:, 0] - row, centres[:, 1] - col))) * spacing
    box = heatmap.crop_box
    rr, cc = np.mgrid[box.row0 : box.row1, box.col0 : box.col1]
    near = np.min(np.hypot(rr[..., None] - centres[:, 0], cc[..., None] - centres[:, 1]), axis=-1)
    in_box = heatmap.original[max(box.row0, 0) : box.row1, max(box.col0, 0) : box.col1]
    at_foci = [heatmap.original[r, c] for r, c in np.rint(centres).astype(int)]
    return {
        "inside": bool(mask[row, col]),
        "within": distance <= radius_mm,
        "distance_mm": distance,
        "chance_within": float(np.mean(near * spacing <= radius_mm)),
        # where the peak sits in the crop box (0..1 from the top/left edge)
        "peak_rel": [(row - box.row0) / box.shape[0], (col - box.col0) / box.shape[1]],
        # share of crop-box pixels whose CAM is below the CAM at the best focus centre
        "focus_cam_percentile": float(max(np.mean(in_box < v) for v in at_foci)),
        "lateral_quarter": not 0.25 <= (col - box.col0) / box.shape[1] <= 0.75,
    }


def evaluate(predictor: Predictor, cohort_dir: Path, radius_mm: float) -> dict:
    """Diagnose every test patient; CAM hits on the correctly classified residual ones."""
    cohort = load_cohort(cohort_dir, read=False)
    truth_dir = cohort_dir / "ground_truth"
    views, patients, counts = [], [], {"residual": 0, "true_positive": 0, "views_without_peak": 0}
    for patient in cohort.patients:
        analysis = predictor.analyse(patient.load_study(), explain=patient.label == 1)
        if patient.label != 1:
            continue
        counts["residual"] += 1
        if not analysis.diagnosis.positive:
            continue
        counts["true_positive"] += 1
        truth = json.loads((truth_dir / f"{patient.patient_id}.json").read_text())
        masks = np.load(truth_dir / f"{patient.patient_id}_masks.npz")
        hits = [view_hits(h, truth, masks, radius_mm) for h in analysis.heatmaps if h.peak_rc]
        counts["views_without_peak"] += sum(h.peak_rc is None for h in analysis.heatmaps)
        views += hits
        patients.append(any(h["within"] for h in hits))
    return {**counts, "views": views, "patients_any_view_within": patients}


def summary(result: dict) -> dict:
    views = result["views"]
    share = lambda key: float(np.mean([v[key] for v in views])) if views else float("nan")  # noqa: E731
    return {
        "residual_test_patients": result["residual"],
        "correctly_classified_residual": result["true_positive"],
        "views_evaluated": len(views),
        "views_with_constant_cam": result["views_without_peak"],
        "peak_inside_focus_mask": share("inside"),
        "peak_within_radius": share("within"),
        "chance_within_radius": share("chance_within"),
        "median_peak_distance_mm": statistics.median(v["distance_mm"] for v in views)
        if views else float("nan"),
        "patients_with_a_view_within_radius": float(np.mean(result["patients_any_view_within"]))
        if views else float("nan"),
        "median_focus_cam_percentile": statistics.median(v["focus_cam_percentile"] for v in views)
        if views else float("nan"),
        "peaks_in_lateral_quarters": share("lateral_quarter"),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, help="use this bundle instead of training one")
    parser.add_argument("--model", default="efficientnet_lite0", help="backbone to train")
    parser.add_argument("--weights", default="imagenet", help="imagenet | none | a file")
    parser.add_argument("--epochs", type=int, default=80)
    parser.add_argument("--train-patients", type=int, default=120)
    parser.add_argument("--test-patients", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0, help="train cohort seed; test uses +1000")
    parser.add_argument("--radius-mm", type=float, default=12.0)
    parser.add_argument("--out", type=Path, default=RESULTS / "explain_truth.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    start = time.perf_counter()
    bundle = args.bundle
    if bundle is None:
        name = f"explain_truth_{args.model}_{args.train_patients}p_{args.epochs}ep_s{args.seed}"
        bundle = thyrocad_home() / "bench" / name
        make_bundle(phantom(args.train_patients, args.seed), bundle, args.model, args.weights,
                     args.epochs)  # fmt: skip
    test_dir = phantom(args.test_patients, args.seed + 1000)
    result = evaluate(Predictor.from_bundle(bundle), test_dir, args.radius_mm)
    stats = summary(result)
    report = {
        "benchmark": "explain_truth",
        "settings": {k: str(v) for k, v in vars(args).items()},
        "bundle": str(bundle),
        "test_cohort": str(test_dir),
        "summary": stats,
        "per_view": result["views"],
        "seconds": time.perf_counter() - start,
        "machine": machine_description(),
        "versions": library_versions(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print("| quantity | value |\n|---|---|")
    for key, value in stats.items():
        print(f"| {key} | {value:.3f} |" if isinstance(value, float) else f"| {key} | {value} |")
    print(f"\nwrote {args.out} ({report['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
