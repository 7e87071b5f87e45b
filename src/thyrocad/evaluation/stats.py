"""ROC AUC inference (DeLong), Mann–Whitney U and summaries over repeated random splits.

Conventions: label 1 is the positive class (residual thyroid tissue), a higher score means
"more likely positive", everything is computed in float64. DeLong follows Sun & Xu (2014): the
structural components (placements) come from midranks, so ties count one half, and the
covariance uses ``ddof=1`` as in DeLong et al. (1988) and R pROC. See ``docs/statistics.md``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats as sps

from thyrocad.decision import as_binary_labels, as_scores
from thyrocad.errors import StatisticsError, ZeroVarianceError

logger = logging.getLogger(__name__)

MANN_WHITNEY_METHODS = ("auto", "exact", "asymptotic", "permutation")


def _check_delong_classes(y: np.ndarray) -> None:
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos < 2 or n_neg < 2:
        raise StatisticsError(
            f"DeLong needs at least 2 positives and 2 negatives, got {n_pos} positive(s) and "
            f"{n_neg} negative(s); use a larger (stratified) test set"
        )


# --- AUC and DeLong ---------------------------------------------------------------------------


def _placements(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """AUCs and DeLong placements for score rows `scores` (k, N), Sun & Xu's midrank method.

    Returns (aucs (k,), v10 (k, m) for the positives, v01 (k, n) for the negatives): v10 is the
    share of negatives each positive outranks, v01 the share of positives outranking each
    negative (ties count 1/2).
    """
    pos, neg = scores[:, y], scores[:, ~y]
    m, n = pos.shape[1], neg.shape[1]
    tz = sps.rankdata(np.concatenate([pos, neg], axis=1), axis=1)
    tx = sps.rankdata(pos, axis=1)
    ty = sps.rankdata(neg, axis=1)
    aucs = (tz[:, :m].sum(axis=1) - m * (m + 1) / 2.0) / (m * n)
    v10 = (tz[:, :m] - tx) / n
    v01 = 1.0 - (tz[:, m:] - ty) / m
    return np.clip(aucs, 0.0, 1.0), v10, v01


def roc_auc(y_true: ArrayLike, scores: ArrayLike) -> float:
    """ROC AUC with midranks (ties count 1/2); needs at least one case of each class."""
    y = as_binary_labels(y_true)
    s = as_scores(scores, y.size)
    if y.all() or not y.any():
        raise StatisticsError(
            "the AUC is undefined when only one class is present "
            f"({int(y.sum())} positive(s), {int((~y).sum())} negative(s))"
        )
    return float(_placements(y, s[None, :])[0][0])


def delong_covariance(y_true: ArrayLike, *score_sets: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """AUCs (k,) and their DeLong covariance matrix (k, k) for k score vectors on the same cases."""
    y = as_binary_labels(y_true)
    _check_delong_classes(y)
    if not score_sets:
        raise StatisticsError("give at least one score vector")
    s = np.vstack([as_scores(v, y.size, f"scores[{i}]") for i, v in enumerate(score_sets)])
    aucs, v10, v01 = _placements(y, s)
    m, n = v10.shape[1], v01.shape[1]
    cov = np.atleast_2d(np.cov(v10, ddof=1)) / m + np.atleast_2d(np.cov(v01, ddof=1)) / n
    return aucs, cov


def _z_crit(conf_level: float) -> float:
    if not 0.0 < conf_level < 1.0:
        raise StatisticsError(f"conf_level must lie in (0, 1), got {conf_level}")
    return float(sps.norm.ppf(0.5 + conf_level / 2.0))


@dataclass(frozen=True)
class AucResult:
    """One ROC AUC with its DeLong variance and Wald CI (pROC ``ci.auc(method="delong")``)."""

    auc: float
    variance: float
    ci_low: float
    ci_high: float
    conf_level: float
    n_positive: int
    n_negative: int
    note: str = ""


def delong_auc(y_true: ArrayLike, scores: ArrayLike, conf_level: float = 0.95) -> AucResult:
    """AUC, DeLong variance and CI = AUC ± z·sqrt(var), clipped to [0, 1] as pROC does.

    A zero variance (perfect separation, or all scores tied) gives the degenerate CI
    [AUC, AUC], with `note` saying so.
    """
    z = _z_crit(conf_level)
    y = as_binary_labels(y_true)
    aucs, cov = delong_covariance(y, scores)
    auc, var = float(aucs[0]), max(float(cov[0, 0]), 0.0)
    note = ""
    if var == 0.0:
        note = f"zero DeLong variance (AUC = {auc:g}): the CI is degenerate, not a certainty"
        logger.warning("delong_auc: %s", note)
    half = z * math.sqrt(var)
    return AucResult(
        auc=auc,
        variance=var,
        ci_low=max(auc - half, 0.0),
        ci_high=min(auc + half, 1.0),
        conf_level=conf_level,
        n_positive=int(y.sum()),
        n_negative=int((~y).sum()),
        note=note,
    )


@dataclass(frozen=True)
class AucComparison:
    """Test of AUC1 = AUC2. `delta` = auc1 − auc2 (signed); CI is for `delta`, not clipped.

    `df` is None when the statistic is referred to the normal distribution (paired test) and
    the Welch–Satterthwaite degrees of freedom of Student's t otherwise (unpaired test).
    """

    auc1: float
    auc2: float
    delta: float
    se: float
    statistic: float
    p_value: float
    ci_low: float
    ci_high: float
    conf_level: float
    method: str
    df: float | None = None
    note: str = ""


def _two_sided_p(stat: float, df: float | None) -> float:
    if df is None:
        return float(2.0 * sps.norm.sf(abs(stat)))
    return float(2.0 * sps.t.sf(abs(stat), df))


def _compare(
    auc1: float, auc2: float, var_delta: float, conf_level: float, method: str, df: float | None
) -> AucComparison:
    delta = auc1 - auc2
    se = math.sqrt(max(var_delta, 0.0))
    note = ""
    if se == 0.0:
        if delta != 0.0:
            raise ZeroVarianceError(
                f"AUCs differ ({auc1:g} vs {auc2:g}) but the standard error of the difference "
                "is 0 (perfectly separating or constant scores): the DeLong test is undefined; "
                "report the AUCs, not a p-value"
            )
        note = "identical AUCs with zero variance of the difference: z = 0, p = 1 (as pROC)"
        logger.warning("%s: %s", method, note)
        stat = 0.0
    else:
        stat = delta / se
    crit = _z_crit(conf_level) if df is None else float(sps.t.ppf(0.5 + conf_level / 2, df))
    return AucComparison(
        auc1=auc1,
        auc2=auc2,
        delta=delta,
        se=se,
        statistic=stat,
        p_value=_two_sided_p(stat, df),
        ci_low=delta - crit * se,
        ci_high=delta + crit * se,
        conf_level=conf_level,
        method=method,
        df=df,
        note=note,
    )


def delong_paired_test(
    y_true: ArrayLike, scores1: ArrayLike, scores2: ArrayLike, conf_level: float = 0.95
) -> AucComparison:
    """DeLong test of two correlated ROC curves (two models scored on the same cases).

    Matches pROC ``roc.test(..., method="delong", paired=TRUE)``: z = ΔAUC / SE, two-sided
    p = 2·Φ(−|z|), CI = ΔAUC ± z_(1+c)/2 · SE. Both score vectors must rise toward label 1.
    """
    _z_crit(conf_level)
    aucs, cov = delong_covariance(y_true, scores1, scores2)
    if np.any(aucs < 0.5):
        logger.warning(
            "delong_paired_test: an AUC is below 0.5 (%s); check that both score vectors rise "
            "toward label 1 before reading the test",
            ", ".join(f"{a:.3f}" for a in aucs),
        )
    var_delta = cov[0, 0] + cov[1, 1] - 2.0 * cov[0, 1]
    return _compare(
        float(aucs[0]), float(aucs[1]), float(var_delta), conf_level, "delong-paired", None
    )


def delong_difference_in_differences(
    y_true: ArrayLike,
    scores_a1: ArrayLike,
    scores_a2: ArrayLike,
    scores_b1: ArrayLike,
    scores_b2: ArrayLike,
    conf_level: float = 0.95,
) -> AucComparison:
    """Test of AUC(a1) − AUC(a2) = AUC(b1) − AUC(b2), four score vectors on the same cases.

    DeLong et al. (1988) test any contrast L·AUC of correlated AUCs with variance L S Lᵀ, S the
    DeLong covariance; here L = (1, −1, −1, 1), referred to the normal distribution as the
    paired test. `auc1` and `auc2` of the result are the two differences, `delta` theirs (e.g.
    how much more locating the bed costs on one anatomy setting than on another).
    """
    _z_crit(conf_level)
    aucs, cov = delong_covariance(y_true, scores_a1, scores_a2, scores_b1, scores_b2)
    contrast = np.array([1.0, -1.0, -1.0, 1.0])
    return _compare(
        float(aucs[0] - aucs[1]),
        float(aucs[2] - aucs[3]),
        float(contrast @ cov @ contrast),
        conf_level,
        "delong-contrast",
        None,
    )


def delong_unpaired_test(
    y1: ArrayLike,
    scores1: ArrayLike,
    y2: ArrayLike,
    scores2: ArrayLike,
    conf_level: float = 0.95,
) -> AucComparison:
    """DeLong test of two ROC curves on independent samples (pROC ``paired=FALSE``).

    pROC's statistic D = ΔAUC / sqrt(V1 + V2) is referred to Student's t with a
    Welch–Satterthwaite df, df = (V1+V2)² / (V1²/(N1−1) + V2²/(N2−1)), N = cases + controls.
    """
    _z_crit(conf_level)
    r1, r2 = delong_auc(y1, scores1), delong_auc(y2, scores2)
    n1, n2 = r1.n_positive + r1.n_negative, r2.n_positive + r2.n_negative
    v1, v2 = r1.variance, r2.variance
    denom = v1**2 / (n1 - 1) + v2**2 / (n2 - 1)
    df = (v1 + v2) ** 2 / denom if denom > 0 else None
    return _compare(r1.auc, r2.auc, v1 + v2, conf_level, "delong-unpaired", df)


# --- Mann–Whitney U ---------------------------------------------------------------------------


@dataclass(frozen=True)
class MannWhitneyResult:
    """Two-sided Mann–Whitney U test; `u` belongs to the first sample, `method` is what ran."""

    u: float
    p_value: float
    method: str
    n_x: int
    n_y: int
    has_ties: bool


def _sample(values: ArrayLike, name: str) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or v.size < 1:
        raise StatisticsError(f"{name} must be a non-empty 1-D sequence, got shape {v.shape}")
    if not np.all(np.isfinite(v)):
        raise StatisticsError(f"{name} holds NaN/infinite values; drop or fix them first")
    return v


def mann_whitney(
    x: ArrayLike,
    y: ArrayLike,
    method: str = "auto",
    n_resamples: int = 9999,
    seed: int = 0,
) -> MannWhitneyResult:
    """Two-sided Mann–Whitney U via ``scipy.stats.mannwhitneyu``, reporting the method used.

    "auto" resolves as SciPy does: "exact" when a sample has at most 8 values and there are no
    ties, else "asymptotic" (normal approximation with tie and continuity corrections). "exact"
    is refused when there are ties (SciPy's exact null ignores them); "permutation" runs SciPy's
    permutation test (exact enumeration when `n_resamples` covers all arrangements).
    """
    if method not in MANN_WHITNEY_METHODS:
        raise StatisticsError(f"method must be one of {MANN_WHITNEY_METHODS}, got {method!r}")
    xv, yv = _sample(x, "x"), _sample(y, "y")
    pooled = np.concatenate([xv, yv])
    ties = bool(np.unique(pooled).size < pooled.size)
    if method == "auto":
        method = "asymptotic" if ties or (xv.size > 8 and yv.size > 8) else "exact"
    if method == "exact" and ties:
        raise StatisticsError(
            "the exact Mann–Whitney null distribution assumes no ties, and these samples have "
            "ties: use method='asymptotic' (tie-corrected) or 'permutation'"
        )
    scipy_method: str | sps.PermutationMethod = method
    if method == "permutation":
        scipy_method = sps.PermutationMethod(
            n_resamples=n_resamples, rng=np.random.default_rng(seed)
        )
    res = sps.mannwhitneyu(xv, yv, alternative="two-sided", method=scipy_method)
    return MannWhitneyResult(
        u=float(res.statistic),
        p_value=float(res.pvalue),
        method=method,
        n_x=int(xv.size),
        n_y=int(yv.size),
        has_ties=ties,
    )


# --- repeated random splits -------------------------------------------------------------------


@dataclass(frozen=True)
class SplitSummary:
    """Descriptive summary of one metric over repeated splits (SD with ddof=1)."""

    n_splits: int
    mean: float
    sd: float
    median: float
    minimum: float
    maximum: float


def summarize_splits(values: Sequence[float]) -> SplitSummary:
    """Mean, SD (ddof=1), median and range of per-split values (e.g. per-split test AUCs)."""
    v = _sample(values, "per-split values")
    if v.size < 2:
        raise StatisticsError(f"need at least 2 splits for an SD, got {v.size}")
    return SplitSummary(
        n_splits=int(v.size),
        mean=float(v.mean()),
        sd=float(v.std(ddof=1)),
        median=float(np.median(v)),
        minimum=float(v.min()),
        maximum=float(v.max()),
    )


@dataclass(frozen=True)
class CorrectedTTestResult:
    """Nadeau & Bengio corrected resampled t-test of mean(a − b) over repeated splits."""

    mean_difference: float
    sd_difference: float
    se: float
    t: float
    df: int
    p_value: float
    ci_low: float
    ci_high: float
    conf_level: float
    n_splits: int
    n_train: int
    n_test: int


def corrected_resampled_ttest(
    metric_a: Sequence[float],
    metric_b: Sequence[float],
    n_train: int,
    n_test: int,
    conf_level: float = 0.95,
) -> CorrectedTTestResult:
    """Compare two models' per-split metrics (same splits, same order) over J random splits.

    t = mean(d) / sqrt((1/J + n_test/n_train) · var(d)), var with ddof=1, df = J − 1
    (Nadeau & Bengio 2003; Bouckaert & Frank 2004). The n_test/n_train term widens the naive
    paired t-test for the overlap between splits' training and test sets.
    """
    a, b = _sample(metric_a, "metric_a"), _sample(metric_b, "metric_b")
    if a.size != b.size:
        raise StatisticsError(
            f"metric_a and metric_b must hold one value per split, got {a.size} and {b.size}"
        )
    if a.size < 2:
        raise StatisticsError(f"need at least 2 splits, got {a.size}")
    if n_train < 1 or n_test < 1:
        raise StatisticsError(f"n_train and n_test must be positive, got {n_train}, {n_test}")
    if not 0.0 < conf_level < 1.0:
        raise StatisticsError(f"conf_level must lie in (0, 1), got {conf_level}")
    d = a - b
    j = int(d.size)
    mean, sd = float(d.mean()), float(d.std(ddof=1))
    se = math.sqrt((1.0 / j + n_test / n_train) * sd**2)
    if se == 0.0:
        if mean != 0.0:
            raise ZeroVarianceError(
                f"every split gives the same difference {mean:g}: the t statistic is undefined"
            )
        t = 0.0
    else:
        t = mean / se
    df = j - 1
    crit = float(sps.t.ppf(0.5 + conf_level / 2.0, df))
    return CorrectedTTestResult(
        mean_difference=mean,
        sd_difference=sd,
        se=se,
        t=t,
        df=df,
        p_value=float(2.0 * sps.t.sf(abs(t), df)),
        ci_low=mean - crit * se,
        ci_high=mean + crit * se,
        conf_level=conf_level,
        n_splits=j,
        n_train=int(n_train),
        n_test=int(n_test),
    )
