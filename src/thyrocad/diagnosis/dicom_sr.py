"""DICOM results for the PACS: a Comprehensive SR with the diagnosis, Secondary Captures of the
views with their Grad-CAM overlay. Both are written with highdicom.

The source file is re-read with pydicom, header only, and both objects copy its patient and study
attributes (same StudyInstanceUID and PatientID) and list it as evidence. Those attributes are
copied *sanitised* (`thyrocad.io.identity`): real PACS data often breaks their value rules, which
makes highdicom refuse the object; an invalid value is fixed or dropped instead, and the SR says
which attribute was changed (never its value). The SR is a TID 1500 Measurement Report with one
measurement group (TID 1501) holding: the qualitative evaluation "Residual thyroid tissue" =
Present/Absent (SNOMED CT), the fused probability, each view's probability, the decision
threshold and its training sensitivity and specificity, all from the named algorithm
(thyrocad + model + version); and a "Qualitative Evaluations" container (TID 1500) of TEXT
items: the disclaimer, the call as a physician reads it (indeterminate inside the band), every
flag with its label and every note. thyrocad's own concepts use the private coding scheme
`99THYROCAD` (listed in `CODES`). Secondary Captures are display-only images (PITFALLS 7.3)
with burned-in annotation (view, R/L, call, colour bar, "NOT FOR DIAGNOSTIC USE"): Pixel
Spacing is not claimed, since the annotated image is not in the view's pixel grid.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from pathlib import Path

import highdicom as hd
import pydicom
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import UID, generate_uid

import thyrocad
from thyrocad.diagnosis.explain import ViewOverlay
from thyrocad.diagnosis.figures import annotated_view
from thyrocad.diagnosis.reading import DISCLAIMER, caption, flag_label, reading
from thyrocad.diagnosis.types import Diagnosis
from thyrocad.errors import DicomResultError
from thyrocad.io.identity import FIELDS, PatientFields, read_patient_fields
from thyrocad.io.privacy import describe_exception
from thyrocad.study import View
from thyrocad.warning_filters import quiet

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
    "disclaimer": hd.sr.CodedConcept("RTT-DISC", SCHEME, "Disclaimer"),
    "reading": hd.sr.CodedConcept("RTT-READ", SCHEME, "Call for the physician"),
    "flag": hd.sr.CodedConcept("RTT-FLAG", SCHEME, "Preprocessing or input flag"),
    "note": hd.sr.CodedConcept("RTT-NOTE", SCHEME, "Note"),
}
QUALITATIVE_EVALUATIONS = hd.sr.CodedConcept("C0034375", "UMLS", "Qualitative Evaluations")
NO_UNITS = codes.UCUM.NoUnits
MAX_TEXT = 1024  # characters of one TEXT item
# Patient-orientation of a planar view: the direction of increasing column, then of row.
ORIENTATION = {View.ANTERIOR: ("L", "F"), View.POSTERIOR: ("R", "F"), View.UNKNOWN: ("L", "F")}
_REQUIRED = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID")
_IMAGE = ("Rows", "Columns", "SamplesPerPixel", "PixelRepresentation")


def reference_header(path: str | Path) -> tuple[Dataset, PatientFields]:
    """What results copy from a source file: its UIDs and its patient and study attributes,
    sanitised, in a new dataset (highdicom reads nothing else); and those sanitised fields.

    DicomResultError (never quoting a value) when the file cannot be re-read or lacks a
    valid UID the results must reference."""
    path = Path(path)
    try:
        with quiet():
            source = pydicom.dcmread(path, stop_before_pixels=True)
            uids = {k: str(source.get(k) or "") for k in _REQUIRED}
            image = {k: int(source.get(k) or 0) for k in _IMAGE}  # highdicom checks these
            modality = str(source.get("Modality") or "NM")[:16]
    except Exception as exc:  # pydicom raises many types on corrupt input
        raise DicomResultError(
            f"cannot re-read the source DICOM header ({describe_exception(exc)})"
        ) from None
    bad = [k for k, v in uids.items() if not v or not UID(v).is_valid]
    if bad:
        raise DicomResultError(
            f"the source lacks a valid {', '.join(bad)}; results cannot reference it"
        )
    fields = read_patient_fields(source)
    reference = Dataset()
    for keyword, value in {**uids, **image, "Modality": modality}.items():
        setattr(reference, keyword, value)
    with quiet():  # pydicom validates (e.g. a name over 64 characters) and warns
        for keyword in FIELDS:
            setattr(reference, keyword, fields.values[keyword])
    if not all(v.isascii() for v in fields.values.values()):
        reference.SpecificCharacterSet = "ISO_IR 192"  # UTF-8
    return reference, fields


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
    content = report[0]
    content.ContentSequence.append(_texts(diagnosis))
    sr = hd.sr.ComprehensiveSR(
        evidence=[source],
        content=content,
        series_instance_uid=generate_uid(),
        series_number=SR_SERIES_NUMBER,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        is_complete=True,
    )
    sr.SeriesDescription = SR_SERIES_DESCRIPTION  # after construction (PACS.md)
    return sr


def _texts(diagnosis: Diagnosis) -> hd.sr.ContainerContentItem:
    """TID 1500's "Qualitative Evaluations": disclaimer, call, flags (labelled) and notes."""
    call = reading(diagnosis)
    low, high = call.band
    band = f"indeterminate band {low:.3f}-{high:.3f} ({call.band_source})"
    lines = [
        ("disclaimer", DISCLAIMER),
        ("reading", f"{call.text} (P(residual) {diagnosis.probability:.3f}, {band})"),
        *(("flag", f"{flag}: {flag_label(flag)}") for flag in diagnosis.flags),
        *(("flag", f"{v.view} view: {flag_label(f)}") for v in diagnosis.views for f in v.flags),
        *(("note", note) for note in diagnosis.notes),
    ]  # fmt: skip
    container = hd.sr.ContainerContentItem(
        name=QUALITATIVE_EVALUATIONS, relationship_type=hd.sr.RelationshipTypeValues.CONTAINS
    )
    container.ContentSequence = hd.sr.ContentSequence(
        [
            hd.sr.TextContentItem(
                name=CODES[kind],
                value=text[:MAX_TEXT],
                relationship_type=hd.sr.RelationshipTypeValues.CONTAINS,
            )
            for kind, text in lines
        ]
    )
    return container


def build_sc(
    source: Dataset, overlay: ViewOverlay, series_uid: str, instance_number: int, text: str
) -> hd.sc.SCImage:
    """A Secondary Capture of one view's overlay, annotated (view, R/L, `text`, colour bar,
    "NOT FOR DIAGNOSTIC USE" burned in), in `source`'s patient and study."""
    sc = hd.sc.SCImage.from_ref_dataset(
        ref_dataset=source,
        pixel_array=annotated_view(overlay, text),
        photometric_interpretation=hd.PhotometricInterpretationValues.RGB,
        bits_allocated=8,
        coordinate_system=hd.CoordinateSystemNames.PATIENT,
        series_instance_uid=series_uid,
        series_number=SC_SERIES_NUMBER,
        sop_instance_uid=generate_uid(),
        instance_number=instance_number,
        manufacturer=MANUFACTURER,
        patient_orientation=ORIENTATION[overlay.view],
    )
    sc.SeriesDescription = SC_SERIES_DESCRIPTION
    sc.BurnedInAnnotation = "YES"
    sc.ImageComments = (
        f"Grad-CAM of class residual, {overlay.view.value} view; display only, "
        "not for diagnostic use"
    )
    return sc


def write_dicom_results(
    source: str | Path | Dataset,
    diagnosis: Diagnosis,
    overlays: Sequence[ViewOverlay],
    out_dir: str | Path,
    stem: str = "",
) -> dict[str, Path]:
    """Write the SR and one Secondary Capture per overlay into `out_dir`.

    `source` is the source file or its `reference_header`. Files: `[<stem>_]thyrocad_sr.dcm`
    (key "sr") and `[<stem>_]thyrocad_sc_<view>.dcm` (keys "sc_<view>"); returns key -> path.
    DicomResultError if highdicom refuses an object (its message is not echoed: it may quote
    a value); OSError (disk full...) as raised.
    """
    if not isinstance(source, Dataset):
        source, _ = reference_header(source)
    folder = Path(out_dir)
    prefix = f"{stem}_" if stem else ""
    objects = {"sr": (_built(build_sr, copy.deepcopy(source), diagnosis), SR_NAME)}
    series_uid = generate_uid()
    unique = len({o.view for o in overlays}) == len(overlays)
    for k, overlay in enumerate(overlays, start=1):
        label = overlay.view.value if unique else f"{overlay.view.value}{k}"
        sc = _built(build_sc, source, overlay, series_uid, k, caption(diagnosis))
        objects[f"sc_{label}"] = (sc, SC_NAME.format(view=label))
    folder.mkdir(parents=True, exist_ok=True)  # only once every object is built
    written = {}
    for key, (ds, name) in objects.items():
        path = folder / f"{prefix}{name}"
        ds.save_as(path, enforce_file_format=True)
        written[key] = path
    logger.debug("wrote %d DICOM result object(s)", len(written))
    return written


def _built(builder, *args):
    """`builder(*args)`; a library's refusal as DicomResultError without its message."""
    try:
        with quiet():  # highdicom's warnings quote names
            return builder(*args)
    except (ValueError, TypeError, AttributeError, KeyError) as exc:
        raise DicomResultError(
            f"highdicom refused a result object ({describe_exception(exc)})"
        ) from None


def is_result_file(path: Path) -> bool:
    """Whether `path` is named like a result written here (skipped when scanning inputs)."""
    return any(s in path.name for s in RESULT_MARKERS)
