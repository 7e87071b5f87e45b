"""Per-run binary classification metrics and training-set threshold selection.

Positive = label 1 = residual thyroid tissue. A case is called positive when its score is
``>= threshold`` (the rule scikit-learn's ``roc_curve`` uses). A metric whose denominator is 0
is NaN, and ``binary_metrics(...)["undefined"]`` says why; nothing raises for it.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from thyrocad.errors import StatisticsError
from thyrocad.stats import as_binary_labels, as_scores, roc_auc

logger = logging.getLogger(__name__)

THRESHOLD_RULES = ("youden", "sensitivity")


def _ratio(num: int, den: int, name: str, why: str, undefined: dict[str, str]) -> float:
    if den == 0:
        undefined[name] = why
        return math.nan
    return num / den


def binary_metrics(y_true: ArrayLike, prob: ArrayLike, threshold: float) -> dict[str, Any]:
    """acc, bal_acc, sen, spe, ppv, npv, f1 and auc of one run at `threshold`.

    Returns a dict with those floats, the counts ``tp, fp, tn, fn`` (ints), ``threshold``, and
    ``undefined``: {metric: reason} for every NaN (a zero denominator, or one class only for
    the AUC). bal_acc is NaN when sen or spe is.
    """
    y = as_binary_labels(y_true)
    p = as_scores(prob, y.size, "prob")
    if not math.isfinite(threshold):
        raise StatisticsError(f"threshold must be a finite number, got {threshold}")
    pred = p >= threshold
    tp, fn = int(np.sum(pred & y)), int(np.sum(~pred & y))
    fp, tn = int(np.sum(pred & ~y)), int(np.sum(~pred & ~y))
    und: dict[str, str] = {}
    sen = _ratio(tp, tp + fn, "sen", "no positive (residual) case: TP + FN = 0", und)
    spe = _ratio(tn, tn + fp, "spe", "no negative case: TN + FP = 0", und)
    ppv = _ratio(tp, tp + fp, "ppv", "no case called positive: TP + FP = 0", und)
    npv = _ratio(tn, tn + fn, "npv", "no case called negative: TN + FN = 0", und)
    f1 = _ratio(2 * tp, 2 * tp + fp + fn, "f1", "TP = FP = FN = 0", und)
    if math.isnan(sen) or math.isnan(spe):
        und["bal_acc"] = "needs both sensitivity and specificity (both classes present)"
    if y.all() or not y.any():
        auc = math.nan
        und["auc"] = "only one class present: the AUC is undefined"
    else:
        auc = roc_auc(y, p)
    return {
        "acc": (tp + tn) / y.size,
        "bal_acc": (sen + spe) / 2.0,
        "sen": sen,
        "spe": spe,
        "ppv": ppv,
        "npv": npv,
        "f1": f1,
        "auc": auc,
        "tp": tp,
        "fp": fp,
        "tn": tn,
        "fn": fn,
        "threshold": float(threshold),
        "undefined": und,
    }


@dataclass(frozen=True)
class ThresholdChoice:
    """A decision threshold chosen on training data and what it achieved there."""

    threshold: float
    sensitivity: float
    specificity: float
    rule: str
    target: float | None = None


def _candidates(p: np.ndarray) -> np.ndarray:
    """The lowest score, then midpoints between consecutive distinct scores (ascending).

    Each candidate gives a different training confusion matrix; "everything negative" is left
    out. A midpoint that rounds onto the lower score is replaced by the upper one.
    """
    u = np.unique(p)
    mid = (u[:-1] + u[1:]) / 2.0
    mid = np.where(mid > u[:-1], mid, u[1:])
    return np.concatenate([u[:1], mid])


def choose_threshold(
    y_true: ArrayLike, prob: ArrayLike, rule: str = "youden", target: float = 0.95
) -> ThresholdChoice:
    """Pick a threshold on training scores (call positive when score >= threshold).

    Candidates: the lowest score and the midpoints between consecutive distinct scores.
    ``"youden"`` maximises sen + spe − 1; a tie goes to the higher sensitivity (missing a
    residual is the costlier error), which makes the choice unique. ``"sensitivity"`` takes the
    highest threshold whose sensitivity is >= `target`, i.e. the best specificity at that
    sensitivity. Needs both classes.
    """
    if rule not in THRESHOLD_RULES:
        raise StatisticsError(f"rule must be one of {THRESHOLD_RULES}, got {rule!r}")
    y = as_binary_labels(y_true)
    p = as_scores(prob, y.size, "prob")
    if y.all() or not y.any():
        raise StatisticsError(
            "choosing a threshold needs both classes in the training data "
            f"({int(y.sum())} positive(s), {int((~y).sum())} negative(s))"
        )
    cand = _candidates(p)
    called = p[None, :] >= cand[:, None]
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    tp, tn = (called & y).sum(axis=1), (~called & ~y).sum(axis=1)
    sen, spe = tp / n_pos, tn / n_neg
    if rule == "youden":
        j = tp * n_neg + tn * n_pos  # (sen + spe) * n_pos * n_neg, exact in integers
        best = np.flatnonzero(j == j.max())
        i = int(best[np.argmax(tp[best])])
        tgt = None
    else:
        if not 0.0 < target <= 1.0:
            raise StatisticsError(f"target sensitivity must lie in (0, 1], got {target}")
        i = int(np.flatnonzero(sen >= target)[-1])  # the lowest candidate always has sen = 1
        tgt = float(target)
    choice = ThresholdChoice(float(cand[i]), float(sen[i]), float(spe[i]), rule, tgt)
    logger.debug("choose_threshold: %s", choice)
    return choice
