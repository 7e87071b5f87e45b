"""`ExperimentConfig`: every setting that changes an experiment's results, checked up front.

Execution settings (workers, Ray, threads) do not change results and live in
`thyrocad.experiment.execute.Backend`. The CLI reads its defaults from these fields, and
`settings.json` of a results set loads back with `ExperimentConfig.from_dict`.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

from thyrocad.configs import Config
from thyrocad.decision import DEFAULT_INNER_FOLDS, VIEW_FUSIONS, parse_operating_point
from thyrocad.errors import ConfigError
from thyrocad.preprocess import PRESETS as PREPROCESS_PRESETS
from thyrocad.training.config import DEVICES, MODES

DEFAULT_MODELS = ("resnet18", "squeezenet1_1", "shufflenet_v2_x1_0", "efficientnet_lite0")
BASELINES = ("uptake_ratio",)  # the default
KNOWN_BASELINES = ("uptake_ratio", "peak", "cho")  # cho adds cho_true_bed on phantom cohorts
INITS = ("imagenet", "scratch", "imagenet-or-scratch")


@dataclass(frozen=True)
class ExperimentConfig(Config):
    """The paper's protocol: `n_splits` stratified patient-level splits, each model trained on
    the training part and tested on the test part of every split (Guo et al. 2021 defaults)."""

    models: tuple[str, ...] = DEFAULT_MODELS
    baselines: tuple[str, ...] = BASELINES
    n_splits: int = 10
    test_fraction: float = 0.25
    epochs: int = 80
    mode: str = "head"
    reference: str = "resnet18"
    seed: int = 0
    view_fusion: str = "mean"
    batch_size: int = 32
    lr: float = 1e-5
    weight_decay: float = 1e-5
    preprocess: str = "default"  # a thyrocad.preprocess preset name
    init: str = "imagenet"  # imagenet | scratch | imagenet-or-scratch (scratch where missing)
    device: str = "auto"  # training device (auto | cpu | cuda); part of the settings
    # how each CNN's threshold is chosen (thyrocad.decision.parse_operating_point); argmax is
    # the paper's protocol
    operating_point: str = "argmax"
    inner_folds: int = DEFAULT_INNER_FOLDS  # folds of the out-of-fold operating points
    allow_small: bool = False  # run although a test part holds fewer than 5 of a class
    test_cohort: str = ""  # an external labelled cohort every split's model is also scored on
    # explicit initial weights, (model, state_dict file) pairs: they replace --init for those
    # models (e.g. the torchvision ImageNet file of an offline machine)
    weights: tuple[tuple[str, str], ...] = ()
    # recipes run as rows of their own (their own preprocessing, backbone, mode and training
    # settings) on the same splits: thyrocad.experiment.recipes
    recipes: tuple[str, ...] = ()
    # train the splits of a 'full'/'last'-mode CNN as one batched computation
    # (thyrocad.training.batched); recorded in the settings only when on (`settings_dict`)
    batched_splits: bool = False

    def settings_dict(self) -> dict:
        """`to_dict` for a results set's identity: `batched_splits` only when on, so that the
        default's settings (and their hash) are those of a version without the option."""
        settings = self.to_dict()
        if not self.batched_splits:
            del settings["batched_splits"]
        return settings

    def __post_init__(self) -> None:
        problems = [p for check in _CHECKS for p in check(self)]
        if problems:
            raise ConfigError("invalid experiment settings: " + "; ".join(problems))


def _names(c: ExperimentConfig) -> list[str]:
    # here, not at the top: the registry loads torch, timm and torchvision, and the CLI imports
    # this module for its option defaults
    from thyrocad.models import list_models

    known = list_models()
    unknown = [m for m in c.models if m not in known]
    if unknown:
        guesses = [f"{m} (did you mean {g[0]}?)" if (g := _close(m, known)) else m for m in unknown]
        return [f"unknown model(s) {', '.join(guesses)}; known: {', '.join(known)}"]
    bad = [b for b in c.baselines if b not in KNOWN_BASELINES]
    if bad:
        return [f"unknown baseline(s) {', '.join(bad)}; known: {', '.join(KNOWN_BASELINES)}"]
    rows = (*c.models, *c.recipes, *c.baselines)
    if len(set(rows)) != len(rows):
        return ["a model, recipe or baseline is listed twice"]
    if not rows:
        return ["give at least one model, recipe or baseline"]
    if c.reference not in rows:
        return [
            f"--reference {c.reference} is not among the models, recipes or baselines run; "
            f"pick one of {', '.join(rows)}"
        ]
    return _recipes(c)


def _recipes(c: ExperimentConfig) -> list[str]:
    from thyrocad.experiment.recipes import experiment_recipe  # loads torch: see _names

    problems = []
    for name in c.recipes:
        try:
            experiment_recipe(name)
        except ConfigError as exc:
            problems.append(f"--recipes: {exc}")
    return problems


def _close(name: str, known: list[str]) -> list[str]:
    """Known names close to `name` (case ignored), best first."""
    lowered = {k.lower(): k for k in known}
    return [lowered[g] for g in difflib.get_close_matches(name.lower(), list(lowered), n=1)]


def _weights(c: ExperimentConfig) -> list[str]:
    problems = []
    models = [m for m, _ in c.weights]
    for model, file in c.weights:
        if model not in c.models:
            problems.append(f"--weights {model}={file}: {model} is not among --models")
        elif not Path(file).is_file():
            problems.append(f"--weights {model}={file}: no such file")
    if len(set(models)) != len(models):
        problems.append("--weights names a model twice")
    return problems


def _choices(c: ExperimentConfig) -> list[str]:
    pairs = (
        ("--mode", c.mode, MODES),
        ("--view-fusion", c.view_fusion, VIEW_FUSIONS),
        ("--init", c.init, INITS),
        ("--preset", c.preprocess, tuple(PREPROCESS_PRESETS)),
        ("--device", c.device, DEVICES),
    )
    return [
        f"{flag} must be one of {', '.join(options)}, got {value!r}"
        for flag, value, options in pairs
        if value not in options
    ]


def _numbers(c: ExperimentConfig) -> list[str]:
    problems = []
    if not 0.0 < c.test_fraction < 1.0:
        problems.append(
            f"--test-fraction must lie between 0 and 1 (a share of each class), got "
            f"{c.test_fraction:g}; e.g. 0.25 for the paper's 3:1 split"
        )
    for flag, value in (("--splits", c.n_splits), ("--epochs", c.epochs)):
        if value < 1:
            problems.append(f"{flag} must be >= 1, got {value}")
    if c.batch_size < 1:
        problems.append(f"--batch-size must be >= 1, got {c.batch_size}")
    if c.lr <= 0 or c.weight_decay < 0:
        problems.append("--lr must be > 0 and --weight-decay >= 0")
    if c.inner_folds < 2:
        problems.append(f"--inner-folds must be >= 2, got {c.inner_folds}")
    try:
        parse_operating_point(c.operating_point)
    except ConfigError as exc:
        problems.append(f"--operating-point: {exc}")
    return problems


_CHECKS = (_names, _weights, _choices, _numbers)
