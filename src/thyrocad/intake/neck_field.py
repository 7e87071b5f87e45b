"""The neck field of a whole-body sweep: the part a neck spot view would have recorded.

A whole-body sweep (ImageType WHOLE BODY, or a frame much longer than wide; head at the top,
as every sweep in ../shared/refdata/nm-dicom is stored) is cut to a square field as wide as
the sweep, starting `HEAD_MARGIN_MM` above the top of the head, so that it holds what a
large-field camera centred on the neck holds: the head, the salivary glands, the neck, the
shoulders and the upper chest. Landmarks come from the body outline's width per row:

- the head top is the first row at least `HEAD_MIN_WIDTH_MM` wide that is followed by
  `HEAD_MIN_RUN_MM` of such rows (narrower rows above it are noise or a collimator edge);
- the shoulders are the first row, `SHOULDER_SEARCH_MM` below the head top, at least
  `SHOULDER_MIN_WIDTH_MM` wide (wider than any head, narrower than any adult's shoulders),
  with a neck above it: a row at most `NECK_MAX_WIDTH_MM` wide between it and
  `NECK_SEARCH_FROM_MM` below the head top (this rejects the legs of a sweep stored feet
  first).

Both must be found, else `NeckFieldError` says which is missing. The field's place in the
file (`ViewImage.origin_rc`) maps everything found on it back to the sweep's pixels.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

import numpy as np

from thyrocad.errors import NeckFieldError
from thyrocad.intake.outline import body_mask, row_widths
from thyrocad.io.dicom_checks import MAX_PLANAR_ASPECT
from thyrocad.study import Study

logger = logging.getLogger(__name__)

FROM_WHOLE_BODY = "from_whole_body"
ASSUMED_SWEEP_WIDTH_MM = 563.0
"""Sweep width assumed without pixel spacing (a large-field camera, PHANTOM_NUMBERS §9.6)."""
SMOOTHING_MM = 8.0  # outline smoothing: about one I-131 system FWHM at 10 cm (12 mm)
HEAD_MIN_WIDTH_MM = 60.0  # narrower than any adult head (bizygomatic breadth 13-14 cm, §9.3)
HEAD_MIN_RUN_MM = 40.0
HEAD_MARGIN_MM = 25.0  # the field starts this far above the head top
SHOULDER_SEARCH_MM = (120.0, 350.0)  # below the head top: the vertex lies 30-32 cm above the
# sternal notch (§9.1), and the outline widens into the shoulders above the notch
SHOULDER_MIN_WIDTH_MM = 280.0  # a head is at most about 20 cm wide on the blurred outline;
# biacromial breadth is at least 33.5 cm (5th percentile of women, §9.4)
NECK_MAX_WIDTH_MM = 220.0  # necks are 10-15 cm wide (§9.4), up to ~19 cm on the outline
NECK_SEARCH_FROM_MM = 100.0  # below the head top: the skull is widest about 10 cm down


@dataclass(frozen=True)
class NeckField:
    """The neck field (rows `row0`..`row1`, all columns, end-exclusive) and its landmarks."""

    row0: int
    row1: int
    head_top_row: int
    shoulder_row: int


def is_whole_body(study: Study) -> bool:
    """True for a whole-body sweep: ImageType WHOLE BODY, or a frame more than
    `MAX_PLANAR_ASPECT` times as long as it is wide."""
    image_type = study.metadata.get("image_type", "").upper().split("\\")
    long_frame = any(
        im.counts.shape[0] > MAX_PLANAR_ASPECT * im.counts.shape[1] for im in study.images
    )
    return "WHOLE BODY" in image_type or long_frame


def neck_field_study(study: Study) -> Study:
    """`study` with every frame of the sweep replaced by its neck field (flagged
    `from_whole_body`, placed in the file by `origin_rc`)."""
    images = []
    for image in study.images:
        field = find_neck_field(image.counts, study.pixel_spacing_mm, study.source)
        logger.info(
            "whole-body %s view: neck field rows %d-%d (head top %d, shoulders %d)",
            image.view.value, field.row0, field.row1, field.head_top_row, field.shoulder_row,
        )  # fmt: skip
        images.append(
            dataclasses.replace(
                image,
                counts=np.ascontiguousarray(image.counts[field.row0 : field.row1]),
                origin_rc=(image.origin_rc[0] + field.row0, image.origin_rc[1]),
                flags=(*image.flags, FROM_WHOLE_BODY),
            )
        )
    return dataclasses.replace(study, images=tuple(images))


def find_neck_field(
    counts: np.ndarray, spacing_mm: tuple[float, float] | None, what: str = "the sweep"
) -> NeckField:
    """The neck field of one whole-body frame (head at the top); `NeckFieldError` when the
    head top or the shoulders cannot be found."""
    rows, cols = counts.shape
    row_mm, col_mm = spacing_mm or (ASSUMED_SWEEP_WIDTH_MM / cols,) * 2
    mask = body_mask(counts, SMOOTHING_MM / col_mm)
    if mask is None:
        raise NeckFieldError(f"{what}: no body outline in the whole-body sweep (no counts?)")
    width_mm = row_widths(mask) * col_mm
    head_top = _head_top(width_mm, row_mm)
    if head_top is None:
        raise NeckFieldError(
            f"{what}: no head found at the top of the whole-body sweep (no run of rows "
            f"{HEAD_MIN_WIDTH_MM:g} mm wide); is it stored head first? Cut the neck view yourself"
        )
    shoulders = _shoulder_row(width_mm, row_mm, head_top)
    if shoulders is None:
        low, high = SHOULDER_SEARCH_MM
        raise NeckFieldError(
            f"{what}: no neck and shoulders found {low:g}-{high:g} mm below the head top of "
            "the whole-body sweep; is it stored head first? Cut the neck view yourself"
        )
    side = min(rows, round(cols * col_mm / row_mm))
    row0 = min(max(head_top - round(HEAD_MARGIN_MM / row_mm), 0), rows - side)
    return NeckField(row0, row0 + side, head_top, shoulders)


def _head_top(width_mm: np.ndarray, row_mm: float) -> int | None:
    """First row of the first run of `HEAD_MIN_RUN_MM` rows at least `HEAD_MIN_WIDTH_MM` wide."""
    run = max(1, round(HEAD_MIN_RUN_MM / row_mm))
    wide = (width_mm >= HEAD_MIN_WIDTH_MM).astype(np.int64)
    if wide.size < run:
        return None
    windows = np.convolve(wide, np.ones(run, dtype=np.int64), mode="valid")
    starts = np.flatnonzero(windows == run)
    return int(starts[0]) if starts.size else None


def _shoulder_row(width_mm: np.ndarray, row_mm: float, head_top: int) -> int | None:
    """First row `SHOULDER_SEARCH_MM` below the head top at least `SHOULDER_MIN_WIDTH_MM` wide,
    below a neck (a row at most `NECK_MAX_WIDTH_MM` wide)."""
    low, high = (head_top + round(mm / row_mm) for mm in SHOULDER_SEARCH_MM)
    wide = np.flatnonzero(width_mm[low : high + 1] >= SHOULDER_MIN_WIDTH_MM)
    if not wide.size:
        return None
    row = int(low + wide[0])
    neck_from = min(head_top + round(NECK_SEARCH_FROM_MM / row_mm), row - 1)
    return row if width_mm[neck_from:row].min() <= NECK_MAX_WIDTH_MM else None
