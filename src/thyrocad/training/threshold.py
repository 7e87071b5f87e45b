"""A bundle's decision threshold, chosen on per-patient (view-fused) training probabilities."""

from __future__ import annotations

import numpy as np

from thyrocad.metrics import ThresholdChoice, choose_threshold
from thyrocad.training.config import TrainConfig
from thyrocad.training.data import TrainData
from thyrocad.training.fit import TrainResult


def patient_threshold(result: TrainResult, data: TrainData, config: TrainConfig) -> ThresholdChoice:
    """Threshold by the config's rule on the mean of each training patient's view probabilities,
    the same fusion `thyrocad.inference` applies, so the recorded sensitivity/specificity are
    those of the patient-level decision."""
    from thyrocad.protocol.experiment import fuse_views

    _, index = np.unique(np.asarray(data.groups), return_inverse=True)
    patients, prob = fuse_views(result.train_prob, index, ["unknown"] * len(index), "mean")
    y = data.y.numpy()
    labels = np.array([y[index == p][0] for p in patients])
    return choose_threshold(
        labels, prob, rule=config.threshold_rule, target=config.threshold_target
    )
