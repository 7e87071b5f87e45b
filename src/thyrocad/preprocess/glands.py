"""The submandibular glands on a planar neck view: compact bright blobs, paired across the
neck midline, confirmed by the parotids above them (PN §9.2, §9.3), for the thyroid-bed
locator (`thyrocad.preprocess.landmarks`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy  # its submodules (ndimage) load on first use: a quick CLI start-up

from thyrocad.preprocess.outline import (
    NECK_WIDTH_RANGE_MM,
    Outline,
    smooth_in_field,
    useful_field,
)

SMG_ABOVE_NOTCH_MM = 110.0
"""Submandibular-gland centroid above the suprasternal notch (PN §9.0: 70 mm above the
cricoid, the notch 40 mm below it)."""
_SMG_SEPARATION_MM = (58.0, 95.0)  # centre-to-centre, PN §9.3: 7-9 cm
_PAROTID_MIN_MM, _PAROTID_SEPARATION_MM = 95.0, 150.0  # parotids 10-13 cm apart (PN §9.3)
_SMG_ABOVE_NOTCH_MM = (65.0, 175.0)  # PN §9.0: 87-133 mm (5th-95th), small to large adults
_PAIR_ROW_MM = 20.0  # the two glands of a pair lie at about the same level
_PAROTID_ROW_MM, _PAROTID_Z = 25.0, 4.0  # parotids (lobulated, often faint), when confirming
_BLOB_SIGMA_MM, _SURROUND_SIGMA_MM = 5.0, 20.0  # blob detector: gland-sized vs surroundings
_BLOB_CONTRAST, _BLOB_Z = 1.15, 2.0  # a blob: 15 % and 2 Poisson SDs above its surroundings
_PAIR_Z = 7.0  # a gland pair: z of both blobs together (one gland is often fainter)
_STRONG_PAIR = 0.5  # with the notch known, pairs under half the strongest one's z are dropped


def submandibular(
    blobs: tuple[np.ndarray, ...],
    outline: Outline,
    mm: float,
    notch: float | None,
    slack_mm: float = 0.0,
    bed_in_neck: Callable[[float], bool] | None = None,
) -> tuple[float, float, bool] | None:
    """(row, col, confirmed) between the submandibular glands: a symmetric pair of blobs
    `_SMG_SEPARATION_MM` apart, preferably with the parotids above it (`confirmed`); with the
    notch known (row), the pair nearest `SMG_ABOVE_NOTCH_MM` above it, else the lowest
    pair, or the lowest for which `bed_in_neck(row)` holds (a lower pair whose bed would lie
    in the chest or off the body is mostly something else); `slack_mm` widens the window
    around that height."""
    rows, cols, z = blobs
    pairs = [
        (
            (rows[i] + rows[j]) / 2.0,
            (cols[i] + cols[j]) / 2.0,
            (cols[j] - cols[i]) * mm,
            z[i] + z[j],
            abs(rows[j] - rows[i]) * mm,
        )
        for i, j in _symmetric_pairs(rows, cols, outline, mm)
    ]
    low, high = _SMG_ABOVE_NOTCH_MM[0] - slack_mm, _SMG_ABOVE_NOTCH_MM[1] + slack_mm
    glands = [
        p
        for p in pairs
        if p[2] <= _SMG_SEPARATION_MM[1]
        and p[3] >= _PAIR_Z
        and p[4] <= _PAIR_ROW_MM
        and (notch is None or notch - high / mm <= p[0] <= notch - low / mm)
    ]
    if not glands:
        return None
    confirmed = [g for g in glands if _has_parotids_above(g, pairs, mm)]
    candidates = confirmed or glands
    if notch is None:
        in_neck = bed_in_neck or (lambda _: True)
        row, col = max(candidates, key=lambda g: (in_neck(g[0]), g[0]))[:2]
    else:  # of the strong pairs, the one nearest its expected height above the notch (a
        # node pair is lower; a parotid pair, higher, shows as fainter fragments of lobules)
        strongest = max(g[3] for g in candidates)
        candidates = [g for g in candidates if g[3] >= _STRONG_PAIR * strongest]
        expected = notch - SMG_ABOVE_NOTCH_MM / mm
        row, col = min(candidates, key=lambda g: abs(g[0] - expected))[:2]
    return float(row), float(col), bool(confirmed)


def _has_parotids_above(glands: tuple, pairs: list[tuple], mm: float) -> bool:
    """A pair as wide as the parotids (PN §9.3; fainter and less level than the glands may
    be) lies 10-60 mm above the pair `glands`."""
    return any(
        10.0 <= (glands[0] - p[0]) * mm <= 60.0
        and p[2] >= max(_PAROTID_MIN_MM, glands[2] + 15.0)
        and p[3] >= _PAROTID_Z
        for p in pairs
    )


def gland_blobs(img: np.ndarray, outline: Outline, mm: float) -> tuple[np.ndarray, ...]:
    """(rows, cols, z) of compact bright blobs in or near the body: local maxima that stand
    `_BLOB_CONTRAST` above their surroundings (difference of Gaussians, both over the useful
    field only) and `_BLOB_Z` Poisson standard deviations (z) above them."""
    sigma = _BLOB_SIGMA_MM / mm
    field = useful_field(img, mm)
    near = smooth_in_field(img, field, sigma)
    around = smooth_in_field(img, field, _SURROUND_SIGMA_MM / mm)
    noise = np.sqrt(np.maximum(around, 1e-6) / (4.0 * np.pi * sigma * sigma))
    size = max(3, round(12.0 / mm) | 1)
    peaks = (near == scipy.ndimage.maximum_filter(near, size=size)) & (near > 0)
    peaks &= near >= _BLOB_CONTRAST * around
    peaks &= near - around >= _BLOB_Z * noise
    peaks &= scipy.ndimage.maximum_filter(outline.mask, size=2 * max(1, int(10.0 / mm)) + 1)
    rows, cols = np.nonzero(peaks)
    return rows, cols, ((near - around) / noise)[rows, cols]


def _symmetric_pairs(rows: np.ndarray, cols: np.ndarray, outline: Outline, mm: float):
    """Index pairs (i, j) of blobs either side of the midline, level, centred, gland-apart.
    The midline is the outline's or, in rows where its run through the midline is empty
    (a head fainter than half the body level of a chest in the field), the whole body's.
    Where that run is wider than a neck, a pair centred on the whole body counts too: raised
    arms beside the head can join the run on one side and pull its centre aside."""
    core = np.where(np.isfinite(outline.centre), outline.centre, outline.body_centre)
    joined = np.where(outline.width_mm > NECK_WIDTH_RANGE_MM[1], outline.body_centre, np.nan)
    keep = np.zeros((rows.size, rows.size), bool)
    for mid in (core[rows], joined[rows]):
        keep |= _pairs_about(rows, cols, mid, mm)
    i, j = np.nonzero(keep)
    return zip(i.tolist(), j.tolist(), strict=True)


def _pairs_about(rows: np.ndarray, cols: np.ndarray, mid: np.ndarray, mm: float) -> np.ndarray:
    """Matrix [i, j]: blob i left and j right of the midline `mid` (per blob), level,
    centred on it and gland-apart."""
    left = np.isfinite(mid) & (cols < mid)
    right = cols > np.where(np.isfinite(mid), mid, np.inf)
    separation = (cols[None, :] - cols[:, None]) * mm
    level = np.abs(rows[None, :] - rows[:, None]) * mm
    centred = np.abs((cols[:, None] + cols[None, :]) / 2.0 - mid[:, None]) * mm
    return (
        left[:, None]
        & right[None, :]
        & (separation >= _SMG_SEPARATION_MM[0])
        & (separation <= _PAROTID_SEPARATION_MM)
        & (level <= _PAROTID_ROW_MM)
        & (centred <= 0.25 * separation)
    )
