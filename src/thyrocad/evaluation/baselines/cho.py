"""The channelized Hotelling observer (CHO) on the thyroid-bed region.

The standard model observer of nuclear-medicine image-quality research (Barrett & Myers,
*Foundations of Image Science*, 2004, ch. 13-14; Myers & Barrett, JOSA A 4:2447, 1987):

- **Region.** A square of `ROI_MM` centred on the thyroid bed of each view, placed by the same
  locator as the crop (`thyrocad.preprocess.landmarks.locate_thyroid_bed`), or, on phantom
  cohorts, at the true bed centre from the ground truth (`bed="truth"`). Counts are divided by
  the view's mean count, so exposure (activity x time) does not enter the decision variable.
- **Channels.** `N_CHANNELS` rotationally symmetric Laguerre-Gauss channels of width
  `LG_WIDTH_MM`, u_j(r) = (sqrt(2)/a) exp(-pi r^2/a^2) L_j(2 pi r^2/a^2) (Barrett et al. 1993,
  JOSA A 10:1266; Gallas & Barrett 2003, JOSA A 20:1725), defined in millimetres so that the
  pixel spacing does not change them. A patient's channel vector holds both views' outputs.
- **Observer.** Hotelling template w = S^-1 (mean_residual - mean_non_residual) with S the
  mean of the two class covariances of the channel vectors, fitted on the training patients
  (a small ridge keeps S invertible); the decision variable is t = w . v.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from scipy import special

from thyrocad.preprocess.landmarks import ASSUMED_FIELD_MM
from thyrocad.preprocess.steps import located_bed
from thyrocad.study import Study, View

ROI_MM = 64.0
LG_WIDTH_MM = 18.0
N_CHANNELS = 6
RIDGE = 1e-6  # relative to the mean variance of the channel outputs
VIEWS = (View.ANTERIOR, View.POSTERIOR)
GROUND_TRUTH_DIR = "ground_truth"


def laguerre_gauss_channels(size: int, width_px: float, n: int = N_CHANNELS) -> np.ndarray:
    """(n, size, size) Laguerre-Gauss channels centred on the grid's centre, width `width_px`."""
    c = (size - 1) / 2.0
    rr = np.add.outer((np.arange(size) - c) ** 2, (np.arange(size) - c) ** 2)
    x = 2.0 * np.pi * rr / width_px**2
    gauss = np.sqrt(2.0) / width_px * np.exp(-x / 2.0)
    return np.stack([gauss * special.eval_laguerre(j, x) for j in range(n)])


def view_channels(
    counts: np.ndarray, center_rc: tuple[float, float], spacing_mm: tuple[float, float] | None
) -> np.ndarray:
    """The channel outputs of one view's thyroid-bed region (exposure-normalised counts)."""
    img = np.asarray(counts, dtype=np.float64)
    mm = float(spacing_mm[0]) if spacing_mm else ASSUMED_FIELD_MM / img.shape[1]
    half = round(ROI_MM / mm / 2.0)
    size = 2 * half + 1
    padded = np.pad(img / max(img.mean(), 1e-9), half)
    r, c = (round(float(v)) + half for v in center_rc)
    r = min(max(r, half), padded.shape[0] - half - 1)
    c = min(max(c, half), padded.shape[1] - half - 1)
    roi = padded[r - half : r + half + 1, c - half : c + half + 1]
    channels = laguerre_gauss_channels(size, LG_WIDTH_MM / mm)
    return np.tensordot(channels, roi, axes=([1, 2], [0, 1])) * mm * mm


def patient_channels(study: Study, beds: dict[str, tuple[float, float]] | None = None) -> list:
    """Both views' channel outputs of one study (a missing view repeats the other); `beds`
    maps view names to bed centres (row, col), else the locator places them."""
    present = [v for v in VIEWS if v in study.views] or list(study.views)[:1]
    out = {}
    for view in present:
        counts = study.image(view)
        if beds is not None:
            centre = beds[view.value]
        else:
            centre = located_bed(counts, study.pixel_spacing_mm).center_rc
        out[view] = view_channels(counts, centre, study.pixel_spacing_mm)
    return np.concatenate([out.get(v, out[present[0]]) for v in VIEWS]).tolist()


def true_beds(cohort_dir: str | Path, patient_id: str) -> dict[str, tuple[float, float]]:
    """The ground-truth bed centre of each view of a phantom patient."""
    path = Path(cohort_dir) / GROUND_TRUTH_DIR / f"{patient_id}.json"
    bed = json.loads(path.read_text(encoding="utf-8"))["thyroid_bed_center"]
    return {view: (float(rc["row_px"]), float(rc["col_px"])) for view, rc in bed.items()}


def has_ground_truth(cohort_dir: str | Path, patient_ids: list[str]) -> bool:
    """Whether every patient has a phantom ground-truth file (a phantom cohort)."""
    folder = Path(cohort_dir) / GROUND_TRUTH_DIR
    return bool(patient_ids) and all((folder / f"{p}.json").is_file() for p in patient_ids)


def hotelling_template(features: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """w = S^-1 (mean_1 - mean_0), S the mean class covariance (+ a small ridge)."""
    x, y = np.asarray(features, dtype=np.float64), np.asarray(labels).astype(bool)
    s = 0.5 * (np.cov(x[y], rowvar=False) + np.cov(x[~y], rowvar=False))
    s = np.atleast_2d(s)
    s += RIDGE * max(float(np.trace(s)) / len(s), 1e-12) * np.eye(len(s))
    return np.linalg.solve(s, x[y].mean(axis=0) - x[~y].mean(axis=0))
