"""Image formation: attenuation, depth-dependent collimator blur, septal penetration, scatter,
Poisson counts.

Each source is a Gaussian; its image is that Gaussian widened by the collimator's Gaussian
response at the source's distance from the collimator (variances add), so depth-dependent
blur costs one small analytic evaluation per source. The blood pool (activity proportional
to tissue thickness) is blurred once at the neck mid-depth. Septal penetration (six-spoke
star) and object scatter (broad halo) are applied to the geometric image as a sum of shifted
copies and a separable Gaussian. Every step uses `portable` arithmetic only (no FFT, no
SciPy filter, no libm), so a seed gives the same counts on every machine.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from thyrocad.data.phantom import portable
from thyrocad.data.phantom.config import PhantomConfig
from thyrocad.data.phantom.geometry import Patient, Source, body_thickness_cm
from thyrocad.data.phantom.portable import PortableRandom
from thyrocad.study import View

FWHM_TO_SIGMA = 1.0 / (2.0 * math.sqrt(2.0 * portable.LN2))
KERNEL_RADIUS_MM = 140.0  # reach of the penetration spokes and the scatter halo
TEXTURE_SIGMA_MM, TEXTURE_SD = 22.0, 0.1  # blood-pool texture: smooth, +-10 %
COARSE_GRID_MM = 4.4  # star, halo and texture are computed on a grid about this coarse
STAR_BLUR_MM = 1.8  # width of a rasterised spoke


def system_fwhm_mm(cfg: PhantomConfig, distance_cm: float) -> float:
    """Collimator + intrinsic FWHM at `distance_cm` from the collimator face (PN §2.2)."""
    geometric = cfg.geometric_fwhm_face_mm + cfg.geometric_fwhm_slope_mm_per_cm * distance_cm
    return portable.hypot(geometric, cfg.intrinsic_fwhm_mm)


def counts_per_mbq(cfg: PhantomConfig, patient: Patient) -> float:
    """In-window counts per MBq over the frame, before attenuation (sensitivity x time)."""
    return cfg.sensitivity_cps_per_mbq * patient.acquisition.frame_duration_s


def pixel_grid_mm(patient: Patient) -> tuple[np.ndarray, np.ndarray]:
    """Patient-frame (x, y) in mm of every pixel centre of the anterior image."""
    n, mm, pose = patient.camera.matrix, patient.camera.pixel_mm, patient.pose
    rows, cols = np.mgrid[0:n, 0:n].astype(float)
    dr, dc = (rows - pose.row0) * mm, (cols - pose.col0) * mm
    sin, cos = portable.sincos_deg(pose.tilt_deg)
    return dc * cos + dr * sin, dr * cos - dc * sin


def to_pixel(patient: Patient, x_mm: float, y_mm: float, view: View) -> tuple[float, float]:
    """(row, col) of a patient-frame point in the anterior or posterior image."""
    pose, mm = patient.pose, patient.camera.pixel_mm
    sin, cos = portable.sincos_deg(pose.tilt_deg)
    col = pose.col0 + (x_mm * cos - y_mm * sin) / mm
    row = pose.row0 + (x_mm * sin + y_mm * cos) / mm
    if view == View.POSTERIOR:
        col = patient.camera.matrix - 1 - col
    return float(row), float(col)


def source_depth_cm(patient: Patient, source: Source, view: View) -> float:
    """Tissue between the source and the detector of `view`."""
    if view == View.ANTERIOR:
        return source.depth_cm
    thick = float(body_thickness_cm(patient.body, source.x_mm, source.y_mm))
    return max(0.0, thick - source.depth_cm)


def source_image_sigma_px(cfg: PhantomConfig, patient: Patient, source: Source, view: View):
    """Sigmas (along its own x and y axes) of the source as imaged, in pixels."""
    gap = (
        patient.acquisition.air_gap_anterior_cm
        if view == View.ANTERIOR
        else patient.acquisition.air_gap_posterior_cm
    )
    distance = gap + source_depth_cm(patient, source, view)
    blur = system_fwhm_mm(cfg, distance) * FWHM_TO_SIGMA
    mm = patient.camera.pixel_mm
    return portable.hypot(source.sx_mm, blur) / mm, portable.hypot(source.sy_mm, blur) / mm


def add_gaussian(
    img: np.ndarray, row: float, col: float, sx: float, sy: float, angle_deg: float, total: float
) -> None:
    """Add a rotated 2-D Gaussian integrating to `total` (sigmas in pixels), in place."""
    sin, cos = portable.sincos_deg(angle_deg)
    # covariance in (col, row) coordinates
    cxx = (cos * sx) * (cos * sx) + (sin * sy) * (sin * sy)
    cyy = (sin * sx) * (sin * sx) + (cos * sy) * (cos * sy)
    cxy = cos * sin * (sx * sx - sy * sy)
    det = cxx * cyy - cxy * cxy
    reach = 4.0 * max(sx, sy)
    n_r, n_c = img.shape
    r0, r1 = max(0, int(row - reach)), min(n_r, int(row + reach) + 2)
    c0, c1 = max(0, int(col - reach)), min(n_c, int(col + reach) + 2)
    if r0 >= r1 or c0 >= c1:
        return
    dr = np.arange(r0, r1)[:, None] - row
    dc = np.arange(c0, c1)[None, :] - col
    q = (cyy * (dc * dc) - 2.0 * cxy * (dc * dr) + cxx * (dr * dr)) / det
    img[r0:r1, c0:c1] += total / (2.0 * math.pi * math.sqrt(det)) * portable.exp(-0.5 * q)


def render_source(
    cfg: PhantomConfig,
    patient: Patient,
    source: Source,
    view: View,
    img: np.ndarray,
    total: float | None = None,
) -> None:
    """Add the (attenuated, blurred) image of one source to `img` in place."""
    if total is None:
        depth = source_depth_cm(patient, source, view)
        attenuation = portable.exp(-cfg.mu_per_cm * depth)
        total = source.activity_mbq * counts_per_mbq(cfg, patient) * attenuation
    row, col = to_pixel(patient, source.x_mm, source.y_mm, view)
    sx, sy = source_image_sigma_px(cfg, patient, source, view)
    angle = source.angle_deg + patient.pose.tilt_deg
    if view == View.POSTERIOR:
        angle = -angle  # the posterior image is the mirrored anterior geometry
    add_gaussian(img, row, col, sx, sy, angle, total)


def thickness_map_cm(patient: Patient) -> np.ndarray:
    """AP body thickness at every pixel of the anterior image."""
    x, y = pixel_grid_mm(patient)
    return body_thickness_cm(patient.body, x, y)


def blood_pool_counts(
    cfg: PhantomConfig, patient: Patient, thickness: np.ndarray, texture: np.ndarray
) -> np.ndarray:
    """Expected counts from iodide spread through soft tissue (unblurred, anterior geometry).

    Uniform activity through thickness T seen through exp(-mu z) gives (1 - e^{-mu T}) / mu,
    the same for both views.
    """
    acq = patient.acquisition
    conc = acq.administered_mbq * acq.retention / (cfg.body_mass_kg * 1000.0)  # MBq / cm^3
    area_cm2 = (patient.camera.pixel_mm / 10.0) * (patient.camera.pixel_mm / 10.0)
    depth_integral = (1.0 - portable.exp(-cfg.mu_per_cm * thickness)) / cfg.mu_per_cm
    return conc * area_cm2 * depth_integral * counts_per_mbq(cfg, patient) * texture


@lru_cache(maxsize=32)
def star_taps(
    star_angle_deg: float, spoke_length_px: float, radius_px: int
) -> tuple[tuple[int, int, float], ...]:
    """(row offset, col offset, weight) of a six-spoke septal-penetration star (spokes at the
    vendor angle + k x 60 degrees, exponential fall-off), weights summing to 1."""
    r = np.arange(1.0, radius_px, 0.5)
    w = portable.exp(-r / spoke_length_px).tolist()
    taps: dict[tuple[int, int], float] = {}
    for k in range(6):
        sin, cos = portable.sincos_deg(star_angle_deg + 60.0 * k)
        rows = np.rint(-r * sin).astype(int).tolist()
        cols = np.rint(r * cos).astype(int).tolist()
        for dr, dc, weight in zip(rows, cols, w, strict=True):
            taps[(dr, dc)] = taps.get((dr, dc), 0.0) + weight
    total = math.fsum(taps.values())
    return tuple((dr, dc, weight / total) for (dr, dc), weight in sorted(taps.items()))


def coarse_factor(patient: Patient) -> int:
    """Pixels per side of a coarse-grid cell: about `COARSE_GRID_MM`, dividing the matrix."""
    n, mm = patient.camera.matrix, patient.camera.pixel_mm
    factor = max(1, round(COARSE_GRID_MM / mm))
    while n % factor:
        factor -= 1
    return factor


def add_tails(cfg: PhantomConfig, patient: Patient, geometric: np.ndarray) -> np.ndarray:
    """Expected in-window counts: geometric part plus penetration star and scatter halo
    (both smooth on the scale of a pixel: computed on the coarse grid, then interpolated)."""
    factor = coarse_factor(patient)
    mm = patient.camera.pixel_mm * factor
    coarse = portable.bin_sum(geometric, factor)
    star = np.zeros_like(coarse)
    taps = star_taps(
        patient.acquisition.star_angle_deg, cfg.spoke_length_mm / mm, round(KERNEL_RADIUS_MM / mm)
    )
    for dr, dc, weight in taps:
        portable.shift_add(star, coarse, dr, dc, weight)
    halo = portable.gaussian_blur(coarse, cfg.scatter_sigma_mm / mm, mode="constant")
    tails = cfg.penetration_fraction * star + cfg.scatter_fraction * halo
    tails = portable.upsample_linear(tails, factor) / (factor * factor)
    tails = portable.gaussian_blur(tails, STAR_BLUR_MM / patient.camera.pixel_mm, "constant")
    primary = 1.0 - cfg.penetration_fraction - cfg.scatter_fraction
    return np.clip(primary * geometric + tails, 0.0, None)


def _texture(patient: Patient, rng: PortableRandom) -> np.ndarray:
    """A smooth multiplicative texture of about +-10 % (log-normal), on the coarse grid."""
    factor = coarse_factor(patient)
    n, sigma = (
        patient.camera.matrix // factor,
        TEXTURE_SIGMA_MM / (patient.camera.pixel_mm * factor),
    )
    smooth = portable.gaussian_blur(rng.normal(0.0, 1.0, (n, n)), sigma)
    # white noise blurred by a Gaussian of sigma s has SD 1 / (2 sqrt(pi) s)
    amplitude = TEXTURE_SD * 2.0 * math.sqrt(math.pi) * sigma
    return portable.exp(portable.upsample_linear(smooth, factor) * amplitude)


def expected_counts(
    cfg: PhantomConfig, patient: Patient, rng: PortableRandom
) -> dict[View, np.ndarray]:
    """Noise-free expected counts of the anterior and posterior views."""
    thickness = thickness_map_cm(patient)
    pool = blood_pool_counts(cfg, patient, thickness, _texture(patient, rng))
    mid_gap = patient.acquisition.air_gap_anterior_cm + patient.acquisition.air_gap_posterior_cm
    blur_fwhm_mm = system_fwhm_mm(cfg, mid_gap / 2.0 + patient.body.neck_thickness_cm / 2.0)
    pool = portable.gaussian_blur(pool, blur_fwhm_mm * FWHM_TO_SIGMA / patient.camera.pixel_mm)
    field = detector_field(patient)
    out = {}
    for view in (View.ANTERIOR, View.POSTERIOR):
        geo = pool.copy() if view == View.ANTERIOR else np.fliplr(pool).copy()
        for source in patient.sources:
            render_source(cfg, patient, source, view, geo)
        out[view] = add_tails(cfg, patient, geo) * field
    return out


def detector_field(patient: Patient) -> np.ndarray:
    """1 inside the detector's useful field, 0 in the empty bands of a rectangular detector
    read into a square matrix (rows beyond `field_rows_mm`, centred)."""
    n, camera = patient.camera.matrix, patient.camera
    field = np.ones((n, 1))
    if camera.field_rows_mm is not None:
        half = camera.field_rows_mm / 2.0 / camera.pixel_mm
        rows = np.arange(n) - (n - 1) / 2.0
        field[np.abs(rows) > half] = 0.0
    return field


def poisson_counts(expected: np.ndarray, rng: PortableRandom) -> np.ndarray:
    """Poisson-sampled counts as uint16 (saturating at 65535)."""
    counts = portable.poisson(expected, rng)
    return np.minimum(counts, np.iinfo(np.uint16).max).astype(np.uint16)


def focus_mask(cfg: PhantomConfig, patient: Patient, view: View) -> np.ndarray:
    """Pixels where any remnant focus reaches half its own peak (its FWHM footprint)."""
    n = patient.camera.matrix
    mask = np.zeros((n, n), bool)
    for source in patient.sources:
        if source.kind != "remnant":
            continue
        img = np.zeros((n, n))
        render_source(cfg, patient, source, view, img, total=1.0)
        if img.max() > 0:
            mask |= img >= 0.5 * img.max()
    return mask
