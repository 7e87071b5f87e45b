"""Read planar nuclear-medicine DICOM objects into a `Study`.

What is read: one 2-D float32 count image per selected frame (stored value x Rescale Slope +
Rescale Intercept), Pixel Spacing (row, column) in mm, Actual Frame Duration in ms, and the
non-identifying metadata listed in `METADATA_KEYS`. Patient names, IDs, dates and UIDs are
never read into a `Study`, a log record or an error message.

Views: frame i belongs to detector `DetectorVector[i]`, whose item in the Detector Information
Sequence carries the view in its View Code Sequence (CID 26 codes, their SNOMED-RT forms, or
failing those a code meaning or value such as "ANT", "anterior", "R VENTRAL L FRUEH", "POST",
"DORSAL"). A single-frame object may state its view in a top-level View Code Sequence. A view
that cannot be determined is `View.UNKNOWN` and logged. When frames come from several energy
windows, only one window is kept (the first, unless the caller names another).

Accepted objects: Modality NM in NM Image Storage (current or retired) or a Secondary Capture
SOP class. Secondary Capture with Modality NM is accepted because some systems store planar
counts that way; its Pixel Spacing is read when present but flagged in `spacing_note`, since
Secondary Capture does not guarantee geometry. The WG04 `NM1_*` files are such objects, but
they are 1024x256 whole-body scans: with `planar_only=True` (what `thyrocad.io.read.read_study`
uses) they are refused with `NotPlanarError` unless `whole_body=True` (what
`thyrocad.intake.load_study` asks for: it then cuts out the neck field); `planar_only=False`
decodes them too.

Refused (`thyrocad.io.dicom_checks`), each with its own `thyrocad.errors.InputError` subclass.
First, from the header alone
(read with `stop_before_pixels=True`, so nothing is allocated from its sizes): other
modalities or SOP classes (PET, CT, ...), SPECT (ImageType TOMO, frames indexed by SliceVector
/ RotationVector / AngularViewVector), whole-body sweeps (ImageType WHOLE BODY, or sides
differing by more than `MAX_PLANAR_ASPECT`; accepted with `whole_body=True` when the long
side runs down the rows), dynamic and gated series (these four only with
`planar_only=True`), absurd sizes (`MAX_SIDE`, `MAX_FRAMES`, `MAX_VALUES`, `MAX_FILE_BYTES`;
8 or 16 bits only), colour pixels, headers that contradict themselves (NumberOfFrames vs
DetectorVector / EnergyWindowVector / detectors x windows), and transfer syntaxes no installed
decoder handles. Then, before decoding: missing or empty Pixel Data, truncated files, and pixel
data that holds more or fewer frames than NumberOfFrames (native length; offset table,
fragments and codestreams of compressed data), since pydicom would silently drop or pad
frames (PITFALLS 1.3). Last, corrupt compressed streams; any warning pydicom raises while
decoding is an error too.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from pydicom.pixels import pixel_array as decode_pixels
from pydicom.uid import RLELossless

from thyrocad.errors import (
    FileAccessError,
    ImageSizeError,
    InconsistentHeaderError,
    MalformedDicomError,
    PixelDecodeError,
)
from thyrocad.io.dicom_checks import (
    SECONDARY_CAPTURE_CLASSES,
    check_object,
    check_pixel_data,
    check_planar_aspect,
)
from thyrocad.io.dicom_header import (
    Header,
    dcmread,
    quiet_pydicom,
    read_header,
    translated,
    view_from_code,
)
from thyrocad.study import Study, View, ViewImage
from thyrocad.warning_filters import filtered

__all__ = [
    "METADATA_KEYS",
    "check_input_file",
    "check_planar_aspect",
    "read_dicom",
    "view_from_code",
]

logger = logging.getLogger(__name__)

# The only metadata keys a Study may carry (DICOM and image exports alike).
METADATA_KEYS: tuple[str, ...] = (
    "source_format",
    "modality",
    "sop_class",
    "transfer_syntax",
    "manufacturer",
    "model",
    "radionuclide",
    "energy_window",
    "image_type",
    "rows",
    "columns",
    "frames",
    "bits_allocated",
    "bits_stored",
    "signed",
    "photometric",
    "rescale",
    "collimator",
    "zoom",
    "image_mode",
)
MAX_FILE_BYTES = 256 << 20

# pydicom's own numpy RLE decoder reports corrupt streams as exceptions; pylibjpeg-rle panics
# (and prints a Rust backtrace) on some of them.
_PREFERRED_PLUGINS = {RLELossless: "pydicom"}


def check_input_file(path: Path) -> None:
    """Refuse a path that is not a readable regular file of plausible size."""
    if not path.is_file():
        raise FileAccessError(f"{path}: no such file (or it is a folder)")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise ImageSizeError(
            f"{path}: {size} bytes is far larger than a planar NM file "
            f"(limit {MAX_FILE_BYTES} bytes)"
        )


def read_dicom(
    path: str | Path,
    *,
    planar_only: bool = True,
    whole_body: bool = False,
    energy_window: int | None = None,
) -> Study:
    """Read one planar NM DICOM file into a `Study` (see the module docstring for the rules).

    `whole_body=True` accepts whole-body sweeps (one full frame per view). `planar_only=False`
    also decodes SPECT, dynamic and gated NM objects, one UNKNOWN-or-coded view per frame.
    `energy_window` picks the window (1-based, as in EnergyWindowVector) when the frames come
    from several; by default the first is kept.
    Raises a `thyrocad.errors.InputError` subclass for anything that cannot be used.
    """
    path = Path(path)
    check_input_file(path)
    header = read_header(path)
    check_object(header, planar_only, whole_body)
    stored = _decode(path, header)
    keep = _frames_to_keep(header, energy_window)
    slope, intercept = header.rescale
    images = tuple(
        ViewImage(
            _frame_view(header, i, path),
            (stored[i].astype(np.float64) * slope + intercept).astype(np.float32),
        )
        for i in keep
    )
    spacing, note = _spacing(header)
    return Study(
        images=images,
        pixel_spacing_mm=spacing,
        frame_duration_ms=header.frame_duration_ms,
        source=str(path),
        spacing_note=note,
        metadata=_metadata(header, keep),
    )


def _decode(path: Path, header: Header) -> np.ndarray:
    """Stored values as (frames, rows, columns), after checking the pixel data is all there."""
    ds = dcmread(path, stop_before_pixels=False)
    with quiet_pydicom(), translated(MalformedDicomError, f"{path}: unreadable Pixel Data"):
        check_pixel_data(ds, header, path)
    syntax = header.transfer_syntax
    with (
        translated(PixelDecodeError, f"{path}: pixel data cannot be decoded"),
        filtered("always", UserWarning, record=True) as caught,
    ):
        stored = decode_pixels(ds, decoding_plugin=_PREFERRED_PLUGINS.get(syntax, ""))
        # pydicom only warns about data that does not fit the header (PITFALLS 1.3): refuse
        # it. Recorded, not raised: an error filter would reach other threads' warnings too.
        ours = [w for w in caught if "pydicom" in w.filename]  # not another library's
        refusal = next((w for w in ours if issubclass(w.category, UserWarning)), None)
        if refusal is not None:
            raise refusal.category(str(refusal.message))
    stored = stored.reshape((1, *stored.shape)) if stored.ndim == 2 else stored
    if stored.shape != (header.frames, header.rows, header.columns):
        raise InconsistentHeaderError(
            f"{path}: decoded {stored.shape} but the header declares {header.frames} frame(s) "
            f"of {header.rows}x{header.columns}"
        )
    return stored


def _frames_to_keep(header: Header, energy_window: int | None) -> list[int]:
    """Indices of the frames of one energy window (all frames when there is one window)."""
    vector = header.energy_window_vector
    windows = sorted(set(vector)) if vector else [1]
    if energy_window is None:
        energy_window = windows[0]
        if len(windows) > 1:
            logger.warning(
                "frames come from energy windows %s; keeping window %d only",
                windows,
                energy_window,
            )
    if energy_window not in windows:
        raise InconsistentHeaderError(
            f"energy window {energy_window} was asked for but the file has windows {windows}"
        )
    if not vector:
        return list(range(header.frames))
    return [i for i, w in enumerate(vector) if w == energy_window]


def _frame_view(header: Header, i: int, path: Path) -> View:
    """View of frame i: DetectorVector -> Detector Information item -> View Code Sequence."""
    view, why = _coded_frame_view(header, i)
    if view is View.UNKNOWN:
        logger.warning("%s: frame %d view unknown (%s)", path, i + 1, why)
    return view


def _coded_frame_view(header: Header, i: int) -> tuple[View, str]:
    if header.detector_vector and header.detector_views:
        detector = header.detector_vector[i]
        if detector > len(header.detector_views):
            return View.UNKNOWN, f"detector {detector} has no Detector Information item"
        view = header.detector_views[detector - 1]
        return view, f"detector {detector} has no recognised View Code"
    if header.top_level_view is not None and header.frames == 1:
        return header.top_level_view, "the View Code is not a recognised projection"
    return View.UNKNOWN, "no View Code Sequence for it"


def _spacing(header: Header) -> tuple[tuple[float, float] | None, str]:
    if header.pixel_spacing is None:
        return None, "the DICOM header has no usable PixelSpacing"
    if header.sop_class in SECONDARY_CAPTURE_CLASSES:
        return header.pixel_spacing, "PixelSpacing of a Secondary Capture object: not guaranteed"
    return header.pixel_spacing, ""


def _metadata(header: Header, keep: list[int]) -> dict[str, str]:
    window = ""
    if header.energy_window_vector and header.energy_windows:
        index = header.energy_window_vector[keep[0]] - 1
        window = header.energy_windows[index] if index < len(header.energy_windows) else ""
    elif len(header.energy_windows) == 1:
        window = header.energy_windows[0]
    slope, intercept = header.rescale
    values = {
        "source_format": "DICOM",
        "modality": header.modality,
        "sop_class": header.sop_class.name,
        "transfer_syntax": header.transfer_syntax.name,
        "manufacturer": header.manufacturer,
        "model": header.model,
        "radionuclide": header.radionuclide,
        "energy_window": window,
        "image_type": "\\".join(header.image_type),
        "rows": str(header.rows),
        "columns": str(header.columns),
        "frames": str(header.frames),
        "bits_allocated": str(header.bits_allocated),
        "bits_stored": str(header.bits_stored),
        "signed": str(header.signed).lower(),
        "photometric": header.photometric,
        "rescale": f"slope {slope:g}, intercept {intercept:g}",
        "collimator": header.collimator,
        "zoom": "" if header.zoom is None else f"{header.zoom:g}",
    }
    return {k: v for k, v in values.items() if v}
