"""The paper's experiment on one GPU: its three models in full mode (every layer trains), timed.

Runs `thyrocad experiment` (through `run_experiment`) on the default cohort with
`--mode full --device cuda`, the paper's learning rate 1e-5, 10 splits and 80 epochs, and says
where the time goes: the experiment's phases, the mean wall time of one run per model, and a
per-step profile of each model (forward, backward, optimizer step; fp32 as the experiment
trains, and bf16 autocast + channels-last for comparison) at the experiment's batch size.

Before the experiment, it times training the splits of each model one at a time
(`thyrocad.training.train`, as the experiment does) against all splits as one batched
computation (`thyrocad.training.batched.train_splits`), same data, seeds and settings:
`--batched-views` random 224 px training views per split drawn from a pool of 892,
`--batched-epochs` epochs (timings scale with epochs). `--batched-only` runs just this
comparison (about 2-4 minutes on one H100/H200: the prepared GPU check of issue 17).

Then it runs the experiment twice in the same call (`--experiments both`, the default): the
splits one at a time in `--workers` processes, as `thyrocad experiment` does by default, and
with `--batched-splits` (the ten splits of each model as one batched computation; the three
models' tasks in the same worker processes), and prints the two tables and the difference of
their mean AUCs (equal within float tolerance for ResNet-18 and ShuffleNetV2; SqueezeNet's
dropout draws differ, so its runs are equal in distribution only).

Usage: python benchmarks/bench_experiment_gpu.py [--splits 10] [--epochs 80] [--workers 3]
       [--batched-epochs 8] [--batched-only] [--experiments both|per-split|batched]
       [--json benchmarks/results/bench_experiment_gpu.json]
Needs a CUDA GPU (`--device cpu --size 32 --batched-views 24` tries it out on a CPU). Prints
markdown tables and writes the JSON record.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tempfile
import time
from pathlib import Path

import torch

from bench_experiment import timed_experiment  # benchmarks/ is the script's folder
from thyrocad.experiment.config import ExperimentConfig
from thyrocad.experiment.execute import Backend
from thyrocad.provenance import library_versions, machine_description

PAPER_MODELS = ("resnet18", "squeezenet1_1", "shufflenet_v2_x1_0")
RESULTS = Path(__file__).parent / "results" / "bench_experiment_gpu.json"


def _ms(fn, repeats: int, device: torch.device) -> float:
    """Mean milliseconds of `fn()` (the GPU synchronised before and after)."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    sync()
    return (time.perf_counter() - start) * 1000 / repeats


def step_profile(
    model_name: str, batch: int, bf16: bool, device: torch.device, repeats: int
) -> dict[str, float]:
    """ms per training step of a full-mode model: forward alone, forward+backward, and the
    whole step with Adam (fused); random inputs, the experiment's batch size."""
    from thyrocad.models import create_model

    net = create_model(model_name, weights="none").to(device).train()
    fmt = torch.channels_last if bf16 else torch.contiguous_format
    net = net.to(memory_format=fmt)
    x = torch.randn(batch, 3, 224, 224, device=device).contiguous(memory_format=fmt)
    y = torch.randint(0, 2, (batch,), device=device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-5, fused=True)
    loss_fn = torch.nn.CrossEntropyLoss()

    def forward():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            return loss_fn(net(x).float(), y)

    def forward_backward():
        opt.zero_grad(set_to_none=True)
        forward().backward()

    def step():
        forward_backward()
        opt.step()

    for fn in (forward, forward_backward, step):
        fn()  # warm-up: cuDNN algorithm choice, allocator
    return {
        "forward_ms": _ms(forward, repeats, device),
        "forward_backward_ms": _ms(forward_backward, repeats, device),
        "step_ms": _ms(step, repeats, device),
    }


def batched_comparison(model: str, args: argparse.Namespace) -> dict[str, float]:
    """Seconds to train `args.splits` splits of `model` in full mode one at a time and as one
    batched computation, on the same random views, seeds and settings."""
    import numpy as np

    from thyrocad.training import TrainConfig, TrainData, train
    from thyrocad.training.batched import train_splits

    rng = np.random.default_rng(0)
    pool = rng.normal(size=(892, 3, args.size, args.size)).astype(np.float32)
    labels = (rng.random(892) < 346 / 446).astype(int)
    datas = []
    for _ in range(args.splits):
        rows = np.sort(rng.choice(892, size=args.batched_views, replace=False))
        datas.append(TrainData.build(pool[rows], labels[rows]))
    configs = [
        TrainConfig(model=model, weights="none", mode="full", epochs=args.batched_epochs,
                    seed=seed, device=args.device)
        for seed in range(args.splits)
    ]  # fmt: skip
    train(datas[0], TrainConfig(**{**configs[0].to_dict(), "epochs": 1}))  # warm-up
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    for data, config in zip(datas, configs, strict=True):
        train(data, config)
    sync()
    one_at_a_time = time.perf_counter() - start
    start = time.perf_counter()
    train_splits(datas, configs)
    sync()
    batched = time.perf_counter() - start
    return {"one_at_a_time_s": one_at_a_time, "batched_s": batched,
            "speed_up": one_at_a_time / batched}  # fmt: skip


def print_batched(rows: dict[str, dict[str, float]], args: argparse.Namespace) -> None:
    print(f"\n{args.splits} splits, {args.batched_views} views, {args.batched_epochs} epochs, "
          "full mode, batch 32, fp32\n\n| model | one at a time (s) | batched (s) | speed-up |\n"
          "|---|---|---|---|")  # fmt: skip
    for name, row in rows.items():
        print(f"| {name} | {row['one_at_a_time_s']:.1f} | {row['batched_s']:.1f} "
              f"| {row['speed_up']:.2f} |", flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splits", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=80)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--json", type=Path, default=RESULTS)
    parser.add_argument("--repeats", type=int, default=30, help="steps timed per profile row")
    parser.add_argument("--device", default="cuda", help="cpu only to try the script out")
    parser.add_argument("--batched-epochs", type=int, default=8)
    parser.add_argument("--batched-views", type=int, default=670, help="training views/split")
    parser.add_argument("--size", type=int, default=224, help="image size of the comparison")
    parser.add_argument("--batched-only", action="store_true", help="only the comparison")
    parser.add_argument(
        "--experiments", choices=sorted(_EXPERIMENTS), default="both",
        help="the experiment with splits one at a time, with --batched-splits, or both",
    )  # fmt: skip
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("bench_experiment_gpu needs a CUDA GPU")
    gpu = torch.cuda.get_device_name(0) if device.type == "cuda" else "none (CPU try-out)"
    print(f"GPU: {gpu}; torch {torch.__version__}; {os.cpu_count()} CPUs", flush=True)
    os.environ["THYROCAD_HOME"] = tempfile.mkdtemp(prefix="bench-gpu-home-")
    batched = {name: batched_comparison(name, args) for name in PAPER_MODELS}
    print_batched(batched, args)
    if args.batched_only:
        record = {"benchmark": "experiment_gpu_batched", "gpu": gpu, "settings": vars(args),
                  "batched": batched, "versions": library_versions(),
                  "machine": machine_description()}  # fmt: skip
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(record, indent=1, default=str))
        return

    from thyrocad.data.phantom import ensure_default_cohort

    start = time.perf_counter()
    cohort = ensure_default_cohort()
    cohort_s = time.perf_counter() - start
    print(f"default cohort generated in {cohort_s:.1f} s", flush=True)

    profile = {
        f"{name} {precision}": step_profile(name, 32, precision == "bf16", device, args.repeats)
        for name in PAPER_MODELS
        for precision in ("fp32", "bf16")
    }
    print("\n| model, precision | forward (ms) | forward+backward (ms) | whole step (ms) |")
    print("|---|---|---|---|")
    for key, row in profile.items():
        print(f"| {key} | {row['forward_ms']:.2f} | {row['forward_backward_ms']:.2f} "
              f"| {row['step_ms']:.2f} |", flush=True)  # fmt: skip

    config = ExperimentConfig(
        models=PAPER_MODELS, baselines=(), mode="full", n_splits=args.splits,
        epochs=args.epochs, lr=1e-5, init="imagenet-or-scratch", device=device.type,
    )  # fmt: skip
    record = {
        "benchmark": "experiment_gpu", "gpu": gpu, "splits": args.splits,
        "epochs": args.epochs, "workers": args.workers, "cohort_generation_s": cohort_s,
        "step_profile_ms": profile, "batched": batched, "experiments": {},
        "versions": library_versions(), "machine": machine_description(),
    }  # fmt: skip
    outcomes = {}
    for name in _EXPERIMENTS[args.experiments]:
        run_config = dataclasses.replace(config, batched_splits=name == "batched")
        outcomes[name], record["experiments"][name] = _experiment(cohort, run_config, args)
    if len(outcomes) == 2:
        auc = {name: _aucs(outcome) for name, outcome in outcomes.items()}
        record["mean_auc_difference"] = {
            m: abs(auc["batched"][m] - auc["per_split"][m]) for m in auc["per_split"]
        }
        print(f"\nmean AUC, batched minus per split: {record['mean_auc_difference']}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(record, indent=1, default=str))


# which experiments `--experiments` runs: the splits one at a time (`workers` processes), all
# splits of a model as one batched computation (`--batched-splits`), or both in the same call
_EXPERIMENTS = {"both": ("per_split", "batched"), "per-split": ("per_split",),
                "batched": ("batched",)}  # fmt: skip


def _experiment(cohort: Path, config: ExperimentConfig, args: argparse.Namespace):
    """(outcome, its JSON record) of one timed experiment, its tables printed."""
    how = "batched splits" if config.batched_splits else "splits one at a time"
    backend = Backend(workers=args.workers)
    out = Path(os.environ["THYROCAD_HOME"]) / ("results-batched" if config.batched_splits
                                               else "results")  # fmt: skip
    start = time.perf_counter()
    outcome, phases, run_s = timed_experiment(cohort, out, config, backend, progress=True)
    total = time.perf_counter() - start
    print(f"\nexperiment ({how}): {outcome.n_runs} runs in {total:.1f} s "
          f"({args.workers} workers)")  # fmt: skip
    print("\n| phase | s |\n|---|---|")
    for name, seconds in phases.items():
        print(f"| {name} | {seconds:.1f} |")
    print("\n| model | mean run (s) |\n|---|---|")
    for name, seconds in run_s.items():
        print(f"| {name} | {seconds:.2f} |")
    print()
    print(outcome.table_markdown)
    record = {
        "batched_splits": config.batched_splits, "runs": outcome.n_runs,
        "experiment_s": total, "phases_s": phases, "mean_run_s": run_s,
        "models": [e.__dict__ for e in outcome.aggregate.entries],
    }  # fmt: skip
    return outcome, record


def _aucs(outcome) -> dict[str, float]:
    """Mean AUC over splits of each model of an experiment."""
    return {r["model"]: r["mean"] for r in outcome.aggregate.table if r["metric"] == "auc"}


if __name__ == "__main__":
    main()
