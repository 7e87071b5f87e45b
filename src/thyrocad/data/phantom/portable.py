"""Arithmetic and random draws that give the same bits on every machine.

Why: NumPy picks SIMD kernels for exp/log/sin at run time (AVX-512, AVX2, NEON ...) and they
differ in the last bit; libm differs between C libraries; compiled filters (SciPy's
`ndimage`, FFTs) may fuse multiply-adds on ARM. One last-bit difference in an expected count
flips an acceptance test of NumPy's Poisson sampler now and then, and every later draw of
that patient shifts (issue 14: 3,000-23,000 pixels per view differed with AVX-512 off).

How: every value that decides a count is built from IEEE-754 basic operations only
(+ - * /, sqrt, rint, floor, frexp, ldexp, comparisons), each one a separate NumPy ufunc or
Python float operation, so each result is correctly rounded and therefore the same on any
IEEE-754 machine, whatever SIMD width the loop runs at. Transcendental functions are
evaluated here from those operations (range reduction + a fixed polynomial). The random
stream is read only as 53-bit uniforms (`Generator.random`, an exact integer shift and a
power-of-two scale) and bounded integers (Lemire's integer method): NumPy defines both
bit for bit. Normal, gamma and Poisson variates are made from those uniforms here.

Accuracy: exp, log, sin and cos agree with NumPy's to a few units in the last place
(tests/test_phantom_portable.py); that is far below anything the phantom models.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

LN2 = 0.6931471805599453  # the double nearest ln 2
LN10 = 2.302585092994046  # the double nearest ln 10
_LN2_HI = 6.93147180369123816490e-01  # ln 2 split (fdlibm): k * _LN2_HI is exact
_LN2_LO = 1.90821492927058770002e-10
_INV_LN2 = 1.44269504088896338700e00
_SQRT_HALF = 0.7071067811865476
_DEG = math.pi / 180.0  # one correctly rounded division of two exact doubles
_EXP_COEFFS = tuple(1.0 / math.factorial(n) for n in range(13, -1, -1))  # Taylor, |r| <= ln2/2
_ATANH_COEFFS = tuple(1.0 / (2 * n + 1) for n in range(11, 0, -1))  # 1/23 ... 1/3
_SIN_COEFFS = tuple((-1) ** n / math.factorial(2 * n + 1) for n in range(8, 0, -1))
_COS_COEFFS = tuple((-1) ** n / math.factorial(2 * n) for n in range(9, 0, -1))
QUANTUM = 1.0 / 1024.0
"""Expected counts are rounded to this grid before the draw (see `poisson`)."""
_POISSON_PIECE = 64.0  # a mean above this is drawn as a sum of equal pieces
_POISSON_MAX_STEPS = 400  # search steps per piece (P(k > 400 | mean 64) is below 1e-150)


def _horner(x, coeffs: Sequence[float]):
    """c0*x^n + ... + cn, one multiply and one add per step (never fused); floats or arrays."""
    acc = coeffs[0]
    for c in coeffs[1:]:
        acc = acc * x
        acc = acc + c
    return acc


def exp(x):
    """e**x, to a few ulp; the same bits on every IEEE-754 machine (float or array)."""
    if np.ndim(x) == 0:
        x = min(max(float(x), -745.0), 709.0)
        k = round(x * _INV_LN2)
        r = (x - k * _LN2_HI) - k * _LN2_LO
        return math.ldexp(_horner(r, _EXP_COEFFS), k)
    x = np.clip(np.asarray(x, dtype=np.float64), -745.0, 709.0)
    k = np.rint(x * _INV_LN2)
    r = (x - k * _LN2_HI) - k * _LN2_LO
    return np.ldexp(_horner(r, _EXP_COEFFS), k.astype(np.int64))


def log(x):
    """Natural logarithm of x > 0, to a few ulp; the same bits on every machine."""
    if np.ndim(x) == 0:
        if not float(x) > 0 or not math.isfinite(x):
            raise ValueError("log needs positive, finite arguments")
        m, e = math.frexp(float(x))  # x = m * 2**e, m in [0.5, 1): exact
        if m < _SQRT_HALF:
            m, e = m * 2.0, e - 1
        return _log_reduced(m, float(e))
    x = np.asarray(x, dtype=np.float64)
    if np.any(~(x > 0)) or not np.isfinite(x).all():
        raise ValueError("log needs positive, finite arguments")
    m, e = np.frexp(x)
    low = m < _SQRT_HALF
    return _log_reduced(np.where(low, m * 2.0, m), np.where(low, e - 1, e).astype(np.float64))


def _log_reduced(m, e):
    """e * ln 2 + ln m for m in [sqrt(1/2), sqrt(2)): atanh series in s = (m-1)/(m+1)."""
    s = (m - 1.0) / (m + 1.0)  # m - 1 is exact (Sterbenz)
    s2 = s * s
    log_m = 2.0 * (s + s * (s2 * _horner(s2, _ATANH_COEFFS)))
    return e * _LN2_HI + (e * _LN2_LO + log_m)


def sincos_deg(degrees):
    """(sin, cos) of an angle in degrees; reduction by exact multiples of 90 degrees."""
    if np.ndim(degrees) == 0:
        d = float(degrees)
        quadrant = float(round(d / 90.0))
        s, c = _sincos_reduced((d - quadrant * 90.0) * _DEG)
        return {0.0: (s, c), 1.0: (c, -s), 2.0: (-s, -c)}.get(quadrant % 4.0, (-c, s))
    d = np.asarray(degrees, dtype=np.float64)
    quadrant = np.rint(d / 90.0)
    s, c = _sincos_reduced((d - quadrant * 90.0) * _DEG)
    q = np.mod(quadrant, 4.0)
    sin = np.select([q == 0, q == 1, q == 2], [s, c, -s], -c)
    cos = np.select([q == 0, q == 1, q == 2], [c, -s, -c], s)
    return sin, cos


def _sincos_reduced(r):
    """Taylor series of sin and cos for |r| <= pi/4."""
    r2 = r * r
    return r + r * (r2 * _horner(r2, _SIN_COEFFS)), 1.0 + r2 * _horner(r2, _COS_COEFFS)


def hypot(a: float, b: float) -> float:
    """sqrt(a*a + b*b) from correctly rounded operations (libm's hypot may differ)."""
    return math.sqrt(a * a + b * b)


def power(base: float, exponent: float) -> float:
    """base**exponent for base > 0 (Python's ** calls libm's pow)."""
    return exp(exponent * log(base))


# --- filters ---------------------------------------------------------------------------------


def gaussian_weights(sigma_px: float, truncate: float = 4.0) -> np.ndarray:
    """Normalised 1-D Gaussian weights, radius round(truncate * sigma) (as SciPy's)."""
    radius = max(1, int(truncate * sigma_px + 0.5))
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    w = exp(-0.5 * (x * x) / (sigma_px * sigma_px))
    return w / math.fsum(w.tolist())  # fsum: the correctly rounded sum


def correlate_axis(img: np.ndarray, weights: np.ndarray, axis: int, mode: str) -> np.ndarray:
    """Correlate along one axis with a centred odd-length kernel, adding tap by tap in a
    fixed order. `mode`: "reflect" (SciPy's default: d c b a | a b c d) or "constant" (zeros)."""
    radius = len(weights) // 2
    pad = [(0, 0), (0, 0)]
    pad[axis] = (radius, radius)
    numpy_mode = "symmetric" if mode == "reflect" else "constant"
    if mode == "reflect" and radius > img.shape[axis]:
        numpy_mode = "reflect"  # tiny images only: keep np.pad from failing
    padded = np.pad(img, pad, mode=numpy_mode)
    out = np.zeros_like(img, dtype=np.float64)
    n = img.shape[axis]
    for j, w in enumerate(weights.tolist()):
        part = padded[j : j + n] if axis == 0 else padded[:, j : j + n]
        out += w * part
    return out


def gaussian_blur(img: np.ndarray, sigma_px: float, mode: str = "reflect") -> np.ndarray:
    """Separable Gaussian filter (rows, then columns), reproducible bit for bit."""
    if sigma_px <= 0:
        return np.asarray(img, dtype=np.float64).copy()
    w = gaussian_weights(sigma_px)
    return correlate_axis(correlate_axis(img, w, 0, mode), w, 1, mode)


def shift_add(out: np.ndarray, src: np.ndarray, d_row: int, d_col: int, weight: float) -> None:
    """out[r, c] += weight * src[r - d_row, c - d_col] where both are inside (zeros outside)."""
    rows, cols = src.shape
    r0, r1 = max(0, d_row), min(rows, rows + d_row)
    c0, c1 = max(0, d_col), min(cols, cols + d_col)
    if r0 < r1 and c0 < c1:
        out[r0:r1, c0:c1] += weight * src[r0 - d_row : r1 - d_row, c0 - d_col : c1 - d_col]


def bin_sum(img: np.ndarray, factor: int) -> np.ndarray:
    """Sum of factor x factor blocks (image sides must be multiples of `factor`)."""
    if factor == 1:
        return np.asarray(img, dtype=np.float64)
    rows, cols = img.shape
    out = np.zeros((rows // factor, cols // factor))
    for i in range(factor):
        for j in range(factor):
            out += img[i::factor, j::factor]
    return out


def upsample_linear(img: np.ndarray, factor: int) -> np.ndarray:
    """Linear interpolation onto a grid `factor` times finer (pixel centres aligned, edges
    clamped); the weights are exact binary fractions."""
    out = np.asarray(img, dtype=np.float64)
    for axis in (0, 1):
        n = out.shape[axis]
        pos = (np.arange(n * factor) + 0.5) / factor - 0.5
        low = np.floor(pos)
        w = pos - low
        i0 = np.clip(low, 0, n - 1).astype(int)
        i1 = np.clip(low + 1, 0, n - 1).astype(int)
        shape = [1, 1]
        shape[axis] = n * factor
        w = w.reshape(shape)
        a, b = np.take(out, i0, axis=axis), np.take(out, i1, axis=axis)
        out = a * (1.0 - w) + b * w
    return out


# --- random draws ----------------------------------------------------------------------------


class PortableRandom:
    """Random draws built only from NumPy's bit-exact uniforms and bounded integers.

    >>> rng = PortableRandom([0, 5])
    >>> rng.uniform(1.0, 2.0), rng.normal(0.0, 3.0), rng.log_uniform(0.1, 0.4)
    """

    def __init__(self, seed: Sequence[int] | int) -> None:
        self._gen = np.random.default_rng(seed)

    def random(self, size=None):
        """Uniform on [0, 1): 53 random bits times 2**-53."""
        return self._gen.random(size)

    def uniform(self, low: float, high: float, size=None):
        return low + (high - low) * self.random(size)

    def integers(self, low: int, high: int) -> int:
        """An integer in [low, high)."""
        return int(self._gen.integers(low, high))

    def sign(self) -> float:
        return -1.0 if self.random() < 0.5 else 1.0

    def normal(self, mean: float = 0.0, sd: float = 1.0, size=None):
        """Box-Muller (cosine branch), two uniforms per variate."""
        u1 = 1.0 - self.random(size)  # (0, 1]: log is finite
        u2 = self.random(size)
        _, cos = sincos_deg(360.0 * u2)
        if size is None:
            return mean + sd * (math.sqrt(-2.0 * log(u1)) * cos)
        return mean + sd * (np.sqrt(-2.0 * log(u1)) * cos)

    def log_uniform(self, low: float, high: float) -> float:
        return exp(self.uniform(log(low), log(high)))

    def choice(self, options: Sequence, p: Sequence[float] | None = None):
        """One element of `options`, uniformly or with probabilities `p`."""
        if p is None:
            return options[self.integers(0, len(options))]
        u = self.random() * math.fsum(p)
        total = 0.0
        for option, weight in zip(options, p, strict=True):
            total += weight
            if u < total:
                return option
        return options[-1]

    def gamma(self, shape: float) -> float:
        """Gamma(shape, 1) for shape >= 1 (Marsaglia and Tsang 2000)."""
        d = shape - 1.0 / 3.0
        c = 1.0 / math.sqrt(9.0 * d)
        while True:
            x = self.normal()
            v = 1.0 + c * x
            if v <= 0.0:
                continue
            v = v * v * v
            u = 1.0 - self.random()
            if u < 1.0 - 0.0331 * (x * x) * (x * x):
                return d * v
            if log(u) < 0.5 * x * x + d * (1.0 - v + log(v)):
                return d * v

    def dirichlet(self, alpha: Sequence[float]) -> list[float]:
        draws = [self.gamma(a) for a in alpha]
        total = math.fsum(draws)
        return [g / total for g in draws]


def quantise(expected: np.ndarray) -> np.ndarray:
    """Expected counts rounded to `QUANTUM`: a safety net, so that even a last-bit difference
    from some platform could change a draw only if it straddled a grid point."""
    return np.rint(np.asarray(expected, dtype=np.float64) / QUANTUM) * QUANTUM


def poisson(expected: np.ndarray, rng: PortableRandom) -> np.ndarray:
    """Poisson counts (int64) of `expected` (quantised first) by inversion of the CDF, one
    uniform per pixel (per piece of 64 expected counts), consumed in pixel order."""
    lam = quantise(np.clip(expected, 0.0, None)).ravel()
    pieces = np.maximum(1, np.ceil(lam / _POISSON_PIECE)).astype(np.int64)
    mean = np.repeat(lam / pieces, pieces)
    draws = _poisson_small(mean, rng.random(int(pieces.sum())))
    starts = np.concatenate([[0], np.cumsum(pieces)[:-1]])
    return np.add.reduceat(draws, starts).reshape(np.shape(expected))


def _poisson_small(mean: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Smallest k with CDF(k) > u for means <= 64: sequential search, all pixels at once."""
    p = np.asarray(exp(-mean))
    cdf = p.copy()
    k = np.zeros(mean.shape, dtype=np.int64)
    active = np.flatnonzero(u > cdf)
    for _ in range(_POISSON_MAX_STEPS):
        if active.size == 0:
            break
        k[active] += 1
        p[active] = p[active] * (mean[active] / k[active])
        cdf[active] = cdf[active] + p[active]
        active = active[u[active] > cdf[active]]
    return k
