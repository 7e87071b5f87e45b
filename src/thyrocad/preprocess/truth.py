"""Measure a preprocessing result against ground truth (phantom foci and remnant masks).

Used by `benchmarks/preprocess_truth.py` and the tests: does the crop contain every focus, and
how much of the remnant mask survives crop and GrabCut?
"""

from __future__ import annotations

import numpy as np

from thyrocad.preprocess.pipeline import PreprocessResult
from thyrocad.preprocess.steps import CropBox, uncrop


def points_in_box(points_rc: list[tuple[float, float]], box: CropBox) -> bool:
    """True when every (row, col) point (pixel-centre coordinates) lies inside the box."""
    return all(
        box.row0 - 0.5 <= r < box.row1 - 0.5 and box.col0 - 0.5 <= c < box.col1 - 0.5
        for r, c in points_rc
    )


def kept_fractions(result: PreprocessResult, truth_mask: np.ndarray) -> tuple[float, float]:
    """(share of `truth_mask` inside the crop, share inside the crop AND GrabCut's foreground).

    Both are NaN for an empty mask. `truth_mask` is in original-image pixels.
    """
    total = float(truth_mask.sum())
    if total == 0:
        return float("nan"), float("nan")
    box = result.crop_box
    in_crop = uncrop(np.ones(box.shape, bool), box, truth_mask.shape, fill=False)
    foreground = uncrop(result.stages["grabcut_mask"], box, truth_mask.shape, fill=False)
    return (truth_mask & in_crop).sum() / total, (truth_mask & foreground).sum() / total
