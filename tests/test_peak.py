"""The matched peak detector (`thyrocad.evaluation.baselines.peak`): it responds to a focus near
the located thyroid bed and not to one far from it, and separates phantom patients with and
without remnants."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from thyrocad.data.phantom import PhantomConfig, simulate_patient
from thyrocad.evaluation.baselines import peak
from thyrocad.evaluation.baselines.uptake_ratio import uptake_ratio
from thyrocad.preprocess import Pipeline, landmarks, preset, steps
from thyrocad.study import View

SPACING = (2.2, 2.2)


def _blob(shape, centre, amplitude: float) -> np.ndarray:
    rows, cols = np.indices(shape)
    return amplitude * np.exp(-((rows - centre[0]) ** 2 + (cols - centre[1]) ** 2) / (2 * 2.0**2))


def test_a_focus_near_the_bed_raises_the_score_and_one_far_away_does_not():
    sim = simulate_patient(PhantomConfig(n_patients=2, n_residual=1, seed=3), 1, False)
    counts = sim.counts[View.ANTERIOR].astype(np.float64)
    row, col = landmarks.locate_thyroid_bed(counts, SPACING).center_rc
    base = peak.peak_ratio(counts, SPACING)
    level = float(np.median(counts[int(row) - 5 : int(row) + 5, int(col) - 5 : int(col) + 5]))
    near = counts + _blob(counts.shape, (row + 4, col - 3), 4 * max(level, 1.0))  # 11 mm off
    assert peak.peak_ratio(near, SPACING) > 1.5 * base
    far = counts + _blob(counts.shape, (row + 45, col + 45), 0.5 * max(level, 1.0))  # 140 mm
    assert peak.peak_ratio(far, SPACING) == pytest.approx(base, rel=0.05)


def test_it_separates_phantom_patients_with_and_without_remnants():
    cfg = PhantomConfig(n_patients=24, n_residual=12, seed=7)
    scores, labels = [], []
    for i in range(24):
        residual = i % 2 == 0
        sim = simulate_patient(cfg, i, residual)
        views = (View.ANTERIOR, View.POSTERIOR)
        scores.append(sum(peak.peak_ratio(sim.counts[v], SPACING) for v in views))
        labels.append(int(residual))
    assert roc_auc_score(labels, scores) > 0.85


def test_the_score_does_not_depend_on_the_pixel_size():
    """The same low-count non-residual patient imaged at 2.2, 1.1 and 4.4 mm scores about the
    same: a floor of half a count *per pixel* on the background once made the ratio depend on
    the pixel area wherever the neck holds under half a count per pixel."""
    scores = []
    for matrix, mm in ((256, 2.2), (512, 1.1), (128, 4.4)):
        sim = simulate_patient(PhantomConfig(matrix=matrix, pixel_mm=mm, seed=0), 1, False)
        scores.append(peak.peak_ratio(sim.counts[View.ANTERIOR], (mm, mm)))
    assert max(scores) / min(scores) < 1.3, scores


def test_the_pipeline_and_every_observer_locate_a_view_once(monkeypatch):
    """An experiment preprocesses a cohort under several configs and scores it with several
    observers: the locator (most of their time) runs once per view, whatever the count dtype."""
    calls = []
    real = landmarks.locate_thyroid_bed
    monkeypatch.setattr(steps, "_LOCATED", type(steps._LOCATED)())
    monkeypatch.setattr(steps, "locate_thyroid_bed", lambda *a: calls.append(1) or real(*a))
    sim = simulate_patient(PhantomConfig(seed=11), 0, True)
    counts = sim.counts[View.ANTERIOR]
    first = peak.peak_ratio(counts.astype(np.float32), SPACING)
    uptake_ratio(counts, SPACING)
    for name in ("default", "recommended"):
        Pipeline(preset(name)).run(counts, SPACING)
    assert len(calls) == 1
    assert peak.peak_ratio(counts, SPACING) == first
    peak.peak_ratio(counts, (2.4, 2.4))  # another spacing is another location
    assert len(calls) == 2
