"""Hot focal maxima and the neck midline their halo bends (`thyrocad.preprocess.hot_foci`)."""

from __future__ import annotations

import numpy as np
import pytest

from thyrocad.data.phantom import PhantomConfig, simulate_patient
from thyrocad.data.phantom.cohort import ground_truth
from thyrocad.preprocess.hot_foci import (
    HALO_REACH_MM,
    HOT_OVER_BODY,
    focal_maxima,
    halo_reach_mm,
    straighten_midline,
)
from thyrocad.preprocess.landmarks import locate_thyroid_bed
from thyrocad.study import View

MM = 2.0


def _neck(focus_col: float, focus_peak: float, bend: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """A 200 x 120 px view of body level 10 with one Gaussian focus at row 100, and a midline
    at column 60 that bends 12 px towards the focus over the `bend` rows above and below it."""
    img = np.full((200, 120), 10.0)
    rows, cols = np.indices(img.shape)
    img += focus_peak * np.exp(-((rows - 100) ** 2 + (cols - focus_col) ** 2) / (2 * 3.0**2))
    centre = np.full(200, 60.0)
    centre[100 - bend : 101 + bend] += 12.0 * np.sign(focus_col - 60)
    return img, centre


def test_focal_maxima_finds_each_focus_once():
    img, _ = _neck(focus_col=85, focus_peak=500.0)
    near, rows, cols = focal_maxima(img, MM)
    hottest = int(np.argmax(near[rows, cols]))
    assert (rows[hottest], cols[hottest]) == (100, 85)
    assert near.shape == img.shape


def test_a_hot_lateral_focus_has_its_rows_interpolated():
    """A focus 50 mm off the midline and 50 times the body level: the rows within
    `HALO_REACH_MM` of it take the midline of the rows around them."""
    img, centre = _neck(focus_col=85, focus_peak=500.0)
    out = straighten_midline(centre, img, level=10.0, mm=MM)
    np.testing.assert_allclose(out, 60.0)
    assert np.array_equal(np.isnan(out), np.isnan(centre))


def test_a_brighter_focus_has_more_rows_interpolated():
    """A halo bends the midline further the brighter its focus: 60 rows (120 mm) either side
    of a focus about 350 times the body level are all straightened, while a focus about 20
    times it reaches little beyond `HALO_REACH_MM` and leaves the rows beyond bent."""
    img, centre = _neck(focus_col=85, focus_peak=5000.0, bend=60)
    np.testing.assert_allclose(straighten_midline(centre, img, level=10.0, mm=MM), 60.0)
    img, centre = _neck(focus_col=85, focus_peak=300.0, bend=60)
    out = straighten_midline(centre, img, level=10.0, mm=MM)
    reach = round(halo_reach_mm(near_ratio(img)) / MM)
    assert HALO_REACH_MM <= reach * MM < 60 * MM
    np.testing.assert_allclose(out[40:161], 72.0)


def near_ratio(img: np.ndarray) -> float:
    """The hottest focus-smoothed maximum over the body level 10 of `_neck`."""
    near, rows, cols = focal_maxima(img, MM)
    return float(near[rows, cols].max() / 10.0)


def test_one_noisy_row_beside_the_halo_does_not_set_the_midline():
    """The line across the left-out rows runs between medians of `ANCHOR_MM` of rows, so a
    single row at the torso's edge 20 px off (as on a rotated patient) does not tilt it."""
    img, centre = _neck(focus_col=85, focus_peak=500.0)
    reach = round(halo_reach_mm(near_ratio(img)) / MM)
    centre[101 + reach] = 40.0
    out = straighten_midline(centre, img, level=10.0, mm=MM)
    np.testing.assert_allclose(out[100 - reach : 101 + reach], 60.0)
    assert halo_reach_mm(HOT_OVER_BODY) == HALO_REACH_MM


@pytest.mark.parametrize(
    ("focus_col", "peak"),
    [(85, 100.0), (66, 500.0)],  # 10 times the body level; a remnant 12 mm off the midline
)
def test_faint_or_midline_foci_leave_the_midline_alone(focus_col, peak):
    img, centre = _neck(focus_col=focus_col, focus_peak=peak)
    np.testing.assert_array_equal(straighten_midline(centre, img, level=10.0, mm=MM), centre)


@pytest.mark.parametrize("index", [3, 84, 89, 103])
def test_node_halo_no_longer_pulls_the_bed_sideways(index):
    """`hot_nodes` patients (seed 0, anterior view) whose node halo once bent the midline and
    the tilt so that the bed was placed 21-68 mm to the side: now within 12 mm of its column
    (0-10 mm; the located column's p90 on 200 `hot_nodes` patients of this seed: 9 mm)."""
    cfg = PhantomConfig(anatomy="hot_nodes", seed=0)
    sim = simulate_patient(cfg, index, residual=False)
    truth = ground_truth(cfg, sim)
    assert "node" in truth["confounders"]
    mm = truth["pixel_mm"]
    bed = locate_thyroid_bed(sim.counts[View.ANTERIOR], (mm, mm))
    true_col = truth["thyroid_bed_center"]["anterior"]["col_px"]
    assert abs(bed.center_rc[1] - true_col) * mm < 12.0
