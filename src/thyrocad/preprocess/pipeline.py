"""`Pipeline`: crop -> 8-bit window -> equalize -> GrabCut -> resize/normalise, every stage kept."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from thyrocad.errors import PreprocessError
from thyrocad.preprocess import background, steps
from thyrocad.preprocess.config import PipelineConfig, default_config
from thyrocad.preprocess.steps import CropBox, Flag
from thyrocad.study import Study, View

logger = logging.getLogger(__name__)

STAGES = (
    "original", "crop", "window8", "equalized", "grabcut_mask", "segmented", "network_input"
)  # fmt: skip


@dataclass(frozen=True)
class PreprocessOutput:
    """What training and inference need (and what the cache stores)."""

    network_input: np.ndarray  # float32 (3, H, W), normalised
    flags: tuple[str, ...]
    crop_box: CropBox  # in original pixels; maps heatmaps back to the image


@dataclass(frozen=True)
class PreprocessResult:
    """Every intermediate stage of one view, for inspection (strips, tests, debugging).

    `stages` maps each name in `STAGES` to its array: counts (float32) for `original` and `crop`,
    uint8 for `window8`, `equalized`, `segmented`, bool for `grabcut_mask`, float32 CHW for
    `network_input`. `bed_center_rc` is in original pixels; `bed_reason` says how it was found
    (or, for a flagged bed, "bed_uncertain: glands not found" ...); `bed_confidence` is the
    locator's confidence (1.0 for a centre set by a person) and `bed_method` the landmarks used.
    """

    stages: dict[str, np.ndarray]
    flags: tuple[str, ...]
    crop_box: CropBox
    bed_center_rc: tuple[float, float]
    bed_reason: str
    bed_confidence: float = 1.0
    bed_method: str = ""

    @property
    def network_input(self) -> np.ndarray:
        return self.stages["network_input"]

    @property
    def output(self) -> PreprocessOutput:
        return PreprocessOutput(self.network_input, self.flags, self.crop_box)


class Pipeline:
    """The paper's preprocessing, configured by a `PipelineConfig`.

    >>> result = Pipeline().run(counts, spacing_mm=(2.2, 2.2))
    >>> result.network_input.shape, result.flags
    ((3, 224, 224), ())
    """

    def __init__(self, config: PipelineConfig | None = None) -> None:
        self._config = config or default_config()
        self._config_hash = self._config.config_hash()

    @property
    def config(self) -> PipelineConfig:
        return self._config

    @property
    def config_hash(self) -> str:
        """`config.config_hash()`, computed once (the cache asks for it on every view)."""
        return self._config_hash

    def run(
        self,
        counts: np.ndarray,
        spacing_mm: tuple[float, float] | None,
        bed_rc: tuple[float, float] | None = None,
    ) -> PreprocessResult:
        """Preprocess one planar view of counts with (row, col) spacing in mm (None if unknown).

        `bed_rc` is a thyroid-bed centre set by a person (original pixels): used instead of
        the locator and flagged `bed_set_by_user`. An uncertain located bed is flagged
        `bed_uncertain` and cropped `crop.uncertain_scale` times larger."""
        cfg = self.config
        counts, flags = steps.check_counts(counts)
        if spacing_mm is not None and not (min(spacing_mm) > 0 and np.all(np.isfinite(spacing_mm))):
            raise PreprocessError(
                f"pixel spacing {spacing_mm} is not positive and finite; pass None if unknown"
            )
        bed = steps.locate_bed(counts, spacing_mm, cfg.crop, bed_rc)
        center = bed.center
        flags += bed.flags
        box, new = steps.crop_box(
            counts.shape, spacing_mm, center, cfg.crop, scale_mm=bed.scale_mm, enlarge=bed.enlarge
        )
        flags += new
        cropped, new = steps.crop(counts, box)
        flags += new
        window8, new = steps.window_to_uint8(
            cropped, cfg.window, self._background(counts, spacing_mm, center, bed.scale_mm)
        )
        flags += new
        equalized = steps.equalize(window8, cfg.equalize)
        bed_in_crop = (center[0] - box.row0, center[1] - box.col0)
        crop_mm = self._crop_mm(box, spacing_mm, bed.enlarge)
        mask, new = steps.grabcut_mask(equalized, bed_in_crop, cfg.grabcut, crop_mm)
        flags += new
        segmented = np.where(mask, equalized, 0).astype(np.uint8)
        network_input = steps.to_network_input(segmented, cfg.output)
        stages = {
            "original": counts,
            "crop": cropped,
            "window8": window8,
            "equalized": equalized,
            "grabcut_mask": mask,
            "segmented": segmented,
            "network_input": network_input,
        }
        unique_flags = tuple(dict.fromkeys(str(f) for f in flags))
        if unique_flags:
            logger.info("preprocessing flags: %s", ", ".join(unique_flags))
        return PreprocessResult(
            stages, unique_flags, box, center, bed.reason, bed.confidence, bed.method
        )

    def run_study(
        self, study: Study, beds: Mapping[str, tuple[float, float]] | None = None
    ) -> list[tuple[View, PreprocessResult]]:
        """Preprocess every view of `study`, in the study's order; `beds` maps a view name
        ("anterior", "posterior", "unknown") to a bed centre set by a person."""
        beds = beds or {}
        return [
            (im.view, self.run(im.counts, study.pixel_spacing_mm, beds.get(im.view.value)))
            for im in study.images
        ]

    def _background(
        self,
        counts: np.ndarray,
        spacing_mm: tuple[float, float] | None,
        center: tuple[float, float],
        scale_mm: float | None,
    ) -> float | None:
        """The view's ring background around the bed when the window is referenced to it."""
        window = self.config.window
        if window.reference != "background":
            return None
        mm = background.pixel_mm(counts.shape, spacing_mm, scale_mm)
        return background.ring_background(counts, center, mm, window.ring_mm)

    def _crop_mm(
        self, box: CropBox, spacing_mm: tuple[float, float] | None, enlarge: float
    ) -> tuple[float, float]:
        """The crop's (height, width) in mm; taken as the configured box (times `enlarge`)
        when the spacing is unknown."""
        if spacing_mm is None:
            return self.config.crop.height_mm * enlarge, self.config.crop.width_mm * enlarge
        return box.shape[0] * spacing_mm[0], box.shape[1] * spacing_mm[1]


__all__ = ["STAGES", "Flag", "Pipeline", "PreprocessOutput", "PreprocessResult"]
