"""Transfer learning: the engine `train(TrainData, TrainConfig) -> TrainResult` (with checkpoints
and resume), many head-mode runs at once (`head_group`), the runs of several splits as one
batched computation (`train_splits`), and the workflow that turns a labelled
cohort into a model bundle (`train_bundle`).

See docs/training.md for the modes, the configuration, checkpoint/resume and the bundle format.

The names below load on first use (PEP 562), so that `thyrocad.training.config` can be read
without loading torch (the CLI does, for its option defaults).
"""

import importlib

_EXPORTS = {
    "EpochRecord": "history",
    "FeatureCache": "feature_cache",
    "TrainConfig": "config",
    "TrainData": "data",
    "TrainResult": "fit",
    "patient_holdout": "data",
    "plot_history": "history",
    "train": "fit",
    "train_grouped": "batched",
    "train_splits": "batched",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
