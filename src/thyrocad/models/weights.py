"""Pretrained weights without a network: explicit files, the torch hub cache, installed packages.

Nothing here downloads unless the caller asks for it (`allow_download=True`): a hospital machine
is often offline, and a missing file must produce a clear `WeightsError`, not a hang. Weights
are never replaced silently by random ones.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import pickle
import zipfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn

from thyrocad.errors import WeightsError

logger = logging.getLogger(__name__)

_MAX_LISTED = 6
# What torch.load(weights_only=True) raises on truncated, garbage or non-tensor files.
UNREADABLE_ERRORS = (
    RuntimeError, OSError, pickle.UnpicklingError, EOFError, zipfile.BadZipFile, ValueError,
    IndexError, KeyError, TypeError, UnicodeDecodeError,
)  # fmt: skip


@dataclass(frozen=True)
class WeightsSource:
    """Where a model's initial weights came from: 'file', 'hub-cache', 'package' or 'none'."""

    kind: str
    path: str | None = None
    sha256: str | None = None

    def to_dict(self) -> dict[str, str | None]:
        """JSON-ready form."""
        return asdict(self)


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def weights_sha256(path: Path) -> str:
    """`file_sha256` of a weights file, remembered per process while its size and modification
    time (ns) stay the same: every training run reads its weights file, and provenance needs
    the hash each time. Integrity checks of bundles use `file_sha256`."""
    stat = Path(path).stat()
    return _remembered_sha256(str(Path(path).absolute()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=32)
def _remembered_sha256(path: str, size: int, mtime_ns: int) -> str:
    del size, mtime_ns  # part of the cache key only
    return file_sha256(Path(path))


def hub_checkpoint_path(url: str) -> Path:
    """Where torch hub keeps (or would download) the file of `url`: $TORCH_HOME/hub/checkpoints."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name


def check_hash_prefix(path: Path) -> str:
    """Verify the sha256 prefix that torchvision file names carry (`name-<hex>.pth`).

    torch hub checks the hash only when it downloads; a pre-seeded, truncated or swapped file
    would otherwise load unchecked (PITFALLS 4.3). Returns the full sha256.
    """
    sha = weights_sha256(path)
    prefix = path.stem.rsplit("-", 1)[-1]
    if not sha.startswith(prefix):
        raise WeightsError(
            f"Weights file {path} is corrupt or not the published file: its sha256 starts with "
            f"{sha[: len(prefix)]}, the file name promises {prefix}. Replace it with the file "
            "downloaded from the URL in docs/training.md."
        )
    return sha


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read a plain state_dict with `weights_only=True`; any failure becomes a `WeightsError`."""
    if not path.is_file():
        raise WeightsError(f"Weights file {path} does not exist.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except UNREADABLE_ERRORS as exc:
        raise WeightsError(
            f"Weights file {path} cannot be read as a PyTorch state_dict ({type(exc).__name__}). "
            "It may be truncated or not a weights file; supply an intact .pth/.pt state_dict."
        ) from exc
    if isinstance(state, Mapping) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise WeightsError(
            f"Weights file {path} does not hold a state_dict (a mapping of names to tensors)."
        )
    return dict(state)


def _listed(items: list[str]) -> str:
    shown = ", ".join(items[:_MAX_LISTED])
    more = len(items) - _MAX_LISTED
    return shown + (f" (and {more} more)" if more > 0 else "")


def load_pretrained(
    model: nn.Module, state: Mapping[str, torch.Tensor], head_prefix: str, arch: str, origin: str
) -> bool:
    """Load `state` into `model`: every backbone tensor must match by name and shape.

    Head tensors (names starting with `head_prefix`) are taken only when all of them match the
    model's head in shape (e.g. a 1000-class model given ImageNet weights); otherwise the new
    head keeps its fresh initialisation (PITFALLS 4.1). Returns whether the head was loaded.
    Raises `WeightsError` naming the mismatched layers.
    """
    own = model.state_dict()
    in_head = lambda key: key.startswith(head_prefix)  # noqa: E731
    missing = [k for k in own if k not in state and not in_head(k)]
    unexpected = [k for k in state if k not in own and not in_head(k)]
    wrong = [
        f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
        for k in own
        if k in state and not in_head(k) and state[k].shape != own[k].shape
    ]
    if missing or unexpected or wrong:
        parts = [
            f"{label}: {_listed(keys)}"
            for label, keys in (
                ("shape mismatch (file vs model)", wrong),
                ("missing from the file", missing),
                ("not in the model", unexpected),
            )
            if keys
        ]
        raise WeightsError(
            f"Weights from {origin} do not fit architecture '{arch}'. "
            + "; ".join(parts)
            + f". Supply ImageNet weights made for '{arch}'."
        )
    head_keys = [k for k in own if in_head(k)]
    head_fits = all(k in state and state[k].shape == own[k].shape for k in head_keys)
    merged = {k: (state[k] if (head_fits or not in_head(k)) else own[k]) for k in own}
    model.load_state_dict(merged, strict=True, assign=True)  # assign: the model may be on meta
    if not head_fits:
        logger.info(
            "%s: new %s head initialised fresh (file head has another shape)", arch, head_prefix
        )
    return head_fits


def state_fingerprint(module: nn.Module, exclude_prefix: str | None = None) -> str:
    """sha256 over a module's state_dict (names, dtypes, shapes, values): its weights identity.

    Tensors whose names start with `exclude_prefix` (e.g. a freshly initialised head) are left out.
    """
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        if exclude_prefix and name.startswith(exclude_prefix):
            continue
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
