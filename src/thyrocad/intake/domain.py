"""Input-domain checks: is this scan like the I-131 neck views thyrocad was validated on?

Each check adds a flag ("name: detail") to the views it concerns; nothing is refused here
(`thyrocad predict --strict` refuses views with an `OUTSIDE_DOMAIN` flag). The thresholds and
their reasons (PN = ../shared/PHANTOM_NUMBERS.md):

- `not_i131`: the radionuclide code, or the energy window, names another nuclide. A window
  holding 364 keV (I-131's main line, PN §1) is an I-131 window; any other is named by the
  first known photopeak it holds (`PHOTOPEAKS_KEV`). A header that names neither gives
  `radionuclide_not_stated` (informational).
- `pixel_size_outside_validated`: pixel spacing outside `PIXEL_MM` (the anatomy settings the
  thyroid-bed locator is validated on: 1.2-4.8 mm), with `PIXEL_TOLERANCE` for rounding
  (a Symbia at zoom 2 stores 1.1988 mm).
- `field_outside_validated`: a field side outside `FIELD_MM`. Large-field cameras at zoom 1
  record 54-59 cm fields in 566-620 mm matrices (PN §9.6); a field under 40 cm cannot hold
  the submandibular glands (about 11 cm above the sternal notch, PN §9.0) together with the
  shoulders (40-57 cm wide, PN §9.4), the landmarks the locator uses.
- `matrix_outside_validated`: a side outside 128-512 pixels (the matrices validated).
- `counts_outside_diagnostic`: total counts of a view outside `COUNTS`. PN §6 estimates
  3e4-2e5 counts for a diagnostic I-131 neck view in 10 min (half that in 5 min, plus up to
  about 1e5 from a hot remnant); the bounds lie 15x below its 5-min low (the default
  phantom's sparsest view holds 2.3e3) and 10x above its high plus a hot remnant: fewer is
  too little signal, more a post-therapy or a Tc-99m scan. DICOM only: an image export holds
  display values.
- `zoomed_field`: a pinhole collimator, a zoom of at least `MIN_ZOOM`, or, when the pixel
  size is unknown (PNG/JPEG; with it, `field_outside_validated` says more), from the image
  alone: a head and neck filling at least `MAX_HEAD_NECK_SHARE` of the field width. Head and
  neck are at most about 15 cm wide (PN §9.3, §9.4; up to about 19 cm on the smoothed
  outline), at most a third of a zoom-1 field, but half or more of a zoomed or pinhole
  thyroid view (docs/inputs.md lists the shares measured on real scans).

PNG/JPEG exports carry no header, so they get `header_checks_not_run` and only the image check.
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata

import numpy as np

from thyrocad.intake.outline import binned, body_mask, row_widths
from thyrocad.study import Study, ViewImage

NOT_I131 = "not_i131"
RADIONUCLIDE_NOT_STATED = "radionuclide_not_stated"
PIXEL_SIZE = "pixel_size_outside_validated"
FIELD = "field_outside_validated"
MATRIX = "matrix_outside_validated"
COUNTS_FLAG = "counts_outside_diagnostic"
ZOOMED = "zoomed_field"
HEADER_CHECKS_NOT_RUN = "header_checks_not_run"
OUTSIDE_DOMAIN = frozenset({NOT_I131, PIXEL_SIZE, FIELD, MATRIX, COUNTS_FLAG, ZOOMED})
"""Flags of inputs outside the validated domain (what `--strict` refuses)."""
MEANINGS = {
    NOT_I131: "the header names another radionuclide or energy window than I-131's: the model "
    "was made for I-131 neck views (docs/inputs.md)",
    RADIONUCLIDE_NOT_STATED: "the header states no radionuclide or energy window",
    PIXEL_SIZE: "the pixel size lies outside 1.2-4.8 mm, where the locator was validated",
    FIELD: "the field of view lies outside 400-650 mm, where the locator was validated",
    MATRIX: "the matrix lies outside 128-512 pixels, where the locator was validated",
    COUNTS_FLAG: "the total counts lie far outside those of diagnostic I-131 neck views",
    ZOOMED: "a zoomed or pinhole field (a thyroid-only view), not a planar neck view",
    HEADER_CHECKS_NOT_RUN: "an image export without a DICOM header: only the image check ran",
}
"""What each input-domain flag means, for people (legends, pages, reports)."""

I131_KEV = 364.5
PHOTOPEAKS_KEV = (  # main photopeaks of other gamma-camera nuclides, in the order tried
    ("Tc-99m", 140.5),
    ("I-123", 159.0),
    ("In-111", 171.3),
    ("Tl-201", 70.8),
    ("Lu-177", 208.4),
    ("Ga-67", 93.3),
    ("F-18", 511.0),
)
PIXEL_MM = (1.2, 4.8)
PIXEL_TOLERANCE = 0.02
FIELD_MM = (400.0, 650.0)
MATRIX_PX = (128, 512)
COUNTS = (1e3, 3e6)
MIN_ZOOM = 1.5
MAX_HEAD_NECK_SHARE = 0.40
_OUTLINE_SIGMA_SHARE = 0.015  # outline smoothing for the image check: share of the width
_MIN_ROW_SHARE = 0.02  # rows narrower than this share of the width hold no body
_SHARE_SIDE = 128  # the share is measured on the image binned to this size (speed)
_ELEMENTS = {
    "i": "I", "iodine": "I", "iodide": "I", "iod": "I", "jod": "I",
    "tc": "Tc", "technetium": "Tc",
    "in": "In", "indium": "In",
    "tl": "Tl", "thallium": "Tl",
    "ga": "Ga", "gallium": "Ga",
    "lu": "Lu", "lutetium": "Lu",
    "f": "F", "fluorine": "F",
}  # fmt: skip
_WINDOW = re.compile(r"([\d.]+)\s*-\s*([\d.]+)\s*keV")


def flag_name(flag: str) -> str:
    """The name of a flag written as "name: detail"."""
    return flag.split(":", 1)[0].strip()


def outside_domain(flags: tuple[str, ...]) -> list[str]:
    """The flags among `flags` that put an input outside the validated domain."""
    return [f for f in flags if flag_name(f) in OUTSIDE_DOMAIN]


def check_domain(study: Study) -> Study:
    """`study` with every view's input-domain flags added (see the module docstring)."""
    dicom = study.metadata.get("source_format") == "DICOM"
    shared = _header_flags(study) if dicom else [f"{HEADER_CHECKS_NOT_RUN}: image export"]
    zoomed = any(flag_name(f) == ZOOMED for f in shared)
    images = tuple(
        dataclasses.replace(im, flags=(*im.flags, *shared, *_view_flags(im, study, dicom, zoomed)))
        for im in study.images
    )
    return dataclasses.replace(study, images=images)


def _header_flags(study: Study) -> list[str]:
    flags = [_nuclide_flag(study.metadata)]
    spacing = study.pixel_spacing_mm
    low, high = PIXEL_MM
    if spacing is not None and not all(
        low * (1 - PIXEL_TOLERANCE) <= s <= high * (1 + PIXEL_TOLERANCE) for s in spacing
    ):
        flags.append(f"{PIXEL_SIZE}: {' x '.join(f'{s:.2f}' for s in spacing)} mm")
    flags.append(_header_zoom_flag(study.metadata))
    return [f for f in flags if f]


def _view_flags(image: ViewImage, study: Study, dicom: bool, zoomed: bool) -> list[str]:
    """Matrix, field, counts (DICOM only) and, without a pixel size and unless the header said
    so, a zoomed field from the image."""
    rows, cols = image.counts.shape
    flags = []
    if not all(MATRIX_PX[0] <= side <= MATRIX_PX[1] for side in (rows, cols)):
        flags.append(f"{MATRIX}: {rows}x{cols}")
    if study.pixel_spacing_mm is not None:
        sides = (rows * study.pixel_spacing_mm[0], cols * study.pixel_spacing_mm[1])
        if not all(FIELD_MM[0] <= side <= FIELD_MM[1] for side in sides):
            flags.append(f"{FIELD}: {sides[0]:.0f} x {sides[1]:.0f} mm")
    total = float(image.counts.sum(dtype=np.float64))
    if dicom and not COUNTS[0] <= total <= COUNTS[1]:
        flags.append(f"{COUNTS_FLAG}: {total:.3g} counts")
    image_check = not zoomed and study.pixel_spacing_mm is None
    share = head_neck_share(image.counts) if image_check else None
    if share is not None and share >= MAX_HEAD_NECK_SHARE:
        flags.append(f"{ZOOMED}: head and neck fill {share:.0%} of the field width")
    return flags


def head_neck_share(counts: np.ndarray) -> float | None:
    """Median body width over the body's rows in the third of the field below the body's top,
    as a share of the field width (on the image binned to at most `_SHARE_SIDE` pixels a
    side); None without a body outline."""
    small = binned(counts, _SHARE_SIDE)
    mask = body_mask(small, _OUTLINE_SIGMA_SHARE * small.shape[1])
    if mask is None:
        return None
    widths = row_widths(mask) / small.shape[1]
    body_rows = np.flatnonzero(widths > _MIN_ROW_SHARE)
    if body_rows.size == 0:
        return None
    upper = widths[body_rows[0] : body_rows[0] + small.shape[0] // 3]
    return float(np.median(upper[upper > _MIN_ROW_SHARE]))


def _header_zoom_flag(metadata: dict[str, str]) -> str:
    if metadata.get("collimator", "").startswith("PINH"):
        return f"{ZOOMED}: pinhole collimator"
    zoom = float(metadata.get("zoom") or 1.0)
    return f"{ZOOMED}: zoom {zoom:g}" if zoom >= MIN_ZOOM else ""


def _nuclide_flag(metadata: dict[str, str]) -> str:
    """`not_i131: <nuclide>` when the radionuclide or the energy window names another nuclide;
    `radionuclide_not_stated` when the header names neither."""
    stated = metadata.get("radionuclide", "")
    window = metadata.get("energy_window", "")
    nuclide = nuclide_from_text(stated)
    window_nuclide = nuclide_from_window(window)
    if nuclide and nuclide != "I-131":
        return f"{NOT_I131}: {nuclide}"
    if window_nuclide and window_nuclide != "I-131":
        return f"{NOT_I131}: {window_nuclide} (energy window {window})"
    if not (nuclide or window_nuclide):
        return RADIONUCLIDE_NOT_STATED
    return ""


def nuclide_from_text(text: str) -> str:
    """'I-131', 'Tc-99m', ... from a code meaning or name such as '^131^Iodine', '99m
    Technetium', 'Technétium 99m', 'I-131'; '' when no element and mass number are found."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    tokens = re.findall(r"[a-z]+|\d+", ascii_text)
    element = next((_ELEMENTS[t] for t in tokens if t in _ELEMENTS), "")
    mass = next((t for t in tokens if t.isdigit()), "")
    if not (element and mass):
        return ""
    metastable = "m" in tokens or element == "Tc"
    return f"{element}-{mass}{'m' if metastable else ''}"


def nuclide_from_window(window: str) -> str:
    """The nuclide an energy window ('129.0-150.0 keV', or a window name) was set for: 'I-131'
    when it holds 364 keV, else the first nuclide of `PHOTOPEAKS_KEV` whose peak it holds,
    else 'unknown nuclide' for a window holding none of them; '' when no window is known."""
    match = _WINDOW.search(window)
    if match is None:
        return nuclide_from_text(window)
    low, high = float(match.group(1)), float(match.group(2))
    if low <= I131_KEV <= high:
        return "I-131"
    return next((name for name, kev in PHOTOPEAKS_KEV if low <= kev <= high), "unknown nuclide")
