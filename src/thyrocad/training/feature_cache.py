"""Backbone features computed once per preprocessed image, kept in memory and on disk.

Key: a 128-bit XXH3 digest of the image array (dtype, shape, bytes; much faster than sha256,
which matters when 80 epochs take under a second) within a folder named for the model, its frozen
weights (`state_fingerprint` without the head), the torch version, the device type and the
precision. Misses are computed by a BatchNorm-folded channels-last copy of the backbone
(`thyrocad.models.inference_copy`). Disk entries are `.npy` files of the `features` kind of
`thyrocad.cache` (atomic writes; a damaged entry is a miss).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import xxhash
from torch import nn

from thyrocad.cache import Store, default_directory
from thyrocad.models import channels_last, inference_copy
from thyrocad.training.runtime import autocast

logger = logging.getLogger(__name__)


def image_key(image: torch.Tensor) -> str:
    """XXH3-128 of one image's dtype, shape and bytes."""
    arr = image.detach().cpu().contiguous().numpy()
    digest = xxhash.xxh3_128(f"{arr.dtype}|{arr.shape}|".encode())
    digest.update(arr)
    return digest.hexdigest()


KIND = "features"
# Bump when a model's backbone/head cut (thyrocad.models.split_model) or the key changes.
CUT_VERSION = 3


def backbone_key(model_name: str, fingerprint: str, device: torch.device, bf16: bool) -> str:
    """Folder name identifying how features were made."""
    precision = "bf16" if bf16 and device.type == "cuda" else "fp32"
    return (
        f"{model_name}-cut{CUT_VERSION}-{fingerprint[:16]}-torch{torch.__version__}"
        f"-{device.type}-{precision}"
    )


class FeatureCache:
    """Memory (and optional disk, under `directory`) cache of backbone outputs per image."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = Path(directory) if directory is not None else None
        self._memory: dict[tuple[str, str], torch.Tensor] = {}
        self.computed = 0  # images run through a backbone by this cache (for tests/benchmarks)

    def features(
        self,
        backbone: nn.Module,
        images: torch.Tensor,
        key: str,
        device: torch.device,
        batch_size: int,
        bf16: bool = False,
    ) -> torch.Tensor:
        """Features of every image (float32, on CPU), computing only those not cached.

        `backbone` must be in eval mode (frozen BatchNorm, no dropout), as in training.
        """
        keys = [image_key(img) for img in images]
        missing = [i for i, k in enumerate(keys) if self._lookup(key, k) is None]
        fast = inference_copy(backbone).to(device) if missing else None
        for start in range(0, len(missing), batch_size):
            chunk = missing[start : start + batch_size]
            batch = channels_last(images[chunk].to(device))
            with torch.no_grad(), autocast(device, bf16):
                out = fast(batch).float().cpu()
            for i, feat in zip(chunk, out, strict=True):
                self._store(key, keys[i], feat.clone(memory_format=torch.contiguous_format))
            self.computed += len(chunk)
        if missing:
            logger.info("feature cache %s: computed %d of %d images", key, len(missing), len(keys))
        return torch.stack([self._memory[(key, k)] for k in keys])

    def _lookup(self, key: str, image: str) -> torch.Tensor | None:
        hit = self._memory.get((key, image))
        if hit is None and self.directory is not None:
            array = Store(KIND, self.directory / key).get_array(image)
            if array is not None:
                hit = self._memory[(key, image)] = torch.from_numpy(array)
        return hit

    def _store(self, key: str, image: str, feat: torch.Tensor) -> None:
        self._memory[(key, image)] = feat
        if self.directory is not None:
            Store(KIND, self.directory / key).put_array(image, feat.numpy())


def default_feature_cache() -> FeatureCache:
    """A feature cache on disk under `$THYROCAD_HOME/cache/features`."""
    return FeatureCache(default_directory(KIND))
