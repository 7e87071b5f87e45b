"""Preprocessing against the phantom's ground truth: does the crop keep every remnant focus, and
how much of the remnant mask survives GrabCut?

Usage (after `thyrocad phantom data/phantom --patients 446 --residual 346 --seed 0`):

    python benchmarks/preprocess_truth.py data/phantom --presets paper default

For every residual patient (both views pooled) it measures (a) whether the crop box contains
every focus centre in every view, (b) the share of the remnant-mask area (the phantom's FWHM
footprint of each focus) inside the crop and inside GrabCut's foreground. Targets: (a) in
>= 99 % of patients; (b) >= 95 % of the area kept in >= 95 % of patients. Prints a markdown table
and writes benchmarks/results/preprocess_truth.json.
"""

from __future__ import annotations

import argparse
import collections
import json
import math
from pathlib import Path

import numpy as np

from thyrocad.data.cohort import load_cohort
from thyrocad.preprocess import Pipeline, PipelineConfig, preset
from thyrocad.preprocess.truth import kept_fractions, points_in_box
from thyrocad.provenance import library_versions

RESULTS = Path(__file__).parent / "results" / "preprocess_truth.json"


def residual_cases(cohort_dir: Path, limit: int | None) -> list[tuple]:
    """(study, truth dict, masks per view) of each residual patient, up to `limit`."""
    cohort = load_cohort(cohort_dir, read=False)
    cases = []
    for patient in [p for p in cohort.patients if p.label == 1][:limit]:
        truth_dir = cohort.root / "ground_truth"
        truth = json.loads((truth_dir / f"{patient.patient_id}.json").read_text())
        with np.load(truth_dir / f"{patient.patient_id}_masks.npz") as masks:
            cases.append((patient.load_study(), truth, {k: masks[k] for k in masks.files}))
    return cases


def measure_patient(pipeline: Pipeline, study, truth: dict, masks: dict) -> dict:
    """Crop-contains-all-foci, pooled mask area kept by crop and by GrabCut, flags, bed error."""
    all_in, area, in_crop, kept, flags, bed_err = True, 0.0, 0.0, 0.0, [], []
    for view, result in pipeline.run_study(study):
        foci = [(f[view.value]["row_px"], f[view.value]["col_px"]) for f in truth["foci"]]
        all_in &= points_in_box(foci, result.crop_box)
        mask = masks[view.value]
        n = float(mask.sum())
        if n:
            crop_share, kept_share = kept_fractions(result, mask)
            area, in_crop, kept = area + n, in_crop + crop_share * n, kept + kept_share * n
        flags += result.flags
        true_bed = truth["thyroid_bed_center"][view.value]
        if "bed_not_found" not in result.flags:
            d_row = (result.bed_center_rc[0] - true_bed["row_px"]) * study.pixel_spacing_mm[0]
            d_col = (result.bed_center_rc[1] - true_bed["col_px"]) * study.pixel_spacing_mm[1]
            bed_err.append(math.hypot(d_row, d_col))
    return {
        "crop_has_all_foci": bool(all_in),
        "crop_share": in_crop / area if area else float("nan"),
        "grabcut_share": kept / area if area else float("nan"),
        "flags": flags,
        "bed_error_mm": bed_err,
    }


def summarise(rows: list[dict]) -> dict:
    crop = np.array([r["crop_share"] for r in rows])
    grab = np.array([r["grabcut_share"] for r in rows])
    valid = ~np.isnan(grab)
    errors = np.array([e for r in rows for e in r["bed_error_mm"]])
    return {
        "patients": len(rows),
        "patients_with_mask": int(valid.sum()),
        "crop_has_all_foci_rate": float(np.mean([r["crop_has_all_foci"] for r in rows])),
        "crop_area_share_median": float(np.median(crop[valid])),
        "grabcut_area_share_median": float(np.median(grab[valid])),
        "grabcut_area_share_p05": float(np.percentile(grab[valid], 5)),
        "share_patients_grabcut_keeps_95pct": float(np.mean(grab[valid] >= 0.95)),
        "bed_error_mm_median": float(np.median(errors)) if errors.size else float("nan"),
        "bed_error_mm_p95": float(np.percentile(errors, 95)) if errors.size else float("nan"),
        "flags": dict(collections.Counter(f for r in rows for f in r["flags"])),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cohort", type=Path, help="phantom cohort folder (with ground_truth/)")
    parser.add_argument("--presets", nargs="*", default=["paper", "default"])
    parser.add_argument("--config", type=Path, nargs="*", default=[], help="config JSON files")
    parser.add_argument("--limit", type=int, default=None, help="only the first N residual")
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON result file")
    args = parser.parse_args()

    configs = [preset(name) for name in args.presets]
    configs += [PipelineConfig.from_json(p.read_text()) for p in args.config]
    cases = residual_cases(args.cohort, args.limit)
    summaries = {}
    for cfg in configs:
        pipeline = Pipeline(cfg)
        rows = [measure_patient(pipeline, *case) for case in cases]
        summaries[f"{cfg.name} ({cfg.config_hash()[:8]})"] = summarise(rows)
    names = list(summaries)
    print("| measure | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for key in next(iter(summaries.values())):
        values = [summaries[n][key] for n in names]
        cells = [f"{v:.4g}" if isinstance(v, float) else str(v) for v in values]
        print(f"| {key} | " + " | ".join(cells) + " |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "cohort": str(args.cohort),
        "configs": {f"{c.name} ({c.config_hash()[:8]})": c.to_dict() for c in configs},
        "summaries": summaries,
        "versions": library_versions(),
    }
    args.out.write_text(json.dumps(record, indent=2), encoding="utf-8")
    print(f"\nwritten {args.out}")


if __name__ == "__main__":
    main()
