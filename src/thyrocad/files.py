"""Files: atomic writes (temporary file beside the target, flushed, then `os.replace`d over it)
and where thyrocad keeps its caches (`$THYROCAD_HOME`, default `~/.cache/thyrocad`)."""

from __future__ import annotations

import contextlib
import contextvars
import json
import math
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from thyrocad.errors import OutputExistsError


@contextlib.contextmanager
def atomic_writer(path: Path) -> Iterator[BinaryIO]:
    """Yield a binary file; on success it replaces `path`, on any error it is removed.

    The target is never seen half-written; a crash leaves at most a stray `.tmp` file. Files get
    the usual permissions (umask), unlike `tempfile.mkstemp`'s 0600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex[:12]}.tmp"
    try:
        with open(tmp, "xb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


_HOME: contextvars.ContextVar[Path | None] = contextvars.ContextVar("thyrocad_home", default=None)


def thyrocad_home() -> Path:
    """The folder of thyrocad's caches: the one set by `using_home`, else `$THYROCAD_HOME`,
    else `~/.cache/thyrocad`."""
    chosen = _HOME.get()
    if chosen is not None:
        return chosen
    return Path(os.environ.get("THYROCAD_HOME") or Path.home() / ".cache" / "thyrocad")


@contextlib.contextmanager
def using_home(path: str | Path | None) -> Iterator[None]:
    """Within the block (and this thread or task), `thyrocad_home()` is `path` (None: as
    before); the environment is left alone. Worker processes get their driver's folder so."""
    if path is None:
        yield
        return
    token = _HOME.set(Path(path))
    try:
        yield
    finally:
        _HOME.reset(token)


def write_text_atomic(path: Path, text: str) -> None:
    """Write `text` (UTF-8) so that a crash leaves either the old file or the new one."""
    with atomic_writer(path) as fh:
        fh.write(text.encode("utf-8"))


def strict_json(obj: Any, indent: int | None = 1) -> str:
    """`obj` as strict JSON: NaN and infinities become null (JSON has no NaN)."""
    return json.dumps(_finite(obj), indent=indent, allow_nan=False)


def _finite(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def claim_output_dir(path: str | Path, kind: str, *, force: bool = False) -> Path:
    """Make `path` the output folder of a `kind` of result ("bundle", "preprocess", ...).

    An absent or empty folder is created and marked (`.thyrocad-<kind>`); a folder marked
    for the same kind is reused (a re-run, a resume). Any other non-empty folder raises
    `OutputExistsError` unless `force`, so nobody's files are overwritten silently."""
    folder = Path(path)
    marker = folder / f".thyrocad-{kind}"
    if folder.exists() and not folder.is_dir():
        raise OutputExistsError(f"{folder} is a file, not a folder; choose another output folder")
    if folder.is_dir() and not marker.exists() and any(folder.iterdir()) and not force:
        raise OutputExistsError(
            f"{folder} already holds files that are not a thyrocad {kind}; choose another "
            "output folder, or pass --force to write into it anyway"
        )
    folder.mkdir(parents=True, exist_ok=True)
    marker.touch()
    return folder
