"""Settings of the session fixtures in conftest.py (phantom cohorts, tiny training runs), for
tests that check what the fixtures were made with."""

from __future__ import annotations

from thyrocad.data.phantom import PhantomConfig
from thyrocad.training import TrainConfig

# The inference / explain / DICOM-results / export tests: 4 patients (2 residual), two-view NM
# DICOM files, and a ResNet-18 bundle trained on them for 2 epochs.
INFERENCE_PHANTOM = PhantomConfig(n_patients=4, n_residual=2, seed=11)
INFERENCE_MODEL, INFERENCE_EPOCHS = "resnet18", 2
# The server, browser, DICOM-node and Orthanc tests: 6 patients (3 residual) and a
# SqueezeNet 1.1 bundle trained on them for 3 epochs.
SERVER_PHANTOM = PhantomConfig(n_patients=6, n_residual=3, seed=7)
SERVER_MODEL, SERVER_EPOCHS = "squeezenet1_1", 3


def tiny_train_config(model: str, epochs: int) -> TrainConfig:
    """The test bundles' training settings (seconds on a CPU, no weights download): head mode,
    random backbone weights, lr 1e-3, batch 4."""
    return TrainConfig(
        model=model, weights="none", mode="head", epochs=epochs, lr=1e-3, batch_size=4, device="cpu"
    )
