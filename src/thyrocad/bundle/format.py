"""The model-bundle format: one writer, one reader, one version check.

A bundle is a folder with everything needed to use and trace a trained model: `weights.pt`
(plain state_dict), `train_config.json`, `preprocess_config.json`, `history.json`,
`history.png` and `bundle.json`, the manifest (format version, model card, decision
threshold, view fusion, data hash, library versions). The manifest is written last, so its
presence marks a complete bundle. Every problem reading a bundle is a `BundleError`; a bundle
of another format version is its subclass `BundleVersionError`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

import thyrocad
from thyrocad.decision import VIEW_FUSIONS
from thyrocad.errors import BundleError, BundleVersionError, ConfigError, ModelError
from thyrocad.files import atomic_writer
from thyrocad.models import create_model, model_info
from thyrocad.models.weights import UNREADABLE_ERRORS, WeightsSource, file_sha256
from thyrocad.preprocess import PipelineConfig
from thyrocad.provenance import library_versions, machine_description

logger = logging.getLogger(__name__)

FORMAT = "thyrocad-model-bundle"
FORMAT_VERSION = 1
MANIFEST = "bundle.json"
WEIGHTS = "weights.pt"
FILES = {
    "train_config": "train_config.json",
    "preprocess_config": "preprocess_config.json",
    "history": "history.json",
    "history_plot": "history.png",
}
CLASSES = ("non_residual", "residual")  # index = label; 1 (residual) is the positive class
NEGATIVE, POSITIVE = CLASSES


@dataclass(frozen=True)
class Threshold:
    """A bundle's decision threshold and how it was chosen.

    `rule`: the operating point (`thyrocad.decision.parse_operating_point`: argmax,
    oof-youden, oof-sensitivity:T, train-youden). `source`: "argmax", "out_of_fold" (chosen on
    out-of-fold predictions of an inner `k`-fold over the training patients) or "training"
    (chosen on the training patients' own predictions: optimistic). `sensitivity` /
    `specificity`: reached on the training patients (`level` "patient": view-fused
    probabilities); `oof_sensitivity` / `oof_specificity`: reached on the out-of-fold
    predictions, the honest estimate. `indeterminate`: probabilities in [low, high] need a
    physician's read (the bootstrap band of the out-of-fold threshold); None: no band."""

    value: float
    rule: str | None
    sensitivity: float | None = None
    specificity: float | None = None
    target: float | None = None
    level: str = "patient"
    source: str = "training"
    indeterminate: tuple[float, float] | None = None
    k: int | None = None
    oof_sensitivity: float | None = None
    oof_specificity: float | None = None

    def to_manifest(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "rule": self.rule,
            "target": self.target,
            "train_sensitivity": self.sensitivity,
            "train_specificity": self.specificity,
            "level": self.level,
            "source": self.source,
            "indeterminate": list(self.indeterminate) if self.indeterminate else None,
            "k": self.k,
            "oof_sensitivity": self.oof_sensitivity,
            "oof_specificity": self.oof_specificity,
        }

    @classmethod
    def from_manifest(cls, data: dict[str, Any]) -> Threshold:
        return cls(
            value=float(data["value"]),
            rule=data.get("rule"),
            sensitivity=_optional_float(data.get("train_sensitivity")),
            specificity=_optional_float(data.get("train_specificity")),
            target=_optional_float(data.get("target")),
            level=data.get("level", "view"),
            source=data.get("source", "training"),
            indeterminate=tuple(data["indeterminate"]) if data.get("indeterminate") else None,
            k=int(data["k"]) if data.get("k") is not None else None,
            oof_sensitivity=_optional_float(data.get("oof_sensitivity")),
            oof_specificity=_optional_float(data.get("oof_specificity")),
        )


@dataclass(frozen=True)
class BundleInfo:
    """What a bundle says about its model: name, preprocessing, decision rule, provenance."""

    path: Path
    model_name: str
    pipeline: PipelineConfig
    threshold: Threshold
    fusion: str
    weights_sha256: str
    thyrocad_version: str
    manifest: dict[str, Any]


def write_bundle(
    out_dir: Path,
    model: nn.Module,
    *,
    train_config: dict[str, Any],
    pipeline: PipelineConfig,
    threshold: Threshold,
    fusion: str,
    history: list[dict[str, Any]],
    plot_history: Callable[[Path], Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write the bundle of a trained `model` into `out_dir`; returns the manifest path.

    `extra` adds manifest keys (mode, data hash, class counts, cohort, ...); `plot_history`
    draws the training curves into the path it is given."""
    if fusion not in VIEW_FUSIONS:
        raise ConfigError(f"view fusion must be one of {VIEW_FUSIONS}, got {fusion!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    info = model_info(model)
    weights = out_dir / WEIGHTS
    with atomic_writer(weights) as fh:
        torch.save(model.state_dict(), fh)
    _write_json(out_dir / FILES["train_config"], train_config)
    _write_json(out_dir / FILES["preprocess_config"], pipeline.to_dict())
    _write_json(out_dir / FILES["history"], history)
    if plot_history is not None:
        plot_history(out_dir / FILES["history_plot"])
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "model": {
            "name": info.spec.name,
            "num_classes": info.num_classes,
            "classes": list(CLASSES),
            "positive_class": 1,
            "mean": list(info.spec.mean),
            "std": list(info.spec.std),
            "input_size": info.spec.input_size,
            "target_layer": info.spec.target_layer,
            "head_prefix": info.spec.head_prefix,
        },
        "weights_file": WEIGHTS,
        "weights_sha256": file_sha256(weights),
        "initial_weights": info.weights.to_dict(),
        "epochs_completed": len(history),
        "threshold": threshold.to_manifest(),
        "view_fusion": fusion,
        "files": FILES,
        "library_versions": library_versions(),
        "machine": machine_description(),
        **(extra or {}),
    }
    _write_json(out_dir / MANIFEST, manifest)
    logger.info("model bundle written (%s, %d epochs)", info.spec.name, len(history))
    return out_dir / MANIFEST


def read_manifest(bundle_dir: str | Path) -> dict[str, Any]:
    """The manifest of a bundle of this format version; `BundleError` says what is wrong."""
    path = Path(bundle_dir)
    if not path.is_dir():
        raise BundleError(f"{path} is not a folder; give the model bundle folder made by training")
    manifest_path = path / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(
            f"{path} is not a model bundle: {MANIFEST} is missing "
            "(an incomplete or interrupted bundle write)"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(
            f"{manifest_path} is not valid JSON ({exc}); the bundle is damaged"
        ) from exc
    if not isinstance(manifest, dict):
        raise BundleError(f"{manifest_path} is not a JSON object; the bundle is damaged")
    _check_version(path, manifest)
    return manifest


def _check_version(path: Path, manifest: dict[str, Any]) -> None:
    fmt, version = manifest.get("format"), manifest.get("format_version")
    if fmt == FORMAT and version == FORMAT_VERSION:
        return
    written_by = (manifest.get("library_versions") or {}).get("thyrocad", "an unknown version")
    raise BundleVersionError(
        f"{path}: bundle format {fmt!r} version {version!r}, written by thyrocad {written_by}; "
        f"this is thyrocad {thyrocad.__version__}, which reads {FORMAT} version "
        f"{FORMAT_VERSION} only. Use the thyrocad version that wrote the bundle, "
        "or retrain with this one."
    )


def load_bundle(bundle_dir: str | Path) -> tuple[nn.Module, BundleInfo]:
    """The model (eval mode, CPU) and `BundleInfo` of a bundle; `BundleError` if unusable."""
    path = Path(bundle_dir)
    manifest = read_manifest(path)
    try:
        model = _load_model(path, manifest)
        info = _bundle_info(path, manifest)
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(
            f"{path}/{MANIFEST} lacks a field or has a malformed one ({exc!r}); "
            "the bundle is damaged: write it again from its training run"
        ) from exc
    except ModelError as exc:
        raise BundleError(f"{path}: the bundle's model cannot be built here: {exc}") from exc
    return model, info


def _load_model(path: Path, manifest: dict[str, Any]) -> nn.Module:
    weights = path / manifest["weights_file"]
    if not weights.is_file() or file_sha256(weights) != manifest["weights_sha256"]:
        raise BundleError(f"{weights} is missing or does not match the manifest's sha256.")
    model = create_model(
        manifest["model"]["name"], weights="none", num_classes=manifest["model"]["num_classes"]
    )
    try:
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    except UNREADABLE_ERRORS as exc:
        raise BundleError(f"{weights} cannot be loaded into the bundle's model ({exc}).") from exc
    source = WeightsSource(kind="file", path=str(weights), sha256=manifest["weights_sha256"])
    model.thyrocad_info = dataclasses.replace(model_info(model), weights=source)
    return model.eval()


def _bundle_info(path: Path, manifest: dict[str, Any]) -> BundleInfo:
    fusion = manifest.get("view_fusion", "mean")
    if fusion not in VIEW_FUSIONS:
        raise BundleError(f"{path}: view_fusion {fusion!r} is not one of {VIEW_FUSIONS}")
    return BundleInfo(
        path=path,
        model_name=manifest["model"]["name"],
        pipeline=_pipeline_config(path, manifest),
        threshold=Threshold.from_manifest(manifest["threshold"]),
        fusion=fusion,
        weights_sha256=manifest["weights_sha256"],
        thyrocad_version=(manifest.get("library_versions") or {}).get("thyrocad", "unknown"),
        manifest=manifest,
    )


def _pipeline_config(path: Path, manifest: dict[str, Any]) -> PipelineConfig:
    """The bundle's preprocessing config."""
    config_path = path / manifest.get("files", FILES)["preprocess_config"]
    try:
        data = json.loads(config_path.read_text(encoding="utf-8"))
        return PipelineConfig.from_dict(data)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{config_path} is missing or not valid JSON ({exc})") from exc
    except (ConfigError, TypeError) as exc:
        raise BundleError(f"{config_path} is not a preprocessing config: {exc}") from exc


def _write_json(path: Path, data: Any) -> None:
    with atomic_writer(path) as fh:
        fh.write((json.dumps(data, indent=2, sort_keys=True) + "\n").encode("utf-8"))


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)
