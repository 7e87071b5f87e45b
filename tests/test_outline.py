"""The neck outline's midline and the bed column: rows where the shoulders or raised arms join
the run through the midline are left out, and the column averages the glands' midpoint with
the neck midline (two estimates of one line with independent errors)."""

from __future__ import annotations

import numpy as np
import pytest

from thyrocad.data.phantom import PhantomConfig, simulate_patient
from thyrocad.data.phantom.cohort import ground_truth, residual_flags
from thyrocad.preprocess.landmarks import locate_thyroid_bed
from thyrocad.preprocess.outline import Outline, midline_at
from thyrocad.study import View

MM = 2.0


def _outline(width_mm: np.ndarray, centre: np.ndarray) -> Outline:
    return Outline(np.ones((width_mm.size, 8), dtype=bool), width_mm, centre, 1.0, width_mm, centre)


def test_midline_leaves_out_rows_wider_than_the_neck():
    """A 120 mm neck centred on column 100; below row 50 an arm joins the run on one side (300
    mm wide, centre 130): at row 52, 15 mm from more joined rows than neck rows, the midline
    is the neck's, unless the neck width is unknown."""
    width = np.where(np.arange(100) < 50, 120.0, 300.0)
    centre = np.where(np.arange(100) < 50, 100.0, 130.0)
    outline = _outline(width, centre)
    assert midline_at(outline, 52, 120.0 / MM, MM) == 100.0
    assert midline_at(outline, 52, None, MM) == 130.0
    assert midline_at(outline, 90, 120.0 / MM, MM) is None  # no neck-like row near the bed


def test_midline_is_the_median_of_the_rows_around_the_bed():
    centre = np.full(100, 100.0)
    centre[40:44] = [90.0, 91.0, np.nan, 150.0]  # a noisy row and an outline gap
    assert midline_at(_outline(np.full(100, 120.0), centre), 42, 60.0, MM) == 100.0


def _column_errors_mm(anatomy: str, indices) -> np.ndarray:
    cfg = PhantomConfig(n_patients=200, n_residual=100, seed=0, anatomy=anatomy)
    flags = residual_flags(cfg)
    errors = []
    for i in indices:
        sim = simulate_patient(cfg, i, bool(flags[i]))
        truth = ground_truth(cfg, sim)
        bed, mm = truth["thyroid_bed_center"]["anterior"], truth["pixel_mm"]
        found = locate_thyroid_bed(sim.counts[View.ANTERIOR], (mm, mm))
        errors.append((found.center_rc[1] - bed["col_px"]) * mm)
    return np.abs(errors)


@pytest.mark.parametrize("index", [9, 26, 48])
def test_raised_arms_joining_the_bed_rows_do_not_pull_the_column(index):
    """`arms_up` views whose shoulders, lifted by the arms, join the run at the bed rows: the
    outline's centre there lies 20 mm off the midline (measured); the column stays within
    6 mm of the true bed."""
    assert _column_errors_mm("arms_up", [index])[0] <= 6.0


def test_column_error_on_default_views():
    """24 `default` patients: median column error under 2.5 mm (the glands' midpoint alone:
    3.4 mm on 200 patients of this seed, the mean of both 1.9 mm; ad-hoc script, not kept)."""
    assert np.median(_column_errors_mm("default", range(24))) < 2.5
