"""The body outline of a planar neck view, row by row: how wide the run through the midline is
and where its centre lies (the neck midline), for the thyroid-bed locator
(`thyrocad.preprocess.landmarks`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy  # its submodules (ndimage) load on first use: a quick CLI start-up
import skimage  # likewise skimage.filters

from thyrocad.preprocess.hot_foci import straighten_midline

_MAX_BODY_FRACTION = 0.9
_BODY_LEVEL = 0.3  # outline threshold, fraction of the typical body level
_CORE_LEVEL = 0.5  # widths are measured at this fraction (raised arms stay apart)
_MIDLINE_ROWS_MM = 15.0  # the midline at a row: the median over the rows this far around it
_NECK_ROW_SLACK_MM = 40.0  # ... no wider than the neck and this much more
NECK_WIDTH_RANGE_MM = (50.0, 230.0)  # outline of an adult neck (PN §9.4: 10-15 cm), blurred
_EMPTY_MM = 40.0  # a count-free region this wide lies outside the useful field


@dataclass(frozen=True)
class Outline:
    """Per-row body outline of a planar view (`body_outline`)."""

    mask: np.ndarray
    width_mm: np.ndarray  # per row: width of the body run through the midline (0 outside)
    centre: np.ndarray  # per row: centre column of that run (NaN outside)
    level: float  # typical blood-pool level of the body (smoothed counts)
    body_width_mm: np.ndarray  # per row: that run in the whole body mask (faint parts too)
    body_centre: np.ndarray  # per row: its centre column (NaN outside)


def body_outline(img: np.ndarray, mm: float) -> Outline | None:
    """Body mask (blood pool) and, per row, the width and centre of the run through the
    midline (so that raised arms beside the head do not widen the neck), measured at
    `_CORE_LEVEL` of the body level or of the row's median, whichever is higher; the midline
    is interpolated across the rows that a hot off-midline focus bends (`hot_foci`). Also the
    run's width in the whole mask, where the shoulders show over lungs fainter than that."""
    smooth = scipy.ndimage.gaussian_filter(img, 6.0 / mm)
    found = _body_mask(smooth)
    if found is None:
        return None
    mask, level = found
    cols = np.arange(mask.shape[1], dtype=float)
    counts = mask.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_col = (mask * cols).sum(axis=1) / counts
    mid = round(float(np.nanmedian(mean_col)))
    # the halo of a hot focus raises a row's counts beyond the body edge, and its median too
    row_level = np.ma.median(np.ma.masked_array(smooth, ~mask), axis=1).filled(level)
    core = mask & (smooth > _CORE_LEVEL * np.maximum(level, row_level)[:, None])
    bridge = max(3, round(15.0 / mm))  # ... noise holes do not
    core = scipy.ndimage.minimum_filter1d(
        scipy.ndimage.maximum_filter1d(core, bridge, axis=1), bridge, axis=1
    )
    core &= mask
    width, centre = _run_through(core, mid, mm)
    centre = straighten_midline(centre, img, level, mm)
    return Outline(mask, width, centre, level, *_run_through(mask, mid, mm))


def field_outline(img: np.ndarray, mm: float) -> Outline | None:
    """The outline of a view whose body fills the camera's useful field (a zoomed neck view
    with the arms raised beside the head, where `body_outline` finds none): the useful field
    itself, each row's run through its middle column. None when the field holds no counts."""
    field = useful_field(img, mm)
    if not field.any() or img.sum() <= 0:
        return None
    mid = round(float(np.median(np.nonzero(field)[1])))
    width, centre = _run_through(field, mid, mm)
    level = float(np.median(scipy.ndimage.gaussian_filter(img, 6.0 / mm)[field]))
    return Outline(field, width, centre, level, width, centre)


def _run_through(mask: np.ndarray, mid: int, mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the width (mm) and the centre column of the run of True values through
    column `mid` (0 and NaN where that column is False)."""
    left, right = _run_length(mask[:, mid::-1]), _run_length(mask[:, mid:])
    inside = mask[:, mid]
    return np.where(inside, (left + right - 1) * mm, 0.0), np.where(
        inside, mid + (right - left) / 2.0, np.nan
    )


def _run_length(mask: np.ndarray) -> np.ndarray:
    """Per row: number of leading True values."""
    stops = np.argmin(mask, axis=1)
    return np.where(mask.all(axis=1), mask.shape[1], stops).astype(float)


def _body_mask(smooth: np.ndarray) -> tuple[np.ndarray, float] | None:
    """Largest connected region brighter than `_BODY_LEVEL` x the typical body level (the
    median of the pixels above an Otsu threshold), holes filled; and that level."""
    clipped = np.minimum(smooth, np.percentile(smooth, 90))  # hot glands must not set the level
    if np.ptp(clipped) <= 0:
        return None
    body_level = float(np.median(clipped[clipped > skimage.filters.threshold_otsu(clipped)]))
    mask = smooth > _BODY_LEVEL * body_level
    labels, n = scipy.ndimage.label(mask)
    if n == 0:
        return None
    sizes = scipy.ndimage.sum_labels(mask, labels, index=np.arange(1, n + 1))
    body = fill_holes(labels == (int(np.argmax(sizes)) + 1))
    if body.mean() >= _MAX_BODY_FRACTION:
        return None  # no outline in a flat field
    return body, body_level


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """`ndimage.binary_fill_holes` by labelling: background regions (4-connected, as there)
    that do not touch the border are holes. Same result, much faster (no iterated dilation)."""
    background, _ = scipy.ndimage.label(~mask)
    border = np.unique(
        np.concatenate([background[0], background[-1], background[:, 0], background[:, -1]])
    )
    return ~np.isin(background, border[border > 0])


def smoothed_width(width_mm: np.ndarray, mm: float) -> np.ndarray:
    """Running median over 15 mm: a noisy row neither narrows nor widens the neck."""
    return scipy.ndimage.median_filter(width_mm, size=max(1, round(15.0 / mm)))


def midline_at(outline: Outline, row: float, neck: float | None, mm: float) -> float | None:
    """Median outline centre within `_MIDLINE_ROWS_MM` of `row`, over the rows no more than
    `_NECK_ROW_SLACK_MM` wider than the neck (`neck` pixels): where the shoulders or raised
    arms join the run through the midline, its centre leaves the midline."""
    lo = int(max(0, row - _MIDLINE_ROWS_MM / mm))
    hi = int(min(outline.centre.size, row + _MIDLINE_ROWS_MM / mm + 1))
    values = outline.centre[lo:hi]
    keep = np.isfinite(values)
    if neck is not None:
        keep &= outline.width_mm[lo:hi] <= neck * mm + _NECK_ROW_SLACK_MM
    return float(np.median(values[keep])) if keep.any() else None


def useful_field(img: np.ndarray, mm: float) -> np.ndarray:
    """The camera's useful field: every pixel but the count-free regions at least
    `_EMPTY_MM` across (empty detector bands, the corners outside a round field)."""
    size = max(3, round(_EMPTY_MM / mm) | 1)
    empty = scipy.ndimage.maximum_filter(img, size=size) <= 0  # no count within _EMPTY_MM / 2
    return ~scipy.ndimage.maximum_filter(empty, size=size)  # back out to the field's edge


def smooth_in_field(img: np.ndarray, field: np.ndarray, sigma_px: float) -> np.ndarray:
    """Gaussian smoothing over the useful field only (normalised convolution; 0 outside it),
    so that next to an empty band the field's edge does not stand out as a bright blob."""
    if field.all():
        return scipy.ndimage.gaussian_filter(img, sigma_px)
    weight = scipy.ndimage.gaussian_filter(field.astype(float), sigma_px)
    inside = scipy.ndimage.gaussian_filter(np.where(field, img, 0.0), sigma_px)
    return np.where(field, inside / np.maximum(weight, 1e-6), 0.0)
