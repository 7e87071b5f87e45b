"""Diagnosis of one study with a trained model bundle.

>>> predictor = Predictor.from_bundle("runs/resnet18-bundle")
>>> diagnosis = predictor.predict(read_study("patient.dcm"))
>>> diagnosis.verdict, diagnosis.probability, diagnosis.operating_point.threshold

The bundle (`thyrocad.bundle`) is loaded once: weights, preprocessing config, decision
threshold with the sensitivity/specificity it had where it was chosen, and the view fusion
rule. Every view of the study is preprocessed with the bundle's pipeline and the usable views
go through the network in one batch; usability, fusion and the threshold are
`thyrocad.decision`'s, the same rule the experiment and training apply. A study with no usable
view raises `NoUsableViewError`.

The network runs on onnxruntime by default (`backend="auto"`): the bundle's `model.onnx` if
`thyrocad export` put one there, else a parity-checked export cached once per bundle
(`thyrocad.bundle.onnx.cached_runner`). When onnxruntime is not installed or the export fails
or disagrees with PyTorch, the reason is logged and the folded PyTorch copy runs instead
(`backend="onnxruntime"` raises instead; `backend="torch"` never tries). The engine used is
`Predictor.backend` and each diagnosis's `model["backend"]`.

The predictor never changes process-wide settings: the caller (the CLI, the server) sets
torch's thread count; `threads` only sizes an onnxruntime session.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from torch import nn

import thyrocad
from thyrocad.bundle.format import NEGATIVE, POSITIVE, BundleInfo, load_bundle
from thyrocad.decision import fuse, view_usable
from thyrocad.diagnosis.explain import explain_views
from thyrocad.diagnosis.types import (
    Analysis,
    Diagnosis,
    OperatingPoint,
    PreparedView,
    ViewPrediction,
)
from thyrocad.errors import ConfigError, ExportError, NoUsableViewError
from thyrocad.intake import field_beds
from thyrocad.models import class_probabilities, grey_inference_copy
from thyrocad.preprocess import Pipeline
from thyrocad.study import Study, ViewImage

logger = logging.getLogger(__name__)

BACKENDS = ("auto", "onnxruntime", "torch")
Beds = Mapping[str, tuple[float, float]] | None


class Predictor:
    """A loaded bundle that diagnoses studies (`predict`, `analyse`).

    `threshold` overrides the bundle's decision threshold. Grad-CAM calls are serialised.
    """

    def __init__(
        self,
        model: nn.Module,
        info: BundleInfo,
        *,
        backend: str = "auto",
        onnx_path: str | Path | None = None,
        threads: int | None = None,
        threshold: float | None = None,
    ) -> None:
        if backend not in BACKENDS:
            raise ConfigError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        if threshold is not None and not 0.0 <= threshold <= 1.0:
            raise ConfigError(f"--threshold must lie in [0, 1], got {threshold}")
        self.model = model.eval()  # Grad-CAM hooks into this one
        self.info = info
        self.pipeline = Pipeline(info.pipeline)
        self.operating_point = _operating_point(info, threshold)
        self._onnx = _onnx_runner(model, info, backend, onnx_path, threads)
        out = info.pipeline.output
        self._fast = None if self._onnx else grey_inference_copy(model, out.mean, out.std, out.size)
        self.backend = "torch" if self._onnx is None else "onnxruntime"

    @classmethod
    def from_bundle(
        cls,
        bundle_dir: str | Path,
        *,
        backend: str = "auto",
        onnx_path: str | Path | None = None,
        threads: int | None = None,
        threshold: float | None = None,
    ) -> Predictor:
        """Load a bundle once. onnxruntime (`backend` "auto" or "onnxruntime") runs
        `onnx_path`, else the bundle's `model.onnx`, else the cached export."""
        model, info = load_bundle(bundle_dir)
        return cls(
            model, info, backend=backend, onnx_path=onnx_path, threads=threads, threshold=threshold
        )

    def prepare(self, study: Study, beds: Beds = None) -> tuple[PreparedView, ...]:
        """Preprocess every view (`beds`: bed centres set by a person, by view name or
        `thyrocad.intake.ALL_VIEWS`, in the file's pixels); a blank or flat crop is marked
        unusable. `ConfigError` for a bed outside its view or for a view the study lacks."""
        if not study.images:
            raise NoUsableViewError(f"{study.source or 'the study'} has no views")
        prepared = tuple(
            PreparedView(view, result, view_usable(result.flags))
            for view, result in self.pipeline.run_study(study, field_beds(study, beds))
        )
        if not any(p.usable for p in prepared):
            flags = sorted({f for p in prepared for f in p.result.flags})
            raise NoUsableViewError(
                f"{study.source or 'the study'}: no usable view ({len(prepared)} view(s), "
                f"flags {', '.join(flags)}); check that the file holds the neck acquisition"
            )
        return prepared

    def probabilities(self, network_inputs: np.ndarray) -> np.ndarray:
        """P(residual) for a batch of network inputs (N x 3 x H x W float32), one forward pass."""
        if self._onnx is not None:
            return self._onnx.probabilities(network_inputs)[:, 1]
        return class_probabilities(self._fast, network_inputs)[:, 1]

    def predict(self, study: Study, beds: Beds = None) -> Diagnosis:
        """The diagnosis of `study` (no heatmaps)."""
        return self.analyse(study, beds=beds).diagnosis

    def analyse(self, study: Study, explain: bool = False, beds: Beds = None) -> Analysis:
        """Diagnosis plus the preprocessed views and, with `explain`, Grad-CAM heatmaps.

        `beds` maps a view name to a thyroid-bed centre (original pixels) set by a person."""
        prepared = self.prepare(study, beds)
        used = [p for p in prepared if p.usable]
        prob = iter(self.probabilities(np.stack([p.result.network_input for p in used])).tolist())
        view_prob = [next(prob) if p.usable else None for p in prepared]
        analysis = Analysis(self._diagnosis(study, prepared, view_prob), prepared)
        return self.explain(analysis) if explain else analysis

    def explain(self, analysis: Analysis) -> Analysis:
        """`analysis` with the Grad-CAM heatmaps of its used views."""
        views = [(p.view, p.result) for p in analysis.used_views]
        return dataclasses.replace(analysis, heatmaps=explain_views(self.model, views))

    def _diagnosis(
        self, study: Study, prepared: tuple[PreparedView, ...], view_prob: list[float | None]
    ) -> Diagnosis:
        views = tuple(
            _view_prediction(image, p, prob)
            for image, p, prob in zip(study.images, prepared, view_prob, strict=True)
        )
        used = [v for v in views if v.used]
        probability, fusion_flags = fuse(
            [v.probability for v in used], [v.view for v in used], self.info.fusion
        )
        positive = probability >= self.operating_point.threshold
        flags = tuple(dict.fromkeys([*(f for v in views for f in v.flags), *fusion_flags]))
        return Diagnosis(
            source=study.source,
            verdict=POSITIVE if positive else NEGATIVE,
            positive=bool(positive),
            probability=float(probability),
            fusion=self.info.fusion,
            operating_point=self.operating_point,
            views=views,
            flags=flags,
            model={
                "name": self.info.model_name,
                "weights_sha256": self.info.weights_sha256,
                "bundle_thyrocad_version": self.info.thyrocad_version,
                "thyrocad_version": thyrocad.__version__,
                "backend": self.backend,
            },
        )


def _view_prediction(
    image: ViewImage, prepared: PreparedView, prob: float | None
) -> ViewPrediction:
    """One view's prediction, its boxes and bed mapped back to the file's pixels."""
    row0, col0 = image.origin_rc
    box = prepared.result.crop_box
    bed_row, bed_col = prepared.result.bed_center_rc
    return ViewPrediction(
        view=prepared.view.value,
        probability=prob,
        used=prepared.usable,
        flags=tuple(dict.fromkeys((*image.flags, *prepared.result.flags))),
        crop_box=(box.row0 + row0, box.col0 + col0, box.row1 + row0, box.col1 + col0),
        field_box=image.box_in_file(),
        bed_rc=(round(bed_row + row0, 2), round(bed_col + col0, 2)),
        bed_confidence=prepared.result.bed_confidence,
        bed_method=prepared.result.bed_method,
        bed_reason=prepared.result.bed_reason,
    )


def _onnx_runner(model: nn.Module, info: BundleInfo, backend: str, onnx_path, threads):
    """The onnxruntime session `backend` asks for, or None (torch; for "auto", with the
    reason logged)."""
    if backend == "torch":
        return None
    try:
        from thyrocad.bundle.onnx import bundle_runner  # imports onnxruntime

        return bundle_runner(model, info, onnx_path, threads)
    except (ImportError, ExportError, OSError) as exc:
        if backend == "onnxruntime":
            if isinstance(exc, ImportError):
                raise ConfigError(f"backend onnxruntime needs onnxruntime ({exc})") from exc
            raise
        logger.warning("running the network with PyTorch: onnxruntime not used (%s)", exc)
        return None


def _operating_point(info: BundleInfo, override: float | None) -> OperatingPoint:
    if override is None:
        t = info.threshold
        return OperatingPoint(
            t.value, "bundle", t.rule, t.sensitivity, t.specificity, t.level, t.indeterminate
        )
    return OperatingPoint(float(override), "override", None, None, None)
