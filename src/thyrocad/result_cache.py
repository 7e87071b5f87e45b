"""Small JSON results kept under `$THYROCAD_HOME/cache/<kind>/`, keyed by all they depend on.

A key is the sha256 of the JSON of its parts: the input's content hash, the settings, the
thyrocad version and `source_digest` of the modules that compute the result, so a code change
never reuses an old result. Entries are written atomically; an unreadable entry is a miss.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from types import ModuleType
from typing import Any

import thyrocad
from thyrocad.atomic import atomic_writer
from thyrocad.paths import thyrocad_home

logger = logging.getLogger(__name__)


def source_digest(*modules: ModuleType) -> str:
    """sha256 prefix of the source files of `modules`."""
    digest = hashlib.sha256()
    for module in modules:
        digest.update(Path(module.__file__).read_bytes())
    return digest.hexdigest()[:16]


def entry_path(kind: str, *key_parts: Any) -> Path:
    """Where the result of `kind` for these key parts (JSON-serialisable) is kept."""
    text = json.dumps([thyrocad.__version__, *key_parts], sort_keys=True)
    return (
        thyrocad_home() / "cache" / kind / f"{hashlib.sha256(text.encode()).hexdigest()[:32]}.json"
    )


def load(path: Path) -> Any | None:
    """The cached value, or None when absent or unreadable."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        logger.warning("ignoring unreadable cache entry %s (%s)", path.name, exc)
        return None


def store(path: Path, value: Any) -> None:
    """Write `value` atomically; a failure (e.g. a full disk) only loses the cache entry."""
    try:
        with atomic_writer(path) as fh:
            fh.write(json.dumps(value).encode())
    except OSError as exc:
        logger.warning("could not write cache entry %s (%s)", path.name, exc)
