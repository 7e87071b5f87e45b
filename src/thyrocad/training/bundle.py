"""Model bundle: a folder with everything needed to use and trace a trained model.

Files: `weights.pt` (plain state_dict), `train_config.json`, `preprocess_config.json`,
`history.json`, `history.png` and `bundle.json`, the manifest (format version, model card,
threshold, data hash, library versions), written last so that its presence marks a complete
bundle.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from thyrocad.atomic import atomic_writer
from thyrocad.errors import BundleError
from thyrocad.models import create_model, model_info
from thyrocad.models.weights import UNREADABLE_ERRORS, WeightsSource, file_sha256
from thyrocad.provenance import library_versions, machine_description
from thyrocad.training.fit import TrainResult
from thyrocad.training.history import plot_history

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


def _write_json(path: Path, data: Any) -> None:
    with atomic_writer(path) as fh:
        fh.write((json.dumps(data, indent=2, sort_keys=True) + "\n").encode("utf-8"))


def write_bundle(
    out_dir: Path,
    result: TrainResult,
    preprocess_config: dict[str, Any] | None = None,
    data_hash: str | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write the bundle of `result` into `out_dir`; returns the manifest path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    info = model_info(result.model)
    weights = out_dir / WEIGHTS
    with atomic_writer(weights) as fh:
        torch.save(result.model.state_dict(), fh)
    _write_json(out_dir / FILES["train_config"], result.config.to_dict())
    _write_json(out_dir / FILES["preprocess_config"], preprocess_config)
    _write_json(out_dir / FILES["history"], [r.to_dict() for r in result.history])
    plot_history(result.history, out_dir / FILES["history_plot"], title=info.spec.name)
    t = result.threshold
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
        "backbone_fingerprint": result.backbone_fingerprint,
        "mode": result.config.mode,
        "epochs_completed": len(result.history),
        "threshold": {
            "value": t.threshold,
            "rule": t.rule,
            "target": t.target,
            "train_sensitivity": t.sensitivity,
            "train_specificity": t.specificity,
            "level": result.threshold_level,
        },
        "data_hash": data_hash,
        "train_class_counts": {
            "non_residual": result.class_counts[0],
            "residual": result.class_counts[1],
        },
        "files": FILES,
        "library_versions": library_versions(),
        "machine": machine_description(),
        **(extra or {}),
    }
    _write_json(out_dir / MANIFEST, manifest)
    logger.info("model bundle written (%s, %d epochs)", info.spec.name, len(result.history))
    return out_dir / MANIFEST


def read_bundle(bundle_dir: Path) -> tuple[nn.Module, dict[str, Any]]:
    """The trained model (eval mode, CPU) and manifest of a bundle; `BundleError` if unusable."""
    bundle_dir = Path(bundle_dir)
    try:
        manifest = json.loads((bundle_dir / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BundleError(
            f"{bundle_dir} is not a model bundle: {MANIFEST} is missing or unreadable ({exc})."
        ) from exc
    if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
        raise BundleError(
            f"{bundle_dir}/{MANIFEST}: format {manifest.get('format')!r} version "
            f"{manifest.get('format_version')!r}; this thyrocad reads {FORMAT} v{FORMAT_VERSION}."
        )
    weights = bundle_dir / manifest["weights_file"]
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
    return model.eval(), manifest
