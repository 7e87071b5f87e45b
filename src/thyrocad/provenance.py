"""What a result depends on: library versions and machine, recorded with every output."""

from __future__ import annotations

import importlib.metadata
import os
import platform

import thyrocad

_LIBRARIES = (
    "torch",
    "torchvision",
    "timm",
    "numpy",
    "scipy",
    "scikit-learn",
    "opencv-python-headless",
    "pydicom",
    "pylibjpeg",
    "pylibjpeg-libjpeg",
    "pylibjpeg-openjpeg",
    "pylibjpeg-rle",
)


def library_versions() -> dict[str, str]:
    """thyrocad's version and each installed dependency's version ('absent' if missing)."""
    out = {"thyrocad": thyrocad.__version__, "python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


def machine_description() -> dict[str, str]:
    """A short, non-identifying description of the machine (no host name)."""
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": str(os.cpu_count()),
    }


def stamped(record: dict) -> dict:
    """`record` plus the machine and library versions, as every saved result carries them."""
    return {**record, "machine": machine_description(), "versions": library_versions()}
