"""Planning an experiment: everything decided before anything is trained.

The cohort is validated, the splits drawn (the same for every model, so results are paired),
each backbone's initial weights resolved (ImageNet, or a fixed random initialisation), and the
settings that make up the results set's identity fixed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import thyrocad
from thyrocad.data.cohort import load_cohort
from thyrocad.data.splits import Split, stratified_splits
from thyrocad.errors import ConfigError, WeightsError
from thyrocad.experiment.cnn import scratch_weights
from thyrocad.experiment.config import ExperimentConfig
from thyrocad.experiment.report import ModelEntry
from thyrocad.experiment.runner import ExperimentRun
from thyrocad.experiment.runs import RunSpec
from thyrocad.files import thyrocad_home
from thyrocad.models import create_model, model_info
from thyrocad.preprocess import preset
from thyrocad.training.runtime import resolve_device

SETTINGS_VERSION = 4  # 3: the one decision rule (0.4.0); 4: the device used, weights files


@dataclass
class ExperimentPlan:
    """What will run, decided before anything is trained."""

    cohort_dir: Path
    config: ExperimentConfig
    data_hash: str
    pipeline_json: str
    splits: tuple[Split, ...]
    entries: list[ModelEntry]
    weights: dict[str, str]  # model -> "imagenet" | the file of its fixed random initialisation
    settings: dict[str, Any]

    @property
    def specs(self) -> list[RunSpec]:
        """Runs grouped by model (warm caches), then by split."""
        return [spec for task in self.tasks for spec in task]

    @property
    def tasks(self) -> list[tuple[RunSpec, ...]]:
        """Units of work: in 'head' mode all splits of a CNN form one task (their heads train
        together); every other run is a task of its own. Always the same tasks for the same
        settings, so a resumed experiment recomputes a task exactly as before."""
        tasks: list[tuple[RunSpec, ...]] = []
        for e in (e for e in self.entries if e.ran):
            specs = tuple(RunSpec(e.name, e.kind, s.index) for s in self.splits)
            if e.kind == "model" and self.config.mode == "head":
                tasks.append(specs)
            else:
                tasks.extend((spec,) for spec in specs)
        return tasks

    def run_function(self) -> ExperimentRun:
        """The picklable run function, with this process's cache folder for its workers."""
        return ExperimentRun(
            str(self.cohort_dir),
            self.pipeline_json,
            self.config,
            self.splits,
            self.weights,
            str(thyrocad_home().absolute()),
        )


def plan_experiment(cohort_dir: Path | str, config: ExperimentConfig) -> ExperimentPlan:
    """Validate the cohort, draw the splits, resolve each model's weights, fix the settings."""
    cohort = load_cohort(cohort_dir)
    splits = tuple(
        stratified_splits(
            cohort.patient_ids, cohort.labels, config.n_splits, config.test_fraction, config.seed
        )
    )
    pipeline_config = preset(config.preprocess)
    device = str(resolve_device(config.device))
    files = dict(config.weights)
    entries, inits, weights = [], {}, {}
    for name in config.models:
        if name in files:
            entry, inits[name] = _file_model(name, files[name], config.mode)
            weights[name] = str(Path(files[name]).absolute())
        else:
            entry, inits[name] = _resolve_model(name, config.init, config.mode, config.seed)
            weights[name] = (
                str(scratch_weights(name, config.seed)) if inits[name] == "scratch" else "imagenet"
            )
        entries.append(entry)
    for name in config.baselines:
        entries.append(ModelEntry(name, "baseline", "n/a (no network)", "n/a"))
    _check_reference(config, entries)
    settings = {
        "settings_version": SETTINGS_VERSION,
        "thyrocad_version": thyrocad.__version__,
        "cohort_data_hash": cohort.data_hash(),
        "preprocess": pipeline_config.to_dict(),
        "experiment": config.to_dict(),
        "models": [{"name": e.name, "kind": e.kind, "status": e.status} for e in entries],
        "inits": inits,
        "device": device,
        "splits": [{"index": s.index, "seed": s.seed, "test": list(s.test)} for s in splits],
    }
    return ExperimentPlan(
        cohort_dir=Path(cohort_dir).absolute(),
        config=config,
        data_hash=cohort.data_hash(),
        pipeline_json=pipeline_config.to_json(),
        splits=splits,
        entries=entries,
        weights=weights,
        settings=settings,
    )


def _file_model(name: str, file: str, mode: str) -> tuple[ModelEntry, str]:
    """(ModelEntry, "file:<sha256>") of a backbone given its initial weights as a file
    (`--weights MODEL=FILE`); a file that does not fit the model raises `WeightsError`."""
    source = model_info(create_model(name, weights=file)).weights
    label = f"file {Path(file).name} (sha256 {source.sha256[:12]})"
    return ModelEntry(name, "model", label, mode), f"file:{source.sha256}"


def _check_reference(config: ExperimentConfig, entries: list[ModelEntry]) -> None:
    """Refuse, before anything runs, an experiment whose reference model cannot run: every
    p-value would be n/a. The message names both remedies."""
    reference = next(e for e in entries if e.name == config.reference)
    if reference.ran:
        return
    others = [e.name for e in entries if e.ran]
    other = f"--reference {others[0]}" if others else "--reference with an available model"
    raise ConfigError(
        f"the reference model {reference.name} cannot run, so every comparison with it would "
        f"be n/a. Either give its weights: --weights {reference.name}=FILE (or the hub-cache "
        f"file named below); or run without them: --init imagenet-or-scratch (a random "
        f"initialisation, stated in the report) or {other}. Why: {reference.reason}"
    )


def _resolve_model(name: str, init: str, mode: str, seed: int) -> tuple[ModelEntry, str]:
    """(ModelEntry, "imagenet" | "scratch") of a backbone; loads its ImageNet weights once."""
    scratch = f"scratch (random initialisation, seed {seed})"
    if init == "scratch":
        return ModelEntry(name, "model", scratch, mode), "scratch"
    try:
        source = model_info(create_model(name, weights="imagenet")).weights
    except WeightsError as exc:
        if init == "imagenet-or-scratch":
            label = f"{scratch}, ImageNet weights unavailable"
            return ModelEntry(name, "model", label, mode, reason=str(exc)), "scratch"
        return ModelEntry(name, "model", "ImageNet", mode, "unavailable", str(exc)), "imagenet"
    return ModelEntry(name, "model", f"ImageNet ({source.kind})", mode), "imagenet"
