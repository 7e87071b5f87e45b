"""`small_cnn`: a four-convolution network for native-resolution crops, trained from scratch.

A 60 mm crop of a 2.2 mm-pixel scintigram is 27 pixels across; upsampled to 224 x 224 for an
ImageNet backbone it carries no more information, only more arithmetic. This network takes the
crop at (about) its own resolution, e.g. 32 x 32: two 3x3 convolution pairs with batch norm
and ReLU, a 2x2 max pool between them, global max pooling (a small bright focus anywhere in
the crop counts, as for the peak detector), dropout and one affine layer. It has no ImageNet
weights (`--init scratch`); a full-mode training run takes seconds on a CPU (docs/training.md).
"""

from __future__ import annotations

from torch import nn

from thyrocad.errors import WeightsError
from thyrocad.models.registry import Architecture, FeatureSplit, ModelSpec, register

WIDTH = 8  # channels of the first convolution pair; the second has twice as many
DROP_RATE = 0.2
HALF = (0.5, 0.5, 0.5)


def _block(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU()]


class SmallCNN(nn.Module):
    """`features` (convolutions, global max pool, flattened) then `classifier` (dropout, affine)."""

    def __init__(self, num_classes: int = 2, width: int = WIDTH) -> None:
        super().__init__()
        self.features = nn.Sequential(
            *_block(3, width),
            *_block(width, width),
            nn.MaxPool2d(2),
            *_block(width, 2 * width),
            *_block(2 * width, 2 * width),
            nn.AdaptiveMaxPool2d(1),
            nn.Flatten(),
        )
        self.classifier = nn.Sequential(nn.Dropout(DROP_RATE), nn.Linear(2 * width, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x))


def _replace_head(model: SmallCNN, num_classes: int) -> None:
    model.classifier[1] = nn.Linear(model.classifier[1].in_features, num_classes)


def _split_last(model: SmallCNN) -> FeatureSplit:
    """'last' mode's cut: everything before the last convolution pair's second block."""
    return FeatureSplit(model.features[:10], nn.Sequential(model.features[10:], model.classifier))


def _no_imagenet(allow_download: bool):
    del allow_download
    raise WeightsError(
        "small_cnn has no ImageNet weights: it is trained from scratch (--init scratch)"
    )


register(
    Architecture(
        spec=ModelSpec(
            name="small_cnn",
            mean=HALF,
            std=HALF,
            head_prefix="classifier.1.",
            last_stage=("features.10", "features.11"),  # the last convolution and its batch norm
            target_layer="features.12",  # the last ReLU: feature maps at half the input size
            input_size=32,
        ),
        build=lambda: SmallCNN(num_classes=1000),
        replace_head=_replace_head,
        split=lambda model: FeatureSplit(model.features, model.classifier),
        split_last=_split_last,
        imagenet_state=_no_imagenet,
    )
)
