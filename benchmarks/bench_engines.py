"""The compute floor of one two-view diagnosis: ResNet-18 forward passes by inference engine.

Batch 2 (the two views of a study) and batch 1, 3x224x224, on this machine's CPU threads:
PyTorch eager (what an unoptimised deployment runs), PyTorch with BatchNorm folded and
channels-last memory (`thyrocad.models.inference_copy`, the `predict` torch backend),
onnxruntime fp32 (the `predict --backend onnxruntime` path), and two int8 variants that a
deployment could try: onnxruntime static QDQ quantisation (per-channel weights, calibrated on
16 random inputs) and PyTorch FX x86 quantisation. Speed does not depend on the weights
(random). Median of `--reps` passes after warm-up; ratios are against PyTorch eager.

Usage: python benchmarks/bench_engines.py [--reps 20] [--threads N]
Prints a markdown table and writes benchmarks/results/bench_engines.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from onnxruntime.quantization import (
    CalibrationDataReader,
    QuantFormat,
    QuantType,
    quant_pre_process,
    quantize_static,
)

from thyrocad.models import channels_last, create_model, inference_copy
from thyrocad.provenance import stamped

RESULTS = Path(__file__).parent / "results" / "bench_engines.json"


def median_ms(fn, reps: int) -> float:
    fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


class _Calibration(CalibrationDataReader):
    def __init__(self, batches: list[np.ndarray]) -> None:
        self._it = iter([{"x": b} for b in batches])

    def get_next(self):
        return next(self._it, None)


def onnx_sessions(model: torch.nn.Module, folder: Path, threads: int) -> dict:
    """fp32 and int8 (static QDQ) onnxruntime sessions of `model`."""
    fp32, pre, int8 = folder / "m.onnx", folder / "pre.onnx", folder / "int8.onnx"
    torch.onnx.export(model, torch.randn(1, 3, 224, 224), fp32, input_names=["x"],
                      dynamic_axes={"x": {0: "n"}}, dynamo=False)  # fmt: skip
    quant_pre_process(str(fp32), str(pre))
    rng = np.random.default_rng(0)
    calib = [rng.normal(size=(1, 3, 224, 224)).astype(np.float32) for _ in range(16)]
    quantize_static(str(pre), str(int8), _Calibration(calib), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8)  # fmt: skip
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    return {
        name: ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        for name, path in (("onnxruntime fp32", fp32), ("onnxruntime int8 (QDQ)", int8))
    }


def torch_int8(model: torch.nn.Module, example: torch.Tensor) -> torch.nn.Module:
    """PyTorch FX post-training int8 quantisation (x86 backend), calibrated on 8 inputs."""
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    torch.backends.quantized.engine = "x86"
    prepared = prepare_fx(inference_copy(model), get_default_qconfig_mapping("x86"), (example,))
    with torch.no_grad():
        for _ in range(8):
            prepared(torch.randn_like(example))
    return convert_fx(prepared)


def engine_rows(batch: int, model, folded, quantised, sessions: dict, reps: int) -> list[dict]:
    """Median latency of every engine at one batch size, and its speed-up over eager."""
    x = torch.randn(batch, 3, 224, 224)
    xn, xc = x.numpy(), channels_last(x)
    engines = {
        "PyTorch eager": lambda: model(x),
        "PyTorch folded, channels-last": lambda: folded(xc),
        "PyTorch int8 (FX, x86)": lambda: quantised(x),
        **{name: (lambda s=s: s.run(None, {"x": xn})) for name, s in sessions.items()},
    }
    with torch.inference_mode():
        times = {name: median_ms(fn, reps) for name, fn in engines.items()}
    base = times["PyTorch eager"]
    return [
        {"batch": batch, "engine": name, "median_ms": round(ms, 1),
         "speedup_vs_eager": round(base / ms, 2)}
        for name, ms in times.items()
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")  # export and quantisation deprecation notices
    torch.manual_seed(0)
    model = create_model("resnet18", weights="none").eval()
    folded = inference_copy(model)
    with tempfile.TemporaryDirectory() as tmp:
        sessions = onnx_sessions(model, Path(tmp), args.threads)
        quantised = torch_int8(model, torch.randn(1, 3, 224, 224))
        rows = [
            row
            for batch in (2, 1)
            for row in engine_rows(batch, model, folded, quantised, sessions, args.reps)
        ]
    print(f"ResNet-18, 224 px, CPU {args.threads} threads, median of {args.reps}\n")
    print("| batch | engine | median ms | speed-up vs eager |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['batch']} | {r['engine']} | {r['median_ms']} | {r['speedup_vs_eager']} |")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(stamped({"settings": vars(args), "rows": rows}), indent=2) + "\n")
    print(f"\nwritten {RESULTS}")


if __name__ == "__main__":
    main()
