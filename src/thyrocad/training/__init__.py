"""Transfer-learning engine: `train(TrainData, TrainConfig) -> TrainResult`, bundles, checkpoints.

See docs/training.md for the modes, the configuration, checkpoint/resume and the bundle format.
"""

from thyrocad.training.bundle import read_bundle, write_bundle
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
    "read_bundle",
    "train",
    "write_bundle",
]
