"""thyrocad.diagnosis.predictor: bundle loading, per-view + fused prediction, bad bundles and
bad studies."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import thyrocad
from thyrocad.bundle.format import load_bundle
from thyrocad.decision import FELL_BACK_TO_MEAN
from thyrocad.diagnosis.predictor import Predictor
from thyrocad.errors import BundleError, BundleVersionError, ConfigError, NoUsableViewError
from thyrocad.io.read import read_study
from thyrocad.models import class_probabilities
from thyrocad.study import Study, View, ViewImage

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def predictor(inference_bundle) -> Predictor:
    return Predictor.from_bundle(inference_bundle, threads=1)


def _manifest(path: Path) -> dict:
    return json.loads((path / "bundle.json").read_text())


def _rewrite_manifest(path: Path, **changes) -> None:
    manifest = _manifest(path)
    manifest.update(changes)
    (path / "bundle.json").write_text(json.dumps(manifest))


def test_predict_gives_view_and_fused_probabilities_at_the_bundle_operating_point(
    predictor, inference_bundle, inference_files
):
    manifest = _manifest(inference_bundle)
    for path in inference_files:
        study = read_study(path)
        diagnosis = predictor.predict(study)
        prepared = predictor.prepare(study)
        alone = [class_probabilities(predictor.model, p.result.network_input[None])[0, 1]
                 for p in prepared]  # fmt: skip
        views = {v.view: v.probability for v in diagnosis.views}
        assert set(views) == {"anterior", "posterior"}
        # one batched forward pass gives the same numbers as one view at a time
        assert np.allclose([views[p.view.value] for p in prepared], alone, atol=1e-6)
        assert diagnosis.probability == pytest.approx(np.mean(alone), abs=1e-6)
        op = diagnosis.operating_point
        assert op.threshold == manifest["threshold"]["value"]
        assert op.train_sensitivity == manifest["threshold"]["train_sensitivity"]
        assert op.train_specificity == manifest["threshold"]["train_specificity"]
        assert op.source == "bundle" and op.level == "patient" == manifest["threshold"]["level"]
        assert diagnosis.fusion == "mean" and FELL_BACK_TO_MEAN not in diagnosis.flags
        assert diagnosis.positive == (diagnosis.probability >= op.threshold)
        assert diagnosis.verdict == ("residual" if diagnosis.positive else "non_residual")
        assert diagnosis.model["name"] == "resnet18"
        assert diagnosis.model["weights_sha256"] == manifest["weights_sha256"]
        assert json.loads(diagnosis.to_json()) == diagnosis.to_dict()
        for view, p in zip(diagnosis.to_dict()["views"], prepared, strict=True):
            assert view["bed_confidence"] == p.result.bed_confidence
            assert view["bed_method"] == p.result.bed_method and view["bed_reason"]


def test_threshold_override_sets_the_verdict(predictor, inference_files):
    study = read_study(inference_files[0])
    low = Predictor(predictor.model, predictor.info, threshold=0.0).predict(study)
    high = Predictor(predictor.model, predictor.info, threshold=1.0).predict(study)
    assert (low.verdict, high.verdict) == ("residual", "non_residual")
    assert low.operating_point.source == "override"
    assert low.operating_point.train_sensitivity is None
    with pytest.raises(ConfigError, match="threshold"):
        Predictor(predictor.model, predictor.info, threshold=1.5)
    with pytest.raises(ConfigError, match="backend must be one of"):
        Predictor(predictor.model, predictor.info, backend="tensorrt")


def test_predictor_leaves_the_torch_thread_count_alone(inference_bundle, inference_files):
    torch.set_num_threads(2)  # the one_thread fixture restores it afterwards
    predictor = Predictor.from_bundle(inference_bundle, threads=1)
    predictor.predict(read_study(inference_files[0]))
    assert torch.get_num_threads() == 2


def test_fusion_rule_comes_from_the_bundle(bundle_copy, inference_files):
    path = bundle_copy()
    study = read_study(inference_files[1])
    _rewrite_manifest(path, view_fusion="max")
    diagnosis = Predictor.from_bundle(path).predict(study)
    assert diagnosis.fusion == "max"
    assert diagnosis.probability == max(v.probability for v in diagnosis.views)
    _rewrite_manifest(path, view_fusion="posterior")
    diagnosis = Predictor.from_bundle(path).predict(study)
    posterior = next(v.probability for v in diagnosis.views if v.view == "posterior")
    assert diagnosis.probability == posterior and FELL_BACK_TO_MEAN not in diagnosis.flags
    # a study without a posterior view: the mean of its views, flagged
    anterior_only = Study(
        images=(ViewImage(View.ANTERIOR, study.image(View.ANTERIOR)),),
        pixel_spacing_mm=study.pixel_spacing_mm,
    )
    diagnosis = Predictor.from_bundle(path).predict(anterior_only)
    assert diagnosis.probability == diagnosis.views[0].probability
    assert FELL_BACK_TO_MEAN in diagnosis.flags


def test_blank_view_is_left_out_and_flagged(predictor, inference_files):
    study = read_study(inference_files[0])
    blank = np.zeros_like(study.image(View.POSTERIOR))
    mixed = Study(
        images=(ViewImage(View.ANTERIOR, study.image(View.ANTERIOR)),
                ViewImage(View.POSTERIOR, blank)),
        pixel_spacing_mm=study.pixel_spacing_mm,
    )  # fmt: skip
    diagnosis = predictor.predict(mixed)
    posterior = next(v for v in diagnosis.views if v.view == "posterior")
    assert posterior.used is False and posterior.probability is None
    assert "blank_image" in diagnosis.flags
    anterior = next(v for v in diagnosis.views if v.view == "anterior")
    assert diagnosis.probability == anterior.probability


def test_study_without_usable_view_is_refused(predictor):
    blank = Study(images=(ViewImage(View.ANTERIOR, np.zeros((128, 128), np.float32)),),
                  pixel_spacing_mm=(2.2, 2.2), source="blank.dcm")  # fmt: skip
    with pytest.raises(NoUsableViewError, match="no usable view"):
        predictor.predict(blank)
    with pytest.raises(NoUsableViewError, match="has no views"):
        predictor.predict(Study(images=(), pixel_spacing_mm=None, source="empty.dcm"))


def test_png_study_without_spacing_is_diagnosed_with_a_flag(predictor, tmp_path, inference_files):
    from PIL import Image

    counts = read_study(inference_files[0]).image(View.ANTERIOR)
    png = tmp_path / "export.png"
    Image.fromarray(np.clip(counts * 40, 0, 255).astype(np.uint8)).save(png)
    diagnosis = predictor.predict(read_study(png))
    assert [v.view for v in diagnosis.views] == ["unknown"]
    assert "no_spacing" in diagnosis.flags
    # without spacing the bed is never located confidently: flagged, with its reason
    assert "bed_uncertain" in diagnosis.flags
    assert diagnosis.views[0].bed_reason.startswith(("bed_uncertain", "bed_not_found"))


# --- damaged or incompatible bundles -------------------------------------------------------


def test_incompatible_bundle_version_names_both_versions(bundle_copy):
    path = bundle_copy()
    manifest = _manifest(path)
    manifest["format_version"] = 99
    manifest["library_versions"]["thyrocad"] = "9.9.0"
    (path / "bundle.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleVersionError) as info:
        load_bundle(path)
    message = str(info.value)
    assert "version 99" in message and "thyrocad 9.9.0" in message
    assert f"thyrocad {thyrocad.__version__}" in message and "version 1 only" in message


@pytest.mark.parametrize(
    ("damage", "match"),
    [
        (lambda p: (p / "bundle.json").unlink(), "bundle.json is missing"),
        (lambda p: (p / "bundle.json").write_text("{not json"), "not valid JSON"),
        (lambda p: (p / "bundle.json").write_text("[1, 2]"), "not a JSON object"),
        (lambda p: (p / "weights.pt").unlink(), "missing or does not match"),
        (lambda p: _truncate(p / "weights.pt"), "missing or does not match"),
        (lambda p: (p / "preprocess_config.json").write_text("{oops"), "not valid JSON"),
        (
            lambda p: (p / "preprocess_config.json").write_text('{"crop": {"bogus": 1}}'),
            "not a preprocessing config",
        ),
        (lambda p: _drop_key(p, "threshold"), "lacks a field"),
        (lambda p: _rewrite_manifest(p, view_fusion="median"), "view_fusion"),
    ],
    ids=[
        "no-manifest",
        "bad-json",
        "not-object",
        "no-weights",
        "truncated-weights",
        "bad-preprocess-json",
        "bad-preprocess-keys",
        "no-threshold",
        "bad-fusion",
    ],
)
def test_damaged_bundle_raises_bundle_error(bundle_copy, damage, match):
    path = bundle_copy()
    damage(path)
    with pytest.raises(BundleError, match=match):
        Predictor.from_bundle(path)


def test_corrupt_weights_with_matching_hash_raise_bundle_error(bundle_copy):
    import hashlib

    path = bundle_copy()
    data = (path / "weights.pt").read_bytes()
    (path / "weights.pt").write_bytes(data[: len(data) // 2])
    _rewrite_manifest(path, weights_sha256=hashlib.sha256(data[: len(data) // 2]).hexdigest())
    with pytest.raises(BundleError, match="cannot be loaded"):
        load_bundle(path)


def test_not_a_folder_raises_bundle_error(tmp_path):
    with pytest.raises(BundleError, match="not a folder"):
        load_bundle(tmp_path / "nothing-here")


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


def _drop_key(path: Path, key: str) -> None:
    manifest = _manifest(path)
    del manifest[key]
    (path / "bundle.json").write_text(json.dumps(manifest))
