"""A body that fills the camera's field (a zoomed neck view with the arms raised beside the
head) has no outline: no edge, no shoulders. Confirmed glands alone then place the bed,
flagged; an unconfirmed pair does not. Views of the independently written phantom
(benchmarks/independent_phantom.py), which thyrocad's own phantom never makes."""

from __future__ import annotations

import numpy as np
import pytest

from independent_helpers import independent_phantom
from thyrocad.preprocess import Flag, Pipeline
from thyrocad.preprocess.landmarks import locate_thyroid_bed
from thyrocad.preprocess.outline import body_outline, field_outline
from thyrocad.preprocess.truth import points_in_box


def _simulate(seed: int, index: int, setting: str):
    return independent_phantom().simulate(seed, index, True, setting)


@pytest.mark.parametrize(
    ("seed", "setting", "index"), [(0, "arms_up", 94), (1, "arms_up", 136), (2, "mixed", 50)]
)
def test_confirmed_glands_place_the_bed_when_the_body_fills_the_field(seed, setting, index):
    """Three residual views whose body fills the field: not found before, the fallback at the
    image centre 69-85 mm from the bed and the crop missing a focus. The glands, with the
    parotids above them, now put the bed within 30 mm, flagged, and the crop holds every
    focus."""
    view = _simulate(seed, index, setting)
    mm = view.pixel_mm
    assert body_outline(view.counts, mm) is None
    assert field_outline(view.counts, mm).mask.all()
    bed = locate_thyroid_bed(view.counts, (mm, mm))
    assert bed.found and bed.method == "submandibular" and bed.uncertain
    assert "fills the field" in bed.reason
    assert np.hypot(*np.subtract(bed.center_rc, view.bed_rc)) * mm < 30.0
    result = Pipeline().run(view.counts, (mm, mm))
    assert Flag.BED_UNCERTAIN in result.flags
    assert points_in_box(list(view.foci_rc), result.crop_box)


def test_an_unconfirmed_pair_in_a_full_field_is_not_taken():
    """A residual view (seed 0, `arms_up`, 142) whose body fills the field and whose lowest
    symmetric pair has no parotids above it: taken, it put the bed 186 mm off. Unconfirmed
    pairs there were mostly wrong (5 of 8 views further off), so the view stays not found."""
    view = _simulate(0, 142, "arms_up")
    mm = view.pixel_mm
    assert body_outline(view.counts, mm) is None
    bed = locate_thyroid_bed(view.counts, (mm, mm))
    assert not bed.found and "fills the field" in bed.reason


def test_an_empty_field_has_no_outline_of_either_kind():
    assert field_outline(np.zeros((64, 64)), 2.2) is None
