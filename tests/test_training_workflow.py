"""thyrocad.training.workflow: a labelled cohort to a bundle, as `thyrocad train` makes it.

(The CLI end to end: test_training_cli.py; the session's test bundles are made by
`train_bundle` too, see conftest.py.)"""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest

import dicom_factory as factory
from fixture_settings import tiny_train_config
from thyrocad.bundle.format import load_bundle
from thyrocad.data.cohort import load_cohort
from thyrocad.decision import fuse_by_patient
from thyrocad.evaluation.metrics import binary_metrics
from thyrocad.io.read import read_study
from thyrocad.models import architecture
from thyrocad.preprocess import preset
from thyrocad.study import View
from thyrocad.training.workflow import FUSION, cohort_train_data, pipeline_for, train_bundle

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def cohort_with_a_blank_view(tmp_path_factory, inference_cohort, inference_files):
    """The 4-patient phantom cohort plus a residual patient whose posterior view is blank."""
    root = tmp_path_factory.mktemp("workflow") / "cohort"
    shutil.copytree(inference_cohort, root)
    study = read_study(inference_files[2])
    frames = [study.image(View.ANTERIOR).astype(np.uint16), np.zeros((256, 256), np.uint16)]
    codes = [factory.view_code(View.ANTERIOR), factory.view_code(View.POSTERIOR)]
    ds = factory.nm_dataset(frames, codes, pixel_spacing=study.pixel_spacing_mm)
    factory.write_dicom(ds, root / "images" / "blank.dcm")
    with (root / "labels.csv").open("a") as fh:
        fh.write("images/blank.dcm,residual,PH0099" + "," * 11 + "\n")
    return root


def test_blank_views_are_left_out_of_the_training_data(cohort_with_a_blank_view):
    cohort = load_cohort(cohort_with_a_blank_view, read=False)
    pipeline = pipeline_for("resnet18", preset("default"))
    prepared = cohort_train_data(cohort, pipeline)
    assert prepared.n_unusable == 1
    assert len(prepared.data) == len(prepared.views) == 9
    rows = [i for i, g in enumerate(prepared.data.groups) if g == "PH0099"]
    assert [prepared.views[i] for i in rows] == ["anterior"]
    assert prepared.data.y.tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 1]  # each view: its patient's


def test_pipeline_for_uses_the_backbone_normalisation():
    spec = architecture("efficientnet_lite0").spec
    pipeline = pipeline_for("efficientnet_lite0", preset("paper"))
    assert pipeline.config.output.mean == tuple(spec.mean) == (0.5, 0.5, 0.5)
    assert pipeline.config.grabcut == preset("paper").grabcut  # the rest as given


def test_train_bundle_writes_what_it_trained(cohort_with_a_blank_view, tmp_path):
    config = tiny_train_config("squeezenet1_1", 2)
    made = train_bundle(cohort_with_a_blank_view, config, tmp_path / "bundle", extra={"x": 1})
    manifest = json.loads((tmp_path / "bundle" / "bundle.json").read_text())
    assert (made.n_train_views, made.n_val_views, made.n_unusable_views) == (9, 0, 1)
    assert manifest["cohort"] == {"n_patients": 5, "n_train_views": 9, "n_unusable_views": 1}
    assert manifest["data_hash"] == load_cohort(cohort_with_a_blank_view, read=False).data_hash()
    assert manifest["train_class_counts"] == {"non_residual": 4, "residual": 5}
    assert manifest["x"] == 1 and manifest["mode"] == "head"
    assert manifest["threshold"] == made.threshold.to_manifest()
    assert not (tmp_path / "bundle" / "checkpoint").exists()
    _, info = load_bundle(made.path)
    assert info.threshold == made.threshold and info.fusion == FUSION == "mean"
    # the threshold's training sensitivity/specificity are those of the training patients'
    # view-fused probabilities at that threshold (train_prob: one per training image, in order)
    prepared = cohort_train_data(
        load_cohort(cohort_with_a_blank_view, read=False),
        pipeline_for(config.model, preset("default")),
    )
    _, index = np.unique(np.asarray(prepared.data.groups), return_inverse=True)
    assert len(index) == len(made.result.train_prob)
    patients, prob, unscored = fuse_by_patient(
        made.result.train_prob, index, prepared.views, np.ones(len(index), bool), "mean"
    )
    labels = [int(prepared.data.y[index == p][0]) for p in patients]
    metrics = binary_metrics(labels, prob, made.threshold.value)
    assert (metrics["sen"], metrics["spe"]) == pytest.approx(
        (made.threshold.sensitivity, made.threshold.specificity)
    )
    assert unscored.size == 0 and made.threshold.level == "patient"


def test_out_of_fold_threshold_is_recorded_with_its_folds_and_band(
    cohort_with_a_blank_view, tmp_path
):
    config = tiny_train_config("squeezenet1_1", 2)  # head mode: operating point auto = oof-youden
    assert config.operating_rule().text == "oof-youden"
    made = train_bundle(cohort_with_a_blank_view, config, tmp_path / "oof")
    t = json.loads((tmp_path / "oof" / "bundle.json").read_text())["threshold"]
    assert (t["source"], t["rule"], t["k"]) == ("out_of_fold", "oof-youden", 2)  # 2 non-residual
    assert 0.0 <= t["oof_sensitivity"] <= 1.0 and 0.0 <= t["oof_specificity"] <= 1.0
    low, high = t["indeterminate"]
    assert low <= t["value"] <= high
    assert made.threshold.indeterminate == (low, high)
    argmax = train_bundle(
        cohort_with_a_blank_view,
        dataclasses.replace(config, operating_point="argmax"),
        tmp_path / "argmax",
    )
    assert argmax.threshold.value == 0.5 and argmax.threshold.source == "argmax"
    assert argmax.threshold.indeterminate is None and argmax.threshold.k is None


def test_each_fold_model_never_sees_the_patients_it_scores(monkeypatch):
    from thyrocad.training import oof
    from training_helpers import small, toy_data

    seen = []
    real_train = oof.train

    def recording_train(data, config, **kwargs):
        seen.append(set(data.groups))
        return real_train(data, config, **kwargs)

    monkeypatch.setattr(oof, "train", recording_train)
    data = toy_data(n=24)
    config = small(mode="head", epochs=1, inner_folds=3)
    prob, k = oof.oof_probabilities(data, config)
    assert k == 3 and len(seen) == 3 and not np.isnan(prob).any()
    masks = oof.patient_folds(data.groups, data.y.numpy(), 3, config.seed)
    for trained_on, held in zip(seen, masks, strict=True):
        held_patients = {g for g, h in zip(data.groups, held, strict=True) if h}
        assert held_patients and not trained_on & held_patients
    assert np.logical_or.reduce(masks).all() and sum(m.sum() for m in masks) == len(data)
