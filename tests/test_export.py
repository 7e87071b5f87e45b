"""thyrocad.bundle.onnx + `thyrocad export`: ONNX file, parity with PyTorch, onnxruntime backend."""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from typer.testing import CliRunner

from thyrocad.bundle.format import load_bundle
from thyrocad.bundle.onnx import (
    ONNX_FILE,
    PARITY_TOLERANCE,
    OnnxRunner,
    cache_path,
    onnx_metadata,
    parity,
)
from thyrocad.cli.main import app
from thyrocad.diagnosis.predictor import Predictor
from thyrocad.errors import ConfigError, ExportError
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


def test_predictor_runs_onnxruntime_by_default_over_a_cached_parity_checked_export(
    inference_bundle, inference_files
):
    """No `model.onnx` in the bundle: the default predictor exports once into the cache
    (folded input convolution), leaves the bundle alone, and agrees with PyTorch."""
    before = sorted(p.name for p in inference_bundle.iterdir())
    default = Predictor.from_bundle(inference_bundle, threads=1)
    assert default.backend == "onnxruntime"
    _, info = load_bundle(inference_bundle)
    path = cache_path(info)
    assert path.is_file() and onnx_metadata(path)["weights_sha256"] == info.weights_sha256
    graph = onnx.load(str(path))
    first_conv = next(n for n in graph.graph.node if n.op_type == "Conv")
    weight = next(i for i in graph.graph.initializer if i.name == first_conv.input[1])
    assert weight.dims[1] == 1  # the input convolution reads one grey channel
    stamp = path.stat().st_mtime_ns
    again = Predictor.from_bundle(inference_bundle, threads=1)
    assert again.backend == "onnxruntime" and path.stat().st_mtime_ns == stamp  # reused
    assert sorted(p.name for p in inference_bundle.iterdir()) == before
    torch_p = Predictor.from_bundle(inference_bundle, backend="torch")
    for file in inference_files:
        a, b = torch_p.predict(read_study(file)), default.predict(read_study(file))
        assert abs(a.probability - b.probability) <= PARITY_TOLERANCE
        assert (a.model["backend"], b.model["backend"]) == ("torch", "onnxruntime")


def test_a_damaged_cached_export_is_made_again(inference_bundle):
    Predictor.from_bundle(inference_bundle, threads=1)  # the cached export exists
    _, info = load_bundle(inference_bundle)
    cache_path(info).write_bytes(b"damaged")
    assert Predictor.from_bundle(inference_bundle, threads=1).backend == "onnxruntime"
    assert onnx_metadata(cache_path(info))["weights_sha256"] == info.weights_sha256


def test_without_onnxruntime_the_predictor_falls_back_to_torch_and_says_why(
    inference_bundle, monkeypatch, caplog
):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` fails
    monkeypatch.delitem(sys.modules, "thyrocad.bundle.onnx")
    with caplog.at_level(logging.WARNING, logger="thyrocad.diagnosis.predictor"):
        predictor = Predictor.from_bundle(inference_bundle)
    assert predictor.backend == "torch"
    assert "onnxruntime not used" in caplog.text and "onnxruntime" in caplog.text
    with pytest.raises(ConfigError, match="backend onnxruntime needs onnxruntime"):
        Predictor.from_bundle(inference_bundle, backend="onnxruntime")


def test_an_export_that_fails_its_parity_check_is_not_kept(inference_bundle, monkeypatch, caplog):
    """A parity check that cannot pass (for a new cache key): PyTorch runs, the reason is
    logged, no export is kept."""
    model, info = load_bundle(inference_bundle)
    info = dataclasses.replace(info, weights_sha256="f" * 64)
    monkeypatch.setattr("thyrocad.bundle.onnx.PARITY_TOLERANCE", -1.0)
    with caplog.at_level(logging.WARNING, logger="thyrocad.diagnosis.predictor"):
        predictor = Predictor(model, info, threads=1)
    assert predictor.backend == "torch"
    assert "differs from PyTorch" in caplog.text
    assert not cache_path(info).exists()
    assert not [p for p in cache_path(info).parent.iterdir() if p.name.startswith(".")]


def test_predict_cli_uses_onnxruntime_by_default(inference_bundle, inference_files, tmp_path):
    out = tmp_path / "rows.json"
    args = ["predict", str(inference_bundle), str(inference_files[0]), "--out", str(out)]
    result = CliRunner().invoke(app, [*args, "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())[0]["diagnosis"]["model"]["backend"] == "onnxruntime"
    result = CliRunner().invoke(app, [*args, "--threads", "1", "--backend", "torch"])
    assert json.loads(out.read_text())[0]["diagnosis"]["model"]["backend"] == "torch"
    result = CliRunner().invoke(app, [*args, "--backend", "tensorrt"])
    assert result.exit_code == 2 and "backend must be one of" in result.stderr
