"""thyrocad.diagnosis.service: the files of one study in, a diagnosis and the outputs asked for
out, as `predict`, the web app and the DICOM node use it; the kept input and its re-run; the
annotated heatmaps; the reading (indeterminate band, labels)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from PIL import Image
from pydicom import dcmread

import dicom_factory as factory
from thyrocad.diagnosis.explain import ViewOverlay, overlay_original
from thyrocad.diagnosis.figures import NOT_FOR_DIAGNOSIS, annotated_figure, report_figure
from thyrocad.diagnosis.reading import FALLBACK_HALF_WIDTH, caption, flag_label, reading
from thyrocad.diagnosis.service import (
    NO_DICOM_NOTE,
    VERDICT_TEXT,
    DiagnosisService,
    Outputs,
    diagnosis_summary,
    model_card,
)
from thyrocad.diagnosis.source import StudySource
from thyrocad.errors import InputError, StudyMergeError
from thyrocad.io.read import read_study
from thyrocad.study import View

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def service(inference_bundle) -> DiagnosisService:
    return DiagnosisService.from_bundle(inference_bundle, threads=1)


@pytest.fixture
def per_view_files(tmp_path, inference_files):
    """The views of the first phantom study as two single-view DICOM files of one study."""
    study = read_study(inference_files[0])
    paths = []
    for view in (View.ANTERIOR, View.POSTERIOR):
        ds = factory.nm_dataset(
            [study.image(view).astype(np.uint16)],
            [factory.view_code(view)],
            pixel_spacing=study.pixel_spacing_mm,
        )
        paths.append(factory.write_dicom(ds, tmp_path / f"{view.value}.dcm"))
    return paths


def test_only_the_diagnosis_when_no_output_is_asked_for(service, inference_files):
    outcome = service.diagnose([inference_files[0]])
    assert outcome.files == {} and outcome.analysis.heatmaps == ()  # no Grad-CAM ran
    assert outcome.diagnosis == service.predictor.predict(read_study(inference_files[0]))
    summary = outcome.summary()
    assert "source" not in summary and summary["files"] == {}
    assert summary["verdict_text"] == VERDICT_TEXT[outcome.diagnosis.verdict]
    assert summary["probability"] == outcome.diagnosis.probability


def test_every_output_is_written_with_the_stem(service, inference_files, tmp_path):
    outputs = Outputs(
        heatmaps=tmp_path / "hm", dicom=tmp_path / "dcm", figures=tmp_path / "fig", stem="s1"
    )
    outcome = service.diagnose([inference_files[1]], outputs)
    assert set(outcome.files) == {
        "gradcam_anterior", "gradcam_posterior", "gradcam_input_anterior",
        "gradcam_input_posterior", "sr", "sc_anterior", "sc_posterior", "views", "stages",
        "overlay", "bed_anterior", "bed_posterior", "report_png", "report_pdf",
    }  # fmt: skip
    for key, path in outcome.files.items():
        assert path.is_file() and path.stat().st_size > 0, key
        assert path.name.startswith("s1_"), path.name
    assert outcome.files["sr"].parent == tmp_path / "dcm"
    assert outcome.files["report_pdf"].read_bytes().startswith(b"%PDF")
    assert Image.open(outcome.files["gradcam_anterior"]).mode == "RGB"
    assert len(outcome.analysis.heatmaps) == 2
    assert outcome.summary()["files"] == {k: p.name for k, p in outcome.files.items()}


def test_non_conformant_patient_fields_never_fail_a_diagnosis(service, tmp_path):
    """`predict --dicom-out` and the node used to fail with highdicom's "Unable to convert
    '1970-01-01' to 'DA' object"; now the value is fixed and the SR says so."""
    ds = factory.nm_dataset(frames=[factory.counts_image(128, 128, seed=s) for s in (1, 2)])
    ds.PatientBirthDate, ds.PatientSex = "19700101RT", "male"
    path = factory.write_dicom(ds, tmp_path / "pacs.dcm")
    outcome = service.diagnose([path], Outputs(dicom=tmp_path / "dcm"))
    assert set(outcome.files) == {"sr", "sc_anterior", "sc_posterior"}
    assert outcome.diagnosis.notes == (
        "PatientBirthDate reformatted to YYYYMMDD (trailing text dropped)",
        "PatientSex mapped to M/F/O",
    )
    assert outcome.source.identity["birth_date"] == "19700101"


def test_png_input_gets_a_note_instead_of_dicom_results(service, inference_files, tmp_path):
    counts = read_study(inference_files[0]).image(View.ANTERIOR)
    png = tmp_path / "export.png"
    Image.fromarray(np.clip(counts * 40, 0, 255).astype(np.uint8)).save(png)
    outcome = service.diagnose([png], Outputs(dicom=tmp_path / "dcm"))
    assert outcome.diagnosis.notes == (NO_DICOM_NOTE,)
    assert outcome.files == {} and not (tmp_path / "dcm").exists()


def test_one_file_per_view_is_one_study(service, inference_files, per_view_files, tmp_path):
    merged = service.diagnose(per_view_files, Outputs(dicom=tmp_path / "dcm"))
    whole = service.diagnose([inference_files[0]])
    assert [v.view for v in merged.diagnosis.views] == ["anterior", "posterior"]
    assert merged.diagnosis.probability == pytest.approx(whole.diagnosis.probability, abs=1e-6)
    assert set(merged.files) == {"sr", "sc_anterior", "sc_posterior"}


def test_files_that_cannot_form_one_study_are_refused(per_view_files, tmp_path):
    source = StudySource.read(per_view_files)
    assert source.study.views == (View.ANTERIOR, View.POSTERIOR) and len(source.references) == 2
    with pytest.raises(StudyMergeError, match="give each view once"):
        StudySource.read([per_view_files[0], per_view_files[0]])
    with pytest.raises(InputError, match="no files"):
        StudySource.read([])


def test_kept_input_diagnoses_the_same_and_takes_a_bed(service, inference_files, tmp_path):
    """What the web app keeps instead of the upload: the views and the reference header,
    enough to diagnose again (with a bed set by a person) and write the DICOM results."""
    first = service.diagnose([inference_files[0]], Outputs(keep_input=tmp_path / "kept"))
    kept = sorted(p.name for p in (tmp_path / "kept").iterdir())
    assert kept == ["input.npz", "input_reference_0.dcm"]
    source = StudySource.load(tmp_path / "kept")
    again = service.diagnose_source(source, Outputs(dicom=tmp_path / "dcm"))
    assert again.diagnosis.probability == pytest.approx(first.diagnosis.probability, abs=1e-6)
    assert source.identity["id"] == str(dcmread(inference_files[0]).PatientID)
    assert set(again.files) == {"sr", "sc_anterior", "sc_posterior"}
    box = first.diagnosis.views[0].crop_box
    bed = ((box[0] + box[2]) / 2 + 10, (box[1] + box[3]) / 2)
    moved = service.diagnose_source(source, beds={"anterior": bed})
    assert "bed_set_by_user" in moved.diagnosis.views[0].flags
    assert moved.diagnosis.views[0].crop_box != box
    with pytest.raises(InputError, match="not kept"):
        StudySource.load(tmp_path / "nothing-here")


def test_heatmaps_are_annotated(service, inference_files, tmp_path):
    outcome = service.diagnose([inference_files[1]], Outputs(heatmaps=tmp_path))
    image = np.asarray(Image.open(outcome.files["gradcam_anterior"]))
    overlay = outcome.analysis.views[0].result.stages["original"]
    assert image.shape[0] > overlay.shape[0] and image.shape[1] > overlay.shape[1]
    hm = outcome.analysis.heatmaps[0]
    item = ViewOverlay(hm.view, overlay_original(overlay, hm))
    fig = annotated_figure(item, caption(outcome.diagnosis))
    texts = {t.get_text() for ax in fig.axes for t in ax.texts} | {t.get_text() for t in fig.texts}
    assert {NOT_FOR_DIAGNOSIS, "ANTERIOR", "R", "L", caption(outcome.diagnosis)} <= texts
    assert len(fig.axes) == 2  # the view and its colour bar
    marks = {t.get_text(): t.get_position()[0] for t in fig.axes[0].texts}
    assert marks["R"] < marks["L"]  # anterior: the patient's right on the viewer's left
    posterior = annotated_figure(dataclasses.replace(item, view=View.POSTERIOR), "x")
    marks = {t.get_text(): t.get_position()[0] for t in posterior.axes[0].texts}
    assert marks["L"] < marks["R"]
    unknown = annotated_figure(dataclasses.replace(item, view=View.UNKNOWN), "x")
    assert not unknown.axes[0].texts  # no side marks when the projection is unknown


def test_report_names_the_patient_only_when_asked(service, inference_files, tmp_path):
    outcome = service.diagnose([inference_files[0]])
    summary = diagnosis_summary(outcome.diagnosis)
    identity = {"name": "DOE^JANE", "id": "P-77", "birth_date": "19700101", "study_date": "",
                "accession": "A1", "sex": "F"}  # fmt: skip
    named = report_figure(outcome.study, summary, "m", tmp_path / "none.png", identity)
    text = " ".join(t.get_text() for t in named.texts)
    assert "DOE^JANE" in text and "P-77" in text and "born 1970-01-01" in text
    assert summary["reading"]["call_text"].upper() in text
    anonymous = report_figure(outcome.study, summary, "m", tmp_path / "none.png", None)
    assert "identity not stored" in " ".join(t.get_text() for t in anonymous.texts)


def test_report_text_is_wrapped_inside_the_page(service, inference_files, tmp_path):
    outcome = service.diagnose([inference_files[0]])
    note = "a long note " + " ".join(f"word{i}" for i in range(60))
    summary = diagnosis_summary(outcome.diagnosis.with_note(note))
    fig = report_figure(outcome.study, summary, "m", tmp_path / "none.png", None)
    (text,) = fig.texts
    assert " ".join(text.get_text().split()).count(note) == 1  # every word, in order
    renderer = FigureCanvasAgg(fig).get_renderer()
    assert text.get_window_extent(renderer).x1 <= fig.bbox.x1  # no line runs off the page


def test_reading_band_and_labels(service, inference_files):
    diagnosis = service.diagnose([inference_files[0]]).diagnosis
    op = dataclasses.replace(diagnosis.operating_point, indeterminate=None)  # no bundle band
    diagnosis = dataclasses.replace(diagnosis, operating_point=op)
    near = dataclasses.replace(diagnosis, probability=op.threshold - 0.002)
    far = dataclasses.replace(
        diagnosis, probability=max(0.0, op.threshold - 0.3), verdict="non_residual"
    )
    assert reading(near).call == "indeterminate" and reading(near).band_source == "fallback"
    assert reading(near).band == pytest.approx(
        (max(0, op.threshold - FALLBACK_HALF_WIDTH), min(1, op.threshold + FALLBACK_HALF_WIDTH))
    )
    assert reading(far).call == "non_residual"
    banded = dataclasses.replace(
        diagnosis, operating_point=dataclasses.replace(op, indeterminate=(0.1, 0.9)),
        probability=0.85,
    )  # fmt: skip
    assert reading(banded).call == "indeterminate" and reading(banded).band_source == "bundle"
    assert flag_label("not_i131: Tc-99m") == "not an I-131 acquisition: Tc-99m"
    assert flag_label("bed_uncertain") == "thyroid bed position uncertain"
    assert flag_label("something_new: x") == "something_new: x"  # unknown flags verbatim


def test_model_card_says_what_the_model_was_trained_on(service):
    card = service.model_card
    manifest = service.predictor.info.manifest
    assert card["model"] == "resnet18" and card["synthetic"] is True
    assert service.model_version == f"resnet18-{manifest['weights_sha256'][:12]}"
    assert f"{manifest['threshold']['value']:.3f}" in card["operating_point"]
    assert "a random initialisation" in card["trained_on"]
    low, high = manifest["threshold"]["indeterminate"]  # head mode: out-of-fold band
    assert f"{low:.3f}-{high:.3f} (from the model bundle)" in card["indeterminate_band"]
    no_band = dataclasses.replace(service.predictor.operating_point, indeterminate=None)
    assert "fallback" in model_card(manifest, service.model_version, no_band)["indeterminate_band"]
    counts = manifest["train_class_counts"]
    assert (
        f"{counts['residual']} residual and {counts['non_residual']} non-residual"
        in (card["trained_on"])
    )


@pytest.mark.parametrize("kind", ["file", "hub-cache", "package"])
def test_model_card_names_imagenet_weights(service, kind):
    """A bundle fine-tuned from ImageNet weights (a torchvision file, the hub cache or a
    package) is described so; the server's log used to say "random initialisation"."""
    manifest = {**service.predictor.info.manifest, "initial_weights": {"kind": kind}}
    card = model_card(manifest, "v", service.predictor.operating_point)
    assert "started from ImageNet weights" in card["trained_on"]
