"""Benchmark: time to write a phantom cohort with 1 worker and with 2 workers.

Prints a markdown table and writes benchmarks/results/bench_phantom.json.

Example:
    python benchmarks/bench_phantom.py --patients 446 --residual 346
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from thyrocad.data.phantom import PhantomConfig, generate_cohort
from thyrocad.provenance import library_versions, machine_description

RESULTS = Path(__file__).parent / "results" / "bench_phantom.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=446)
    parser.add_argument("--residual", type=int, default=346)
    parser.add_argument("--format", default="multiframe", choices=["multiframe", "per-view", "png"])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    config = PhantomConfig(n_patients=args.patients, n_residual=args.residual)
    runs = []
    for workers in args.workers:
        with tempfile.TemporaryDirectory() as tmp:
            summary = generate_cohort(tmp, config, fmt=args.format, workers=workers)
        runs.append(
            {
                "workers": workers,
                "seconds": summary["seconds"],
                "patients_per_s": args.patients / summary["seconds"],
            }
        )
    base = runs[0]["seconds"]
    print("| workers | patients | format | seconds | patients/s | speed-up vs first |")
    print("|---|---|---|---|---|---|")
    for run in runs:
        print(
            f"| {run['workers']} | {args.patients} | {args.format} | {run['seconds']:.1f} "
            f"| {run['patients_per_s']:.1f} | {base / run['seconds']:.2f} |"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "patients": args.patients,
                "format": args.format,
                "runs": runs,
                "versions": library_versions(),
                "machine": machine_description(),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
