"""Heads of several runs trained at once: the closed-form gradient, head recognition, the
independence of runs within a group, dropout masks, and agreement with the training engine."""

import numpy as np
import pytest
import torch
from torch import nn

from thyrocad.models import create_model, split_model
from thyrocad.training import TrainConfig, TrainData, train
from thyrocad.training.head_group import (
    AffineHead,
    HeadRun,
    _cross_entropy_grads,
    _DropoutMasks,
    affine_head,
    train_heads,
)

SETTINGS = {"epochs": 3, "batch_size": 8, "lr": 1e-2, "weight_decay": 1e-5}


def test_closed_form_gradient_equals_autograd():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 5, 7, generator=gen)
    y = torch.randint(0, 2, (3, 5), generator=gen)
    weight = torch.randn(3, 2, 7, generator=gen, requires_grad=True)
    bias = torch.randn(3, 2, generator=gen, requires_grad=True)
    logits = torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))
    per_run = torch.stack(
        [nn.functional.cross_entropy(logits[k], y[k]) for k in range(3)]
    )  # each run's mean loss
    per_run.sum().backward()
    losses, grad_w, grad_b = _cross_entropy_grads(logits.detach(), y, x)
    torch.testing.assert_close(losses.float(), per_run.detach())
    torch.testing.assert_close(grad_w, weight.grad)
    torch.testing.assert_close(grad_b, bias.grad)


@pytest.mark.parametrize(
    ("name", "dropout"),
    [
        ("resnet18", 0.0),
        ("squeezenet1_1", 0.5),
        ("shufflenet_v2_x1_0", 0.0),
        ("efficientnet_lite0", 0.2),
    ],
)
def test_every_registered_head_is_recognised_with_its_dropout(name, dropout):
    parts = split_model(create_model(name, weights="none").eval())
    with torch.no_grad():
        feature_shape = parts.backbone(torch.zeros(1, 3, 224, 224)).shape[1:]
    head = affine_head(parts.head, feature_shape)
    assert head is not None and head.dropout == dropout
    assert head.weight.shape == (2, int(np.prod(feature_shape)))


def test_a_head_that_is_not_one_affine_map_is_refused():
    assert affine_head(nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)), (4,)) is None
    two_dropouts = nn.Sequential(nn.Dropout(0.1), nn.Dropout(0.2), nn.Linear(4, 2))
    assert affine_head(two_dropouts, (4,)) is None
    assert affine_head(nn.Linear(4, 2), (5,)) is None  # features of another size


def _problem(n_runs: int, dropout: float):
    gen = torch.Generator().manual_seed(1)
    features = torch.randn(40, 6, generator=gen)
    labels = (features[:, 0] > 0).long()
    rng = np.random.default_rng(2)
    runs = [
        HeadRun(
            np.sort(rng.choice(40, 24, replace=False)),
            seed=10 + k,
            init=AffineHead(dropout, torch.randn(2, 6, generator=gen) * 0.1, torch.zeros(2)),
        )
        for k in range(n_runs)
    ]
    return features, labels, runs


@pytest.mark.parametrize("dropout", [0.0, 0.5])
def test_a_run_trains_the_same_alone_or_in_a_group(dropout):
    features, labels, runs = _problem(3, dropout)
    together = train_heads(features, labels, runs, **SETTINGS)
    alone = train_heads(features, labels, runs[1:2], **SETTINGS)[0]
    torch.testing.assert_close(together[1].weight, alone.weight, rtol=1e-5, atol=1e-6)
    assert [r.train_loss for r in together[1].history] == pytest.approx(
        [r.train_loss for r in alone.history], rel=1e-5
    )
    assert not torch.equal(together[0].weight, together[1].weight)  # own seeds, own results


def test_runs_of_a_group_need_equally_many_rows():
    features, labels, runs = _problem(2, 0.0)
    runs[1] = HeadRun(runs[1].rows[:-1], runs[1].seed, runs[1].init)
    with pytest.raises(ValueError, match="equally many training rows"):
        train_heads(features, labels, runs, **SETTINGS)


def test_dropout_masks_keep_the_rate_and_scale():
    mask = _DropoutMasks(0.2, [1, 2]).epoch((500, 200)).numpy()
    assert mask.shape == (2, 500, 200)
    assert set(np.unique(mask)) == {np.float32(0.0), np.float32(1.25)}
    assert (mask == 0).mean() == pytest.approx(0.2, abs=0.005)
    assert not np.array_equal(mask[0], mask[1])
    again = _DropoutMasks(0.2, [1, 2]).epoch((500, 200)).numpy()
    assert np.array_equal(mask, again)  # seeded: the same masks every time
    assert _DropoutMasks(0.0, [1]).epoch((5, 5)) is None


def test_without_dropout_a_group_run_equals_the_engine_on_cached_features():
    """`train` in 'head' mode (cached features, a new Linear head) and `train_heads` from the
    same initial head, seed and data: the same sampler draws and Adam steps, so the same
    model to float rounding."""
    gen = torch.Generator().manual_seed(3)
    images = torch.randn(16, 3, 32, 32, generator=gen)
    labels = torch.tensor([0, 1] * 8)
    config = TrainConfig(model="resnet18", weights="none", mode="head", epochs=3, batch_size=4,
                         lr=1e-2, seed=7)  # fmt: skip
    fitted = train(TrainData.build(images, labels), config)
    torch.manual_seed(7)  # the engine seeds, then builds the model and its head
    net = create_model("resnet18", weights="none").eval()
    parts = split_model(net)
    with torch.no_grad():
        features = parts.backbone(images)
    init = affine_head(parts.head, features.shape[1:])
    run = HeadRun(np.arange(16), seed=7, init=init)
    fit = train_heads(features, labels, [run], epochs=3, batch_size=4, lr=1e-2,
                      weight_decay=config.weight_decay)[0]  # fmt: skip
    np.testing.assert_allclose(fit.probabilities(features), fitted.train_prob, atol=1e-5)
    assert [r.train_loss for r in fit.history] == pytest.approx(
        [r.train_loss for r in fitted.history], rel=1e-4
    )
