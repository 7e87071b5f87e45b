"""Cold frozen-feature pass of the demo's four backbones: PyTorch against onnxruntime.

The first thing a cold demo does after preprocessing is pass every view through each frozen
backbone once (`thyrocad.training.FeatureCache`). Per backbone, the same images go through a
fresh cache with engine "torch" (the BatchNorm-folded channels-last copy) and with engine
"auto" (onnxruntime over an in-memory export of that copy, parity-checked on the first batch;
the export's time is included), alternating which goes first. Images are random normalised
3x224x224 arrays (speed does not depend on content); weights random (`weights="none"`).

Usage: python benchmarks/bench_features.py [--n 256] [--threads N]
Prints a markdown table and writes benchmarks/results/bench_features.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from thyrocad.models import create_model, split_model
from thyrocad.provenance import stamped
from thyrocad.training import FeatureCache

RESULTS = Path(__file__).parent / "results" / "bench_features.json"
MODELS = ("efficientnet_lite0", "resnet18", "squeezenet1_1", "shufflenet_v2_x1_0")


def timed(backbone: torch.nn.Module, images: torch.Tensor, engine: str) -> float:
    start = time.perf_counter()
    FeatureCache(engine=engine).features(backbone, images, "bench", torch.device("cpu"), 32)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=256, help="images per backbone")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    images = torch.randn(args.n, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    rows = []
    for i, name in enumerate(MODELS):
        backbone = split_model(create_model(name, weights="none").eval()).backbone.eval()
        order = ("torch", "auto") if i % 2 == 0 else ("auto", "torch")
        times = {engine: timed(backbone, images, engine) for engine in order}
        rows.append({"model": name, "torch_s": times["torch"], "onnxruntime_s": times["auto"]})
    total = {k: sum(r[k] for r in rows) for k in ("torch_s", "onnxruntime_s")}
    print(f"| backbone | PyTorch (s) | onnxruntime incl. export (s) | ratio |  ({args.n} images)")
    print("|---|---:|---:|---:|")
    for r in [*rows, {"model": "all four", **total}]:
        ratio = r["torch_s"] / r["onnxruntime_s"]
        print(f"| {r['model']} | {r['torch_s']:.1f} | {r['onnxruntime_s']:.1f} | {ratio:.2f} |")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    record = stamped({"n": args.n, "threads": args.threads, "rows": rows})
    RESULTS.write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
