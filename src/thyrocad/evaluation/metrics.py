"""Per-run binary classification metrics at a threshold (chosen by `thyrocad.decision`).

Positive = label 1 = residual thyroid tissue. A case is called positive when its score is
``>= threshold`` (the rule scikit-learn's ``roc_curve`` uses). A metric whose denominator is 0
is NaN, and ``binary_metrics(...)["undefined"]`` says why; nothing raises for it.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from thyrocad.decision import as_binary_labels, as_scores
from thyrocad.errors import StatisticsError
from thyrocad.evaluation.stats import roc_auc

logger = logging.getLogger(__name__)


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
