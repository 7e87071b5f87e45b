"""THE entry point for reading a scan: `read_study(path)` sniffs the content and dispatches.

DICOM (the 'DICM' marker after the 128-byte preamble) goes to `thyrocad.dicom.read_dicom`
with `planar_only=True`; PNG and JPEG exports (by their magic bytes, never the file name)
go to `read_image_export`. An export is one view of counts as exported: 8- or 16-bit gray
values as stored, colour images converted to gray with the ITU-R BT.601 luma weights (kept as
float, not rounded). It carries no pixel spacing, so `pixel_spacing_mm` is None and
`spacing_note` says so.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image

from thyrocad.dicom import check_input_file, check_planar_aspect, read_dicom
from thyrocad.errors import (
    FileAccessError,
    ImageSizeError,
    InputError,
    NotDicomError,
    PixelDecodeError,
    TruncatedFileError,
    UnsupportedPixelFormatError,
    ViewConflictError,
)
from thyrocad.study import Study, View, ViewImage

logger = logging.getLogger(__name__)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"
DICOM_MAGIC_OFFSET = 128
MAX_EXPORT_SIDE = 4096
LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R BT.601
EXPORT_SPACING_NOTE = "image export (PNG/JPEG) carries no pixel spacing"

# Pillow modes whose values are gray levels as stored (8-bit, 16-bit, 32-bit integer).
_GRAY_MODES = frozenset({"L", "I;16", "I;16B", "I;16L", "I"})


def sniff(path: str | Path) -> str:
    """The format of `path` from its content: "DICOM", "PNG" or "JPEG"; NotDicomError otherwise."""
    path = Path(path)
    head = _head(path, DICOM_MAGIC_OFFSET + 4)
    if head[DICOM_MAGIC_OFFSET : DICOM_MAGIC_OFFSET + 4] == b"DICM":
        return "DICOM"
    if head.startswith(PNG_MAGIC):
        return "PNG"
    if head.startswith(JPEG_MAGIC):
        return "JPEG"
    what = "an empty file" if not head else "neither DICOM (no 'DICM' at byte 128) nor PNG/JPEG"
    raise NotDicomError(
        f"{path}: {what}; give a DICOM Part 10 file or a PNG/JPEG export of one view"
    )


def read_study(path: str | Path, view: View | None = None) -> Study:
    """Read a DICOM file or a PNG/JPEG export into a `Study`, choosing the reader by content.

    `view` names the view of a single-view input that does not state one (an export, or a
    DICOM frame without a view code); it must agree with the view a file states, and cannot
    apply to a file with several views (ViewConflictError). Every failure is an `InputError`.
    """
    path = Path(path)
    kind = sniff(path)
    if kind == "DICOM":
        return _with_view(read_dicom(path), view, path)
    return read_image_export(path, view=view or View.UNKNOWN)


def read_image_export(
    path: str | Path, view: View = View.UNKNOWN, *, planar_only: bool = True
) -> Study:
    """Read a PNG/JPEG export of one planar view; see the module docstring for the rules."""
    path = Path(path)
    check_input_file(path)
    with _pillow_errors(path), Image.open(path) as image:
        fmt, mode = image.format, image.mode
        _check_export_size(image.size, path, planar_only)
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


def _head(path: Path, size: int) -> bytes:
    check_input_file(path)
    try:
        with path.open("rb") as handle:
            return handle.read(size)
    except OSError as exc:
        raise FileAccessError(f"{path}: cannot read: {exc.strerror or exc}") from exc


def _with_view(study: Study, view: View | None, path: Path) -> Study:
    """`study` with its single unknown view set to `view` (checked against what it states)."""
    if view is None or view is View.UNKNOWN or study.views == (view,):
        return study
    if study.views != (View.UNKNOWN,):
        stated = "+".join(v.value for v in study.views)
        raise ViewConflictError(
            f"{path}: the caller says {view.value} but the file holds {stated}; "
            "drop the view argument for this file"
        )
    image = study.images[0]
    return Study(
        images=(ViewImage(view, image.counts),),
        pixel_spacing_mm=study.pixel_spacing_mm,
        frame_duration_ms=study.frame_duration_ms,
        source=study.source,
        spacing_note=study.spacing_note,
        metadata=study.metadata,
    )


@contextmanager
def _pillow_errors(path: Path) -> Iterator[None]:
    """Map Pillow's errors while reading `path` to InputError subclasses."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
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


def _check_export_size(size: tuple[int, int], path: Path, planar_only: bool) -> None:
    columns, rows = size
    if not (1 <= rows <= MAX_EXPORT_SIDE and 1 <= columns <= MAX_EXPORT_SIDE):
        raise ImageSizeError(
            f"{path}: {rows}x{columns} pixels is outside 1-{MAX_EXPORT_SIDE} per side; "
            "export one view at its acquired size"
        )
    if planar_only:
        check_planar_aspect(rows, columns, str(path))


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
