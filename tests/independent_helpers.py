"""The independently written phantom (benchmarks/independent_phantom.py), loaded once for the
locator tests: a phantom written without reading thyrocad's own."""

from __future__ import annotations

import functools
import importlib.util
import sys
from pathlib import Path

INDEPENDENT = Path(__file__).resolve().parents[1] / "benchmarks" / "independent_phantom.py"


@functools.cache
def independent_phantom():
    """The module, executed once per process."""
    spec = importlib.util.spec_from_file_location("independent_phantom", INDEPENDENT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks itself up there
    spec.loader.exec_module(module)
    return module
