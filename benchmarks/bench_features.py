"""Should the cold frozen-feature pass run through onnxruntime? PyTorch against onnxruntime.

The first thing a cold demo does after preprocessing is pass every view through each frozen
backbone once (`thyrocad.training.FeatureCache`: the BatchNorm-folded channels-last copy,
PyTorch). Per backbone this times, in one run: that PyTorch pass; exporting the same folded
copy with `torch.onnx.export` (the torch.export-based exporter `thyrocad export` uses) and
loading it into onnxruntime; and the onnxruntime pass. Images are random normalised
3x224x224 arrays (speed does not depend on content), batch 32; weights random.

Usage: python benchmarks/bench_features.py [--n 256] [--threads N]
Prints a markdown table (seconds per --n images, and extrapolated to the demo's 892 views)
and writes benchmarks/results/bench_features.json.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import time
from pathlib import Path

import onnxruntime as ort
import torch

from thyrocad.models import channels_last, create_model, inference_copy, split_model
from thyrocad.provenance import stamped

RESULTS = Path(__file__).parent / "results" / "bench_features.json"
MODELS = ("efficientnet_lite0", "resnet18", "squeezenet1_1", "shufflenet_v2_x1_0")
DEMO_VIEWS = 892


def session(module: torch.nn.Module, threads: int) -> ort.InferenceSession:
    batch = torch.export.Dim("batch", min=1, max=1024)
    with contextlib.redirect_stdout(io.StringIO()):
        program = torch.onnx.export(
            module, (torch.zeros(2, 3, 224, 224),), dynamo=True, dynamic_shapes=({0: batch},)
        )
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    return ort.InferenceSession(program.model_proto.SerializeToString(), options)


def seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(name: str, images: torch.Tensor, threads: int) -> dict:
    fast = inference_copy(split_model(create_model(name, weights="none").eval()).backbone)
    batches = images.split(32)
    with torch.no_grad():
        torch_s = seconds(lambda: [fast(channels_last(b)) for b in batches])
    holder = {}
    export_s = seconds(lambda: holder.setdefault("s", session(fast, threads)))
    sess = holder["s"]
    name_in = sess.get_inputs()[0].name
    ort_s = seconds(lambda: [sess.run(None, {name_in: b.contiguous().numpy()}) for b in batches])
    return {"model": name, "torch_s": torch_s, "export_s": export_s, "onnxruntime_s": ort_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=256, help="images per backbone")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    images = torch.randn(args.n, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    rows = [measure(name, images, args.threads) for name in MODELS]
    scale = DEMO_VIEWS / args.n
    print(f"| backbone | PyTorch | export + load | onnxruntime | at {DEMO_VIEWS} views: "
          "PyTorch / (export + onnxruntime) |")  # fmt: skip
    print("|---|---:|---:|---:|---|")
    total = {k: sum(r[k] for r in rows) for k in ("torch_s", "export_s", "onnxruntime_s")}
    for r in [*rows, {"model": "all four", **total}]:
        t, e, o = r["torch_s"] * scale, r["export_s"], r["onnxruntime_s"] * scale
        print(f"| {r['model']} | {r['torch_s']:.1f} s | {e:.1f} s | {r['onnxruntime_s']:.1f} s "
              f"| {t:.1f} / ({e:.1f} + {o:.1f}) = {t / (e + o):.2f} |")  # fmt: skip
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    record = stamped({"n": args.n, "threads": args.threads, "rows": rows})
    RESULTS.write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
