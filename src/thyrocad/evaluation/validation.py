"""A model's numbers on a labelled cohort at a fixed threshold: what `thyrocad evaluate` and an
experiment's external test cohort report.

- ACC, SEN, SPE, PPV, NPV with the counts behind them and Wilson 95 % score intervals
  (Wilson 1927; Newcombe 1998, method 3);
- the ROC AUC with its DeLong 95 % CI (`thyrocad.evaluation.stats.delong_auc`);
- the Brier score (mean squared difference between probability and label);
- calibration: the slope b of the logistic recalibration `logit P(y=1) = a + b·logit(p)` and
  the calibration-in-the-large intercept a of `logit P(y=1) = a + logit(p)` (slope fixed at 1),
  as in Van Calster et al. 2019 (J Clin Epidemiol); 0 and 1 mean well calibrated.

Positive = label 1 = residual. Anything undefined is NaN with its reason under "undefined".
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy import optimize, special
from scipy import stats as sps
from sklearn.linear_model import LogisticRegression

from thyrocad.decision import as_binary_labels, as_scores
from thyrocad.errors import StatisticsError
from thyrocad.evaluation.metrics import binary_metrics
from thyrocad.evaluation.stats import delong_auc

PROPORTIONS = {  # metric -> (numerator count, denominator counts)
    "acc": (("tp", "tn"), ("tp", "tn", "fp", "fn")),
    "sen": (("tp",), ("tp", "fn")),
    "spe": (("tn",), ("tn", "fp")),
    "ppv": (("tp",), ("tp", "fp")),
    "npv": (("tn",), ("tn", "fn")),
}
_EPS = 1e-6  # probabilities are clipped to [eps, 1 - eps] before the logit


def wilson_interval(successes: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion `successes / n`; (NaN, NaN) when n = 0."""
    if n == 0:
        return math.nan, math.nan
    if not 0 <= successes <= n:
        raise StatisticsError(f"successes must lie in [0, n], got {successes} of {n}")
    z = float(sps.norm.ppf(0.5 + level / 2.0))
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def proportion(successes: int, n: int, level: float = 0.95) -> dict[str, Any]:
    """{value, successes, n, ci_low, ci_high} of one proportion (Wilson interval)."""
    low, high = wilson_interval(successes, n, level)
    value = successes / n if n else math.nan
    return {"value": value, "successes": successes, "n": n, "ci_low": low, "ci_high": high}


def brier_score(y_true: ArrayLike, prob: ArrayLike) -> float:
    """Mean of (p - y)^2."""
    y = as_binary_labels(y_true)
    p = as_scores(prob, y.size, "prob")
    return float(np.mean((p - y) ** 2))


def calibration(y_true: ArrayLike, prob: ArrayLike) -> dict[str, float]:
    """Calibration-in-the-large intercept and calibration slope (logistic recalibration on
    logit(p)); needs both classes (`StatisticsError` otherwise)."""
    y = as_binary_labels(y_true)
    p = np.clip(as_scores(prob, y.size, "prob"), _EPS, 1 - _EPS)
    if y.all() or not y.any():
        raise StatisticsError("calibration needs both classes among the patients")
    lp = special.logit(p)
    fit = LogisticRegression(C=np.inf, tol=1e-10, max_iter=1000).fit(lp[:, None], y.astype(int))

    def score(a: float) -> float:  # derivative of the log-likelihood in the intercept
        return float(np.sum(y - special.expit(a + lp)))

    intercept = optimize.brentq(score, -50.0, 50.0, xtol=1e-12)
    return {"intercept": float(intercept), "slope": float(fit.coef_[0, 0])}


def labelled_metrics(y_true: ArrayLike, prob: ArrayLike, threshold: float) -> dict[str, Any]:
    """Every number `thyrocad evaluate` reports for one cohort at `threshold` (JSON-ready)."""
    y = as_binary_labels(y_true)
    m = binary_metrics(y, prob, threshold)
    counts = {k: m[k] for k in ("tp", "fp", "tn", "fn")}
    out: dict[str, Any] = {
        "n_patients": int(y.size),
        "n_residual": int(y.sum()),
        "n_non_residual": int((~y).sum()),
        "threshold": float(threshold),
        "counts": counts,
        "undefined": dict(m["undefined"]),
    }
    for name, (num, den) in PROPORTIONS.items():
        out[name] = proportion(sum(counts[k] for k in num), sum(counts[k] for k in den))
    try:
        auc = delong_auc(y, prob)
        out["auc"] = {"value": auc.auc, "ci_low": auc.ci_low, "ci_high": auc.ci_high}
    except StatisticsError as exc:
        out["auc"] = {"value": m["auc"], "ci_low": math.nan, "ci_high": math.nan}
        out["undefined"]["auc_ci"] = str(exc)
    out["brier"] = brier_score(y, prob)
    try:
        out["calibration"] = calibration(y, prob)
    except StatisticsError as exc:
        out["calibration"] = {"intercept": math.nan, "slope": math.nan}
        out["undefined"]["calibration"] = str(exc)
    return out
