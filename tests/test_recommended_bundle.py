"""A bundle of the recommended recipe (background-referenced window) carries its window and
`predict` applies it: the same network input in training, the predictor and the ONNX runner."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from thyrocad.bundle.format import load_bundle
from thyrocad.bundle.onnx import PARITY_TOLERANCE
from thyrocad.diagnosis.predictor import Predictor
from thyrocad.io.read import read_study
from thyrocad.preprocess import background
from thyrocad.training.recipes import recipe
from thyrocad.training.workflow import train_bundle

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def recommended_bundle(tmp_path_factory, inference_cohort) -> Path:
    rec = recipe("recommended")
    out = tmp_path_factory.mktemp("recommended") / "bundle"
    train = dataclasses.replace(rec.train, epochs=1)
    return train_bundle(inference_cohort, train, out, preprocess=rec.pipeline).path


def test_the_bundle_records_the_background_window_and_predict_applies_it(
    recommended_bundle, inference_files
):
    _, info = load_bundle(recommended_bundle)
    assert info.pipeline.window == recipe("recommended").pipeline.window
    predictor = Predictor.from_bundle(recommended_bundle, backend="torch")
    study = read_study(inference_files[0])
    for prepared, image in zip(predictor.prepare(study), study.images, strict=True):
        result = prepared.result
        mm = background.pixel_mm(image.counts.shape, study.pixel_spacing_mm, None)
        level = info.pipeline.window.clip_ratio * background.ring_background(
            image.counts, result.bed_center_rc, mm, info.pipeline.window.ring_mm
        )
        scaled = np.clip(result.stages["crop"], 0, level) / level
        expected = np.rint(np.log1p(scaled * 255.0) / np.log(256.0) * 255.0).astype(np.uint8)
        np.testing.assert_array_equal(result.stages["window8"], expected)
    assert 0.0 <= predictor.predict(study).probability <= 1.0


@pytest.mark.slow  # one ONNX export with its parity check: ~10-30 s on 2 cores
def test_the_onnx_runner_gives_the_same_diagnosis(recommended_bundle, inference_files):
    by_torch = Predictor.from_bundle(recommended_bundle, backend="torch")
    by_onnx = Predictor.from_bundle(recommended_bundle, backend="onnxruntime", threads=1)
    assert by_onnx.backend == "onnxruntime"
    for path in inference_files:
        a, b = by_torch.predict(read_study(path)), by_onnx.predict(read_study(path))
        assert abs(a.probability - b.probability) <= PARITY_TOLERANCE
