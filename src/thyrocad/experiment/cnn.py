"""Training and scoring the CNNs of an experiment: the engine run by run, or (head mode) the
heads of all splits at once on features cached from the frozen backbone.

`thyrocad.experiment.runner` calls these with the cohort's inputs; nothing here knows about
splits or reports.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from thyrocad.cache import Store
from thyrocad.models import (
    architecture,
    create_model,
    model_info,
    split_model,
    state_fingerprint,
)
from thyrocad.training import FeatureCache, TrainConfig, TrainData, TrainResult, train
from thyrocad.training.batched import same_size_groups, train_grouped
from thyrocad.training.feature_cache import default_feature_cache
from thyrocad.training.fit import frozen_outputs
from thyrocad.training.fit import predict_proba as training_predict_proba
from thyrocad.training.head_group import HeadFit, HeadRun, affine_head, train_heads
from thyrocad.training.history import EpochRecord
from thyrocad.training.runtime import resolve_device


@functools.lru_cache(maxsize=2)
def _feature_cache_at(directory: str) -> FeatureCache:
    return FeatureCache(Path(directory))


def feature_cache() -> FeatureCache:
    """This process's backbone-feature cache (memory + disk under `$THYROCAD_HOME`)."""
    return _feature_cache_at(str(default_feature_cache().directory))


def scratch_weights(model: str, seed: int) -> Path:
    """A random initialisation of `model` drawn once with `seed`, kept in the `init` cache.

    Every split of an experiment starts from this same file, so a frozen random backbone
    ('head' mode) gives the same features on every split and its feature cache is reused.
    """
    store = Store("init")
    name = f"{model}-seed{seed}-torch{torch.__version__}"
    path = store.path(name, ".pt")
    if not path.is_file():
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            state = create_model(model, weights="none").state_dict()
        with store.writer(name, ".pt") as fh:
            torch.save(state, fh)
    return path


def fit_one(data: TrainData, cfg: TrainConfig) -> TrainResult:
    """One run through the training engine."""
    return train(data, cfg, cache=feature_cache())


def fit_batched(runs: Sequence[tuple[TrainData, TrainConfig]]) -> list[TrainResult]:
    """Runs through the training engine, those of equal size as one batched computation
    (`thyrocad.training.batched.train_grouped`); results in order."""
    return train_grouped([r[0] for r in runs], [r[1] for r in runs], cache=feature_cache())


def predict_proba(fitted: TrainResult, x: np.ndarray) -> np.ndarray:
    """P(residual) of each image under a `TrainResult`'s model (through the cache of the frozen
    part's outputs in 'head' and 'last' modes)."""
    return training_predict_proba(fitted, torch.from_numpy(x), feature_cache())


def frozen_features(cfg: TrainConfig, x_all: np.ndarray) -> tuple[torch.nn.Module, torch.Tensor]:
    """(network with its initial weights, outputs of its frozen part for every image: the
    backbone features in 'head' mode, the last stage's inputs in 'last' mode), through this
    process's feature cache, keyed as the training engine keys them."""
    net = create_model(cfg.model, weights=cfg.weights).eval()
    fingerprint = state_fingerprint(net, exclude_prefix=architecture(cfg.model).spec.head_prefix)
    device = resolve_device(cfg.device)
    with torch.no_grad():
        feats = frozen_outputs(
            net, cfg, fingerprint, torch.from_numpy(x_all), feature_cache(), device
        )
    return net, feats


def initial_heads(
    net: torch.nn.Module, feature_shape: Sequence[int], seeds: Sequence[int], model: str
) -> list | None:
    """Each run's initial head as an `AffineHead`: the weights' own head, or a new one drawn
    after seeding with the run's seed (as `train` draws it); None when a head is not affine."""
    heads = []
    for seed in seeds:
        if not model_info(net).head_from_weights:
            with torch.random.fork_rng():
                torch.manual_seed(seed)
                architecture(model).replace_head(net, model_info(net).num_classes)
        head = affine_head(split_model(net).head, feature_shape)
        if head is None:
            return None
        heads.append(head)
    return heads


def train_head_group(
    feats: torch.Tensor, labels: np.ndarray, runs: Sequence[HeadRun], config
) -> list[HeadFit]:
    """Train the heads of `runs` together (`train_heads`), grouped by training-set size
    (runs of one group must have equally many rows); results in the order of `runs`."""
    y = torch.as_tensor(labels, dtype=torch.int64)
    fits: dict[int, HeadFit] = {}
    for members in _same_size_groups(runs):
        trained = train_heads(
            feats, y, [runs[i] for i in members], epochs=config.epochs,
            batch_size=config.batch_size, lr=config.lr, weight_decay=config.weight_decay,
        )  # fmt: skip
        fits.update(zip(members, trained, strict=True))
    return [fits[i] for i in range(len(runs))]


def _same_size_groups(runs: Sequence[HeadRun]) -> list[list[int]]:
    """Indices of `runs` grouped by their number of training rows, in order of first
    appearance (runs of one group train together)."""
    return same_size_groups([len(run.rows) for run in runs])


def history_series(history: Sequence[EpochRecord]) -> dict[str, list[float]]:
    """Per-epoch series (train/val loss and accuracy) from the engine's `EpochRecord`s."""
    out = {}
    for key in ("train_loss", "train_acc", "val_loss", "val_acc"):
        values = [getattr(r, key) for r in history]
        if values and all(v is not None for v in values):
            out[key] = [float(v) for v in values]
    return out
