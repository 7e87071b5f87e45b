"""Wall time of one paper-sized 'head' run (335 images, 80 epochs) with and without the cache.

1. cold: a fresh `FeatureCache` - backbone features computed once, then 80 head-only epochs;
2. warm: the same cache again (features in memory) - only the 80 head epochs;
3. recompute: features recomputed by the frozen backbone every epoch (`cache_features=False`),
   for `--recompute-epochs` epochs; its 80-epoch time is extrapolated per epoch unless
   `--recompute-epochs` equals `--epochs` (the JSON says which).
Images are random normalised 3x224x224 arrays (speed does not depend on content); 260/75
residual/non-residual as in the paper's training splits. The backbone's weights come from a
state_dict file, as ImageNet weights do (`--weights file`: a seeded random one written to a
temporary file, since the ImageNet file is not on this offline machine; speed does not depend
on the values), or are initialised at random in the run (`--weights none`).
Targets: cold < 20 s, warm < 1 s.

Usage: python benchmarks/bench_train_head.py [--model resnet18] [--n 335] [--epochs 80]
       [--recompute-epochs 3] [--size 224] [--threads N] [--weights file|none]
Prints a markdown table and writes benchmarks/results/bench_train_head.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from thyrocad.models import create_model
from thyrocad.provenance import stamped
from thyrocad.training import FeatureCache, TrainConfig, TrainData, train

RESULTS = Path(__file__).parent / "results" / "bench_train_head.json"


def timed(data: TrainData, config: TrainConfig, cache: FeatureCache | None) -> float:
    start = time.perf_counter()
    train(data, config, cache=cache)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--n", type=int, default=335)
    parser.add_argument("--epochs", type=int, default=80)
    parser.add_argument("--recompute-epochs", type=int, default=3)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--weights", choices=("file", "none"), default="file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    weights = "none"
    if args.weights == "file":
        torch.manual_seed(0)
        weights = str(Path(tempfile.mkdtemp(prefix="bench-weights-")) / f"{args.model}.pt")
        torch.save(create_model(args.model, weights="none").state_dict(), weights)

    rng = np.random.default_rng(0)
    n_res = round(args.n * 260 / 335)
    x = rng.normal(size=(args.n, 3, args.size, args.size)).astype(np.float32)
    data = TrainData.build(x, [1] * n_res + [0] * (args.n - n_res))
    config = TrainConfig(model=args.model, weights=weights, mode="head", epochs=args.epochs)

    cache = FeatureCache()
    cold = timed(data, config, cache)
    warm = timed(data, config, cache)
    re_cfg = TrainConfig(**{**config.to_dict(), "cache_features": False})
    re_cfg = TrainConfig(**{**re_cfg.to_dict(), "epochs": args.recompute_epochs})
    re_measured = timed(data, re_cfg, None)
    re_80 = re_measured * args.epochs / args.recompute_epochs
    extrapolated = args.recompute_epochs != args.epochs
    rows = {
        "cold_s": round(cold, 3),
        "warm_s": round(warm, 3),
        "recompute_measured_s": round(re_measured, 3),
        "recompute_epochs_measured": args.recompute_epochs,
        "recompute_full_run_s": round(re_80, 1),
        "recompute_full_run_extrapolated": extrapolated,
        "ratio_recompute_over_warm": round(re_80 / warm, 1),
        "ratio_recompute_over_cold": round(re_80 / cold, 1),
    }
    note = " (extrapolated)" if extrapolated else ""
    print(
        f"{args.model}, head mode, {args.n} images {args.size}px, {args.epochs} epochs, "
        f"CPU {args.threads} threads\n"
    )
    print("| run | wall time (s) |")
    print("|---|---|")
    print(f"| cold cache (features once + {args.epochs} epochs) | {rows['cold_s']} |")
    print(f"| warm cache ({args.epochs} head epochs) | {rows['warm_s']} |")
    print(f"| recompute features every epoch{note} | {rows['recompute_full_run_s']} |")
    print(
        f"\nratio recompute / warm: {rows['ratio_recompute_over_warm']}x, "
        f"recompute / cold: {rows['ratio_recompute_over_cold']}x"
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(stamped({"settings": vars(args), "results": rows}), indent=2) + "\n"
    )
    print(f"\nwritten {RESULTS}")


if __name__ == "__main__":
    main()
