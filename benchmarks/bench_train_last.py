"""Seconds per 'last'-mode epoch with the prefix activations cached, recomputed, and before.

Training runs of the same data and settings, each in its own fresh process, in this one call,
repeated `--rounds` times in turn (so that a busy, shared machine slows all of them alike):

1. cached: `cache_features=True` - the frozen prefix (everything before the last stage) runs
   once per image, then every epoch trains only the last stage and head on its activations;
2. recompute: `cache_features=False` - the (BatchNorm-folded) prefix runs on every batch;
3. before (only with `--baseline-src DIR`, a source tree of an older thyrocad, e.g. 0.3.0:
   `git archive 591b3de src | tar -x -C /tmp/thyrocad-0.3.0`): that version's 'last' mode,
   which ran the whole network on every batch.

Per-epoch time is the median over the rounds' `EpochRecord.seconds` (the epoch alone: no model
building, no prefix pass, no final probabilities); the one-off prefix pass of a cached run is
its wall time minus its epochs. A `last`-mode experiment of `--splits` splits and
`--full-epochs` epochs is extrapolated from the cached run's time per view: each split trains
on `--train-views` views (670 on the default cohort) per epoch, and the prefix runs once per
cohort view (`--cohort-views`, 892). Images are random normalised arrays
(speed does not depend on content) with the paper's class balance; weights are random.

Usage: python benchmarks/bench_train_last.py [--model resnet18] [--n 335] [--cached-epochs 3]
       [--recompute-epochs 2] [--rounds 2] [--baseline-src /tmp/thyrocad-0.3.0/src]
Prints a markdown table and writes benchmarks/results/bench_train_last.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

RESULTS = Path(__file__).parent / "results" / "bench_train_last.json"


def worker(args: argparse.Namespace) -> None:
    """One training run; prints its wall time and per-epoch seconds as JSON."""
    from thyrocad.training import FeatureCache, TrainConfig, TrainData, train

    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    n_res = round(args.n * 260 / 335)
    x = rng.normal(size=(args.n, 3, args.size, args.size)).astype(np.float32)
    data = TrainData.build(x, [1] * n_res + [0] * (args.n - n_res))
    config = TrainConfig(
        model=args.model, weights="none", mode="last", epochs=args.worker_epochs,
        device="cpu", cache_features=args.worker_cached,
    )  # fmt: skip
    start = time.perf_counter()
    result = train(data, config, cache=FeatureCache())
    wall = time.perf_counter() - start
    print(json.dumps({"wall_s": wall, "epoch_s": [r.seconds for r in result.history]}))


def run(args: argparse.Namespace, epochs: int, cached: bool, src: str) -> dict:
    """`worker` in a fresh process with `src` first on the path."""
    cmd = [
        sys.executable, __file__, "--worker-epochs", str(epochs), "--model", args.model,
        "--n", str(args.n), "--size", str(args.size), "--threads", str(args.threads),
    ]  # fmt: skip
    if cached:
        cmd.append("--worker-cached")
    env = {**os.environ, "PYTHONPATH": src}
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    timing = json.loads(out.strip().splitlines()[-1])
    timing["once_s"] = timing["wall_s"] - sum(timing["epoch_s"])
    return timing


def pooled(timings: list[dict]) -> dict:
    """Every round's epochs of one kind of run, their median, the median one-off time."""
    epochs = [s for t in timings for s in t["epoch_s"]]
    once = statistics.median(t["once_s"] for t in timings)
    return {"epoch_s": epochs, "median_epoch_s": statistics.median(epochs), "once_s": once}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--n", type=int, default=335, help="training images of each run")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--cached-epochs", type=int, default=3)
    parser.add_argument("--recompute-epochs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--baseline-src", help="src folder of an older thyrocad to time too")
    parser.add_argument("--splits", type=int, default=10)
    parser.add_argument("--full-epochs", type=int, default=80)
    parser.add_argument("--train-views", type=int, default=670)
    parser.add_argument("--cohort-views", type=int, default=892)
    parser.add_argument("--worker-epochs", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--worker-cached", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker_epochs is not None:
        worker(args)
        return
    src = str(Path(__file__).resolve().parents[1] / "src")
    kinds = {
        "cached": (args.cached_epochs, True, src),
        "recompute": (args.recompute_epochs, False, src),
    }
    if args.baseline_src:
        kinds["before"] = (args.recompute_epochs, False, args.baseline_src)
    timings: dict[str, list[dict]] = {name: [] for name in kinds}
    for _ in range(args.rounds):
        for name, (epochs, cached, path) in kinds.items():
            timings[name].append(run(args, epochs, cached, path))
    runs = {name: pooled(t) for name, t in timings.items()}
    cached = runs["cached"]["median_epoch_s"]
    epoch_per_view, prefix_per_view = cached / args.n, runs["cached"]["once_s"] / args.n
    experiment_s = (
        args.splits * args.full_epochs * args.train_views * epoch_per_view
        + args.cohort_views * prefix_per_view
    )
    rows = {
        name: {"median_epoch_s": round(t["median_epoch_s"], 2), "epochs": len(t["epoch_s"]),
               "ratio_over_cached": round(t["median_epoch_s"] / cached, 2)}
        for name, t in runs.items()
    }  # fmt: skip
    summary = {
        "prefix_pass_s": round(runs["cached"]["once_s"], 1),
        "extrapolated_experiment_s": round(experiment_s),
    }
    print(
        f"{args.model}, last mode, {args.n} images {args.size}px, batch 32, CPU "
        f"{args.threads} threads\n\n| run | epochs timed | median s per epoch | / cached |\n"
        "|---|---|---|---|"
    )
    for name, row in rows.items():
        print(f"| {name} | {row['epochs']} | {row['median_epoch_s']} | "
              f"{row['ratio_over_cached']} |")  # fmt: skip
    print(
        f"\nprefix pass of a cached run (once, median): {summary['prefix_pass_s']} s; "
        f"extrapolated {args.splits}-split, {args.full_epochs}-epoch experiment ({args.train_views}"
        f" training views per split, prefix once over {args.cohort_views} views): "
        f"{summary['extrapolated_experiment_s']} s"
    )
    from thyrocad.provenance import stamped

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    payload = {"settings": vars(args), "results": rows, "summary": summary, "raw": timings}
    RESULTS.write_text(json.dumps(stamped(payload), indent=2) + "\n")
    print(f"\nwritten {RESULTS}")


if __name__ == "__main__":
    main()
