"""Landmarks read from the body outline (`thyrocad.preprocess.outline`) for the thyroid-bed
locator (`thyrocad.preprocess.landmarks`): the shoulder-line candidates, raised arms, the neck
width and the neck's in-plane tilt. Distances from published anatomy (PN §9.4)."""

from __future__ import annotations

import numpy as np
import scipy  # its submodules (ndimage, stats) load on first use: a quick CLI start-up

from thyrocad.preprocess.outline import NECK_WIDTH_RANGE_MM, Outline, smoothed_width

_WIDENING_MM = 50.0  # shoulder line: outline this much wider than the neck
_TORSO_MM = 100.0  # ... and stays wider down to the chest (PN §9.4: bideltoid 41-57 cm)
_ARMS_SPAN = 1.6  # outline / head width above the neck, with the arms raised beside the head
_NECK_SHARE = 0.65  # the neck is at most this share of the torso's width below it
_MAX_TILT_DEG = 25.0
_FIT_ROWS = 128  # the tilt's line fit takes every (rows // this)-th row: under 256 rows


def shoulder_rows(width_mm: np.ndarray, mm: float) -> list[float]:
    """Shoulder-line candidates on a profile of outline widths, lowest first: below a
    plausible neck with the head above it (the crown of the head narrows too), the rows
    where the outline has widened by `_WIDENING_MM` and stays wide down to the chest
    (`_TORSO_MM`). Raised arms widen the outline beside the head for a while, above the
    neck, but do not stay wide."""
    width = smoothed_width(width_mm, mm)
    step = max(1, round(30.0 / mm))
    if width.size <= 2 * step:
        return []
    rise = np.zeros(width.shape)
    rise[step:-step] = width[2 * step :] - width[: -2 * step]
    rise[width == 0] = 0.0
    peaks = np.flatnonzero(
        (rise >= _WIDENING_MM) & (rise == scipy.ndimage.maximum_filter1d(rise, 2 * step))
    )
    top = int(np.argmax(width > 0))
    rows = []
    for best in peaks[::-1]:
        start = max(0, best - 3 * step)
        above = width[start : max(1, best - step)]
        above = above[above > 0]
        if above.size == 0 or start <= top:
            continue  # the crown of the head narrows too: a neck has a head above it
        neck = float(np.percentile(above, 25))  # the narrowest part above: the neck
        if not NECK_WIDTH_RANGE_MM[0] <= neck <= NECK_WIDTH_RANGE_MM[1]:
            continue
        crossing = best - step + int(np.argmax(width[best - step :] >= neck + _WIDENING_MM))
        below = width[crossing + step // 3 : crossing + 2 * step]
        if below.size and not np.median(below) >= max(neck + _WIDENING_MM, neck / _NECK_SHARE):
            continue  # narrows again or only a little wider: not the torso
        chest = width[crossing + 2 * step : crossing + round(_TORSO_MM / mm)]
        chest = chest[chest > 0]  # an empty detector band may cut the chest
        if chest.size and not np.percentile(chest, 10) >= neck + _WIDENING_MM:
            continue  # raised arms beside the head: wide for a while, then the neck
        if float(crossing) not in rows:  # several peaks of one widening
            rows.append(float(crossing))
    return rows


def arms_raised(outline: Outline, shoulder: float | None, mm: float) -> bool:
    """Raised arms: above the neck, the body outline (arms included) is more than
    `_ARMS_SPAN` times as wide as the run through the midline (the head)."""
    if shoulder is None:
        return False
    rows = np.arange(int(np.argmax(outline.width_mm > 0)), int(shoulder - 60.0 / mm))
    rows = rows[outline.width_mm[rows] > 0]
    if rows.size == 0:
        return False
    span = outline.mask[rows].sum(axis=1) * mm
    return bool(np.median(span / outline.width_mm[rows]) >= _ARMS_SPAN)


def neck_width_px(outline: Outline, shoulder: float | None, mm: float) -> float | None:
    """Median outline width (pixels) over the 50 mm above the shoulder line."""
    if shoulder is None:
        return None
    width = smoothed_width(outline.width_mm, mm)
    rows = slice(max(0, int(shoulder - 60.0 / mm)), max(1, int(shoulder - 10.0 / mm)))
    values = width[rows][width[rows] > 0]
    return float(np.median(values)) / mm if values.size else None


def tilt_deg(outline: Outline, mm: float) -> float:
    """In-plane tilt of the body: the angle from the vertical of its axis of symmetry (positive
    = head towards larger columns), the mean of two robust (Theil-Sen) lines: through the
    centres of the run through the midline, and of that run in the whole body mask, each over
    every row where the run lies inside the image (a run cut by the image's edge has its
    centre there); 0 with under 40 mm of such rows. Over the whole body, not only the neck:
    the neck above the shoulder line is short, the higher shoulder joins its run first and
    pulls its midline aside, and the head turns and rolls on it (docs/locator-history.md)."""
    slopes = [
        _axis_slope(centre, width, outline.mask.shape[1], mm)
        for centre, width in (
            (outline.centre, outline.width_mm),
            (outline.body_centre, outline.body_width_mm),
        )
    ]
    slopes = [s for s in slopes if s is not None]
    if not slopes:
        return 0.0
    angle = np.mean([np.degrees(np.arctan(-s)) for s in slopes])
    return float(np.clip(angle, -_MAX_TILT_DEG, _MAX_TILT_DEG))


def _axis_slope(centre: np.ndarray, width_mm: np.ndarray, columns: int, mm: float) -> float | None:
    """Columns per row, going down, of a Theil-Sen line through the run centres over the rows
    where the run lies inside the image; None with under 40 mm of such rows."""
    half = width_mm / mm / 2.0
    inside = np.isfinite(centre) & (width_mm > 20.0)
    inside[inside] &= (centre[inside] - half[inside] > 1.0) & (
        centre[inside] + half[inside] < columns - 2.0
    )
    rows = np.flatnonzero(inside)
    if rows.size < 40.0 / mm:
        return None
    rows = rows[:: max(1, rows.size // _FIT_ROWS)]  # Theil-Sen takes every pair of rows
    return float(scipy.stats.theilslopes(centre[rows], rows)[0])
