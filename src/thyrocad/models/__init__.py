"""Backbones for transfer learning: `create_model(name, pretrained, num_classes=2, weights)`.

Registered: resnet18, squeezenet1_1, squeezenet1_0, shufflenet_v2_x1_0 (torchvision),
efficientnet_lite0 (timm tf_efficientnet_lite0) and small_cnn (from scratch, for native-resolution
crops). See docs/training.md for offline weights.
"""

from thyrocad.models import efficientnet, small_cnn, torchvision_models  # noqa: F401 (registration)
from thyrocad.models.inference_copy import (
    channels_last,
    class_probabilities,
    grey_inference_copy,
    inference_copy,
)
from thyrocad.models.registry import (
    FeatureSplit,
    ModelInfo,
    ModelSpec,
    architecture,
    create_model,
    list_models,
    model_info,
    split_last,
    split_model,
)
from thyrocad.models.weights import WeightsSource, hub_checkpoint_path, state_fingerprint

__all__ = [
    "FeatureSplit",
    "ModelInfo",
    "ModelSpec",
    "WeightsSource",
    "architecture",
    "channels_last",
    "class_probabilities",
    "create_model",
    "grey_inference_copy",
    "hub_checkpoint_path",
    "inference_copy",
    "list_models",
    "model_info",
    "split_last",
    "split_model",
    "state_fingerprint",
]
