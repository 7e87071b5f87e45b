"""The body outline of a planar view: which pixels hold the patient, and how wide each row is.

The outline is the Otsu threshold of the log of the smoothed counts (blood-pool and soft-tissue
activity make the whole body brighter than the background; the log keeps hot organs from
pulling the threshold up), opened to drop specks.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage
from skimage.filters import threshold_otsu

_OTSU_BINS = 256


def body_mask(counts: np.ndarray, sigma_px: float) -> np.ndarray | None:
    """Boolean mask of the body on `counts` smoothed with `sigma_px`; None without an outline
    (no counts, or a flat image)."""
    smooth = ndimage.gaussian_filter(np.clip(counts, 0.0, None).astype(np.float32), sigma_px)
    level = np.log1p(smooth)
    positive = level[level > 0]
    if positive.size < 2 or positive.min() == positive.max():
        return None
    hist, edges = np.histogram(positive, bins=_OTSU_BINS)
    threshold = threshold_otsu(hist=(hist, (edges[:-1] + edges[1:]) / 2))
    mask = ndimage.binary_opening(level > threshold, iterations=2)
    return mask if mask.any() else None


def binned(counts: np.ndarray, max_side: int) -> np.ndarray:
    """`counts` summed over square blocks of `factor` x `factor` pixels so that no side
    exceeds `max_side` (`cv2.INTER_AREA`); unchanged if already small enough."""
    factor = -(-max(counts.shape) // max_side)
    if factor <= 1:
        return counts
    size = (max(1, counts.shape[1] // factor), max(1, counts.shape[0] // factor))
    mean = cv2.resize(counts.astype(np.float32), size, interpolation=cv2.INTER_AREA)
    return mean * float(factor * factor)


def row_widths(mask: np.ndarray) -> np.ndarray:
    """Body pixels per row (float)."""
    return mask.sum(axis=1).astype(np.float64)
