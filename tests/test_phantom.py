"""The synthetic cohort: DICOM/PNG files written and read back, labels, ground truth,
determinism, physics sanity, cache folder and CLI."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pydicom
import pytest
from PIL import Image
from typer.testing import CliRunner

from thyrocad.cli.main import app
from thyrocad.data.cohort import load_cohort
from thyrocad.data.phantom import (
    PhantomConfig,
    default_cohort_dir,
    ensure_default_cohort,
    generate_cohort,
    parse_difficulty,
    simulate_patient,
)
from thyrocad.data.phantom.anatomy import sample_patient
from thyrocad.data.phantom.physics import (
    counts_per_mbq,
    source_depth_cm,
    system_fwhm_mm,
    tail_kernel,
)
from thyrocad.io.dicom_codes import NM_IMAGE_STORAGE, VIEW_CODES
from thyrocad.io.read import read_study
from thyrocad.study import View

SMALL = PhantomConfig(n_patients=6, n_residual=4, seed=3)


def _rows(folder):
    with (folder / "labels.csv").open() as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def multiframe(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mf")
    generate_cohort(folder, SMALL, workers=1)
    return folder


def test_multiframe_files_are_nm_with_detector_views(multiframe):
    rows = _rows(multiframe)
    assert len(rows) == SMALL.n_patients
    assert sum(r["label"] == "residual" for r in rows) == SMALL.n_residual
    ds = pydicom.dcmread(multiframe / rows[0]["path"])
    raw = (multiframe / rows[0]["path"]).read_bytes()
    assert raw[128:132] == b"DICM"
    assert ds.SOPClassUID == NM_IMAGE_STORAGE and ds.Modality == "NM"
    assert ds.NumberOfFrames == 2 and list(ds.DetectorVector) == [1, 2]
    assert ds.FrameIncrementPointer == 0x00540020
    codes = [item.ViewCodeSequence[0].CodeValue for item in ds.DetectorInformationSequence]
    assert codes == [VIEW_CODES[View.ANTERIOR][0], VIEW_CODES[View.POSTERIOR][0]]
    assert list(ds.ImageType) == ["ORIGINAL", "PRIMARY", "STATIC", "EMISSION"]
    window = ds.EnergyWindowInformationSequence[0].EnergyWindowRangeSequence[0]
    assert (float(window.EnergyWindowLowerLimit), float(window.EnergyWindowUpperLimit)) == (
        327.6,
        400.4,
    )
    assert "I-131" in ds.RadiopharmaceuticalInformationSequence[0].Radiopharmaceutical
    assert str(ds.PatientName).startswith("PHANTOM^") and ds.PatientID == rows[0]["patient_id"]
    assert ds.BitsAllocated == 16 and ds.PixelRepresentation == 0


def test_multiframe_read_back_equals_simulation(multiframe):
    flags = {r["patient_id"]: r["label"] == "residual" for r in _rows(multiframe)}
    for row in _rows(multiframe)[:3]:
        study = read_study(multiframe / row["path"])
        assert study.views == (View.ANTERIOR, View.POSTERIOR)
        assert study.pixel_spacing_mm == pytest.approx((2.2, 2.2))
        index = int(row["patient_id"][2:]) - 1
        sim = simulate_patient(SMALL, index, flags[row["patient_id"]])
        for view in (View.ANTERIOR, View.POSTERIOR):
            np.testing.assert_array_equal(study.image(view), sim.counts[view].astype(np.float32))
        assert int(row["total_counts_anterior"]) == int(sim.counts[View.ANTERIOR].sum())


def test_ground_truth_matches_labels(multiframe):
    manifest = json.loads((multiframe / "cohort.json").read_text())
    assert manifest["config"]["seed"] == SMALL.seed and manifest["generator_version"]
    for row in _rows(multiframe):
        pid = row["patient_id"]
        truth = json.loads((multiframe / "ground_truth" / f"{pid}.json").read_text())
        masks = np.load(multiframe / "ground_truth" / f"{pid}_masks.npz")
        residual = row["label"] == "residual"
        assert truth["label"] == row["label"]
        assert (1 <= len(truth["foci"]) <= 4) if residual else truth["foci"] == []
        assert masks["anterior"].shape == (256, 256)
        assert bool(masks["anterior"].any()) == residual
        for focus in truth["foci"]:
            r, c = round(focus["anterior"]["row_px"]), round(focus["anterior"]["col_px"])
            if 0 <= r < 256 and 0 <= c < 256:
                assert masks["anterior"][r, c]


def test_cohort_loader_accepts_phantom(multiframe):
    cohort = load_cohort(multiframe)
    assert len(cohort.patients) == SMALL.n_patients
    assert int(cohort.labels.sum()) == SMALL.n_residual


def test_per_view_and_png_formats(tmp_path):
    cfg = PhantomConfig(n_patients=3, n_residual=2, seed=3)
    generate_cohort(tmp_path / "pv", cfg, fmt="per-view", workers=1)
    generate_cohort(tmp_path / "png", cfg, fmt="png", workers=1)
    pv_rows, png_rows = _rows(tmp_path / "pv"), _rows(tmp_path / "png")
    assert len(pv_rows) == len(png_rows) == 6
    assert [r["view"] for r in pv_rows[:2]] == ["anterior", "posterior"]
    for row in pv_rows:
        study = read_study(tmp_path / "pv" / row["path"])
        assert study.views == (View(row["view"]),)
        ds = pydicom.dcmread(tmp_path / "pv" / row["path"])
        assert ds.NumberOfFrames == 1 and ds.NumberOfDetectors == 1
    png = np.asarray(Image.open(tmp_path / "png" / png_rows[0]["path"]))
    assert png.dtype == np.uint8 and png.shape == (256, 256) and png.max() == 255
    study = read_study(tmp_path / "png" / png_rows[0]["path"], view=View.ANTERIOR)
    assert study.pixel_spacing_mm is None
    assert len(load_cohort(tmp_path / "png").patients) == 3


@pytest.mark.slow
def test_same_seed_same_bytes_whatever_workers_and_size(tmp_path):
    cfg = PhantomConfig(n_patients=4, n_residual=3, seed=11)
    generate_cohort(tmp_path / "a", cfg, workers=1)
    generate_cohort(tmp_path / "b", cfg, workers=2)
    for row in _rows(tmp_path / "a"):
        a = (tmp_path / "a" / row["path"]).read_bytes()
        assert a == (tmp_path / "b" / row["path"]).read_bytes()
    bigger = PhantomConfig(n_patients=9, n_residual=5, seed=11)
    for i in range(4):
        x, y = simulate_patient(cfg, i, True), simulate_patient(bigger, i, True)
        np.testing.assert_array_equal(x.counts[View.ANTERIOR], y.counts[View.ANTERIOR])
    other_seed = simulate_patient(PhantomConfig(seed=12), 0, True)
    same_seed = simulate_patient(cfg, 0, True)
    assert not np.array_equal(other_seed.counts[View.ANTERIOR], same_seed.counts[View.ANTERIOR])


def test_attenuation_and_blur_follow_depth():
    cfg = PhantomConfig()
    assert system_fwhm_mm(cfg, 10.0) == pytest.approx(11.7, abs=0.3)  # PN §2.2 table
    assert system_fwhm_mm(cfg, 12.0) > system_fwhm_mm(cfg, 4.0)
    patient = sample_patient(cfg, 5, residual=True)
    remnant = next(s for s in patient.sources if s.kind == "remnant")
    ant = source_depth_cm(patient, remnant, View.ANTERIOR)
    post = source_depth_cm(patient, remnant, View.POSTERIOR)
    assert ant < post
    ratio = math.exp(-cfg.mu_per_cm * ant) / math.exp(-cfg.mu_per_cm * post)
    assert 1.5 < ratio < 5.0  # PHANTOM.md: remnant about 2.4x brighter anteriorly
    assert counts_per_mbq(cfg, patient) == cfg.sensitivity_cps_per_mbq * (
        patient.acquisition.frame_duration_s
    )


def test_tail_kernel_has_six_spokes_at_vendor_angle():
    k = tail_kernel(15.0, 20.0, 16.0, 0.1, 0.25)
    assert k.sum() == pytest.approx(0.35, rel=1e-6)
    c = k.shape[0] // 2
    r = 30
    on = [
        k[
            round(c - r * math.sin(math.radians(15 + 60 * j))),
            round(c + r * math.cos(math.radians(15 + 60 * j))),
        ]
        for j in range(6)
    ]
    off = [
        k[
            round(c - r * math.sin(math.radians(45 + 60 * j))),
            round(c + r * math.cos(math.radians(45 + 60 * j))),
        ]
        for j in range(6)
    ]
    assert min(on) > 3 * max(off)


def test_difficulty_moves_faint_end_and_confounders():
    easy, hard = PhantomConfig(difficulty=0.5), PhantomConfig(difficulty=1.5)
    assert hard.remnant_median_pct < easy.remnant_median_pct
    assert hard.confounder_scale > easy.confounder_scale
    assert parse_difficulty("hard") == 1.5 and parse_difficulty("0.7") == 0.7
    with pytest.raises(ValueError, match="difficulty"):
        parse_difficulty("very")
    with pytest.raises(ValueError, match="difficulty"):
        PhantomConfig(difficulty=-1)


def test_counts_are_poisson_limited_like_real_views():
    totals = [
        int(simulate_patient(PhantomConfig(), i, False).counts[View.ANTERIOR].sum())
        for i in range(8)
    ]
    assert 3e3 < np.median(totals) < 3e5  # PN §6: about 3e4-2e5 counts per 10-min view


def test_ensure_default_cohort_caches_atomically(tmp_path, monkeypatch):
    monkeypatch.setenv("THYROCAD_HOME", str(tmp_path))
    cfg = PhantomConfig(n_patients=3, n_residual=2)
    folder = ensure_default_cohort(cfg, workers=1)
    assert folder == default_cohort_dir(cfg) and (folder / "cohort.json").is_file()
    stamp = (folder / "cohort.json").stat().st_mtime_ns
    assert ensure_default_cohort(cfg, workers=1) == folder
    assert (folder / "cohort.json").stat().st_mtime_ns == stamp
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # no temp dir left


def test_cli_writes_cohort_and_preview(tmp_path):
    result = CliRunner().invoke(
        app,
        [
            "phantom",
            str(tmp_path),
            "--patients",
            "4",
            "--residual",
            "2",
            "--workers",
            "1",
            "--preview",
        ],
    )
    assert result.exit_code == 0, result.output
    assert len(_rows(tmp_path)) == 4 and (tmp_path / "preview.png").stat().st_size > 10_000
    bad = CliRunner().invoke(app, ["phantom", str(tmp_path), "--difficulty", "extreme"])
    assert bad.exit_code == 2 and "difficulty" in bad.output


def test_cli_refuses_foreign_files_and_a_cohort_of_other_settings(tmp_path):
    from typer.testing import CliRunner

    from thyrocad.cli.main import app

    def phantom(out, *extra):
        args = ["phantom", str(out), "--patients", "2", "--residual", "1", "--workers", "1"]
        return CliRunner().invoke(app, [*args, *extra])

    out = tmp_path / "cohort"
    assert phantom(out).exit_code == 0
    assert phantom(out).exit_code == 0  # the same cohort again: a re-run
    other = phantom(out, "--seed", "9")
    assert other.exit_code == 2 and "other settings or format" in other.stderr
    assert phantom(out, "--seed", "9", "--force").exit_code == 0
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.md").write_text("x")
    assert phantom(mine).exit_code == 2
    assert sorted(p.name for p in mine.iterdir()) == ["notes.md"]
