"""Thyroid-bed centres set by a person: `thyrocad predict --bed` and the bed columns of
labels.csv (cohort-check, preprocess, training and experiment inputs); bad coordinates are a
clear error with exit code 2."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import dicom_factory as factory
from test_whole_body import WB_IMAGE_TYPE, WB_SPACING, sweep
from thyrocad.cli.main import app
from thyrocad.cli.predict_cmd import parse_beds
from thyrocad.data.cohort import load_cohort
from thyrocad.errors import CohortError, ConfigError
from thyrocad.experiment.inputs import load_inputs
from thyrocad.preprocess import Pipeline, preset
from thyrocad.study import View
from thyrocad.training.workflow import cohort_train_data

pytestmark = pytest.mark.usefixtures("one_thread")
BED = "bed set by user"


@pytest.fixture
def predict(inference_bundle, tmp_path: Path):
    """`thyrocad predict BUNDLE ARGS... --out JSON`: (result, the JSON rows or None)."""

    def run(*args: str):
        out = tmp_path / "r.json"
        out.unlink(missing_ok=True)
        cli = ["predict", str(inference_bundle), *args, "--out", str(out), "--threads", "1"]
        result = CliRunner().invoke(app, cli)
        return result, json.loads(out.read_text()) if out.is_file() else None

    return run


def _view(rows: list[dict], name: str) -> dict:
    return next(v for v in rows[0]["diagnosis"]["views"] if v["view"] == name)


def _centre(box: list[int]) -> tuple[float, float]:
    return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2


def test_bed_options_parse() -> None:
    assert parse_beds(["120,128"]) == {"all": (120.0, 128.0)}
    assert parse_beds(["anterior=120,128", "POSTERIOR= 99.5,130"]) == {
        "anterior": (120.0, 128.0),
        "posterior": (99.5, 130.0),
    }
    assert parse_beds([]) == {}
    for bad in (["abc"], ["12"], ["1,2,3"], ["lateral=1,2"], ["-4,10"], ["nan,3"],
                ["1,2", "anterior=3,4"], ["anterior=1,2", "anterior=3,4"]):  # fmt: skip
        with pytest.raises(ConfigError, match="--bed"):
            parse_beds(bad)


def test_one_bed_for_every_view(predict, inference_files) -> None:
    result, rows = predict(str(inference_files[0]), "--bed", "140,120")
    assert result.exit_code == 0, result.output
    for name in ("anterior", "posterior"):
        view = _view(rows, name)
        assert view["bed_rc"] == [140.0, 120.0]
        assert view["bed_reason"] == BED
        assert "bed_set_by_user" in view["flags"]
        assert _centre(view["crop_box"]) == pytest.approx((140, 120), abs=1)
    assert "bed_set_by_user" in rows[0]["diagnosis"]["flags"]


def test_one_bed_per_view(predict, inference_files) -> None:
    args = ("--bed", "anterior=140,120", "--bed", "posterior=100,136")
    result, rows = predict(str(inference_files[0]), *args)
    assert result.exit_code == 0, result.output
    assert _view(rows, "anterior")["bed_rc"] == [140.0, 120.0]
    assert _view(rows, "posterior")["bed_rc"] == [100.0, 136.0]
    only_anterior, rows = predict(str(inference_files[0]), "--bed", "anterior=140,120")
    assert only_anterior.exit_code == 0
    assert _view(rows, "posterior")["bed_reason"] != BED  # located as usual


@pytest.mark.parametrize(
    ("bed", "message"),
    [("abc", "give ROW,COL"), ("x,3", "not a row and a column"),
     ("5000,10", "lies outside the anterior view"), ("lateral=1,2", "unknown view"),
     ("anterior=", "give ROW,COL")],
)  # fmt: skip
def test_a_bad_coordinate_is_a_clear_error_with_exit_2(predict, inference_files, bed, message):
    result, _ = predict(str(inference_files[0]), "--bed", bed)
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())
    assert "Traceback" not in result.output


def test_a_bed_that_fits_one_file_but_not_another_keeps_the_results(
    predict, inference_files, tmp_path: Path
) -> None:
    small = factory.write_dicom(
        factory.nm_dataset(pixel_spacing=(2.2, 2.2)), tmp_path / "small.dcm"
    )  # 64 x 64
    result, rows = predict(str(inference_files[0]), str(small), "--bed", "140,120")
    assert result.exit_code == 2
    assert rows[0]["diagnosis"]["views"][0]["bed_rc"] == [140.0, 120.0]
    assert "lies outside" in rows[1]["error"]


@pytest.mark.slow
def test_a_bed_on_a_whole_body_sweep_is_in_sweep_pixels(predict, tmp_path: Path) -> None:
    codes = [factory.view_code(View.ANTERIOR), factory.view_code(View.POSTERIOR)]
    ds = factory.nm_dataset(
        [sweep(0), sweep(1)],
        codes,
        pixel_spacing=(WB_SPACING, WB_SPACING),
        image_type=WB_IMAGE_TYPE,
    )
    path = factory.write_dicom(ds, tmp_path / "wb.dcm")
    result, rows = predict(str(path), "--bed", "200,128")
    assert result.exit_code == 0, result.output
    view = _view(rows, "anterior")
    assert view["bed_rc"] == [200.0, 128.0]
    assert view["field_box"][0] < 200 < view["field_box"][2]
    assert _centre(view["crop_box"]) == pytest.approx((200, 128), abs=1)
    outside, _ = predict(str(path), "--bed", "900,128")  # the legs, outside the neck field
    assert outside.exit_code == 2
    assert "neck field" in " ".join(outside.output.split())


# --- labels.csv ------------------------------------------------------------------------------


@pytest.fixture
def bed_cohort(tmp_path: Path, inference_cohort: Path) -> Path:
    """A copy of the inference cohort whose labels.csv sets the anterior bed of one patient."""
    root = tmp_path / "cohort"
    shutil.copytree(inference_cohort, root)
    _set_beds(root, {0: {"bed_row_anterior": "140", "bed_col_anterior": "120"}})
    return root


def _set_beds(root: Path, beds: dict[int, dict[str, str]]) -> None:
    """Add the bed columns to labels.csv, with `beds[row index]` filled in."""
    path = root / "labels.csv"
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    added = [c for c in ("bed_row", "bed_col", "bed_row_anterior", "bed_col_anterior")
             if c not in rows[0]]  # fmt: skip
    columns = [*rows[0], *added]
    for i, row in enumerate(rows):
        row.update({c: "" for c in columns if c.startswith("bed_")}, **beds.get(i, {}))
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def test_cohort_beds_are_read_checked_and_hashed(bed_cohort: Path, inference_cohort) -> None:
    cohort = load_cohort(bed_cohort)
    first = cohort.patients[0].cohort_files[0]
    assert dict(first.beds) == {"anterior": (140.0, 120.0)}
    assert "bed_row_anterior" not in first.attributes  # not an extra column
    _, beds = cohort.patients[0].load_study_with_beds()
    assert beds == {"anterior": (140.0, 120.0)}
    assert cohort.patients[1].load_study_with_beds()[1] == {}
    assert cohort.data_hash() != load_cohort(inference_cohort).data_hash()
    _set_beds(bed_cohort, {})
    assert load_cohort(bed_cohort).data_hash() == load_cohort(inference_cohort).data_hash()


@pytest.mark.parametrize(
    ("beds", "problem"),
    [({"bed_row": "x", "bed_col": "3"}, "is not a row and a column"),
     ({"bed_row": "12"}, "bed_row and bed_col must both be given"),
     ({"bed_row": "1", "bed_col": "2", "bed_row_anterior": "3", "bed_col_anterior": "4"},
      "give one or the other"),
     ({"bed_row": "300", "bed_col": "20"}, "lies outside the anterior view")],
)  # fmt: skip
def test_cohort_check_reports_bad_beds_with_their_line(bed_cohort: Path, beds, problem) -> None:
    _set_beds(bed_cohort, {1: beds})
    with pytest.raises(CohortError) as info:
        load_cohort(bed_cohort)
    assert any(p.startswith("labels.csv line 3: ") and problem in p for p in info.value.problems)
    result = CliRunner().invoke(app, ["cohort-check", str(bed_cohort)])
    assert result.exit_code == 1
    assert problem.split()[0] in result.output


def test_preprocess_training_and_experiment_use_the_cohort_beds(
    bed_cohort: Path, tmp_path: Path
) -> None:
    out = tmp_path / "pre"
    result = CliRunner().invoke(app, ["preprocess", str(bed_cohort), "--out", str(out)])
    assert result.exit_code == 0, result.output
    index = (out / "index.html").read_text()
    legend = (
        "<dt>bed_set_by_user</dt><dd>the bed centre was given by a person, not located (1 view)"
    )
    assert legend in index  # one view of one patient
    assert index.replace(legend, "").count("bed_set_by_user") == 1  # and only that view's strip
    config = preset("default")
    inputs = load_inputs(str(bed_cohort), config.to_json())
    assert [("bed_set_by_user" in f) for f in inputs.flags].count(True) == 1
    assert "bed_set_by_user" in inputs.flags[inputs.views.index("anterior")]
    cohort = load_cohort(bed_cohort)
    pipeline = Pipeline(config)
    data = cohort_train_data(cohort, pipeline)
    study = cohort.patients[0].load_study()
    expected = pipeline.run(study.image(View.ANTERIOR), study.pixel_spacing_mm, (140, 120))
    first = data.views.index("anterior")
    np.testing.assert_array_equal(data.data.x[first].numpy(), expected.network_input)
