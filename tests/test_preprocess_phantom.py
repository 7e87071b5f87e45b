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


def test_fallback_box_of_a_512_by_400_png_export_scales_with_the_field(tmp_path):
    """An export of twice the phantom's resolution (1.1 mm per pixel, 512 columns, cut to 400
    rows): without spacing the box is still 120 mm (109 px, not the 55 px of a 256-px field)
    and holds every remnant focus; the locator raises no NumPy warning on its empty rows."""
    import warnings

    from PIL import Image

    from thyrocad.preprocess.steps import Flag

    generate_cohort(tmp_path / "c", PhantomConfig(n_patients=3, n_residual=3, seed=2), fmt="png",
                    workers=1)  # fmt: skip
    pipeline = Pipeline(preset("default"))
    for truth_file in sorted((tmp_path / "c" / "ground_truth").glob("*.json")):
        truth = json.loads(truth_file.read_text())
        small = tmp_path / "c" / "images" / f"{truth['patient_id']}_anterior.png"
        big = cv2.resize(cv2.imread(str(small), cv2.IMREAD_GRAYSCALE), (512, 512))[:400]
        Image.fromarray(big).save(tmp_path / "big.png")
        study = read_study(tmp_path / "big.png")
        assert study.images[0].counts.shape == (400, 512) and study.pixel_spacing_mm is None
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            result = pipeline.run(study.images[0].counts, None)
        assert Flag.NO_SPACING in result.flags
        assert result.crop_box.shape == (109, 109)  # 120 mm at 563 mm / 512 px
        foci = [(2 * f["anterior"]["row_px"], 2 * f["anterior"]["col_px"]) for f in truth["foci"]]
        assert points_in_box(foci, result.crop_box)


@pytest.fixture(scope="module")
def png_cohort(tmp_path_factory) -> Path:
    """4 phantom patients exported as PNG (no pixel spacing), in class folders."""
    out = tmp_path_factory.mktemp("png")
    generate_cohort(out / "export", PhantomConfig(n_patients=4, n_residual=2, seed=4), fmt="png",
                    workers=1)  # fmt: skip
    for row in (out / "export" / "labels.csv").read_text().splitlines()[1:]:
        path, label = row.split(",")[:2]
        (out / "cohort" / label).mkdir(parents=True, exist_ok=True)
        shutil.copy(out / "export" / path, out / "cohort" / label)
    return out / "cohort"


def test_index_says_common_flags_once_and_omits_stages_that_did_not_run(png_cohort, tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["preprocess", str(png_cohort), "--out", str(out)])
    assert result.exit_code == 0, result.output
    # every export carries no_spacing, and the input-domain note that no header was checked
    assert (
        "8 views (every view: header_checks_not_run: image export, no_spacing): " in result.output
    )
    page = (out / "index.html").read_text()
    assert page.count("no_spacing") == 2  # once on top, once in the legend
    assert "<dt>no_spacing</dt>" in page and "563-mm field" in page
    assert "only the image check ran" in page  # input-domain flags have meanings too
    strip = cv2.imread(str(sorted((out / "strips").glob("*.png"))[0]))
    assert strip.shape[1] == (PANEL + GAP) * (len(PANELS) - 1)  # `default`: no GrabCut panel


def test_preprocess_refuses_a_foreign_folder_unless_forced(png_cohort, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("a user's file")
    args = ["preprocess", str(png_cohort), "--out", str(out), "--limit", "1"]
    refused = CliRunner().invoke(app, args)
    assert refused.exit_code == 2
    assert "not a thyrocad preprocess" in refused.stderr and "--force" in refused.stderr
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    assert CliRunner().invoke(app, [*args, "--force"]).exit_code == 0
    assert CliRunner().invoke(app, args).exit_code == 0  # now marked as a preprocess folder
    assert (out / "notes.txt").read_text() == "a user's file"


@pytest.mark.slow
def test_index_page_fits_a_1300_px_window_with_a_legend_for_every_flag(png_cohort, tmp_path):
    from browser_helpers import chromium_page, horizontal_overflow, screenshot
    from thyrocad.preprocess.strip import FLAG_MEANINGS

    out = tmp_path / "out"
    args = ["preprocess", str(png_cohort), "--out", str(out), "--preset", "paper"]
    assert CliRunner().invoke(app, args).exit_code == 0
    with chromium_page(tmp_path / "profile", width=1300) as page:
        page.goto((out / "index.html").as_uri())
        page.wait_for_load_state("load")
        for img in page.query_selector_all("img"):
            img.scroll_into_view_if_needed()  # lazy images load
            assert img.evaluate("i => i.complete && i.naturalWidth > 0")
            assert img.bounding_box()["x"] + img.bounding_box()["width"] <= 1300
        assert horizontal_overflow(page) == 0
        shown = {f.strip() for row in page.inner_text("body").split("flags:")[1:] for f in
                 row.splitlines()[0].split(",")}  # fmt: skip
        legend = page.inner_text("#legend")
        for flag in shown | {"no_spacing"}:
            assert flag in legend and FLAG_MEANINGS[flag][:30] in legend
        screenshot(page, "preprocess-index-1300")


def test_every_flag_has_a_meaning_in_the_legend():
    from thyrocad.preprocess.steps import Flag
    from thyrocad.preprocess.strip import FLAG_MEANINGS

    assert set(FLAG_MEANINGS) == {str(f) for f in Flag}


def test_strips_of_one_config_have_the_same_panels_even_for_a_blank_view():
    """The web app stacks a study's strips: a blank view must not lose a panel."""
    import dataclasses

    from thyrocad.preprocess.strip import render_strip

    counts = np.random.default_rng(0).poisson(5.0, (128, 128)).astype(np.float32)
    for config in (preset("paper"), preset("default")):
        no_eq = dataclasses.replace(
            config, equalize=dataclasses.replace(config.equalize, enabled=False)
        )
        for cfg in (config, no_eq):
            widths = {
                render_strip(Pipeline(cfg).run(image, (2.2, 2.2)), cfg.output).shape[1]
                for image in (counts, np.zeros_like(counts))
            }
            assert len(widths) == 1
