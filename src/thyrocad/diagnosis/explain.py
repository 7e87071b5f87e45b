"""Grad-CAM heatmaps of the residual class, mapped back onto the original view.

The CAM is computed with the `grad-cam` package on the network input (the preprocessed crop),
for class 1 (residual, `ClassifierOutputTarget(1)`), at each architecture's target layer from
the model registry (`ModelSpec.target_layer`: ResNet `layer4`, SqueezeNet the last Fire module
`features.12`, ShuffleNetV2 `conv5`, EfficientNet-Lite0 `bn2`). It runs under
`torch.inference_mode(False)` + `torch.enable_grad()` with an input that requires grad, so a
frozen backbone or a caller inside `torch.inference_mode()` still gets gradients (PITFALLS 3.2),
and one CAM at a time per process (PITFALLS 3.4). The CAM (0..1 per image) is resized to the
crop box and placed into an image of the original view's shape (zero outside the box); its peak
is reported in original pixels.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image
from torch import nn

from thyrocad.models import model_info
from thyrocad.preprocess import CropBox, PreprocessResult, uncrop
from thyrocad.preprocess.config import WindowConfig
from thyrocad.preprocess.steps import window_to_uint8
from thyrocad.study import View

logger = logging.getLogger(__name__)

TARGET_CLASS = 1  # residual
METHOD = "GradCAM"
OVERLAY_IMAGE_WEIGHT = 0.55  # share of the gray image in an overlay (rest: the colour map)
_CAM_LOCK = threading.Lock()


@dataclass(frozen=True)
class Heatmap:
    """Grad-CAM of one view: on the network input and mapped onto the original view."""

    view: View
    cam: np.ndarray  # float32 (H, W) of the network input, 0..1
    original: np.ndarray  # float32, the original view's shape, 0 outside the crop box
    crop_box: CropBox
    peak_rc: tuple[int, int] | None  # argmax of `original`; None for a constant CAM
    target_class: int = TARGET_CLASS
    method: str = METHOD
    layer: str = ""


@dataclass(frozen=True)
class ViewOverlay:
    """An RGB uint8 image of one view with its heatmap (Secondary Captures, heatmap PNGs)."""

    view: View
    rgb: np.ndarray


def target_layer(model: nn.Module) -> tuple[str, nn.Module]:
    """The Grad-CAM target layer of a registry model: (name, module)."""
    name = model_info(model).spec.target_layer
    return name, model.get_submodule(name)


def gradcam(model: nn.Module, network_inputs: np.ndarray, target_class: int = TARGET_CLASS):
    """Grad-CAM maps (N x H x W float32, each scaled to 0..1) of a batch of network inputs."""
    # pytorch_grad_cam loads scikit-learn and matplotlib: seconds a server's start need not wait
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # (the same)

    _, layer = target_layer(model)
    was_training = model.training
    # enable_grad alone does not leave an enclosing inference_mode: switch both.
    with _CAM_LOCK, torch.inference_mode(False), torch.enable_grad():
        x = torch.from_numpy(np.ascontiguousarray(network_inputs, dtype=np.float32))
        x.requires_grad_(True)
        with GradCAM(model=model, target_layers=[layer]) as cam:
            maps = cam(input_tensor=x, targets=[ClassifierOutputTarget(target_class)] * len(x))
        model.zero_grad(set_to_none=True)
    model.train(was_training)
    return maps.astype(np.float32)


def to_original(cam: np.ndarray, box: CropBox, image_shape: tuple[int, int]) -> np.ndarray:
    """A network-input CAM resized to the crop box and placed into the original view's shape."""
    rows, cols = box.shape
    resized = cv2.resize(cam.astype(np.float32), (cols, rows), interpolation=cv2.INTER_LINEAR)
    return uncrop(resized, box, image_shape, fill=0.0)


def heatmap(view: View, cam: np.ndarray, result: PreprocessResult, layer: str = "") -> Heatmap:
    """A `Heatmap` from a network-input CAM and the view's preprocessing result."""
    original = to_original(cam, result.crop_box, result.stages["original"].shape)
    peak = None
    if float(original.max()) > float(original.min()):
        row, col = np.unravel_index(int(np.argmax(original)), original.shape)
        peak = (int(row), int(col))
    return Heatmap(view, cam, original, result.crop_box, peak, layer=layer)


def explain_views(
    model: nn.Module, views: Sequence[tuple[View, PreprocessResult]]
) -> tuple[Heatmap, ...]:
    """Grad-CAM heatmaps of preprocessed views, all in one batch."""
    if not views:
        return ()
    name, _ = target_layer(model)
    maps = gradcam(model, np.stack([r.network_input for _, r in views]))
    return tuple(heatmap(v, m, r, name) for (v, r), m in zip(views, maps, strict=True))


def display_gray(counts: np.ndarray) -> np.ndarray:
    """A count image as float32 0..1 for display (sqrt window at the 99.5th percentile)."""
    window8, _ = window_to_uint8(np.asarray(counts, np.float32), WindowConfig())
    return window8.astype(np.float32) / 255.0


def overlay(gray: np.ndarray, cam: np.ndarray) -> np.ndarray:
    """RGB uint8: a 0..1 gray image with a 0..1 CAM of the same shape in the jet colour map."""
    from pytorch_grad_cam.utils.image import show_cam_on_image  # see gradcam()

    rgb = np.repeat(gray[..., None], 3, axis=2).astype(np.float32)
    return show_cam_on_image(rgb, cam, use_rgb=True, image_weight=OVERLAY_IMAGE_WEIGHT)


def overlay_original(counts: np.ndarray, hm: Heatmap) -> np.ndarray:
    """RGB uint8 of the original view: CAM inside the crop box (drawn), plain gray outside."""
    gray = display_gray(counts)
    out = (np.repeat(gray[..., None], 3, axis=2) * 255).round().astype(np.uint8)
    box = hm.crop_box
    r0, c0 = max(box.row0, 0), max(box.col0, 0)
    r1, c1 = min(box.row1, gray.shape[0]), min(box.col1, gray.shape[1])
    if r1 > r0 and c1 > c0:
        out[r0:r1, c0:c1] = overlay(gray[r0:r1, c0:c1], hm.original[r0:r1, c0:c1])
        cv2.rectangle(out, (c0, r0), (c1 - 1, r1 - 1), (255, 255, 255), 1)
    return out


def overlay_network_input(result: PreprocessResult, hm: Heatmap) -> np.ndarray:
    """RGB uint8 of the preprocessed (segmented) crop at network size with the CAM on it."""
    segmented = result.stages["segmented"].astype(np.float32) / 255.0
    rows, cols = hm.cam.shape
    gray = cv2.resize(segmented, (cols, rows), interpolation=cv2.INTER_LINEAR)
    return overlay(np.clip(gray, 0.0, 1.0), hm.cam)


def save_png(path: str | Path, rgb: np.ndarray) -> Path:
    """Write an RGB uint8 array as PNG (parent folders created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path)
    return path
