"""End-to-end diagnosis latency of one two-view DICOM study: PyTorch vs onnxruntime, Grad-CAM.

Per study: read the DICOM file, preprocess both views (no preprocessing cache), one batched
forward pass, fuse, verdict. Timed on the same studies (interleaved) for three engines: the
default (`Predictor` with `backend="auto"`: onnxruntime over the cached export, input
convolution folded to one grey channel), onnxruntime over an export without that fold, and
PyTorch (the folded, channels-last copy); plus the extra cost of Grad-CAM on the same
preprocessed views, and the process's peak memory (ru_maxrss). Target: median < 100 ms, p95
< 150 ms.

Usage (the bundle default: a ResNet-18 trained 1 epoch in head mode on a small phantom cohort,
ImageNet weights if the torch hub cache has them, else random: latency does not depend on them):

    python benchmarks/bench_predict.py --studies 100 --threads 2
    python benchmarks/bench_predict.py --bundle runs/r18 --studies 100

Prints a markdown table and writes benchmarks/results/bench_predict.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from explain_truth import make_bundle, phantom
from thyrocad.bundle.format import load_bundle
from thyrocad.bundle.onnx import ONNX_FILE, export_onnx
from thyrocad.diagnosis.explain import explain_views
from thyrocad.diagnosis.predictor import Predictor
from thyrocad.errors import WeightsError
from thyrocad.files import thyrocad_home
from thyrocad.io.read import read_study
from thyrocad.models import create_model
from thyrocad.preprocess import steps
from thyrocad.provenance import library_versions, machine_description

RESULTS = Path(__file__).parent / "results"
WARMUP = 3


def default_bundle() -> Path:
    """A cached ResNet-18 head-mode bundle (1 epoch) for latency measurements."""
    try:
        create_model("resnet18", weights="imagenet")
        weights = "imagenet"
    except WeightsError:
        weights = "none"
    out = thyrocad_home() / "bench" / f"bench_predict_resnet18_{weights}"
    if not (out / "bundle.json").is_file():
        make_bundle(phantom(20, seed=7), out, "resnet18", weights, epochs=1)
    return out


def percentiles(seconds: list[float]) -> dict[str, float]:
    ms = np.array(seconds) * 1000.0
    return {"median_ms": float(np.median(ms)), "p95_ms": float(np.percentile(ms, 95)),
            "mean_ms": float(ms.mean())}  # fmt: skip


def timed(fn, *args):
    """`fn(*args)` and its seconds, with the process's located-bed memo emptied first, so that
    every engine (and the preprocessing step) locates the bed itself, as a new study would."""
    steps._LOCATED.clear()
    start = time.perf_counter()
    value = fn(*args)
    return value, time.perf_counter() - start


def run(bundle: Path, files: list[Path], threads: int, unfolded: Path) -> dict:
    onnx_p = Predictor.from_bundle(bundle, threads=threads)  # the default
    assert onnx_p.backend == "onnxruntime", "onnxruntime is not in use by default"
    unfolded_p = Predictor.from_bundle(bundle, backend="onnxruntime", onnx_path=unfolded,
                                       threads=threads)  # fmt: skip
    torch_p = Predictor.from_bundle(bundle, backend="torch", threads=threads)
    predictors = {"onnxruntime": onnx_p, "onnxruntime_unfolded": unfolded_p, "torch": torch_p}
    times = {key: [] for key in [*predictors, "gradcam", "read", "preprocess"]}
    for k, path in enumerate([*files[:WARMUP], *files]):
        took = [timed(lambda p, pr=pr: pr.predict(read_study(p)), path)[1]
                for pr in predictors.values()]  # fmt: skip
        study, t_read = timed(read_study, path)
        prepared, t_prep = timed(torch_p.prepare, study)
        used = [(p.view, p.result) for p in prepared if p.usable]
        _, t_cam = timed(explain_views, torch_p.model, used)
        if k >= WARMUP:
            for key, t in zip(times, (*took, t_cam, t_read, t_prep), strict=True):
                times[key].append(t)
    return {key: percentiles(values) for key, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, help="model bundle (default: cached ResNet-18)")
    parser.add_argument("--studies", type=int, default=100, help="distinct phantom studies")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, default=RESULTS / "bench_predict.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    bundle = args.bundle or default_bundle()
    files = sorted((phantom(max(args.studies, 2), seed=8) / "images").glob("*.dcm"))
    files = files[: args.studies]
    with tempfile.TemporaryDirectory() as tmp:
        model, info = load_bundle(bundle)  # the unfolded export, outside the timed loop
        unfolded = export_onnx(model, Path(tmp) / ONNX_FILE, info, fold=False)
        stats = run(bundle, files, args.threads, unfolded)
    ratio = stats["torch"]["median_ms"] / stats["onnxruntime"]["median_ms"]
    fold_ratio = stats["onnxruntime_unfolded"]["median_ms"] / stats["onnxruntime"]["median_ms"]
    report = {
        "benchmark": "bench_predict",
        "bundle": str(bundle),
        "studies": len(files),
        "threads": args.threads,
        "stats": stats,
        "torch_over_onnxruntime_median": ratio,
        "unfolded_over_folded_onnxruntime_median": fold_ratio,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "machine": machine_description(),
        "versions": library_versions(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{len(files)} studies, {args.threads} threads, bundle {bundle}\n")
    print("| step | median ms | p95 ms |\n|---|---|---|")
    labels = {
        "onnxruntime": "end to end, onnxruntime (default)",
        "onnxruntime_unfolded": "end to end, onnxruntime, 3-channel input convolution",
        "torch": "end to end, PyTorch (--backend torch)",
        "gradcam": "Grad-CAM extra (both views)", "read": "read DICOM",
        "preprocess": "preprocess both views",
    }  # fmt: skip
    for key, label in labels.items():
        print(f"| {label} | {stats[key]['median_ms']:.1f} | {stats[key]['p95_ms']:.1f} |")
    print(f"\nPyTorch / onnxruntime median ratio: {ratio:.2f}")
    print(f"onnxruntime unfolded / folded median ratio: {fold_ratio:.2f}")
    print(f"peak memory (ru_maxrss): {report['peak_rss_mib']:.0f} MiB\nwrote {args.out}")


if __name__ == "__main__":
    main()
