"""From a labelled cohort to a model bundle: the one train workflow.

`thyrocad train`, the tests' fixtures and the benchmarks all make bundles with `train_bundle`:

    cohort --preprocess (cached; unusable views dropped)--> TrainData --train--> TrainResult
        --threshold on the training patients' fused probabilities (thyrocad.decision)-->
        bundle (thyrocad.bundle)

Every view of every patient is one training image labelled with its patient's label, except
views `thyrocad.decision` would not classify (blank or flat crop), which `predict` skips too.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from thyrocad.bundle.format import Threshold, write_bundle
from thyrocad.data.cohort import Cohort, load_cohort
from thyrocad.decision import choose_threshold, fuse_by_patient, view_usable
from thyrocad.models import architecture
from thyrocad.preprocess import Pipeline, PipelineConfig, PreprocessCache, preset
from thyrocad.training.config import TrainConfig
from thyrocad.training.data import TrainData, patient_holdout
from thyrocad.training.feature_cache import default_feature_cache
from thyrocad.training.fit import TrainResult, train
from thyrocad.training.history import EpochRecord, plot_history

logger = logging.getLogger(__name__)

FUSION = "mean"  # the view fusion `thyrocad train` records in its bundles


@dataclass(frozen=True)
class CohortData:
    """A cohort's training images and what was left out of them."""

    data: TrainData
    views: tuple[str, ...]  # view name of each image
    n_unusable: int  # views left out (blank or flat crop)


@dataclass(frozen=True)
class TrainedBundle:
    """What `train_bundle` made."""

    path: Path
    result: TrainResult
    threshold: Threshold
    n_train_views: int
    n_val_views: int
    n_unusable_views: int


def pipeline_for(model_name: str, config: PipelineConfig) -> Pipeline:
    """`config` with the input normalisation that `model_name`'s weights expect (PITFALLS 4.5)."""
    spec = architecture(model_name).spec
    return Pipeline(config.with_normalisation(spec.mean, spec.std))


def cohort_train_data(
    cohort: Cohort, pipeline: Pipeline, cache: PreprocessCache | None = None
) -> CohortData:
    """Every usable view of every patient, preprocessed (through `cache` when given).

    `groups` holds the patient ID, so a patient-level holdout keeps both views on one side."""
    x, y, groups, views, unusable = [], [], [], [], 0
    for patient in cohort.patients:
        study, beds = patient.load_study_with_beds()  # beds set in labels.csv, by view
        for image in study.images:
            bed = beds.get(image.view.value)
            if cache is not None:
                out = cache.get_or_compute(pipeline, image.counts, study.pixel_spacing_mm, bed)
            else:
                out = pipeline.run(image.counts, study.pixel_spacing_mm, bed).output
            if not view_usable(out.flags):
                unusable += 1
                continue
            x.append(out.network_input)
            y.append(patient.label)
            groups.append(patient.patient_id)
            views.append(image.view.value)
    logger.info(
        "preprocessed %d views of %d patients (%d unusable left out)",
        len(x) + unusable, len(cohort.patients), unusable,
    )  # fmt: skip
    return CohortData(TrainData.build(np.stack(x), y, groups), tuple(views), unusable)


def patient_threshold(
    result: TrainResult, data: TrainData, views: tuple[str, ...], config: TrainConfig
) -> Threshold:
    """The threshold by the config's rule on the training patients' view-fused probabilities
    (the same fusion the bundle records), so its sensitivity/specificity are the patient-level
    decision's on the training data."""
    _, index = np.unique(np.asarray(data.groups), return_inverse=True)
    patients, prob, _ = fuse_by_patient(
        result.train_prob, index, views, np.ones(len(index), bool), FUSION
    )
    y = data.y.numpy()
    labels = np.array([y[index == p][0] for p in patients])
    choice = choose_threshold(
        labels, prob, rule=config.threshold_rule, target=config.threshold_target
    )
    return Threshold(
        value=choice.threshold,
        rule=choice.rule,
        sensitivity=choice.sensitivity,
        specificity=choice.specificity,
        target=choice.target,
        level="patient",
        source="training",
    )


def train_bundle(
    cohort: str | Path | Cohort,
    config: TrainConfig,
    out: str | Path,
    *,
    preprocess: str | PipelineConfig = "default",
    resume: bool = False,
    on_epoch: Callable[[EpochRecord], None] | None = None,
    extra: dict | None = None,
) -> TrainedBundle:
    """Train `config.model` on `cohort` and write its bundle to `out`.

    `preprocess` is a preset name or a config; `extra` adds manifest keys. Checkpoints go to
    `out/checkpoint` while training (`resume` continues from there) and are removed once the
    bundle is written."""
    out = Path(out)
    if not isinstance(cohort, Cohort):
        cohort = load_cohort(cohort, read=False)
    base = preset(preprocess) if isinstance(preprocess, str) else preprocess
    pipeline = pipeline_for(config.model, base)
    prepared = cohort_train_data(cohort, pipeline, PreprocessCache())
    data, views, val = prepared.data, prepared.views, None
    if config.val_fraction > 0:
        data, val = patient_holdout(data, config.val_fraction, config.seed)
        kept = set(data.groups)
        views = tuple(
            v for v, g in zip(prepared.views, prepared.data.groups, strict=True) if g in kept
        )
    result = train(
        data, config, run_dir=out / "checkpoint", resume=resume, val=val,
        cache=default_feature_cache(), on_epoch=on_epoch,
    )  # fmt: skip
    threshold = patient_threshold(result, data, views, config)
    manifest = {
        "mode": config.mode,
        "data_hash": cohort.data_hash(),
        "backbone_fingerprint": result.backbone_fingerprint,
        "train_class_counts": {
            "non_residual": result.class_counts[0],
            "residual": result.class_counts[1],
        },
        "cohort": {
            "n_patients": len(cohort.patients),
            "n_train_views": len(data),
            "n_unusable_views": prepared.n_unusable,
        },
        **(extra or {}),
    }
    write_bundle(
        out,
        result.model,
        train_config=config.to_dict(),
        pipeline=pipeline.config,
        threshold=threshold,
        fusion=FUSION,
        history=[r.to_dict() for r in result.history],
        plot_history=lambda path: plot_history(result.history, path, title=config.model),
        extra=manifest,
    )
    shutil.rmtree(out / "checkpoint", ignore_errors=True)  # the bundle supersedes it
    return TrainedBundle(
        out, result, threshold, len(data), len(val) if val is not None else 0, prepared.n_unusable
    )
