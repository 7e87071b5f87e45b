"""Per-run metrics, cross-checked against scikit-learn (threshold choice: test_decision.py)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from thyrocad.errors import StatisticsError
from thyrocad.evaluation.metrics import binary_metrics

NAN = float("nan")


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, abs=1e-12)


def _sklearn_view(y, prob, threshold):
    """The same quantities from scikit-learn (zero_division=nan, like ours)."""
    pred = (np.asarray(prob) >= threshold).astype(int)
    tn, fp, fn, tp = confusion_matrix(y, pred, labels=[0, 1]).ravel()
    kw = {"zero_division": np.nan}
    out = {
        "tp": tp,
        "fp": fp,
        "tn": tn,
        "fn": fn,
        "acc": accuracy_score(y, pred),
        "sen": recall_score(y, pred, pos_label=1, labels=[0, 1], **kw),
        "spe": recall_score(y, pred, pos_label=0, labels=[0, 1], **kw),
        "ppv": precision_score(y, pred, pos_label=1, labels=[0, 1], **kw),
        "npv": precision_score(y, pred, pos_label=0, labels=[0, 1], **kw),
        "f1": f1_score(y, pred, pos_label=1, labels=[0, 1], **kw),
        "auc": roc_auc_score(y, prob) if 0 < sum(y) < len(y) else NAN,
    }
    if 0 < sum(y) < len(y):
        out["bal_acc"] = balanced_accuracy_score(y, pred)
    return out


runs = st.integers(1, 40).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(0, 1), min_size=n, max_size=n),
        st.lists(
            st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.5, 0.75, 0.9, 1.0]), min_size=n, max_size=n
        ),
        st.sampled_from([0.0, 0.1, 0.3, 0.5, 0.75, 1.0, 1.01]),
    )
)


@settings(max_examples=120, deadline=None)
@given(runs)
def test_binary_metrics_match_sklearn(run):
    y, prob, threshold = run
    ours = binary_metrics(y, prob, threshold)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns on the zero divisions we compare
        ref = _sklearn_view(y, prob, threshold)
    for key, value in ref.items():
        assert _same(float(ours[key]), float(value)), (key, ours[key], value)
    for key in ("acc", "bal_acc", "sen", "spe", "ppv", "npv", "f1", "auc"):
        assert math.isnan(ours[key]) == (key in ours["undefined"]), key


def test_counts_and_values_by_hand():
    y = [1, 1, 1, 0, 0, 0, 0]
    prob = [0.9, 0.6, 0.2, 0.6, 0.3, 0.1, 0.05]
    m = binary_metrics(y, prob, 0.5)
    assert (m["tp"], m["fn"], m["fp"], m["tn"]) == (2, 1, 1, 3)
    assert (m["sen"], m["spe"], m["ppv"], m["npv"]) == pytest.approx((2 / 3, 3 / 4, 2 / 3, 3 / 4))
    assert m["f1"] == pytest.approx(4 / 6)
    assert m["acc"] == pytest.approx(5 / 7)
    assert m["auc"] == pytest.approx(roc_auc_score(y, prob))
    assert m["undefined"] == {} and m["threshold"] == 0.5


def test_score_equal_to_threshold_is_positive():
    m = binary_metrics([1, 0], [0.5, 0.4], 0.5)
    assert (m["tp"], m["fp"]) == (1, 0)


def test_zero_denominators_give_nan_with_reasons():
    only_pos = binary_metrics([1, 1, 1], [0.2, 0.6, 0.9], 0.5)
    assert math.isnan(only_pos["spe"]) and "TN + FP = 0" in only_pos["undefined"]["spe"]
    assert math.isnan(only_pos["auc"]) and "one class" in only_pos["undefined"]["auc"]
    assert math.isnan(only_pos["bal_acc"]) and only_pos["sen"] == pytest.approx(2 / 3)

    nothing_called = binary_metrics([1, 0, 0], [0.2, 0.1, 0.3], 0.9)
    assert math.isnan(nothing_called["ppv"]) and "TP + FP = 0" in nothing_called["undefined"]["ppv"]
    assert nothing_called["f1"] == 0.0  # 2TP + FP + FN = 1: defined, and zero

    only_neg = binary_metrics([0, 0], [0.2, 0.1], 0.9)
    assert math.isnan(only_neg["f1"]) and "TP = FP = FN = 0" in only_neg["undefined"]["f1"]
    assert math.isnan(only_neg["sen"]) and only_neg["spe"] == 1.0 and only_neg["acc"] == 1.0


@pytest.mark.parametrize(
    ("y", "prob", "threshold", "match"),
    [
        ([1, 0], [0.5], 0.5, "one value per label"),
        ([1, 0], [0.5, np.nan], 0.5, "NaN/infinite"),
        ([1, 3], [0.5, 0.2], 0.5, "labels must be 0"),
        ([1, 0], [0.5, 0.2], np.nan, "threshold must be a finite"),
    ],
)
def test_bad_metric_input_raises(y, prob, threshold, match):
    with pytest.raises(StatisticsError, match=match):
        binary_metrics(y, prob, threshold)
