"""`thyrocad inspect`: one line per file, errors per file, exit status, no patient identifiers."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydicom import uid
from pydicom.encaps import encapsulate
from typer.testing import CliRunner

import dicom_factory as factory
from thyrocad.cli.main import app

SECRET_NAME = "Doe^Johnathan-Secret"
SECRET_ID = "PID-99887766"


@pytest.fixture
def scans(tmp_path: Path) -> dict[str, Path]:
    """A good DICOM with recognisable identifiers, a PNG export in a subfolder, a broken file."""
    ds = factory.nm_dataset(patient_name=SECRET_NAME, patient_id=SECRET_ID)
    good = factory.write_dicom(ds, tmp_path / "scans" / "good.dcm")
    (tmp_path / "scans" / "exports").mkdir()
    png = tmp_path / "scans" / "exports" / "view.png"
    Image.fromarray(np.full((40, 30), 7, np.uint8)).save(png)
    (tmp_path / "scans" / "README.txt").write_text("notes, not a scan\n")
    broken = tmp_path / "broken.dcm"
    broken.write_bytes(factory.dicom_bytes(ds)[:-500])
    return {"good": good, "png": png, "broken": broken, "folder": tmp_path / "scans"}


def _lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.strip()]


def _assert_no_identifiers(text: str) -> None:
    for secret in (SECRET_NAME, SECRET_ID, "Johnathan", "99887766"):
        assert secret not in text


def test_one_line_per_file_with_views_size_spacing_counts(scans) -> None:
    result = CliRunner().invoke(app, ["inspect", str(scans["good"]), str(scans["png"])])
    assert result.exit_code == 0, result.output
    good, png = _lines(result.stdout)[:2]
    total_ant = factory.nm_dataset().pixel_array[0].sum()
    assert good.startswith(str(scans["good"]))
    assert "anterior+posterior  64x64  spacing 2.21x2.21 mm" in good
    assert f"anterior={total_ant} " in good
    # the factory's 64 x 64 views at 2.21 mm are far smaller than a camera field: flagged
    assert "Explicit VR Little Endian  flags: matrix_outside_validated: 64x64; " in good
    assert "field_outside_validated: 141 x 141 mm" in good
    assert "unknown  40x30  spacing none  gray-level sum unknown=8400  PNG export: 8-bit" in png
    assert "gray levels, not counts  flags: header_checks_not_run: image export" in png
    _assert_no_identifiers(result.output)


def test_a_view_the_file_does_not_state_comes_from_its_name(scans) -> None:
    named = scans["png"].with_name("PH0007_POST.png")
    named.write_bytes(scans["png"].read_bytes())
    result = CliRunner().invoke(app, ["inspect", str(named)])
    assert result.exit_code == 0, result.output
    assert f"{named}  posterior  40x30  " in result.stdout
    assert "gray-level sum posterior=8400" in result.stdout


def test_failures_get_one_line_each_and_exit_1(scans) -> None:
    args = ["inspect", str(scans["broken"]), str(scans["good"]), str(scans["good"].parent / "x")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1
    broken, good, missing = _lines(result.stdout)
    assert broken == f"{scans['broken']}  ERROR  TruncatedFileError: " + broken.split(": ", 1)[1]
    assert "ends inside the pixel data" in broken
    assert "anterior+posterior" in good
    assert "FileAccessError" in missing
    _assert_no_identifiers(result.output)


def test_folders_are_recursed_and_other_content_skipped(scans) -> None:
    result = CliRunner().invoke(app, ["inspect", str(scans["folder"])])
    assert result.exit_code == 0, result.output
    lines = _lines(result.stdout)
    assert [line.split("  ")[0] for line in lines] == [str(scans["png"]), str(scans["good"])]
    assert "2 file(s), 0 failed, 1 skipped" in result.stderr


def test_a_file_named_explicitly_is_never_skipped(scans) -> None:
    readme = scans["folder"] / "README.txt"
    result = CliRunner().invoke(app, ["inspect", str(readme)])
    assert result.exit_code == 1
    assert "NotDicomError" in result.stdout


def test_help_has_an_example() -> None:
    result = CliRunner().invoke(app, ["inspect", "--help"])
    assert result.exit_code == 0
    assert "Example: thyrocad inspect" in result.stdout


def test_installed_console_script(scans, tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("thyrocad")
    script = script if script.exists() else shutil.which("thyrocad")
    assert script, "the thyrocad console script is not installed (pip install -e .)"
    corrupt = factory.encoded(factory.nm_dataset(), uid.JPEG2000Lossless)
    corrupt.PixelData = encapsulate([b"\xff\x4f\xff\x51" + bytes(100)] * 2)
    corrupt_path = tmp_path / "corrupt.dcm"
    corrupt.save_as(corrupt_path, enforce_file_format=True)
    done = subprocess.run(
        [str(script), "inspect", str(scans["folder"]), str(scans["broken"]), str(corrupt_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    lines = _lines(done.stdout)
    assert len(lines) == 4
    assert "TruncatedFileError" in lines[2]
    assert "PixelDecodeError" in lines[3]
    assert "Traceback" not in done.stderr
    _assert_no_identifiers(done.stdout + done.stderr)
