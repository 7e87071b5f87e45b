"""thyrocad.configs: every settings dataclass round-trips through `to_dict` / JSON, nested
configs and tuples included, and the files thyrocad writes load back into the config that made
them. (The experiment's settings.json: tests/test_experiment.py.)"""

from __future__ import annotations

import json

import pytest

from fixture_settings import INFERENCE_EPOCHS, INFERENCE_MODEL, INFERENCE_PHANTOM, tiny_train_config
from thyrocad.data.phantom import PhantomConfig
from thyrocad.errors import ConfigError
from thyrocad.experiment.config import ExperimentConfig
from thyrocad.experiment.presets import preset as experiment_preset
from thyrocad.models import architecture
from thyrocad.preprocess import PipelineConfig, preset
from thyrocad.preprocess.config import CropConfig, EqualizeConfig, OutputConfig
from thyrocad.training import TrainConfig
from thyrocad.training.recipes import recipe

CONFIGS = [
    PipelineConfig(
        crop=CropConfig(center_rc=(100.0, 120.5), fallback_box_px=(60, 64)),
        equalize=EqualizeConfig(method="clahe", clahe_tile_grid=(8, 8)),
        output=OutputConfig(size=(96, 128), mean=(0.5,) * 3, std=(0.25,) * 3),
        name="custom-test",
    ),
    preset("paper"),
    PhantomConfig(n_patients=9, n_residual=4, seed=3, hours_post_dose=(24.0,), difficulty=0.5),
    TrainConfig(
        model="squeezenet1_1",
        mode="last",
        epochs=3,
        val_fraction=0.25,
        operating_point="oof-sensitivity:0.9",
        inner_folds=3,
    ),
    ExperimentConfig(
        models=("resnet18",),
        baselines=(),
        n_splits=3,
        reference="resnet18",
        view_fusion="max",
        init="scratch",
    ),
    experiment_preset("demo"),
    recipe("recommended"),
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: type(c).__name__)
def test_round_trip_through_dict_and_json(config):
    cls = type(config)
    data = config.to_dict()
    assert json.loads(json.dumps(data)) == data  # plain JSON values only
    assert cls.from_dict(json.loads(json.dumps(data))) == config
    assert cls.from_json(config.to_json()) == config
    assert cls.from_dict(cls().to_dict()) == cls()  # the defaults too


def test_nested_configs_and_tuples_are_rebuilt():
    config = CONFIGS[0]
    back = PipelineConfig.from_dict(json.loads(config.to_json()))
    assert isinstance(back.crop, CropConfig) and back.crop.center_rc == (100.0, 120.5)
    assert isinstance(back.equalize.clahe_tile_grid, tuple)
    assert back.output.size == (96, 128) and isinstance(back.output.mean, tuple)
    assert back.config_hash() == config.config_hash()
    assert PipelineConfig.from_dict({}) == PipelineConfig()  # missing keys take the defaults


@pytest.mark.parametrize(
    "cls", [PipelineConfig, PhantomConfig, TrainConfig, ExperimentConfig], ids=lambda c: c.__name__
)
def test_unknown_keys_bad_json_and_bad_values_are_config_errors(cls):
    with pytest.raises(ConfigError, match=rf"unknown {cls.__name__} setting.*bogus"):
        cls.from_dict({**cls().to_dict(), "bogus": 1})
    with pytest.raises(ConfigError, match="not valid JSON"):
        cls.from_json("{")
    with pytest.raises(ConfigError, match="must be a JSON object"):
        cls.from_dict([1, 2])
    assert issubclass(ConfigError, ValueError)


def test_nested_unknown_key_names_the_nested_config():
    with pytest.raises(ConfigError, match=r"unknown GrabCutConfig setting.*iters"):
        PipelineConfig.from_dict({"grabcut": {"iters": 3}})


def test_bad_values_are_config_errors():
    with pytest.raises(ConfigError, match="--residual"):
        PhantomConfig(n_patients=3, n_residual=4)
    with pytest.raises(ConfigError, match="epochs must be >= 1"):
        TrainConfig.from_dict({"epochs": 0})
    with pytest.raises(ConfigError, match="output size"):
        PipelineConfig.from_dict({"output": {"size": [4, 4]}})
    with pytest.raises(ConfigError, match="--splits must be >= 1"):
        ExperimentConfig.from_dict({"n_splits": 0})


def test_files_written_by_thyrocad_load_back_into_their_configs(inference_cohort, inference_bundle):
    """cohort.json of the phantom generator and the configs in a `train_bundle` bundle."""
    manifest = json.loads((inference_cohort / "cohort.json").read_text())
    assert PhantomConfig.from_dict(manifest["config"]) == INFERENCE_PHANTOM
    train_config = json.loads((inference_bundle / "train_config.json").read_text())
    expected = tiny_train_config(INFERENCE_MODEL, INFERENCE_EPOCHS)
    assert TrainConfig.from_dict(train_config) == expected
    pipeline = PipelineConfig.from_json((inference_bundle / "preprocess_config.json").read_text())
    spec = architecture(INFERENCE_MODEL).spec
    assert pipeline == preset("default").with_normalisation(spec.mean, spec.std)
