"""Several runs of one model trained as one batched computation (`torch.func`).

The runs of an experiment's splits differ only in their data, seed and initial head. Their
trainable parameters and buffers are stacked (`stack_module_state`) and one `vmap` over a
`functional_call` runs every run's batch through its own weights at once: one kernel launch
per layer for all runs instead of one per run, which is what a GPU needs at batch 32 (one
run's step is launch-bound there). BatchNorm keeps per-run running statistics (stacked
buffers). Each run draws its batches from its own sampler stream, seeded as `train` seeds it,
and Adam is elementwise, so one Adam over the stacked tensors is each run's own Adam: without
dropout in the trained part, every run ends with the weights `train` gives it alone, within
floating-point tolerance (tested). Dropout masks are drawn per run (`randomness="different"`)
from the global generator, so with dropout (SqueezeNet, EfficientNet-Lite0) the runs are
equal in distribution, not draw for draw. No checkpoints: a batched group is not resumable.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Sequence

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from thyrocad.training.augment import augment_batch
from thyrocad.training.config import TrainConfig
from thyrocad.training.data import TrainData, balanced_sampler, require_both_classes
from thyrocad.training.feature_cache import FeatureCache
from thyrocad.training.fit import (
    CACHED_MODES,
    TrainResult,
    _inputs,
    _probabilities,
    _Run,
    _setup,
    train,
)
from thyrocad.training.history import EpochRecord
from thyrocad.training.runtime import autocast, determinism, resolve_device

logger = logging.getLogger(__name__)

# settings that may differ between the runs of one batched group
PER_RUN = frozenset({"seed"})


def batchable(configs: Sequence[TrainConfig]) -> str | None:
    """Why these runs cannot train as one batch, or None when they can."""
    first = configs[0].to_dict()
    differ = sorted({k for c in configs for k, v in c.to_dict().items() if first[k] != v} - PER_RUN)
    if differ:
        return f"the runs differ in {', '.join(differ)}"
    if configs[0].mode != "full" and not (configs[0].mode in CACHED_MODES
                                         and configs[0].cache_features):  # fmt: skip
        return "the frozen part must be cached ('head'/'last' mode with cache_features)"
    return None


def train_splits(
    datas: Sequence[TrainData], configs: Sequence[TrainConfig], cache: FeatureCache | None = None
) -> list[TrainResult]:
    """Train run k on `datas[k]` with `configs[k]`, all runs at once; results in order.

    The configs may differ only in `seed`; every run needs equally many training images (its
    batches line up with the others'). Otherwise `ValueError` says why.
    """
    if len({len(d) for d in datas}) != 1 or len(datas) != len(configs):
        raise ValueError("batched runs need one config per data set, all of equal size")
    why = batchable(configs)
    if why is not None:
        raise ValueError(f"cannot train these runs as one batch: {why}")
    for data in datas:
        require_both_classes(data)
    config = configs[0]
    device = resolve_device(config.device)
    with determinism(config.deterministic, device):
        runs = [_setup(c, device) for c in configs]
        inputs = [_inputs(run, data, cache) for run, data in zip(runs, datas, strict=True)]
        trained = [_trained_module(run) for run in runs]
        params, buffers = stack_module_state(trained)
        base = copy.deepcopy(trained[0]).to("meta")
        optimizer = torch.optim.Adam(
            list(params.values()), lr=config.lr, weight_decay=config.weight_decay, fused=True
        )
        step = _Step(base, params, buffers, optimizer, config, device)
        samplers = [
            balanced_sampler(d.y, run.generator) for d, run in zip(datas, runs, strict=True)
        ]
        labels = [d.y.to(device) for d in datas]
        histories: list[list[EpochRecord]] = [[] for _ in runs]
        for epoch in range(1, config.epochs + 1):
            start = time.perf_counter()
            records = _epoch(step, samplers, [r.generator for r in runs], inputs, labels, epoch)
            seconds = (time.perf_counter() - start) / len(runs)
            for history, record in zip(histories, records, strict=True):
                history.append(EpochRecord(**{**record.to_dict(), "seconds": seconds}))
            logger.info("batched epoch %d/%d of %d runs", epoch, config.epochs, len(runs))
        results = []
        for k, (run, data) in enumerate(zip(runs, datas, strict=True)):
            _unstack(trained[k], params, buffers, k)
            prob = _probabilities(run, inputs[k])
            run.model.eval()
            results.append(TrainResult(run.model.cpu(), run.config, histories[k], prob,
                                       run.fingerprint, data.class_counts()))  # fmt: skip
    return results


def same_size_groups(sizes: Sequence[int]) -> list[list[int]]:
    """Indices of runs grouped by their number of training images, in order of first
    appearance (the runs of one group can train as one batch)."""
    groups: dict[int, list[int]] = {}
    for k, size in enumerate(sizes):
        groups.setdefault(size, []).append(k)
    return list(groups.values())


def train_grouped(
    datas: Sequence[TrainData], configs: Sequence[TrainConfig], cache: FeatureCache | None = None
) -> list[TrainResult]:
    """Train run k on `datas[k]` with `configs[k]`; the runs with equally many training
    images train as one batch (`train_splits`), a run without an equal-sized partner alone
    (`train`). Results in the order of the runs."""
    results: dict[int, TrainResult] = {}
    for members in same_size_groups([len(d) for d in datas]):
        if len(members) == 1:
            results[members[0]] = train(datas[members[0]], configs[members[0]], cache=cache)
            continue
        trained = train_splits([datas[k] for k in members], [configs[k] for k in members], cache)
        results.update(zip(members, trained, strict=True))
    return [results[k] for k in range(len(datas))]


def _trained_module(run: _Run) -> nn.Module:
    """What a step runs: the whole model ('full' mode) or the part after the cached cut."""
    return run.model if run.config.mode == "full" else run.split.head


class _Step:
    """One optimiser step of every run: vmapped forward, summed per-run mean losses, Adam."""

    def __init__(self, base, params, buffers, optimizer, config: TrainConfig, device) -> None:
        self.params, self.buffers, self.optimizer = params, buffers, optimizer
        self.config, self.device = config, device

        def forward(p, b, x):
            return functional_call(base, (p, b), (x,))

        self.forward = vmap(forward, randomness="different")

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(K, B, ...) inputs and (K, B) labels -> per-run summed losses and hits (detached)."""
        with autocast(self.device, self.config.bf16):
            logits = self.forward(self.params, self.buffers, x)
        logits = logits.float()
        losses = nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none")
        per_run = losses.view(y.shape).mean(1)
        self.optimizer.zero_grad(set_to_none=True)
        per_run.sum().backward()
        self.optimizer.step()
        hits = (logits.detach().argmax(2) == y).sum(1)
        return per_run.detach() * y.shape[1], hits


def _epoch(step: _Step, samplers, generators, inputs, labels, epoch: int) -> list[EpochRecord]:
    """One epoch of every run; each run's batches are augmented (`TrainConfig.flip`,
    `shift_px`) from its own generator, as when it trains alone."""
    orders = [torch.as_tensor(list(s), dtype=torch.int64) for s in samplers]
    batch_size, flip, shift = step.config.batch_size, step.config.flip, step.config.shift_px
    loss_sum, hit_sum = [], []
    for start in range(0, len(orders[0]), batch_size):
        idx = [o[start : start + batch_size].to(step.device) for o in orders]
        x = torch.stack([augment_batch(inp[i], g, flip, shift)
                         for inp, i, g in zip(inputs, idx, generators, strict=True)])  # fmt: skip
        y = torch.stack([lab[i] for lab, i in zip(labels, idx, strict=True)])
        losses, hits = step(x, y)
        loss_sum.append(losses)
        hit_sum.append(hits)
    total_loss = torch.stack(loss_sum).double().sum(0).tolist()
    correct = torch.stack(hit_sum).sum(0).tolist()
    records = []
    for k, order in enumerate(orders):
        n = len(order)
        counts = tuple(torch.bincount(labels[k].cpu()[order], minlength=2).tolist())
        records.append(EpochRecord(epoch, total_loss[k] / n, correct[k] / n, None, None,
                                   counts, 0.0))  # fmt: skip
    return records


def _unstack(module: nn.Module, params: dict, buffers: dict, k: int) -> None:
    """Copy run k's trained parameters and buffers back into its own module."""
    with torch.no_grad():
        for name, value in params.items():
            module.get_parameter(name).copy_(value[k])
        for name, value in buffers.items():
            module.get_buffer(name).copy_(value[k])
