"""Disk cache of pipeline outputs, keyed by the input's content, the config and OpenCV's version.

One `.npz` per key under `<root>/<key[:2]>/<key>.npz`, written atomically (temp file in the same
directory, then `os.replace`), so concurrent writers of one key never leave a torn file.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import zipfile
from pathlib import Path

import cv2
import numpy as np

from thyrocad.atomic import atomic_writer
from thyrocad.paths import thyrocad_home
from thyrocad.preprocess.pipeline import Pipeline, PreprocessOutput
from thyrocad.preprocess.steps import CropBox
from thyrocad.result_cache import source_digest

logger = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    return thyrocad_home() / "cache" / "preprocess"


@functools.cache
def code_digest() -> str:
    """sha256 prefix of the source of the modules that compute a preprocessing output, so that
    a code change (e.g. a better bed locator) never reuses outputs of the old code."""
    from thyrocad import landmarks
    from thyrocad.preprocess import pipeline, steps

    return source_digest(landmarks, pipeline, steps)


def cache_key(counts: np.ndarray, spacing_mm: tuple[float, float] | None, config_hash: str) -> str:
    """sha256 over the array bytes, shape, dtype, spacing, config hash, OpenCV version and the
    preprocessing code (`code_digest`)."""
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
    digest.update(json.dumps(header, sort_keys=True).encode())
    digest.update(arr.tobytes())
    return digest.hexdigest()


class PreprocessCache:
    """`get_or_compute(pipeline, counts, spacing)` returns a cached `PreprocessOutput`."""

    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npz"

    def get(self, key: str) -> PreprocessOutput | None:
        """The stored output, or None when absent or unreadable (an unreadable file is a miss)."""
        path = self.path(key)
        try:
            with np.load(path, allow_pickle=False) as data:
                return PreprocessOutput(
                    network_input=data["network_input"],
                    flags=tuple(json.loads(str(data["flags"]))),
                    crop_box=CropBox(*(int(v) for v in data["crop_box"])),
                )
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            logger.warning("unreadable cache entry %s (%s); recomputing", path.name, exc)
            return None

    def put(self, key: str, output: PreprocessOutput) -> Path:
        """Write atomically; the last of several concurrent writers of one key wins, whole."""
        path = self.path(key)
        with atomic_writer(path) as fh:
            np.savez(
                fh,
                network_input=output.network_input,
                flags=np.array(json.dumps(list(output.flags))),
                crop_box=np.array(output.crop_box.as_tuple(), dtype=np.int64),
            )
        return path

    def get_or_compute(
        self, pipeline: Pipeline, counts: np.ndarray, spacing_mm: tuple[float, float] | None
    ) -> PreprocessOutput:
        """The cached output for this input and config, computing and storing it on a miss."""
        key = cache_key(counts, spacing_mm, pipeline.config_hash)
        cached = self.get(key)
        if cached is not None:
            return cached
        output = pipeline.run(counts, spacing_mm).output
        self.put(key, output)
        return output
