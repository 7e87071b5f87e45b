"""CPU speed of each backbone: inference latency at batch 1, training throughput in 'full' mode.

Weights are random ('none'): speed does not depend on their values, and no download is needed.
Latency: median of `--reps` eval-mode forward passes of one 3x224x224 image after warm-up.
Throughput: images per second over `--steps` full-mode training steps (Adam, cross-entropy)
at `--batch-size`, after one warm-up step.

Usage: python benchmarks/bench_models.py [--reps 30] [--steps 5] [--batch-size 32] [--size 224]
       [--threads N] [--models resnet18,...]
Prints a markdown table and writes benchmarks/results/bench_models.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from thyrocad.models import channels_last, create_model, inference_copy, list_models
from thyrocad.provenance import stamped

RESULTS = Path(__file__).parent / "results" / "bench_models.json"


def latency_ms(model: torch.nn.Module, size: int, reps: int, folded: bool = False) -> float:
    """Median wall time of one batch-1 forward pass, in milliseconds (`folded`: through
    `inference_copy`, channels-last input, as `predict` and the feature cache run it)."""
    model = inference_copy(model) if folded else model.eval()
    x = torch.randn(1, 3, size, size)
    x = channels_last(x) if folded else x
    times = []
    with torch.inference_mode():
        model(x)
        for _ in range(reps):
            start = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def train_images_per_s(model: torch.nn.Module, size: int, batch: int, steps: int) -> float:
    """Full-mode training throughput (forward, backward, Adam step)."""
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-5, weight_decay=1e-5)
    x = torch.randn(batch, 3, size, size)
    y = torch.randint(0, 2, (batch,))

    def step() -> None:
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--models", default=",".join(list_models()))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    rows = []
    for name in args.models.split(","):
        model = create_model(name, weights="none")
        params = sum(p.numel() for p in model.parameters())
        rows.append(
            {
                "model": name,
                "params_m": round(params / 1e6, 2),
                "latency_ms_batch1": round(latency_ms(model, args.size, args.reps), 2),
                "latency_ms_batch1_folded": round(
                    latency_ms(model, args.size, args.reps, folded=True), 2
                ),
                "train_img_per_s_full": round(
                    train_images_per_s(model, args.size, args.batch_size, args.steps), 1
                ),
            }
        )
    print(f"CPU, {args.threads} threads, input {args.size}px, train batch {args.batch_size}\n")
    print(
        "| model | params (M) | latency batch 1 (ms) | folded, channels-last (ms) | ratio "
        "| full-mode training (img/s) |"
    )
    print("|---|---|---|---|---|---|")
    for r in rows:
        ratio = r["latency_ms_batch1"] / r["latency_ms_batch1_folded"]
        print(
            f"| {r['model']} | {r['params_m']} | {r['latency_ms_batch1']} "
            f"| {r['latency_ms_batch1_folded']} | {ratio:.2f} | {r['train_img_per_s_full']} |"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(stamped({"settings": vars(args), "rows": rows}), indent=2) + "\n")
    print(f"\nwritten {RESULTS}")


if __name__ == "__main__":
    main()
