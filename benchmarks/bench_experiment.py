"""Speed of the whole experiment (`thyrocad demo` preset): cold caches, then warm caches.

Cold: empty preprocessing and feature caches (a fresh $THYROCAD_HOME), a fresh results folder.
Warm: the same caches, another fresh results folder, so every run trains again but nothing is
preprocessed or passed through a frozen backbone twice. Cohort generation is timed apart.
Targets (issue): default cohort, 4 backbones + uptake observer, 10 splits, 80 epochs, head
mode: < 5 min cold, < 1 min warm.

Usage: python benchmarks/bench_experiment.py [--patients 446] [--splits 10] [--epochs 80]
       [--workers CPU_CORES]
Prints a markdown table and writes benchmarks/results/bench_experiment.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tempfile
import time
from pathlib import Path

from thyrocad.experiment.execute import Backend
from thyrocad.experiment.presets import preset
from thyrocad.experiment.run import run_experiment
from thyrocad.provenance import library_versions, machine_description

RESULTS = Path(__file__).parent / "results" / "bench_experiment.json"


def _cohort(patients: int) -> tuple[Path, float]:
    from thyrocad.data.phantom import PhantomConfig, ensure_default_cohort, generate_cohort

    start = time.perf_counter()
    if patients == 446:
        folder = ensure_default_cohort()
    else:
        folder = Path(tempfile.mkdtemp(prefix="bench-cohort-"))
        residual = round(patients * 346 / 446)
        generate_cohort(folder, PhantomConfig(n_patients=patients, n_residual=residual))
    return folder, time.perf_counter() - start


def timed_experiment(cohort: Path, out: Path, config, backend: Backend, progress: bool = False):
    """run_experiment, with the wall time of its phases (from its callbacks) and the mean wall
    time of one run per model (measured inside the worker); `progress` prints each run's."""
    marks: dict[str, float] = {"start": time.perf_counter()}
    runs: dict[str, list[float]] = {}

    def done(result) -> None:
        marks["last run done"] = time.perf_counter()
        runs.setdefault(result.model, []).append(result.wall_s)
        if progress:
            print(f"{result.model} split {result.split}: {result.wall_s:.1f} s", flush=True)

    outcome = run_experiment(
        cohort, out, config, backend,
        on_plan=lambda plan, n_done: marks.setdefault("planned", time.perf_counter()),
        on_start=lambda spec: marks.setdefault("first run started", time.perf_counter()),
        on_done=done,
    )  # fmt: skip
    end = time.perf_counter()
    phases = {
        "plan (validate cohort, splits, weights)": marks["planned"] - marks["start"],
        "preprocess + frozen features + baseline scores": (
            marks["first run started"] - marks["planned"]
        ),
        "runs (workers start, train, predict)": (
            marks["last run done"] - marks["first run started"]
        ),
        "statistics, figures, report": end - marks["last run done"],
    }
    return outcome, phases, {m: sum(v) / len(v) for m, v in runs.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=446)
    parser.add_argument("--splits", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=80)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)  # as the demo
    args = parser.parse_args()

    cohort, cohort_s = _cohort(args.patients)
    config = dataclasses.replace(preset("demo"), n_splits=args.splits, epochs=args.epochs)
    backend = Backend(workers=args.workers)
    home = Path(tempfile.mkdtemp(prefix="bench-home-"))
    os.environ["THYROCAD_HOME"] = str(home)  # cold preprocessing and feature caches
    timings, phases, run_s = {}, {}, {}
    for phase in ("cold", "warm"):
        out = home / f"results-{phase}"
        start = time.perf_counter()
        outcome, phases[phase], run_s[phase] = timed_experiment(cohort, out, config, backend)
        timings[phase] = time.perf_counter() - start
    record = {
        "benchmark": "experiment",
        "patients": args.patients,
        "splits": args.splits,
        "epochs": args.epochs,
        "workers": args.workers,
        "runs": outcome.n_runs,
        "cohort_generation_s": cohort_s,
        "cold_s": timings["cold"],
        "warm_s": timings["warm"],
        "phases_s": phases,
        "mean_run_s": run_s,
        "models": [e.__dict__ for e in outcome.aggregate.entries],
        "versions": library_versions(),
        "machine": machine_description(),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(record, indent=1))
    print("| patients | splits | epochs | workers | runs | cohort (s) | cold (s) | warm (s) |")
    print("|---|---|---|---|---|---|---|---|")
    print(
        f"| {args.patients} | {args.splits} | {args.epochs} | {args.workers} | {outcome.n_runs} "
        f"| {cohort_s:.1f} | {timings['cold']:.1f} | {timings['warm']:.1f} |"
    )
    print("\n| phase | cold (s) | warm (s) |\n|---|---|---|")
    for name in phases["cold"]:
        print(f"| {name} | {phases['cold'][name]:.1f} | {phases['warm'][name]:.1f} |")
    print("\n| model | mean run, cold (s) | mean run, warm (s) |\n|---|---|---|")
    for name in run_s["cold"]:
        print(f"| {name} | {run_s['cold'][name]:.2f} | {run_s['warm'][name]:.2f} |")
    print()
    print(outcome.table_markdown)


if __name__ == "__main__":
    main()
