"""Diagnosis of one study with a trained model bundle.

>>> predictor = Predictor.from_bundle("runs/resnet18-bundle")
>>> diagnosis = predictor.predict(read_study("patient.dcm"))
>>> diagnosis.verdict, diagnosis.probability, diagnosis.operating_point.threshold

The bundle (see `thyrocad.training.bundle`) is loaded once: weights, preprocessing config,
decision threshold with the sensitivity/specificity it had on the training data, and the view
fusion rule (manifest key `view_fusion`: mean (default), max, anterior or posterior). Every view
of the study is preprocessed with the bundle's pipeline and all views go through the network in
one batch. A view whose crop is blank or flat carries no information and is left out of the
fused probability; a study with no other view raises `NoUsableViewError`.

`thyrocad train` chooses the threshold on the fused per-patient training probabilities
(manifest `threshold.level` = "patient"); a bundle whose threshold was chosen per view says
"view", and `OperatingPoint.level` reports which.
"""

from __future__ import annotations

import atexit
import dataclasses
import json
import logging
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import thyrocad
from thyrocad.errors import (
    BundleError,
    BundleVersionError,
    ModelError,
    NoUsableViewError,
    PreprocessError,
)
from thyrocad.explain import Heatmap, explain_views
from thyrocad.models import channels_last, inference_copy
from thyrocad.preprocess import Flag, Pipeline, PipelineConfig, PreprocessResult, preset
from thyrocad.study import Study, View
from thyrocad.training import bundle as bundle_format
from thyrocad.training.bundle import read_bundle

logger = logging.getLogger(__name__)

BACKENDS = ("torch", "onnxruntime")
FUSIONS = ("mean", "max", "anterior", "posterior")
POSITIVE, NEGATIVE = bundle_format.CLASSES[1], bundle_format.CLASSES[0]
ONNX_FILE = "model.onnx"  # where `thyrocad export MODEL_DIR --onnx MODEL_DIR/model.onnx` puts it
# A crop with these flags holds no counts worth classifying.
UNUSABLE_FLAGS = frozenset({Flag.BLANK.value, Flag.FLAT.value})


@dataclass(frozen=True)
class BundleInfo:
    """What inference needs from a bundle manifest, plus the manifest itself."""

    path: Path
    model_name: str
    pipeline: PipelineConfig
    threshold: float
    threshold_rule: str | None
    train_sensitivity: float | None
    train_specificity: float | None
    fusion: str
    weights_sha256: str
    thyrocad_version: str
    manifest: dict[str, Any]


@dataclass(frozen=True)
class OperatingPoint:
    """The decision threshold used and what it achieved on the training data."""

    threshold: float
    source: str  # "bundle" or "override"
    rule: str | None
    train_sensitivity: float | None  # of the bundle's threshold; None for an override
    train_specificity: float | None
    level: str = "view"  # "patient" or "view": what the training metrics were computed on


@dataclass(frozen=True)
class ViewPrediction:
    """One view: its probability of residual tissue and what preprocessing noticed."""

    view: str
    probability: float | None  # None for a view left out (blank or flat crop)
    used: bool  # part of the fused probability
    flags: tuple[str, ...]
    crop_box: tuple[int, int, int, int]  # (row0, col0, row1, col1) in original pixels


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
    flags: tuple[str, ...]  # union of the views' preprocessing flags
    model: dict[str, str]
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (tuples as lists)."""
        return json.loads(self.to_json())

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2)


@dataclass(frozen=True)
class PreparedView:
    """A preprocessed view and whether it can be classified."""

    view: View
    result: PreprocessResult
    usable: bool


@dataclass(frozen=True)
class Analysis:
    """Everything computed for one study: the diagnosis, the preprocessed views, heatmaps."""

    diagnosis: Diagnosis
    views: tuple[PreparedView, ...]
    heatmaps: tuple[Heatmap, ...] = field(default_factory=tuple)


def load_bundle(bundle_dir: str | Path) -> tuple[nn.Module, BundleInfo]:
    """The model (eval, CPU) and `BundleInfo` of a bundle; `BundleError` says what is wrong."""
    path = Path(bundle_dir)
    if not path.is_dir():
        raise BundleError(f"{path} is not a folder; give the model bundle folder made by training")
    manifest = _read_manifest(path)
    _check_version(path, manifest)
    try:
        model, manifest = read_bundle(path)
        info = _bundle_info(path, manifest)
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(
            f"{path}/{bundle_format.MANIFEST} lacks a field or has a malformed one ({exc!r}); "
            "the bundle is damaged: write it again from its training run"
        ) from exc
    except ModelError as exc:
        raise BundleError(f"{path}: the bundle's model cannot be built here: {exc}") from exc
    return model, info


def _read_manifest(path: Path) -> dict[str, Any]:
    manifest_path = path / bundle_format.MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(
            f"{path} is not a model bundle: {bundle_format.MANIFEST} is missing "
            "(an incomplete or interrupted bundle write)"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(
            f"{manifest_path} is not valid JSON ({exc}); the bundle is damaged"
        ) from exc
    if not isinstance(manifest, dict):
        raise BundleError(f"{manifest_path} is not a JSON object; the bundle is damaged")
    return manifest


def _check_version(path: Path, manifest: dict[str, Any]) -> None:
    fmt, version = manifest.get("format"), manifest.get("format_version")
    if fmt == bundle_format.FORMAT and version == bundle_format.FORMAT_VERSION:
        return
    written_by = (manifest.get("library_versions") or {}).get("thyrocad", "an unknown version")
    raise BundleVersionError(
        f"{path}: bundle format {fmt!r} version {version!r}, written by thyrocad {written_by}; "
        f"this is thyrocad {thyrocad.__version__}, which reads {bundle_format.FORMAT} version "
        f"{bundle_format.FORMAT_VERSION} only. Use the thyrocad version that wrote the bundle, "
        "or retrain with this one."
    )


def _bundle_info(path: Path, manifest: dict[str, Any]) -> BundleInfo:
    threshold = manifest["threshold"]
    fusion = manifest.get("view_fusion", "mean")
    if fusion not in FUSIONS:
        raise BundleError(f"{path}: view_fusion {fusion!r} is not one of {FUSIONS}")
    return BundleInfo(
        path=path,
        model_name=manifest["model"]["name"],
        pipeline=_pipeline_config(path, manifest),
        threshold=float(threshold["value"]),
        threshold_rule=threshold.get("rule"),
        train_sensitivity=_optional_float(threshold.get("train_sensitivity")),
        train_specificity=_optional_float(threshold.get("train_specificity")),
        fusion=fusion,
        weights_sha256=manifest["weights_sha256"],
        thyrocad_version=(manifest.get("library_versions") or {}).get("thyrocad", "unknown"),
        manifest=manifest,
    )


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _pipeline_config(path: Path, manifest: dict[str, Any]) -> PipelineConfig:
    """The bundle's preprocessing config; the default preset with the model's mean/std if null."""
    config_path = path / manifest.get("files", bundle_format.FILES)["preprocess_config"]
    try:
        data = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{config_path} is missing or not valid JSON ({exc})") from exc
    if data is None:
        model = manifest["model"]
        logger.warning("bundle has no preprocessing config: using the default preset")
        return preset("default").with_normalisation(tuple(model["mean"]), tuple(model["std"]))
    try:
        return PipelineConfig.from_dict(data)
    except (PreprocessError, TypeError) as exc:
        raise BundleError(f"{config_path} is not a preprocessing config: {exc}") from exc


class Predictor:
    """A loaded bundle that diagnoses studies (`predict`, `analyse`).

    `threads` sets torch's (and onnxruntime's) intra-op threads; None leaves torch's setting.
    `threshold` overrides the bundle's decision threshold. Grad-CAM calls are serialised.
    """

    def __init__(
        self,
        model: nn.Module,
        info: BundleInfo,
        *,
        backend: str = "torch",
        onnx_path: str | Path | None = None,
        threads: int | None = None,
        threshold: float | None = None,
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if threshold is not None and not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must lie in [0, 1], got {threshold}")
        if threads is not None:
            torch.set_num_threads(threads)
        self.model = model.eval()  # Grad-CAM hooks into this one
        self._fast = inference_copy(self.model) if backend == "torch" else None
        self.info = info
        self.backend = backend
        self.pipeline = Pipeline(info.pipeline)
        self.operating_point = _operating_point(info, threshold)
        self._onnx = _onnx_runner(model, info, onnx_path, threads) if backend != "torch" else None

    @classmethod
    def from_bundle(
        cls,
        bundle_dir: str | Path,
        *,
        backend: str = "torch",
        onnx_path: str | Path | None = None,
        threads: int | None = None,
        threshold: float | None = None,
    ) -> Predictor:
        """Load a bundle once. `backend="onnxruntime"` uses `onnx_path`, else the bundle's
        `model.onnx`, else an export made now into a temporary folder."""
        model, info = load_bundle(bundle_dir)
        return cls(
            model, info, backend=backend, onnx_path=onnx_path, threads=threads, threshold=threshold
        )

    def prepare(self, study: Study) -> tuple[PreparedView, ...]:
        """Preprocess every view; a blank or flat crop is marked unusable."""
        if not study.images:
            raise NoUsableViewError(f"{study.source or 'the study'} has no views")
        prepared = []
        for view, result in self.pipeline.run_study(study):
            usable = not UNUSABLE_FLAGS.intersection(result.flags)
            prepared.append(PreparedView(view, result, usable))
        if not any(p.usable for p in prepared):
            flags = sorted({f for p in prepared for f in p.result.flags})
            raise NoUsableViewError(
                f"{study.source or 'the study'}: no usable view ({len(prepared)} view(s), "
                f"flags {', '.join(flags)}); check that the file holds the neck acquisition"
            )
        return tuple(prepared)

    def probabilities(self, network_inputs: np.ndarray) -> np.ndarray:
        """P(residual) for a batch of network inputs (N x 3 x H x W float32), one forward pass."""
        if self._onnx is not None:
            return self._onnx.probabilities(network_inputs)[:, 1]
        return class_probabilities(self._fast, network_inputs)[:, 1]

    def predict(self, study: Study) -> Diagnosis:
        """The diagnosis of `study` (no heatmaps)."""
        return self.analyse(study).diagnosis

    def analyse(self, study: Study, explain: bool = False) -> Analysis:
        """Diagnosis plus the preprocessed views and, with `explain`, Grad-CAM heatmaps."""
        prepared = self.prepare(study)
        used = [p for p in prepared if p.usable]
        prob = iter(self.probabilities(np.stack([p.result.network_input for p in used])).tolist())
        view_prob = [next(prob) if p.usable else None for p in prepared]
        diagnosis = self._diagnosis(study, prepared, view_prob)
        heatmaps: tuple[Heatmap, ...] = ()
        if explain:
            heatmaps = explain_views(self.model, [(p.view, p.result) for p in used])
        return Analysis(diagnosis, prepared, heatmaps)

    def _diagnosis(
        self, study: Study, prepared: tuple[PreparedView, ...], view_prob: list[float | None]
    ) -> Diagnosis:
        views = tuple(
            ViewPrediction(
                view=p.view.value,
                probability=prob,
                used=p.usable,
                flags=p.result.flags,
                crop_box=p.result.crop_box.as_tuple(),
            )
            for p, prob in zip(prepared, view_prob, strict=True)
        )
        probability, fusion_flags = fuse([v for v in views if v.used], self.info.fusion)
        positive = probability >= self.operating_point.threshold
        flags = tuple(dict.fromkeys([f for v in views for f in v.flags] + fusion_flags))
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


def class_probabilities(model: nn.Module, network_inputs: np.ndarray) -> np.ndarray:
    """Softmax class probabilities (N x 2, float64) of a batch, under `torch.inference_mode()`
    (channels-last input: the faster layout on CPU, see `thyrocad.models.inference_copy`)."""
    x = channels_last(torch.from_numpy(np.ascontiguousarray(network_inputs, dtype=np.float32)))
    with torch.inference_mode():
        return torch.softmax(model(x), dim=1).numpy().astype(np.float64)


def fuse(views: list[ViewPrediction], fusion: str) -> tuple[float, list[str]]:
    """The patient probability from the used views, and flags about the fusion.

    `anterior` / `posterior` take that view's probability; without it (or with several) the
    mean is used and the flag `fusion_fell_back_to_mean` raised.
    """
    prob = np.array([v.probability for v in views])
    if fusion == "max":
        return float(prob.max()), []
    if fusion in ("anterior", "posterior"):
        chosen = [v.probability for v in views if v.view == fusion]
        if len(chosen) == 1:
            return chosen[0], []
        return float(prob.mean()), ["fusion_fell_back_to_mean"]
    return float(prob.mean()), []


def _operating_point(info: BundleInfo, override: float | None) -> OperatingPoint:
    if override is None:
        return OperatingPoint(
            info.threshold, "bundle", info.threshold_rule, info.train_sensitivity,
            info.train_specificity, info.manifest["threshold"].get("level", "view"),
        )  # fmt: skip
    return OperatingPoint(float(override), "override", None, None, None)


def _onnx_runner(model: nn.Module, info: BundleInfo, onnx_path, threads: int | None):
    """An onnxruntime session for the bundle: the given file, the bundle's, or a fresh export."""
    from thyrocad.export import OnnxRunner, export_onnx

    path = Path(onnx_path) if onnx_path is not None else info.path / ONNX_FILE
    if onnx_path is None and not path.is_file():
        folder = tempfile.mkdtemp(prefix="thyrocad-onnx-")
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        path = Path(folder) / ONNX_FILE
        logger.info("bundle has no %s: exporting one to %s", ONNX_FILE, path)
        export_onnx(model, path, info)
    return OnnxRunner(path, expected_sha256=info.weights_sha256, threads=threads)
