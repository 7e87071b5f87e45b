"""`thyrocad predict`: files and folders, bad files reported and skipped, outputs written."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from dicom_factory import SENTINEL_ID, SENTINEL_NAME, nm_dataset, view_code, write_dicom
from thyrocad.cli.main import app
from thyrocad.diagnosis.predictor import Predictor
from thyrocad.io.read import read_study
from thyrocad.study import View

pytestmark = pytest.mark.usefixtures("one_thread")
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, inference_files):
    """A folder with good and bad inputs of every kind the command must handle."""
    root = tmp_path_factory.mktemp("inputs")
    good = inference_files[0]
    shutil.copy(good, root / "good.dcm")
    study = read_study(good)
    frames = [study.image(v).astype(np.uint16) for v in (View.ANTERIOR, View.POSTERIOR)]
    codes = (view_code(View.ANTERIOR), view_code(View.POSTERIOR))
    write_dicom(nm_dataset(frames, codes, pixel_spacing=(2.2, 2.2)), root / "sentinel.dcm")
    write_dicom(nm_dataset(modality="CT", sop_class=CT_IMAGE_STORAGE), root / "ct.dcm")
    tomo = ("ORIGINAL", "PRIMARY", "TOMO", "EMISSION")
    write_dicom(nm_dataset(image_type=tomo), root / "spect.dcm")
    data = (root / "good.dcm").read_bytes()
    (root / "sub").mkdir()
    (root / "sub" / "truncated.dcm").write_bytes(data[: len(data) // 2])
    image = np.clip(study.image(View.ANTERIOR) * 40, 0, 255).astype(np.uint8)
    Image.fromarray(image).save(root / "sub" / "export.png")
    (root / "labels.csv").write_text("not,an,image\n")  # skipped inside a folder
    return root


@pytest.fixture
def invoke(inference_bundle):
    """`thyrocad predict BUNDLE ARGS... --threads 1` in this process."""

    def run(*args: str):
        return CliRunner().invoke(app, ["predict", str(inference_bundle), *args, "--threads", "1"])

    return run


def test_folder_with_bad_files_reports_each_and_diagnoses_the_rest(inputs, tmp_path, invoke):
    out = tmp_path / "results.json"
    result = invoke(
        str(inputs), "--out", str(out), "--heatmaps", str(tmp_path / "hm"),
        "--dicom-out", str(tmp_path / "dcm"),
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    failed = [line for line in result.output.splitlines() if line.startswith("failed")]
    assert len(failed) == 3
    assert any("ct.dcm: NotNuclearMedicineError" in line for line in failed)
    assert any("spect.dcm: NotPlanarError" in line for line in failed)
    assert any("truncated.dcm: " in line for line in failed)
    assert "3 diagnosed, 3 failed" in result.output
    assert SENTINEL_ID not in result.output and SENTINEL_NAME.split("^")[0] not in result.output
    rows = {r["path"].split("/")[-1]: r for r in json.loads(out.read_text())}
    assert set(rows) == {"good.dcm", "sentinel.dcm", "export.png", "ct.dcm", "spect.dcm",
                         "truncated.dcm"}  # fmt: skip
    assert SENTINEL_ID not in out.read_text()
    good = rows["good.dcm"]
    d = good["diagnosis"]
    called = d["probability"] >= d["operating_point"]["threshold"]
    assert d["verdict"] == ("residual" if called else "non_residual") and d["positive"] == called
    assert [v["view"] for v in d["views"]] == ["anterior", "posterior"] and not good["error"]
    assert rows["sentinel.dcm"]["diagnosis"]["probability"] == pytest.approx(d["probability"])
    png = rows["export.png"]["diagnosis"]
    assert png["notes"] == ["PNG/JPEG input: no DICOM output written"]
    assert sorted(p.name for p in (tmp_path / "dcm").iterdir()) == [
        f"{stem}_thyrocad_{kind}.dcm" for stem in ("good", "sentinel")
        for kind in ("sc_anterior", "sc_posterior", "sr")
    ]  # fmt: skip
    assert all(Path(p).is_file() for row in rows.values() for p in row["outputs"])
    assert (tmp_path / "hm" / "good_anterior_gradcam.png").is_file()
    assert (tmp_path / "hm" / "export_gradcam_input.png").is_file()


def test_csv_output_and_threshold_override(tmp_path, invoke, inference_bundle, inference_files):
    out = tmp_path / "r.csv"
    files = inference_files[:2]
    result = invoke(*map(str, files), "--out", str(out), "--threshold", "0")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(out.open()))
    assert [r["path"] for r in rows] == [str(f) for f in files]
    assert [r["verdict"] for r in rows] == ["residual", "residual"]
    assert all(r["threshold_source"] == "override" and r["threshold"] == "0.000000" for r in rows)
    assert all(r["fusion"] == "mean" and r["error"] == "" for r in rows)
    # each view's probability is the diagnosis' for that view, the fused one their mean
    predictor = Predictor.from_bundle(inference_bundle)
    for row, path in zip(rows, files, strict=True):
        expected = predictor.predict(read_study(path))
        by_view = {v.view: v.probability for v in expected.views}
        assert float(row["p_anterior"]) == pytest.approx(by_view["anterior"], abs=1e-6)
        assert float(row["p_posterior"]) == pytest.approx(by_view["posterior"], abs=1e-6)
        assert float(row["probability"]) == pytest.approx(expected.probability, abs=1e-6)
        fused = (float(row["p_anterior"]) + float(row["p_posterior"])) / 2
        assert float(row["probability"]) == pytest.approx(fused, abs=2e-6)


def test_dicom_results_go_next_to_the_input_by_default(tmp_path, invoke, inference_files):
    source = tmp_path / "in" / "study.dcm"
    source.parent.mkdir()
    source.write_bytes(inference_files[1].read_bytes())
    result = invoke(str(source), "--dicom")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in source.parent.iterdir()) == [
        "study.dcm", "study_thyrocad_sc_anterior.dcm", "study_thyrocad_sc_posterior.dcm",
        "study_thyrocad_sr.dcm",
    ]  # fmt: skip
    again = invoke(str(source.parent))  # a folder: thyrocad's own results are skipped
    assert again.exit_code == 0 and "1 diagnosed, 0 failed" in again.output


def test_missing_input_and_bad_bundle(tmp_path, invoke, bundle_copy, inference_files):
    result = invoke(str(tmp_path / "nope.dcm"))
    assert result.exit_code == 1 and "FileAccessError" in result.output
    broken = bundle_copy()
    (broken / "weights.pt").unlink()
    result = CliRunner().invoke(app, ["predict", str(broken), str(inference_files[0])])
    assert result.exit_code == 1 and "error: BundleError: " in result.stderr
