"""Preprocessing on a small phantom cohort: the crop keeps every remnant focus, and the
`thyrocad preprocess` command writes strips and an index page (real DICOM written and read)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from thyrocad.cli.main import app
from thyrocad.data.phantom import PhantomConfig, generate_cohort
from thyrocad.io.read import read_study
from thyrocad.preprocess import Pipeline, preset
from thyrocad.preprocess.strip import GAP, LABEL_H, PANEL, PANELS
from thyrocad.preprocess.truth import points_in_box

N_PATIENTS = 24


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("phantom")
    generate_cohort(out, PhantomConfig(n_patients=N_PATIENTS, n_residual=N_PATIENTS - 2, seed=5),
                    workers=1)  # fmt: skip
    return out


def residual_truths(cohort: Path) -> list[tuple[Path, dict]]:
    truths = [json.loads(p.read_text()) for p in sorted((cohort / "ground_truth").glob("*.json"))]
    return [(cohort / "images" / f"{t['patient_id']}.dcm", t) for t in truths if t["foci"]]


@pytest.mark.slow
@pytest.mark.parametrize("preset_name", ["paper", "default"])
def test_crop_contains_every_remnant_focus(cohort, preset_name):
    pipeline = Pipeline(preset(preset_name))
    cases = residual_truths(cohort)
    contained = []
    for path, truth in cases:
        results = pipeline.run_study(read_study(path))
        contained.append(
            all(
                points_in_box(
                    [(f[view.value]["row_px"], f[view.value]["col_px"]) for f in truth["foci"]],
                    result.crop_box,
                )
                for view, result in results
            )
        )
    assert len(cases) == N_PATIENTS - 2
    assert np.mean(contained) >= 0.95, f"crop kept all foci in {np.mean(contained):.0%}"


def test_cli_writes_strips_and_index(cohort, tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app, ["preprocess", str(cohort), "--out", str(out), "--preset", "paper", "--limit", "3"]
    )
    assert result.exit_code == 0, result.output
    strips = sorted((out / "strips").glob("*.png"))
    assert len(strips) == 6  # 3 two-view files
    image = cv2.imread(str(strips[0]))
    assert image.shape == (LABEL_H + PANEL, (PANEL + GAP) * len(PANELS), 3)
    page = (out / "index.html").read_text()
    assert page.count("<img ") == 6
    assert "images/PH0001.dcm" in page and "strips/images__PH0001_anterior.png" in page
    assert "<th>thyroid bed</th>" in page and "(confidence " in page
    assert json.loads((out / "config.json").read_text())["name"] == "paper"


def test_cli_lists_unreadable_files_and_goes_on(cohort, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(cohort / "images", broken / "images")
    (broken / "images" / "PH0002.dcm").write_bytes(b"not a dicom file")
    rows = (cohort / "labels.csv").read_text().splitlines()
    (broken / "labels.csv").write_text("\n".join(rows[:4]) + "\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["preprocess", str(broken), "--out", str(out)])
    assert result.exit_code == 0, result.output
    page = (out / "index.html").read_text()
    assert page.count("<img ") == 4 and 'class="err"' in page
    assert "1 failed" in result.output


def test_cli_rejects_an_unknown_preset(cohort, tmp_path):
    result = CliRunner().invoke(
        app, ["preprocess", str(cohort), "--out", str(tmp_path), "--preset", "nope"]
    )
    assert result.exit_code == 2
    assert "unknown preprocessing preset" in result.output
