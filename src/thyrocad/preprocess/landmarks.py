"""Locate the thyroid bed on a planar neck view from the image alone: classical, explainable,
with a confidence (docs/preprocessing.md, "Locating the thyroid bed").

Every distance is in mm and comes from published anatomy (shared notes PHANTOM_NUMBERS.md
§9, "PN"), not from this project's phantom, so the rule holds for any camera:

- the body outline (blood pool) gives the neck midline, the neck width and the *shoulder
  line*, a row where the outline has widened by 50 mm below a neck with the head
  above it and stays wide (the torso); of several such rows (the chest below faint lungs
  passes too), the one the most confident location starts from (on a tie, one below a neck
  that the whole body mask shows too: the chest's widening has the torso above it): the
  base of the neck, `SHOULDER_TO_NOTCH_MM` above the suprasternal notch (SSN), further when
  the arms are raised beside the head (they lift the shoulders: `_ARMS_LIFT_MM`);
- the submandibular glands (SMG, `thyrocad.preprocess.glands`) are a symmetric pair of blobs,
  *confirmed* when a pair as wide as the parotids lies 10-60 mm above them; with the notch
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
with confirmed glands only (taken as `_ONE_LANDMARK`: nothing checks the pair), 0.94 with
unconfirmed glands and shoulders, 0.85 with the shoulders only, 0.79 with unconfirmed glands
only (with raised arms 0.99, 0.92, 0.77 where the shoulders count); half of the value of the
estimate taken when glands and shoulders disagree, or when the landmarks are found only on the
view as it lies, not deskewed, or only on the view turned by a trial tilt (nothing found
otherwise; glands and shoulders must agree there), or when the body fills the field (no
outline: confirmed glands alone); at most 0.6 without pixel spacing (the scale
is then estimated from the neck width, PN §9.4, and exported images hold display values, not
counts). Below `CONFIDENT` the caller should treat the crop as uncertain (`reason` says why).
When no landmark is found, `found` is False and `center_rc` is the middle of the neck (or of
the image).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, replace

import numpy as np
import scipy  # its submodules (ndimage, stats) load on first use: a quick CLI start-up

from thyrocad.preprocess.glands import SMG_ABOVE_NOTCH_MM, gland_blobs, submandibular
from thyrocad.preprocess.outline import (
    NECK_WIDTH_RANGE_MM,
    Outline,
    body_outline,
    field_outline,
    midline_at,
    smoothed_width,
)
from thyrocad.preprocess.shoulders import (
    arms_raised,
    neck_width_px,
    shoulder_rows,
    tilt_deg,
)

logger = logging.getLogger(__name__)

ASSUMED_FIELD_MM = 563.0
"""Field width assumed before the scale is estimated, when the pixel spacing is unknown."""
NECK_WIDTH_MM = 120.0
"""Typical outline width of the neck (PN §9.4: 11-13 cm), for the scale of PNG exports."""
NOTCH_TO_BED_MM = 50.0
"""Bed-region centre above the suprasternal notch (PN §9.0)."""
SMG_TO_BED_MM = SMG_ABOVE_NOTCH_MM - NOTCH_TO_BED_MM
"""Bed-region centre below the submandibular-gland centroid (PN §9.0: 60 mm)."""
SHOULDER_TO_NOTCH_MM = 38.0
"""SSN below the shoulder line (outline 50 mm wider than the neck) [ESTIMATE: the base of the
neck lies 3-5 cm above the SSN, at about the cricoid]."""
CONFIDENT = 0.98
"""Confidence below which a location is uncertain: the crop target (every focus inside the
crop in 98 % of residual views, issue 13), so that a location less likely than that to hold
the bed region gets the larger fallback crop."""
_NO_SPACING_CONFIDENCE = 0.6
_ONE_LANDMARK = 0.95
"""Highest confidence of confirmed glands without the shoulders: no second landmark checks
that the pair is the glands. With the seventeenth session's locator their modelled 0.98 held
every focus in the crop in 197 of 206 residual views of the independent phantom (95.6 %,
seeds 0-2), under the crop target."""
_SIGMA_MM = {  # PN §9.0 links + detection; glands without parotids above may be parotids
    "submandibular": 10.5,
    "unconfirmed glands": 20.0,
    "shoulders": 17.5,
}
_DISAGREE_Z = 2.0
_NECK_TOL_MM = 10.0  # neck-like: at most this much wider than the narrowest row between two rows
_NO_GLANDS, _NO_SHOULDERS = "glands not found", "shoulders not found"
_UNCONFIRMED = "glands not confirmed (no parotids above them)"
_MARGIN_MM = 25.0  # the bed region spans the centre +-35 mm; a 120 mm crop leaves 25 mm
_SAME_SHOULDER_MM = 15.0  # shoulder-line candidates this close give the same search
_ARMS_LIFT_MM = (0.0, 40.0)  # raising the arms lifts the shoulder line by up to 4 cm [ESTIMATE]
_NARROWEST_SHOULDERS_MM = 335.0  # PN §9.4: biacromial breadth, women's 5th percentile
_MIN_TILT_DEG = 4.0  # smaller tilts are left alone
_TRIAL_TILTS_DEG = (-16.0, -8.0, 8.0, 16.0)  # tried when nothing is found [ESTIMATE]


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
        found = _glands_filling_the_field(img, mm, centre)
    elif abs(tilt := tilt_deg(outline, mm)) < _MIN_TILT_DEG:
        found = _locate_upright(img, mm, centre, outline)
    else:
        found = _deskewed_or_as_it_lies(img, mm, centre, outline, tilt)
    if not found.found and outline is not None:  # a tilt misjudged: turn the view
        found = _at_trial_tilts(img, mm, centre) or found
    if estimated:
        found = _with_estimated_scale(found)
    return replace(found, scale_mm=mm)


def _glands_filling_the_field(img: np.ndarray, mm: float, centre) -> BedLocation:
    """No body outline: too few counts, or a body that fills the field (a zoomed neck view
    with the arms raised beside the head: no edge, no shoulders). Confirmed glands alone then,
    found in the useful field, at half their confidence (flagged); else not found at the
    centre. (Unconfirmed pairs there were mostly wrong on the independent phantom.)"""
    outline = field_outline(img, mm)
    blobs = None if outline is None else gland_blobs(img, outline, mm)
    glands = None if blobs is None else submandibular(blobs, outline, mm, None)
    if glands is None or not glands[2]:
        why = "no body outline found (too few counts, or the body fills the field)"
        return BedLocation(centre, False, "none", why)
    row = float(np.clip(glands[0] + SMG_TO_BED_MM / mm, 0, img.shape[0] - 1))
    marks = {"submandibular_row": glands[0], "submandibular_col": glands[1]}
    why = "the body fills the field (no outline, no shoulders): glands alone"
    confidence = 0.5 * _confidence(_SIGMA_MM["submandibular"])
    return BedLocation((row, glands[1]), True, "submandibular", why, confidence, marks)


def _locate_deskewed(img: np.ndarray, mm: float, centre, tilt: float) -> BedLocation:
    """The landmark search on the view rotated upright by `tilt`, its centre mapped back."""
    upright = np.clip(scipy.ndimage.rotate(img, tilt, reshape=False, order=1), 0.0, None)
    found = _locate_upright(upright, mm, centre, body_outline(upright, mm))
    back = _rotate_point(found.center_rc, tilt, img.shape)
    marks = {**found.landmarks, "tilt_deg": tilt}
    method = found.method + "+deskew" if found.found else found.method
    return replace(found, center_rc=back, method=method, landmarks=marks)


def _deskewed_or_as_it_lies(
    img: np.ndarray, mm: float, centre, outline: Outline, tilt: float
) -> BedLocation:
    """The search on the view deskewed by `tilt` and on the view as it lies: the more
    confident location (the deskewed one on a tie). The tilt (`shoulders.tilt_deg`) is
    misjudged where a body cut by the field, raised arms or a focus's halo bend the outline;
    a wrong deskew then loses the landmarks that the view as it lies shows. When only the
    view as it lies gives a location, it is uncertain (`_as_it_lies`). The view as it lies is
    not searched when the deskewed one already has the highest confidence there is: it could
    at best tie."""
    deskewed = _locate_deskewed(img, mm, centre, tilt)
    if deskewed.confidence >= _highest_confidence() - 1e-9:
        return deskewed
    lying = _locate_upright(img, mm, centre, outline)
    if not deskewed.found:
        return _as_it_lies(lying, tilt) or deskewed
    if lying.found and lying.confidence > deskewed.confidence:
        return replace(lying, landmarks={**lying.landmarks, "tilt_rejected_deg": tilt})
    return deskewed


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


def _at_trial_tilts(img: np.ndarray, mm: float, centre) -> BedLocation | None:
    """The search on the view turned upright by each of `_TRIAL_TILTS_DEG`, when nothing was
    found: a tilt of 15-20 deg spreads the shoulder line over 100 mm of rows, and where the
    tilt is misjudged too, no shoulders are found. A guessed tilt is taken only where glands and
    shoulders agree on it, flagged, at half the confidence. None otherwise."""
    tries = [_locate_deskewed(img, mm, centre, tilt) for tilt in _TRIAL_TILTS_DEG]
    agreeing = [t for t in tries if t.method.startswith("submandibular+shoulders")]
    if not agreeing:
        return None
    best = max(agreeing, key=lambda t: t.confidence)
    why = f"found only on the view turned by a trial {best.landmarks['tilt_deg']:.0f} deg"
    return replace(best, confidence=0.5 * best.confidence, reason=_also(best, why))


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
    widenings are tried too: over such lungs the run through the midline is that column.
    When those shoulders also read as lifted by raised arms (the chest beside the blood pool
    reads so too), confirmed glands alone are tried as well: on the independent phantom such
    shoulders had held the crop in 13 of 43 views (seeds 0-2), not the modelled 77 %. (Unconfirmed
    glands, 0.79, would win too, but on our phantom's raised arms they are mostly wrong.)"""
    if outline is None:
        return BedLocation(centre, False, "none", "no body outline found (too few counts?)")
    blobs = gland_blobs(img, outline, mm)
    shoulders = shoulder_rows(outline.width_mm, mm)
    found = [_locate_from(img, mm, centre, outline, blobs, row) for row in shoulders or [None]]
    best = _most_confident(found, outline, mm)
    if best.method == "shoulders" and "submandibular_row" not in best.landmarks:
        found += [
            _locate_from(img, mm, centre, outline, blobs, row)
            for row in shoulder_rows(outline.body_width_mm, mm)
            if all(abs(row - other) * mm > _SAME_SHOULDER_MM for other in shoulders)
        ]
        if best.landmarks.get("arms_raised"):
            alone = _locate_from(img, mm, centre, outline, blobs, None, neck_hidden=True)
            found += [alone] if alone.landmarks.get("glands_confirmed") else []
    return _most_confident(found, outline, mm)


def _most_confident(found: list[BedLocation], outline: Outline, mm: float) -> BedLocation:
    """The most confident location; on a tie, one with a neck above its shoulder line in the
    whole body mask too (`_neck_in_mask`), then the lowest."""
    return max(found, key=lambda f: (f.confidence, _neck_in_mask(outline, f, mm), f.center_rc[0]))


def _neck_in_mask(outline: Outline, found: BedLocation, mm: float) -> bool:
    """Whether the whole body mask, over the 30-90 mm above the location's shoulder line (if
    it has one), is narrower than the narrowest shoulders: over lungs fainter than half the
    body level the run through the midline narrows to the blood pool between them, so the
    chest's widening below them passes for a shoulder line, with the torso above it."""
    shoulder = found.landmarks.get("shoulder_row")
    if shoulder is None:
        return True
    width = smoothed_width(outline.body_width_mm, mm)
    above = width[max(0, int(shoulder - 90.0 / mm)) : max(1, int(shoulder - 30.0 / mm))]
    above = above[above > 0]
    return above.size == 0 or float(np.median(above)) < _NARROWEST_SHOULDERS_MM


def _locate_from(
    img: np.ndarray,
    mm: float,
    centre,
    outline: Outline,
    blobs,
    shoulder: float | None,
    neck_hidden: bool = False,
) -> BedLocation:
    """The landmark search from one shoulder line (or none; `neck_hidden`: under raised
    arms, see `_glands_alone`)."""
    marks: dict[str, float] = {}
    lift = _ARMS_LIFT_MM if arms_raised(outline, shoulder, mm) else (0.0, 0.0)
    notch = None if shoulder is None else shoulder + (SHOULDER_TO_NOTCH_MM + np.mean(lift)) / mm
    neck = neck_width_px(outline, shoulder, mm)
    if neck is not None:
        marks["neck_width_px"] = neck
        marks["scale_from_neck_mm"] = NECK_WIDTH_MM / neck
    if notch is not None:
        marks["shoulder_row"], marks["notch_row"] = shoulder, notch
        marks["arms_raised"] = float(lift[1] > 0)
    widths = np.stack([smoothed_width(w, mm) for w in (outline.width_mm, outline.body_width_mm)])
    in_neck = None if neck_hidden else lambda r: _in_neck(r + SMG_TO_BED_MM / mm, widths)
    glands = submandibular(blobs, outline, mm, notch, np.ptp(lift) / 2, in_neck)
    if glands is not None:
        marks["submandibular_row"], marks["submandibular_col"] = glands[:2]
        marks["glands_confirmed"] = float(glands[2])
    sigma_notch = math.hypot(_SIGMA_MM["shoulders"], np.ptp(lift) / math.sqrt(12.0))
    estimate = _combine(glands, notch, mm, sigma_notch, widths, neck_hidden)
    if estimate is None:
        return _not_found(img, outline, mm, centre, marks)
    row, method, confidence, reason = estimate
    row = float(np.clip(row, 0, img.shape[0] - 1))
    col = _column(glands, midline_at(outline, row, neck, mm))
    if col is None:
        return BedLocation(centre, False, method, "no neck outline at the bed level", 0.0, marks)
    return BedLocation((row, float(col)), True, method, reason, confidence, marks)


def _combine(
    glands, notch, mm, sn: float, widths: np.ndarray, neck_hidden: bool = False
) -> tuple[float, str, float, str] | None:
    """(row, method, confidence, reason) from the landmarks found, or None without any;
    `widths`: the smoothed widths (mm) of the run through the midline and of the whole body.

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
        return _glands_alone(from_glands, _confidence(sg), widths, neck_hidden)
    gap_mm = (from_notch - from_glands) * mm
    if abs(gap_mm) > _DISAGREE_Z * math.hypot(sg, sn):  # a pair of something else, mostly
        reason = f"landmarks disagree: glands and shoulders put the bed {gap_mm:.0f} mm apart"
        if glands[2] and _only_in_neck(widths[0], from_glands, from_notch):
            return from_glands, "submandibular", 0.5 * _confidence(sg), reason
        return from_notch, "shoulders", 0.5 * _confidence(sn), reason
    wg, wn = 1.0 / (sg * sg), 1.0 / (sn * sn)
    row = (wg * from_glands + wn * from_notch) / (wg + wn)
    confidence = _confidence((wg + wn) ** -0.5)
    return row, "submandibular+shoulders", confidence, _unless_confident(confidence, _UNCONFIRMED)


def _glands_alone(row: float, conf: float, widths: np.ndarray, neck_hidden: bool):
    """The glands' estimate without the shoulders, at most `_ONE_LANDMARK`; at half the
    confidence where neither the run through the midline nor the whole body there is as
    narrow as a neck (`widths`, as in `_combine`): the 'glands' are then mostly a pair of
    something lower down (the chest, the stomach). Unless `neck_hidden`: arms raised beside
    the neck widen both runs (on the independent phantom's `arms_up`, confirmed glands whose
    bed lay so held the crop where the raised-arms shoulders had not)."""
    if not neck_hidden and not _in_neck(row, widths):
        body = _widths_at(row, widths)[1]
        where = f"where the body is {body:.0f} mm wide" if body else "off the body"
        return row, "submandibular", 0.5 * conf, f"{_NO_SHOULDERS}; glands put the bed {where}"
    return row, "submandibular", min(conf, _ONE_LANDMARK), _NO_SHOULDERS


def _in_neck(row: float, widths: np.ndarray) -> bool:
    """Whether the run through the midline or the whole body at `row` is as narrow as a
    neck (`widths`, as in `_combine`)."""
    return any(0 < w <= NECK_WIDTH_RANGE_MM[1] for w in _widths_at(row, widths))


def _widths_at(row: float, widths: np.ndarray) -> np.ndarray:
    """`widths` (as in `_combine`) at `row`; 0 beyond the image (off the body)."""
    inside = 0 <= round(row) < widths.shape[1]
    return widths[:, int(np.clip(round(row), 0, widths.shape[1] - 1))] * inside


def _unless_confident(confidence: float, why: str) -> str:
    """`why` as the reason of a location below `CONFIDENT`, else none."""
    return "" if confidence >= CONFIDENT else why


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


def _highest_confidence() -> float:
    """The confidence of confirmed glands and shoulders that agree (`_combine`), the highest."""
    weight = _SIGMA_MM["submandibular"] ** -2 + _SIGMA_MM["shoulders"] ** -2
    return _confidence(weight**-0.5)


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


def _rotate_point(rc: tuple[float, float], tilt_deg: float, shape) -> tuple[float, float]:
    """Map a point of the upright image (`ndimage.rotate` by +tilt about the centre) back."""
    cr, cc = (shape[0] - 1) / 2.0, (shape[1] - 1) / 2.0
    dr, dc = rc[0] - cr, rc[1] - cc
    a = np.radians(tilt_deg)
    return float(cr + dr * np.cos(a) + dc * np.sin(a)), float(cc + dc * np.cos(a) - dr * np.sin(a))
