"""The neck's local background around the thyroid bed, measured on a whole view.

Shared by the window step's background reference (`WindowConfig.reference="background"`) and
the matched peak detector (`thyrocad.evaluation.baselines.peak`), so both divide by the same
number: the median of the counts smoothed by a Gaussian of `BACKGROUND_SIGMA_MM` in a ring
around the bed centre, at least `MIN_BACKGROUND_PER_MM2` scaled to the pixel area (so the same
patient gets the same background at any pixel size, and an empty ring no division by zero).
"""

from __future__ import annotations

import numpy as np
import scipy  # scipy.ndimage loads on first use: a quick CLI start-up

from thyrocad.preprocess.landmarks import ASSUMED_FIELD_MM

BACKGROUND_SIGMA_MM = 5.0
MIN_BACKGROUND_PER_MM2 = 0.5 / 2.2**2  # counts per mm^2: half a count on a 2.2 mm pixel


def pixel_mm(
    image_shape: tuple[int, ...], spacing_mm: tuple[float, float] | None, scale_mm: float | None
) -> tuple[float, float]:
    """(row, col) pixel size in mm: the spacing; without one the locator's estimated
    `scale_mm`, else the spacing the locator assumes (`ASSUMED_FIELD_MM` across the width)."""
    if spacing_mm is not None:
        return float(spacing_mm[0]), float(spacing_mm[1])
    mm = float(scale_mm or ASSUMED_FIELD_MM / image_shape[1])
    return mm, mm


def smoothed(counts: np.ndarray, mm: tuple[float, float]) -> np.ndarray:
    """The counts (float64) smoothed by a Gaussian of `BACKGROUND_SIGMA_MM`."""
    sigma = (BACKGROUND_SIGMA_MM / mm[0], BACKGROUND_SIGMA_MM / mm[1])
    return scipy.ndimage.gaussian_filter(np.asarray(counts, dtype=np.float64), sigma)


def distance_mm(
    image_shape: tuple[int, ...], center_rc: tuple[float, float], mm: tuple[float, float]
) -> np.ndarray:
    """Each pixel's distance in mm from `center_rc` (row, col in pixels)."""
    rows, cols = np.indices(image_shape[:2])
    return np.hypot((rows - center_rc[0]) * mm[0], (cols - center_rc[1]) * mm[1])


def ring_median(
    smooth: np.ndarray, distance: np.ndarray, ring_mm: tuple[float, float], mm: tuple[float, float]
) -> float:
    """Median of `smooth` where `distance` lies in `ring_mm`, floored at
    `MIN_BACKGROUND_PER_MM2` times the pixel area."""
    ring = smooth[(distance >= ring_mm[0]) & (distance <= ring_mm[1])]
    median = float(np.median(ring)) if ring.size else 0.0
    return max(median, MIN_BACKGROUND_PER_MM2 * mm[0] * mm[1])


def ring_background(
    counts: np.ndarray,
    center_rc: tuple[float, float],
    mm: tuple[float, float],
    ring_mm: tuple[float, float],
) -> float:
    """The background of a view around the bed at `center_rc` (see the module docstring)."""
    return ring_median(smoothed(counts, mm), distance_mm(counts.shape, center_rc, mm), ring_mm, mm)
