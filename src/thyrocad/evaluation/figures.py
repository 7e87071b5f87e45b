"""Figures of a model on a labelled cohort: ROC curve, reliability diagram, confusion matrix.

Each function returns PNG bytes (matplotlib's object API; no pyplot, no display).
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure
from sklearn.calibration import calibration_curve
from sklearn.metrics import roc_curve


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


def roc_png(labels: Sequence[int], prob: Sequence[float], threshold: float, auc: float) -> bytes:
    """The ROC curve with the operating point of `threshold` marked."""
    fpr, tpr, _ = roc_curve(labels, prob)
    y, p = np.asarray(labels, bool), np.asarray(prob) >= threshold
    fig = Figure(figsize=(4.2, 4.0), layout="constrained")
    ax = fig.subplots()
    ax.plot(fpr, tpr, lw=2, label=f"ROC (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], ls="--", color="0.5", lw=0.8)
    ax.plot([(p & ~y).sum() / max((~y).sum(), 1)], [(p & y).sum() / max(y.sum(), 1)], "o",
            color="C3", label=f"threshold {threshold:.3f}")  # fmt: skip
    ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="1 − specificity", ylabel="sensitivity")
    ax.set_title("ROC curve", fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    return _png(fig)


def reliability_png(labels: Sequence[int], prob: Sequence[float], bins: int = 10) -> bytes:
    """Observed share of residual patients against mean predicted probability per bin (equal
    width), with the patient count of each bin as a bar below."""
    observed, predicted = calibration_curve(labels, prob, n_bins=bins, strategy="uniform")
    fig = Figure(figsize=(4.2, 4.0), layout="constrained")
    ax, hist = fig.subplots(2, 1, height_ratios=(3, 1), sharex=True)
    ax.plot([0, 1], [0, 1], ls="--", color="0.5", lw=0.8, label="perfectly calibrated")
    ax.plot(predicted, observed, "o-", label="this model")
    ax.set(ylim=(-0.02, 1.02), ylabel="observed share residual")
    ax.set_title("Reliability diagram", fontsize=10)
    ax.legend(loc="upper left", fontsize=8)
    hist.hist(prob, bins=np.linspace(0, 1, bins + 1), color="0.6")
    hist.set(xlim=(0, 1), xlabel="predicted probability of residual", ylabel="patients")
    return _png(fig)


def confusion_png(tp: int, fn: int, fp: int, tn: int) -> bytes:
    """The 2 x 2 confusion matrix (rows: truth, columns: call) with its counts."""
    cells = np.array([[tp, fn], [fp, tn]])
    fig = Figure(figsize=(3.6, 3.2), layout="constrained")
    ax = fig.subplots()
    ax.imshow(cells, cmap="Blues")
    for (r, c), n in np.ndenumerate(cells):
        ax.text(c, r, str(n), ha="center", va="center", fontsize=14,
                color="white" if n > cells.max() / 2 else "black")  # fmt: skip
    ax.set_xticks([0, 1], ["called residual", "called non-residual"], fontsize=8)
    ax.set_yticks([0, 1], ["residual", "non-residual"], fontsize=8)
    ax.set_title("Confusion matrix (rows: truth)", fontsize=10)
    return _png(fig)
