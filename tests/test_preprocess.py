"""The preprocessing steps and Pipeline on real OpenCV calls: config, crop, window, equalize,
GrabCut, output, degenerate inputs, determinism."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from thyrocad.errors import ConfigError, InputError, NonFiniteCountsError, PreprocessError
from thyrocad.preprocess import (
    STAGES,
    CropBox,
    Flag,
    Pipeline,
    PipelineConfig,
    preset,
    steps,
    uncrop,
)
from thyrocad.preprocess.config import (
    CropConfig,
    EqualizeConfig,
    GrabCutConfig,
    OutputConfig,
    WindowConfig,
)
from thyrocad.preprocess.truth import kept_fractions, points_in_box

SPACING = (2.2, 2.2)
BED = (150.0, 128.0)


def neck_counts(seed: int = 0, shape: tuple[int, int] = (256, 256)) -> np.ndarray:
    """Poisson counts: a neck band, an oesophagus line and two bright foci beside it at BED."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    lam = 0.3 + 2.0 * (np.abs(xx - BED[1]) < 40) + 1.5 * (np.abs(xx - BED[1]) < 3)
    for dc, peak in ((-10, 80.0), (12, 50.0)):
        lam = lam + peak * np.exp(-((yy - BED[0]) ** 2 + (xx - BED[1] - dc) ** 2) / 18.0)
    return rng.poisson(lam).astype(np.float32)


def manual(config: PipelineConfig, center=BED) -> PipelineConfig:
    """`config` with a manual bed centre (no landmark search)."""
    return dataclasses.replace(config, crop=dataclasses.replace(config.crop, center_rc=center))


# --- config -------------------------------------------------------------------------------


def test_config_json_round_trip_keeps_value_and_hash():
    cfg = PipelineConfig(
        crop=CropConfig(center_rc=(10.0, 20.0), width_mm=90),
        equalize=EqualizeConfig(method="clahe", clahe_tile_grid=(8, 8)),
        name="x",
    )
    back = PipelineConfig.from_json(cfg.to_json())
    assert back == cfg
    assert back.config_hash() == cfg.config_hash()


@pytest.mark.parametrize(
    "change",
    [
        {"crop": CropConfig(width_mm=121)},
        {"window": WindowConfig(transform="log")},
        {"equalize": EqualizeConfig(enabled=False)},
        {"grabcut": GrabCutConfig(iterations=6)},
        {"output": OutputConfig(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))},
    ],
)
def test_config_hash_changes_with_any_setting_but_not_the_name(change):
    base = PipelineConfig()
    assert dataclasses.replace(base, **change).config_hash() != base.config_hash()
    assert dataclasses.replace(base, name="other").config_hash() == base.config_hash()


def test_config_rejects_bad_values_and_unknown_keys():
    with pytest.raises(ConfigError, match="margin_frac"):
        PipelineConfig(grabcut=GrabCutConfig(margin_frac=0.6))
    with pytest.raises(ConfigError, match="transform"):
        PipelineConfig(window=WindowConfig(transform="gamma"))
    with pytest.raises(ConfigError, match=r"unknown.*widht_mm"):
        PipelineConfig.from_dict({"crop": {"widht_mm": 3}})
    with pytest.raises(ConfigError, match="not valid JSON"):
        PipelineConfig.from_json("{")
    with pytest.raises(ConfigError, match="paper"):
        preset("nope")


def test_presets_differ_and_normalisation_override():
    assert preset("paper").grabcut.init == "rect" and preset("paper").grabcut.enabled
    assert not preset("default").grabcut.enabled
    assert preset("grabcut_bed").grabcut.init == "bed"
    hashes = {preset(name).config_hash() for name in ("paper", "default", "grabcut_bed")}
    assert len(hashes) == 3
    lite = preset("default").with_normalisation((0.5,) * 3, (0.5,) * 3)
    assert lite.output.mean == (0.5, 0.5, 0.5)
    assert lite.grabcut == preset("default").grabcut


# --- steps --------------------------------------------------------------------------------


def test_crop_box_is_sized_in_mm_and_maps_back_to_the_original():
    counts = neck_counts()
    result = Pipeline(manual(preset("default"))).run(counts, SPACING)
    box = result.crop_box
    assert box.shape == (round(120 / 2.2), round(120 / 2.2))
    assert abs((box.row0 + box.row1) / 2 - BED[0]) <= 1
    np.testing.assert_array_equal(
        result.stages["crop"], counts[box.row0 : box.row1, box.col0 : box.col1]
    )
    coarse = Pipeline(manual(preset("default"))).run(counts, (4.0, 4.0)).crop_box
    assert coarse.shape == (30, 30)


def test_no_spacing_scales_the_box_with_the_image_width_and_flags_it():
    cfg = manual(preset("default"))
    result = Pipeline(cfg).run(neck_counts(), None)
    assert Flag.NO_SPACING in result.flags
    assert result.crop_box.shape == (55, 55)  # 120 mm at 563 mm across 256 columns
    wide = Pipeline(cfg).run(np.pad(neck_counts(), ((0, 0), (128, 128))), None)
    assert wide.crop_box.shape == (109, 109)  # the same field fraction of 512 columns
    fixed = dataclasses.replace(cfg, crop=dataclasses.replace(cfg.crop, fallback_box_px=(60, 64)))
    assert Pipeline(fixed).run(neck_counts(), None).crop_box.shape == (60, 64)


def test_fallback_centre_is_flagged_when_localisation_is_off():
    cfg = dataclasses.replace(preset("default"), crop=CropConfig(use_landmarks=False))
    result = Pipeline(cfg).run(neck_counts(), SPACING)
    assert Flag.BED_NOT_FOUND in result.flags
    assert result.bed_center_rc == (128.0, 128.0)
    assert "switched off" in result.bed_reason


@pytest.mark.parametrize("shape", [(41, 39), (20, 300), (3, 3)])
def test_small_or_odd_images_run_with_localisation(shape):
    counts = np.random.default_rng(0).poisson(3.0, shape).astype(np.float32)
    result = Pipeline(preset("default")).run(counts, SPACING)
    assert result.network_input.shape == (3, 224, 224)
    assert np.isfinite(result.network_input).all()


def test_image_smaller_than_the_crop_is_padded_not_cropped_short():
    small = neck_counts(shape=(30, 24))
    cfg = manual(preset("default"), center=(15.0, 12.0))
    result = Pipeline(cfg).run(small, SPACING)
    assert Flag.PADDED in result.flags
    crop = result.stages["crop"]
    assert crop.shape == result.crop_box.shape == (55, 55)
    assert crop.sum() == pytest.approx(small.sum())  # every count kept, the rest is zero
    assert result.network_input.shape == (3, 224, 224)


def test_uncrop_inverts_crop_including_padding():
    counts = neck_counts(shape=(40, 30))
    box = CropBox(-5, 10, 25, 45)  # reaches above and right of the image
    cropped, flags = steps.crop(counts, box)
    assert flags == [Flag.PADDED]
    back = uncrop(cropped, box, counts.shape)
    np.testing.assert_array_equal(back[:25, 10:], counts[:25, 10:])
    assert (back[25:] == 0).all() and (back[:, :10] == 0).all()
    with pytest.raises(PreprocessError, match="differs"):
        uncrop(cropped[1:], box, counts.shape)


def test_truth_measures_count_foci_and_mask_inside_crop_and_foreground():
    result = Pipeline(manual(preset("grabcut_bed"))).run(neck_counts(), SPACING)
    box = result.crop_box
    assert points_in_box([BED, (box.row0, box.col1 - 1)], box)
    assert not points_in_box([BED, (box.row1, BED[1])], box)
    truth = np.zeros((256, 256), bool)
    truth[int(BED[0]) - 2 : int(BED[0]) + 3, int(BED[1]) - 12 : int(BED[1]) - 7] = True
    assert kept_fractions(result, truth) == (1.0, 1.0)
    truth[0:5, 0:5] = True  # as much again, outside the crop
    assert kept_fractions(result, truth) == (0.5, 0.5)
    assert np.isnan(kept_fractions(result, np.zeros_like(truth))).all()


def test_window_clips_at_the_percentile_and_applies_the_transform():
    crop = np.arange(1000, dtype=np.float32).reshape(25, 40)
    cfg = WindowConfig(clip_percentile=90, transform="linear")
    linear, flags = steps.window_to_uint8(crop, cfg)
    assert flags == []
    assert (linear[crop >= np.percentile(crop, 90)] == 255).all()
    assert linear.dtype == np.uint8 and linear.min() == 0
    root, _ = steps.window_to_uint8(crop, WindowConfig(clip_percentile=90, transform="sqrt"))
    assert (root >= linear).all() and (root > linear).any()  # sqrt lifts faint counts
    assert (np.diff(root.ravel().astype(int)) >= 0).all()  # monotone in counts


def test_equalize_is_opencv_equalize_hist_or_clahe():
    img = np.random.default_rng(1).integers(0, 60, (45, 50)).astype(np.uint8)
    np.testing.assert_array_equal(steps.equalize(img, EqualizeConfig()), cv2.equalizeHist(img))
    clahe = steps.equalize(img, EqualizeConfig(method="clahe"))
    assert clahe.shape == img.shape and not np.array_equal(clahe, cv2.equalizeHist(img))
    assert steps.equalize(img, EqualizeConfig(enabled=False)) is img


def test_network_input_is_normalised_float32_chw():
    img = np.full((45, 50), 255, np.uint8)
    img[:, :25] = 0
    out = steps.to_network_input(img, OutputConfig(mean=(0.5,) * 3, std=(0.5,) * 3))
    assert out.shape == (3, 224, 224) and out.dtype == np.float32
    assert out.min() == pytest.approx(-1.0) and out.max() == pytest.approx(1.0)
    np.testing.assert_array_equal(out[0], out[2])
    imagenet = steps.to_network_input(img, OutputConfig())
    assert imagenet[0, 0, 0] == pytest.approx(-0.485 / 0.229, rel=1e-5)


# --- GrabCut ------------------------------------------------------------------------------


def test_grabcut_bed_init_keeps_the_bed_and_zeroes_the_background():
    result = Pipeline(manual(preset("grabcut_bed"))).run(neck_counts(), SPACING)
    mask, seg = result.stages["grabcut_mask"], result.stages["segmented"]
    assert result.flags == ()
    assert 0.05 < mask.mean() < 0.95
    bed = (round(BED[0]) - result.crop_box.row0, round(BED[1]) - result.crop_box.col0)
    assert mask[bed]
    assert (seg[~mask] == 0).all()
    np.testing.assert_array_equal(seg[mask], result.stages["equalized"][mask])


def test_grabcut_switched_off_keeps_every_pixel():
    result = Pipeline(manual(preset("default"))).run(neck_counts(), SPACING)
    assert result.stages["grabcut_mask"].all()
    np.testing.assert_array_equal(result.stages["segmented"], result.stages["equalized"])


def test_grabcut_failure_keeps_the_crop_and_flags_it(monkeypatch):
    def broken(*args):
        raise cv2.error("!bgdSamples.empty() && !fgdSamples.empty()")

    monkeypatch.setattr(steps.cv2, "grabCut", broken)
    result = Pipeline(manual(preset("paper"))).run(neck_counts(), SPACING)
    assert Flag.GRABCUT_FAILED in result.flags
    assert result.stages["grabcut_mask"].all()


def test_grabcut_is_repeatable_within_one_process():
    cfg = manual(preset("paper"))
    counts = neck_counts(seed=3)
    first = Pipeline(cfg).run(counts, SPACING)
    # Another GrabCut in between advances OpenCV's global RNG; the seed must undo that.
    Pipeline(manual(preset("grabcut_bed"))).run(neck_counts(seed=4), SPACING)
    second = Pipeline(cfg).run(counts, SPACING)
    np.testing.assert_array_equal(first.stages["grabcut_mask"], second.stages["grabcut_mask"])
    np.testing.assert_array_equal(first.network_input, second.network_input)


# --- degenerate input ---------------------------------------------------------------------


@pytest.mark.parametrize("preset_name", ["paper", "default", "grabcut_bed"])
@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("blank", {Flag.BLANK}),
        ("hot_pixel", {Flag.SPARSE}),
        ("saturated", {Flag.SATURATED}),
        ("flat", {Flag.FLAT}),
        ("negative", {Flag.NEGATIVE_COUNTS}),
    ],
)
def test_degenerate_images_give_a_flagged_usable_output(preset_name, case, expected):
    counts = np.zeros((256, 256), np.float32)
    if case == "hot_pixel":
        counts[150, 128] = 5000
    elif case == "saturated":
        counts = np.minimum(neck_counts() * 50, 255).astype(np.float32)
    elif case == "flat":
        counts[:] = 65535
    elif case == "negative":
        counts = neck_counts() - 1
    config = manual(preset(preset_name))
    if config.grabcut.enabled and case in ("blank", "flat"):
        expected = expected | {Flag.GRABCUT_SKIPPED}
    result = Pipeline(config).run(counts, SPACING)
    assert expected <= set(result.flags)
    assert set(STAGES) == set(result.stages)
    assert result.network_input.shape == (3, 224, 224)
    assert np.isfinite(result.network_input).all()


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_counts_raise_an_input_error(bad):
    counts = neck_counts()
    counts[3, 4] = bad
    with pytest.raises(NonFiniteCountsError, match="NaN/inf") as info:
        Pipeline(manual(preset("default"))).run(counts, SPACING)
    assert isinstance(info.value, InputError)


@pytest.mark.parametrize(
    ("counts", "spacing", "match"),
    [
        (np.zeros((2, 64, 64), np.float32), SPACING, "2-D"),
        (np.zeros((0, 64), np.float32), SPACING, "2-D"),
        (np.zeros((64, 64), np.float32), (0.0, 2.2), "spacing"),
        (np.zeros((64, 64), np.float32), (np.nan, 2.2), "spacing"),
    ],
)
def test_unusable_shapes_and_spacings_raise_preprocess_error(counts, spacing, match):
    with pytest.raises(PreprocessError, match=match):
        Pipeline(manual(preset("default"))).run(counts, spacing)


def test_integer_counts_are_accepted():
    counts = neck_counts().astype(np.uint16)
    a = Pipeline(manual(preset("default"))).run(counts, SPACING)
    b = Pipeline(manual(preset("default"))).run(counts.astype(np.float32), SPACING)
    np.testing.assert_array_equal(a.network_input, b.network_input)


@settings(max_examples=40, deadline=None)
@given(
    rows=st.integers(1, 70),
    cols=st.integers(1, 70),
    peak=st.sampled_from([0.0, 1.0, 3.0, 1e3, 65535.0, 1e30]),
    density=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**16),
    preset_name=st.sampled_from(["paper", "default", "grabcut_bed"]),
)
def test_any_finite_image_gives_a_finite_network_input(
    rows, cols, peak, density, seed, preset_name
):
    rng = np.random.default_rng(seed)
    counts = (rng.random((rows, cols)) < density) * rng.random((rows, cols)) * peak
    config = manual(preset(preset_name), center=(rows / 2, cols / 2))
    result = Pipeline(config).run(counts.astype(np.float32), SPACING)
    assert result.network_input.shape == (3, 224, 224)
    assert np.isfinite(result.network_input).all()
