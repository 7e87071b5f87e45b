"""The preprocessing steps, one small function each (see docs/preprocessing.md for the method).

Every step takes plain NumPy arrays and its config section and returns its output plus the
`Flag`s it raised; none of them lets bad input reach OpenCV's C++ assertions.
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from dataclasses import dataclass
from enum import StrEnum

import cv2
import numpy as np

from thyrocad.errors import ConfigError, NonFiniteCountsError, PreprocessError, ThyrocadError
from thyrocad.preprocess.config import (
    CropConfig,
    EqualizeConfig,
    GrabCutConfig,
    OutputConfig,
    WindowConfig,
)
from thyrocad.preprocess.landmarks import ASSUMED_FIELD_MM, BedLocation, locate_thyroid_bed

logger = logging.getLogger(__name__)

MIN_GRABCUT_SIDE = 8  # px; smaller crops cannot leave GrabCut a background border
SATURATION_SHARE = 0.01  # share of crop pixels at the maximum above which a crop is "saturated"
_INTERPOLATION = {
    "linear": cv2.INTER_LINEAR,
    "cubic": cv2.INTER_CUBIC,
    "area": cv2.INTER_AREA,
    "nearest": cv2.INTER_NEAREST,
}


class Flag(StrEnum):
    """Something the pipeline noticed and worked around; results carry these, never hide them."""

    NO_SPACING = "no_spacing"  # no pixel spacing: pixel-based fallback box
    BED_NOT_FOUND = "bed_not_found"  # localisation failed: fallback centre
    PADDED = "padded"  # crop box reaches outside the image: zero-padded
    NEGATIVE_COUNTS = "negative_counts_clipped"
    BLANK = "blank_image"  # no counts in the crop
    FLAT = "flat_image"  # every crop pixel has the same non-zero value
    SPARSE = "sparse_counts"  # clip percentile was 0: windowed at the maximum instead
    SATURATED = "saturated"  # many crop pixels sit at the maximum value
    GRABCUT_SKIPPED = "grabcut_skipped"  # crop too small or flat for GrabCut
    GRABCUT_FAILED = "grabcut_failed"  # cv2.error inside GrabCut
    GRABCUT_EMPTY = "grabcut_empty"  # foreground below min_fg_fraction
    BED_SET_BY_USER = "bed_set_by_user"  # the bed centre was given by a person, not located
    BED_UNCERTAIN = "bed_uncertain"  # low locator confidence: larger crop (bed_reason says why)


@dataclass(frozen=True)
class CropBox:
    """A box in original-image pixels, end-exclusive; may reach outside the image (padding)."""

    row0: int
    col0: int
    row1: int
    col1: int

    @property
    def shape(self) -> tuple[int, int]:
        return self.row1 - self.row0, self.col1 - self.col0

    def as_tuple(self) -> tuple[int, int, int, int]:
        return self.row0, self.col0, self.row1, self.col1


def check_counts(counts: np.ndarray) -> tuple[np.ndarray, list[Flag]]:
    """Validate a count image: 2-D, finite; negative counts are clipped to 0 (flagged)."""
    arr = np.asarray(counts)
    if arr.ndim != 2 or min(arr.shape, default=0) < 1:
        raise PreprocessError(
            f"count image must be a non-empty 2-D array, got shape {arr.shape}; "
            "pass one planar view at a time"
        )
    if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise PreprocessError(f"count image must be real-valued, got dtype {arr.dtype}")
    arr = arr.astype(np.float32, copy=False)
    bad = ~np.isfinite(arr)
    if bad.any():
        raise NonFiniteCountsError(
            f"count image has {int(bad.sum())} NaN/inf pixels; the file or its rescale "
            "slope/intercept is corrupt: re-export the study"
        )
    if (arr < 0).any():
        return np.clip(arr, 0, None), [Flag.NEGATIVE_COUNTS]
    return arr, []


BED_SET_BY_USER = "bed set by user"


@dataclass(frozen=True)
class BedChoice:
    """Where the crop is centred and how sure that is. Unpacks as (center, reason, flags).

    `confidence` is the locator's (1.0 for a centre set by a person or by the config, 0.0
    without one); `method` names the landmarks used; `scale_mm` is the mm per pixel the
    locator estimated when the spacing is unknown; `enlarge` multiplies the crop's sides
    (the fallback for an uncertain bed)."""

    center: tuple[float, float]
    reason: str
    flags: tuple[Flag, ...]
    confidence: float
    method: str
    scale_mm: float | None = None
    enlarge: float = 1.0

    def __iter__(self):
        return iter((self.center, self.reason, list(self.flags)))


def locate_bed(
    counts: np.ndarray,
    spacing_mm: tuple[float, float] | None,
    cfg: CropConfig,
    bed_rc: tuple[float, float] | None = None,
) -> BedChoice:
    """The thyroid-bed centre (row, col): the user's (`bed_rc`, original pixels), the config's
    manual centre, the landmarks, or the fallback centre.

    A located bed below `cfg.min_bed_confidence` is flagged `bed_uncertain` with the reason
    ("bed_uncertain: glands not found") and gets a crop `cfg.uncertain_scale` times larger; a
    bed that cannot be located is flagged `bed_not_found` too and centred on the locator's
    guess (the middle of the neck) or `cfg.fallback_center_frac`.
    """
    if bed_rc is not None:
        row, col = (float(v) for v in bed_rc)
        if not (0 <= row < counts.shape[0] and 0 <= col < counts.shape[1]):
            raise ConfigError(
                f"the thyroid bed given at row {row:g}, column {col:g} lies outside the "
                f"{counts.shape[0]}x{counts.shape[1]} view; give original-pixel coordinates"
            )
        return BedChoice((row, col), BED_SET_BY_USER, (Flag.BED_SET_BY_USER,), 1.0, "user")
    if cfg.center_rc is not None:
        center = (float(cfg.center_rc[0]), float(cfg.center_rc[1]))
        return BedChoice(center, "manual centre", (), 1.0, "config")
    if not cfg.use_landmarks:
        return _fallback(counts, cfg, "localisation switched off", None)
    try:
        bed = located_bed(counts, spacing_mm)
    except (ThyrocadError, ValueError, IndexError) as exc:
        # A localiser bug on an odd image must not stop preprocessing: fall back, flagged.
        logger.warning("thyroid-bed localisation raised %s: %s", type(exc).__name__, exc)
        return _fallback(counts, cfg, f"localisation raised {type(exc).__name__}", None)
    if not bed.found:
        return _fallback(counts, cfg, bed.reason, bed)
    center = (float(bed.center_rc[0]), float(bed.center_rc[1]))
    located = {"confidence": bed.confidence, "method": bed.method, "scale_mm": bed.scale_mm}
    if bed.confidence >= cfg.min_bed_confidence:
        return BedChoice(center, f"landmarks ({bed.method})", (), **located)
    logger.info("thyroid bed uncertain (%s, confidence %.2f)", bed.reason, bed.confidence)
    reason = f"{Flag.BED_UNCERTAIN}: {bed.reason}"
    return BedChoice(center, reason, (Flag.BED_UNCERTAIN,), **located, enlarge=cfg.uncertain_scale)


_LOCATED: OrderedDict = OrderedDict()
LOCATED_KEPT = 4096  # views whose located bed is remembered (a few hundred bytes each)


def located_bed(counts: np.ndarray, spacing_mm: tuple[float, float] | None = None) -> BedLocation:
    """`locate_thyroid_bed`, remembered per image content and spacing for this process. The
    locator is most of a view's preprocessing time, and one cohort is located by every
    preprocessing config (an ablation, a recipe beside the paper's pipeline) and every observer
    (uptake ratio, peak detector, CHO): each view is located once. The result is shared; do not
    modify its `landmarks`."""
    arr = np.ascontiguousarray(counts, dtype=np.float64)  # the locator's own working copy
    key = (hashlib.blake2b(arr.tobytes(), digest_size=16).digest(), arr.shape,
           None if spacing_mm is None else tuple(float(s) for s in spacing_mm))  # fmt: skip
    if key in _LOCATED:
        _LOCATED.move_to_end(key)
        return _LOCATED[key]
    bed = _LOCATED[key] = locate_thyroid_bed(arr, spacing_mm)
    if len(_LOCATED) > LOCATED_KEPT:
        _LOCATED.popitem(last=False)
    return bed


def _fallback(counts: np.ndarray, cfg: CropConfig, why: str, bed) -> BedChoice:
    """No located bed: the locator's guess (middle of the neck) or the configured fraction of
    the image, flagged `bed_not_found` and `bed_uncertain`, with the larger crop."""
    if bed is not None and "neck_row" in bed.landmarks:
        center = (float(bed.center_rc[0]), float(bed.center_rc[1]))
        where = "middle of the neck"
    else:
        rows, cols = counts.shape
        center = (cfg.fallback_center_frac[0] * rows, cfg.fallback_center_frac[1] * cols)
        where = "fallback centre"
    logger.info("thyroid bed not located (%s); using the %s %s", why, where, center)
    return BedChoice(
        center,
        f"{Flag.BED_NOT_FOUND}: {why}; {where}",
        (Flag.BED_NOT_FOUND, Flag.BED_UNCERTAIN),
        confidence=0.0,
        method="none",
        scale_mm=None if bed is None else bed.scale_mm,
        enlarge=cfg.uncertain_scale,
    )


def crop_box(
    image_shape: tuple[int, int],
    spacing_mm: tuple[float, float] | None,
    center_rc: tuple[float, float],
    cfg: CropConfig,
    *,
    scale_mm: float | None = None,
    enlarge: float = 1.0,
) -> tuple[CropBox, list[Flag]]:
    """The crop box around `center_rc`: mm-sized from the spacing; without one, from the
    locator's estimated `scale_mm`, else `fallback_box_px` when set, else at the spacing the
    locator assumes (`ASSUMED_FIELD_MM` across the image width); sides times `enlarge`."""
    if not cfg.enabled:
        return CropBox(0, 0, image_shape[0], image_shape[1]), []
    flags: list[Flag] = []
    if spacing_mm is None:
        flags.append(Flag.NO_SPACING)
    if spacing_mm is None and scale_mm is None and cfg.fallback_box_px is not None:
        height, width = (side * enlarge for side in cfg.fallback_box_px)
    else:
        assumed = scale_mm or ASSUMED_FIELD_MM / image_shape[1]
        row_mm, col_mm = spacing_mm if spacing_mm is not None else (assumed, assumed)
        height = cfg.height_mm * enlarge / row_mm
        width = cfg.width_mm * enlarge / col_mm
    height, width = max(1, round(height)), max(1, round(width))
    row0 = round(center_rc[0] - height / 2)
    col0 = round(center_rc[1] - width / 2)
    return CropBox(row0, col0, row0 + height, col0 + width), flags


def _overlap(box: CropBox, image_shape: tuple[int, int]) -> tuple[tuple, tuple] | None:
    """(image slices, box slices) of the part of `box` inside the image; None if no overlap."""
    r0, c0 = max(box.row0, 0), max(box.col0, 0)
    r1, c1 = min(box.row1, image_shape[0]), min(box.col1, image_shape[1])
    if r1 <= r0 or c1 <= c0:
        return None
    image = (slice(r0, r1), slice(c0, c1))
    inside = (slice(r0 - box.row0, r1 - box.row0), slice(c0 - box.col0, c1 - box.col0))
    return image, inside


def crop(counts: np.ndarray, box: CropBox) -> tuple[np.ndarray, list[Flag]]:
    """The box's pixels; parts outside the image are zero counts (flagged `padded`)."""
    out = np.zeros(box.shape, dtype=np.float32)
    overlap = _overlap(box, counts.shape)
    if overlap is not None:
        out[overlap[1]] = counts[overlap[0]]
    inside = overlap is not None and out[overlap[1]].shape == box.shape
    return out, [] if inside else [Flag.PADDED]


def uncrop(
    array: np.ndarray, box: CropBox, image_shape: tuple[int, int], fill: float = 0
) -> np.ndarray:
    """Place a crop-sized `array` back into an image of `image_shape` (the inverse of `crop`).

    Pixels outside the box get `fill`; parts of the box outside the image are dropped. Use it to
    map a mask or heatmap computed on the crop (resize it to `box.shape` first) onto the image.
    """
    if array.shape[:2] != box.shape:
        raise PreprocessError(f"array shape {array.shape[:2]} differs from the box {box.shape}")
    out = np.full((*image_shape, *array.shape[2:]), fill, dtype=array.dtype)
    overlap = _overlap(box, image_shape)
    if overlap is not None:
        out[overlap[0]] = array[overlap[1]]
    return out


def window_to_uint8(
    crop_counts: np.ndarray, cfg: WindowConfig, background: float | None = None
) -> tuple[np.ndarray, list[Flag]]:
    """Counts to 0..255: clip at the crop's `clip_percentile` (or, with `cfg.reference ==
    "background"`, at `cfg.clip_ratio` times `background`, the view's ring median),
    transform, scale; flags oddities."""
    peak = float(crop_counts.max())
    if peak <= 0:
        return np.zeros(crop_counts.shape, np.uint8), [Flag.BLANK]
    if float(crop_counts.min()) == peak:
        return np.full(crop_counts.shape, 255, np.uint8), [Flag.FLAT]
    flags: list[Flag] = []
    if np.mean(crop_counts == peak) > SATURATION_SHARE:
        flags.append(Flag.SATURATED)
    if cfg.reference == "background":
        if background is None or not background > 0:
            raise PreprocessError("a background-referenced window needs the view's background")
        high = cfg.clip_ratio * background
    else:
        high = float(np.percentile(crop_counts, cfg.clip_percentile))
    if high <= 0:
        high = peak
        flags.append(Flag.SPARSE)
    clipped = np.clip(crop_counts, 0, high)
    scaled = clipped / high
    if cfg.transform == "sqrt":
        scaled = np.sqrt(scaled)
    elif cfg.transform == "log":
        scaled = np.log1p(scaled * 255.0) / np.log(256.0)
    elif cfg.transform == "anscombe":
        scaled = (anscombe(clipped) - anscombe(0.0)) / (anscombe(high) - anscombe(0.0))
    return np.rint(scaled * 255.0).astype(np.uint8), flags


def anscombe(counts):
    """Anscombe's variance-stabilising transform of Poisson counts, 2 sqrt(x + 3/8): unit
    variance at any mean (Anscombe 1948), so a faint focus and the background are on one scale."""
    return 2.0 * np.sqrt(np.asarray(counts, dtype=np.float64) + 0.375)


def equalize(image8: np.ndarray, cfg: EqualizeConfig) -> np.ndarray:
    """Histogram equalization of an 8-bit image: `cv2.equalizeHist` or CLAHE."""
    if not cfg.enabled:
        return image8
    if cfg.method == "clahe":
        clahe = cv2.createCLAHE(clipLimit=cfg.clahe_clip_limit, tileGridSize=cfg.clahe_tile_grid)
        return clahe.apply(image8)
    return cv2.equalizeHist(image8)


def grabcut_mask(
    image8: np.ndarray,
    bed_rc: tuple[float, float],
    cfg: GrabCutConfig,
    crop_mm: tuple[float, float],
) -> tuple[np.ndarray, list[Flag]]:
    """Foreground mask (bool) of GrabCut on the 8-bit crop; all-True when skipped or failed.

    `bed_rc` is the bed centre in crop pixels; `crop_mm` the crop's (height, width) in mm, used
    to size the sure-foreground bed ellipse of `init="bed"`.
    """
    keep_all = np.ones(image8.shape, dtype=bool)
    if not cfg.enabled:
        return keep_all, []
    rect = _inset_rect(image8.shape, cfg.margin_frac)
    if min(image8.shape) < MIN_GRABCUT_SIDE or rect is None or image8.std() == 0:
        logger.info("GrabCut skipped: crop %s too small or flat", image8.shape)
        return keep_all, [Flag.GRABCUT_SKIPPED]
    mask = np.zeros(image8.shape, np.uint8)
    mode = cv2.GC_INIT_WITH_RECT
    if cfg.init == "bed":
        mask = _bed_init_mask(image8.shape, rect, bed_rc, cfg.bed_fg_mm, crop_mm)
        mode = cv2.GC_INIT_WITH_MASK
    bgd_model = np.zeros((1, 65), np.float64)
    fgd_model = np.zeros((1, 65), np.float64)
    bgr = cv2.cvtColor(image8, cv2.COLOR_GRAY2BGR)
    cv2.setRNGSeed(cfg.seed)
    try:
        cv2.grabCut(bgr, mask, rect, bgd_model, fgd_model, cfg.iterations, mode)
    except cv2.error as exc:
        logger.warning("GrabCut failed (%s); keeping the crop unsegmented", str(exc).strip()[-120:])
        return keep_all, [Flag.GRABCUT_FAILED]
    foreground = (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)
    if foreground.mean() < cfg.min_fg_fraction:
        logger.info("GrabCut foreground %.4f below minimum; unsegmented", foreground.mean())
        return keep_all, [Flag.GRABCUT_EMPTY]
    return foreground, []


def _inset_rect(shape: tuple[int, int], margin_frac: float) -> tuple[int, int, int, int] | None:
    """(x, y, w, h) inset by `margin_frac` but at least 1 px, or None if nothing is left."""
    rows, cols = shape
    dy = max(1, round(margin_frac * rows))
    dx = max(1, round(margin_frac * cols))
    w, h = cols - 2 * dx, rows - 2 * dy
    return (dx, dy, w, h) if w >= 2 and h >= 2 else None


def _bed_init_mask(
    shape: tuple[int, int],
    rect: tuple[int, int, int, int],
    bed_rc: tuple[float, float],
    bed_fg_mm: tuple[float, float],
    crop_mm: tuple[float, float],
) -> np.ndarray:
    """GC_BGD outside `rect`, GC_PR_FGD inside, GC_FGD on the bed ellipse (clipped to rect)."""
    x, y, w, h = rect
    mask = np.full(shape, cv2.GC_BGD, np.uint8)
    mask[y : y + h, x : x + w] = cv2.GC_PR_FGD
    rows, cols = np.ogrid[: shape[0], : shape[1]]
    half_w = bed_fg_mm[0] / 2 / crop_mm[1] * shape[1]
    half_h = bed_fg_mm[1] / 2 / crop_mm[0] * shape[0]
    inside = ((rows - bed_rc[0]) / half_h) ** 2 + ((cols - bed_rc[1]) / half_w) ** 2 <= 1
    mask[inside & (mask == cv2.GC_PR_FGD)] = cv2.GC_FGD
    return mask


def to_network_input(image8: np.ndarray, cfg: OutputConfig) -> np.ndarray:
    """Resize to `cfg.size`, scale to 0..1, replicate to 3 channels, normalise: float32 CHW."""
    rows, cols = cfg.size
    resized = cv2.resize(image8, (cols, rows), interpolation=_INTERPOLATION[cfg.interpolation])
    unit = resized.astype(np.float32) / 255.0
    mean = np.asarray(cfg.mean, np.float32)[:, None, None]
    std = np.asarray(cfg.std, np.float32)[:, None, None]
    return np.ascontiguousarray((unit[None] - mean) / std, dtype=np.float32)
