"""Whole-body sweeps: read, neck field cut out (`thyrocad.intake.neck_field`), flagged, and
diagnosed; on synthetic sweeps written by tests/dicom_factory.py and on every whole-body file
in ../shared/refdata/nm-dicom (skipped when that folder is absent)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import dicom_factory as factory
from thyrocad import errors
from thyrocad.cli.main import app
from thyrocad.intake import FROM_WHOLE_BODY, find_neck_field, load_study
from thyrocad.intake.neck_field import HEAD_MARGIN_MM
from thyrocad.io.read import read_study
from thyrocad.study import View

REFDATA = Path(__file__).resolve().parents[1].parent / "shared" / "refdata" / "nm-dicom"
needs_refdata = pytest.mark.skipif(
    not REFDATA.is_dir(), reason=f"reference DICOM folder {REFDATA} is absent (clone ../shared)"
)
WHOLE_BODY_FILES = [
    "wg04/NM1_UNC", "wg04/NM1_J2KR", "wg04/NM1_J2KI", "wg04/NM1_JLSL", "wg04/NM1_JLSN",
    "wg04/NM1_JPLL", "wg04/NM1_RLE", "pydicom/JPGExtended.dcm", "openrem/NM-NmIm-Siemens.dcm",
]  # fmt: skip
WB_SPACING = 2.26
HEAD_TOP = 70  # row of the synthetic sweep's head top
WB_IMAGE_TYPE = ("ORIGINAL", "PRIMARY", "WHOLE BODY", "EMISSION")


def sweep(seed: int = 0, head_top: int = HEAD_TOP, rows: int = 1024) -> np.ndarray:
    """A 1024 x 256 whole-body sweep at 2.26 mm: head (16 cm wide), neck (11 cm, 9 cm long),
    shoulders and trunk (44 cm), legs; blood-pool counts plus a Poisson background."""
    mm = WB_SPACING
    yy, xx = np.mgrid[0:rows, 0:256] * mm
    x = np.abs(xx - 128 * mm)
    y = yy - head_top * mm  # mm below the head top
    head = ((y - 110) / 110) ** 2 + (x / 80) ** 2 <= 1
    neck = (y >= 200) & (y < 290) & (x <= 55)
    trunk = (y >= 270) & (y < 900) & (x <= 220)
    legs = (y >= 900) & (y < 1750) & (x >= 20) & (x <= 150)
    body = head | neck | trunk | legs
    rng = np.random.default_rng(seed)
    return rng.poisson(0.3 + 6.0 * body).astype(np.uint16)


def _sweep_file(tmp_path: Path, frames: list[np.ndarray], name: str = "wb.dcm", **kw) -> Path:
    codes = [factory.view_code(View.ANTERIOR), factory.view_code(View.POSTERIOR)][: len(frames)]
    ds = factory.nm_dataset(
        frames, codes, pixel_spacing=(WB_SPACING, WB_SPACING), image_type=WB_IMAGE_TYPE, **kw
    )
    return factory.write_dicom(ds, tmp_path / name)


def test_the_neck_field_of_a_synthetic_sweep(tmp_path: Path) -> None:
    path = _sweep_file(tmp_path, [sweep(0), sweep(1)])
    study = load_study(path)
    margin = round(HEAD_MARGIN_MM / WB_SPACING)
    assert study.views == (View.ANTERIOR, View.POSTERIOR)
    for image in study.images:
        assert image.counts.shape == (256, 256)  # square: as tall as the sweep is wide
        assert abs(image.origin_rc[0] - (HEAD_TOP - margin)) <= 3
        assert image.origin_rc[1] == 0
        assert FROM_WHOLE_BODY in image.flags
    field = find_neck_field(sweep(0).astype(np.float32), (WB_SPACING, WB_SPACING))
    neck_end = HEAD_TOP + 270 / WB_SPACING  # the trunk (shoulders) starts 27 cm below
    assert field.row0 < field.head_top_row < field.shoulder_row < field.row1
    assert abs(field.shoulder_row - neck_end) <= 8


def test_a_sweep_without_a_head_at_the_top_has_no_neck_field(tmp_path: Path) -> None:
    upside_down = sweep(0)[::-1].copy()  # stored feet first: legs at the top
    with pytest.raises(errors.NeckFieldError, match="neck and shoulders"):
        load_study(_sweep_file(tmp_path, [upside_down], "feet.dcm"))
    empty = np.zeros((1024, 256), np.uint16)
    with pytest.raises(errors.NeckFieldError, match="no body outline"):
        load_study(_sweep_file(tmp_path, [empty], "empty.dcm"))


def test_the_reader_alone_still_refuses_sweeps(tmp_path: Path) -> None:
    path = _sweep_file(tmp_path, [sweep(0)])
    with pytest.raises(errors.NotPlanarError, match=r"thyrocad\.intake\.load_study"):
        read_study(path)
    assert read_study(path, whole_body=True).images[0].counts.shape == (1024, 256)


def test_a_long_png_export_is_a_sweep_too(tmp_path: Path) -> None:
    png = tmp_path / "wb.png"
    counts = sweep(0).astype(np.float64)
    Image.fromarray((255 * counts / counts.max()).astype(np.uint8)).save(png)
    study = load_study(png)
    image = study.images[0]
    assert image.counts.shape == (256, 256)
    assert FROM_WHOLE_BODY in image.flags
    assert abs(image.origin_rc[0] - HEAD_TOP) <= 15  # spacing assumed: a 563 mm wide sweep


@needs_refdata
@pytest.mark.parametrize("name", WHOLE_BODY_FILES)
def test_every_real_sweep_gives_a_neck_field(name: str) -> None:
    study = load_study(REFDATA / name)
    rows, cols = int(study.metadata["rows"]), int(study.metadata["columns"])
    assert (rows, cols) == (1024, 256)
    for image in study.images:
        row0, col0, row1, col1 = image.box_in_file()
        assert (col0, col1) == (0, 256) and row1 - row0 == 256
        field = find_neck_field(
            read_study(REFDATA / name, whole_body=True).image(image.view), study.pixel_spacing_mm
        )
        assert (field.row0, field.row1) == (row0, row1)
        # the head top lies just inside the field and the shoulders in its upper half
        assert 0 < field.head_top_row - row0 <= 15
        assert 80 <= field.shoulder_row - row0 <= 128
        assert FROM_WHOLE_BODY in image.flags


@needs_refdata
def test_lossless_encodings_give_the_same_field_and_the_bad_stream_keeps_its_error() -> None:
    reference = load_study(REFDATA / "wg04/NM1_UNC").images[0]
    for name in ("wg04/NM1_J2KR", "wg04/NM1_JLSL", "wg04/NM1_JPLL", "wg04/NM1_RLE"):
        image = load_study(REFDATA / name).images[0]
        assert image.origin_rc == reference.origin_rc
        np.testing.assert_array_equal(image.counts, reference.counts)
    with pytest.raises(errors.PixelDecodeError, match="NM1_JPLY"):
        load_study(REFDATA / "wg04/NM1_JPLY")


@needs_refdata
def test_inspect_reports_the_neck_field_and_the_flag() -> None:
    result = CliRunner().invoke(app, ["inspect", str(REFDATA / "openrem/NM-NmIm-Siemens.dcm")])
    assert result.exit_code == 0, result.output
    line = result.stdout.strip()
    assert "anterior+posterior  256x256" in line
    assert "whole-body sweep 1024x256, neck field: anterior rows 139-394, posterior rows " in line
    assert line.endswith("flags: not_i131: Tc-99m")


@pytest.mark.slow
def test_predict_diagnoses_the_neck_field_in_sweep_pixels(
    tmp_path: Path, inference_bundle: Path
) -> None:
    """The Tc-99m Siemens sweep when present, else a synthetic one: crop boxes and the bed
    centre lie inside the neck field, in the sweep's pixels."""
    path = REFDATA / "openrem/NM-NmIm-Siemens.dcm"
    if not path.is_file():
        path = _sweep_file(tmp_path, [sweep(0), sweep(1)])
    out = tmp_path / "r.json"
    args = ["predict", str(inference_bundle), str(path), "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "neck field: anterior rows " in result.stdout
    views = json.loads(out.read_text())[0]["diagnosis"]["views"]
    for view in views:
        row0, _, row1, _ = view["field_box"]
        assert row0 > 0 and row1 - row0 == 256
        crop = view["crop_box"]
        assert row0 <= (crop[0] + crop[2]) / 2 < row1
        assert row0 <= view["bed_rc"][0] < row1
        assert FROM_WHOLE_BODY in view["flags"]
