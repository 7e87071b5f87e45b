"""Write simulated views as DICOM NM Image Storage objects or 8-bit PNG exports.

Every element is derived from the patient index and seed, so the same cohort is written
byte for byte the same. Patient identifiers are synthetic ("PHANTOM^0001" / "PH0001").
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, generate_uid

import thyrocad
from thyrocad.io.dicom_codes import NM_IMAGE_STORAGE, VIEW_CODES
from thyrocad.study import View

_UID_PREFIX = "1.2.826.0.1.3680043.8.498."  # pydicom's registered root for generated UIDs
_DETECTOR_VECTOR_TAG = 0x00540020


@dataclass(frozen=True)
class AcquisitionInfo:
    """What the DICOM header says about one simulated acquisition."""

    patient_number: int
    seed: int
    pixel_mm: float
    frame_duration_s: float
    administered_mbq: float
    hours_post_dose: float
    window_kev: tuple[float, float]


def patient_id(number: int) -> str:
    """Synthetic patient ID of the 1-based patient number: PH0001."""
    return f"PH{number:04d}"


def _uid(info: AcquisitionInfo, *parts: str) -> str:
    return generate_uid(
        _UID_PREFIX,
        entropy_srcs=["thyrocad-phantom", str(info.seed), str(info.patient_number), *parts],
    )


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def _detector_item(view: View) -> Dataset:
    item = Dataset()
    item.ViewCodeSequence = Sequence([_code(*VIEW_CODES[view])])
    return item


def _energy_window(info: AcquisitionInfo) -> Dataset:
    rng = Dataset()
    rng.EnergyWindowLowerLimit, rng.EnergyWindowUpperLimit = info.window_kev
    item = Dataset()
    item.EnergyWindowRangeSequence = Sequence([rng])
    item.EnergyWindowName = "I131_364"
    return item


def _radiopharmaceutical(info: AcquisitionInfo) -> Dataset:
    item = Dataset()
    item.RadionuclideCodeSequence = Sequence([_code("C-B1000", "SRT", "^131^Iodine")])
    item.RadiopharmaceuticalCodeSequence = Sequence(
        [_code("C-B1050", "SRT", "Sodium iodide I^131^")]
    )
    item.Radiopharmaceutical = "Sodium iodide I-131"
    item.RadionuclideTotalDose = f"{info.administered_mbq:.1f}"  # MBq
    item.RadionuclideHalfLife = "692928"  # 8.02 d in seconds (PN §1)
    item.RadiopharmaceuticalStartTime = "080000"
    return item


def build_dataset(
    frames: list[np.ndarray], views: list[View], info: AcquisitionInfo, instance: str
) -> Dataset:
    """An NM Image Storage dataset with one frame per view (one detector per frame)."""
    number = info.patient_number
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = NM_IMAGE_STORAGE
    ds.file_meta.MediaStorageSOPInstanceUID = _uid(info, "sop", instance)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.file_meta.ImplementationVersionName = f"THYROCAD_{thyrocad.__version__}"[:16]
    ds.SOPClassUID = NM_IMAGE_STORAGE
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = _uid(info, "study")
    ds.SeriesInstanceUID = _uid(info, "series")
    ds.FrameOfReferenceUID = _uid(info, "frame")
    ds.PatientName = f"PHANTOM^{number:04d}"
    ds.PatientID = patient_id(number)
    ds.PatientBirthDate = ""
    ds.PatientSex = ""
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = "20200101"
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = f"{8 + int(info.hours_post_dose // 24):02d}0000"
    ds.AccessionNumber = ""
    ds.ReferringPhysicianName = ""
    ds.StudyID = f"{number}"
    ds.SeriesNumber = 1
    ds.InstanceNumber = 2 if views == [View.POSTERIOR] else 1
    ds.Modality = "NM"
    ds.Manufacturer = "thyrocad phantom"
    ds.ManufacturerModelName = "synthetic HEGP gamma camera"
    ds.SeriesDescription = "I-131 neck planar (synthetic)"
    ds.StudyDescription = "I-131 diagnostic neck scan (synthetic)"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "STATIC", "EMISSION"]
    ds.PatientPosition = "FFS"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = frames[0].shape
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.PixelSpacing = [f"{info.pixel_mm:.2f}", f"{info.pixel_mm:.2f}"]
    ds.NumberOfFrames = len(frames)
    ds.FrameIncrementPointer = _DETECTOR_VECTOR_TAG
    ds.DetectorVector = list(range(1, len(frames) + 1))
    ds.NumberOfDetectors = len(frames)
    ds.DetectorInformationSequence = Sequence([_detector_item(v) for v in views])
    ds.EnergyWindowVector = [1] * len(frames)
    ds.NumberOfEnergyWindows = 1
    ds.EnergyWindowInformationSequence = Sequence([_energy_window(info)])
    ds.RadiopharmaceuticalInformationSequence = Sequence([_radiopharmaceutical(info)])
    ds.ActualFrameDuration = round(info.frame_duration_s * 1000)  # ms
    ds.CollimatorType = "PARA"
    ds.ImageComments = f"synthetic; {info.hours_post_dose:.0f} h after dose"
    ds.PixelData = np.stack(frames).astype("<u2").tobytes()
    return ds


def write_dicom(
    path: Path, frames: list[np.ndarray], views: list[View], info: AcquisitionInfo
) -> None:
    """Write one NM file (preamble, file meta, explicit VR little endian)."""
    instance = "+".join(v.value for v in views)
    ds = build_dataset(frames, views, info, instance)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


def to_8bit(counts: np.ndarray, percentile: float) -> np.ndarray:
    """Linear window: 0 counts -> 0, the `percentile` count -> 255, clipped (hot = white)."""
    top = max(float(np.percentile(counts, percentile)), 1.0)
    return np.clip(np.rint(counts.astype(np.float64) * 255.0 / top), 0, 255).astype(np.uint8)


def write_png(path: Path, counts: np.ndarray, percentile: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(to_8bit(counts, percentile), mode="L").save(path, optimize=False)
