"""The recipes an experiment can run as rows of its own (`--recipes`): the named recipes of
`thyrocad.training.recipes` and the variants of the ablation grid (`ablate-...`).

A recipe row brings its own preprocessing, backbone, mode and training settings; it runs on
the experiment's splits, seeds, view fusion and operating point, so it is paired with every
other row.
"""

from __future__ import annotations

import dataclasses
import functools

from thyrocad.errors import ConfigError
from thyrocad.preprocess import PipelineConfig
from thyrocad.preprocess.config import (
    EqualizeConfig,
    GrabCutConfig,
    OutputConfig,
    WindowConfig,
)
from thyrocad.training.config import TrainConfig
from thyrocad.training.recipes import Recipe, recipe, recipe_names

PREFIX = "ablate-"
REFERENCE = "paper_pipeline"


def _pipeline(base: PipelineConfig, **sections) -> PipelineConfig:
    """`base` with whole sections replaced."""
    return dataclasses.replace(base, name="custom", **sections)


def _crop(base: PipelineConfig, mm: float) -> PipelineConfig:
    """`base` with an `mm` x `mm` crop."""
    return _pipeline(base, crop=dataclasses.replace(base.crop, width_mm=mm, height_mm=mm))


def _variants(base: Recipe, changes: dict[str, tuple[str, PipelineConfig, TrainConfig]]):
    return {
        f"{PREFIX}{key}": Recipe(f"{PREFIX}{key}", pipeline, train, f"{base.name}: {what}")
        for key, (what, pipeline, train) in changes.items()
    }


def _paper_factors() -> dict[str, Recipe]:
    """One factor at a time from the paper's pipeline (EfficientNet-Lite0, head mode). Only
    the crop: every other factor costs a frozen-backbone pass over the cohort at 224 x 224,
    too slow for the project's shared 2-core CPU; they are measured on the recommended recipe
    below, whose runs take seconds."""
    base = recipe(REFERENCE)
    p, t = base.pipeline, base.train
    changes = {
        "crop-60mm": ("crop 60 mm", _crop(p, 60.0), t),
    }
    return _variants(base, changes)


def _recommended_factors() -> dict[str, Recipe]:
    """One factor at a time from the recommended recipe (small_cnn, full mode)."""
    base = recipe("recommended")
    p, t = base.pipeline, base.train
    changes = {
        "rec-crop-40mm": ("crop 40 mm", _crop(p, 40.0), t),
        "rec-crop-120mm": ("crop 120 mm (55 px at 32 x 32: downsampled)", _crop(p, 120.0), t),
        "rec-upsample-64": (
            "crop upsampled to 64 x 64",
            _pipeline(p, output=OutputConfig((64, 64))),
            t,
        ),
        "rec-equalize": ("equalizeHist", _pipeline(p, equalize=EqualizeConfig()), t),
        "rec-clahe": ("CLAHE", _pipeline(p, equalize=EqualizeConfig(method="clahe")), t),
        "rec-grabcut": ("GrabCut", _pipeline(p, grabcut=GrabCutConfig()), t),
        "rec-counts-linear": (
            "linear counts",
            _pipeline(p, window=dataclasses.replace(p.window, transform="linear")),
            t,
        ),
        "rec-counts-anscombe": (
            "Anscombe counts",
            _pipeline(p, window=dataclasses.replace(p.window, transform="anscombe")),
            t,
        ),
        "rec-window-percentile": (
            "window at the crop's 99.5th percentile, sqrt counts (the previous recipe's)",
            _pipeline(p, window=WindowConfig()),
            t,
        ),
        "rec-counts-sqrt": (
            "square-root counts",
            _pipeline(p, window=dataclasses.replace(p.window, transform="sqrt")),
            t,
        ),
        "rec-crop-100mm-native": (
            "crop 100 mm at 48 x 48 (native resolution)",
            _pipeline(_crop(p, 100.0), output=OutputConfig((48, 48))),
            t,
        ),
        "rec-no-augment": (
            "no flips or shifts",
            p,
            dataclasses.replace(t, flip=False, shift_px=0),
        ),
        "rec-mode-head": (
            "head mode (random frozen features, no augmentation)",
            p,
            dataclasses.replace(t, mode="head", epochs=80, flip=False, shift_px=0),
        ),
    }
    return _variants(base, changes)


@functools.cache
def _grid() -> dict[str, Recipe]:
    return {**_paper_factors(), **_recommended_factors()}


def ablation_names() -> tuple[str, ...]:
    """The variants of the ablation grid, in table order."""
    return tuple(_grid())


def experiment_recipe(name: str) -> Recipe:
    """A named recipe or an ablation variant; `ConfigError` naming the choices otherwise."""
    if name in _grid():
        return _grid()[name]
    if name in recipe_names():
        return recipe(name)
    raise ConfigError(
        f"unknown recipe {name!r}; choose one of {', '.join(recipe_names())} or an ablation "
        f"variant ({PREFIX}...: {', '.join(n.removeprefix(PREFIX) for n in _grid())})"
    )
