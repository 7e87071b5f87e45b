"""`thyrocad experiment` with and without `--batched-splits` on the CPU, in one call.

ResNet-18 (no dropout, so both paths give the same results) from a random initialisation,
`full` mode, the `recommended` 32 x 32 crops, 5 splits, 5 epochs, 2 threads; after a warm-up
experiment (preprocessing cache, initial weights), the two paths alternate twice. Prints the
wall time and mean AUC of each experiment.

Usage: python benchmarks/bench_batched_cpu.py COHORT_DIR
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from thyrocad.experiment.config import ExperimentConfig
from thyrocad.experiment.execute import Backend
from thyrocad.experiment.run import run_experiment

BASE = dict(
    models=("resnet18",), baselines=(), reference="resnet18", mode="full", init="scratch",
    preprocess="recommended", n_splits=5, epochs=5, lr=1e-5, device="cpu",
)  # fmt: skip


def main() -> None:
    cohort = sys.argv[1]
    out = Path(tempfile.mkdtemp(prefix="cpu-batched-"))
    backend = Backend(threads_per_run=2)
    warm = ExperimentConfig(**{**BASE, "n_splits": 2, "epochs": 1})
    run_experiment(cohort, out / "warm", warm, backend)
    for i, batched in enumerate((False, True, False, True)):
        start = time.perf_counter()
        config = ExperimentConfig(**BASE, batched_splits=batched)
        outcome = run_experiment(cohort, out / f"run{i}", config, backend)
        auc = next(r["mean"] for r in outcome.aggregate.table if r["metric"] == "auc")
        print(f"batched={batched}: {time.perf_counter() - start:.1f} s, mean AUC {auc:.6f}")


if __name__ == "__main__":
    main()
