"""Where thyrocad keeps its caches: `$THYROCAD_HOME`, default `~/.cache/thyrocad`."""

import os
from pathlib import Path


def thyrocad_home() -> Path:
    """`$THYROCAD_HOME`, or `~/.cache/thyrocad`."""
    return Path(os.environ.get("THYROCAD_HOME") or Path.home() / ".cache" / "thyrocad")
