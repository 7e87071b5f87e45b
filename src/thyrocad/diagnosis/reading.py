"""How people read a diagnosis: the indeterminate band, human labels of calls and flags.

The page, the PNG/PDF report, the heatmaps, the Secondary Captures and the DICOM SR all take
their wording from here, so a call reads the same everywhere.

**Indeterminate band.** A probability inside [low, high] around the threshold is shown as
"Indeterminate: needs a physician's read" (amber), whatever side of the threshold it falls
on. The band is the bundle's (`Threshold.indeterminate`, e.g. from the out-of-fold spread of
the training runs); a bundle without one gets the fallback threshold ± `FALLBACK_HALF_WIDTH`
(0.05), clipped to [0, 1], and the page says which applies.

**Flags.** Every preprocessing, domain and fusion flag has a label in `FLAG_LABELS`; a flag
may carry a detail after a colon (`not_i131: Tc-99m`), shown after the label; a flag not in
the table is shown verbatim.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from thyrocad.decision import FELL_BACK_TO_MEAN
from thyrocad.diagnosis.types import Diagnosis, OperatingPoint

FALLBACK_HALF_WIDTH = 0.05
INDETERMINATE = "indeterminate"
CALL_TEXT = {
    "residual": "Residual thyroid tissue suspected",
    "non_residual": "No residual thyroid tissue suspected",
    INDETERMINATE: "Indeterminate: needs a physician's read",
}
VERDICT_LABELS = {"residual": "residual tissue", "non_residual": "no residual tissue"}
DISCLAIMER = (
    "thyrocad is research software, not a medical device: not for diagnostic use. "
    "A physician reads every study."
)
GRADCAM_TITLE = "Grad-CAM: where the network saw evidence FOR residual tissue"
FLAG_LABELS = {
    "no_spacing": "no pixel spacing in the file: crop size estimated in pixels",
    "bed_not_found": "thyroid bed not found: crop centred on a fallback position",
    "padded": "crop reaches outside the image (zero-padded)",
    "negative_counts_clipped": "negative counts clipped to zero",
    "blank_image": "no counts in the crop: view not used",
    "flat_image": "flat crop (all pixels equal): view not used",
    "sparse_counts": "very few counts: windowed at the maximum",
    "saturated": "many pixels at the maximum value (saturated)",
    "grabcut_skipped": "segmentation skipped (crop too small or flat)",
    "grabcut_failed": "segmentation failed: the whole crop was used",
    "grabcut_empty": "segmentation found almost nothing: the whole crop was used",
    "bed_set_by_user": "thyroid bed set by a user",
    "bed_uncertain": "thyroid bed position uncertain",
    "not_i131": "not an I-131 acquisition",
    "from_whole_body": "view cut from a whole-body scan",
    FELL_BACK_TO_MEAN: "the fusion's view was missing: views averaged instead",
}


@dataclass(frozen=True)
class Reading:
    """The call shown to people and the band it was made with."""

    call: str  # "residual", "non_residual" or "indeterminate"
    band: tuple[float, float]
    band_source: str  # "bundle" or "fallback"

    @property
    def text(self) -> str:
        return CALL_TEXT[self.call]

    def to_dict(self) -> dict[str, Any]:
        return {
            "call": self.call,
            "call_text": self.text,
            "band": list(self.band),
            "band_source": self.band_source,
        }


def band(op: OperatingPoint) -> tuple[tuple[float, float], str]:
    """The indeterminate band of an operating point and where it came from."""
    if op.indeterminate is not None:
        low, high = op.indeterminate
        return (float(low), float(high)), "bundle"
    low = max(0.0, op.threshold - FALLBACK_HALF_WIDTH)
    high = min(1.0, op.threshold + FALLBACK_HALF_WIDTH)
    return (low, high), "fallback"


def reading(diagnosis: Diagnosis) -> Reading:
    """The call of `diagnosis`: indeterminate inside the band, else its verdict."""
    (low, high), source = band(diagnosis.operating_point)
    call = INDETERMINATE if low <= diagnosis.probability <= high else diagnosis.verdict
    return Reading(call, (low, high), source)


def band_text(data: dict[str, Any]) -> str:
    """How the band was set, for the page and the report (`data` from `Reading.to_dict`)."""
    low, high = data["band"]
    if data["band_source"] == "bundle":
        return f"indeterminate band {low:.3f}-{high:.3f} (from the model bundle)"
    return (
        f"indeterminate band {low:.3f}-{high:.3f} (fallback: threshold ± "
        f"{FALLBACK_HALF_WIDTH:.2f}; the bundle sets none)"
    )


def flag_label(flag: str) -> str:
    """The human label of a flag (`name` or `name: detail`); unknown flags verbatim."""
    name, sep, detail = flag.partition(":")
    label = FLAG_LABELS.get(name.strip())
    if label is None:
        return flag
    return f"{label}: {detail.strip()}" if sep and detail.strip() else label


def caption(diagnosis: Diagnosis) -> str:
    """One line: the call, the probability and the threshold."""
    return (
        f"{reading(diagnosis).text} · P(residual) = {diagnosis.probability:.3f} "
        f"(threshold {diagnosis.operating_point.threshold:.3f})"
    )
