"""Toy training data and small training settings shared by the training-engine tests."""

from __future__ import annotations

import numpy as np
from typer.testing import CliRunner

from thyrocad.cli.main import app
from thyrocad.training import TrainConfig, TrainData


def cli_cohort(tmp_path_factory, seed: int):
    """A 16-patient phantom cohort (10 residual) made by `thyrocad phantom`."""
    out = tmp_path_factory.mktemp("phantom") / "cohort"
    args = ["phantom", str(out), "--patients", "16", "--residual", "10", "--seed", str(seed)]
    result = CliRunner().invoke(app, [*args, "--workers", "1"])
    assert result.exit_code == 0, result.output
    return out


def toy_data(n: int = 24, size: int = 48, seed: int = 0, residual_share: float = 0.75) -> TrainData:
    """Two views per patient ID; residual images carry a bright central blob."""
    rng = np.random.default_rng(seed)
    y = (np.arange(n) < round(n * residual_share)).astype(int)
    x = rng.normal(0.0, 1.0, size=(n, 3, size, size)).astype(np.float32)
    c = slice(size // 3, 2 * size // 3)
    x[y == 1, :, c, c] += 2.0
    return TrainData.build(x, y, [f"p{i // 2:03d}" for i in range(n)])


def small(**kw) -> TrainConfig:
    """SqueezeNet 1.1 from random weights, 3 epochs, lr 1e-3, batch 8, seed 5 (overridable)."""
    base = dict(model="squeezenet1_1", weights="none", epochs=3, lr=1e-3, batch_size=8, seed=5)
    return TrainConfig(**{**base, **kw})
