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
they are 1024x256 whole-body scans: with `planar_only=True` (what `thyrocad.reader.read_study`
uses) they are refused with `NotPlanarError`; `planar_only=False` decodes them.

Refused, each with its own `thyrocad.errors.InputError` subclass. First, from the header alone
(read with `stop_before_pixels=True`, so nothing is allocated from its sizes): other
modalities or SOP classes (PET, CT, ...), SPECT (ImageType TOMO, frames indexed by SliceVector
/ RotationVector / AngularViewVector), whole-body sweeps (ImageType WHOLE BODY, or sides
differing by more than `MAX_PLANAR_ASPECT`), dynamic and gated series (these four only with
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
import math
import re
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.encaps import generate_fragments, parse_basic_offsets
from pydicom.pixels import get_decoder
from pydicom.pixels import pixel_array as decode_pixels
from pydicom.uid import UID, RLELossless

from thyrocad.dicom_codes import LEGACY_VIEW_CODES, NM_IMAGE_STORAGE, VIEW_CODES
from thyrocad.errors import (
    FileAccessError,
    ImageSizeError,
    InconsistentHeaderError,
    InputError,
    MalformedDicomError,
    NoPixelDataError,
    NotDicomError,
    NotNuclearMedicineError,
    NotPlanarError,
    PixelDecodeError,
    TruncatedFileError,
    UnsupportedPixelFormatError,
    UnsupportedTransferSyntaxError,
)
from thyrocad.study import Study, View, ViewImage

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
    "image_mode",
)

MAX_SIDE = 2048  # rows or columns
MAX_FRAMES = 256
MAX_VALUES = 1 << 24  # rows x columns x frames: 64 MiB as float32
MAX_FILE_BYTES = 256 << 20
MAX_PLANAR_ASPECT = 2.0  # longer side / shorter side of a planar neck view

SECONDARY_CAPTURE_CLASSES = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture Image Storage
        "1.2.840.10008.5.1.4.1.1.7.2",  # Multi-frame Grayscale Byte SC
        "1.2.840.10008.5.1.4.1.1.7.3",  # Multi-frame Grayscale Word SC
    }
)
NM_CLASSES = frozenset({NM_IMAGE_STORAGE, "1.2.840.10008.5.1.4.1.1.5"})  # current, retired

# pydicom's own numpy RLE decoder reports corrupt streams as exceptions; pylibjpeg-rle panics
# (and prints a Rust backtrace) on some of them.
_PREFERRED_PLUGINS = {RLELossless: "pydicom"}

ENERGY_WINDOW_VECTOR = 0x00540010
DETECTOR_VECTOR = 0x00540020
PLANAR_VECTORS = frozenset({ENERGY_WINDOW_VECTOR, DETECTOR_VECTOR})
SPECT_VECTORS = frozenset({0x00540050, 0x00540080, 0x00540090})  # rotation, slice, angular view
SPECT_IMAGE_TYPES = frozenset({"TOMO", "GATED TOMO", "RECON TOMO", "RECON GATED TOMO"})
NON_STATIC_IMAGE_TYPES = frozenset({"DYNAMIC", "GATED"})

_ANTERIOR_WORDS = frozenset({"ANT", "ANTERIOR", "VENTRAL"})
_POSTERIOR_WORDS = frozenset({"POST", "POSTERIOR", "DORSAL"})
_OTHER_PROJECTION_WORDS = frozenset({"OBLIQUE", "LAO", "RAO", "LPO", "RPO", "LAT", "LATERAL"})


@dataclass(frozen=True)
class _Header:
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


def read_dicom(
    path: str | Path, *, planar_only: bool = True, energy_window: int | None = None
) -> Study:
    """Read one planar NM DICOM file into a `Study` (see the module docstring for the rules).

    `planar_only=False` also decodes whole-body, SPECT, dynamic and gated NM objects, one
    UNKNOWN-or-coded view per frame. `energy_window` picks the window (1-based, as in
    EnergyWindowVector) when the frames come from several; by default the first is kept.
    Raises a `thyrocad.errors.InputError` subclass for anything that cannot be used.
    """
    path = Path(path)
    check_input_file(path)
    header = _read_header(path)
    _check_object(header, planar_only)
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


def check_planar_aspect(rows: int, columns: int, what: str) -> None:
    """Refuse an image whose sides differ more than a planar neck view's can (a whole-body scan)."""
    if max(rows, columns) > MAX_PLANAR_ASPECT * min(rows, columns):
        raise NotPlanarError(
            f"{what}: {rows}x{columns} pixels is not a planar neck view (sides differ by more "
            f"than {MAX_PLANAR_ASPECT:g}x, as in a whole-body sweep); crop the neck region first"
        )


# --- reading --------------------------------------------------------------------------------


@contextmanager
def _translated(error: type[InputError], what: str) -> Iterator[None]:
    """Re-raise any library exception as `error`; our own InputErrors pass through.

    pylibjpeg-rle (Rust, via pyo3) reports a corrupt stream with a `PanicException`, which
    derives from BaseException: it is caught too; only interpreter-control exceptions pass.
    """
    try:
        yield
    except (InputError, KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except BaseException as exc:  # decoders raise many types, Rust ones even a BaseException
        raise error(f"{what}: {type(exc).__name__}: {exc}") from exc


@contextmanager
def _quiet_pydicom() -> Iterator[None]:
    """Keep pydicom's parse warnings out of the output: they may quote header values."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    if caught:
        logger.debug(
            "pydicom emitted %d parse warning(s) (not shown: may quote values)", len(caught)
        )


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


def _dcmread(path: Path, *, stop_before_pixels: bool) -> Dataset:
    """`pydicom.dcmread` with every failure mapped to an `InputError` subclass."""
    try:
        with _quiet_pydicom():
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
            f"{path}: cannot parse the DICOM structure: {type(exc).__name__}: {exc}"
        ) from exc


def _read_header(path: Path) -> _Header:
    """Parse the header only (no pixel data) and copy out what the reader needs."""
    ds = _dcmread(path, stop_before_pixels=True)
    with _quiet_pydicom(), _translated(MalformedDicomError, f"{path}: unreadable DICOM header"):
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
    return "" if value is None else str(value).strip()


def _header(ds: Dataset, path: Path) -> _Header:
    meta = getattr(ds, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    if not syntax:
        raise MalformedDicomError(f"{path}: the file meta information has no TransferSyntaxUID")
    frame_increment = _int_tuple(ds, "FrameIncrementPointer") or ()
    return _Header(
        path=path,
        sop_class=UID(str(ds.get("SOPClassUID", "") or meta.get("MediaStorageSOPClassUID", ""))),
        modality=_text(ds, "Modality").upper(),
        transfer_syntax=UID(str(syntax)),
        image_type=tuple(str(v).strip().upper() for v in _as_list(ds.get("ImageType"))),
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


# --- checks before any pixel is decoded -----------------------------------------------------


def _check_object(header: _Header, planar_only: bool) -> None:
    _check_modality(header)
    if planar_only:
        _check_planar(header)
    _check_pixel_format(header)
    _check_size(header)
    _check_frame_vectors(header)
    _check_decoder(header)


def _check_modality(header: _Header) -> None:
    if header.modality != "NM":
        raise NotNuclearMedicineError(
            f"{header.path}: "
            f"Modality is {header.modality or 'missing'}; thyrocad reads nuclear-medicine (NM) "
            "planar scintigrams only"
        )
    if header.sop_class not in NM_CLASSES | SECONDARY_CAPTURE_CLASSES:
        name = header.sop_class.name or "missing"
        raise NotNuclearMedicineError(
            f"{header.path}: SOP class {name} is not NM Image Storage or Secondary Capture; "
            "export the scan as NM Image Storage"
        )


def _check_planar(header: _Header) -> None:
    kinds, vectors = set(header.image_type), set(header.frame_increment_pointer)
    image_type = "\\".join(header.image_type) or "missing"
    if kinds & SPECT_IMAGE_TYPES or vectors & SPECT_VECTORS:
        raise NotPlanarError(
            f"{header.path}: "
            f"ImageType {image_type} with {header.frames} frame(s) indexed by SPECT vectors: a "
            "tomographic acquisition or volume, not a planar neck view; export the static views"
        )
    if "WHOLE BODY" in kinds:
        raise NotPlanarError(
            f"{header.path}: ImageType {image_type}: a whole-body sweep, not a planar neck view; "
            "acquire or export a static neck view"
        )
    if kinds & NON_STATIC_IMAGE_TYPES or not vectors <= PLANAR_VECTORS:
        raise NotPlanarError(
            f"{header.path}: "
            f"ImageType {image_type}: frames are time frames or gates (a dynamic or gated "
            "series), not static planar views; export the static neck views"
        )
    check_planar_aspect(header.rows, header.columns, str(header.path))


def _check_pixel_format(header: _Header) -> None:
    if header.samples_per_pixel != 1 or header.photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise UnsupportedPixelFormatError(
            f"{header.path}: "
            f"pixels are {header.photometric or 'unspecified'} with {header.samples_per_pixel} "
            "samples: not grayscale counts (a screenshot?); use the original NM object"
        )
    if header.bits_allocated not in (8, 16) or not 1 <= header.bits_stored <= header.bits_allocated:
        raise UnsupportedPixelFormatError(
            f"{header.path}: "
            f"BitsAllocated {header.bits_allocated} / BitsStored {header.bits_stored}: NM count "
            "images use 8 or 16 bits"
        )
    if header.photometric == "MONOCHROME1":
        logger.info("MONOCHROME1 pixels: counts are read as stored (display inversion ignored)")


def _check_size(header: _Header) -> None:
    rows, cols, frames = header.rows, header.columns, header.frames
    if not (1 <= rows <= MAX_SIDE and 1 <= cols <= MAX_SIDE and frames <= MAX_FRAMES) or (
        rows * cols * frames > MAX_VALUES
    ):
        raise ImageSizeError(
            f"{header.path}: "
            f"{frames} frame(s) of {rows}x{cols} pixels is outside what a planar NM file holds "
            f"(sides 1-{MAX_SIDE}, at most {MAX_FRAMES} frames, {MAX_VALUES} values); "
            "the header is corrupt or this is not a planar scan"
        )


def _check_frame_vectors(header: _Header) -> None:
    """Cross-check NumberOfFrames against the frame vectors and detector/window counts."""
    for name, vector in (
        ("DetectorVector", header.detector_vector),
        ("EnergyWindowVector", header.energy_window_vector),
    ):
        if vector is not None and len(vector) != header.frames:
            raise InconsistentHeaderError(
                f"{header.path}: "
                f"{name} has {len(vector)} values but NumberOfFrames is {header.frames}; "
                "frames cannot be matched to detectors/windows"
            )
        if vector is not None and min(vector) < 1:
            raise InconsistentHeaderError(
                f"{header.path}: {name} holds {min(vector)}; its values start at 1"
            )
    detectors, windows = header.number_of_detectors, header.number_of_energy_windows
    if header.detector_vector and detectors and max(header.detector_vector) > detectors:
        raise InconsistentHeaderError(
            f"{header.path}: DetectorVector names detector {max(header.detector_vector)} but "
            f"NumberOfDetectors is {detectors}"
        )
    planar_frames = set(header.frame_increment_pointer) <= PLANAR_VECTORS
    if planar_frames and detectors and windows and detectors * windows != header.frames:
        raise InconsistentHeaderError(
            f"{header.path}: "
            f"NumberOfFrames is {header.frames} but NumberOfDetectors x NumberOfEnergyWindows is "
            f"{detectors} x {windows}; frames are missing or extra"
        )


def _check_decoder(header: _Header) -> None:
    syntax = header.transfer_syntax
    if not syntax.is_transfer_syntax:
        raise UnsupportedTransferSyntaxError(
            f"{header.path}: "
            f"transfer syntax {syntax.name} is not a standard one; re-export uncompressed"
        )
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError as exc:
        raise UnsupportedTransferSyntaxError(
            f"{header.path}: "
            f"no decoder exists for transfer syntax {syntax.name}; re-export uncompressed"
        ) from exc
    if not decoder.is_available:
        missing = "; ".join(decoder.missing_dependencies)
        raise UnsupportedTransferSyntaxError(
            f"{header.path}: "
            f"transfer syntax {syntax.name} needs a decoder that is not installed ({missing})"
        )


# --- decoding -------------------------------------------------------------------------------


def _decode(path: Path, header: _Header) -> np.ndarray:
    """Stored values as (frames, rows, columns), after checking the pixel data is all there."""
    ds = _dcmread(path, stop_before_pixels=False)
    with _quiet_pydicom(), _translated(MalformedDicomError, f"{path}: unreadable Pixel Data"):
        _check_pixel_data(ds, header, path)
    syntax = header.transfer_syntax
    with (
        warnings.catch_warnings(),
        _translated(PixelDecodeError, f"{path}: pixel data cannot be decoded"),
    ):
        # pydicom only warns about data that does not fit the header (PITFALLS 1.3): refuse it.
        warnings.simplefilter("error", UserWarning)
        stored = decode_pixels(ds, decoding_plugin=_PREFERRED_PLUGINS.get(syntax, ""))
    stored = stored.reshape((1, *stored.shape)) if stored.ndim == 2 else stored
    if stored.shape != (header.frames, header.rows, header.columns):
        raise InconsistentHeaderError(
            f"{path}: decoded {stored.shape} but the header declares {header.frames} frame(s) "
            f"of {header.rows}x{header.columns}"
        )
    return stored


def _check_pixel_data(ds: Dataset, header: _Header, path: Path) -> None:
    if "PixelData" not in ds:
        raise NoPixelDataError(
            f"{path}: no Pixel Data element (a header-only object, or the file is truncated)"
        )
    raw = ds.get_item("PixelData")
    value = raw.value
    if not value:
        raise NoPixelDataError(f"{path}: the Pixel Data element is empty (pixels were stripped)")
    declared = getattr(raw, "length", None)
    if declared is not None and declared != 0xFFFFFFFF and len(value) < declared:
        raise TruncatedFileError(
            f"{path}: the file ends inside the pixel data ({len(value)} of {declared} bytes)"
        )
    if header.transfer_syntax.is_encapsulated:
        _check_fragments(value, header)
        return
    expected = header.rows * header.columns * header.frames * header.bits_allocated // 8
    if not expected <= len(value) <= expected + 1:
        raise InconsistentHeaderError(
            f"{path}: Pixel Data holds {len(value)} bytes but {header.frames} frame(s) of "
            f"{header.rows}x{header.columns} at {header.bits_allocated} bits need {expected}"
        )


def _check_fragments(value: bytes, header: _Header) -> None:
    """Compressed images in encapsulated pixel data vs NumberOfFrames.

    Counts the offset table entries, the fragments, and the complete codestreams (RLE: one
    fragment each; JPEG family: fragments ending in the EOI/EOC marker FFD9, maybe padded).
    Without this, extra frames of a file declaring one frame are silently dropped.
    """
    with _translated(PixelDecodeError, f"{header.path}: encapsulated pixel data is corrupt"):
        offsets = parse_basic_offsets(value)
        fragments = list(generate_fragments(value[8 + 4 * len(offsets) :]))
    if header.transfer_syntax == RLELossless:
        streams = len(fragments)
    else:
        streams = sum(b"\xff\xd9" in (f[-2:], f[-3:-1]) for f in fragments)
    for what, count in (("offset table entries", len(offsets)), ("codestreams", streams)):
        if count and count != header.frames:
            raise InconsistentHeaderError(
                f"{header.path}: the compressed pixel data holds {count} {what} but "
                f"NumberOfFrames is {header.frames}"
            )
    if len(fragments) < header.frames:
        raise InconsistentHeaderError(
            f"{header.path}: {len(fragments)} compressed fragment(s) cannot hold the "
            f"{header.frames} frame(s) NumberOfFrames declares"
        )


# --- views, frames, spacing, metadata -------------------------------------------------------


def _frames_to_keep(header: _Header, energy_window: int | None) -> list[int]:
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


def _frame_view(header: _Header, i: int, path: Path) -> View:
    """View of frame i: DetectorVector -> Detector Information item -> View Code Sequence."""
    view, why = _coded_frame_view(header, i)
    if view is View.UNKNOWN:
        logger.warning("%s: frame %d view unknown (%s)", path, i + 1, why)
    return view


def _coded_frame_view(header: _Header, i: int) -> tuple[View, str]:
    if header.detector_vector and header.detector_views:
        detector = header.detector_vector[i]
        if detector > len(header.detector_views):
            return View.UNKNOWN, f"detector {detector} has no Detector Information item"
        view = header.detector_views[detector - 1]
        return view, f"detector {detector} has no recognised View Code"
    if header.top_level_view is not None and header.frames == 1:
        return header.top_level_view, "the View Code is not a recognised projection"
    return View.UNKNOWN, "no View Code Sequence for it"


def _spacing(header: _Header) -> tuple[tuple[float, float] | None, str]:
    if header.pixel_spacing is None:
        return None, "the DICOM header has no usable PixelSpacing"
    if header.sop_class in SECONDARY_CAPTURE_CLASSES:
        return header.pixel_spacing, "PixelSpacing of a Secondary Capture object: not guaranteed"
    return header.pixel_spacing, ""


def _metadata(header: _Header, keep: list[int]) -> dict[str, str]:
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
    }
    return {k: v for k, v in values.items() if v}
