"""`thyrocad train` end to end on a tiny phantom cohort (real DICOM files, real training)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from thyrocad.bundle.format import load_bundle
from thyrocad.cli.main import app
from thyrocad.data.cohort import load_cohort
from training_helpers import cli_cohort

pytestmark = pytest.mark.usefixtures("one_thread")
runner = CliRunner()


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    return cli_cohort(tmp_path_factory, seed=1)


@pytest.mark.slow
def test_train_writes_a_usable_bundle(cohort, tmp_path, monkeypatch):
    monkeypatch.setenv("THYROCAD_HOME", str(tmp_path / "home"))
    out = tmp_path / "model"
    args = ["train", str(cohort), "--model", "efficientnet_lite0", "--out", str(out)]
    result = runner.invoke(app, [*args, "--epochs", "2", "--val-fraction", "0.25", "--lr", "1e-3"])
    assert result.exit_code == 0, result.output
    assert "epoch   2/2" in result.output

    model, info = load_bundle(out)
    manifest = info.manifest
    assert manifest["data_hash"] == load_cohort(cohort, read=False).data_hash()
    assert manifest["model"]["name"] == "efficientnet_lite0"
    assert manifest["model"]["mean"] == [0.5, 0.5, 0.5]
    assert manifest["initial_weights"]["kind"] == "package"
    assert manifest["epochs_completed"] == 2
    assert manifest["cohort"]["n_patients"] == 16
    assert set(manifest["threshold"]) >= {"value", "train_sensitivity", "train_specificity"}
    assert manifest["threshold"]["level"] == "patient"  # chosen on view-fused patient probabilities
    # head mode: the threshold is chosen on out-of-fold predictions of an inner 5-fold
    assert (manifest["threshold"]["source"], manifest["threshold"]["k"]) == ("out_of_fold", 5)
    assert "out of fold (5 folds)" in result.output and "indeterminate band" in result.output
    assert info.threshold.value == manifest["threshold"]["value"]
    assert f"{info.threshold.value:.4f}" in result.output  # the summary shows what was written
    assert manifest["view_fusion"] == "mean" and info.fusion == "mean"
    assert info.pipeline.output.mean == (0.5, 0.5, 0.5)
    assert manifest["library_versions"]["torch"]
    preprocess = json.loads((out / "preprocess_config.json").read_text())
    assert preprocess["output"]["mean"] == [0.5, 0.5, 0.5]  # the backbone's normalisation
    train_cfg = json.loads((out / "train_config.json").read_text())
    assert train_cfg["epochs"] == 2 and train_cfg["val_fraction"] == 0.25
    history = json.loads((out / "history.json").read_text())
    assert all(r["val_loss"] is not None for r in history)
    assert not (out / "checkpoint").exists()
    assert model.classifier.out_features == 2


def test_train_reports_missing_weights_clearly(cohort, tmp_path, monkeypatch):
    monkeypatch.setenv("THYROCAD_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    args = ["train", str(cohort), "--model", "resnet18", "--out", str(tmp_path / "m")]
    result = runner.invoke(app, [*args, "--epochs", "1"])
    assert result.exit_code == 1  # not a bad setting: a missing file (exit 2 is for settings)
    assert result.stderr.startswith("error: WeightsError: ")
    assert "resnet18-f37072fd.pth" in result.stderr
    assert "Traceback" not in result.output


def test_train_help_has_an_example():
    result = runner.invoke(app, ["train", "--help"])
    assert result.exit_code == 0 and "Example: thyrocad train" in result.output


def test_train_refuses_an_unknown_operating_point(cohort, tmp_path):
    args = ["train", str(cohort), "--out", str(tmp_path / "m"), "--operating-point", "youden"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "operating point must be one of argmax, oof-youden" in result.stderr
    assert not (tmp_path / "m").exists()


def test_train_refuses_an_existing_bundle_and_foreign_files_before_training(cohort, tmp_path):
    from thyrocad.bundle.format import MANIFEST

    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / MANIFEST).write_text('{"model": "another one"}')
    args = ["train", str(cohort), "--model", "resnet18", "--init", "scratch", "--epochs", "1"]
    refused = runner.invoke(app, [*args, "--out", str(bundle)])
    assert refused.exit_code == 2
    assert "already holds a model bundle" in refused.stderr and "--force" in refused.stderr
    assert (bundle / MANIFEST).read_text() == '{"model": "another one"}'
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "data.xlsx").write_bytes(b"x")
    refused = runner.invoke(app, [*args, "--out", str(foreign)])
    assert refused.exit_code == 2 and "not a thyrocad bundle" in refused.stderr
    assert sorted(p.name for p in foreign.iterdir()) == ["data.xlsx"]


@pytest.mark.parametrize(
    ("options", "weights", "warning"),
    [
        ((), "imagenet", None),
        (("--init", "scratch"), "none", None),
        (("--weights", "none"), "none", "--weights none is deprecated"),
        (("--weights", "imagenet"), "imagenet", "--weights imagenet is deprecated"),
        (("--weights", "w.pth"), "w.pth", None),
        (("--weights", "resnet18=w.pth"), "w.pth", None),
    ],
)
def test_init_and_weights_vocabulary(options, weights, warning, capsys):
    from doc_commands import parse_command
    from thyrocad.cli.train_cmd import initial_weights

    params = parse_command(f"thyrocad train c --out m --model resnet18 {' '.join(options)}")
    init = params["init"] or "imagenet"  # unset: the recipe's, imagenet for a named backbone
    assert initial_weights("resnet18", init, params["weights"]) == weights
    err = capsys.readouterr().err
    assert (warning in err) if warning else "deprecated" not in err


def test_contradicting_init_and_weights_are_setting_errors():
    from thyrocad.cli.train_cmd import initial_weights
    from thyrocad.errors import ConfigError

    with pytest.raises(ConfigError, match="leave out --init scratch"):
        initial_weights("resnet18", "scratch", "w.pth")
    with pytest.raises(ConfigError, match="for squeezenet1_1, but --model is resnet18"):
        initial_weights("resnet18", "imagenet", "squeezenet1_1=w.pth")
    with pytest.raises(ConfigError, match="--init must be imagenet or scratch"):
        initial_weights("resnet18", "imagenet-or-scratch", None)
