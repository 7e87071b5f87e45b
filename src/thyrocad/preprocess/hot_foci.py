"""Hot focal maxima of a planar view, and the neck rows their scatter halo distorts.

A hot focus (a lymph-node metastasis, a remnant, a saliva spot) spreads a broad scatter and
septal-penetration halo around it. Beside the neck, that halo raises the counts beyond the body
edge on one side only, so the body outline's midline bends towards the focus over its rows,
and a tilt fitted to that midline leans by 5-25 degrees on a patient who lies straight
(docs/phantom.md, `hot_nodes`). `straighten_midline` leaves those rows out of the midline and
interpolates across them; the uptake-ratio observer masks the same maxima
(`thyrocad.evaluation.baselines.uptake_ratio`).
"""

from __future__ import annotations

import numpy as np
import scipy  # scipy.ndimage loads on first use: a quick CLI start-up

FOCUS_SIGMA_MM, FOCUS_SPACING_MM = 4.0, 15.0  # focus-sized smoothing; maxima this far apart
HOT_OVER_BODY = 15.0
"""A focus this many times the body's blood-pool level: nodes reach 15-200 times it, the
submandibular glands 2-10 times (measured on the phantom's `default` and `hot_nodes` views)."""
OFF_MIDLINE_MM = 25.0
"""Foci this far from the neck midline bend it (a focus on the midline widens both sides)."""
HALO_REACH_MM = 40.0
"""Rows this far above and below such a focus are left out of the midline."""


def focal_maxima(img: np.ndarray, mm: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(smoothed image, rows, cols) of the local maxima of the focus-smoothed counts, at
    least `FOCUS_SPACING_MM` apart."""
    near = scipy.ndimage.gaussian_filter(img, FOCUS_SIGMA_MM / mm)
    size = max(3, round(FOCUS_SPACING_MM / mm) | 1)
    peaks = (near == scipy.ndimage.maximum_filter(near, size=size)) & (near > 0)
    rows, cols = np.nonzero(peaks)
    return near, rows, cols


def straighten_midline(centre: np.ndarray, img: np.ndarray, level: float, mm: float) -> np.ndarray:
    """The per-row outline `centre` (columns, NaN outside the body) with the rows near hot
    off-midline foci (module doc) interpolated from the rows around them."""
    inside = np.isfinite(centre)
    if inside.sum() < 2 or img.max() < HOT_OVER_BODY * level:
        return centre  # a smoothed maximum never exceeds the raw one: no hot focus (most views)
    near, rows, cols = focal_maxima(img, mm)
    midline = float(np.median(centre[inside]))
    off = np.abs(cols - midline) * mm >= OFF_MIDLINE_MM
    hot = off & (near[rows, cols] >= HOT_OVER_BODY * level)
    halo = np.zeros(centre.size, dtype=bool)
    reach = round(HALO_REACH_MM / mm)
    for row in rows[hot]:
        halo[max(0, row - reach) : row + reach + 1] = True
    keep = inside & ~halo
    if not halo.any() or keep.sum() < 2:
        return centre
    bent = inside & halo
    out = centre.copy()
    out[bent] = np.interp(np.flatnonzero(bent), np.flatnonzero(keep), centre[keep])
    return out
