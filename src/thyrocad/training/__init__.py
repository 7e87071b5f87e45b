"""Transfer learning: the engine `train(TrainData, TrainConfig) -> TrainResult` (with checkpoints
and resume), many head-mode runs at once (`head_group`), and the workflow that turns a labelled
cohort into a model bundle (`train_bundle`).

See docs/training.md for the modes, the configuration, checkpoint/resume and the bundle format.
"""

from thyrocad.training.config import TrainConfig
from thyrocad.training.data import TrainData, patient_holdout
from thyrocad.training.feature_cache import FeatureCache
from thyrocad.training.fit import TrainResult, train
from thyrocad.training.history import EpochRecord, plot_history

__all__ = [
    "EpochRecord",
    "FeatureCache",
    "TrainConfig",
    "TrainData",
    "TrainResult",
    "patient_holdout",
    "plot_history",
    "train",
]
