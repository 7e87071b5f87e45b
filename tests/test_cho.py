"""The channelized Hotelling observer: Laguerre-Gauss channels, the Hotelling template, and
detection of a known signal at a known location (independent references: the channels'
orthonormality, scikit-learn's linear discriminant)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.metrics import roc_auc_score

from thyrocad.evaluation.baselines import cho


def test_laguerre_gauss_channels_are_orthonormal():
    channels = cho.laguerre_gauss_channels(201, 40.0, 6).reshape(6, -1)
    assert channels @ channels.T == pytest.approx(np.eye(6), abs=1e-3)


def test_hotelling_template_is_the_linear_discriminant_direction():
    rng = np.random.default_rng(0)
    cov = np.array([[2.0, 0.6, 0.0], [0.6, 1.0, 0.3], [0.0, 0.3, 0.5]])
    x = np.vstack([rng.multivariate_normal([0, 0, 0], cov, 300),
                   rng.multivariate_normal([1, 0.5, -0.2], cov, 200)])  # fmt: skip
    y = np.r_[np.zeros(300), np.ones(200)].astype(int)
    w = cho.hotelling_template(x, y)
    lda = LinearDiscriminantAnalysis(solver="lsqr").fit(x, y).coef_[0]
    cosine = w @ lda / np.linalg.norm(w) / np.linalg.norm(lda)
    assert cosine == pytest.approx(1.0, abs=1e-3)  # LDA pools the covariances by class size


def test_cho_detects_a_faint_blob_at_the_bed_and_not_elsewhere():
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[:128, :128]
    blob = 40.0 * np.exp(-((yy - 64) ** 2 + (xx - 64) ** 2) / (2 * 3.0**2))
    spacing = (2.0, 2.0)

    def features(signal: bool, centre) -> np.ndarray:
        counts = rng.poisson(100.0 + (blob if signal else np.zeros_like(blob))).astype(float)
        return cho.view_channels(counts, centre, spacing)

    y = np.r_[np.ones(60), np.zeros(60)].astype(int)
    at_bed = np.array([features(bool(v), (64, 64)) for v in y])
    w = cho.hotelling_template(at_bed[::2], y[::2])
    assert roc_auc_score(y[1::2], at_bed[1::2] @ w) > 0.95
    off_bed = np.array([features(bool(v), (20, 20)) for v in y])  # the region misses the blob
    w_off = cho.hotelling_template(off_bed[::2], y[::2])
    assert roc_auc_score(y[1::2], off_bed[1::2] @ w_off) < 0.75


def test_true_beds_come_from_the_phantom_ground_truth(tmp_path):
    (tmp_path / "ground_truth").mkdir()
    bed = {
        "anterior": {"row_px": 120.5, "col_px": 127.0},
        "posterior": {"row_px": 121, "col_px": 128},
    }
    (tmp_path / "ground_truth" / "P1.json").write_text(json.dumps({"thyroid_bed_center": bed}))
    assert cho.true_beds(tmp_path, "P1") == {
        "anterior": (120.5, 127.0),
        "posterior": (121.0, 128.0),
    }
    assert cho.has_ground_truth(tmp_path, ["P1"])
    assert not cho.has_ground_truth(tmp_path, ["P1", "P2"])
