"""The `thyrocad experiment` command line that reproduces a config, every setting explicit.

`FLAGS` maps each `ExperimentConfig` field to its option; a test checks that it covers every
field and that the command parses back, through the real CLI, into the same config.
"""

from __future__ import annotations

import dataclasses
import shlex
from pathlib import Path

from thyrocad.experiment.config import ExperimentConfig

FLAGS = {
    "models": "--models",
    "baselines": "--baselines",
    "n_splits": "--splits",
    "test_fraction": "--test-fraction",
    "epochs": "--epochs",
    "mode": "--mode",
    "reference": "--reference",
    "seed": "--seed",
    "view_fusion": "--view-fusion",
    "batch_size": "--batch-size",
    "lr": "--lr",
    "weight_decay": "--weight-decay",
    "preprocess": "--preset",
    "init": "--init",
    "device": "--device",
    "operating_point": "--operating-point",
    "inner_folds": "--inner-folds",
    "allow_small": "--allow-small",
    "test_cohort": "--test-cohort",
    "weights": "--weights",  # repeated, MODEL=FILE
    "recipes": "--recipes",
    "batched_splits": "--batched-splits",
}


def option_value(value: object) -> str:
    """A config value as its option text: names comma-joined ('none' when empty), floats exact."""
    if isinstance(value, tuple):
        return ",".join(value) or "none"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def experiment_command(
    cohort_dir: Path | str, out_dir: Path | str, config: ExperimentConfig
) -> str:
    """The shell command that runs `config` on `cohort_dir` into `out_dir`."""
    args = ["thyrocad", "experiment", str(Path(cohort_dir).absolute())]
    args += ["--out", str(Path(out_dir).absolute())]
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if f.name == "weights":
            for model, file in value:
                args += [FLAGS[f.name], f"{model}={Path(file).absolute()}"]
        elif isinstance(value, bool):  # a flag: present or not
            args += [FLAGS[f.name]] if value else []
        elif f.name == "test_cohort":  # a folder, or none
            args += [FLAGS[f.name], str(Path(value).absolute())] if value else []
        else:
            args += [FLAGS[f.name], option_value(value)]
    return shlex.join(args)
