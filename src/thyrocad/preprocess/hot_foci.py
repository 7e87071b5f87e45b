"""Hot focal maxima of a planar view, and the neck rows their scatter halo distorts.

A hot focus (a lymph-node metastasis, a remnant, a saliva spot) spreads a broad scatter and
septal-penetration halo around it. Beside the neck, that halo raises the counts beyond the body
edge on one side only, so the body outline's midline bends towards the focus over its rows,
and a tilt fitted to that midline leans by 5-25 degrees on a patient who lies straight
(docs/locator-history.md, `hot_nodes`). `straighten_midline` leaves those rows out of the midline,
more of them the brighter the focus, and interpolates across them; the uptake-ratio observer
masks the same maxima (`thyrocad.evaluation.baselines.uptake_ratio`).
"""

from __future__ import annotations

import numpy as np
import scipy  # scipy.ndimage loads on first use: a quick CLI start-up

FOCUS_SIGMA_MM, FOCUS_SPACING_MM = 4.0, 15.0  # focus-sized smoothing; maxima this far apart
HOT_OVER_BODY = 15.0
"""A focus this many times the body's blood-pool level: nodes reach 15-740 times it, the
submandibular glands 2-10 times (measured on the phantom's `default` and `hot_nodes` views)."""
OFF_MIDLINE_MM = 25.0
"""Foci this far from the neck midline bend it (a focus on the midline widens both sides)."""
HALO_REACH_MM = 40.0
"""Rows this far above and below such a focus are left out of the midline, at `HOT_OVER_BODY`."""
REACH_GROWTH = 10.0**0.5
"""... and `HALO_REACH_MM` further for each this-fold brighter focus (`halo_reach_mm`)."""
ANCHOR_MM = 15.0
"""The midline across left-out rows runs between the medians of this many mm of rows each side."""


def focal_maxima(img: np.ndarray, mm: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(smoothed image, rows, cols) of the local maxima of the focus-smoothed counts, at
    least `FOCUS_SPACING_MM` apart."""
    near = scipy.ndimage.gaussian_filter(img, FOCUS_SIGMA_MM / mm)
    size = max(3, round(FOCUS_SPACING_MM / mm) | 1)
    peaks = (near == scipy.ndimage.maximum_filter(near, size=size)) & (near > 0)
    rows, cols = np.nonzero(peaks)
    return near, rows, cols


def halo_reach_mm(ratio: float) -> float:
    """Rows this far above and below a focus `ratio` times the body level are bent by its
    halo: `HALO_REACH_MM` at `HOT_OVER_BODY`, and `HALO_REACH_MM` more per `REACH_GROWTH`-fold
    brightness. A halo that falls off exponentially with distance drops to any fixed level at
    a distance growing with the log of its peak; the rate was chosen on the development seed
    (docs/locator-history.md, "hot_nodes")."""
    return HALO_REACH_MM * (1.0 + np.log(ratio / HOT_OVER_BODY) / np.log(REACH_GROWTH))


def straighten_midline(centre: np.ndarray, img: np.ndarray, level: float, mm: float) -> np.ndarray:
    """The per-row outline `centre` (columns, NaN outside the body) with the rows near hot
    off-midline foci (module doc) interpolated between the medians of the `ANCHOR_MM` of rows
    on either side (a single noisy row at the edge of the torso must not set the line)."""
    inside = np.isfinite(centre)
    if inside.sum() < 2 or img.max() < HOT_OVER_BODY * level:
        return centre  # a smoothed maximum never exceeds the raw one: no hot focus (most views)
    near, rows, cols = focal_maxima(img, mm)
    midline = float(np.median(centre[inside]))
    ratio = near[rows, cols] / level
    hot = (np.abs(cols - midline) * mm >= OFF_MIDLINE_MM) & (ratio >= HOT_OVER_BODY)
    halo = np.zeros(centre.size, dtype=bool)
    for row, brightness in zip(rows[hot], ratio[hot], strict=True):
        reach = round(halo_reach_mm(brightness) / mm)
        halo[max(0, row - reach) : row + reach + 1] = True
    keep = inside & ~halo
    if not halo.any() or keep.sum() < 2:
        return centre
    out = centre.copy()
    for bent in scipy.ndimage.find_objects(scipy.ndimage.label(halo)[0]):
        rows_bent = np.arange(bent[0].start, bent[0].stop)
        line = _line_across(centre, keep, rows_bent, max(1, round(ANCHOR_MM / mm)))
        if line is not None:
            out[rows_bent] = np.where(inside[rows_bent], line, np.nan)
    return out


def _line_across(
    centre: np.ndarray, keep: np.ndarray, rows: np.ndarray, span: int
) -> np.ndarray | None:
    """The midline over the consecutive `rows`: linear between the anchors just above and
    just below them (constant when one is missing), None when both are."""
    first, stop = int(rows[0]), int(rows[-1]) + 1
    ends = [(first - 1, _anchor(centre, keep, first - span, first))]
    ends.append((stop, _anchor(centre, keep, stop, stop + span)))
    known = [(row, value) for row, value in ends if value is not None]
    if not known:
        return None
    at, values = zip(*known, strict=True)
    return np.interp(rows, at, values)


def _anchor(centre: np.ndarray, keep: np.ndarray, lo: int, hi: int) -> float | None:
    """Median of the kept centres in rows [lo, hi), None when there are none."""
    lo, hi = max(0, lo), min(centre.size, hi)
    values = centre[lo:hi][keep[lo:hi]]
    return float(np.median(values)) if values.size else None
