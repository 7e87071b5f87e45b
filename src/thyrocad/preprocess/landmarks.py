"""Locate the thyroid bed on a planar neck view from the image alone.

Anatomy used (anterior or posterior view, head up):
- the body outline (blood-pool activity) gives the neck midline and the level where the
  neck widens into the shoulders, which lies at about the sternal notch;
- the submandibular glands are the lowest bright pair on either side of the neck midline;
- the thyroid bed lies on the neck midline between them, about `BED_FRACTION` of the way
  from the submandibular glands down to the sternal notch (cricoid to sternal notch).

No ground truth is used. When neither landmark can be found, `found` is False with the
reason; callers then fall back to a fixed crop.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage
from scipy.signal import find_peaks
from skimage.filters import threshold_otsu

logger = logging.getLogger(__name__)

ASSUMED_FIELD_MM = 563.0
"""Field width assumed when the pixel spacing is unknown (large-field camera, zoom 1)."""
BED_FRACTION = 0.28
"""Bed centre as a fraction of the submandibular-to-sternal-notch distance."""
NOTCH_TO_BED_MM = 62.0
"""Bed centre above the sternal notch, used when the submandibular glands are not found."""
SUBMANDIBULAR_TO_BED_MM = 25.0
"""Bed centre below the submandibular glands, used when the shoulders are not in view."""
_MAX_BODY_FRACTION = 0.9
_MIN_TILT_DEG = 4.0  # smaller tilts are left alone
_GLANDS_TO_NOTCH_MM = (55.0, 125.0)  # plausible submandibular-to-sternal-notch distances
_BODY_LEVEL = 0.3  # outline threshold, fraction of the typical body level
_SHOULDER_MIDPOINT_MM = 10.0  # outline half-way between neck and shoulder width this far
# below the sternal notch
_GLAND_INNER_MM, _GLAND_OUTER_MM = 26.0, 50.0  # submandibular glands: this far from midline
_PEAK_PROMINENCE, _PEAK_HEIGHT = 0.2, 1.3  # gland-pair peak vs the neck background level


@dataclass(frozen=True)
class BedLocation:
    """Estimated thyroid-bed centre (row, col in pixels) and how it was found."""

    center_rc: tuple[float, float]
    found: bool
    method: str
    reason: str = ""
    confidence: float = 0.0
    landmarks: dict[str, float] = field(default_factory=dict)


def locate_thyroid_bed(
    counts: np.ndarray, spacing_mm: tuple[float, float] | None = None
) -> BedLocation:
    """Find the thyroid bed on one planar neck view of counts (head at the top).

    A tilted patient (neck midline off the vertical by more than `_MIN_TILT_DEG`) is first
    rotated upright; the result is mapped back to the original pixel grid.
    """
    img = np.asarray(counts, dtype=np.float64)
    centre = ((img.shape[0] - 1) / 2.0, (img.shape[1] - 1) / 2.0) if img.ndim == 2 else (0.0, 0.0)
    if img.ndim != 2 or min(img.shape) < 32:
        return BedLocation(centre, False, "none", f"expected a 2-D image, got shape {img.shape}")
    if not np.isfinite(img).all() or img.sum() <= 0:
        return BedLocation(centre, False, "none", "image is empty or not finite")
    mm = float(spacing_mm[0]) if spacing_mm else ASSUMED_FIELD_MM / img.shape[1]
    mask = _body_mask(ndimage.gaussian_filter(img, 6.0 / mm))
    if mask is None:
        return BedLocation(centre, False, "none", "no body outline found (too few counts?)")
    tilt = _tilt_deg(mask, mm)
    if abs(tilt) < _MIN_TILT_DEG:
        return _locate_upright(img, mm, centre, mask)
    upright = ndimage.rotate(img, tilt, reshape=False, order=1, mode="constant")
    found = _locate_upright(np.clip(upright, 0.0, None), mm, centre)
    if not found.found:
        return found
    marks = {**found.landmarks, "tilt_deg": tilt}
    back = _rotate_point(found.center_rc, tilt, img.shape)
    return BedLocation(back, True, found.method + "+deskew", "", found.confidence, marks)


def _locate_upright(
    img: np.ndarray, mm: float, centre: tuple[float, float], mask: np.ndarray | None = None
) -> BedLocation:
    """The landmark search on an upright view (`mask`: its body outline, if already known)."""
    if mask is None:
        mask = _body_mask(ndimage.gaussian_filter(img, 6.0 / mm))
    if mask is None:
        return BedLocation(centre, False, "none", "no body outline found (too few counts?)")
    width, mid = _row_widths(mask)
    notch = _notch_row(width, mm)
    glands = _submandibular(ndimage.gaussian_filter(img, 4.0 / mm), mid, notch, mm)
    if glands is not None and notch is not None:
        gap_mm = (notch - glands[0]) * mm
        if not _GLANDS_TO_NOTCH_MM[0] <= gap_mm <= _GLANDS_TO_NOTCH_MM[1]:
            glands = None  # implausible neck length: a remnant or node pair, not the glands
    marks: dict[str, float] = {}
    if notch is not None:
        marks["notch_row"] = notch
    if glands is not None:
        marks["submandibular_row"], marks["submandibular_col"] = glands
    if notch is not None and glands is not None:
        row = glands[0] + BED_FRACTION * (notch - glands[0])
        method, confidence = "submandibular+notch", 0.9
    elif notch is not None:
        row, method, confidence = notch - NOTCH_TO_BED_MM / mm, "notch", 0.6
    elif glands is not None:
        row, method, confidence = glands[0] + SUBMANDIBULAR_TO_BED_MM / mm, "submandibular", 0.5
    else:
        reason = "neither the shoulders nor the submandibular glands were found"
        return BedLocation(centre, False, "none", reason, landmarks=marks)
    row = float(np.clip(row, 0, img.shape[0] - 1))
    col = glands[1] if glands is not None else _midline_at(mid, row, mm)
    if col is None:
        reason = "no neck outline at the bed level"
        return BedLocation(centre, False, method, reason, landmarks=marks)
    return BedLocation((row, float(col)), True, method, "", confidence, marks)


def _tilt_deg(mask: np.ndarray, mm: float) -> float:
    """In-plane tilt of the head and neck: angle of the outline midline from the vertical
    (positive = head towards larger columns), fitted over the rows above the shoulders."""
    width, mid = _row_widths(mask)
    notch = _notch_row(width, mm)
    last = int(notch) if notch is not None else int(mask.shape[0] * 0.55)
    rows = np.flatnonzero(np.isfinite(mid[:last]) & (width[:last] > 20.0 / mm))
    if rows.size < 40.0 / mm:
        return 0.0
    slope = np.polyfit(rows, mid[rows], 1)[0]  # columns per row, going down
    return float(np.degrees(np.arctan(-slope)))


def _rotate_point(rc: tuple[float, float], tilt_deg: float, shape) -> tuple[float, float]:
    """Map a point of the upright image (`ndimage.rotate` by +tilt about the centre) back."""
    cr, cc = (shape[0] - 1) / 2.0, (shape[1] - 1) / 2.0
    dr, dc = rc[0] - cr, rc[1] - cc
    a = np.radians(tilt_deg)
    return float(cr + dr * np.cos(a) + dc * np.sin(a)), float(cc + dc * np.cos(a) - dr * np.sin(a))


def _body_mask(smooth: np.ndarray) -> np.ndarray | None:
    """Largest connected region brighter than `_BODY_LEVEL` x the typical body level (the
    median of the pixels above an Otsu threshold), holes filled."""
    clipped = np.minimum(smooth, np.percentile(smooth, 90))  # hot glands must not set the level
    if np.ptp(clipped) <= 0:
        return None
    body_level = float(np.median(clipped[clipped > threshold_otsu(clipped)]))
    mask = smooth > _BODY_LEVEL * body_level
    labels, n = ndimage.label(mask)
    if n == 0:
        return None
    sizes = ndimage.sum_labels(mask, labels, index=np.arange(1, n + 1))
    body = _fill_holes(labels == (int(np.argmax(sizes)) + 1))
    return body if body.mean() < _MAX_BODY_FRACTION else None  # no outline in a flat field


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """`ndimage.binary_fill_holes` by labelling: background regions (4-connected, as there)
    that do not touch the border are holes. Same result, much faster (no iterated dilation)."""
    background, _ = ndimage.label(~mask)
    border = np.unique(
        np.concatenate([background[0], background[-1], background[:, 0], background[:, -1]])
    )
    return ~np.isin(background, border[border > 0])


def _row_widths(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row: number of body pixels, and the mean body column (NaN on empty rows)."""
    width = mask.sum(axis=1).astype(float)
    cols = np.arange(mask.shape[1], dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        mid = (mask * cols).sum(axis=1) / width
    return width, mid


def _notch_row(width: np.ndarray, mm: float) -> float | None:
    """Row where the outline is half-way between neck and shoulder width (sternal notch)."""
    full = float(np.percentile(width, 90))
    if full <= 0:
        return None
    narrow = np.flatnonzero(width < 0.5 * full)
    below_full = np.flatnonzero(width >= 0.85 * full)
    if below_full.size == 0:
        return None
    torso_start = below_full[0]
    candidates = narrow[(narrow < torso_start) & (width[narrow] > 0)]
    if candidates.size == 0:
        return None
    r0 = int(candidates[-1])  # lowest narrow row above the torso
    neck_rows = slice(max(0, r0 - int(35 / mm)), max(1, r0 - int(5 / mm)))
    neck = float(np.median(width[neck_rows])) if width[neck_rows].size else float(width[r0])
    if neck <= 0 or neck > 0.6 * full:
        return None
    level = (neck + full) / 2.0
    crossing = np.flatnonzero(width[r0:] >= level)
    if crossing.size == 0:
        return None
    return float(r0 + crossing[0]) - _SHOULDER_MIDPOINT_MM / mm


def _submandibular(
    smooth: np.ndarray, mid: np.ndarray, notch: float | None, mm: float
) -> tuple[float, float] | None:
    """(row, col) between the submandibular glands: the lowest strong peak of the row
    profile min(left band, right band), bands 26-50 mm either side of the midline."""
    n_rows, n_cols = smooth.shape
    if notch is not None:
        top, bottom = notch - 125.0 / mm, notch - 45.0 / mm
    else:
        top, bottom = 0.0, n_rows * 0.75
    top, bottom = int(max(0, top)), int(min(n_rows, bottom))
    if bottom - top < 3:
        return None
    rows_mid = mid[top:bottom]
    rows_mid = rows_mid[np.isfinite(rows_mid)]  # no body in a row: NaN (np.nanmedian would warn)
    if not rows_mid.size:
        return None
    centre = float(np.median(rows_mid))
    cols = np.arange(n_cols) - centre
    left = (cols <= -_GLAND_INNER_MM / mm) & (cols >= -_GLAND_OUTER_MM / mm)
    right = (cols >= _GLAND_INNER_MM / mm) & (cols <= _GLAND_OUTER_MM / mm)
    band = smooth[top:bottom]
    profile = np.minimum(band[:, left].max(axis=1), band[:, right].max(axis=1))
    background = float(np.median(smooth[top:bottom, (np.abs(cols) < 60.0 / mm)]))
    # a gland pair is a peak that stands out from the rows around it (not the tail of a
    # parotid at the window's top edge) and from the neck background
    peaks, _ = find_peaks(profile, prominence=_PEAK_PROMINENCE * background)
    strong = [k for k in peaks if profile[k] > _PEAK_HEIGHT * background]
    if not strong:
        return None
    row = top + strong[-1]  # the lowest bright pair: submandibular, not parotid
    lc = np.flatnonzero(left)[np.argmax(smooth[row, left])]
    rc = np.flatnonzero(right)[np.argmax(smooth[row, right])]
    return float(row), float((lc + rc) / 2.0)


def _midline_at(mid: np.ndarray, row: float, mm: float) -> float | None:
    lo, hi = int(max(0, row - 10 / mm)), int(min(mid.size, row + 10 / mm + 1))
    values = mid[lo:hi]
    values = values[np.isfinite(values)]
    return float(np.median(values)) if values.size else None
