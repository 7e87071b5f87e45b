"""thyrocad.export + `thyrocad export`: ONNX file, parity with PyTorch, onnxruntime backend."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from inference_helpers import bundle, copy_bundle, phantom_files
from thyrocad.cli.main import app
from thyrocad.errors import ExportError
from thyrocad.export import PARITY_TOLERANCE, OnnxRunner, onnx_metadata, parity
from thyrocad.inference import ONNX_FILE, Predictor, class_probabilities, load_bundle
from thyrocad.reader import read_study

pytestmark = pytest.mark.slow  # one torch.export-based ONNX export: ~10-30 s on 2 cores


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The resnet18 test bundle exported by the CLI (with its parity check) into a copy."""
    path = copy_bundle("resnet18", tmp_path_factory.mktemp("export") / "bundle")
    result = CliRunner().invoke(app, ["export", str(path), "--onnx", str(path / ONNX_FILE)])
    assert result.exit_code == 0, result.output
    assert "parity on 4 phantom views" in result.output and "(ok" in result.output
    return path


def _phantom_inputs(predictor: Predictor) -> np.ndarray:
    views = [p.result.network_input for f in phantom_files() for p in predictor.prepare(
        read_study(f))]  # fmt: skip
    return np.stack(views)


def test_onnx_probabilities_match_pytorch_on_phantom_views(exported):
    model, info = load_bundle(exported)
    runner = OnnxRunner(exported / ONNX_FILE, expected_sha256=info.weights_sha256)
    x = _phantom_inputs(Predictor(model, info))
    assert parity(model, runner, x) <= PARITY_TOLERANCE
    for n in (1, 3):  # the batch dimension is dynamic
        got = runner.probabilities(x[:n])
        assert got.shape == (n, 2)
        assert np.abs(got - class_probabilities(model, x[:n])).max() <= PARITY_TOLERANCE
    meta = onnx_metadata(exported / ONNX_FILE)
    assert meta["weights_sha256"] == info.weights_sha256
    assert meta["model_name"] == "resnet18" and meta["input_size"] == "224x224"


def test_predictor_onnxruntime_backend_gives_the_same_diagnosis(exported):
    torch_p = Predictor.from_bundle(exported)
    onnx_p = Predictor.from_bundle(exported, backend="onnxruntime", threads=1)
    for path in phantom_files():
        a, b = torch_p.predict(read_study(path)), onnx_p.predict(read_study(path))
        assert abs(a.probability - b.probability) <= PARITY_TOLERANCE
        assert b.model["backend"] == "onnxruntime"


def test_onnx_file_of_other_weights_or_corrupt_is_refused(exported, tmp_path):
    with pytest.raises(ExportError, match="other weights"):
        OnnxRunner(exported / ONNX_FILE, expected_sha256="0" * 64)
    other = copy_bundle("resnet18", tmp_path / "other")
    (other / ONNX_FILE).write_bytes(b"not an onnx file")
    with pytest.raises(ExportError, match="not a readable ONNX file"):
        Predictor.from_bundle(other, backend="onnxruntime")


def test_export_cli_reports_a_bad_bundle(tmp_path):
    result = CliRunner().invoke(app, ["export", str(tmp_path), "--onnx", str(tmp_path / "m.onnx")])
    assert result.exit_code == 1
    assert "BundleError" in result.output and not (tmp_path / "m.onnx").exists()


def test_bundle_is_unchanged_by_export(exported):
    assert sorted(p.name for p in exported.iterdir()) == sorted(
        [*(p.name for p in bundle("resnet18").iterdir()), ONNX_FILE]
    )
