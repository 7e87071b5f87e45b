"""Checks of an NM DICOM object before and while its pixels are decoded.

First, from the header alone: modality and SOP class, planar acquisition (with
`planar_only`), pixel format, sizes (`MAX_SIDE`, `MAX_FRAMES`, `MAX_VALUES`), frame vectors
against NumberOfFrames, and an installed decoder. Then, before decoding: the Pixel Data holds
exactly the declared frames (native length; offset table, fragments and codestreams of
compressed data), since pydicom would silently drop or pad frames (PITFALLS 1.3). Each
refusal is its own `thyrocad.errors.InputError` subclass with a message saying what to do.
"""

from __future__ import annotations

import logging
from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.encaps import generate_fragments, parse_basic_offsets
from pydicom.pixels import get_decoder
from pydicom.uid import RLELossless

from thyrocad.errors import (
    ImageSizeError,
    InconsistentHeaderError,
    NoPixelDataError,
    NotNuclearMedicineError,
    NotPlanarError,
    PixelDecodeError,
    TruncatedFileError,
    UnsupportedPixelFormatError,
    UnsupportedTransferSyntaxError,
)
from thyrocad.io.dicom_codes import NM_IMAGE_STORAGE
from thyrocad.io.dicom_header import DETECTOR_VECTOR, ENERGY_WINDOW_VECTOR, Header, translated

logger = logging.getLogger(__name__)

MAX_SIDE = 2048  # rows or columns
MAX_FRAMES = 256
MAX_VALUES = 1 << 24  # rows x columns x frames: 64 MiB as float32
MAX_PLANAR_ASPECT = 2.0  # longer side / shorter side of a planar neck view

SECONDARY_CAPTURE_CLASSES = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture Image Storage
        "1.2.840.10008.5.1.4.1.1.7.2",  # Multi-frame Grayscale Byte SC
        "1.2.840.10008.5.1.4.1.1.7.3",  # Multi-frame Grayscale Word SC
    }
)
NM_CLASSES = frozenset({NM_IMAGE_STORAGE, "1.2.840.10008.5.1.4.1.1.5"})  # current, retired
PLANAR_VECTORS = frozenset({ENERGY_WINDOW_VECTOR, DETECTOR_VECTOR})
SPECT_VECTORS = frozenset({0x00540050, 0x00540080, 0x00540090})  # rotation, slice, angular view
SPECT_IMAGE_TYPES = frozenset({"TOMO", "GATED TOMO", "RECON TOMO", "RECON GATED TOMO"})
NON_STATIC_IMAGE_TYPES = frozenset({"DYNAMIC", "GATED"})


def check_planar_aspect(rows: int, columns: int, what: str, whole_body: bool = False) -> None:
    """Refuse an image whose sides differ more than a planar neck view's can (a whole-body
    scan), unless `whole_body` allows a long, head-to-foot (portrait) sweep."""
    if whole_body and rows >= columns:
        return
    if max(rows, columns) > MAX_PLANAR_ASPECT * min(rows, columns):
        raise NotPlanarError(
            f"{what}: {rows}x{columns} pixels is not a planar neck view (sides differ by more "
            f"than {MAX_PLANAR_ASPECT:g}x, as in a whole-body sweep); crop the neck region first"
        )


def check_object(header: Header, planar_only: bool, whole_body: bool = False) -> None:
    """Refuse what cannot be read (see the module docstring); `whole_body` lets a planar read
    accept whole-body sweeps."""
    _check_modality(header)
    if planar_only:
        _check_planar(header, whole_body)
    _check_pixel_format(header)
    _check_size(header)
    _check_frame_vectors(header)
    _check_decoder(header)


def _check_modality(header: Header) -> None:
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


def _check_planar(header: Header, whole_body: bool) -> None:
    kinds, vectors = set(header.image_type), set(header.frame_increment_pointer)
    image_type = "\\".join(header.image_type) or "missing"
    if kinds & SPECT_IMAGE_TYPES or vectors & SPECT_VECTORS:
        raise NotPlanarError(
            f"{header.path}: "
            f"ImageType {image_type} with {header.frames} frame(s) indexed by SPECT vectors: a "
            "tomographic acquisition or volume, not a planar neck view; export the static views"
        )
    if "WHOLE BODY" in kinds and not whole_body:
        raise NotPlanarError(
            f"{header.path}: ImageType {image_type}: a whole-body sweep, not a planar neck view; "
            "read it with thyrocad.intake.load_study, which cuts out the neck field"
        )
    if kinds & NON_STATIC_IMAGE_TYPES or not vectors <= PLANAR_VECTORS:
        raise NotPlanarError(
            f"{header.path}: "
            f"ImageType {image_type}: frames are time frames or gates (a dynamic or gated "
            "series), not static planar views; export the static neck views"
        )
    check_planar_aspect(header.rows, header.columns, str(header.path), whole_body)


def _check_pixel_format(header: Header) -> None:
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


def _check_size(header: Header) -> None:
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


def _check_frame_vectors(header: Header) -> None:
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


def _check_decoder(header: Header) -> None:
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


def check_pixel_data(ds: Dataset, header: Header, path: Path) -> None:
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


def _check_fragments(value: bytes, header: Header) -> None:
    """Compressed images in encapsulated pixel data vs NumberOfFrames.

    Counts the offset table entries, the fragments, and the complete codestreams (RLE: one
    fragment each; JPEG family: fragments ending in the EOI/EOC marker FFD9, maybe padded).
    Without this, extra frames of a file declaring one frame are silently dropped.
    """
    with translated(PixelDecodeError, f"{header.path}: encapsulated pixel data is corrupt"):
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
