"""thyrocad.evaluation.validation against independent computations: Wilson intervals against
statsmodels and Newcombe's (1998) worked examples, calibration against statsmodels' GLM with
an offset, and the Brier score by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special

from thyrocad.errors import StatisticsError
from thyrocad.evaluation.validation import (
    brier_score,
    calibration,
    labelled_metrics,
    wilson_interval,
)

sm = pytest.importorskip("statsmodels.api")
proportion_confint = pytest.importorskip("statsmodels.stats.proportion").proportion_confint


@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    # Newcombe RG (1998) Stat Med 17:857-872, Table I, method 3 (Wilson score, no continuity
    # correction), examples (a)-(d): 81/263, 15/148, 0/20, 1/29
    [(81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611),
     (1, 29, 0.0061, 0.1718)],
)  # fmt: skip
def test_wilson_matches_newcombe_1998(k, n, low, high):
    got = wilson_interval(k, n)
    assert got == pytest.approx((low, high), abs=5e-5)


@pytest.mark.parametrize(("k", "n"), [(0, 5), (5, 5), (24, 25), (86, 86), (37, 111), (1, 2)])
def test_wilson_matches_statsmodels(k, n):
    ref = proportion_confint(k, n, alpha=0.05, method="wilson")
    assert wilson_interval(k, n) == pytest.approx(ref, abs=1e-12)
    ref90 = proportion_confint(k, n, alpha=0.10, method="wilson")
    assert wilson_interval(k, n, level=0.90) == pytest.approx(ref90, abs=1e-12)


def test_wilson_of_nothing_is_nan():
    assert all(math.isnan(v) for v in wilson_interval(0, 0))


def _sample(n: int, seed: int, a: float, b: float) -> tuple[np.ndarray, np.ndarray]:
    """Predictions p and labels drawn from logit P(y) = a + b logit(p)."""
    rng = np.random.default_rng(seed)
    p = special.expit(rng.normal(0.5, 1.5, n))
    y = (rng.random(n) < special.expit(a + b * special.logit(p))).astype(int)
    return y, p


def test_calibration_matches_statsmodels_glm():
    y, p = _sample(400, 1, 0.3, 0.6)
    lp = special.logit(p)
    slope = sm.GLM(y, sm.add_constant(lp), family=sm.families.Binomial()).fit().params[1]
    citl = sm.GLM(y, np.ones((y.size, 1)), family=sm.families.Binomial(), offset=lp).fit()
    got = calibration(y, p)
    assert got["slope"] == pytest.approx(slope, abs=1e-6)
    assert got["intercept"] == pytest.approx(citl.params[0], abs=1e-6)


def test_a_calibrated_model_has_intercept_0_and_slope_1():
    y, p = _sample(20000, 2, 0.0, 1.0)
    got = calibration(y, p)
    assert got["intercept"] == pytest.approx(0.0, abs=0.05)
    assert got["slope"] == pytest.approx(1.0, abs=0.05)
    overconfident = special.expit(3 * special.logit(p))  # too extreme: slope about 1/3
    assert calibration(y, overconfident)["slope"] == pytest.approx(1 / 3, abs=0.03)


def test_brier_by_hand_and_one_class_calibration_refused():
    assert brier_score([1, 0, 1], [0.9, 0.2, 0.4]) == pytest.approx((0.01 + 0.04 + 0.36) / 3)
    with pytest.raises(StatisticsError, match="both classes"):
        calibration([1, 1], [0.2, 0.9])


def test_labelled_metrics_counts_and_intervals():
    y = [1] * 8 + [0] * 4
    p = [0.9, 0.8, 0.7, 0.6, 0.55, 0.4, 0.3, 0.2, 0.6, 0.3, 0.2, 0.1]
    m = labelled_metrics(y, p, 0.5)
    assert m["counts"] == {"tp": 5, "fn": 3, "fp": 1, "tn": 3}
    assert m["sen"]["value"] == 5 / 8 and m["sen"]["n"] == 8
    assert (m["sen"]["ci_low"], m["sen"]["ci_high"]) == pytest.approx(
        proportion_confint(5, 8, method="wilson")
    )
    assert m["spe"]["successes"] == 3 and m["spe"]["n"] == 4
    assert m["ppv"]["n"] == 6 and m["npv"]["n"] == 6
    assert m["auc"]["ci_low"] <= m["auc"]["value"] <= m["auc"]["ci_high"]
    assert m["n_residual"] == 8 and m["n_non_residual"] == 4
    one_class = labelled_metrics([1, 1, 1], [0.2, 0.6, 0.9], 0.5)
    assert math.isnan(one_class["spe"]["value"]) and "calibration" in one_class["undefined"]
