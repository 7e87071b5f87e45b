"""The in-memory form of one acquisition: planar count images per view, spacing, timing.

A `Study` carries only non-identifying metadata: no patient name, ID, birth date or UID.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np


class View(StrEnum):
    """Projection of a planar view."""

    ANTERIOR = "anterior"
    POSTERIOR = "posterior"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class ViewImage:
    """One planar view: a 2-D float32 image of counts (after rescale slope/intercept)."""

    view: View
    counts: np.ndarray

    def __post_init__(self) -> None:
        if self.counts.ndim != 2 or self.counts.dtype != np.float32:
            raise ValueError("ViewImage.counts must be a 2-D float32 array")


@dataclass(frozen=True)
class Study:
    """Planar views of one acquisition.

    `pixel_spacing_mm` is (row, column) spacing, or None when the source had none (PNG/JPG
    exports); `spacing_note` then says why. `metadata` holds only the explicit,
    non-identifying keys listed in `thyrocad.io.dicom.METADATA_KEYS`.
    """

    images: tuple[ViewImage, ...]
    pixel_spacing_mm: tuple[float, float] | None
    frame_duration_ms: float | None = None
    source: str = ""
    spacing_note: str = ""
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def views(self) -> tuple[View, ...]:
        return tuple(im.view for im in self.images)

    def image(self, view: View) -> np.ndarray:
        """The count image of `view`; KeyError if the study has none (or several) of it."""
        found = [im.counts for im in self.images if im.view == view]
        if len(found) != 1:
            raise KeyError(f"study has {len(found)} {view.value} views, expected exactly 1")
        return found[0]
