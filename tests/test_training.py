"""thyrocad.training: real small training runs (reproducibility, feature cache, bad input)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from thyrocad.bundle.format import load_bundle, write_bundle
from thyrocad.errors import ConfigError, TrainingDataError
from thyrocad.evaluation.metrics import binary_metrics
from thyrocad.models import create_model
from thyrocad.preprocess import preset
from thyrocad.training import (
    FeatureCache,
    TrainConfig,
    TrainData,
    patient_holdout,
    plot_history,
    train,
)
from thyrocad.training.fit import predict_proba
from thyrocad.training.workflow import patient_threshold
from training_helpers import small, toy_data

pytestmark = pytest.mark.usefixtures("one_thread")


def test_same_seed_gives_bit_identical_weights():
    data = toy_data()
    first = train(data, small(mode="full"))
    second = train(data, small(mode="full"))
    for (k, a), b in zip(
        first.model.state_dict().items(), second.model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), k
    other = train(data, small(mode="full", seed=6))
    assert not torch.equal(other.model.classifier[1].weight, first.model.classifier[1].weight)


@pytest.mark.parametrize("name", ["squeezenet1_1", "efficientnet_lite0"])
def test_cached_head_training_equals_recomputing_features(name):
    data = toy_data(n=20, size=64)
    weights = "imagenet" if name == "efficientnet_lite0" else "none"
    cfg = small(model=name, weights=weights, mode="head", epochs=4)
    cache = FeatureCache()
    cached = train(data, cfg, cache=cache)
    recomputed = train(data, TrainConfig(**{**cfg.to_dict(), "cache_features": False}))
    assert cache.computed == len(data)
    for k, a in cached.model.state_dict().items():
        torch.testing.assert_close(a, recomputed.model.state_dict()[k], rtol=1e-4, atol=1e-6)
    for a, b in zip(cached.history, recomputed.history, strict=True):
        assert a.train_loss == pytest.approx(b.train_loss, rel=1e-4)
        assert a.sampled_counts == b.sampled_counts


@pytest.mark.parametrize(
    "name", ["resnet18", "squeezenet1_1", "shufflenet_v2_x1_0", "efficientnet_lite0"]
)
def test_cached_last_training_equals_recomputing_the_prefix(name, tmp_path):
    """'last' mode on cached prefix activations trains the same weights and predicts the same
    probabilities as running the whole network every step (BatchNorm of the prefix frozen)."""
    data = toy_data(n=12, size=48)
    weights = "imagenet" if name == "efficientnet_lite0" else "none"
    cfg = small(model=name, weights=weights, mode="last", epochs=2, batch_size=4)
    cache = FeatureCache(tmp_path / "features")
    cached = train(data, cfg, cache=cache)
    recomputed = train(data, TrainConfig(**{**cfg.to_dict(), "cache_features": False}))
    assert cache.computed == len(data)
    assert any((tmp_path / "features").glob("prefix-*"))  # not the head-mode features' folder
    init = create_model(name, weights=weights).state_dict()
    changed = 0
    for k, a in cached.model.state_dict().items():
        torch.testing.assert_close(a, recomputed.model.state_dict()[k], rtol=1e-4, atol=1e-5)
        changed += not torch.equal(a, init[k]) and a.is_floating_point()
    assert changed > 0
    np.testing.assert_allclose(cached.train_prob, recomputed.train_prob, rtol=1e-4, atol=1e-5)
    probe = toy_data(n=4, size=48, seed=3).x
    np.testing.assert_allclose(
        predict_proba(cached, probe, cache), predict_proba(recomputed, probe), rtol=1e-4, atol=1e-5
    )
    for a, b in zip(cached.history, recomputed.history, strict=True):
        assert a.train_loss == pytest.approx(b.train_loss, rel=1e-4)
        assert a.sampled_counts == b.sampled_counts


def test_cached_head_epochs_leave_the_thread_count_as_it_was():
    torch.set_num_threads(2)
    train(toy_data(n=12, size=32), small(mode="head", epochs=1), cache=FeatureCache())
    assert torch.get_num_threads() == 2


def test_head_mode_trains_only_the_head():
    data = toy_data()
    result = train(data, small(mode="head", epochs=2))
    torch.manual_seed(5)
    untouched = create_model("squeezenet1_1", weights="none")  # train() seeds before building
    for k, v in result.model.state_dict().items():
        if k.startswith("features."):
            assert torch.equal(v, untouched.state_dict()[k]), k
    assert not torch.equal(result.model.classifier[1].weight, untouched.classifier[1].weight)


def test_last_mode_trains_last_stage_and_head_only():
    data = toy_data()
    result = train(data, small(mode="last", epochs=2))
    torch.manual_seed(5)
    init = create_model("squeezenet1_1", weights="none").state_dict()
    state = result.model.state_dict()
    assert torch.equal(state["features.0.weight"], init["features.0.weight"])
    assert not torch.equal(state["features.12.squeeze.weight"], init["features.12.squeeze.weight"])


def test_feature_cache_on_disk_is_reused(tmp_path):
    data = toy_data(n=16)
    cfg = small(mode="head", epochs=1)
    first = FeatureCache(tmp_path / "features")
    train(data, cfg, cache=first)
    assert first.computed == 16
    files = list((tmp_path / "features").rglob("*.npy"))
    assert len(files) == 16
    second = FeatureCache(tmp_path / "features")
    train(data, cfg, cache=second)
    assert second.computed == 0
    third = FeatureCache(tmp_path / "features")
    train(data, small(mode="head", epochs=1, seed=9), cache=third)  # other random backbone
    assert third.computed == 16


def test_sampler_balances_classes_and_history_is_complete():
    data = toy_data(n=32, residual_share=0.8)
    result = train(data, small(mode="head", epochs=6))
    assert [r.epoch for r in result.history] == list(range(1, 7))
    drawn = np.array([r.sampled_counts for r in result.history]).sum(axis=0)
    assert sum(drawn) == 6 * 32
    assert abs(drawn[0] - drawn[1]) < 0.25 * sum(drawn)  # 20 % non-residual in the data
    assert all(r.val_loss is None for r in result.history)


def test_validation_holdout_is_by_patient():
    data = toy_data(n=40)
    fit_part, val_part = patient_holdout(data, 0.25, seed=1)
    assert not set(fit_part.groups) & set(val_part.groups)
    assert len(fit_part) + len(val_part) == 40
    result = train(fit_part, small(mode="head", epochs=2), val=val_part)
    assert all(r.val_loss is not None and r.val_loss > 0 for r in result.history)
    # accuracy over the held-out images: a whole number of them right
    for r in result.history:
        right = r.val_acc * len(val_part)
        assert right == pytest.approx(round(right), abs=1e-9)


def test_one_class_only_is_a_clear_error():
    data = toy_data(residual_share=1.0)
    with pytest.raises(TrainingDataError, match="both classes"):
        train(data, small())


def test_fewer_images_than_batch_size_trains():
    data = toy_data(n=6)
    result = train(data, small(mode="full", batch_size=32, epochs=2))
    assert len(result.history) == 2
    # each epoch is one short batch that draws as many images as there are (6), per class
    assert [sum(r.sampled_counts) for r in result.history] == [6, 6]
    drawn = np.array([r.sampled_counts for r in result.history]).sum(axis=0)
    assert drawn.tolist()[0] > 0 and drawn.tolist()[1] > 0  # the sampler draws both classes
    assert result.train_prob.shape == (6,)


def test_bad_shapes_and_settings_are_clear_errors():
    with pytest.raises(TrainingDataError, match="N x 3 x H x W"):
        TrainData.build(np.zeros((4, 1, 8, 8), np.float32), [0, 1, 0, 1])
    with pytest.raises(TrainingDataError, match="differ"):
        TrainData.build(np.zeros((4, 3, 8, 8), np.float32), [0, 1, 0])
    with pytest.raises(ConfigError, match="mode must be one of"):
        TrainConfig(mode="everything")


def test_config_json_round_trip_and_cuda_without_gpu():
    cfg = small(mode="last", val_fraction=0.2)
    assert TrainConfig.from_dict(json.loads(cfg.to_json())) == cfg
    with pytest.raises(ConfigError, match=r"unknown TrainConfig setting.*momentum"):
        TrainConfig.from_dict({**cfg.to_dict(), "momentum": 0.9})
    if not torch.cuda.is_available():
        with pytest.raises(TrainingDataError, match="no CUDA GPU"):
            train(toy_data(), small(device="cuda"))


def test_bundle_round_trip(tmp_path):
    data = toy_data()
    result = train(data, small(mode="head", epochs=3, operating_point="train-youden"))
    views = ("anterior", "posterior") * (len(data) // 2)
    threshold = patient_threshold(result, data, views, result.config)
    pipeline = preset("default")
    manifest_path = write_bundle(
        tmp_path / "bundle",
        result.model,
        train_config=result.config.to_dict(),
        pipeline=pipeline,
        threshold=threshold,
        fusion="mean",
        history=[r.to_dict() for r in result.history],
        plot_history=lambda path: plot_history(result.history, path),
        extra={"data_hash": "abc123"},
    )
    manifest = json.loads(manifest_path.read_text())
    assert manifest["format_version"] == 1 and manifest["data_hash"] == "abc123"
    assert manifest["threshold"] == threshold.to_manifest()
    assert manifest["threshold"]["rule"] == "train-youden"  # the optimistic rule, labelled
    assert manifest["threshold"]["source"] == "training"
    assert manifest["threshold"]["level"] == "patient" and manifest["view_fusion"] == "mean"
    # the recorded sensitivity/specificity are those of the patient-level decision: the mean
    # of each training patient's two view probabilities, called residual at >= threshold
    fused = result.train_prob.reshape(-1, 2).mean(axis=1)
    labels = data.y.numpy()[::2]
    at_threshold = binary_metrics(labels, fused, threshold.value)
    assert manifest["threshold"]["train_sensitivity"] == pytest.approx(at_threshold["sen"])
    assert manifest["threshold"]["train_specificity"] == pytest.approx(at_threshold["spe"])
    assert (tmp_path / "bundle" / "history.png").stat().st_size > 1000
    assert len(json.loads((tmp_path / "bundle" / "history.json").read_text())) == 3
    model, info = load_bundle(tmp_path / "bundle")
    assert info.manifest == manifest
    assert info.threshold == threshold and info.pipeline == pipeline and info.fusion == "mean"
    assert info.model_name == "squeezenet1_1"
    with torch.no_grad():
        prob = model(data.x).softmax(1)[:, 1].numpy()
    np.testing.assert_allclose(prob, result.train_prob, rtol=1e-5, atol=1e-6)
