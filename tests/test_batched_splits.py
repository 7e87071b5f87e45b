"""thyrocad.training.batched: the splits of a model trained as one vmapped computation give
each split the result of training it alone (real small ResNet-18 runs on the CPU)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from thyrocad.models import create_model
from thyrocad.training import FeatureCache, TrainConfig, train, train_splits
from training_helpers import toy_data

pytestmark = pytest.mark.usefixtures("one_thread")


def _configs(mode: str, **kw) -> list[TrainConfig]:
    base = dict(model="resnet18", weights="none", mode=mode, epochs=2, lr=1e-5, batch_size=6)
    return [TrainConfig(**{**base, **kw, "seed": seed}) for seed in (5, 6)]


def _flat(model: torch.nn.Module, names: list[str]) -> torch.Tensor:
    state = model.state_dict()
    return torch.cat([state[k].flatten().float() for k in names])


@pytest.mark.parametrize(
    ("mode", "augment"),
    [("full", {}), ("last", {}), ("full", {"flip": True, "shift_px": 2})],
)
def test_batched_splits_equal_training_each_split_alone(mode, augment):
    """Also with the recommended recipe's flips and shifts: each split draws them from its own
    generator, batched or alone."""
    datas = [toy_data(n=12, size=32, seed=s) for s in (0, 1)]
    configs = _configs(mode, **augment)
    batched = train_splits(datas, configs, FeatureCache())
    for data, config, together in zip(datas, configs, batched, strict=True):
        alone = train(data, config, cache=FeatureCache())
        for a, b in zip(alone.history, together.history, strict=True):
            assert a.sampled_counts == b.sampled_counts  # each split's own sampler stream
            assert b.train_loss == pytest.approx(a.train_loss, rel=1e-3)
        np.testing.assert_allclose(together.train_prob, alone.train_prob, atol=1e-4)
        torch.manual_seed(config.seed)
        init = create_model("resnet18", weights="none")
        names = [k for k, v in init.state_dict().items() if v.is_floating_point()]
        moved = (_flat(alone.model, names) - _flat(init, names)).norm()
        apart = (_flat(together.model, names) - _flat(alone.model, names)).norm()
        assert moved > 0 and apart < 0.05 * moved, (float(apart), float(moved))


def test_batched_splits_refuse_what_they_cannot_batch():
    datas = [toy_data(n=12, size=32, seed=0), toy_data(n=10, size=32, seed=1)]
    with pytest.raises(ValueError, match="equal size"):
        train_splits(datas, _configs("full"))
    with pytest.raises(ValueError, match="differ in lr"):
        train_splits(datas[:1] * 2, [_configs("full")[0], _configs("full", lr=1e-4)[1]])
    with pytest.raises(ValueError, match="frozen part must be cached"):
        train_splits(datas[:1] * 2, _configs("head", cache_features=False))
