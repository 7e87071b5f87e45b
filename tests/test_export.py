"""thyrocad.bundle.onnx + `thyrocad export`: ONNX file, parity with PyTorch, onnxruntime backend."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from thyrocad.bundle.format import load_bundle
from thyrocad.bundle.onnx import ONNX_FILE, PARITY_TOLERANCE, OnnxRunner, onnx_metadata, parity
from thyrocad.cli.main import app
from thyrocad.diagnosis.predictor import Predictor
from thyrocad.errors import ExportError
from thyrocad.io.read import read_study
from thyrocad.models import class_probabilities

# one torch.export-based ONNX export: ~10-30 s on 2 cores
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]


@pytest.fixture(scope="module")
def exported(tmp_path_factory, inference_bundle):
    """The resnet18 test bundle exported by the CLI (with its parity check) into a copy."""
    path = Path(shutil.copytree(inference_bundle, tmp_path_factory.mktemp("export") / "bundle"))
    result = CliRunner().invoke(app, ["export", str(path), "--onnx", str(path / ONNX_FILE)])
    assert result.exit_code == 0, result.output
    assert "parity on 4 phantom views" in result.output and "(ok" in result.output
    return path


def _phantom_inputs(predictor: Predictor, files) -> np.ndarray:
    views = [p.result.network_input for f in files for p in predictor.prepare(read_study(f))]
    return np.stack(views)


def test_onnx_probabilities_match_pytorch_on_phantom_views(exported, inference_files):
    model, info = load_bundle(exported)
    runner = OnnxRunner(exported / ONNX_FILE, expected_sha256=info.weights_sha256)
    x = _phantom_inputs(Predictor(model, info), inference_files)
    assert parity(model, runner, x) <= PARITY_TOLERANCE
    for n in (1, 3):  # the batch dimension is dynamic
        got = runner.probabilities(x[:n])
        assert got.shape == (n, 2)
        assert np.abs(got - class_probabilities(model, x[:n])).max() <= PARITY_TOLERANCE
    meta = onnx_metadata(exported / ONNX_FILE)
    assert meta["weights_sha256"] == info.weights_sha256
    assert meta["model_name"] == "resnet18" and meta["input_size"] == "224x224"


def test_predictor_onnxruntime_backend_gives_the_same_diagnosis(exported, inference_files):
    torch_p = Predictor.from_bundle(exported)
    onnx_p = Predictor.from_bundle(exported, backend="onnxruntime", threads=1)
    for path in inference_files:
        a, b = torch_p.predict(read_study(path)), onnx_p.predict(read_study(path))
        assert abs(a.probability - b.probability) <= PARITY_TOLERANCE
        assert b.model["backend"] == "onnxruntime"


def test_onnx_file_of_other_weights_or_corrupt_is_refused(exported, bundle_copy):
    with pytest.raises(ExportError, match="other weights"):
        OnnxRunner(exported / ONNX_FILE, expected_sha256="0" * 64)
    other = bundle_copy("other")
    (other / ONNX_FILE).write_bytes(b"not an onnx file")
    with pytest.raises(ExportError, match="not a readable ONNX file"):
        Predictor.from_bundle(other, backend="onnxruntime")


def test_export_cli_reports_a_bad_bundle(tmp_path):
    result = CliRunner().invoke(app, ["export", str(tmp_path), "--onnx", str(tmp_path / "m.onnx")])
    assert result.exit_code == 1
    assert "error: BundleError: " in result.stderr and not (tmp_path / "m.onnx").exists()


def test_bundle_is_unchanged_by_export(exported, inference_bundle):
    assert sorted(p.name for p in exported.iterdir()) == sorted(
        [*(p.name for p in inference_bundle.iterdir()), ONNX_FILE]
    )
    for original in inference_bundle.iterdir():
        assert (exported / original.name).read_bytes() == original.read_bytes(), original.name
