"""DICOM results for the PACS: a Comprehensive SR with the diagnosis, Secondary Captures of the
views with their Grad-CAM overlay. Both are written with highdicom.

The source file is re-read with pydicom, header only, and both objects copy its patient and study
attributes (same StudyInstanceUID and PatientID) and list it as evidence. The SR is a TID 1500
Measurement Report with one measurement group (TID 1501) holding: the qualitative evaluation
"Residual thyroid tissue" = Present/Absent (SNOMED CT), the fused probability, each view's
probability, the decision threshold and its training sensitivity and specificity, all from the
named algorithm (thyrocad + model + version). thyrocad's own concepts use the private coding
scheme `99THYROCAD` (listed in `CODES`). Secondary Captures are display-only images (PITFALLS
7.3): Pixel Spacing is copied when known but no geometry is claimed.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

import thyrocad
from thyrocad.diagnosis.types import Diagnosis
from thyrocad.errors import DicomResultError
from thyrocad.study import View

logger = logging.getLogger(__name__)

MANUFACTURER = "thyrocad"
SCHEME = "99THYROCAD"
SR_SERIES_NUMBER, SC_SERIES_NUMBER = 9701, 9702
SR_SERIES_DESCRIPTION = "thyrocad residual thyroid tissue report"
SC_SERIES_DESCRIPTION = "thyrocad Grad-CAM overlay (display only)"
SR_NAME = "thyrocad_sr.dcm"
SC_NAME = "thyrocad_sc_{view}.dcm"
RESULT_MARKERS = ("thyrocad_sr.dcm", "thyrocad_sc_")  # names to skip as inputs

CODES = {
    "procedure": hd.sr.CodedConcept("RTT-PROC", SCHEME, "I-131 neck scintigraphy CAD"),
    "evaluation": hd.sr.CodedConcept("RTT-EVAL", SCHEME, "Residual thyroid tissue"),
    "probability": hd.sr.CodedConcept("RTT-PROB", SCHEME, "Probability of residual tissue"),
    "threshold": hd.sr.CodedConcept("RTT-THR", SCHEME, "Decision threshold"),
    "sensitivity": hd.sr.CodedConcept("RTT-SEN", SCHEME, "Training sensitivity at threshold"),
    "specificity": hd.sr.CodedConcept("RTT-SPE", SCHEME, "Training specificity at threshold"),
    View.ANTERIOR: hd.sr.CodedConcept("RTT-PROB-ANT", SCHEME, "Probability, anterior view"),
    View.POSTERIOR: hd.sr.CodedConcept("RTT-PROB-POST", SCHEME, "Probability, posterior view"),
    View.UNKNOWN: hd.sr.CodedConcept("RTT-PROB-UNK", SCHEME, "Probability, unlabelled view"),
}
NO_UNITS = codes.UCUM.NoUnits
# Patient-orientation of a planar view: the direction of increasing column, then of row.
ORIENTATION = {View.ANTERIOR: ("L", "F"), View.POSTERIOR: ("R", "F"), View.UNKNOWN: ("L", "F")}
_REQUIRED = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID")
# Type 2 attributes highdicom copies from the source; empty when the source lacks them.
_TYPE2 = (
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "AccessionNumber", "StudyID",
    "StudyDate", "StudyTime", "ReferringPhysicianName",
)  # fmt: skip


@dataclass(frozen=True)
class ViewOverlay:
    """An RGB uint8 image of one view (with its heatmap) for a Secondary Capture."""

    view: View
    rgb: np.ndarray
    pixel_spacing_mm: tuple[float, float] | None = None


def read_source_header(path: str | Path) -> Dataset:
    """The source DICOM header (no pixels), with missing type-2 patient/study fields empty."""
    path = Path(path)
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except (InvalidDicomError, OSError, EOFError, ValueError) as exc:
        raise DicomResultError(f"{path}: cannot re-read the source DICOM header: {exc}") from exc
    missing = [k for k in _REQUIRED if k not in ds]
    if missing:
        raise DicomResultError(
            f"{path}: the source lacks {', '.join(missing)}; results cannot reference it"
        )
    for keyword in _TYPE2:
        if keyword not in ds:
            setattr(ds, keyword, "")
    return ds


def algorithm(diagnosis: Diagnosis) -> hd.sr.AlgorithmIdentification:
    """The algorithm identification: thyrocad + model name, thyrocad version + weights hash."""
    model = diagnosis.model
    return hd.sr.AlgorithmIdentification(
        name=f"thyrocad {model['name']}",
        version=f"{thyrocad.__version__} (weights sha256 {model['weights_sha256'][:16]})",
        manufacturer=MANUFACTURER,
    )


def _measurement(name, value: float, algo) -> hd.sr.Measurement:
    return hd.sr.Measurement(name=name, value=float(value), unit=NO_UNITS, algorithm_id=algo)


def _measurements(diagnosis: Diagnosis, algo) -> list[hd.sr.Measurement]:
    op = diagnosis.operating_point
    out = [
        _measurement(CODES["probability"], diagnosis.probability, algo),
        _measurement(CODES["threshold"], op.threshold, algo),
    ]
    if op.train_sensitivity is not None:
        out.append(_measurement(CODES["sensitivity"], op.train_sensitivity, algo))
    if op.train_specificity is not None:
        out.append(_measurement(CODES["specificity"], op.train_specificity, algo))
    seen = set()
    for v in diagnosis.views:
        view = View(v.view)
        if v.probability is not None and view not in seen:  # one item per distinct concept
            seen.add(view)
            out.append(_measurement(CODES[view], v.probability, algo))
    return out


def build_sr(source: Dataset, diagnosis: Diagnosis) -> hd.sr.ComprehensiveSR:
    """The Comprehensive SR (TID 1500) of `diagnosis`, referencing `source`."""
    algo = algorithm(diagnosis)
    verdict = codes.SCT.Present if diagnosis.positive else codes.SCT.Absent
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=generate_uid(), identifier="thyrocad diagnosis"
        ),
        algorithm_id=algo,
        measurements=_measurements(diagnosis, algo),
        qualitative_evaluations=[hd.sr.QualitativeEvaluation(CODES["evaluation"], verdict)],
        source_images=[hd.sr.SourceImageForMeasurementGroup.from_source_image(source)],
    )
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=generate_uid(), name=MANUFACTURER, manufacturer_name=MANUFACTURER,
            model_name=diagnosis.model["name"],
        ),
    )  # fmt: skip
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=CODES["procedure"],
        imaging_measurements=[group],
    )
    sr = hd.sr.ComprehensiveSR(
        evidence=[source],
        content=report[0],
        series_instance_uid=generate_uid(),
        series_number=SR_SERIES_NUMBER,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        is_complete=True,
    )
    sr.SeriesDescription = SR_SERIES_DESCRIPTION  # after construction (PACS.md)
    return sr


def build_sc(
    source: Dataset, overlay: ViewOverlay, series_uid: str, instance_number: int
) -> hd.sc.SCImage:
    """A Secondary Capture of one view's RGB overlay, in `source`'s patient and study."""
    spacing = overlay.pixel_spacing_mm
    sc = hd.sc.SCImage.from_ref_dataset(
        ref_dataset=source,
        pixel_array=np.ascontiguousarray(overlay.rgb, dtype=np.uint8),
        photometric_interpretation=hd.PhotometricInterpretationValues.RGB,
        bits_allocated=8,
        coordinate_system=hd.CoordinateSystemNames.PATIENT,
        series_instance_uid=series_uid,
        series_number=SC_SERIES_NUMBER,
        sop_instance_uid=generate_uid(),
        instance_number=instance_number,
        manufacturer=MANUFACTURER,
        pixel_spacing=tuple(float(s) for s in spacing) if spacing else None,
        patient_orientation=ORIENTATION[overlay.view],
    )
    sc.SeriesDescription = SC_SERIES_DESCRIPTION
    sc.ImageComments = f"Grad-CAM of class residual, {overlay.view.value} view; display only"
    return sc


def write_dicom_results(
    source_path: str | Path,
    diagnosis: Diagnosis,
    overlays: Sequence[ViewOverlay],
    out_dir: str | Path,
    stem: str = "",
) -> dict[str, Path]:
    """Write the SR and one Secondary Capture per overlay into `out_dir`.

    Files: `[<stem>_]thyrocad_sr.dcm` (key "sr") and `[<stem>_]thyrocad_sc_<view>.dcm` (keys
    "sc_<view>"); returns key -> path.
    """
    source = read_source_header(Path(source_path))
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    prefix = f"{stem}_" if stem else ""
    sr = build_sr(copy.deepcopy(source), diagnosis)
    written = {"sr": _save(sr, folder / f"{prefix}{SR_NAME}")}
    series_uid = generate_uid()
    unique = len({o.view for o in overlays}) == len(overlays)
    for k, overlay in enumerate(overlays, start=1):
        label = overlay.view.value if unique else f"{overlay.view.value}{k}"
        sc = build_sc(source, overlay, series_uid, k)
        written[f"sc_{label}"] = _save(sc, folder / f"{prefix}{SC_NAME.format(view=label)}")
    logger.info("wrote %d DICOM result object(s)", len(written))
    return written


def _save(ds: Dataset, path: Path) -> Path:
    try:
        ds.save_as(path, enforce_file_format=True)
    except OSError as exc:
        raise DicomResultError(f"cannot write {path}: {exc}") from exc
    return path


def is_result_file(path: Path) -> bool:
    """Whether `path` is named like a result written here (skipped when scanning inputs)."""
    return any(s in path.name for s in RESULT_MARKERS)
