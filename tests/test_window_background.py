"""The background-referenced window (`WindowConfig.reference="background"`): the clip level is
a fixed multiple of the neck's ring median around the bed, measured on the whole view, so a
focus keeps its contrast to the tissue around it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from thyrocad.errors import ConfigError, PreprocessError
from thyrocad.experiment.report.methods import _preprocessing
from thyrocad.preprocess import Pipeline, background, preset, steps
from thyrocad.preprocess.config import CropConfig, PipelineConfig, WindowConfig

SPACING = (2.0, 2.0)
CENTRE = (64.0, 64.0)


def _config(**window) -> PipelineConfig:
    """The recommended preset centred on `CENTRE` (no locator), with a background window."""
    base = preset("recommended")
    crop = dataclasses.replace(base.crop, center_rc=CENTRE)
    win = WindowConfig(**{"reference": "background", "transform": "linear", **window})
    return dataclasses.replace(base, crop=crop, window=win)


def _view(level: float, focus: float) -> np.ndarray:
    """A flat view of `level` counts with a `focus`-count 3 x 3 spot at `CENTRE`."""
    counts = np.full((128, 128), level)
    counts[63:66, 63:66] = focus
    return counts


def test_the_window_is_the_counts_over_the_ring_median_clipped_at_the_ratio():
    counts = _view(4.0, 40.0)
    result = Pipeline(_config(clip_ratio=8.0)).run(counts, SPACING)
    crop = result.stages["crop"]
    expected = np.rint(np.clip(crop, 0, 8.0 * 4.0) / (8.0 * 4.0) * 255).astype(np.uint8)
    np.testing.assert_array_equal(result.stages["window8"], expected)
    assert result.stages["window8"].max() == 255 and np.median(result.stages["window8"]) == 32


def test_the_background_is_the_smoothed_median_of_the_ring_only():
    counts = _view(2.0, 500.0)
    rows, cols = np.indices(counts.shape)
    distance = np.hypot(rows - CENTRE[0], cols - CENTRE[1]) * SPACING[0]
    counts[(distance >= 40) & (distance <= 50)] = 6.0  # inside the 35-60 mm ring
    counts[distance > 70] = 100.0  # outside it: ignored
    got = background.ring_background(counts, CENTRE, SPACING, (35.0, 60.0))
    ring = (distance >= 35) & (distance <= 60)
    smooth = background.smoothed(counts, SPACING)
    assert got == pytest.approx(float(np.median(smooth[ring])))
    assert 2.0 < got < 6.0


def test_brighter_focus_over_the_same_tissue_looks_brighter_unlike_the_percentile_window():
    faint, bright = _view(4.0, 12.0), _view(4.0, 24.0)
    by_background = Pipeline(_config(clip_ratio=16.0))
    by_percentile = Pipeline(
        dataclasses.replace(_config(), window=WindowConfig(transform="linear"))
    )
    window = {
        name: [pipe.run(v, SPACING).stages["window8"] for v in (faint, bright)]
        for name, pipe in (("background", by_background), ("percentile", by_percentile))
    }
    faint8, bright8 = window["background"]
    assert bright8.max() > 1.8 * faint8.max()  # contrast to the tissue kept
    faint8, bright8 = window["percentile"]
    assert np.median(faint8) != np.median(bright8)  # the percentile rescales the tissue


def test_an_empty_ring_is_floored_per_mm2_so_a_view_without_counts_nearby_still_windows():
    counts = np.zeros((128, 128))
    counts[63:66, 63:66] = 5.0
    result = Pipeline(_config()).run(counts, SPACING)
    floor = background.MIN_BACKGROUND_PER_MM2 * SPACING[0] * SPACING[1]
    assert result.stages["window8"].max() == np.rint(255 * min(1, 5.0 / (32 * floor)))


def test_without_pixel_spacing_the_ring_is_measured_at_the_locators_scale():
    counts = _view(3.0, 30.0)
    cfg = _config(clip_ratio=4.0)
    result = Pipeline(cfg).run(counts, None)
    mm = background.pixel_mm(counts.shape, None, None)
    level = 4.0 * background.ring_background(counts, CENTRE, mm, cfg.window.ring_mm)
    np.testing.assert_array_equal(
        result.stages["window8"],
        np.rint(np.clip(result.stages["crop"], 0, level) / level * 255).astype(np.uint8),
    )


def test_bad_window_settings_are_config_errors_and_a_missing_background_an_error():
    for bad in ({"reference": "crop"}, {"clip_ratio": 1.0}, {"ring_mm": (60.0, 35.0)}):
        with pytest.raises(ConfigError, match="window"):
            PipelineConfig(window=WindowConfig(**bad))
    with pytest.raises(PreprocessError, match="background"):
        steps.window_to_uint8(np.eye(8), WindowConfig(reference="background"))


def test_the_reference_is_part_of_the_config_hash_and_round_trips():
    cfg = _config()
    assert cfg.config_hash() != dataclasses.replace(cfg, window=WindowConfig()).config_hash()
    again = PipelineConfig.from_dict(cfg.to_dict())
    assert again == cfg and again.window.ring_mm == (35.0, 60.0)
    assert CropConfig().width_mm == 120.0  # the paper's crop is untouched


def test_the_methods_text_names_the_background_window():
    text = _preprocessing(preset("recommended").to_dict())
    assert "log transform, clipped at 32 times the median of the smoothed counts" in text
    assert "35-60 mm ring around the bed" in text
    assert "99.5th percentile" in _preprocessing(preset("paper").to_dict())
