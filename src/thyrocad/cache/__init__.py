"""One keyed disk store behind every cache of thyrocad, under `$THYROCAD_HOME/cache/<kind>/`.

Users: preprocessing outputs (`preprocess`), backbone features (`features`), the experiment's
preprocessed cohort (`inputs`), baseline scores (`baselines`), decoded cohort headers
(`cohorts-decoded`) and fixed random initialisations (`init`).

The guarantees every kind shares:
- A key is the sha256 of the JSON of its parts, which hold everything the value depends on:
  the input's content hash, the settings, the thyrocad version (always added) and
  `source_digest` of the modules that compute the value, so a code change never reuses an old
  entry.
- Entries are written atomically (temporary file beside the target, then `os.replace`), so
  concurrent writers of one key leave one whole entry.
- A damaged or unreadable entry is a miss (logged), and a failed write (a full disk) only
  loses the entry (logged), never the computation that asked for it.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import zipfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, BinaryIO

import numpy as np

import thyrocad
from thyrocad.files import atomic_writer, thyrocad_home

logger = logging.getLogger(__name__)

_UNREADABLE = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile)


def source_digest(*modules: ModuleType) -> str:
    """sha256 prefix of the source files of `modules`."""
    digest = hashlib.sha256()
    for module in modules:
        digest.update(Path(module.__file__).read_bytes())
    return digest.hexdigest()[:16]


def make_key(*parts: Any) -> str:
    """The key of these JSON-serialisable parts (and the thyrocad version): 32 hex digits."""
    text = json.dumps([thyrocad.__version__, *parts], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def default_directory(kind: str) -> Path:
    """`$THYROCAD_HOME/cache/<kind>` (read when called)."""
    return thyrocad_home() / "cache" / kind


class Store:
    """Entries of one kind: `<directory>/[<key[:2]>/]<key><suffix>`.

    `directory` defaults to `default_directory(kind)`; `shard` spreads many small entries
    over 256 sub-folders.
    """

    def __init__(
        self, kind: str, directory: Path | str | None = None, *, shard: bool = False
    ) -> None:
        self.kind = kind
        self.directory = Path(directory) if directory is not None else default_directory(kind)
        self.shard = shard

    def path(self, key: str, suffix: str) -> Path:
        """Where the entry `key` with file suffix `suffix` lives."""
        folder = self.directory / key[:2] if self.shard else self.directory
        return folder / f"{key}{suffix}"

    # --- JSON -----------------------------------------------------------------------------

    def get_json(self, key: str) -> Any | None:
        """The stored value, or None when absent or unreadable."""
        path = self.path(key, ".json")
        with self._reading(path):
            return json.loads(path.read_text(encoding="utf-8"))
        return None

    def put_json(self, key: str, value: Any) -> None:
        """Store `value` (JSON-serialisable)."""
        with self.writer(key, ".json") as fh:
            fh.write(json.dumps(value).encode("utf-8"))

    # --- arrays ---------------------------------------------------------------------------

    def get_arrays(self, key: str) -> dict[str, np.ndarray] | None:
        """The named arrays of an `.npz` entry (loaded into memory), or None."""
        path = self.path(key, ".npz")
        with self._reading(path), np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
        return None

    def put_arrays(self, key: str, **arrays: np.ndarray) -> None:
        """Store named arrays as one uncompressed `.npz` entry."""
        with self.writer(key, ".npz") as fh:
            np.savez(fh, **arrays)

    def get_array(self, key: str) -> np.ndarray | None:
        """One `.npy` array, or None."""
        path = self.path(key, ".npy")
        with self._reading(path):
            return np.load(path, allow_pickle=False)
        return None

    def put_array(self, key: str, array: np.ndarray) -> None:
        """Store one array as `.npy`."""
        with self.writer(key, ".npy") as fh:
            np.save(fh, array, allow_pickle=False)

    # --- any format -----------------------------------------------------------------------

    @contextlib.contextmanager
    def writer(self, key: str, suffix: str) -> Iterator[BinaryIO]:
        """A binary file that atomically becomes the entry; a failed write is only logged."""
        path = self.path(key, suffix)
        opened = False
        try:
            with atomic_writer(path) as fh:
                opened = True
                yield fh
        except OSError as exc:
            logger.warning("cache %s: could not write %s (%s)", self.kind, path.name, exc)
            if not opened:
                yield io.BytesIO()  # the caller's bytes go nowhere

    @contextlib.contextmanager
    def _reading(self, path: Path) -> Iterator[None]:
        """Suppress a missing file silently and a damaged one with a warning (both misses)."""
        try:
            yield
        except FileNotFoundError:
            pass
        except _UNREADABLE as exc:
            logger.warning("cache %s: ignoring unreadable %s (%s)", self.kind, path.name, exc)
