"""What a diagnosis is: per-view predictions, the fused verdict and the operating point used."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from thyrocad.preprocess import PreprocessResult
from thyrocad.study import View


@dataclass(frozen=True)
class OperatingPoint:
    """The decision threshold used and what it achieved where it was chosen."""

    threshold: float
    source: str  # "bundle" or "override"
    rule: str | None
    train_sensitivity: float | None  # of the bundle's threshold; None for an override
    train_specificity: float | None
    level: str = "view"  # "patient" or "view": what the sensitivity/specificity were measured on
    indeterminate: tuple[float, float] | None = None  # the bundle's indeterminate band, if any


@dataclass(frozen=True)
class ViewPrediction:
    """One view: its probability of residual tissue and what reading and preprocessing
    noticed. Boxes and the bed centre are in the file's pixels (for a whole-body sweep, the
    sweep's); `field_box` is the part of the file the view is (a sweep's neck field, or the
    whole frame)."""

    view: str
    probability: float | None  # None for a view left out (blank or flat crop)
    used: bool  # part of the fused probability
    flags: tuple[str, ...]  # input-domain flags (thyrocad.intake), then preprocessing flags
    crop_box: tuple[int, int, int, int]  # (row0, col0, row1, col1) in original pixels
    field_box: tuple[int, int, int, int] | None = None  # (row0, col0, row1, col1), ditto
    bed_rc: tuple[float, float] | None = None  # the crop's centre (row, col), ditto
    bed_reason: str = ""  # how the bed was found, or "bed set by user"


@dataclass(frozen=True)
class Diagnosis:
    """The answer for one study; `to_dict()` / `to_json()` give its JSON form."""

    source: str
    verdict: str  # "residual" or "non_residual"
    positive: bool
    probability: float  # fused over the used views
    fusion: str
    operating_point: OperatingPoint
    views: tuple[ViewPrediction, ...]
    flags: tuple[str, ...]  # union of the views' flags and the fusion's
    model: dict[str, str]
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (tuples as lists)."""
        return json.loads(self.to_json())

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2)

    def with_note(self, note: str) -> Diagnosis:
        """A copy with `note` appended."""
        return dataclasses.replace(self, notes=(*self.notes, note))


@dataclass(frozen=True)
class PreparedView:
    """A preprocessed view and whether it can be classified."""

    view: View
    result: PreprocessResult
    usable: bool


@dataclass(frozen=True)
class Analysis:
    """Everything computed for one study: the diagnosis, the preprocessed views, heatmaps
    (one per used view, in order; `thyrocad.diagnosis.explain.Heatmap`)."""

    diagnosis: Diagnosis
    views: tuple[PreparedView, ...]
    heatmaps: tuple[Any, ...] = field(default_factory=tuple)

    @property
    def used_views(self) -> tuple[PreparedView, ...]:
        return tuple(p for p in self.views if p.usable)
