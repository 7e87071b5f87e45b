"""torchvision backbones: ResNet-18, SqueezeNet 1.0/1.1, ShuffleNetV2 1.0x.

Heads: ResNet and ShuffleNet get a new `fc` Linear. SqueezeNet's classifier is
Dropout -> Conv1x1 -> ReLU -> GlobalAvgPool; the conv is replaced and the ReLU becomes an
`nn.Identity`, because non-negative logits let the new layer go dead (PITFALLS 4.2). The
state_dict keys stay torchvision's (`classifier.1.*`).

ImageNet weights come from torchvision's weight enums through the torch hub cache
(`$TORCH_HOME/hub/checkpoints/<file>`); the file's presence is checked before anything that
could download.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision import models as tvm

from thyrocad.errors import WeightsError
from thyrocad.models.registry import Architecture, FeatureSplit, ModelSpec, register
from thyrocad.models.weights import (
    WeightsSource,
    check_hash_prefix,
    hub_checkpoint_path,
    read_state_dict,
)

# The input normalisation of torchvision's ImageNet weights (the same for every model here).
IMAGENET = tvm.ResNet18_Weights.IMAGENET1K_V1.transforms()


def hub_weights(name: str, enum_member, allow_download: bool) -> tuple[dict, WeightsSource]:
    """ImageNet weights of a torchvision enum member from the hub cache (download if allowed)."""
    path = hub_checkpoint_path(enum_member.url)
    why = "downloading is off"
    if not path.is_file() and allow_download:
        try:
            enum_member.get_state_dict(progress=False, check_hash=True)  # fills the hub cache
        except (OSError, RuntimeError) as exc:  # URLError is an OSError; RuntimeError: bad hash
            why = f"the download failed: {exc}"
    if not path.is_file():
        raise WeightsError(
            f"No ImageNet weights for '{name}' on this machine: {path} does not exist "
            f"({why}). Either pass a local weights file (--weights FILE, or "
            f"weights=PATH), or pre-seed the torch hub cache: copy '{path.name}' (from "
            f"{enum_member.url}) to {path} (set TORCH_HOME to use another cache folder)."
        )
    sha = check_hash_prefix(path)
    return read_state_dict(path), WeightsSource(kind="hub-cache", path=str(path), sha256=sha)


class _GlobalMean(nn.Module):
    """Mean over the spatial axes, as in ShuffleNetV2.forward."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean([2, 3])


def _new_fc(model: nn.Module, num_classes: int) -> None:
    model.fc = nn.Linear(model.fc.in_features, num_classes)


def _new_squeeze_head(model: nn.Module, num_classes: int) -> None:
    old = model.classifier[1]
    conv = nn.Conv2d(old.in_channels, num_classes, kernel_size=1)
    nn.init.normal_(conv.weight, mean=0.0, std=0.01)  # torchvision's init of this layer
    nn.init.zeros_(conv.bias)
    model.classifier[1] = conv
    model.classifier[2] = nn.Identity()  # no ReLU on logits (PITFALLS 4.2)
    model.num_classes = num_classes


def _split_resnet(model: nn.Module) -> FeatureSplit:
    layers = [m for name, m in model.named_children() if name != "fc"]
    return FeatureSplit(nn.Sequential(*layers, nn.Flatten(1)), model.fc)


def _split_shufflenet(model: nn.Module) -> FeatureSplit:
    layers = [m for name, m in model.named_children() if name != "fc"]
    return FeatureSplit(nn.Sequential(*layers, _GlobalMean()), model.fc)


def _split_squeezenet(model: nn.Module) -> FeatureSplit:
    """Cut after global pooling: the 1x1 classifier conv and the mean over positions commute,
    so features are 512 values, not 512x13x13 (80x less to cache, train and drop out).
    In head training, dropout then acts on pooled features rather than on each position."""
    backbone = nn.Sequential(model.features, nn.AdaptiveAvgPool2d(1))
    return FeatureSplit(backbone, nn.Sequential(model.classifier, nn.Flatten(1)))


def _children_until(model: nn.Module, stop: str) -> nn.Sequential:
    """The model's direct children before the one named `stop`, in order."""
    names = [name for name, _ in model.named_children()]
    return nn.Sequential(*[getattr(model, name) for name in names[: names.index(stop)]])


def _last_resnet(model: nn.Module) -> FeatureSplit:
    rest = nn.Sequential(model.layer4, model.avgpool, nn.Flatten(1), model.fc)
    return FeatureSplit(_children_until(model, "layer4"), rest)


def _last_shufflenet(model: nn.Module) -> FeatureSplit:
    rest = nn.Sequential(model.stage4, model.conv5, _GlobalMean(), model.fc)
    return FeatureSplit(_children_until(model, "stage4"), rest)


def _last_squeezenet(model: nn.Module) -> FeatureSplit:
    rest = nn.Sequential(model.features[12], model.classifier, nn.Flatten(1))
    return FeatureSplit(model.features[:12], rest)


def _tv_arch(
    spec: ModelSpec, builder, enum_member, replace_head, split, split_last
) -> Architecture:
    return Architecture(
        spec=spec,
        build=lambda: builder(weights=None),
        replace_head=replace_head,
        split=split,
        split_last=split_last,
        imagenet_state=lambda allow: hub_weights(spec.name, enum_member, allow),
    )


def _spec(name: str, head: str, last: tuple[str, ...], target: str) -> ModelSpec:
    return ModelSpec(
        name=name,
        mean=tuple(IMAGENET.mean),
        std=tuple(IMAGENET.std),
        head_prefix=head,
        last_stage=last,
        target_layer=target,
    )


register(
    _tv_arch(
        _spec("resnet18", "fc.", ("layer4",), "layer4"),
        tvm.resnet18,
        tvm.ResNet18_Weights.IMAGENET1K_V1,
        _new_fc,
        _split_resnet,
        _last_resnet,
    )
)
register(
    _tv_arch(
        _spec("shufflenet_v2_x1_0", "fc.", ("stage4", "conv5"), "conv5"),
        tvm.shufflenet_v2_x1_0,
        tvm.ShuffleNet_V2_X1_0_Weights.IMAGENET1K_V1,
        _new_fc,
        _split_shufflenet,
        _last_shufflenet,
    )
)
for _name, _builder, _enum in (
    ("squeezenet1_1", tvm.squeezenet1_1, tvm.SqueezeNet1_1_Weights.IMAGENET1K_V1),
    ("squeezenet1_0", tvm.squeezenet1_0, tvm.SqueezeNet1_0_Weights.IMAGENET1K_V1),
):
    register(
        _tv_arch(
            _spec(_name, "classifier.1.", ("features.12",), "features.12"),
            _builder,
            _enum,
            _new_squeeze_head,
            _split_squeezenet,
            _last_squeezenet,
        )
    )
