"""Recipes (`thyrocad.training.recipes`), the `recommended` one as `thyrocad train`'s default
and a row of the demo, the Anscombe count transform, and `thyrocad ablate` on a tiny cohort
(real preprocessing, real small training runs)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from thyrocad.bundle.format import load_bundle
from thyrocad.cli.main import app
from thyrocad.errors import ConfigError
from thyrocad.experiment.ablation import HEADER
from thyrocad.experiment.config import ExperimentConfig
from thyrocad.experiment.presets import preset as experiment_preset
from thyrocad.experiment.recipes import ablation_names, experiment_recipe
from thyrocad.preprocess import PipelineConfig, preset
from thyrocad.preprocess.config import WindowConfig
from thyrocad.preprocess.steps import window_to_uint8
from thyrocad.training.recipes import Recipe, recipe, train_recipe
from training_helpers import cli_cohort

pytestmark = pytest.mark.usefixtures("one_thread")
runner = CliRunner()


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    return cli_cohort(tmp_path_factory, seed=2)


def test_anscombe_window_by_hand():
    # 2 sqrt(c + 3/8), scaled so 0 counts -> 0 and the clip level (24 counts) -> 255:
    # c = 1: (2 sqrt(1.375) - 2 sqrt(0.375)) / (2 sqrt(24.375) - 2 sqrt(0.375)) * 255 = 33.03
    counts = np.array([[0, 1, 4], [9, 24, 24]], dtype=np.float32)
    out, flags = window_to_uint8(counts, WindowConfig(clip_percentile=100, transform="anscombe"))
    assert out.tolist() == [[0, 33, 87], [144, 255, 255]]
    sqrt, _ = window_to_uint8(counts, WindowConfig(clip_percentile=100, transform="sqrt"))
    assert sqrt.tolist() == [[0, 52, 104], [156, 255, 255]]  # sqrt(c / 24) * 255
    assert flags == ["saturated"]  # 2 of 6 pixels at the maximum


def test_unknown_transform_is_a_config_error():
    with pytest.raises(ConfigError, match=r"linear\|sqrt\|log\|anscombe"):
        PipelineConfig(window=WindowConfig(transform="cuberoot"))


def test_recommended_recipe_round_trips_and_names_its_parts():
    rec = recipe("recommended")
    assert Recipe.from_json(rec.to_json()) == rec
    assert PipelineConfig.from_json(preset("recommended").to_json()) == preset("recommended")
    assert rec.pipeline == preset("recommended")
    assert (rec.train.model, rec.train.mode, rec.train.weights) == ("small_cnn", "full", "none")
    assert rec.pipeline.output.size == (32, 32) and not rec.pipeline.equalize.enabled
    assert not rec.pipeline.grabcut.enabled and rec.pipeline.crop.width_mm == 60.0
    assert (rec.pipeline.window.reference, rec.pipeline.window.transform) == ("background", "log")
    assert (rec.train.flip, rec.train.shift_px) == (True, 2)  # thyrocad.training.augment


def test_train_starts_from_recommended_unless_the_paper_is_asked_for():
    assert train_recipe(None, None, None).name == "recommended"
    assert train_recipe(None, None, "recommended").name == "recommended"
    assert train_recipe(None, "small_cnn", None).name == "recommended"
    # --preset paper (or another backbone) trains as the paper did, unchanged
    assert train_recipe(None, None, "paper").name == "paper"
    assert train_recipe(None, "resnet18", None).name == "paper"
    paper = recipe("paper").train
    assert (paper.model, paper.mode, paper.lr, paper.epochs) == ("resnet18", "head", 1e-5, 80)
    assert train_recipe("recommended", "resnet18", "paper").name == "recommended"
    with pytest.raises(ConfigError, match="unknown recipe 'fast'; choose one of recommended"):
        recipe("fast")


def test_demo_preset_has_the_recommended_row_beside_the_paper_models():
    demo = experiment_preset("demo")
    assert demo.recipes == ("recommended",)
    assert {"resnet18", "efficientnet_lite0"} <= set(demo.models)
    assert {"peak", "uptake_ratio", "cho"} <= set(demo.baselines)
    assert experiment_preset("paper").recipes == ()


def test_an_unknown_recipe_in_an_experiment_is_refused_with_the_choices():
    with pytest.raises(ConfigError, match=r"--recipes: unknown recipe 'ablate-nope'.*crop-60mm"):
        ExperimentConfig(recipes=("ablate-nope",))


def test_ablation_variants_change_one_thing_each():
    for name in ablation_names():
        variant = experiment_recipe(name)
        base = recipe("recommended" if name.startswith("ablate-rec-") else "paper_pipeline")
        differences = {
            section
            for section in ("crop", "window", "equalize", "grabcut", "output")
            if getattr(variant.pipeline, section) != getattr(base.pipeline, section)
        }
        if name.endswith("-native"):  # a crop at native resolution: its size sets the output's
            differences -= {"output"}
        train_changes = {
            k for k, v in variant.train.to_dict().items() if base.train.to_dict()[k] != v
        }
        assert len(differences) + bool(train_changes) == 1, name


def test_train_defaults_to_the_recommended_recipe(cohort, tmp_path, monkeypatch):
    monkeypatch.setenv("THYROCAD_HOME", str(tmp_path / "home"))
    out = tmp_path / "model"
    result = runner.invoke(app, ["train", str(cohort), "--out", str(out), "--epochs", "2"])
    assert result.exit_code == 0, result.output
    assert "recipe recommended: small_cnn from scratch" in result.output
    _, info = load_bundle(out)
    assert info.manifest["model"]["name"] == "small_cnn"
    assert info.manifest["initial_weights"]["kind"] == "none"
    train_cfg = json.loads((out / "train_config.json").read_text())
    assert (train_cfg["mode"], train_cfg["lr"], train_cfg["epochs"]) == ("full", 1e-3, 2)
    assert (train_cfg["flip"], train_cfg["shift_px"]) == (True, 2)
    assert info.pipeline.output.size == (32, 32) and info.pipeline.crop.width_mm == 60.0
    assert info.threshold.source == "argmax"  # full mode: no out-of-fold trainings


def test_train_in_head_mode_drops_the_recipes_augmentation(cohort, tmp_path, monkeypatch):
    monkeypatch.setenv("THYROCAD_HOME", str(tmp_path / "home"))
    out = tmp_path / "head"
    args = ["train", str(cohort), "--out", str(out), "--mode", "head", "--epochs", "1"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    train_cfg = json.loads((out / "train_config.json").read_text())
    assert (train_cfg["mode"], train_cfg["flip"], train_cfg["shift_px"]) == ("head", False, 0)


@pytest.mark.slow
def test_ablate_runs_every_variant_on_the_same_splits(cohort, tmp_path, monkeypatch):
    monkeypatch.setenv("THYROCAD_HOME", str(tmp_path / "home"))
    out = tmp_path / "ablation"
    args = [
        "ablate",
        str(cohort),
        "--out",
        str(out),
        "--splits",
        "2",
        "--workers",
        "1",
        "--allow-small",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    table = (out / "latest" / "ablation.md").read_text().splitlines()
    assert table[0] == "| " + " | ".join(HEADER) + " |"
    rows = {line.split(" | ")[0].removeprefix("| "): line for line in table[2:]}
    expected = {"paper_pipeline", "recommended", *ablation_names(), "peak", "uptake_ratio"}
    assert set(rows) == expected
    assert rows["paper_pipeline"].split(" | ")[3] == "reference"
    methods = (out / "latest" / "methods.md").read_text()  # each recipe's own settings
    assert "Backbones:" not in methods  # no model of the paper's pipeline ran, only recipes
    assert (
        "Recipe 'recommended' (random initialisation; mode 'full' (all layers fine-tuned)): "
        "each view was cropped to 60 × 60 mm" in methods
    )
    assert "resized to 32 × 32 pixels; Adam (learning rate 0.001, weight decay 0.0001)" in methods
    assert "20 epochs, random left-right flips and random shifts of up to 2 pixels." in methods
    assert "Recipe 'ablate-rec-crop-40mm'" in methods and "cropped to 40 × 40 mm" in methods
    assert "of 2" in rows["ablate-rec-grabcut"]  # DeLong per split against the reference
    predictions = (out / "latest" / "predictions.csv").read_text().splitlines()[1:]
    tested = {}
    for line in predictions:
        model, split, patient = line.split(",")[:3]
        tested.setdefault((model, split), set()).add(patient)
    for split in ("0", "1"):  # every row was tested on the same patients of a split
        assert len({frozenset(p) for (m, s), p in tested.items() if s == split}) == 1


def test_a_recipe_without_its_weights_is_listed_unavailable_not_run(cohort, tmp_path, monkeypatch):
    from thyrocad.experiment.plan import plan_experiment

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # no ResNet-18 ImageNet file
    config = ExperimentConfig(
        models=(), recipes=("paper", "recommended"), baselines=("peak",), reference="peak",
        n_splits=2, allow_small=True,
    )  # fmt: skip
    plan = plan_experiment(cohort, config)
    entries = {e.name: e for e in plan.entries}
    assert entries["paper"].status == "unavailable" and "resnet18" in entries["paper"].reason
    assert entries["recommended"].ran and entries["recommended"].mode == "full"
    assert {s.model for s in plan.specs} == {"recommended", "peak"}
    assert plan.settings["recipes"]["recommended"] == recipe("recommended").to_dict()
