"""Model registry: `create_model(name, ...)` builds a backbone with a new classifier head.

Every model carries a `ModelInfo` (attribute `thyrocad_info`): input normalisation, the name of
its replaced head, the layers trained in 'last' mode, its Grad-CAM target layer, and where its
weights came from. `split_model` cuts it into a frozen-able feature extractor and a head, so
that `head(backbone(x)) == model(x)`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from thyrocad.errors import UnknownModelError
from thyrocad.models.weights import (
    WeightsSource,
    load_pretrained,
    read_state_dict,
    weights_sha256,
)

logger = logging.getLogger(__name__)

IMAGENET_CLASSES = 1000


@dataclass(frozen=True)
class ModelSpec:
    """What other modules need to know about an architecture."""

    name: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    head_prefix: str  # state_dict prefix of the classifier layer that is replaced
    last_stage: tuple[str, ...]  # submodules trained together with the head in 'last' mode
    target_layer: str  # Grad-CAM target layer (a name for `model.get_submodule`)
    input_size: int = 224


@dataclass(frozen=True)
class FeatureSplit:
    """A model cut in two: `head(backbone(x))` equals `model(x)`; both share the model's modules."""

    backbone: nn.Module
    head: nn.Module


@dataclass(frozen=True)
class ModelInfo:
    """Attached to every created model as `model.thyrocad_info`."""

    spec: ModelSpec
    num_classes: int
    weights: WeightsSource
    head_from_weights: bool = False  # the head came with the weights (else freshly initialised)


@dataclass(frozen=True)
class Architecture:
    """How to build one registered architecture (see torchvision_models.py, efficientnet.py)."""

    spec: ModelSpec
    build: Callable[[], nn.Module]  # randomly initialised, ImageNet (1000-class) head
    replace_head: Callable[[nn.Module, int], None]
    split: Callable[[nn.Module], FeatureSplit]
    split_last: Callable[[nn.Module], FeatureSplit]  # the cut of 'last' mode (`split_last`)
    imagenet_state: Callable[[bool], tuple[dict, WeightsSource]]  # (allow_download) -> weights
    adapt_state: Callable[[dict, nn.Module], dict] = field(default=lambda state, model: state)


_REGISTRY: dict[str, Architecture] = {}


def register(arch: Architecture) -> None:
    """Add an architecture to the registry (called by the family modules at import)."""
    _REGISTRY[arch.spec.name] = arch


def list_models() -> list[str]:
    """Names accepted by `create_model`."""
    return sorted(_REGISTRY)


def architecture(name: str) -> Architecture:
    """The registry entry of `name`; `UnknownModelError` naming the known models otherwise."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownModelError(
            f"Unknown model '{name}'. Known models: {', '.join(list_models())}."
        ) from None


def create_model(
    name: str,
    pretrained: bool = True,
    num_classes: int = 2,
    weights: str | Path | None = None,
    allow_download: bool = False,
) -> nn.Module:
    """Build `name` with a fresh `num_classes`-way head on ImageNet (or other) weights.

    `weights`: None or "imagenet" -> ImageNet weights if `pretrained` (hub cache / installed
    package; download only with `allow_download`); "none" -> random initialisation on purpose;
    a path -> that state_dict file. Missing or mismatched weights raise `WeightsError`.
    Example: `create_model("resnet18", weights="/models/resnet18-f37072fd.pth")`.
    """
    arch = architecture(name)
    choice = str(weights).lower() if weights is not None else None
    random_init = choice == "none" or (choice is None and not pretrained)
    new_head = num_classes != IMAGENET_CLASSES
    # When every layer but the new head is loaded next, the network is built on the meta device
    # and given uninitialised memory: no random initialisation that would be overwritten.
    skip_init = new_head and not random_init
    with torch.device("meta") if skip_init else contextlib.nullcontext():
        model = arch.build()
    if skip_init:
        model.to_empty(device="cpu")
    if new_head:
        arch.replace_head(model, num_classes)
    if random_init:
        # DEBUG: a bundle's model is built so before its trained weights are loaded, and the
        # server's log then wrongly said "random initialisation" (the service logs the truth).
        logger.debug("%s: random initialisation (no pretrained weights requested)", name)
        source, head_loaded = WeightsSource(kind="none"), False
    else:
        source, head_loaded = _load_weights(arch, model, weights, allow_download)
    model.thyrocad_info = ModelInfo(arch.spec, num_classes, source, head_loaded)
    return model


def _load_weights(
    arch: Architecture, model: nn.Module, weights: str | Path | None, allow_download: bool
) -> tuple[WeightsSource, bool]:
    """ImageNet weights (`weights` None or "imagenet") or a state_dict file, into `model`;
    also whether the head was among them."""
    choice = str(weights).lower() if weights is not None else None
    if choice in (None, "imagenet"):
        state, source = arch.imagenet_state(allow_download)
    else:
        path = Path(weights).expanduser()
        state = read_state_dict(path)
        source = WeightsSource(kind="file", path=str(path), sha256=weights_sha256(path))
    origin = source.path or source.kind
    head_loaded = load_pretrained(
        model, arch.adapt_state(state, model), arch.spec.head_prefix, arch.spec.name, origin
    )
    logger.info("%s: weights loaded from %s", arch.spec.name, origin)
    return source, head_loaded


def model_info(model: nn.Module) -> ModelInfo:
    """The `ModelInfo` of a model made by `create_model`."""
    info = getattr(model, "thyrocad_info", None)
    if not isinstance(info, ModelInfo):
        raise TypeError("model was not made by thyrocad.models.create_model")
    return info


def split_model(model: nn.Module) -> FeatureSplit:
    """Feature extractor and head of a model made by `create_model`."""
    return architecture(model_info(model).spec.name).split(model)


def split_last(model: nn.Module) -> FeatureSplit:
    """The cut of 'last' mode: `backbone` is everything before the last stage (frozen there),
    `head` the last stage and the classifier; `head(backbone(x))` equals `model(x)`."""
    return architecture(model_info(model).spec.name).split_last(model)
