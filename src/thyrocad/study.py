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
    """One planar view: a 2-D float32 image of counts (after rescale slope/intercept).

    `origin_rc` is where this image's pixel (0, 0) lies in the frame stored in the file: (0, 0)
    unless the view was cut from a larger frame (the neck field of a whole-body sweep).
    `flags` say what reading noticed about the view (`thyrocad.intake`: input-domain checks,
    `from_whole_body`), as "name" or "name: detail".
    """

    view: View
    counts: np.ndarray
    origin_rc: tuple[int, int] = (0, 0)
    flags: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.counts.ndim != 2 or self.counts.dtype != np.float32:
            raise ValueError("ViewImage.counts must be a 2-D float32 array")

    def box_in_file(self) -> tuple[int, int, int, int]:
        """(row0, col0, row1, col1), end-exclusive: where this image lies in the file's frame."""
        rows, cols = self.counts.shape
        row0, col0 = self.origin_rc
        return row0, col0, row0 + rows, col0 + cols


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
