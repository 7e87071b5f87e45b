"""DeLong, Mann–Whitney and repeated-split statistics against published and hand-computed values."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import norm, rankdata
from sklearn.metrics import roc_auc_score

from thyrocad.errors import StatisticsError, ZeroVarianceError
from thyrocad.evaluation.stats import (
    corrected_resampled_ttest,
    delong_auc,
    delong_covariance,
    delong_difference_in_differences,
    delong_paired_test,
    delong_unpaired_test,
    mann_whitney,
    roc_auc,
    summarize_splits,
)

# pROC's aSAH data in the reference folder beside the checkout (../shared/refdata).
ASAH = Path(__file__).resolve().parents[2] / "shared" / "refdata" / "proc" / "asah.csv"

TOL = 1e-9  # far tighter than the 6 decimals asked for; pROC's values carry 15 digits

# ---- R pROC's published values for its aSAH data (outcome Poor = case, higher = case) -------
# AUCs: xrobin/pROC tests/testthat/helper-roc-expected.R (commit 0a45042f),
#       expected.roc$<marker>$forward$`<`$auc.
PROC_AUC = {"s100b": 0.73136856368563685, "wfns": 0.82367886178861793, "ndka": 0.61195799457994582}
# DeLong variances: xrobin/pROC tests/testthat/test-var.R, "var with delong works".
PROC_VAR = {"wfns": 0.00146991470882363, "ndka": 0.0031908105493913, "s100b": 0.00266868245717244}
# DeLong covariances: xrobin/pROC tests/testthat/test-cov.R, "cov with delong works".
PROC_COV = {
    ("wfns", "ndka"): -0.000532967856762438,
    ("ndka", "s100b"): -0.000756164938056579,
    ("s100b", "wfns"): 0.00119615567376754,
}
# ci.auc(method = "delong") as (low, AUC, high):
#   ndka: xrobin/pROC tests/testthat/test-ci.auc.R, expected.ci.auc;
#   wfns: xrobin/pROC tests/testthat/r_ci.auc.R (commit 48c760c7), "# DeLong".
#   s100b: pROC publishes no 6-decimal DeLong CI; tested below from its published AUC and var.
PROC_CI = {
    "ndka": (0.501244999271703, 0.611957994579946, 0.722670989888189),
    "wfns": (0.748534887819453, 0.823678861788618, 0.898822835757783),
}
# roc.test(r1, r2) (DeLong, paired, two-sided): Z, p, conf.int of AUC1 - AUC2.
# xrobin/pROC tests/testthat/test-roc.test.R, "roc.test statistic and p are as expected with
# defaults" (t1, t2, t3).
PROC_PAIRED = {
    ("wfns", "s100b"): (
        2.20898359144091,
        0.0271757822291882,
        0.0104061769564846,
        0.174214419249478,
    ),
    ("wfns", "ndka"): (
        2.79777591868904,
        0.00514557970691098,
        0.0634011709339876,
        0.3600405634833566,
    ),
    ("ndka", "s100b"): (
        -1.39077002573558,
        0.164295175223054,
        -0.2876917446341914,
        0.0488706064228094,
    ),
}
# roc.test(r1, r2, paired = FALSE): D and p. Same file, "unpaired roc.test statistic and p are
# as expected" (t1up, t2up, t3up).
PROC_UNPAIRED = {
    ("wfns", "s100b"): (1.43490640926908, 0.152825378808796),
    ("wfns", "ndka"): (3.10125096778969, 0.00220950791756457),
    ("ndka", "s100b"): (-1.55995743389685, 0.120192832430845),
}


@pytest.fixture(scope="module")
def asah() -> tuple[np.ndarray, dict[str, np.ndarray]]:
    if not ASAH.is_file():
        pytest.skip(f"reference data {ASAH} is absent (../shared/refdata beside the checkout)")
    with ASAH.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    y = np.array([r["outcome"] == "Poor" for r in rows], dtype=int)
    markers = {k: np.array([float(r[k]) for r in rows]) for k in ("s100b", "wfns", "ndka")}
    assert (y.size, int(y.sum())) == (113, 41)
    return y, markers


# ---- pROC reference --------------------------------------------------------------------------


@pytest.mark.parametrize("marker", ["s100b", "wfns", "ndka"])
def test_auc_and_variance_match_proc(asah, marker):
    y, m = asah
    res = delong_auc(y, m[marker])
    assert res.auc == pytest.approx(PROC_AUC[marker], abs=TOL)
    assert res.variance == pytest.approx(PROC_VAR[marker], abs=TOL, rel=1e-9)
    assert (res.n_positive, res.n_negative, res.note) == (41, 72, "")


@pytest.mark.parametrize("marker", ["wfns", "ndka"])
def test_delong_ci_matches_proc(asah, marker):
    y, m = asah
    res = delong_auc(y, m[marker])
    low, auc, high = PROC_CI[marker]
    assert (res.ci_low, res.auc, res.ci_high) == pytest.approx((low, auc, high), abs=TOL)


def test_s100b_ci_follows_procs_published_auc_and_variance(asah):
    y, m = asah
    half = norm.ppf(0.975) * math.sqrt(PROC_VAR["s100b"])
    res = delong_auc(y, m["s100b"])
    assert res.ci_low == pytest.approx(PROC_AUC["s100b"] - half, abs=TOL)
    assert res.ci_high == pytest.approx(PROC_AUC["s100b"] + half, abs=TOL)


def test_covariances_match_proc(asah):
    y, m = asah
    for (a, b), expected in PROC_COV.items():
        _, cov = delong_covariance(y, m[a], m[b])
        assert cov[0, 1] == pytest.approx(expected, abs=TOL, rel=1e-9)
        assert cov[0, 1] == cov[1, 0]


@pytest.mark.parametrize(("a", "b"), list(PROC_PAIRED))
def test_paired_roc_test_matches_proc(asah, a, b):
    y, m = asah
    z, p, low, high = PROC_PAIRED[(a, b)]
    res = delong_paired_test(y, m[a], m[b])
    assert res.statistic == pytest.approx(z, abs=TOL)
    assert res.p_value == pytest.approx(p, abs=TOL)
    assert (res.ci_low, res.ci_high) == pytest.approx((low, high), abs=TOL)
    assert res.delta == pytest.approx(PROC_AUC[a] - PROC_AUC[b], abs=TOL)
    assert res.method == "delong-paired" and res.df is None
    swapped = delong_paired_test(y, m[b], m[a])  # sign flips, p does not (as in pROC's tests)
    assert swapped.statistic == pytest.approx(-z, abs=TOL)
    assert swapped.p_value == pytest.approx(p, abs=TOL)
    assert (swapped.ci_low, swapped.ci_high) == pytest.approx((-high, -low), abs=TOL)


@pytest.mark.parametrize(("a", "b"), list(PROC_PAIRED))
def test_difference_in_differences_reduces_to_procs_paired_test(asah, a, b):
    """(AUC(a) − AUC(c)) − (AUC(b) − AUC(c)) is AUC(a) − AUC(b): the contrast, through all four
    rows and columns of the covariance, must give pROC's paired z, p and CI."""
    y, m = asah
    [c] = {"s100b", "wfns", "ndka"} - {a, b}
    z, p, low, high = PROC_PAIRED[(a, b)]
    res = delong_difference_in_differences(y, m[a], m[c], m[b], m[c])
    assert res.delta == pytest.approx(PROC_AUC[a] - PROC_AUC[b], abs=TOL)
    assert res.statistic == pytest.approx(z, abs=TOL)
    assert res.p_value == pytest.approx(p, abs=TOL)
    assert (res.ci_low, res.ci_high) == pytest.approx((low, high), abs=TOL)
    assert res.method == "delong-contrast" and res.df is None


def test_difference_in_differences_se_agrees_with_a_bootstrap():
    """Four correlated scores on 300 cases: DeLong's contrast SE within 15 % of the SE of a
    stratified case bootstrap (2000 resamples), an estimate that shares no code with it."""
    rng = np.random.default_rng(5)
    y = np.r_[np.ones(150, dtype=int), np.zeros(150, dtype=int)]
    shared = rng.normal(size=300)
    scores = [y * shift + shared + rng.normal(scale=noise, size=300)
              for shift, noise in ((1.0, 1.0), (0.6, 1.0), (1.0, 1.5), (0.8, 0.7))]  # fmt: skip
    res = delong_difference_in_differences(y, *scores)
    idx = np.hstack([rng.choice(150, (2000, 150)), rng.choice(np.arange(150, 300), (2000, 150))])
    # the Mann-Whitney form of each resample's AUC: the first 150 cases are the positives
    a = [(rankdata(sc[idx], axis=1)[:, :150].sum(axis=1) - 150 * 151 / 2) / 150**2 for sc in scores]
    assert res.se == pytest.approx(np.std(a[0] - a[1] - a[2] + a[3], ddof=1), rel=0.15)
    auc = [roc_auc_score(y, sc) for sc in scores]
    assert res.delta == pytest.approx(auc[0] - auc[1] - auc[2] + auc[3], abs=1e-12)


@pytest.mark.parametrize(("a", "b"), list(PROC_UNPAIRED))
def test_unpaired_roc_test_matches_proc(asah, a, b):
    y, m = asah
    d, p = PROC_UNPAIRED[(a, b)]
    res = delong_unpaired_test(y, m[a], y, m[b])
    assert res.statistic == pytest.approx(d, abs=TOL)
    assert res.p_value == pytest.approx(p, abs=TOL)
    assert res.method == "delong-unpaired" and res.df > 100


# ---- hand-computed and brute-force checks ----------------------------------------------------


def test_delong_on_a_hand_computed_example():
    # positives .9, .4 beat 2 and 1 of the 2 negatives -> V10 = [1, .5];
    # negatives .6, .1 are beaten by 1 and 2 positives  -> V01 = [.5, 1].
    # AUC = 0.75; var = var(V10)/2 + var(V01)/2 = 0.125/2 + 0.125/2 = 0.125 (ddof = 1).
    res = delong_auc([1, 1, 0, 0], [0.9, 0.4, 0.6, 0.1])
    assert res.auc == 0.75
    assert res.variance == pytest.approx(0.125, abs=1e-15)
    assert res.ci_low == 0.75 - norm.ppf(0.975) * math.sqrt(0.125)
    assert res.ci_high == 1.0  # 0.75 + 0.693 clipped to 1, as pROC clips


def _brute_force(y, s):
    """O(m·n) DeLong from pairwise kernels, independent of the midrank algorithm."""
    pos, neg = s[y == 1], s[y == 0]
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    return psi.mean(), v10.var(ddof=1) / pos.size + v01.var(ddof=1) / neg.size


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_delong_equals_brute_force_with_heavy_ties(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 150)
    s = np.round(y * 0.7 + rng.normal(0, 1, 150), 0)  # few distinct values: many ties
    auc, var = _brute_force(y, s)
    res = delong_auc(y, s)
    assert res.auc == pytest.approx(auc, abs=1e-12)
    assert res.variance == pytest.approx(var, rel=1e-10)


# ---- properties ------------------------------------------------------------------------------

labelled_scores = st.integers(4, 60).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(0, 1), min_size=n, max_size=n).filter(
            lambda y: 2 <= sum(y) <= len(y) - 2
        ),
        st.lists(st.integers(-5, 5), min_size=n, max_size=n),  # 11 levels: heavy ties
        st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=n, max_size=n),
    )
)


@settings(max_examples=150, deadline=None)
@given(labelled_scores)
def test_auc_equals_sklearn(data):
    y, tied, cont = data
    for s in (tied, cont):
        assert delong_auc(y, s).auc == pytest.approx(roc_auc_score(y, s), abs=1e-12)
        assert roc_auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)


@settings(max_examples=80, deadline=None)
@given(labelled_scores)
def test_curve_against_itself_gives_z0_p1(data):
    y, tied, _ = data
    res = delong_paired_test(y, tied, tied)
    assert (res.delta, res.statistic, res.p_value) == (0.0, 0.0, 1.0)


@settings(max_examples=80, deadline=None)
@given(labelled_scores)
def test_reversed_scores_give_one_minus_auc(data):
    y, tied, cont = data
    for s in (tied, cont):
        fwd, rev = delong_auc(y, s), delong_auc(y, -np.asarray(s, dtype=float))
        assert rev.auc == pytest.approx(1.0 - fwd.auc, abs=1e-12)
        assert rev.variance == pytest.approx(fwd.variance, abs=1e-15, rel=1e-9)


@settings(max_examples=80, deadline=None)
@given(labelled_scores)
def test_variance_invariant_to_strictly_monotone_maps(data):
    y, tied, _ = data
    s = np.asarray(tied, dtype=float)
    base = delong_auc(y, s)
    for f in (np.exp, lambda v: v**3 + 2 * v, lambda v: 1 / (1 + np.exp(-v)), np.arctan):
        res = delong_auc(y, f(s))
        assert res.auc == pytest.approx(base.auc, abs=1e-12)
        assert res.variance == pytest.approx(base.variance, abs=1e-15, rel=1e-9)


# ---- degenerate cases and bad input ----------------------------------------------------------


def test_perfect_separation_is_reported_not_hidden():
    y = [0, 0, 0, 1, 1, 1]
    perfect = [0.1, 0.2, 0.3, 0.7, 0.8, 0.9]
    res = delong_auc(y, perfect)
    assert (res.auc, res.variance, res.ci_low, res.ci_high) == (1.0, 0.0, 1.0, 1.0)
    assert "zero DeLong variance" in res.note
    same = delong_paired_test(y, perfect, [1, 2, 3, 4, 5, 6])  # both perfect: ΔAUC = 0
    assert (same.statistic, same.p_value) == (0.0, 1.0) and "zero variance" in same.note
    with pytest.raises(ZeroVarianceError, match="standard error of the difference is 0"):
        delong_paired_test(y, perfect, [0.5] * 6)  # perfect vs constant: 1.0 vs 0.5


@pytest.mark.parametrize(
    ("y", "s", "match"),
    [
        ([1, 1, 1, 1], [0.1, 0.2, 0.3, 0.4], "at least 2 positives and 2 negatives"),
        ([1, 0, 0, 0], [0.1, 0.2, 0.3, 0.4], "at least 2 positives and 2 negatives"),
        ([1, 2, 0, 0], [0.1, 0.2, 0.3, 0.4], "labels must be 0"),
        ([1, 1, 0, 0], [0.1, 0.2, 0.3], "one value per label"),
        ([1, 1, 0, 0], [0.1, np.nan, 0.3, 0.4], "NaN/infinite"),
        ([1, 1, 0, 0], [0.1, np.inf, 0.3, 0.4], "NaN/infinite"),
        ([], [], "non-empty"),
    ],
)
def test_bad_input_raises_statistics_error(y, s, match):
    with pytest.raises(StatisticsError, match=match):
        delong_auc(y, s)


def test_roc_auc_refuses_one_class_and_bad_conf_level():
    with pytest.raises(StatisticsError, match="only one class"):
        roc_auc([0, 0, 0], [0.1, 0.2, 0.3])
    with pytest.raises(StatisticsError, match="conf_level"):
        delong_auc([1, 1, 0, 0], [0.9, 0.4, 0.6, 0.1], conf_level=95)


# ---- Mann–Whitney U --------------------------------------------------------------------------

# SciPy's documented example (scipy.stats.mannwhitneyu docstring, SciPy 1.17; after Shier 2004):
# diagnosis ages; U1 = 17, exact two-sided p = 0.1111111111111111, asymptotic (continuity
# corrected) p = 0.11134688653314041.
MALES, FEMALES = [19, 22, 16, 29, 24], [20, 11, 17, 12]


def test_mann_whitney_reproduces_scipy_documented_example():
    exact = mann_whitney(MALES, FEMALES)
    assert (exact.u, exact.method, exact.has_ties) == (17.0, "exact", False)
    assert exact.p_value == pytest.approx(0.1111111111111111, abs=1e-15)
    asym = mann_whitney(MALES, FEMALES, method="asymptotic")
    assert asym.p_value == pytest.approx(0.11134688653314041, abs=1e-15)
    perm = mann_whitney(MALES, FEMALES, method="permutation")  # 126 splits: enumerated exactly
    assert perm.p_value == pytest.approx(1 / 9, abs=1e-12) and perm.method == "permutation"


def test_mann_whitney_with_ties_uses_tie_corrected_normal_approximation():
    x = [0.81, 0.83, 0.83, 0.85, 0.85, 0.87]
    y = [0.79, 0.81, 0.81, 0.83, 0.80, 0.78]
    res = mann_whitney(x, y)
    assert (res.method, res.has_ties, res.n_x, res.n_y) == ("asymptotic", True, 6, 6)
    # By hand: pooled midranks .81 -> 5, .83 -> 8, .85 -> 10.5, .87 -> 12, so
    # R_x = 5 + 8 + 8 + 10.5 + 10.5 + 12 = 54 and U = 54 - 6·7/2 = 33.
    # Tie groups: 0.81 x3, 0.83 x3, 0.85 x2 -> sum(t^3 - t) = 24 + 24 + 6 = 54.
    # var U = n1 n2 / 12 * ((N + 1) - 54 / (N (N - 1))) = 3 * (13 - 54 / 132).
    u, var = 33.0, 3 * (13 - 54 / 132)
    p = 2 * norm.sf((u - 18 - 0.5) / math.sqrt(var))
    assert res.u == u
    assert res.p_value == pytest.approx(p, abs=1e-12)
    with pytest.raises(StatisticsError, match="assumes no ties"):
        mann_whitney(x, y, method="exact")


def test_mann_whitney_large_samples_go_asymptotic_and_bad_method_raises():
    rng = np.random.default_rng(3)
    res = mann_whitney(rng.normal(size=12), rng.normal(size=9))
    assert res.method == "asymptotic" and not res.has_ties
    with pytest.raises(StatisticsError, match="method must be one of"):
        mann_whitney(MALES, FEMALES, method="wilcox")
    with pytest.raises(StatisticsError, match="NaN"):
        mann_whitney([1.0, np.nan], [2.0, 3.0])


# ---- repeated random splits ------------------------------------------------------------------


def test_summarize_splits_by_hand():
    s = summarize_splits([0.80, 0.90, 0.85])
    assert (s.n_splits, s.minimum, s.maximum) == (3, 0.80, 0.90)
    assert (s.mean, s.sd, s.median) == pytest.approx((0.85, 0.05, 0.85), abs=1e-12)
    with pytest.raises(StatisticsError, match="at least 2 splits"):
        summarize_splits([0.8])


def test_corrected_resampled_ttest_by_hand():
    # d = a - b = [.02, .04, .03, .05, .01]: mean .03, var(ddof=1) = .001/4 = .00025.
    # J = 5, n_test/n_train = 20/80: se = sqrt((1/5 + 1/4) * .00025) = sqrt(.0001125),
    # t = .03 / se = 2·sqrt(2), df = 4.
    # Student t with 4 df in closed form: F(t) = 1/2 + (3/8)·u·(1 − u²/12), u = t/sqrt(1 + t²/4)
    # -> u = sqrt(8/3), p = 2·(1 − F) = 1 − (3/4)·sqrt(8/3)·(7/9) = 0.047421 (to 6 dp).
    b = np.array([0.80, 0.82, 0.78, 0.81, 0.79])
    a = b + np.array([0.02, 0.04, 0.03, 0.05, 0.01])
    res = corrected_resampled_ttest(a, b, n_train=80, n_test=20)
    assert res.mean_difference == pytest.approx(0.03, abs=1e-12)
    assert res.se == pytest.approx(math.sqrt(0.0001125), rel=1e-9)
    assert res.t == pytest.approx(2 * math.sqrt(2), rel=1e-9)
    assert res.df == 4
    assert res.p_value == pytest.approx(1 - 0.75 * math.sqrt(8 / 3) * 7 / 9, abs=1e-9)
    assert res.p_value == pytest.approx(0.047421, abs=1e-6)
    t_975_4 = 2.776445  # Student t table, 4 df, 97.5 %
    assert (res.ci_low, res.ci_high) == pytest.approx(
        (0.03 - t_975_4 * res.se, 0.03 + t_975_4 * res.se), abs=1e-7
    )
    naive_se = math.sqrt(0.00025 / 5)  # the uncorrected paired t-test is over-confident
    assert res.se > naive_se


def test_corrected_ttest_degenerate_and_bad_input():
    same = corrected_resampled_ttest([0.8, 0.9], [0.8, 0.9], n_train=30, n_test=10)
    assert (same.t, same.p_value) == (0.0, 1.0)
    with pytest.raises(ZeroVarianceError, match="same difference"):
        corrected_resampled_ttest([1.0, 0.5], [0.75, 0.25], n_train=30, n_test=10)
    with pytest.raises(StatisticsError, match="one value per split"):
        corrected_resampled_ttest([0.9, 0.8, 0.7], [0.8, 0.7], n_train=30, n_test=10)
    with pytest.raises(StatisticsError, match="positive"):
        corrected_resampled_ttest([0.9, 0.8], [0.8, 0.6], n_train=0, n_test=10)


def test_label_codings_are_equivalent_and_text_labels_refused():
    s = [0.9, 0.4, 0.6, 0.1]
    for y in ([1, 1, 0, 0], [True, True, False, False], [1.0, 1.0, 0.0, 0.0]):
        assert roc_auc(y, s) == 0.75
    with pytest.raises(StatisticsError, match="labels must be 0"):
        roc_auc(["Poor", "Poor", "Good", "Good"], s)


def test_auc_below_half_is_logged_in_a_paired_test(caplog):
    y = [1, 1, 0, 0]
    res = delong_paired_test(y, [0.9, 0.4, 0.6, 0.1], [0.1, 0.6, 0.4, 0.9])
    assert res.auc2 == 0.25 and "rise toward label 1" in caplog.text


def test_mann_whitney_on_identical_per_split_values_gives_p_one():
    # e.g. specificity 25/25 on every split for both models, as in the paper's Table 4
    res = mann_whitney([1.0] * 10, [1.0] * 10)
    assert (res.u, res.p_value, res.method) == (50.0, 1.0, "asymptotic")
