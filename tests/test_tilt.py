"""The in-plane tilt that the thyroid-bed locator deskews by (`shoulders.tilt_deg`): fitted
over the whole body's axis of symmetry, against the true tilt of tilted patients on
thyrocad's phantom and on the independently written one."""

from __future__ import annotations

import numpy as np

from independent_helpers import independent_phantom
from thyrocad.data.phantom import PhantomConfig, simulate_patient
from thyrocad.data.phantom.cohort import ground_truth
from thyrocad.preprocess.outline import body_outline
from thyrocad.preprocess.shoulders import tilt_deg
from thyrocad.study import View


def _tilt(counts: np.ndarray, mm: float) -> float:
    return tilt_deg(body_outline(counts, mm), mm)


def test_tilt_of_our_phantoms_tilted_patients():
    """The first ten patients of thyrocad's phantom (`field_position`, seed 0) lying 8-15
    degrees from straight: the tilt is within 3 degrees on nine (patient 186, 14.3 degrees,
    reads 25: its outline is cut by the field), median error under 1.5 degrees."""
    cfg = PhantomConfig(n_patients=320, n_residual=200, seed=0, anatomy="field_position")
    errors = []
    for index in (24, 35, 81, 100, 132, 143, 148, 158, 186, 189):
        sim = simulate_patient(cfg, index, residual=False)
        truth = ground_truth(cfg, sim)
        counts = sim.counts[View.ANTERIOR].astype(np.float64)
        assert abs(truth["pose"]["tilt_deg"]) >= 7.0
        errors.append(abs(_tilt(counts, truth["pixel_mm"]) - truth["pose"]["tilt_deg"]))
    assert np.median(errors) < 1.5 and sum(e < 3.0 for e in errors) == 9


def test_tilt_of_the_independent_phantoms_tilted_patients():
    """40 views of the independent phantom's `tilted` setting (seed 0: 8-20 degrees, or the
    head turned 15-35, or both; its angle has the opposite sign). Fitted to the neck above the
    shoulder line, the tilt was over 6 degrees off in 49 % of its views (p90 17 degrees;
    twenty-first session, 200 views): the higher shoulder joins the neck's run first and
    pulls its midline aside, and the head turns on a short neck. Over the whole body: median
    error under 4 degrees, p90 under 12."""
    phantom = independent_phantom()
    errors = []
    for index in range(0, 80, 2):
        view = phantom.simulate(0, index, index % 4 == 0, "tilted")
        errors.append(abs(_tilt(view.counts, view.pixel_mm) + view.meta["tilt_deg"]))
    assert np.median(errors) < 4.0 and np.percentile(errors, 90) < 12.0
