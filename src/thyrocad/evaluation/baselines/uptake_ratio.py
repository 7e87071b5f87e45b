"""The thyroid-bed uptake ratio: mean counts per pixel in a thyroid-bed ROI over the typical
counts per pixel of the neck background beside it, on the anterior view.

- ROI: a `ROI_WIDTH_MM` x `ROI_HEIGHT_MM` rectangle centred on the thyroid bed found by
  `thyrocad.preprocess.landmarks.locate_thyroid_bed` (the middle of the neck or of the image
  when it is not found), or on a centre given by the caller (e.g. a phantom's true bed). When
  the located bed is uncertain or not found, the ROI is `UNCERTAIN_ROI_SCALE` times taller
  (the crop's `uncertain_scale`): the locator's error runs along the neck, and a remnant
  outside the ROI is lost to the observer.
- Background: two lateral neck columns, `REF_INNER_MM` to `REF_OUTER_MM` either side of the
  bed centre and `REF_HEIGHT_MM` tall, each cut into `REF_BANDS` boxes of equal height; the
  background is the *median* of the 12 box means. A focal hot spot that is not the bed (a
  lateral lymph node 4-12 mm across, a saliva spot, a gland-like remnant lobe) raises one or
  two boxes and leaves the median nearly unchanged, where it raised a plain mean.
- Hot lateral foci (`hot_lateral_foci`): a focus `NODE_CONTRAST` times the background's
  median box mean or more, over `NODE_LATERAL_MM` beside the bed centre, in or next to the
  reference region, is not thyroid bed: a remnant's maximum lies at its lobe centre, within
  2.5 cm of the midline (PHANTOM_NUMBERS §5, §9.2: lobe centres +-1.5-2.5 cm; a large lobe
  remnant reaches 1 cm further, but its maximum stays at the centre), lateral cervical nodes
  1-5 cm beside the bed (§4.5); the 5 mm to spare cover the locator's column error (p90 4-9
  mm across the anatomy settings, docs/locator-history.md). Its pixels within
  `NODE_MASK_MM`, in its own watershed basin (a remnant with its own maximum keeps its
  pixels), are left out of the ROI and the boxes (a box left with under a quarter of its
  pixels is dropped). Its far scatter halo cannot be masked and slopes across the neck, so
  then each band's background is the mean of its left and right box (interpolated across
  the bed) and the background is the median of the six bands, not of the 12 boxes.
- Anterior view by default, because the bed lies about 2 cm under the anterior skin; with
  `view="both"` the score is the geometric mean of the anterior and posterior ratios.

The threshold is the one maximising Youden's J (sensitivity + specificity - 1) on the
training studies, positive class = residual.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence

import numpy as np
from scipy import ndimage
from skimage.segmentation import watershed
from sklearn.metrics import accuracy_score, balanced_accuracy_score, roc_auc_score

from thyrocad.data.splits import stratified_splits
from thyrocad.decision import choose_threshold
from thyrocad.errors import ObserverInputError
from thyrocad.preprocess.config import CropConfig
from thyrocad.preprocess.hot_foci import focal_maxima
from thyrocad.preprocess.landmarks import ASSUMED_FIELD_MM
from thyrocad.preprocess.steps import located_bed
from thyrocad.study import Study, View

logger = logging.getLogger(__name__)

ROI_WIDTH_MM = 44.0
ROI_HEIGHT_MM = 50.0
REF_INNER_MM = 30.0
REF_OUTER_MM = 48.0
REF_HEIGHT_MM = 90.0
REF_BANDS = 6
UNCERTAIN_ROI_SCALE = CropConfig.uncertain_scale
NODE_LATERAL_MM = 30.0
NODE_CONTRAST = 15.0
NODE_MASK_MM = 20.0
_MIN_BOX_SHARE = 0.25
_VIEWS = {"anterior": (View.ANTERIOR,), "both": (View.ANTERIOR, View.POSTERIOR)}


def _box(
    shape: tuple[int, ...], rows: tuple[float, float], cols: tuple[float, float]
) -> tuple[slice, slice]:
    r0, r1 = (round(np.clip(v, 0, shape[0])) for v in rows)
    c0, c1 = (round(np.clip(v, 0, shape[1])) for v in cols)
    return slice(r0, r1), slice(c0, c1)


def _mean(img: np.ndarray, keep: np.ndarray, box) -> float | None:
    """Mean of the kept pixels of `box`, None when under `_MIN_BOX_SHARE` of them are kept."""
    kept = keep[box]
    if kept.size == 0 or kept.mean() < _MIN_BOX_SHARE:
        return None
    return float(img[box][kept].mean())


def uptake_ratio(
    counts: np.ndarray,
    spacing_mm: tuple[float, float] | None,
    center_rc: tuple[float, float] | None = None,
    uncertain: bool = False,
) -> float:
    """Thyroid-bed ROI mean over the median background-box mean on one view (module doc),
    hot lateral foci left out of both.

    The ROI is centred on `center_rc` (original pixels) when given, else on the located bed;
    it is taller when the located bed is uncertain, or when the caller says its centre is
    (`uncertain`, e.g. a pipeline's `bed_uncertain` flag)."""
    img = np.asarray(counts, dtype=np.float64)
    bed = None if center_rc is not None else located_bed(img, spacing_mm)
    if bed is not None and not bed.found:
        logger.debug("thyroid bed not found (%s); using %s", bed.reason, bed.center_rc)
    mm = float(spacing_mm[0]) if spacing_mm else (bed.scale_mm if bed else None)
    mm = mm or ASSUMED_FIELD_MM / img.shape[1]
    r, c = center_rc if center_rc is not None else bed.center_rc
    uncertain = uncertain or (bed is not None and (bed.uncertain or not bed.found))
    hot = hot_lateral_foci(img, (r, c), mm)
    keep = ~hot
    half_height = ROI_HEIGHT_MM * (UNCERTAIN_ROI_SCALE if uncertain else 1.0) / 2 / mm
    roi = _box(
        img.shape,
        (r - half_height, r + half_height),
        (c - ROI_WIDTH_MM / 2 / mm, c + ROI_WIDTH_MM / 2 / mm),
    )
    roi_mean = float(img[roi][keep[roi]].mean()) if keep[roi].any() else 0.0
    return roi_mean / _background(img, (r, c), mm, keep, across=bool(hot.any()))


def hot_lateral_foci(img: np.ndarray, center_rc: tuple[float, float], mm: float) -> np.ndarray:
    """Mask of the pixels that belong to hot foci lateral to the bed (module doc): local
    maxima `NODE_CONTRAST` times the background or more, over `NODE_LATERAL_MM` beside
    `center_rc`, within `NODE_MASK_MM` of the reference region; each masked within
    `NODE_MASK_MM`, inside its own watershed basin."""
    r, c = center_rc
    near, rows, cols = focal_maxima(img, mm)
    lateral = np.abs(cols - c) * mm
    hot = (
        (np.abs(rows - r) * mm <= REF_HEIGHT_MM / 2 + NODE_MASK_MM)
        & (lateral > NODE_LATERAL_MM)
        & (lateral <= REF_OUTER_MM + NODE_MASK_MM)
        & (near[rows, cols] >= NODE_CONTRAST * _background(img, center_rc, mm))
    )
    mask = np.zeros(img.shape, dtype=bool)
    if not hot.any():
        return mask
    peaks = np.zeros(img.shape, dtype=bool)
    peaks[rows, cols] = True
    basins = watershed(-near, ndimage.label(peaks)[0])
    grid_r, grid_c = np.indices(img.shape)
    for fr, fc in zip(rows[hot], cols[hot], strict=True):
        disc = np.hypot(grid_r - fr, grid_c - fc) * mm <= NODE_MASK_MM
        mask |= disc & (basins == basins[fr, fc])
    logger.debug("masked %d hot lateral foci", int(hot.sum()))
    return mask


def _background(
    img: np.ndarray,
    center_rc: tuple[float, float],
    mm: float,
    keep: np.ndarray | None = None,
    across: bool = False,
) -> float:
    """Median of the background box means over the `keep` pixels (counts per pixel); with
    `across`, of the band means instead, each the mean of its two boxes, left and right of
    the bed (interpolated across it; bands with a dropped box are left out). See module doc."""
    r, c = center_rc
    keep = np.ones(img.shape, dtype=bool) if keep is None else keep
    edges = np.linspace(r - REF_HEIGHT_MM / 2 / mm, r + REF_HEIGHT_MM / 2 / mm, REF_BANDS + 1)
    columns = (
        (c - REF_OUTER_MM / mm, c - REF_INNER_MM / mm),
        (c + REF_INNER_MM / mm, c + REF_OUTER_MM / mm),
    )
    bands = [
        [_box(img.shape, rows, cols) for cols in columns] for rows in itertools.pairwise(edges)
    ]
    means = [[_mean(img, keep, box) for box in band] for band in bands]
    if across:
        values = [float(np.mean(band)) for band in means if None not in band]
    else:
        values = [m for band in means for m in band if m is not None]
    # at least half a count in the whole reference region keeps an empty background from
    # dividing by zero; a floor per pixel would depend on the pixel size (at 1.2 mm, or at
    # low counts at 2.2 mm, the background is below half a count per pixel)
    floor = 0.5 / max(sum(img[box].size for band in bands for box in band), 1)
    return max(float(np.median(values)) if values else 0.0, floor)


class UptakeRatioObserver:
    """Scores studies by the thyroid-bed uptake ratio; `fit` picks the Youden threshold.

    Example:
        >>> obs = UptakeRatioObserver().fit(train_studies, train_labels)
        >>> obs.predict(test_studies)  # 1 = residual
    """

    def __init__(self, view: str = "anterior") -> None:
        if view not in _VIEWS:
            raise ValueError(f"view must be one of {', '.join(_VIEWS)}, got {view!r}")
        self.view = view
        self.threshold_: float | None = None

    def score(self, studies: Sequence[Study]) -> np.ndarray:
        """Uptake ratio of each study (higher = more likely residual)."""
        out = np.empty(len(studies))
        for i, study in enumerate(studies):
            try:
                ratios = [
                    uptake_ratio(study.image(v), study.pixel_spacing_mm) for v in _VIEWS[self.view]
                ]
            except KeyError as exc:
                raise ObserverInputError(
                    f"study {i} ({study.source or 'no source'}) lacks a view the uptake-ratio "
                    f"observer needs ({self.view}): {exc}; use view='anterior' or add the view"
                ) from None
            out[i] = float(np.exp(np.mean(np.log(np.maximum(ratios, 1e-6)))))
        return out

    def fit(self, studies: Sequence[Study], labels: Sequence[int]) -> UptakeRatioObserver:
        """Choose the threshold maximising Youden's J on these studies (labels: 1 = residual)."""
        y = np.asarray(labels, dtype=int)
        if set(np.unique(y)) != {0, 1}:
            raise ObserverInputError("fit needs labels of both classes (1 = residual, 0 = not)")
        self.threshold_ = youden_threshold(self.score(studies), y)
        return self

    def predict(self, studies: Sequence[Study]) -> np.ndarray:
        """1 (residual) where the ratio reaches the fitted threshold, else 0."""
        if self.threshold_ is None:
            raise ObserverInputError("call fit() before predict()")
        return (self.score(studies) >= self.threshold_).astype(int)


def youden_threshold(scores: np.ndarray, labels: np.ndarray) -> float:
    """The score threshold maximising sensitivity + specificity - 1 (labels: 1 = residual)."""
    return choose_threshold(labels, scores, rule="youden").threshold


def evaluate_on_splits(
    scores: Sequence[float],
    labels: Sequence[int],
    patient_ids: Sequence[str],
    n_splits: int = 10,
    seed: int = 0,
) -> list[dict[str, float]]:
    """Per stratified 3:1 split (as in the paper): test AUC, and accuracy and balanced accuracy
    at the Youden threshold fitted on the training part. One score per patient."""
    by_id = {pid: (float(s), int(y)) for pid, s, y in zip(patient_ids, scores, labels, strict=True)}
    rows = []
    for split in stratified_splits(list(by_id), [by_id[p][1] for p in by_id], n_splits, 0.25, seed):
        tr = np.array([by_id[p] for p in split.train])
        te = np.array([by_id[p] for p in split.test])
        threshold = youden_threshold(tr[:, 0], tr[:, 1].astype(int))
        pred = (te[:, 0] >= threshold).astype(int)
        y_te = te[:, 1].astype(int)
        rows.append(
            {
                "split": split.index,
                "auc": float(roc_auc_score(y_te, te[:, 0])),
                "accuracy": float(accuracy_score(y_te, pred)),
                "balanced_accuracy": float(balanced_accuracy_score(y_te, pred)),
                "threshold": threshold,
            }
        )
    return rows
