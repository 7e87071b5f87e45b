"""thyrocad.decision: view usability, view fusion (one patient and many), threshold choice,
label and score checks: the one rule shared by the experiment, training and diagnosis."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_curve

from thyrocad.decision import (
    FELL_BACK_TO_MEAN,
    UNUSABLE_FLAGS,
    VIEW_FUSIONS,
    ThresholdChoice,
    as_binary_labels,
    as_scores,
    check_fusion,
    choose_threshold,
    fuse,
    fuse_by_patient,
    view_usable,
)
from thyrocad.errors import ConfigError, StatisticsError
from thyrocad.evaluation.metrics import binary_metrics
from thyrocad.preprocess import Flag

# ---- view usability ----------------------------------------------------------------------------


def test_blank_and_flat_views_are_unusable_and_other_flags_are_not():
    assert {Flag.BLANK.value, Flag.FLAT.value} == UNUSABLE_FLAGS
    assert view_usable(())
    assert view_usable([f.value for f in Flag if f.value not in UNUSABLE_FLAGS])
    for flag in UNUSABLE_FLAGS:
        assert not view_usable([flag])
        assert not view_usable(["no_spacing", flag])


# ---- view fusion -------------------------------------------------------------------------------


def test_fusion_rules_for_one_patient():
    prob, views = [0.2, 0.6], ["anterior", "posterior"]
    assert fuse(prob, views, "mean") == (pytest.approx(0.4), ())
    assert fuse(prob, views, "max") == (0.6, ())
    assert fuse(prob, views, "anterior") == (0.2, ())
    assert fuse(prob, views, "posterior") == (0.6, ())
    assert fuse([0.7], ["unknown"], "mean") == (0.7, ())


@pytest.mark.parametrize(
    ("views", "fusion"),
    [
        (["anterior", "anterior"], "anterior"),  # two views of that name
        (["posterior", "unknown"], "anterior"),  # none of that name
        (["unknown"], "posterior"),  # an export without a view
    ],
)
def test_named_view_fusion_falls_back_to_the_mean_with_a_flag(views, fusion):
    prob = [0.2, 0.8][: len(views)]
    fused, flags = fuse(prob, views, fusion)
    assert fused == pytest.approx(float(np.mean(prob)))
    assert flags == (FELL_BACK_TO_MEAN,)


def test_fusion_needs_a_view_and_a_known_rule():
    with pytest.raises(ValueError, match="at least one usable view"):
        fuse([], [], "mean")
    with pytest.raises(ConfigError, match="view fusion must be one of"):
        check_fusion("median")
    assert [check_fusion(f) for f in VIEW_FUSIONS] == list(VIEW_FUSIONS)


def test_fusion_of_many_patients():
    prob = np.array([0.2, 0.6, 0.9, 0.1])
    patient = np.array([0, 0, 1, 1])
    views = ["anterior", "posterior", "posterior", "anterior"]
    usable = np.ones(4, bool)
    expected = {"mean": [0.4, 0.5], "max": [0.6, 0.9], "anterior": [0.2, 0.1],
                "posterior": [0.6, 0.9]}  # fmt: skip
    for fusion, values in expected.items():
        scored, fused, unscored = fuse_by_patient(prob, patient, views, usable, fusion)
        assert scored.tolist() == [0, 1] and unscored.tolist() == []
        assert fused.tolist() == pytest.approx(values), fusion


def test_fusion_of_many_patients_leaves_out_unusable_views_and_unscorable_patients():
    # patient 3 has views 0-1, patient 1 views 2-3 (order of rows need not be patient order),
    # patient 2 only an unusable view
    prob = np.array([0.2, np.nan, 0.9, 0.3, np.nan])
    patient = np.array([3, 3, 1, 1, 2])
    views = ["anterior", "posterior", "anterior", "posterior", "anterior"]
    usable = np.array([True, False, True, True, False])
    scored, fused, unscored = fuse_by_patient(prob, patient, views, usable, "mean")
    assert scored.tolist() == [1, 3]  # ascending patient index
    assert fused.tolist() == pytest.approx([0.6, 0.2])  # patient 3: its one usable view
    assert unscored.tolist() == [2]
    # the posterior view of patient 3 is unusable: its posterior fusion falls back to the mean
    # of its usable views (the anterior alone)
    _, fused, _ = fuse_by_patient(prob, patient, views, usable, "posterior")
    assert fused.tolist() == pytest.approx([0.3, 0.2])
    assert fuse([0.2], ["anterior"], "posterior") == (0.2, (FELL_BACK_TO_MEAN,))


def test_fusion_with_no_usable_view_at_all_scores_nobody():
    scored, fused, unscored = fuse_by_patient(
        [np.nan, np.nan], [0, 1], ["anterior", "anterior"], [False, False], "mean"
    )
    assert scored.size == 0 and fused.size == 0 and unscored.tolist() == [0, 1]


# ---- labels and scores -------------------------------------------------------------------------


def test_labels_and_scores_are_checked():
    assert as_binary_labels([1, 0, 1.0]).tolist() == [True, False, True]
    assert as_binary_labels(np.array([True, False])).dtype == bool
    with pytest.raises(StatisticsError, match="labels must be 0"):
        as_binary_labels([0, 2])
    with pytest.raises(StatisticsError, match="non-empty 1-D"):
        as_binary_labels([])
    assert as_scores([0.1, 1], 2).dtype == np.float64
    with pytest.raises(StatisticsError, match="one value per label"):
        as_scores([0.1], 2)
    with pytest.raises(StatisticsError, match="NaN/infinite"):
        as_scores([0.1, np.inf], 2)


# ---- threshold choice --------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(
    st.integers(2, 50).flatmap(
        lambda n: st.tuples(
            st.lists(st.integers(0, 1), min_size=n, max_size=n).filter(lambda y: 0 < sum(y) < n),
            st.lists(st.integers(0, 20).map(lambda k: k / 20), min_size=n, max_size=n),
        )
    )
)
def test_youden_matches_sklearn_roc_curve_and_reproduces(data):
    y, prob = data
    choice = choose_threshold(y, prob, rule="youden")
    fpr, tpr, _ = roc_curve(y, prob)
    assert choice.sensitivity + choice.specificity - 1 == pytest.approx(
        np.max(tpr - fpr), abs=1e-12
    )
    again = binary_metrics(y, prob, choice.threshold)
    assert (again["sen"], again["spe"]) == pytest.approx(
        (choice.sensitivity, choice.specificity), abs=1e-12
    )


def test_youden_tie_goes_to_higher_sensitivity():
    # Candidates .1, .15, .25, .35 give J = 0, .5, 0, .5: the tie .15 / .35 goes to .15 (sen 1).
    choice = choose_threshold([0, 1, 0, 1], [0.1, 0.2, 0.3, 0.4])
    assert (choice.threshold, choice.sensitivity, choice.specificity) == pytest.approx(
        (0.15, 1, 0.5)
    )
    assert choice.rule == "youden" and choice.target is None


def test_sensitivity_rule_takes_the_most_specific_threshold_reaching_target():
    y = [0, 0, 0, 0, 1, 0, 1, 1, 1, 1]
    prob = [0.05, 0.1, 0.2, 0.3, 0.35, 0.4, 0.6, 0.7, 0.8, 0.9]
    c = choose_threshold(y, prob, rule="sensitivity", target=0.8)
    # sen >= .8 needs 4 of 5 positives called: threshold (.4 + .6)/2 = .5 calls .6-.9 (sen .8,
    # spe 5/5); .35 is then left out.
    assert (c.threshold, c.sensitivity, c.specificity, c.target) == (0.5, 0.8, 1.0, 0.8)
    c = choose_threshold(y, prob, rule="sensitivity", target=0.95)
    # all 5 positives: threshold (.3 + .35)/2 = .325 (spe 4/5)
    assert (c.threshold, c.sensitivity, c.specificity) == pytest.approx((0.325, 1.0, 0.8))


def test_choose_threshold_refuses_bad_input():
    with pytest.raises(StatisticsError, match="both classes"):
        choose_threshold([1, 1], [0.2, 0.3])
    with pytest.raises(ConfigError, match="rule must be"):
        choose_threshold([1, 0], [0.2, 0.3], rule="f1")
    with pytest.raises(ConfigError, match="target sensitivity"):
        choose_threshold([1, 0], [0.2, 0.3], rule="sensitivity", target=0.0)


def test_threshold_choice_is_a_plain_record():
    choice = choose_threshold([0, 1], [0.2, 0.8])
    assert choice == ThresholdChoice(0.5, 1.0, 1.0, "youden", None)


# ---- operating points ----------------------------------------------------------------------------


def test_operating_points_parse_into_their_rules():
    from thyrocad.decision import parse_operating_point

    assert parse_operating_point("argmax").source == "argmax"
    oof = parse_operating_point("oof-youden")
    assert (oof.source, oof.rule, oof.needs_oof, oof.optimistic) == (
        "out_of_fold", "youden", True, False,
    )  # fmt: skip
    sens = parse_operating_point("oof-sensitivity:0.95")
    assert (sens.rule, sens.target, sens.text) == ("sensitivity", 0.95, "oof-sensitivity:0.95")
    assert parse_operating_point("train-youden").optimistic
    assert "optimistic" in parse_operating_point("train-youden").describe()
    assert "5-fold" in oof.describe(5)
    for bad in ("youden", "oof-sensitivity:1.5", "oof-sensitivity:x", ""):
        with pytest.raises(ConfigError, match="operating point must be one of"):
            parse_operating_point(bad)


def test_threshold_sources_are_described_and_training_is_called_optimistic():
    from thyrocad.decision import describe_source

    texts = {source: describe_source(source) for source in ("argmax", "out_of_fold", "training")}
    assert [s for s, text in texts.items() if "optimistic" in text] == ["training"]
    assert "out-of-fold" in texts["out_of_fold"] and "argmax" in texts["argmax"]


def test_youden_on_separated_training_scores_is_the_middle_of_the_gap():
    """A memorised training set: every J = 1 threshold lies between the highest negative and
    the lowest positive, and the only candidate there is their midpoint, wherever the gap is."""
    y = np.array([0, 0, 0, 1, 1, 1])
    for negatives, positives in (((0.001, 0.01, 0.012), (0.998, 0.999, 1.0)),
                                 ((0.001, 0.002, 0.004), (0.3, 0.9, 0.99))):  # fmt: skip
        choice = choose_threshold(y, np.array([*negatives, *positives]))
        assert choice.threshold == pytest.approx((max(negatives) + min(positives)) / 2)
        assert (choice.sensitivity, choice.specificity) == (1.0, 1.0)


def test_operating_threshold_uses_the_data_its_rule_names():
    from thyrocad.decision import ARGMAX_THRESHOLD, operating_threshold, parse_operating_point

    y = np.array([1, 1, 1, 0, 0, 0])
    memorised = np.array([0.99, 0.98, 0.97, 0.02, 0.01, 0.03])  # the model's own training data
    oof = np.array([0.9, 0.6, 0.4, 0.5, 0.1, 0.2])  # the same patients, held out
    arg = operating_threshold(parse_operating_point("argmax"), y, memorised, oof)
    assert (arg.threshold, arg.sensitivity, arg.specificity) == (ARGMAX_THRESHOLD, 1.0, 1.0)
    train = operating_threshold(parse_operating_point("train-youden"), y, memorised, oof)
    assert train == choose_threshold(y, memorised)
    held = operating_threshold(parse_operating_point("oof-youden"), y, memorised, oof)
    assert held == choose_threshold(y, oof)
    assert held.sensitivity < 1.0 or held.specificity < 1.0  # out-of-fold is honest
    with pytest.raises(ValueError, match="out-of-fold"):
        operating_threshold(parse_operating_point("oof-youden"), y, memorised)


def test_indeterminate_band_contains_the_threshold_and_widens_with_overlap():
    from thyrocad.decision import indeterminate_band, parse_operating_point

    rule = parse_operating_point("oof-youden")
    rng = np.random.default_rng(0)
    y = np.r_[np.ones(60), np.zeros(30)].astype(int)
    apart = np.r_[rng.normal(0.8, 0.05, 60), rng.normal(0.2, 0.05, 30)]
    overlap = np.r_[rng.normal(0.6, 0.15, 60), rng.normal(0.4, 0.15, 30)]
    t = choose_threshold(y, overlap).threshold
    low, high = indeterminate_band(y, overlap, rule, resamples=200)
    assert low <= t <= high
    narrow = indeterminate_band(y, apart, rule, resamples=200)
    assert narrow[1] - narrow[0] < high - low
    assert indeterminate_band(y, overlap, rule, resamples=200) == (low, high)  # seeded


def test_stratified_folds_keep_both_classes_and_cover_every_patient_once():
    from thyrocad.data.splits import distinct_splits, per_class_test_counts, stratified_folds

    labels = [1] * 12 + [0] * 7
    folds = stratified_folds(labels, 5, seed=3)
    assert len(folds) == 5
    assert sorted(np.concatenate(folds).tolist()) == list(range(19))
    assert all({labels[i] for i in f} == {0, 1} for f in folds)
    assert len(stratified_folds([1, 1, 1, 0, 0], 5, seed=0)) == 2  # lowered to the smaller class
    with pytest.raises(ConfigError, match="at least 2 training patients"):
        stratified_folds([1, 1, 0], 5, seed=0)
    assert per_class_test_counts(labels, 0.25) == {0: (7, 1), 1: (12, 3)}
    assert distinct_splits(labels, 0.25) == 7 * 220  # C(7,1) * C(12,3)
