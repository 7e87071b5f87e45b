"""Build synthetic NM Image Storage DICOM files with pydicom, for tests.

`nm_dataset` makes a planar NM object (one frame per detector, each detector with its own
View Code Sequence), `write_dicom` saves it in any native or compressed transfer syntax, and
`dicom_bytes` returns the file's bytes. Patient name and ID default to the recognisable
`SENTINEL_NAME` / `SENTINEL_ID` so tests can assert they never leak into output.
"""

from __future__ import annotations

import copy
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydicom import uid
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence

from thyrocad.io.dicom_codes import NM_IMAGE_STORAGE, VIEW_CODES
from thyrocad.study import View

SENTINEL_NAME = "ZZSENTINEL^PATIENTNAME"
SENTINEL_ID = "ZZSENTINEL-ID-4711"

# Transfer syntaxes the factory can encode losslessly (round trips are bit-exact).
LOSSLESS_SYNTAXES = (
    uid.ExplicitVRLittleEndian,
    uid.ImplicitVRLittleEndian,
    uid.ExplicitVRBigEndian,
    uid.RLELossless,
    uid.JPEG2000Lossless,
    uid.JPEGLSLossless,
)
ENERGY_WINDOW_VECTOR = 0x00540010
DETECTOR_VECTOR = 0x00540020

# (code value, scheme, meaning) of a view given as a code; None leaves the view uncoded.
ViewCode = tuple[str, str, str] | None


def view_code(view: View | None) -> ViewCode:
    """The CID 26 code of `view` (None for UNKNOWN / None)."""
    return VIEW_CODES.get(view) if view is not None else None


def counts_image(rows: int = 64, cols: int = 64, peak: int = 200, seed: int = 0) -> np.ndarray:
    """A small reproducible count image: a Poisson background plus a hot spot."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:rows, 0:cols]
    spot = peak * np.exp(-((yy - rows / 2) ** 2 + (xx - cols / 3) ** 2) / (2 * (rows / 10) ** 2))
    return rng.poisson(5 + spot).astype(np.int64)


def _code_item(code: tuple[str, str, str]) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = code
    return item


I131_CODE = ("C-B1318", "SRT", "^131^Iodine")
TC99M_CODE = ("C-163A8", "SRT", "^99m^Technetium")
I131_WINDOW_KEV = (327.6, 400.4)
TC99M_WINDOW_KEV = (129.0, 150.0)


def _detector_item(code: ViewCode, collimator: str, zoom: float | None) -> Dataset:
    item = Dataset()
    item.CollimatorType = collimator
    if zoom is not None:
        item.ZoomFactor = [f"{zoom:g}", f"{zoom:g}"]
    if code is not None:
        item.ViewCodeSequence = DicomSequence([_code_item(code)])
    return item


def _energy_window_item(kev: tuple[float, float]) -> Dataset:
    window = Dataset()
    window.EnergyWindowLowerLimit = f"{kev[0]:g}"
    window.EnergyWindowUpperLimit = f"{kev[1]:g}"
    item = Dataset()
    item.EnergyWindowRangeSequence = DicomSequence([window])
    item.EnergyWindowName = "PEAK"
    return item


def _radiopharmaceutical_item(code: tuple[str, str, str]) -> Dataset:
    item = Dataset()
    item.Radiopharmaceutical = code[2]
    item.RadionuclideCodeSequence = DicomSequence([_code_item(code)])
    return item


def _stored_dtype(bits_allocated: int, signed: bool) -> np.dtype:
    return np.dtype(f"{'i' if signed else 'u'}{bits_allocated // 8}")


def nm_dataset(
    frames: Sequence[np.ndarray] | None = None,
    view_codes: Sequence[ViewCode] = (view_code(View.ANTERIOR), view_code(View.POSTERIOR)),
    *,
    bits_allocated: int = 16,
    signed: bool = False,
    rescale: tuple[float, float] | None = None,
    pixel_spacing: tuple[float, float] | None = (2.21, 2.21),
    frame_duration_ms: int | None = 600_000,
    image_type: Sequence[str] = ("ORIGINAL", "PRIMARY", "STATIC", "EMISSION"),
    modality: str = "NM",
    sop_class: str = NM_IMAGE_STORAGE,
    patient_name: str = SENTINEL_NAME,
    patient_id: str = SENTINEL_ID,
    radionuclide: tuple[str, str, str] | None = I131_CODE,
    energy_window_kev: tuple[float, float] | None = I131_WINDOW_KEV,
    collimator: str = "PARA",
    zoom: float | None = None,
) -> Dataset:
    """A planar NM dataset in Explicit VR Little Endian, frame i from detector i + 1.

    `frames` are stored values (default: two 64x64 count images); `view_codes[i]` is the
    (value, scheme, meaning) code of detector i + 1, or None for a detector without a view.
    `radionuclide` (a code) and `energy_window_kev` default to I-131's; None leaves them out.
    `collimator` and `zoom` go into every Detector Information item.
    """
    if frames is None:
        frames = [counts_image(seed=i) for i in range(len(view_codes))]
    if len(frames) != len(view_codes):
        raise ValueError("one view code per frame")
    dtype = _stored_dtype(bits_allocated, signed)
    stack = np.stack([np.asarray(f) for f in frames]).astype(dtype)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = uid.generate_uid()
    ds.file_meta.TransferSyntaxUID = uid.ExplicitVRLittleEndian
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = uid.generate_uid()
    ds.SeriesInstanceUID = uid.generate_uid()
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    ds.PatientBirthDate = "19700101"
    ds.Modality = modality
    ds.Manufacturer = "thyrocad-tests"
    ds.ManufacturerModelName = "dicom_factory"
    ds.ImageType = list(image_type)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = stack.shape[1:]
    ds.BitsAllocated = bits_allocated
    ds.BitsStored = bits_allocated
    ds.HighBit = bits_allocated - 1
    ds.PixelRepresentation = int(signed)
    ds.NumberOfFrames = len(frames)
    ds.FrameIncrementPointer = [ENERGY_WINDOW_VECTOR, DETECTOR_VECTOR]
    ds.EnergyWindowVector = [1] * len(frames)
    ds.NumberOfEnergyWindows = 1
    if energy_window_kev is not None:
        ds.EnergyWindowInformationSequence = DicomSequence([_energy_window_item(energy_window_kev)])
    ds.DetectorVector = list(range(1, len(frames) + 1))
    ds.NumberOfDetectors = len(frames)
    ds.DetectorInformationSequence = DicomSequence(
        [_detector_item(c, collimator, zoom) for c in view_codes]
    )
    if radionuclide is not None:
        ds.RadiopharmaceuticalInformationSequence = DicomSequence(
            [_radiopharmaceutical_item(radionuclide)]
        )
    if pixel_spacing is not None:
        ds.PixelSpacing = [f"{s:g}" for s in pixel_spacing]
    if frame_duration_ms is not None:
        ds.ActualFrameDuration = frame_duration_ms
    if rescale is not None:
        ds.RescaleSlope, ds.RescaleIntercept = (f"{v:g}" for v in rescale)
    ds.PixelData = stack.tobytes()
    ds["PixelData"].VR = "OB" if bits_allocated == 8 else "OW"
    return ds


def encoded(
    ds: Dataset, transfer_syntax: str = uid.ExplicitVRLittleEndian, **encode_kwargs: object
) -> Dataset:
    """A copy of `ds` (built by `nm_dataset`, native little endian) in `transfer_syntax`.

    `encode_kwargs` go to `Dataset.compress` (lossy syntaxes need e.g. `j2k_cr=[5]` or
    `jls_error=2`).
    """
    out = copy.deepcopy(ds)
    if uid.UID(transfer_syntax).is_compressed:
        plugin = _encoder_for(transfer_syntax)
        out.compress(transfer_syntax, encoding_plugin=plugin, **encode_kwargs)
        return out
    if transfer_syntax == uid.ExplicitVRBigEndian and out.BitsAllocated > 8:
        # pydicom writes PixelData bytes as given: swap them to big endian ourselves.
        dtype = _stored_dtype(out.BitsAllocated, out.PixelRepresentation == 1)
        out.PixelData = np.frombuffer(out.PixelData, dtype).byteswap().tobytes()
    out.file_meta.TransferSyntaxUID = transfer_syntax
    return out


def _encoder_for(transfer_syntax: str) -> str:
    """The encoding plugin pydicom should use (pydicom's own RLE, else pylibjpeg/pyjpegls)."""
    if transfer_syntax == uid.RLELossless:
        return "pydicom"
    if transfer_syntax in (uid.JPEGLSLossless, uid.JPEGLSNearLossless):
        return "pyjpegls"
    return "pylibjpeg"


def write_dicom(
    ds: Dataset,
    path: Path | str,
    transfer_syntax: str = uid.ExplicitVRLittleEndian,
    **encode_kwargs: object,
) -> Path:
    """Save `ds` as a Part 10 file at `path` (parents created) in `transfer_syntax`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    encoded(ds, transfer_syntax, **encode_kwargs).save_as(path, enforce_file_format=True)
    return path


def dicom_bytes(
    ds: Dataset, transfer_syntax: str = uid.ExplicitVRLittleEndian, **encode_kwargs: object
) -> bytes:
    """The Part 10 file bytes of `ds` saved in `transfer_syntax` (see `encoded`)."""
    buffer = io.BytesIO()
    encoded(ds, transfer_syntax, **encode_kwargs).save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()
