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
from thyrocad.data.splits import Split, distinct_splits, per_class_test_counts, stratified_splits
from thyrocad.errors import ConfigError, WeightsError
from thyrocad.evaluation.baselines.cho import has_ground_truth
from thyrocad.experiment.cnn import scratch_weights
from thyrocad.experiment.config import ExperimentConfig
from thyrocad.experiment.recipes import experiment_recipe
from thyrocad.experiment.report import ModelEntry
from thyrocad.experiment.runner import ExperimentRun
from thyrocad.experiment.runs import RunSpec
from thyrocad.files import thyrocad_home
from thyrocad.models import create_model, model_info
from thyrocad.preprocess import preset
from thyrocad.training.recipes import Recipe
from thyrocad.training.runtime import resolve_device

SETTINGS_VERSION = 7  # 3: the one decision rule (0.4.0); 4: the device used, weights files;
# 5: operating points, external cohorts, CHO; 6: recipes; 7: the recommended recipe's window
# referenced to the background
MIN_TEST_PER_CLASS = 5
CLASS_NAMES = {0: "non-residual", 1: "residual"}


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
        together), and so they do in 'full'/'last' mode with `batched_splits` (one batched
        computation); every other run is a task of its own. Always the same tasks for the same
        settings, so a resumed experiment recomputes a task exactly as before."""
        tasks: list[tuple[RunSpec, ...]] = []
        batched = ("head", "full", "last") if self.config.batched_splits else ("head",)
        for e in (e for e in self.entries if e.ran):
            specs = tuple(RunSpec(e.name, e.kind, s.index) for s in self.splits)
            if e.kind == "model" and self.run_function().mode_of(e.name) in batched:
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
    check_sample_size(cohort.labels, config)
    external = load_cohort(config.test_cohort) if config.test_cohort else None
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
    recipes = {name: experiment_recipe(name) for name in config.recipes}
    entries += [_recipe_entry(r) for r in recipes.values()]
    for name in _baselines(cohort_dir, cohort.patient_ids, external, config):
        entries.append(ModelEntry(name, "baseline", "n/a (no network)", "n/a"))
    _check_reference(config, entries)
    settings = {
        "settings_version": SETTINGS_VERSION,
        "thyrocad_version": thyrocad.__version__,
        "cohort_data_hash": cohort.data_hash(),
        "cohort": _class_sizes(cohort.labels),
        "preprocess": pipeline_config.to_dict(),
        "experiment": config.settings_dict(),
        "models": [{"name": e.name, "kind": e.kind, "status": e.status} for e in entries],
        "recipes": {name: r.to_dict() for name, r in recipes.items()},
        "inits": inits,
        "device": device,
        "splits": [{"index": s.index, "seed": s.seed, "test": list(s.test)} for s in splits],
    }
    if external is not None:
        settings["test_cohort_data_hash"] = external.data_hash()
        settings["test_cohort"] = _class_sizes(external.labels)
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


def _class_sizes(labels) -> dict[str, int]:
    n_residual = int(sum(int(v) for v in labels))
    return {
        "n_patients": len(labels),
        "n_residual": n_residual,
        "n_non_residual": len(labels) - n_residual,
    }


def check_sample_size(labels, config: ExperimentConfig) -> None:
    """Refuse (`ConfigError`, one line) a test part with fewer than `MIN_TEST_PER_CLASS`
    patients of a class unless `allow_small`, and always more splits than distinct splits
    exist (they would repeat)."""
    counts = per_class_test_counts(labels, config.test_fraction)
    small = {CLASS_NAMES[c]: t for c, (_, t) in counts.items() if t < MIN_TEST_PER_CLASS}
    if small and not config.allow_small:
        held = ", ".join(f"{t} {name}" for name, t in small.items())
        raise ConfigError(
            f"each split's test part would hold only {held} patient(s) (fewer than "
            f"{MIN_TEST_PER_CLASS} of a class make SEN/SPE and DeLong meaningless); use a larger "
            "cohort or --test-fraction, or pass --allow-small"
        )
    if any(not 1 <= t < n for n, t in counts.values()):
        return  # drawing the splits refuses this with the class and its size
    distinct = distinct_splits(labels, config.test_fraction)
    if config.n_splits > distinct:
        raise ConfigError(
            f"--splits {config.n_splits} asks for more splits than the {distinct} distinct "
            f"stratified splits this cohort has; use --splits {distinct} or fewer"
        )


def _baselines(cohort_dir, patient_ids, external, config: ExperimentConfig) -> list[str]:
    """The baselines run: those asked for, and with `cho` on a phantom cohort (ground truth
    for every patient, of the external cohort too) also `cho_true_bed`."""
    names = list(config.baselines)
    phantom = has_ground_truth(cohort_dir, patient_ids) and (
        external is None or has_ground_truth(config.test_cohort, external.patient_ids)
    )
    if "cho" in names and phantom:
        names.insert(names.index("cho") + 1, "cho_true_bed")
    return names


def _recipe_entry(recipe: Recipe) -> ModelEntry:
    """The row of a recipe: its backbone and initialisation; unavailable (with the reason)
    when its initial weights are not on this machine."""
    weights, mode = recipe.train.weights, recipe.train.mode
    init = {"none": "scratch", "imagenet": "ImageNet"}.get(weights, f"file {Path(weights).name}")
    label = f"{init} ({recipe.train.model})"
    note = f"a recipe row ({recipe.summary})"
    if weights != "none":
        try:
            create_model(recipe.train.model, weights=weights)
        except WeightsError as exc:
            return ModelEntry(recipe.name, "model", label, mode, "unavailable", f"{note}: {exc}")
    return ModelEntry(recipe.name, "model", label, mode, reason=note)


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
