"""The header of an NM DICOM object, read without its pixels, as plain Python values (`Header`).

`read_header` parses with `stop_before_pixels=True`, so nothing is allocated from declared
sizes; every pydicom failure becomes a `thyrocad.errors.InputError` subclass and pydicom's
warnings (which may quote header values) are kept out of the output. Views are read from View
Code Sequences (CID 26 codes, their SNOMED-RT forms, or a code meaning or value such as "ANT").
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import UID

from thyrocad.errors import (
    FileAccessError,
    InconsistentHeaderError,
    InputError,
    MalformedDicomError,
    NotDicomError,
    TruncatedFileError,
)
from thyrocad.io.dicom_codes import LEGACY_VIEW_CODES, VIEW_CODES
from thyrocad.io.privacy import redact
from thyrocad.study import View
from thyrocad.warning_filters import filtered

logger = logging.getLogger(__name__)
T = TypeVar("T")

ENERGY_WINDOW_VECTOR = 0x00540010
DETECTOR_VECTOR = 0x00540020
_ANTERIOR_WORDS = frozenset({"ANT", "ANTERIOR", "VENTRAL"})
_POSTERIOR_WORDS = frozenset({"POST", "POSTERIOR", "DORSAL"})
_OTHER_PROJECTION_WORDS = frozenset({"OBLIQUE", "LAO", "RAO", "LPO", "RPO", "LAT", "LATERAL"})

MAX_TEXT = 64  # longest LO/CS/SH value the reader copies out
UNREADABLE = "<unreadable>"


@dataclass(frozen=True)
class Header:
    """The attributes the reader needs, copied out of the dataset as plain Python values."""

    path: Path
    sop_class: UID
    modality: str
    transfer_syntax: UID
    image_type: tuple[str, ...]
    rows: int
    columns: int
    frames: int
    bits_allocated: int
    bits_stored: int
    signed: bool
    samples_per_pixel: int
    photometric: str
    frame_increment_pointer: tuple[int, ...]
    detector_vector: tuple[int, ...] | None
    energy_window_vector: tuple[int, ...] | None
    number_of_detectors: int | None
    number_of_energy_windows: int | None
    detector_views: tuple[View, ...]
    energy_windows: tuple[str, ...]
    top_level_view: View | None
    pixel_spacing: tuple[float, float] | None
    frame_duration_ms: float | None
    rescale: tuple[float, float]
    manufacturer: str
    model: str
    radionuclide: str
    collimator: str  # CollimatorType of the first detector (PARA, PINH, ...), "" if absent
    zoom: float | None  # ZoomFactor of the first detector (the larger of its two values)


@contextmanager
def translated(error: type[InputError], what: str) -> Iterator[None]:
    """Re-raise any library exception as `error`; our own InputErrors pass through.

    pylibjpeg-rle (Rust, via pyo3) reports a corrupt stream with a `PanicException`, which
    derives from BaseException: it is caught too; only interpreter-control exceptions pass.
    """
    try:
        yield
    except (InputError, KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except BaseException as exc:  # decoders raise many types, Rust ones even a BaseException
        raise error(f"{what}: {type(exc).__name__}: {redact(str(exc))}") from exc


@contextmanager
def quiet_pydicom() -> Iterator[None]:
    """Keep pydicom's parse warnings out of the output: they may quote header values."""
    with filtered("always", record=True) as caught:
        yield
    if caught:
        logger.debug(
            "pydicom emitted %d parse warning(s) (not shown: may quote values)", len(caught)
        )


def dcmread(path: Path, *, stop_before_pixels: bool) -> Dataset:
    """`pydicom.dcmread` with every failure mapped to an `InputError` subclass."""
    try:
        with quiet_pydicom():
            return pydicom.dcmread(path, stop_before_pixels=stop_before_pixels)
    except pydicom.errors.InvalidDicomError as exc:
        raise NotDicomError(
            f"{path}: not a DICOM Part 10 file (no 'DICM' after the 128-byte preamble); "
            "export it as a DICOM file with file meta information"
        ) from exc
    except EOFError as exc:
        raise TruncatedFileError(f"{path}: the file ends inside the DICOM header") from exc
    except PermissionError as exc:
        raise FileAccessError(f"{path}: cannot read: permission denied") from exc
    except Exception as exc:  # pydicom raises many types on corrupt input
        raise MalformedDicomError(
            f"{path}: cannot parse the DICOM structure: {type(exc).__name__}: {redact(str(exc))}"
        ) from exc


def read_header(path: Path) -> Header:
    """Parse the header only (no pixel data) and copy out what the reader needs."""
    ds = dcmread(path, stop_before_pixels=True)
    with quiet_pydicom(), translated(MalformedDicomError, f"{path}: unreadable DICOM header"):
        return _header(ds, path)


def _required_int(ds: Dataset, keyword: str, path: Path) -> int:
    if ds.get(keyword) is None:
        raise MalformedDicomError(
            f"{path}: required attribute {keyword} is missing (the file may be truncated)"
        )
    return int(ds[keyword].value)


def _optional_int(ds: Dataset, keyword: str) -> int | None:
    value = ds.get(keyword)
    return None if value is None or value == "" else int(value)


def _int_tuple(ds: Dataset, keyword: str) -> tuple[int, ...] | None:
    values = _as_list(ds.get(keyword))
    return tuple(int(v) for v in values) if values else None


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword)
    return "" if value is None else _clean(str(value))


def _clean(text: str) -> str:
    """`text` stripped; UNREADABLE when it cannot be one text value (control characters, or
    longer than any text VR allows): a corrupt element length may have swallowed the
    elements after it, patient name and ID included, and messages quote these values."""
    text = text.strip()
    if len(text) > MAX_TEXT or not text.isprintable():
        return UNREADABLE
    return text


def _header(ds: Dataset, path: Path) -> Header:
    meta = getattr(ds, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    if not syntax:
        raise MalformedDicomError(f"{path}: the file meta information has no TransferSyntaxUID")
    frame_increment = _int_tuple(ds, "FrameIncrementPointer") or ()
    return Header(
        path=path,
        sop_class=UID(str(ds.get("SOPClassUID", "") or meta.get("MediaStorageSOPClassUID", ""))),
        modality=_text(ds, "Modality").upper(),
        transfer_syntax=UID(str(syntax)),
        image_type=tuple(_clean(str(v)).upper() for v in _as_list(ds.get("ImageType"))),
        rows=_required_int(ds, "Rows", path),
        columns=_required_int(ds, "Columns", path),
        frames=_number_of_frames(ds, path),
        bits_allocated=_required_int(ds, "BitsAllocated", path),
        bits_stored=_optional_int(ds, "BitsStored") or _required_int(ds, "BitsAllocated", path),
        signed=_optional_int(ds, "PixelRepresentation") == 1,
        samples_per_pixel=_optional_int(ds, "SamplesPerPixel") or 1,
        photometric=_text(ds, "PhotometricInterpretation").upper(),
        frame_increment_pointer=frame_increment,
        detector_vector=_int_tuple(ds, "DetectorVector"),
        energy_window_vector=_int_tuple(ds, "EnergyWindowVector"),
        number_of_detectors=_optional_int(ds, "NumberOfDetectors"),
        number_of_energy_windows=_optional_int(ds, "NumberOfEnergyWindows"),
        detector_views=tuple(
            _sequence_view(item) for item in _as_list(ds.get("DetectorInformationSequence"))
        ),
        energy_windows=tuple(
            _energy_window_text(item)
            for item in _as_list(ds.get("EnergyWindowInformationSequence"))
        ),
        top_level_view=_sequence_view(ds) if "ViewCodeSequence" in ds else None,
        pixel_spacing=_pixel_spacing(ds),
        frame_duration_ms=_positive_float(ds.get("ActualFrameDuration")),
        rescale=_rescale(ds, path),
        manufacturer=_text(ds, "Manufacturer"),
        model=_text(ds, "ManufacturerModelName"),
        radionuclide=_radionuclide(ds),
        collimator=_first_detector(ds, _text, "CollimatorType").upper(),
        zoom=_first_detector(ds, _zoom, "ZoomFactor"),
    )


def _as_list(value: object) -> list:
    """A multi-valued element or sequence as a list; a single value as a 1-item list."""
    if value is None or value == "":
        return []
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return list(value)
    return [value]


def _number_of_frames(ds: Dataset, path: Path) -> int:
    frames = _optional_int(ds, "NumberOfFrames")
    if frames is None:
        return 1
    if frames < 1:
        raise InconsistentHeaderError(
            f"{path}: NumberOfFrames is {frames}; it must be at least 1 (the header is corrupt)"
        )
    return frames


def _sequence_view(item: Dataset) -> View:
    """The view coded in `item`'s View Code Sequence (UNKNOWN when absent or unrecognised)."""
    codes = _as_list(item.get("ViewCodeSequence"))
    if not codes:
        return View.UNKNOWN
    code = codes[0]
    return view_from_code(
        _text(code, "CodeValue"), _text(code, "CodingSchemeDesignator"), _text(code, "CodeMeaning")
    )


def view_from_code(value: str, scheme: str, meaning: str) -> View:
    """The view a projection code names: CID 26 or SNOMED-RT code, else its meaning/value text."""
    for view, (code_value, code_scheme, _) in VIEW_CODES.items():
        if (value, scheme) == (code_value, code_scheme):
            return view
    if (value, scheme) in LEGACY_VIEW_CODES:
        return LEGACY_VIEW_CODES[(value, scheme)]
    for text in (meaning, value):
        view = _view_from_text(text)
        if view is not View.UNKNOWN:
            return view
    return View.UNKNOWN


def _view_from_text(text: str) -> View:
    """ANTERIOR / POSTERIOR when `text` names exactly one of them and no oblique/lateral view."""
    words = set(re.findall(r"[A-Z]+", text.upper()))
    if words & _OTHER_PROJECTION_WORDS:
        return View.UNKNOWN
    anterior, posterior = bool(words & _ANTERIOR_WORDS), bool(words & _POSTERIOR_WORDS)
    if anterior != posterior:
        return View.ANTERIOR if anterior else View.POSTERIOR
    return View.UNKNOWN


def _energy_window_text(item: Dataset) -> str:
    ranges = _as_list(item.get("EnergyWindowRangeSequence"))
    if not ranges:
        return _text(item, "EnergyWindowName")
    low = _positive_float(ranges[0].get("EnergyWindowLowerLimit"))
    high = _positive_float(ranges[0].get("EnergyWindowUpperLimit"))
    if low is None or high is None:
        return _text(item, "EnergyWindowName")
    return f"{low:.1f}-{high:.1f} keV"


def _radionuclide(ds: Dataset) -> str:
    for item in _as_list(ds.get("RadiopharmaceuticalInformationSequence")):
        for code in _as_list(item.get("RadionuclideCodeSequence")):
            meaning = _text(code, "CodeMeaning")
            if meaning:
                return meaning
    return ""


def _first_detector(ds: Dataset, read: Callable[[Dataset, str], T], keyword: str) -> T:
    """`read(item, keyword)` of the first Detector Information item (or of `ds` without one)."""
    items = _as_list(ds.get("DetectorInformationSequence"))
    return read(items[0] if items else ds, keyword)


def _zoom(item: Dataset, keyword: str) -> float | None:
    values = [_positive_float(v) for v in _as_list(item.get(keyword))]
    values = [v for v in values if v is not None]
    return max(values) if values else None


def _positive_float(value: object) -> float | None:
    if value is None or value == "":
        return None
    number = float(value)
    return number if math.isfinite(number) and number > 0 else None


def _pixel_spacing(ds: Dataset) -> tuple[float, float] | None:
    values = _as_list(ds.get("PixelSpacing"))
    if len(values) != 2:
        return None
    row, col = (_positive_float(v) for v in values)
    return None if row is None or col is None else (row, col)


def _rescale(ds: Dataset, path: Path) -> tuple[float, float]:
    slope = ds.get("RescaleSlope")
    intercept = ds.get("RescaleIntercept")
    slope = 1.0 if slope is None or slope == "" else float(slope)
    intercept = 0.0 if intercept is None or intercept == "" else float(intercept)
    if not (math.isfinite(slope) and math.isfinite(intercept)) or slope == 0:
        raise InconsistentHeaderError(
            f"{path}: RescaleSlope {slope} / RescaleIntercept {intercept} cannot map stored "
            "values to counts"
        )
    return slope, intercept
