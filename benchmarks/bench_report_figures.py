"""Time to write one study's figures as the web app's report does (views, stages, Grad-CAM
overlays, clickable views, report PNG + PDF), and the size of each file.

Per study: read and diagnose it and run Grad-CAM (not timed), then time
`DiagnosisService.render` with the figures output only. Compare versions by running this
script with `PYTHONPATH=<worktree>/src` for the other one, back to back.

    python benchmarks/bench_report_figures.py --studies 10
    python benchmarks/bench_report_figures.py --bundle runs/bundle --studies 20

Prints the median and p95 time and the mean size of each file.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from bench_predict import default_bundle
from explain_truth import phantom
from thyrocad.diagnosis.service import DiagnosisService, Outputs
from thyrocad.diagnosis.source import StudySource
from thyrocad.provenance import machine_description


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=None, help="model bundle folder")
    parser.add_argument("--studies", type=int, default=10, help="studies to render")
    args = parser.parse_args()
    service = DiagnosisService.from_bundle(args.bundle or default_bundle())
    paths = sorted((phantom(max(args.studies, 2), seed=7) / "images").glob("*.dcm"))
    seconds, sizes = [], {}
    for path in paths[: args.studies]:
        outcome = service.decide(StudySource.read([path], None))
        outcome.analysis = service.predictor.explain(outcome.analysis)
        with tempfile.TemporaryDirectory() as folder:
            start = time.perf_counter()
            service.render(outcome, Outputs(figures=Path(folder)))
            seconds.append(time.perf_counter() - start)
            for file in Path(folder).iterdir():
                sizes.setdefault(file.name, []).append(file.stat().st_size)
    ms = np.array(seconds) * 1000
    print(f"{machine_description()}; {len(ms)} studies")
    print(f"figures: median {np.median(ms):.0f} ms, p95 {np.percentile(ms, 95):.0f} ms")
    for name, values in sorted(sizes.items()):
        print(f"  {name}: {np.mean(values) / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
