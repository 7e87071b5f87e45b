"""Input-domain checks (`thyrocad.intake.domain`): each check on files that trigger it and on
files that do not, written by tests/dicom_factory.py with phantom counts, on the real public
thyroid scan in realdata/ and on the whole-body files in ../shared/refdata (skipped when that
folder is absent)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import dicom_factory as factory
from thyrocad import errors
from thyrocad.cli.main import app
from thyrocad.data.phantom import PhantomConfig, simulate_patient
from thyrocad.diagnosis.service import DiagnosisService
from thyrocad.intake import load_study, outside_domain
from thyrocad.intake.domain import (
    HEADER_CHECKS_NOT_RUN,
    NOT_I131,
    RADIONUCLIDE_NOT_STATED,
    nuclide_from_text,
    nuclide_from_window,
)
from thyrocad.study import View

REFDATA = Path(__file__).resolve().parents[1].parent / "shared" / "refdata"
needs_refdata = pytest.mark.skipif(
    not REFDATA.is_dir(), reason=f"reference data {REFDATA} is absent (clone ../shared)"
)
REALDATA = Path(__file__).resolve().parents[1] / "realdata"  # see realdata/MANIFEST.md
TC_THYROID = REALDATA / "salimkanoun-scintigraphy/thyroid_tc99m_ant_256_deid.dcm"


@pytest.fixture(scope="module")
def neck_views() -> list[np.ndarray]:
    """Anterior and posterior count images of one phantom patient (256 x 256 at 2.2 mm)."""
    sim = simulate_patient(PhantomConfig(n_patients=2, n_residual=1, seed=3), 0, True)
    return [sim.counts[View.ANTERIOR], sim.counts[View.POSTERIOR]]


def _flags(path: Path, view: View | None = None) -> set[str]:
    return {f for im in load_study(path, view).images for f in im.flags}


def _write(tmp_path: Path, frames: list[np.ndarray], name: str = "v.dcm", **header) -> Path:
    codes = [factory.view_code(View.ANTERIOR), factory.view_code(View.POSTERIOR)][: len(frames)]
    ds = factory.nm_dataset(
        frames, codes, pixel_spacing=header.pop("spacing", (2.2, 2.2)), **header
    )
    return factory.write_dicom(ds, tmp_path / name)


def test_an_i131_neck_view_raises_no_flag(tmp_path: Path, neck_views) -> None:
    assert _flags(_write(tmp_path, neck_views)) == set()


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ({"radionuclide": factory.TC99M_CODE, "energy_window_kev": factory.TC99M_WINDOW_KEV},
         "not_i131: Tc-99m"),
        ({"energy_window_kev": factory.TC99M_WINDOW_KEV},
         "not_i131: Tc-99m (energy window 129.0-150.0 keV)"),
        ({"radionuclide": ("C-114A4", "SRT", "^123^Iodine"), "energy_window_kev": None},
         "not_i131: I-123"),
        ({"radionuclide": None, "energy_window_kev": (50.0, 60.0)},
         "not_i131: unknown nuclide (energy window 50.0-60.0 keV)"),
        ({"radionuclide": None, "energy_window_kev": None}, RADIONUCLIDE_NOT_STATED),
    ],
)  # fmt: skip
def test_radionuclide_and_energy_window(tmp_path: Path, neck_views, header, expected) -> None:
    flags = _flags(_write(tmp_path, neck_views, **header))
    assert flags == {expected}
    assert bool(outside_domain(tuple(flags))) == expected.startswith(NOT_I131)


def test_an_i131_window_without_a_radionuclide_is_enough(tmp_path: Path, neck_views) -> None:
    assert _flags(_write(tmp_path, neck_views, radionuclide=None)) == set()


@pytest.mark.parametrize(
    "text, nuclide",
    [("^131^Iodine", "I-131"), ("99m Technetium", "Tc-99m"), ("Technétium 99m", "Tc-99m"),
     ("Sodium iodide I-131", "I-131"), ("Indium-111", "In-111"), ("F-18 FDG", "F-18"),
     ("Iodine", ""), ("", "")],
)  # fmt: skip
def test_nuclide_names(text: str, nuclide: str) -> None:
    assert nuclide_from_text(text) == nuclide


@pytest.mark.parametrize(
    "window, nuclide",
    [("327.6-400.4 keV", "I-131"), ("129.0-150.0 keV", "Tc-99m"), ("143.1-174.9 keV", "I-123"),
     ("50.0-60.0 keV", "unknown nuclide"), ("99m Technetium", "Tc-99m"), ("", "")],
)  # fmt: skip
def test_energy_windows(window: str, nuclide: str) -> None:
    assert nuclide_from_window(window) == nuclide


def test_pixel_size_and_field_outside_the_validated_range(tmp_path: Path, neck_views) -> None:
    fine = _flags(_write(tmp_path, neck_views, "fine.dcm", spacing=(0.6, 0.6)))
    assert fine == {"pixel_size_outside_validated: 0.60 x 0.60 mm", "field_outside_validated: "
                    "154 x 154 mm"}  # fmt: skip
    coarse = _flags(_write(tmp_path, neck_views, "coarse.dcm", spacing=(4.8, 4.8)))
    assert coarse == {"field_outside_validated: 1229 x 1229 mm"}  # 4.8 mm itself is validated
    symbia_zoom1 = _flags(_write(tmp_path, neck_views, "symbia.dcm", spacing=(2.3976, 2.3976)))
    assert symbia_zoom1 == set()


def test_matrix_outside_the_validated_sizes(tmp_path: Path, neck_views) -> None:
    small = [v.reshape(64, 4, 64, 4).sum(axis=(1, 3)) for v in neck_views]  # 64 x 64, 8.8 mm
    flags = _flags(_write(tmp_path, small, spacing=(8.8, 8.8)))
    assert "matrix_outside_validated: 64x64" in flags
    assert "pixel_size_outside_validated: 8.80 x 8.80 mm" in flags


def test_counts_far_outside_a_diagnostic_view(tmp_path: Path, neck_views) -> None:
    few = [(v // 40) for v in neck_views]
    many = [np.minimum(v.astype(np.int64) * 300, 65535) for v in neck_views]
    few_flags = _flags(_write(tmp_path, few, "few.dcm"))
    assert any(f.startswith("counts_outside_diagnostic: ") for f in few_flags)
    many_flags = _flags(_write(tmp_path, many, "many.dcm"))
    assert any(f.startswith("counts_outside_diagnostic: ") for f in many_flags)
    assert all(outside_domain(tuple(f)) for f in (few_flags, many_flags))


@pytest.mark.parametrize(
    ("header", "expected"),
    [({"collimator": "PINH"}, "zoomed_field: pinhole collimator"),
     ({"zoom": 2.0}, "zoomed_field: zoom 2"),
     ({"zoom": 1.0}, None)],
)  # fmt: skip
def test_zoomed_field_from_the_header(tmp_path: Path, neck_views, header, expected) -> None:
    flags = _flags(_write(tmp_path, neck_views, **header))
    assert flags == ({expected} if expected else set())


def test_zoomed_field_from_the_image_alone(tmp_path: Path, neck_views) -> None:
    """A PNG of the neck region magnified to the whole field is flagged; the full view is not."""
    full = neck_views[0].astype(np.float64)
    zoomed = np.kron(full[32:160, 64:192], np.ones((2, 2)))  # head and neck, 2x
    paths = {}
    for name, image in (("full", full), ("zoomed", zoomed)):
        paths[name] = tmp_path / f"{name}.png"
        Image.fromarray((255 * image / image.max()).astype(np.uint8)).save(paths[name])
    assert _flags(paths["full"]) == {f"{HEADER_CHECKS_NOT_RUN}: image export"}
    zoomed_flags = _flags(paths["zoomed"])
    assert any(f.startswith("zoomed_field: head and neck fill ") for f in zoomed_flags)


def test_the_real_tc99m_thyroid_scan_is_not_i131() -> None:
    flags = _flags(TC_THYROID)
    assert "not_i131: Tc-99m" in flags
    assert "zoomed_field: zoom 2" in flags  # a zoom-2 pertechnetate thyroid view
    assert "field_outside_validated: 307 x 307 mm" in flags
    assert not any(f.startswith("pixel_size") for f in flags)  # 1.1988 mm counts as 1.2 mm


def test_a_real_zoomed_thyroid_export_is_flagged_from_the_image(tmp_path: Path) -> None:
    """The real scan saved as an 8-bit PNG, as a figure or a screen export would be: no header
    to check, and the zoom is seen in the image itself."""
    counts = load_study(TC_THYROID).images[0].counts
    png = tmp_path / "thyroid_export.png"
    Image.fromarray(np.uint8(255 * counts / counts.max())).save(png)
    flags = _flags(png)
    assert f"{HEADER_CHECKS_NOT_RUN}: image export" in flags
    assert any(f.startswith("zoomed_field: head and neck fill ") for f in flags)


@needs_refdata
def test_real_whole_body_sweeps_are_flagged_where_the_header_says_so() -> None:
    siemens = load_study(REFDATA / "nm-dicom/openrem/NM-NmIm-Siemens.dcm")
    assert all("not_i131: Tc-99m" in im.flags for im in siemens.images)
    wg04 = _flags(REFDATA / "nm-dicom/wg04/NM1_UNC")  # no radionuclide or window in the header
    assert RADIONUCLIDE_NOT_STATED in wg04
    assert not outside_domain(tuple(wg04))


@pytest.fixture
def tc99m_file(tmp_path: Path, neck_views) -> Path:
    """A neck view whose header says Tc-99m (radionuclide and energy window)."""
    header = {"radionuclide": factory.TC99M_CODE, "energy_window_kev": factory.TC99M_WINDOW_KEV}
    return _write(tmp_path, neck_views, "tc.dcm", **header)


def test_every_output_says_not_i131_and_strict_refuses(
    tmp_path: Path, tc99m_file: Path, inference_bundle: Path
) -> None:
    base = ["predict", str(inference_bundle), str(tc99m_file), "--threads", "1"]
    csv_out, json_out = tmp_path / "r.csv", tmp_path / "r.json"
    for out in (csv_out, json_out):
        result = CliRunner().invoke(app, [*base, "--out", str(out)])
        assert result.exit_code == 0, result.output
        assert "flags: not_i131: Tc-99m" in " ".join(result.stdout.split())
    with csv_out.open(newline="") as fh:
        assert "not_i131: Tc-99m" in next(csv.DictReader(fh))["flags"].split(";")
    diagnosis = json.loads(json_out.read_text())[0]["diagnosis"]
    assert "not_i131: Tc-99m" in diagnosis["flags"]
    assert all("not_i131: Tc-99m" in v["flags"] for v in diagnosis["views"])
    service = DiagnosisService.from_bundle(inference_bundle)
    summary = service.diagnose([tc99m_file]).summary()  # what the web app and API keep
    assert "not_i131: Tc-99m" in summary["flags"]
    strict = CliRunner().invoke(app, [*base, "--strict"])
    assert strict.exit_code == 1
    line = " ".join(strict.stdout.split())
    assert f"failed {tc99m_file}: OutsideDomainError: " in line
    assert "not_i131: Tc-99m" in line and "--strict refuses it" in line
    with pytest.raises(errors.OutsideDomainError):
        service.diagnose([tc99m_file], strict=True)


def test_strict_accepts_an_i131_neck_view(
    tmp_path: Path, neck_views, inference_bundle: Path
) -> None:
    path = _write(tmp_path, neck_views)
    args = ["predict", str(inference_bundle), str(path), "--threads", "1", "--strict"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output


def test_strict_refuses_the_real_tc99m_thyroid_scan(inference_bundle: Path) -> None:
    args = ["predict", str(inference_bundle), str(TC_THYROID), "--threads", "1", "--strict"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1
    assert "OutsideDomainError" in result.stdout and "not_i131: Tc-99m" in result.stdout
