"""The experiment's figures: ROC curves (paper Fig. 10), training curves (Fig. 9), metrics.

Each function returns PNG bytes. matplotlib's object API is used (no pyplot, no display).
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure
from sklearn.metrics import roc_curve

from thyrocad.experiment.report.aggregate import METRIC_LABELS, METRICS
from thyrocad.experiment.runs import RunResult

FPR_GRID = np.linspace(0.0, 1.0, 201)
SERIES_TITLES = {
    "train_loss": "Training loss (cross-entropy)",
    "train_acc": "Training accuracy",
    "val_loss": "Validation loss",
    "val_acc": "Validation accuracy",
}


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)  # the figures use constrained layout already
    return buf.getvalue()


def _grouped(results: Sequence[RunResult]) -> dict[str, list[RunResult]]:
    out: dict[str, list[RunResult]] = {}
    for r in sorted(results, key=lambda r: (r.model, r.split)):
        out.setdefault(r.model, []).append(r)
    return out


def _interpolated_tpr(run: RunResult) -> np.ndarray:
    fpr, tpr, _ = roc_curve(run.labels, run.probabilities)
    out = np.interp(FPR_GRID, fpr, tpr)
    out[0] = 0.0
    return out


def roc_figure(results: Sequence[RunResult], order: Sequence[str]) -> bytes:
    """One panel per model (per-split curves, mean curve, ±1 SD band) and an overlay of means."""
    grouped = _grouped(results)
    names = [n for n in order if n in grouped]
    ncols = min(3, len(names) + 1)
    nrows = -(-(len(names) + 1) // ncols)
    fig = Figure(figsize=(4 * ncols, 4 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    overlay = axes.flat[len(names)]
    for ax, name in zip(axes.flat, names, strict=False):
        curves = np.array([_interpolated_tpr(r) for r in grouped[name]])
        for curve in curves:
            ax.plot(FPR_GRID, curve, color="0.7", lw=0.7)
        mean, sd = curves.mean(axis=0), curves.std(axis=0)
        ax.fill_between(FPR_GRID, np.clip(mean - sd, 0, 1), np.clip(mean + sd, 0, 1), alpha=0.25)
        ax.plot(FPR_GRID, mean, lw=2, label="mean of splits")
        overlay.plot(FPR_GRID, mean, lw=2, label=name)
        _roc_axes(ax, f"{name} ({len(curves)} splits)")
    _roc_axes(overlay, "mean ROC curves")
    overlay.legend(loc="lower right", fontsize=8)
    for ax in list(axes.flat)[len(names) + 1 :]:
        ax.set_visible(False)
    return _png(fig)


def _roc_axes(ax, title: str) -> None:
    ax.plot([0, 1], [0, 1], ls="--", color="0.5", lw=0.8)
    ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="1 − specificity", ylabel="sensitivity")
    ax.set_title(title, fontsize=10)


def training_curves_figure(results: Sequence[RunResult], order: Sequence[str]) -> bytes | None:
    """Mean (±1 SD band) over splits of each per-epoch history series; None if none recorded."""
    grouped = _grouped(results)
    keys = sorted({k for r in results for k, v in r.history.items() if len(v) > 1})
    if not keys:
        return None
    fig = Figure(figsize=(4.5 * len(keys), 3.6), layout="constrained")
    axes = fig.subplots(1, len(keys), squeeze=False)
    for ax, key in zip(axes.flat, keys, strict=True):
        for name in (n for n in order if n in grouped):
            series = [r.history[key] for r in grouped[name] if len(r.history.get(key, [])) > 1]
            if not series:
                continue
            length = min(len(s) for s in series)
            values = np.array([s[:length] for s in series], dtype=float)
            epochs = np.arange(1, length + 1)
            mean, sd = values.mean(axis=0), values.std(axis=0)
            ax.plot(epochs, mean, label=name)
            ax.fill_between(epochs, mean - sd, mean + sd, alpha=0.2)
        ax.set(xlabel="epoch", title=SERIES_TITLES.get(key, key.replace("_", " ")))
        ax.legend(fontsize=8)
    return _png(fig)


def metrics_strip_figure(
    per_split: dict[str, dict[str, list[float]]], order: Sequence[str]
) -> bytes:
    """Horizontal box plots with the per-split points of every metric, one box per model
    (model names on the left, readable at any number of models)."""
    names = [n for n in order if n in per_split]
    ncols = 4
    nrows = -(-len(METRICS) // ncols)
    height = max(2.4, 0.45 * len(names) + 1.0)
    fig = Figure(figsize=(3.2 * ncols, height * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    rng = np.random.default_rng(0)  # jitter only; fixed so the figure is reproducible
    for i, (ax, metric) in enumerate(zip(axes.flat, METRICS, strict=False)):
        data = [np.asarray(per_split[n][metric], dtype=float) for n in names]
        data = [d[np.isfinite(d)] for d in data]
        ax.boxplot(data, orientation="horizontal", showfliers=False)
        for j, values in enumerate(data, start=1):
            ax.scatter(values, j + rng.uniform(-0.12, 0.12, len(values)), s=10, color="C1")
        ax.set_yticks(range(1, len(names) + 1), names if i % ncols == 0 else [], fontsize=9)
        ax.invert_yaxis()
        ax.set_title(METRIC_LABELS[metric].replace(" %", " (fraction)"), fontsize=10)
    for ax in list(axes.flat)[len(METRICS) :]:
        ax.set_visible(False)
    return _png(fig)
