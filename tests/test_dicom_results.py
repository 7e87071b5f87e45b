"""thyrocad.diagnosis.dicom_sr: SR + Secondary Capture written, read back, references checked;
patient and study values from real PACS data that break DICOM's rules are sanitised, never a
reason to fail, never echoed."""

from __future__ import annotations

import logging

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.sr.codedict import codes
from pydicom.tag import Tag

import thyrocad
from dicom_factory import SENTINEL_ID, SENTINEL_NAME, nm_dataset, view_code, write_dicom
from thyrocad.diagnosis.dicom_sr import (
    CODES,
    SC_SERIES_DESCRIPTION,
    SR_SERIES_DESCRIPTION,
    reference_header,
    write_dicom_results,
)
from thyrocad.diagnosis.explain import ViewOverlay, overlay_original
from thyrocad.diagnosis.figures import annotated_view
from thyrocad.diagnosis.predictor import Predictor
from thyrocad.diagnosis.reading import DISCLAIMER, caption
from thyrocad.errors import DicomResultError
from thyrocad.io.read import read_study
from thyrocad.study import View

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def predictor(inference_bundle) -> Predictor:
    return Predictor.from_bundle(inference_bundle, threads=1)


@pytest.fixture
def source(tmp_path, inference_files):
    """A two-view NM file with phantom counts and sentinel patient name/ID (no StudyID etc.)."""
    study = read_study(inference_files[1])
    frames = [study.image(View.ANTERIOR), study.image(View.POSTERIOR)]
    ds = nm_dataset(
        [f.astype(np.uint16) for f in frames],
        (view_code(View.ANTERIOR), view_code(View.POSTERIOR)),
        pixel_spacing=study.pixel_spacing_mm,
    )
    return write_dicom(ds, tmp_path / "in" / "study.dcm")


def _results(predictor, path, out_dir, stem=""):
    study = read_study(path)
    analysis = predictor.analyse(study, explain=True)
    overlays = [
        ViewOverlay(hm.view, overlay_original(study.image(hm.view), hm)) for hm in analysis.heatmaps
    ]
    written = write_dicom_results(path, analysis.diagnosis, overlays, out_dir, stem)
    return analysis.diagnosis, overlays, written


def test_sr_references_the_source_and_holds_the_diagnosis(predictor, source, tmp_path):
    diagnosis, _, written = _results(predictor, source, tmp_path / "out")
    assert {key: p.name for key, p in written.items()} == {
        "sr": "thyrocad_sr.dcm",
        "sc_anterior": "thyrocad_sc_anterior.dcm",
        "sc_posterior": "thyrocad_sc_posterior.dcm",
    }
    assert all(p.parent == tmp_path / "out" for p in written.values())
    src = pydicom.dcmread(source, stop_before_pixels=True)
    sr = hd.sr.srread(written["sr"])
    assert sr.StudyInstanceUID == src.StudyInstanceUID
    assert sr.PatientID == SENTINEL_ID and str(sr.PatientName) == SENTINEL_NAME
    assert sr.SeriesDescription == SR_SERIES_DESCRIPTION
    evidence = sr.CurrentRequestedProcedureEvidenceSequence[0]
    assert evidence.StudyInstanceUID == src.StudyInstanceUID
    referenced = evidence.ReferencedSeriesSequence[0].ReferencedSOPSequence[0]
    assert referenced.ReferencedSOPInstanceUID == src.SOPInstanceUID
    (group,) = sr.content.get_image_measurement_groups()
    values = {m.name.value: m.value for m in group.get_measurements()}
    assert values[CODES["probability"].value] == pytest.approx(diagnosis.probability, abs=1e-6)
    op = diagnosis.operating_point
    assert values[CODES["threshold"].value] == pytest.approx(op.threshold, abs=1e-6)
    assert values[CODES["sensitivity"].value] == pytest.approx(op.train_sensitivity, abs=1e-6)
    assert values[CODES["specificity"].value] == pytest.approx(op.train_specificity, abs=1e-6)
    per_view = {v.view: v.probability for v in diagnosis.views}
    assert values[CODES[View.ANTERIOR].value] == pytest.approx(per_view["anterior"], abs=1e-6)
    assert values[CODES[View.POSTERIOR].value] == pytest.approx(per_view["posterior"], abs=1e-6)
    (evaluation,) = group.get_qualitative_evaluations()
    assert evaluation.name.value == CODES["evaluation"].value
    expected = codes.SCT.Present if diagnosis.positive else codes.SCT.Absent
    assert evaluation.value.value == expected.value
    (image,) = group.source_images
    assert image.referenced_sop_instance_uid == src.SOPInstanceUID
    texts = _text_items(sr)
    assert texts["Disclaimer"] == {DISCLAIMER}
    (call,) = texts["Call for the physician"]
    assert call.startswith(caption(diagnosis).split(" · ")[0])
    assert texts["Algorithm Name"] == {"thyrocad resnet18"}
    (version,) = texts["Algorithm Version"]
    assert version.startswith(thyrocad.__version__)
    assert diagnosis.model["weights_sha256"][:16] in version


def _text_items(ds) -> dict[str, set[str]]:
    """Concept name meaning -> text values of every TEXT item in an SR content tree."""
    out: dict[str, set[str]] = {}
    for item in ds.get("ContentSequence", []):
        if item.ValueType == "TEXT":
            name = item.ConceptNameCodeSequence[0].CodeMeaning
            out.setdefault(name, set()).add(str(item.TextValue))
        for key, values in _text_items(item).items():
            out.setdefault(key, set()).update(values)
    return out


def test_secondary_captures_show_each_view_in_the_source_study(predictor, source, tmp_path):
    diagnosis, overlays, written = _results(predictor, source, tmp_path / "out")
    src = pydicom.dcmread(source, stop_before_pixels=True)
    assert len(overlays) == 2
    for overlay in overlays:
        path = written[f"sc_{overlay.view.value}"]
        sc = pydicom.dcmread(path)
        assert sc.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7"
        assert sc.StudyInstanceUID == src.StudyInstanceUID and sc.PatientID == SENTINEL_ID
        assert sc.SeriesDescription == SC_SERIES_DESCRIPTION
        assert list(sc.PatientOrientation) == (["L", "F"] if overlay.view is View.ANTERIOR
                                               else ["R", "F"])  # fmt: skip
        # The overlay annotated for display (view, R/L, call, colour bar, not for diagnosis).
        annotated = annotated_view(overlay, caption(diagnosis))
        assert sc.Rows > 256 and sc.Columns > 256 and sc.SamplesPerPixel == 3
        assert np.array_equal(sc.pixel_array, annotated)
        assert sc.BurnedInAnnotation == "YES" and "not for diagnostic use" in sc.ImageComments
        assert "PixelSpacing" not in sc  # the annotated image is not the view's pixel grid


def test_a_stem_prefixes_every_file_name(predictor, source, tmp_path):
    """(Results next to the input, named after it: `thyrocad predict --dicom`, tested in
    test_inference_cli.py.)"""
    _, _, written = _results(predictor, source, tmp_path / "out", stem="study")
    assert sorted(p.name for p in written.values()) == [
        "study_thyrocad_sc_anterior.dcm", "study_thyrocad_sc_posterior.dcm",
        "study_thyrocad_sr.dcm",
    ]  # fmt: skip
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        p.name for p in written.values()
    )


def test_source_without_uids_is_refused(predictor, source, tmp_path):
    ds = pydicom.dcmread(source)
    del ds.StudyInstanceUID
    bad = tmp_path / "no-study-uid.dcm"
    ds.save_as(bad, enforce_file_format=True)
    diagnosis = predictor.predict(read_study(source))
    with pytest.raises(DicomResultError, match="StudyInstanceUID"):
        write_dicom_results(bad, diagnosis, [], tmp_path / "out")


# --- patient and study values from real PACS data --------------------------------------------


def _raw(ds, keyword: str, vr: str, value: bytes) -> None:
    """Put `value` into `ds` as stored bytes, as a PACS would send it (pydicom would refuse)."""
    tag = Tag(tag_for_keyword(keyword))
    value += b" " * (len(value) % 2)
    ds._dict[tag] = RawDataElement(tag, vr, len(value), value, 0, False, True)


NON_CONFORMANT = [
    # (keyword, VR, stored value, value in the results, note names the attribute)
    ("PatientBirthDate", "DA", b"1970-01-01", "19700101", "reformatted"),
    ("PatientBirthDate", "DA", b"19700101RT", "19700101", "trailing text dropped"),
    ("PatientBirthDate", "DA", b"19701301", "", "not a valid date"),
    ("PatientBirthDate", "DA", b"unknown", "", "not a date"),
    ("PatientSex", "CS", b"X", "", "not M, F or O"),
    ("PatientSex", "CS", b"male", "M", "mapped"),
    ("PatientSex", "CS", b"W", "", "not M, F or O"),
    ("PatientName", "PN", b"ZZSENTINEL^" + b"A" * 90, "ZZSENTINEL^" + "A" * 53, "truncated"),
    ("PatientID", "LO", b"ZZSENTINEL-ID-" + b"9" * 70, "ZZSENTINEL-ID-" + "9" * 50, "truncated"),
    ("AccessionNumber", "SH", b"ACC-" + b"7" * 20, "ACC-" + "7" * 12, "truncated"),
    ("StudyDate", "DA", b"2020/03/04", "20200304", "reformatted"),
    ("StudyTime", "TM", b"12:30:05", "123005", "reformatted"),
    ("StudyTime", "TM", b"25:99", "", "not a valid time"),
]


@pytest.mark.parametrize(("keyword", "vr", "stored", "expected", "note"), NON_CONFORMANT)
def test_non_conformant_patient_fields_are_sanitised(
    predictor, source, tmp_path, caplog, keyword, vr, stored, expected, note
):
    ds = pydicom.dcmread(source)
    _raw(ds, keyword, vr, stored)
    path = tmp_path / "pacs.dcm"
    ds.save_as(path, enforce_file_format=True)
    caplog.set_level(logging.DEBUG)
    reference, fields = reference_header(path)
    assert fields.values[keyword] == expected
    (written_note,) = fields.notes
    assert written_note.startswith(keyword) and note in written_note
    assert stored.decode() not in written_note  # the note names the attribute, not the value
    diagnosis = predictor.predict(read_study(path)).with_note(written_note)
    written = write_dicom_results(reference, diagnosis, [], tmp_path / "out")
    sr = hd.sr.srread(written["sr"])
    assert str(sr.get(keyword, "")) == expected
    assert written_note in _text_items(sr)["Note"]
    assert sr.StudyInstanceUID == ds.StudyInstanceUID
    secrets = [SENTINEL_NAME] + ([stored.decode()] if len(stored) > 3 else [])  # not "W"
    assert not [s for s in secrets if s in caplog.text]
