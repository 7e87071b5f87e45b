"""Disk cache of pipeline outputs, keyed by the input's content, the config and OpenCV's version.

One `.npz` per key in the `preprocess` kind of `thyrocad.cache` (sharded by the key's first
two hex digits), with that package's guarantees: atomic writes, a damaged entry is a miss.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from pathlib import Path

import cv2
import numpy as np

from thyrocad.cache import Store, default_directory, source_digest
from thyrocad.preprocess import (
    background,
    glands,
    hot_foci,
    landmarks,
    outline,
    pipeline,
    shoulders,
    steps,
)
from thyrocad.preprocess.pipeline import Pipeline, PreprocessOutput
from thyrocad.preprocess.steps import CropBox

logger = logging.getLogger(__name__)

KIND = "preprocess"
LOCATOR_MODULES = (landmarks, glands, outline, shoulders, hot_foci)
"""The code that places the thyroid bed: in every key of an output that depends on it."""


def default_cache_dir() -> Path:
    return default_directory(KIND)


@functools.cache
def code_digest() -> str:
    """sha256 prefix of the source of the modules that compute a preprocessing output, so that
    a code change (e.g. a better bed locator) never reuses outputs of the old code."""
    return source_digest(*LOCATOR_MODULES, background, pipeline, steps)


def cache_key(
    counts: np.ndarray,
    spacing_mm: tuple[float, float] | None,
    config_hash: str,
    bed_rc: tuple[float, float] | None = None,
) -> str:
    """sha256 over the array bytes, shape, dtype, spacing, config hash, OpenCV version, the
    preprocessing code (`code_digest`) and a bed centre set by a person (when given)."""
    arr = np.ascontiguousarray(counts)
    digest = hashlib.sha256()
    header = {
        "shape": list(arr.shape),
        "dtype": arr.dtype.str,
        "spacing": None if spacing_mm is None else [float(s) for s in spacing_mm],
        "config": config_hash,
        "opencv": cv2.__version__,
        "code": code_digest(),
    }
    if bed_rc is not None:  # absent otherwise, so that keys without a bed stay as they were
        header["bed"] = [float(v) for v in bed_rc]
    digest.update(json.dumps(header, sort_keys=True).encode())
    digest.update(arr.tobytes())
    return digest.hexdigest()


class PreprocessCache:
    """`get_or_compute(pipeline, counts, spacing)` returns a cached `PreprocessOutput`."""

    def __init__(self, root: Path | str | None = None) -> None:
        self.store = Store(KIND, root, shard=True)
        self.root = self.store.directory

    def path(self, key: str) -> Path:
        return self.store.path(key, ".npz")

    def get(self, key: str) -> PreprocessOutput | None:
        """The stored output, or None when absent or unreadable (an unreadable file is a miss)."""
        data = self.store.get_arrays(key)
        if data is None:
            return None
        try:
            return PreprocessOutput(
                network_input=data["network_input"],
                flags=tuple(json.loads(str(data["flags"]))),
                crop_box=CropBox(*(int(v) for v in data["crop_box"])),
            )
        except (KeyError, ValueError, TypeError) as exc:
            logger.warning("unreadable cache entry %s (%s); recomputing", key, exc)
            return None

    def put(self, key: str, output: PreprocessOutput) -> Path:
        """Write atomically; the last of several concurrent writers of one key wins, whole."""
        self.store.put_arrays(
            key,
            network_input=output.network_input,
            flags=np.array(json.dumps(list(output.flags))),
            crop_box=np.array(output.crop_box.as_tuple(), dtype=np.int64),
        )
        return self.path(key)

    def get_or_compute(
        self,
        pipeline: Pipeline,
        counts: np.ndarray,
        spacing_mm: tuple[float, float] | None,
        bed_rc: tuple[float, float] | None = None,
    ) -> PreprocessOutput:
        """The cached output for this input and config (and bed centre set by a person, in the
        image's pixels), computing and storing it on a miss."""
        key = cache_key(counts, spacing_mm, pipeline.config_hash, bed_rc)
        cached = self.get(key)
        if cached is not None:
            return cached
        output = pipeline.run(counts, spacing_mm, bed_rc).output
        self.put(key, output)
        return output
