"""Recipes: a preprocessing config, a backbone and its training settings, under one name.

`recommended` is the default of `thyrocad train` and a row of the demo: `small_cnn` trained
from scratch in full mode on the `recommended` preprocessing (a 60 mm crop at about its native
resolution, counts over the neck's background around the bed, log-transformed, no
equalization, no GrabCut), each training batch flipped and shifted at random
(`thyrocad.training.augment`), chosen from the ablation in docs/experiment.md.
`paper` is the paper's training (ResNet-18, head mode, lr 1e-5), as `thyrocad train` did
before 0.5; `paper_pipeline` is the paper's preprocessing with the demo's head training
(EfficientNet-Lite0, lr 1e-3): the reference row of that ablation.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from thyrocad.configs import Config
from thyrocad.errors import ConfigError
from thyrocad.preprocess import PipelineConfig, preset
from thyrocad.training.config import TrainConfig


@dataclass(frozen=True)
class Recipe(Config):
    """How one classifier is made: `pipeline` (preprocessing) and `train` (backbone, initial
    weights, mode, optimiser settings; its seed and device are set per run)."""

    name: str = "custom"
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    summary: str = ""  # one line for tables and help pages


RECOMMENDED = "recommended"


def _recommended() -> Recipe:
    return Recipe(
        name=RECOMMENDED,
        pipeline=preset("recommended"),
        train=TrainConfig(
            model="small_cnn",
            weights="none",
            mode="full",
            epochs=20,
            lr=1e-3,
            weight_decay=1e-4,
            flip=True,
            shift_px=2,
        ),
        summary="small_cnn from scratch, full mode, 60 mm crop at 32 x 32, counts clipped at "
        "32 x the 35-60 mm ring background, log counts, no equalization, no GrabCut, Adam "
        "lr 1e-3, 20 epochs, random left-right flips and shifts of up to 2 pixels",
    )


def _paper_pipeline() -> Recipe:
    return Recipe(
        name="paper_pipeline",
        pipeline=preset("paper"),
        train=TrainConfig(model="efficientnet_lite0", mode="head", epochs=80, lr=1e-3),
        summary="the paper's preprocessing (120 mm crop, equalizeHist, GrabCut, 224 x 224), "
        "EfficientNet-Lite0 (ImageNet) head mode, Adam lr 1e-3, 80 epochs",
    )


def _paper() -> Recipe:
    return Recipe(
        name="paper",
        pipeline=preset("default"),
        train=TrainConfig(),
        summary="the paper's training: ResNet-18 (ImageNet), head mode, Adam lr 1e-5, weight "
        "decay 1e-5, 80 epochs, on the default preprocessing (--preset paper: the paper's)",
    )


_NAMED = {RECOMMENDED: _recommended, "paper": _paper, "paper_pipeline": _paper_pipeline}


def recipe_names() -> tuple[str, ...]:
    """The named recipes."""
    return tuple(_NAMED)


def train_recipe(name: str | None, model: str | None, preset_name: str | None) -> Recipe:
    """The recipe `thyrocad train` starts from: `name`, else `recommended`, unless a backbone
    other than small_cnn or a preprocessing preset other than `recommended` is asked for:
    then the paper's (so `--preset paper` trains exactly as the paper did)."""
    if name is None:
        other_model = model not in (None, recipe(RECOMMENDED).train.model)
        name = "paper" if other_model or preset_name not in (None, RECOMMENDED) else RECOMMENDED
    return recipe(name)


def recipe(name: str) -> Recipe:
    """The named recipe; `ConfigError` lists the names when `name` is unknown."""
    try:
        return _NAMED[name]()
    except KeyError:
        raise ConfigError(f"unknown recipe {name!r}; choose one of {', '.join(_NAMED)}") from None
