"""The body outline of a planar view: which pixels hold the patient, and how wide each row is.

The outline is the Otsu threshold of the log of the smoothed counts (blood-pool and soft-tissue
activity make the whole body brighter than the background; the log keeps hot organs from
pulling the threshold up), opened to drop specks.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.filters import threshold_otsu


def body_mask(counts: np.ndarray, sigma_px: float) -> np.ndarray | None:
    """Boolean mask of the body on `counts` smoothed with `sigma_px`; None without an outline
    (no counts, or a flat image)."""
    smooth = ndimage.gaussian_filter(np.clip(counts.astype(np.float64), 0.0, None), sigma_px)
    level = np.log1p(smooth)
    positive = level[level > 0]
    if positive.size < 2 or positive.min() == positive.max():
        return None
    mask = ndimage.binary_opening(level > threshold_otsu(positive), iterations=2)
    return mask if mask.any() else None


def row_widths(mask: np.ndarray) -> np.ndarray:
    """Body pixels per row (float)."""
    return mask.sum(axis=1).astype(np.float64)
