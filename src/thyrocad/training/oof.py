"""Out-of-fold predictions of the training patients: an inner stratified k-fold over them,
each fold's patients scored by a model trained without them (`thyrocad.decision` then
chooses an operating point on these predictions instead of on memorised ones).

In 'head' mode each fold trains only a head on cached backbone features (cheap); in 'last' and
'full' mode each fold is a full extra training run, `k` of them per model.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence

import numpy as np

from thyrocad.data.splits import stratified_folds
from thyrocad.training.config import TrainConfig
from thyrocad.training.data import TrainData
from thyrocad.training.feature_cache import FeatureCache
from thyrocad.training.fit import TrainResult, predict_proba, train

logger = logging.getLogger(__name__)


def fold_seed(seed: int, fold: int) -> int:
    """The training seed of inner fold `fold` of a run seeded with `seed`."""
    return int(np.random.SeedSequence([seed, 7919, fold]).generate_state(1)[0])


def patient_folds(groups: tuple[str, ...] | list[str], labels, k: int, seed: int) -> list:
    """Held-out image masks of an inner stratified k-fold over the patients of `groups` (one
    label per patient, from the images' `labels`), in fold order."""
    groups_arr = np.asarray(groups)
    patients, first = np.unique(groups_arr, return_index=True)
    folds = stratified_folds(np.asarray(labels)[first], k, seed)
    return [np.isin(groups_arr, patients[held]) for held in folds]


def fold_runs(
    data: TrainData, config: TrainConfig
) -> list[tuple[np.ndarray, TrainData, TrainConfig]]:
    """(held-out image mask, training data, config) of each inner fold of a run on `data`."""
    masks = patient_folds(data.groups, data.y.numpy(), config.inner_folds, config.seed)
    if config.mode != "head":
        logger.info("out-of-fold threshold: %d extra %s-mode trainings", len(masks), config.mode)
    return [
        (held, data.subset(np.flatnonzero(~held)),
         dataclasses.replace(config, seed=fold_seed(config.seed, fold)))
        for fold, held in enumerate(masks)
    ]  # fmt: skip


def held_out_probabilities(
    data: TrainData, masks: Sequence[np.ndarray], fits: Sequence[TrainResult],
    cache: FeatureCache | None = None,
) -> np.ndarray:  # fmt: skip
    """P(residual) of every image of `data` from the fold model (`fits`, in the order of the
    held-out `masks`) that did not see its patient."""
    prob = np.full(len(data), np.nan)
    for held, fitted in zip(masks, fits, strict=True):
        prob[held] = predict_proba(fitted, data.subset(np.flatnonzero(held)).x, cache)
    return prob


def oof_probabilities(
    data: TrainData, config: TrainConfig, cache: FeatureCache | None = None
) -> tuple[np.ndarray, int]:
    """(P(residual) of every image of `data` from the fold model that did not see its
    patient, the number of folds used)."""
    folds = fold_runs(data, config)
    fits = [train(fold_data, fold_config, cache=cache) for _, fold_data, fold_config in folds]
    return held_out_probabilities(data, [f[0] for f in folds], fits, cache), len(folds)
