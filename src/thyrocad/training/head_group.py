"""Training the heads of many runs at once, on features cached from one frozen backbone.

In 'head' mode an experiment trains, for each split, a new head on the same frozen features:
ten small problems of 1680 Adam steps each, whose time is almost all framework overhead per
step. Every head of the registered models is dropout followed by one affine map to the
classes (`AffineHead`), so K such heads are K weight matrices: one step of all of them is one
batched matrix product, one loss and one Adam update of the stacked weights. Adam and weight
decay act element by element, so this is the same optimisation as K separate runs.

Each run keeps its own generators, seeded with its seed: one for the class-balanced sampler
(the same draws as `thyrocad.training.train`), one for the dropout masks. What a run draws
therefore does not depend on the other runs in its group.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.optim.adam import adam

from thyrocad.training.data import balanced_sampler
from thyrocad.training.history import EpochRecord

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AffineHead:
    """A head that computes `dropout(x) @ weight.T + bias` on flattened features."""

    dropout: float
    weight: torch.Tensor  # (classes, features)
    bias: torch.Tensor  # (classes,)


def affine_head(head: nn.Module, feature_shape: Sequence[int]) -> AffineHead | None:
    """`head` as an `AffineHead`, or None when it is not dropout + one affine map.

    Checked by computation: in eval mode the head must equal the affine map of its two
    parameters on random features; the dropout rate comes from its `nn.Dropout` module or
    a `drop_rate` attribute (timm), and a head with several dropouts is not affine here.
    """
    params = [p.detach() for p in head.parameters()]
    if len(params) != 2 or params[1].ndim != 1:
        return None
    weight, bias = params[0].reshape(len(params[1]), -1), params[1]
    rates = [m.p for m in head.modules() if isinstance(m, nn.Dropout)]
    rates += [m.drop_rate for m in head.modules() if hasattr(m, "drop_rate")]
    if len(rates) > 1 or weight.shape[1] != int(np.prod(feature_shape)):
        return None
    was_training = head.training
    head.eval()
    x = torch.randn(4, *feature_shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        same = torch.allclose(head(x), x.flatten(1) @ weight.T + bias, rtol=1e-4, atol=1e-5)
    head.train(was_training)
    if not same:
        return None
    return AffineHead(float(rates[0]) if rates else 0.0, weight.clone(), bias.clone())


@dataclass(frozen=True)
class HeadRun:
    """One run of a group: its training rows (into the feature matrix), seed and initial head."""

    rows: np.ndarray
    seed: int
    init: AffineHead


@dataclass
class HeadFit:
    """A trained head and its per-epoch history."""

    weight: torch.Tensor
    bias: torch.Tensor
    history: list[EpochRecord]

    def probabilities(self, features: torch.Tensor) -> np.ndarray:
        """P(class 1) of each row of `features` (eval mode: no dropout)."""
        with torch.no_grad():
            logits = features.flatten(1) @ self.weight.T + self.bias
        return logits.softmax(1)[:, 1].numpy()


def train_heads(
    features: torch.Tensor,
    labels: torch.Tensor,
    runs: Sequence[HeadRun],
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    weight_decay: float,
) -> list[HeadFit]:
    """Train one head per run on `features[run.rows]` with `labels[run.rows]`, all at once.

    Every run must have the same number of training rows (its batches line up with the
    others'). Adam (fused) with cross-entropy, class-balanced sampling with replacement, as
    `thyrocad.training.train` does for one run.
    """
    sizes = {len(r.rows) for r in runs}
    if len(sizes) != 1:
        raise ValueError(f"runs of one group need equally many training rows, got {sorted(sizes)}")
    x_all = features.flatten(1).float()
    rows = torch.as_tensor(np.stack([r.rows for r in runs]), dtype=torch.int64)  # (K, N)
    y_rows = labels[rows]
    weight = torch.stack([r.init.weight for r in runs])  # (K, O, C)
    bias = torch.stack([r.init.bias for r in runs])  # (K, O)
    optimizer = _Adam([weight, bias], lr=lr, weight_decay=weight_decay)
    samplers = [
        balanced_sampler(y, torch.Generator().manual_seed(r.seed))
        for y, r in zip(y_rows, runs, strict=True)
    ]
    masks = _DropoutMasks(runs[0].init.dropout, [r.seed for r in runs])
    histories: list[list[EpochRecord]] = [[] for _ in runs]
    for epoch in range(1, epochs + 1):
        order = torch.stack([torch.as_tensor(list(s), dtype=torch.int64) for s in samplers])
        chosen, y = rows.gather(1, order), y_rows.gather(1, order)
        mask = masks.epoch((order.shape[1], x_all.shape[1]))
        loss_sum = torch.zeros(len(runs), dtype=torch.float64)
        hits = torch.zeros(len(runs), dtype=torch.int64)
        for start in range(0, order.shape[1], batch_size):
            yb = y[:, start : start + batch_size]
            picked = chosen[:, start : start + batch_size]
            xb = x_all.index_select(0, picked.flatten()).view(*picked.shape, -1)
            if mask is not None:
                xb = xb * mask[:, start : start + batch_size]
            logits = torch.baddbmm(bias.unsqueeze(1), xb, weight.transpose(1, 2))
            losses, grad_weight, grad_bias = _cross_entropy_grads(logits, yb, xb)
            optimizer.step([grad_weight, grad_bias])
            loss_sum += losses * yb.shape[1]
            hits += (logits.argmax(2) == yb).sum(1)
        n = order.shape[1]
        for k, history in enumerate(histories):
            counts = tuple(torch.bincount(y[k], minlength=2).tolist())
            loss, acc = float(loss_sum[k]) / n, int(hits[k]) / n
            history.append(EpochRecord(epoch, loss, acc, None, None, counts, 0.0))
    return [
        HeadFit(w.clone(), b.clone(), h) for w, b, h in zip(weight, bias, histories, strict=True)
    ]


class _Adam:
    """torch's fused Adam kernel (`torch.optim.adam.adam`, the defaults of `torch.optim.Adam`)
    on fixed tensors, without the optimizer object's per-step hooks and bookkeeping."""

    def __init__(self, params: list[torch.Tensor], lr: float, weight_decay: float) -> None:
        self.params, self.lr, self.weight_decay = params, lr, weight_decay
        self.exp_avgs = [torch.zeros_like(p) for p in params]
        self.exp_avg_sqs = [torch.zeros_like(p) for p in params]
        self.steps = [torch.zeros((), dtype=torch.float32) for _ in params]

    def step(self, grads: list[torch.Tensor]) -> None:
        adam(
            self.params, grads, self.exp_avgs, self.exp_avg_sqs, [], self.steps, fused=True,
            amsgrad=False, beta1=0.9, beta2=0.999, lr=self.lr, weight_decay=self.weight_decay,
            eps=1e-8, maximize=False,
        )  # fmt: skip


def _cross_entropy_grads(
    logits: torch.Tensor, y: torch.Tensor, x: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-run mean cross-entropy of (K, B, O) `logits` against (K, B) labels `y`, and its
    gradients with respect to the (K, O, C) weights and (K, O) biases of `logits = x W^T + b`.

    Closed form (softmax minus one-hot, over the batch size): the same numbers as autograd
    (tested) without its per-step bookkeeping, which dominates at these sizes.
    """
    log_p = logits.log_softmax(2)
    losses = -log_p.gather(2, y.unsqueeze(2)).squeeze(2).mean(1)
    delta = log_p.exp()
    delta.scatter_add_(2, y.unsqueeze(2), torch.full_like(delta[..., :1], -1.0))
    delta /= y.shape[1]
    return losses.double(), torch.bmm(delta.transpose(1, 2), x), delta.sum(1)


class _DropoutMasks:
    """Inverted dropout masks for one epoch of every run, each run's drawn from its own NumPy
    generator (SFC64, seeded with the run's seed): uniform float32 draws compared with the
    rate, several times cheaper per value than `torch.bernoulli` on this project's CPUs."""

    def __init__(self, rate: float, seeds: Sequence[int]) -> None:
        self.rate = rate
        self.generators = [np.random.Generator(np.random.SFC64([s, 1])) for s in seeds]

    def epoch(self, shape: tuple[int, int]) -> torch.Tensor | None:
        """(K, rows, features) float32 masks holding 0 or 1 / (1 - rate); None without dropout."""
        if self.rate == 0.0:
            return None
        scale = np.float32(1.0 / (1.0 - self.rate))
        keep = np.stack([g.random(shape, dtype=np.float32) >= self.rate for g in self.generators])
        return torch.from_numpy(keep * scale)
