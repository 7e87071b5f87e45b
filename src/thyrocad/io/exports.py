"""PNG and JPEG exports of one planar view (as the paper's pipeline started from).

An export is one view of counts as exported: 8- or 16-bit gray values as stored, colour images
converted to gray with the ITU-R BT.601 luma weights (kept as float, not rounded). It carries
no pixel spacing, so `pixel_spacing_mm` is None and `spacing_note` says so.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image

from thyrocad.errors import (
    ImageSizeError,
    InputError,
    PixelDecodeError,
    TruncatedFileError,
    UnsupportedPixelFormatError,
)
from thyrocad.io.dicom import check_input_file, check_planar_aspect
from thyrocad.study import Study, View, ViewImage
from thyrocad.warning_filters import filtered

logger = logging.getLogger(__name__)

MAX_EXPORT_SIDE = 4096
LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R BT.601
EXPORT_SPACING_NOTE = "image export (PNG/JPEG) carries no pixel spacing"

# Pillow modes whose values are gray levels as stored (8-bit, 16-bit, 32-bit integer).
_GRAY_MODES = frozenset({"L", "I;16", "I;16B", "I;16L", "I"})


def read_image_export(
    path: str | Path,
    view: View = View.UNKNOWN,
    *,
    planar_only: bool = True,
    whole_body: bool = False,
) -> Study:
    """Read a PNG/JPEG export of one planar view; see the module docstring for the rules.

    `whole_body=True` accepts a long, head-to-foot export (a whole-body sweep)."""
    path = Path(path)
    check_input_file(path)
    with _pillow_errors(path), Image.open(path) as image:
        fmt, mode = image.format, image.mode
        _check_export_size(image.size, path, planar_only, whole_body)
        image.load()
        counts = _gray(image, path)
    return Study(
        images=(ViewImage(view, counts),),
        pixel_spacing_mm=None,
        source=str(path),
        spacing_note=EXPORT_SPACING_NOTE,
        metadata={
            "source_format": fmt or "",
            "image_mode": mode,
            "rows": str(counts.shape[0]),
            "columns": str(counts.shape[1]),
        },
    )


@contextmanager
def _pillow_errors(path: Path) -> Iterator[None]:
    """Map Pillow's errors while reading `path` to InputError subclasses."""
    try:
        with filtered("error", Image.DecompressionBombWarning):  # only Pillow raises it
            yield
    except InputError:
        raise
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise ImageSizeError(f"{path}: image is far too large for a planar view") from exc
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError... on bad files
        if "truncated" in str(exc).lower():
            raise TruncatedFileError(f"{path}: the image file is truncated") from exc
        raise PixelDecodeError(
            f"{path}: the image cannot be decoded: {type(exc).__name__}: {exc}"
        ) from exc


def _check_export_size(
    size: tuple[int, int], path: Path, planar_only: bool, whole_body: bool
) -> None:
    columns, rows = size
    if not (1 <= rows <= MAX_EXPORT_SIDE and 1 <= columns <= MAX_EXPORT_SIDE):
        raise ImageSizeError(
            f"{path}: {rows}x{columns} pixels is outside 1-{MAX_EXPORT_SIDE} per side; "
            "export one view at its acquired size"
        )
    if planar_only:
        check_planar_aspect(rows, columns, str(path), whole_body)


def _gray(image: Image.Image, path: Path) -> np.ndarray:
    """The image as 2-D float32 gray values (colour converted with BT.601 luma weights)."""
    if image.mode in _GRAY_MODES:
        return np.asarray(image).astype(np.float32)
    if image.mode in ("LA", "La", "1"):
        return np.asarray(image.convert("L")).astype(np.float32)
    if image.mode in ("RGB", "RGBA", "RGBa", "RGBX", "P", "PA", "CMYK", "YCbCr"):
        rgb = np.asarray(image.convert("RGB")).astype(np.float32)
        logger.debug("colour %s export converted to gray (BT.601 luma)", image.mode)
        return rgb @ LUMA_WEIGHTS
    raise UnsupportedPixelFormatError(
        f"{path}: Pillow mode {image.mode} is not a gray or colour export; save as 8/16-bit PNG"
    )
