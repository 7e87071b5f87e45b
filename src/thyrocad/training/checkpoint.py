"""Per-epoch checkpoints: plain tensors + JSON metadata, written atomically, read weights-only.

A checkpoint holds the trainable part of the model (the head, the last stage, or everything),
the optimizer state, every random generator's state and a JSON string with the configuration,
the history and the fingerprint of the frozen weights. It is written to a temporary file in the
same folder, flushed to disk and moved over the previous one with `os.replace`, so a crash or a
full disk at any moment leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch

from thyrocad.errors import CheckpointError
from thyrocad.files import atomic_writer
from thyrocad.models.weights import UNREADABLE_ERRORS

logger = logging.getLogger(__name__)

CHECKPOINT_NAME = "checkpoint.pt"
FORMAT_VERSION = 1


def save_checkpoint(
    path: Path,
    epoch: int,
    trainable: dict[str, torch.Tensor],
    optimizer: dict[str, Any],
    rng_tensors: dict[str, torch.Tensor],
    meta: dict[str, Any],
) -> None:
    """Write atomically; on failure the previous file survives and `CheckpointError` is raised."""
    payload = {
        "format_version": FORMAT_VERSION,
        "epoch": epoch,
        "trainable": {k: v.detach().cpu() for k, v in trainable.items()},
        "optimizer": optimizer,
        "rng": rng_tensors,
        "meta": json.dumps(meta),
    }
    try:
        with atomic_writer(path) as fh:
            torch.save(payload, fh)
    except OSError as exc:
        raise CheckpointError(
            f"Could not write the checkpoint of epoch {epoch} to {path.parent} "
            f"({exc.strerror or exc}). "
            "The previous checkpoint is intact; free disk space and rerun with resume to go on."
        ) from exc
    logger.debug("checkpoint of epoch %d written", epoch)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint with `weights_only=True`; `meta` is decoded from JSON."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        payload["meta"] = json.loads(payload["meta"])
        version = payload["format_version"]
        absent = [k for k in ("epoch", "trainable", "optimizer", "rng") if k not in payload]
        if absent:
            raise KeyError(", ".join(absent))
    except FileNotFoundError:
        raise CheckpointError(f"No checkpoint at {path}; start without resume.") from None
    except UNREADABLE_ERRORS as exc:
        raise CheckpointError(
            f"Checkpoint {path} is corrupt or not a thyrocad checkpoint ({type(exc).__name__}). "
            "Delete it to start the run afresh, or resume from a backup copy."
        ) from exc
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"Checkpoint {path} has format version {version}; this thyrocad reads version "
            f"{FORMAT_VERSION}. Start the run afresh."
        )
    return payload
