"""The thyroid-bed locator on every anatomy setting of the phantom, and on real public images.

Per anatomy setting (`thyrocad.data.phantom.ANATOMY_NAMES`; the same seed, so patient i has the
same remnant foci and acquisition under every setting): the share of residual views whose
crop (as the default pipeline makes it, larger when the bed is flagged uncertain) holds every
remnant focus centre; the crop-centre error to the true bed-region centre (all views); the
share of views flagged `bed_uncertain` and `bed_not_found`; and the uptake-ratio observer's
AUC (anterior view, mean (SD) over the paper's 10 stratified 3:1 splits) with its ROI on the
located bed (taller when the bed is flagged uncertain, as the observer makes it) and on the
true bed; and, as every setting holds the same patients, the located-bed AUC over all patients
minus the default's with its 95 % CI (paired DeLong test, `thyrocad.evaluation.stats`), and
the locator's cost (located- minus true-bed AUC) minus the default's (DeLong contrast); over
all settings, per confidence level, the share of residual views whose plain (not enlarged)
crop holds every focus, which the confidence models (its calibration). Then
the real scintigrams of realdata/ and of a folder given with `--scans` (each with a
bboxes.csv, as realdata/bboxes.csv)
(does the crop hold the hand-drawn box around both lobes; confidence; flags) and neck fields
cut from the whole-body files of ../shared/refdata/nm-dicom.

Prints markdown tables; writes benchmarks/results/bench_anatomy.json.

    python benchmarks/bench_anatomy.py --patients 446 --residual 346 --workers 2
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image

from thyrocad.data.phantom import ANATOMY_NAMES, PhantomConfig, simulate_patient
from thyrocad.data.phantom.cohort import ground_truth, residual_flags
from thyrocad.evaluation.baselines.uptake_ratio import evaluate_on_splits, uptake_ratio
from thyrocad.evaluation.stats import (
    delong_difference_in_differences,
    delong_paired_test,
    roc_auc,
)
from thyrocad.preprocess import Flag, Pipeline
from thyrocad.preprocess.config import CropConfig
from thyrocad.preprocess.steps import crop_box
from thyrocad.preprocess.truth import points_in_box
from thyrocad.provenance import library_versions, machine_description
from thyrocad.study import View

RESULTS = Path(__file__).parent / "results" / "bench_anatomy.json"
ROOT = Path(__file__).resolve().parents[1]
REFDATA = ROOT / ".." / "shared" / "refdata"


def measure_view(counts: np.ndarray, mm: float, true_rc, foci: list) -> tuple[dict, object]:
    """One view through the default pipeline against its true bed centre and remnant foci
    (pixels): the measurements, and the pipeline's result."""
    result = Pipeline().run(counts, (mm, mm))
    error = float(np.hypot(*np.subtract(result.bed_center_rc, true_rc))) * mm
    plain, _ = crop_box(counts.shape, (mm, mm), result.bed_center_rc, CropConfig())
    measured = {
        "holds_all_foci": points_in_box(foci, result.crop_box) if foci else None,
        "plain_crop_holds": points_in_box(foci, plain) if foci else None,
        "confidence": result.bed_confidence,
        "error_mm": error,
        "uncertain": Flag.BED_UNCERTAIN in result.flags,
        "not_found": Flag.BED_NOT_FOUND in result.flags,
        "method": result.bed_method,
    }
    return measured, result


def bed_ratios(counts: np.ndarray, mm: float, result, true_rc) -> dict:
    """The uptake ratio with its ROI on the located bed (taller when the bed is flagged
    uncertain, as the observer makes it) and on the true bed."""
    uncertain = Flag.BED_UNCERTAIN in result.flags
    return {
        "ratio_located": uptake_ratio(counts, (mm, mm), result.bed_center_rc, uncertain),
        "ratio_true": uptake_ratio(counts, (mm, mm), true_rc),
    }


def measure_patient(args: tuple[PhantomConfig, int, bool]) -> dict:
    """Both views of one patient through the default pipeline, against the ground truth."""
    cfg, index, residual = args
    sim = simulate_patient(cfg, index, residual)
    truth = ground_truth(cfg, sim)
    mm = truth["pixel_mm"]
    out = {"residual": residual, "views": []}
    for view in (View.ANTERIOR, View.POSTERIOR):
        true = truth["thyroid_bed_center"][view.value]
        true_rc = (true["row_px"], true["col_px"])
        foci = [(f[view.value]["row_px"], f[view.value]["col_px"]) for f in truth["foci"]]
        measured, result = measure_view(sim.counts[view], mm, true_rc, foci)
        out["views"].append(measured)
        if view == View.ANTERIOR:
            out.update(bed_ratios(sim.counts[view], mm, result, true_rc))
    return out


def summarise(rows: list[dict]) -> dict:
    views = [v for r in rows for v in r["views"]]
    held = [v["holds_all_foci"] for v in views if v["holds_all_foci"] is not None]
    errors = np.array([v["error_mm"] for v in views])
    labels = [int(r["residual"]) for r in rows]
    ids = [str(i) for i in range(len(rows))]
    aucs = {}
    for key in ("ratio_located", "ratio_true"):
        splits = evaluate_on_splits([r[key] for r in rows], labels, ids, n_splits=10, seed=0)
        values = [s["auc"] for s in splits]
        aucs[key] = (float(np.mean(values)), float(np.std(values)))
    return {
        "residual_views": len(held),
        "crop_holds_all_foci": float(np.mean(held)),
        "error_mm_median": float(np.median(errors)),
        "error_mm_p95": float(np.percentile(errors, 95)),
        "flagged_uncertain": float(np.mean([v["uncertain"] for v in views])),
        "not_found": float(np.mean([v["not_found"] for v in views])),
        "auc_located": aucs["ratio_located"],
        "auc_true_bed": aucs["ratio_true"],
        "labels": labels,
        "ratio_located": [r["ratio_located"] for r in rows],
        "ratio_true": [r["ratio_true"] for r in rows],
        "auc_all": [roc_auc(labels, [r[k] for r in rows]) for k in ("ratio_located", "ratio_true")],
        "calibration": calibration(views),
    }


def calibration(views: list[dict]) -> dict[str, list[int]]:
    """Per confidence level (2 decimals): [residual views, those whose plain (not enlarged)
    crop around the located bed holds every focus]: the confidence is the modelled
    probability of that."""
    table: dict[str, list[int]] = {}
    for v in views:
        if v["plain_crop_holds"] is not None:
            level = table.setdefault(f"{v['confidence']:.2f}", [0, 0])
            level[0] += 1
            level[1] += int(v["plain_crop_holds"])
    return table


def print_calibration(summaries: dict) -> None:
    """The calibration of every setting together, most confident first."""
    total: dict[str, list[int]] = {}
    for s in summaries.values():
        for level, (n, held) in s["calibration"].items():
            total.setdefault(level, [0, 0])
            total[level][0] += n
            total[level][1] += held
    print_header(("confidence", "residual views", "plain 120 mm crop holds all foci"))
    for level in sorted(total, key=float, reverse=True):
        n, held = total[level]
        print(f"| {level} | {n} | {100 * held / n:.1f} % |")


def paired_difference(setting: dict, default: dict) -> dict:
    """Located-bed AUC over all patients minus the default's, paired DeLong (same patients);
    and the locator's cost (located- minus true-bed AUC) minus the default's, DeLong contrast."""
    if setting["labels"] != default["labels"]:
        raise ValueError("the settings hold different patients: no paired comparison")
    test = delong_paired_test(setting["labels"], setting["ratio_located"], default["ratio_located"])
    cost = delong_difference_in_differences(
        setting["labels"],
        setting["ratio_located"],
        setting["ratio_true"],
        default["ratio_located"],
        default["ratio_true"],
    )
    return {
        "auc": test.auc1,
        "delta": test.delta,
        "se": test.se,
        "ci": (test.ci_low, test.ci_high),
        "locator_cost": cost.auc1,
        "locator_cost_vs_default": cost.delta,
        "locator_cost_ci": (cost.ci_low, cost.ci_high),
    }


def phantom_table(args, pool) -> dict:
    summaries = {}
    for name in args.settings:
        cfg = PhantomConfig(
            n_patients=args.patients, n_residual=args.residual, seed=args.seed, anatomy=name
        )
        flags = residual_flags(cfg)
        tasks = [(cfg, i, bool(flags[i])) for i in range(cfg.n_patients)]
        start = time.perf_counter()
        rows = list(pool.map(measure_patient, tasks, chunksize=8))
        summaries[name] = {**summarise(rows), "seconds": time.perf_counter() - start}
        print(f"  {name}: {summaries[name]['seconds']:.0f} s", flush=True)
    base = summaries.get("default", {}).get("auc_located", (np.nan,))[0]
    for name, s in summaries.items():
        if "default" in summaries and name != "default":
            s["paired_vs_default"] = paired_difference(s, summaries["default"])
    for s in summaries.values():  # the per-patient lists served the paired test only
        del s["labels"], s["ratio_located"], s["ratio_true"]
    print_header(
        (
            "anatomy",
            *LOCATOR_COLUMNS,
            "AUC - default",
            "all patients: AUC, located / - default (95 % CI)",
            "locator cost (located - true bed) / - default's (95 % CI)",
        )
    )
    for name, s in summaries.items():
        d = s.get("paired_vs_default")
        paired, cost = (
            (
                f"{d['auc']:.3f} / {d['delta']:+.3f} ({d['ci'][0]:+.3f}, {d['ci'][1]:+.3f})",
                f"{d['locator_cost']:+.3f} / {d['locator_cost_vs_default']:+.3f} "
                f"({d['locator_cost_ci'][0]:+.3f}, {d['locator_cost_ci'][1]:+.3f})",
            )
            if d
            else (f"{s['auc_all'][0]:.3f} / -", f"{s['auc_all'][0] - s['auc_all'][1]:+.3f} / -")
        )
        delta = s["auc_located"][0] - base
        print(f"| {name} | {locator_cells(s)} | {delta:+.3f} | {paired} | {cost} |")
    print_calibration(summaries)
    return summaries


LOCATOR_COLUMNS = (
    "residual views",
    "crop holds all foci",
    "centre error median / p95 (mm)",
    "flagged uncertain",
    "not found",
    "AUC, located bed",
    "AUC, true bed",
)


def locator_cells(s: dict) -> str:
    """The `LOCATOR_COLUMNS` cells of one setting's summary, as a markdown row's middle."""
    (al, asd), (at, atsd) = s["auc_located"], s["auc_true_bed"]
    return (
        f"{s['residual_views']} | {100 * s['crop_holds_all_foci']:.1f} % | "
        f"{s['error_mm_median']:.1f} / {s['error_mm_p95']:.1f} | "
        f"{100 * s['flagged_uncertain']:.1f} % | {100 * s['not_found']:.1f} % | "
        f"{al:.3f} ({asd:.3f}) | {at:.3f} ({atsd:.3f})"
    )


def print_header(names: tuple[str, ...]) -> None:
    print("\n| " + " | ".join(names) + " |")
    print("|" + "---|" * len(names))


def _bed(result) -> dict:
    return {
        "confidence": result.bed_confidence,
        "method": result.bed_method,
        "flags": list(result.flags),
    }


def _print_row(*cells: str, result) -> None:
    flags = ", ".join(result.flags) or "-"
    print(
        "| " + " | ".join([*cells, f"{result.bed_confidence:.2f}", result.bed_method, flags]) + " |"
    )


def _real_image(path: Path) -> tuple[np.ndarray, tuple[float, float] | None]:
    if path.suffix == ".dcm":
        ds = pydicom.dcmread(path)
        return ds.pixel_array.astype(np.float32), tuple(float(v) for v in ds.PixelSpacing)
    return np.asarray(Image.open(path).convert("L"), dtype=np.float32), None


def real_scintigrams(folder: Path) -> list[dict]:
    """Native-thyroid scans with hand-drawn boxes around both lobes (`folder`/bboxes.csv)."""
    with (folder / "bboxes.csv").open() as fh:
        boxes = list(csv.DictReader(fh))
    print_header(("image", "spacing", "crop holds both lobes", "confidence", "landmarks", "flags"))
    rows = []
    for row in boxes:
        counts, spacing = _real_image(folder / row["file"])
        result = Pipeline().run(counts, spacing)
        r0, c0, r1, c1 = (int(row[k]) for k in ("bbox_row0", "bbox_col0", "bbox_row1", "bbox_col1"))
        holds = points_in_box([(r0, c0), (r1, c1)], result.crop_box)
        rows.append({"file": row["file"], "holds_lobes": holds, **_bed(result)})
        where = f"{spacing[0]:.2f} mm" if spacing else "none (PNG)"
        _print_row(Path(row["file"]).name, where, "yes" if holds else "no", result=result)
    return rows


def whole_body_neck_fields() -> list[dict]:
    """Neck fields (256 rows from the top of the body) cut from real whole-body sweeps."""
    files = sorted((REFDATA / "nm-dicom" / "wg04").glob("NM1_*"))
    files = [f for f in files if f.name != "NM1_JPLY"]  # no installed decoder reads it
    files.append(REFDATA / "nm-dicom" / "openrem" / "NM-NmIm-Siemens.dcm")
    print_header(("whole-body file (frame)", "confidence", "landmarks", "flags"))
    rows = []
    for path in files:
        ds = pydicom.dcmread(path)
        frames = ds.pixel_array.astype(np.float32).reshape(-1, ds.Rows, ds.Columns)
        mm = float(ds.PixelSpacing[0])
        for k, frame in enumerate(frames):
            body = np.flatnonzero(frame.sum(axis=1) > 0.05 * frame.sum(axis=1).max())
            result = Pipeline().run(np.clip(frame[body[0] : body[0] + 256], 0, None), (mm, mm))
            rows.append({"file": f"{path.name} ({k})", **_bed(result)})
            _print_row(f"{path.name} ({k})", result=result)
    return rows


def cohort_parser(
    doc: str, patients: int, residual: int, settings, results: Path
) -> argparse.ArgumentParser:
    """The arguments of the locator benchmarks: cohort size, seed, workers, settings and where
    the JSON record goes (by default the tracked one in benchmarks/results/, which a run with
    another seed would overwrite)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--json", default=str(results), help=f"JSON record (default {results})")
    parser.add_argument("--patients", type=int, default=patients)
    parser.add_argument("--residual", type=int, default=residual)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--settings", nargs="*", default=list(settings))
    return parser


def main() -> None:
    parser = cohort_parser(__doc__, 446, 346, ANATOMY_NAMES, RESULTS)
    parser.add_argument("--scans", type=Path, help="a folder of further real scans + bboxes.csv")
    args = parser.parse_args()
    start = time.perf_counter()
    with ProcessPoolExecutor(args.workers) as pool:
        phantom = phantom_table(args, pool)
    real = [
        r for folder in (ROOT / "realdata", args.scans) if folder for r in real_scintigrams(folder)
    ]
    whole_body = whole_body_neck_fields() if (REFDATA / "nm-dicom").is_dir() else []
    seconds = time.perf_counter() - start
    print(f"\n{seconds:.0f} s on {machine_description()}")
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "args": vars(args),
                "phantom": phantom,
                "real_scintigrams": real,
                "whole_body_neck_fields": whole_body,
                "seconds": seconds,
                "versions": library_versions(),
                "machine": machine_description(),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
