"""The training engine's CUDA paths, run once: every mode with fp32 and with bf16 autocast +
channels-last, on a small random problem; CUDA results compared with the CPU's.

Usage: python benchmarks/check_cuda_training.py [--images 64] [--epochs 2]
Needs a CUDA GPU. Prints a markdown table (seconds per run, largest |P(cuda) - P(cpu)| of the
training images' probabilities) and exits non-zero if a run fails or gives non-finite output.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from thyrocad.training import TrainConfig, TrainData, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("check_cuda_training needs a CUDA GPU")
    gen = torch.Generator().manual_seed(0)
    data = TrainData.build(
        torch.randn(args.images, 3, 224, 224, generator=gen),
        torch.arange(args.images) % 2,
    )
    print(f"GPU: {torch.cuda.get_device_name(0)}; torch {torch.__version__}")
    print("| mode | precision | CPU (s) | CUDA (s) | max abs P difference |")
    print("|---|---|---|---|---|")
    failed = False
    for mode in ("head", "last", "full"):
        base = {"model": "resnet18", "weights": "none", "mode": mode, "epochs": args.epochs,
                "batch_size": 16, "seed": 1}  # fmt: skip
        start = time.perf_counter()
        cpu = train(data, TrainConfig(**base, device="cpu")).train_prob
        cpu_s = time.perf_counter() - start
        for bf16 in (False, True):
            config = TrainConfig(**base, device="cuda", bf16=bf16, channels_last=bf16)
            start = time.perf_counter()
            prob = train(data, config).train_prob
            cuda_s = time.perf_counter() - start
            diff = float(np.abs(prob - cpu).max())
            failed |= not np.isfinite(prob).all()
            precision = "bf16 + channels-last" if bf16 else "fp32"
            print(f"| {mode} | {precision} | {cpu_s:.1f} | {cuda_s:.1f} | {diff:.2e} |", flush=True)
    if failed:
        raise SystemExit("a CUDA run gave non-finite probabilities")


if __name__ == "__main__":
    main()
