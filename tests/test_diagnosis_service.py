"""thyrocad.diagnosis.service: the files of one study in, a diagnosis and the outputs asked for
out, as `predict`, the web app and the DICOM node use it."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import dicom_factory as factory
from thyrocad.diagnosis.service import (
    NO_DICOM_NOTE,
    VERDICT_TEXT,
    DiagnosisService,
    Outputs,
    read_files,
)
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
        "overlay", "report_png", "report_pdf",
    }  # fmt: skip
    for key, path in outcome.files.items():
        assert path.is_file() and path.stat().st_size > 0, key
        assert path.name.startswith("s1_"), path.name
    assert outcome.files["sr"].parent == tmp_path / "dcm"
    assert outcome.files["report_pdf"].read_bytes().startswith(b"%PDF")
    assert Image.open(outcome.files["gradcam_anterior"]).mode == "RGB"
    assert len(outcome.analysis.heatmaps) == 2
    assert outcome.summary()["files"] == {k: p.name for k, p in outcome.files.items()}


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
    study, sources = read_files(per_view_files)
    assert study.views == (View.ANTERIOR, View.POSTERIOR) and sources == per_view_files
    with pytest.raises(StudyMergeError, match="give each view once"):
        read_files([per_view_files[0], per_view_files[0]])
    with pytest.raises(InputError, match="no files"):
        read_files([])


def test_model_card_says_what_the_model_was_trained_on(service):
    card = service.model_card
    manifest = service.predictor.info.manifest
    assert card["model"] == "resnet18" and card["synthetic"] is True
    assert service.model_version == f"resnet18-{manifest['weights_sha256'][:12]}"
    assert f"{manifest['threshold']['value']:.3f}" in card["operating_point"]
    assert "a random initialisation" in card["trained_on"]
    counts = manifest["train_class_counts"]
    assert (
        f"{counts['residual']} residual and {counts['non_residual']} non-residual"
        in (card["trained_on"])
    )
