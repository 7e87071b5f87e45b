"""Cohorts identical on every CPU: the portable arithmetic and random draws behind every count,
checked against NumPy/SciPy, and the default cohort's pixels regenerated with NumPy's SIMD
kernels switched off and compared with a committed digest."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from thyrocad.data.phantom import PhantomConfig, portable
from thyrocad.data.phantom.cohort import pixel_digest

DEFAULT_DIGEST_4 = "db87ffcec3e09983f7b33f10c32d81b29d823c32d7586005f6dca878ad111b3a"
"""`pixel_digest(PhantomConfig(), 4)`: the first four default-cohort patients, generator 2."""
SRC = Path(__file__).resolve().parents[1] / "src"


def _ulps(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b) / np.spacing(np.abs(b))))


def test_exp_log_sincos_match_numpy_to_a_few_ulp():
    x = np.linspace(-700.0, 700.0, 100_001)
    assert _ulps(portable.exp(x), np.exp(x)) <= 2
    y = np.exp(np.linspace(-600.0, 600.0, 100_001))
    assert _ulps(portable.log(y), np.log(y)) <= 3
    d = np.linspace(-400.0, 400.0, 80_001)
    sin, cos = portable.sincos_deg(d)
    assert np.max(np.abs(sin - np.sin(np.radians(d)))) < 2e-15
    assert np.max(np.abs(cos - np.cos(np.radians(d)))) < 2e-15
    for v in (0.3, -5.0, 700.0, 1e-5):  # scalars take a pure-Python path: same bits
        assert portable.exp(v) == float(portable.exp(np.array([v]))[0])
        assert portable.sincos_deg(v * 7) == tuple(
            float(t[0]) for t in portable.sincos_deg([v * 7])
        )
    assert portable.log(10.0) == float(portable.log(np.array([10.0]))[0])
    with pytest.raises(ValueError, match="positive"):
        portable.log(0.0)


def test_gaussian_blur_equals_scipy_to_rounding():
    from scipy import ndimage

    img = np.random.default_rng(1).random((60, 70))
    for mode in ("reflect", "constant"):
        ours = portable.gaussian_blur(img, 2.5, mode=mode)
        np.testing.assert_allclose(ours, ndimage.gaussian_filter(img, 2.5, mode=mode), atol=1e-12)
    coarse = portable.bin_sum(img, 2)
    assert coarse.shape == (30, 35) and coarse.sum() == pytest.approx(img.sum())
    up = portable.upsample_linear(np.ones((4, 5)), 3)
    assert up.shape == (12, 15) and np.all(up == 1.0)


@pytest.mark.parametrize("mean", [0.05, 0.7, 5.0, 40.0, 150.0])
def test_poisson_by_inversion_has_poisson_counts(mean):
    """Chi-square goodness of fit against SciPy's Poisson pmf (an independent reference);
    150 is drawn as three pieces of 50."""
    draws = portable.poisson(np.full(40_000, mean), portable.PortableRandom([7, int(mean * 10)]))
    assert draws.dtype == np.int64
    ks = np.arange(int(mean + 8 * np.sqrt(mean) + 8))
    expected = stats.poisson.pmf(ks, mean) * draws.size
    keep = expected >= 5
    observed = np.bincount(draws, minlength=ks.size)[: ks.size]
    chi2 = float((((observed - expected) ** 2) / expected)[keep].sum())
    assert stats.chi2.sf(chi2, int(keep.sum()) - 1) > 1e-3
    assert draws.mean() == pytest.approx(mean, rel=0.05, abs=0.01)


def test_normal_and_gamma_draws_have_their_moments():
    rng = portable.PortableRandom([3, 4])
    z = rng.normal(0.0, 1.0, 200_000)
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1.0) < 0.01
    assert stats.kstest(z[:20_000], "norm").pvalue > 1e-3
    g = np.array([rng.gamma(1.5) for _ in range(20_000)])
    assert stats.kstest(g, stats.gamma(1.5).cdf).pvalue > 1e-3
    weights = rng.dirichlet([2.0, 2.0, 2.0])
    assert sum(weights) == pytest.approx(1.0) and min(weights) > 0
    assert rng.choice(["a", "b"], p=[0.0, 1.0]) == "b"


def test_default_cohort_pixels_match_the_committed_digest():
    assert pixel_digest(PhantomConfig(), 4) == DEFAULT_DIGEST_4


def _dispatched_features() -> list[str]:
    """NumPy's dispatch targets this CPU supports: what NPY_DISABLE_CPU_FEATURES can switch off."""
    from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__

    return [f for f in __cpu_dispatch__ if __cpu_features__.get(f)]


@pytest.mark.slow
def test_same_pixels_with_numpy_simd_switched_off():
    """Regenerate the digest in a child process whose NumPy runs only its baseline kernels
    (every dispatch target this CPU has is disabled) and compare bytes."""
    features = _dispatched_features()
    if not features:
        pytest.skip("this CPU has no NumPy SIMD level above the baseline to switch off")
    env = {**os.environ, "NPY_DISABLE_CPU_FEATURES": " ".join(features), "PYTHONPATH": str(SRC)}
    code = (
        "from numpy._core._multiarray_umath import __cpu_features__ as f; import sys; "
        f"assert not any(f.get(x) for x in {features!r}), 'SIMD still on'; "
        "from thyrocad.data.phantom import PhantomConfig; "
        "from thyrocad.data.phantom.cohort import pixel_digest; "
        "print(pixel_digest(PhantomConfig(), 4))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == DEFAULT_DIGEST_4 == pixel_digest(PhantomConfig(), 4)
