"""Locate the thyroid bed on a planar neck view from the image alone: classical, explainable,
with a confidence (docs/preprocessing.md, "Locating the thyroid bed").

Every distance is in mm and comes from published anatomy (shared notes PHANTOM_NUMBERS.md
§9, "PN"), not from this project's phantom, so the rule holds for any camera:

- the body outline (blood pool) gives the neck midline, the neck width and the *shoulder
  line*, a row where the outline has widened by `_WIDENING_MM` below a neck with the head
  above it and stays wide (the torso); of several such rows (the chest below faint lungs
  passes too), the one the most confident location starts from: the base of the neck,
  `SHOULDER_TO_NOTCH_MM` above the suprasternal notch (SSN), further when the arms are
  raised beside the head (they lift the shoulders: `_ARMS_LIFT_MM`);
- the submandibular glands (SMG) are a symmetric pair of blobs `_SMG_SEPARATION_MM` apart,
  *confirmed* when a pair as wide as the parotids lies 15-60 mm above them; with the notch
  known, of the strong pairs the one nearest its expected height (a lower pair of nodes or
  remnants, a higher pair of parotids are rejected), else the lowest (PN §9.2, §9.3);
- the centre of the thyroid-bed region (from the pyramidal-lobe level to the lower poles,
  10 mm above the lower cricoid border) lies `SMG_TO_BED_MM` below the SMG centroid and
  `NOTCH_TO_BED_MM` above the SSN (PN §9.0 chain: SMG 70 mm above the cricoid, SSN 40 mm
  below). Each landmark gives an estimate with the spread of its links (`_SIGMA_MM`); with
  both, they are weighted by inverse variance, unless they disagree;
- the column is the mean of the glands' midpoint and the neck midline at the bed row
  (`thyrocad.preprocess.outline.midline_at`), else whichever was found.

The *confidence* is the modelled probability that the bed region (35 mm either side of its
centre) lies inside a 120 mm crop around the estimate (`_MARGIN_MM` to spare), for a normal
error with the spread of the landmarks used: 0.995 with confirmed glands and shoulders, 0.98
with confirmed glands only, 0.94 with unconfirmed glands and shoulders, 0.85 with the
shoulders only, 0.79 with unconfirmed glands only (with raised arms 0.99, 0.92, 0.77 where
the shoulders count); half of the value of the estimate taken when glands and shoulders
disagree, or when the landmarks are found only on the view as it lies, not deskewed; at
most 0.6 without pixel spacing (the scale is then estimated from the neck width, PN §9.4, and
exported images hold display values, not counts). Below `CONFIDENT`
the caller should treat the crop as uncertain (`reason` says why). When no landmark is
found, `found` is False and `center_rc` is the middle of the neck (or of the image).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, replace

import numpy as np
import scipy  # its submodules (ndimage, stats) load on first use: a quick CLI start-up

from thyrocad.preprocess.outline import (
    Outline,
    body_outline,
    midline_at,
    smooth_in_field,
    smoothed_width,
    useful_field,
)

logger = logging.getLogger(__name__)

ASSUMED_FIELD_MM = 563.0
"""Field width assumed before the scale is estimated, when the pixel spacing is unknown."""
NECK_WIDTH_MM = 120.0
"""Typical outline width of the neck (PN §9.4: 11-13 cm), for the scale of PNG exports."""
SMG_TO_BED_MM = 60.0
"""Bed-region centre below the submandibular-gland centroid (PN §9.0)."""
NOTCH_TO_BED_MM = 50.0
"""Bed-region centre above the suprasternal notch (PN §9.0)."""
SHOULDER_TO_NOTCH_MM = 38.0
"""SSN below the shoulder line (outline 50 mm wider than the neck) [ESTIMATE: the base of the
neck lies 3-5 cm above the SSN, at about the cricoid]."""
CONFIDENT = 0.9
"""Confidence below which a location is uncertain."""
_NO_SPACING_CONFIDENCE = 0.6
_SIGMA_MM = {  # PN §9.0 links + detection; glands without parotids above may be parotids
    "submandibular": 10.5,
    "unconfirmed glands": 20.0,
    "shoulders": 17.5,
}
_DISAGREE_Z = 2.0
_NECK_TOL_MM = 10.0  # neck-like: at most this much wider than the narrowest row between two rows
_NO_GLANDS, _NO_SHOULDERS = "glands not found", "shoulders not found"
_MARGIN_MM = 25.0  # the bed region spans the centre +-35 mm; a 120 mm crop leaves 25 mm
_WIDENING_MM = 50.0  # shoulder line: outline this much wider than the neck
_TORSO_MM = 100.0  # ... and stays wider down to the chest (PN §9.4: bideltoid 41-57 cm)
_SAME_SHOULDER_MM = 15.0  # shoulder-line candidates this close give the same search
_ARMS_SPAN = 1.6  # outline / head width above the neck, with the arms raised beside the head
_ARMS_LIFT_MM = (0.0, 40.0)  # raising the arms lifts the shoulder line by up to 4 cm [ESTIMATE]
_NECK_WIDTH_RANGE_MM = (50.0, 230.0)  # outline of an adult neck (PN §9.4: 10-15 cm), blurred
_NECK_SHARE = 0.65  # the neck is at most this share of the torso's width below it
_SMG_SEPARATION_MM = (58.0, 95.0)  # centre-to-centre, PN §9.3: 7-9 cm
_PAROTID_MIN_MM, _PAROTID_SEPARATION_MM = 95.0, 150.0  # parotids 10-13 cm apart (PN §9.3)
_SMG_ABOVE_NOTCH_MM = (65.0, 175.0)  # PN §9.0: 87-133 mm (5th-95th), small to large adults
_PAIR_ROW_MM = 20.0  # the two glands of a pair lie at about the same level
_PAROTID_ROW_MM, _PAROTID_Z = 25.0, 4.0  # parotids (lobulated, often faint), when confirming
_BLOB_SIGMA_MM, _SURROUND_SIGMA_MM = 5.0, 20.0  # blob detector: gland-sized vs surroundings
_BLOB_CONTRAST, _BLOB_Z = 1.15, 2.0  # a blob: 15 % and 2 Poisson SDs above its surroundings
_PAIR_Z = 7.0  # a gland pair: z of both blobs together (one gland is often fainter)
_STRONG_PAIR = 0.5  # with the notch known, pairs under half the strongest one's z are dropped
_MIN_TILT_DEG = 4.0  # smaller tilts are left alone
_MAX_TILT_DEG = 25.0


@dataclass(frozen=True)
class BedLocation:
    """Estimated thyroid-bed centre (row, col in pixels), how it was found and how sure."""

    center_rc: tuple[float, float]
    found: bool
    method: str
    reason: str = ""  # why not found, or why uncertain; empty when confident
    confidence: float = 0.0
    landmarks: dict[str, float] = field(default_factory=dict)
    scale_mm: float | None = None  # mm per pixel used (estimated when the spacing is unknown)

    @property
    def uncertain(self) -> bool:
        return self.confidence < CONFIDENT


def locate_thyroid_bed(
    counts: np.ndarray, spacing_mm: tuple[float, float] | None = None
) -> BedLocation:
    """Find the thyroid bed on one planar neck view of counts (head at the top)."""
    img = np.asarray(counts, dtype=np.float64)
    centre = ((img.shape[0] - 1) / 2.0, (img.shape[1] - 1) / 2.0) if img.ndim == 2 else (0.0, 0.0)
    if img.ndim != 2 or min(img.shape) < 32:
        return BedLocation(centre, False, "none", f"expected a 2-D image, got shape {img.shape}")
    if not np.isfinite(img).all() or img.sum() <= 0:
        return BedLocation(centre, False, "none", "image is empty or not finite")
    if spacing_mm:
        return _locate(img, float(spacing_mm[0]), centre, estimated=False)
    first = _locate(img, ASSUMED_FIELD_MM / img.shape[1], centre, estimated=True)
    scale = first.landmarks.get("scale_from_neck_mm")
    if scale is None or abs(math.log(scale / first.scale_mm)) < math.log(1.2):
        return first
    return _locate(img, scale, centre, estimated=True)


def _locate(img: np.ndarray, mm: float, centre, estimated: bool) -> BedLocation:
    """Deskew a tilted view, find the landmarks upright, map the centre back."""
    outline = body_outline(img, mm)
    if outline is None:
        return BedLocation(centre, False, "none", "no body outline found (too few counts?)")
    tilt = _tilt_deg(outline, mm)
    if abs(tilt) < _MIN_TILT_DEG:
        found = _locate_upright(img, mm, centre, outline)
    else:
        found = _locate_deskewed(img, mm, centre, tilt)
        if not found.found:  # a tilt misjudged (a focus bends the midline): try it as it lies
            found = _as_it_lies(_locate_upright(img, mm, centre, outline), tilt) or found
    if estimated:
        found = _with_estimated_scale(found)
    return replace(found, scale_mm=mm)


def _locate_deskewed(img: np.ndarray, mm: float, centre, tilt: float) -> BedLocation:
    """The landmark search on the view rotated upright by `tilt`, its centre mapped back."""
    upright = np.clip(scipy.ndimage.rotate(img, tilt, reshape=False, order=1), 0.0, None)
    found = _locate_upright(upright, mm, centre, body_outline(upright, mm))
    back = _rotate_point(found.center_rc, tilt, img.shape)
    marks = {**found.landmarks, "tilt_deg": tilt}
    method = found.method + "+deskew" if found.found else found.method
    return replace(found, center_rc=back, method=method, landmarks=marks)


def _as_it_lies(found: BedLocation, tilt: float) -> BedLocation | None:
    """A location found on the view as it lies after the deskewed one found nothing: the
    tilt was misjudged (on the phantom, a remnant's halo bending the midline), or the
    landmarks are: uncertain either way, at half the confidence. None when not found."""
    if not found.found:
        return None
    why = f"found only without deskewing by the estimated {tilt:.0f} deg"
    marks = {**found.landmarks, "tilt_rejected_deg": tilt}
    return replace(
        found, reason=_also(found, why), confidence=0.5 * found.confidence, landmarks=marks
    )


def _with_estimated_scale(found: BedLocation) -> BedLocation:
    """Without pixel spacing every distance rests on a scale estimated from the neck width
    (PN §9.4: 10-15 cm, so +-15 %), and exported images hold display values, not counts, for
    the blob test: never confident."""
    if not found.found:
        return found
    conf = min(found.confidence, _NO_SPACING_CONFIDENCE)
    why = "pixel spacing unknown (scale estimated from the neck width)"
    return replace(found, confidence=conf, reason=_also(found, why))


def _also(found: BedLocation, why: str) -> str:
    """`found`'s reason with `why` added."""
    return f"{found.reason}; {why}" if found.reason else why


def _locate_upright(
    img: np.ndarray, mm: float, centre: tuple[float, float], outline: Outline | None
) -> BedLocation:
    """The search from each shoulder-line candidate: the most confident location. A low one
    can be the chest widening below the blood pool between faint lungs (the glands lie
    outside its window); when the shoulders alone place the bed, the whole body mask's
    widenings are tried too: over such lungs the run through the midline is that column."""
    if outline is None:
        return BedLocation(centre, False, "none", "no body outline found (too few counts?)")
    blobs = _blobs(img, outline, mm)
    shoulders = _shoulder_rows(outline.width_mm, mm)
    found = [_locate_from(img, mm, centre, outline, blobs, row) for row in shoulders or [None]]
    if _most_confident(found).method == "shoulders":
        found += [
            _locate_from(img, mm, centre, outline, blobs, row)
            for row in _shoulder_rows(outline.body_width_mm, mm)
            if all(abs(row - other) * mm > _SAME_SHOULDER_MM for other in shoulders)
        ]
    return _most_confident(found)


def _most_confident(found: list[BedLocation]) -> BedLocation:
    """The most confident location, the lowest on a tie."""
    return max(found, key=lambda f: (f.confidence, f.center_rc[0]))


def _locate_from(
    img: np.ndarray, mm: float, centre, outline: Outline, blobs, shoulder: float | None
) -> BedLocation:
    """The landmark search from one shoulder line (or none)."""
    marks: dict[str, float] = {}
    lift = _ARMS_LIFT_MM if _arms_raised(outline, shoulder, mm) else (0.0, 0.0)
    notch = None if shoulder is None else shoulder + (SHOULDER_TO_NOTCH_MM + np.mean(lift)) / mm
    neck = _neck_width_px(outline, shoulder, mm)
    if neck is not None:
        marks["neck_width_px"] = neck
        marks["scale_from_neck_mm"] = NECK_WIDTH_MM / neck
    if notch is not None:
        marks["shoulder_row"], marks["notch_row"] = shoulder, notch
        marks["arms_raised"] = float(lift[1] > 0)
    glands = _submandibular(blobs, outline, notch, mm, slack_mm=np.ptp(lift) / 2)
    if glands is not None:
        marks["submandibular_row"], marks["submandibular_col"] = glands[:2]
        marks["glands_confirmed"] = float(glands[2])
    sigma_notch = math.hypot(_SIGMA_MM["shoulders"], np.ptp(lift) / math.sqrt(12.0))
    estimate = _combine(glands, notch, mm, sigma_notch, outline)
    if estimate is None:
        return _not_found(img, outline, mm, centre, marks)
    row, method, confidence, reason = estimate
    row = float(np.clip(row, 0, img.shape[0] - 1))
    col = _column(glands, midline_at(outline, row, neck, mm))
    if col is None:
        return BedLocation(centre, False, method, "no neck outline at the bed level", 0.0, marks)
    return BedLocation((row, float(col)), True, method, reason, confidence, marks)


def _combine(
    glands, notch, mm, sn: float, outline: Outline
) -> tuple[float, str, float, str] | None:
    """(row, method, confidence, reason) from the landmarks found, or None without any.

    Each landmark gives an estimate of the bed row with its PN §9 spread (`sn` for the notch
    from the shoulders); with both, they are weighted by inverse variance, unless they
    disagree by more than `_DISAGREE_Z` spreads: then, uncertain either way, the shoulders'
    estimate, or the confirmed glands' when only theirs lies in the neck (`_only_in_neck`)."""
    sg = _SIGMA_MM["submandibular" if glands is not None and glands[2] else "unconfirmed glands"]
    from_notch = None if notch is None else notch - NOTCH_TO_BED_MM / mm
    if glands is None:
        return None if notch is None else (from_notch, "shoulders", _confidence(sn), _NO_GLANDS)
    from_glands = glands[0] + SMG_TO_BED_MM / mm
    if from_notch is None:
        conf = _confidence(sg)
        return from_glands, "submandibular", conf, "" if conf >= CONFIDENT else _NO_SHOULDERS
    gap_mm = (from_notch - from_glands) * mm
    if abs(gap_mm) > _DISAGREE_Z * math.hypot(sg, sn):  # a pair of something else, mostly
        reason = f"landmarks disagree: glands and shoulders put the bed {gap_mm:.0f} mm apart"
        neck = smoothed_width(outline.width_mm, mm)
        if glands[2] and _only_in_neck(neck, from_glands, from_notch):
            return from_glands, "submandibular", 0.5 * _confidence(sg), reason
        return from_notch, "shoulders", 0.5 * _confidence(sn), reason
    wg, wn = 1.0 / (sg * sg), 1.0 / (sn * sn)
    row = (wg * from_glands + wn * from_notch) / (wg + wn)
    return row, "submandibular+shoulders", _confidence((wg + wn) ** -0.5), ""


def _only_in_neck(width: np.ndarray, row: float, other: float) -> bool:
    """Whether the outline at `row` is neck-like and at `other` not: within `_NECK_TOL_MM` of
    its narrowest row between the two (the bed lies in the neck; a misplaced estimate mostly
    in the chest, the shoulders or the jaw, all wider)."""
    at = [int(np.clip(round(r), 0, width.size - 1)) for r in (row, other)]
    between = width[min(at) : max(at) + 1]
    between = between[between > 0]
    if between.size == 0:
        return False
    neck = (width[at] > 0) & (width[at] <= between.min() + _NECK_TOL_MM)
    return bool(neck[0] and not neck[1])


def _confidence(sigma_mm: float) -> float:
    """P(|error| <= crop margin) for a normal error of `sigma_mm`."""
    return math.erf(_MARGIN_MM / (sigma_mm * math.sqrt(2.0)))


def _column(glands: tuple | None, midline: float | None) -> float | None:
    """The bed column: the mean of the glands' midpoint and the neck midline at the bed row,
    two estimates of one line with independent errors (a tilt misjudged over the 60 mm from
    the glands down moves only the first; an outline that is not symmetric, only the
    second), else the one found."""
    if glands is None or midline is None:
        return midline if glands is None else glands[1]
    return (glands[1] + midline) / 2.0


def _not_found(img, outline: Outline, mm: float, centre, marks) -> BedLocation:
    """Neither landmark: report the middle of the neck (narrowest outline) as a fallback."""
    reason = "neither the shoulders nor the submandibular glands were found"
    rows = np.flatnonzero(outline.width_mm > 0)
    if rows.size == 0:
        return BedLocation(centre, False, "none", reason, 0.0, marks)
    inner = rows[(rows > rows[0] + 0.15 * rows.size) & (rows < rows[-1] - 0.15 * rows.size)]
    inner = inner if inner.size else rows
    neck_row = int(inner[np.argmin(outline.width_mm[inner])])
    marks["neck_row"] = float(neck_row)
    guess = (float(neck_row), float(outline.centre[neck_row]))
    return BedLocation(guess, False, "none", reason, 0.0, marks)


# --- the body outline ------------------------------------------------------------------------


def _shoulder_rows(width_mm: np.ndarray, mm: float) -> list[float]:
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
        if not _NECK_WIDTH_RANGE_MM[0] <= neck <= _NECK_WIDTH_RANGE_MM[1]:
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


def _arms_raised(outline: Outline, shoulder: float | None, mm: float) -> bool:
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


def _neck_width_px(outline: Outline, shoulder: float | None, mm: float) -> float | None:
    """Median outline width (pixels) over the 50 mm above the shoulder line."""
    if shoulder is None:
        return None
    width = smoothed_width(outline.width_mm, mm)
    rows = slice(max(0, int(shoulder - 60.0 / mm)), max(1, int(shoulder - 10.0 / mm)))
    values = width[rows][width[rows] > 0]
    return float(np.median(values)) / mm if values.size else None


def _tilt_deg(outline: Outline, mm: float) -> float:
    """In-plane tilt of the neck: angle of the outline midline from the vertical (positive =
    head towards larger columns), a robust (Theil-Sen) fit over the 120 mm above the shoulder
    line; 0 when the shoulders are not found."""
    shoulders = _shoulder_rows(outline.width_mm, mm)
    if not shoulders:
        return 0.0
    shoulder = shoulders[0]
    first = max(0, int(shoulder - 120.0 / mm))
    rows = np.arange(first, int(shoulder))
    rows = rows[np.isfinite(outline.centre[rows]) & (outline.width_mm[rows] > 20.0)]
    if rows.size < 40.0 / mm:
        return 0.0
    slope = scipy.stats.theilslopes(outline.centre[rows], rows)[0]  # columns per row, going down
    return float(np.clip(np.degrees(np.arctan(-slope)), -_MAX_TILT_DEG, _MAX_TILT_DEG))


def _rotate_point(rc: tuple[float, float], tilt_deg: float, shape) -> tuple[float, float]:
    """Map a point of the upright image (`ndimage.rotate` by +tilt about the centre) back."""
    cr, cc = (shape[0] - 1) / 2.0, (shape[1] - 1) / 2.0
    dr, dc = rc[0] - cr, rc[1] - cc
    a = np.radians(tilt_deg)
    return float(cr + dr * np.cos(a) + dc * np.sin(a)), float(cc + dc * np.cos(a) - dr * np.sin(a))


def _submandibular(
    blobs: tuple[np.ndarray, ...],
    outline: Outline,
    notch: float | None,
    mm: float,
    slack_mm: float = 0.0,
) -> tuple[float, float, bool] | None:
    """(row, col, confirmed) between the submandibular glands: a symmetric pair of blobs
    `_SMG_SEPARATION_MM` apart, preferably with the parotids above it (`confirmed`); with the
    notch known, the pair nearest its expected height above it, else the lowest pair."""
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
        row, col = max(candidates)[:2]  # the lowest pair
    else:  # of the strong pairs, the one nearest its expected height above the notch (a
        # node pair is lower; a parotid pair, higher, shows as fainter fragments of lobules)
        strongest = max(g[3] for g in candidates)
        candidates = [g for g in candidates if g[3] >= _STRONG_PAIR * strongest]
        expected = notch - (SMG_TO_BED_MM + NOTCH_TO_BED_MM) / mm
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


def _blobs(img: np.ndarray, outline: Outline, mm: float) -> tuple[np.ndarray, ...]:
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
    """Index pairs (i, j) of blobs either side of the midline, level, centred, gland-apart."""
    mid = outline.centre[rows]
    left = np.isfinite(mid) & (cols < mid)
    right = cols > np.where(np.isfinite(mid), mid, np.inf)
    i, j = np.nonzero(left[:, None] & right[None, :])
    separation = (cols[j] - cols[i]) * mm
    level = np.abs(rows[j] - rows[i]) * mm
    centred = np.abs((cols[i] + cols[j]) / 2.0 - mid[i]) * mm
    keep = (
        (separation >= _SMG_SEPARATION_MM[0])
        & (separation <= _PAROTID_SEPARATION_MM)
        & (level <= _PAROTID_ROW_MM)
        & (centred <= 0.25 * separation)
    )
    return zip(i[keep].tolist(), j[keep].tolist(), strict=True)
