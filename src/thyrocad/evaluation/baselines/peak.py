"""A training-free matched peak detector at the thyroid bed.

A remnant is a small hot spot near the bed, so the detector asks how bright the brightest
smoothed spot near the bed is compared with the tissue around it:

- **Filter.** Counts smoothed by a Gaussian of `SIGMA_MM` (5 mm, about the size of the
  camera's response to a small focus at I-131 energies, PHANTOM_NUMBERS §2), the matched
  filter of a blob of that size in Poisson noise.
- **Region.** The maximum of the smoothed counts within `SEARCH_MM` (25 mm) of the bed centre
  placed by the same locator as the crop (`thyrocad.preprocess.landmarks.locate_thyroid_bed`).
- **Background.** The median of the smoothed counts in a ring `RING_MM` (35-60 mm) around the
  bed centre: the neck's soft tissue, robust to a salivary gland or node inside the ring
  (`thyrocad.preprocess.background`: the recommended recipe's window divides by the same).
- **Score.** Peak over background per view, summed over the study's views. A background below
  `MIN_BACKGROUND_PER_MM2` (half a count on a 2.2 mm pixel) counts as that floor, scaled to
  the view's pixel area, so the same patient scores the same at any pixel size.

Nothing is fitted but the threshold, which the experiment chooses by Youden's J on each
split's training patients, like the uptake ratio's.
"""

from __future__ import annotations

import numpy as np

from thyrocad.preprocess import background
from thyrocad.preprocess.steps import located_bed
from thyrocad.study import Study

SIGMA_MM = background.BACKGROUND_SIGMA_MM
SEARCH_MM = 25.0
RING_MM = (35.0, 60.0)
MIN_BACKGROUND_PER_MM2 = background.MIN_BACKGROUND_PER_MM2


def peak_ratio(counts: np.ndarray, spacing_mm: tuple[float, float] | None) -> float:
    """Smoothed peak within `SEARCH_MM` of the located bed over the median of the ring around
    it, on one view."""
    img = np.asarray(counts, dtype=np.float64)
    bed = located_bed(img, spacing_mm)
    mm = background.pixel_mm(img.shape, spacing_mm, bed.scale_mm)
    smooth = background.smoothed(img, mm)
    distance = background.distance_mm(img.shape, bed.center_rc, mm)
    near = smooth[distance <= SEARCH_MM]
    peak = float(near.max()) if near.size else 0.0
    return peak / background.ring_median(smooth, distance, RING_MM, mm)


def study_score(study: Study) -> float:
    """The detector's score of a study: the views' peak ratios summed."""
    return float(sum(peak_ratio(im.counts, study.pixel_spacing_mm) for im in study.images))
