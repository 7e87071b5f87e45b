"""Image formation: attenuation, depth-dependent collimator blur, septal penetration, scatter,
Poisson counts.

Each source is a Gaussian; its image is that Gaussian widened by the collimator's Gaussian
response at the source's distance from the collimator (variances add), so depth-dependent
blur costs one small analytic evaluation per source. The blood pool (activity proportional
to tissue thickness) is blurred once at the neck mid-depth. Septal penetration (six-spoke
star) and object scatter (broad halo) are one FFT convolution with a combined kernel.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy.ndimage import gaussian_filter
from scipy.signal import fftconvolve

from thyrocad.data.phantom.anatomy import Patient, Source, body_thickness_cm
from thyrocad.data.phantom.config import PhantomConfig
from thyrocad.study import View

FWHM_TO_SIGMA = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))
_KERNEL_RADIUS_PX = 64


def system_fwhm_mm(cfg: PhantomConfig, distance_cm: float) -> float:
    """Collimator + intrinsic FWHM at `distance_cm` from the collimator face (PN §2.2)."""
    geometric = cfg.geometric_fwhm_face_mm + cfg.geometric_fwhm_slope_mm_per_cm * distance_cm
    return math.hypot(geometric, cfg.intrinsic_fwhm_mm)


def counts_per_mbq(cfg: PhantomConfig, patient: Patient) -> float:
    """In-window counts per MBq over the frame, before attenuation (sensitivity x time)."""
    return cfg.sensitivity_cps_per_mbq * patient.acquisition.frame_duration_s


def pixel_grid_mm(cfg: PhantomConfig, patient: Patient) -> tuple[np.ndarray, np.ndarray]:
    """Patient-frame (x, y) in mm of every pixel centre of the anterior image."""
    n, pose = cfg.matrix, patient.pose
    rows, cols = np.mgrid[0:n, 0:n].astype(float)
    dr, dc = (rows - pose.row0) * cfg.pixel_mm, (cols - pose.col0) * cfg.pixel_mm
    t = math.radians(pose.tilt_deg)
    x = dc * math.cos(t) + dr * math.sin(t)
    y = -dc * math.sin(t) + dr * math.cos(t)
    return x, y


def to_pixel(cfg: PhantomConfig, patient: Patient, x_mm: float, y_mm: float, view: View):
    """(row, col) of a patient-frame point in the anterior or posterior image."""
    pose = patient.pose
    t = math.radians(pose.tilt_deg)
    col = pose.col0 + (x_mm * math.cos(t) - y_mm * math.sin(t)) / cfg.pixel_mm
    row = pose.row0 + (x_mm * math.sin(t) + y_mm * math.cos(t)) / cfg.pixel_mm
    if view == View.POSTERIOR:
        col = cfg.matrix - 1 - col
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
    sx = math.hypot(source.sx_mm, blur) / cfg.pixel_mm
    sy = math.hypot(source.sy_mm, blur) / cfg.pixel_mm
    return sx, sy


def add_gaussian(
    img: np.ndarray, row: float, col: float, sx: float, sy: float, angle_deg: float, total: float
) -> None:
    """Add a rotated 2-D Gaussian integrating to `total` (sigmas in pixels), in place."""
    a = math.radians(angle_deg)
    cos, sin = math.cos(a), math.sin(a)
    # covariance in (col, row) coordinates
    cxx = (cos * sx) ** 2 + (sin * sy) ** 2
    cyy = (sin * sx) ** 2 + (cos * sy) ** 2
    cxy = cos * sin * (sx**2 - sy**2)
    det = cxx * cyy - cxy**2
    reach = 4.0 * max(sx, sy)
    n_r, n_c = img.shape
    r0, r1 = max(0, int(row - reach)), min(n_r, int(row + reach) + 2)
    c0, c1 = max(0, int(col - reach)), min(n_c, int(col + reach) + 2)
    if r0 >= r1 or c0 >= c1:
        return
    dr = np.arange(r0, r1)[:, None] - row
    dc = np.arange(c0, c1)[None, :] - col
    q = (cyy * dc**2 - 2.0 * cxy * dc * dr + cxx * dr**2) / det
    img[r0:r1, c0:c1] += total / (2.0 * math.pi * math.sqrt(det)) * np.exp(-0.5 * q)


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
        total = (
            source.activity_mbq * counts_per_mbq(cfg, patient) * math.exp(-cfg.mu_per_cm * depth)
        )
    row, col = to_pixel(cfg, patient, source.x_mm, source.y_mm, view)
    sx, sy = source_image_sigma_px(cfg, patient, source, view)
    angle = source.angle_deg + patient.pose.tilt_deg
    if view == View.POSTERIOR:
        angle = -angle  # the posterior image is the mirrored anterior geometry
    add_gaussian(img, row, col, sx, sy, angle, total)


def thickness_map_cm(cfg: PhantomConfig, patient: Patient) -> np.ndarray:
    """AP body thickness at every pixel of the anterior image."""
    x, y = pixel_grid_mm(cfg, patient)
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
    area_cm2 = (cfg.pixel_mm / 10.0) ** 2
    depth_integral = (1.0 - np.exp(-cfg.mu_per_cm * thickness)) / cfg.mu_per_cm
    return conc * area_cm2 * depth_integral * counts_per_mbq(cfg, patient) * texture


@lru_cache(maxsize=8)
def tail_kernel(
    star_angle_deg: float,
    spoke_length_px: float,
    scatter_sigma_px: float,
    penetration: float,
    scatter: float,
) -> np.ndarray:
    """Point-spread tail: six-spoke septal-penetration star + broad Gaussian scatter halo.

    Weights: `penetration` of the counts go to the spokes, `scatter` to the halo (the kernel
    sums to penetration + scatter; the geometric part is added separately).
    """
    size = 2 * _KERNEL_RADIUS_PX + 1
    star = np.zeros((size, size))
    r = np.arange(1.0, _KERNEL_RADIUS_PX, 0.5)
    w = np.exp(-r / spoke_length_px)
    for k in range(6):
        a = math.radians(star_angle_deg + 60.0 * k)
        rows = _KERNEL_RADIUS_PX - r * math.sin(a)
        cols = _KERNEL_RADIUS_PX + r * math.cos(a)
        np.add.at(star, (np.rint(rows).astype(int), np.rint(cols).astype(int)), w)
    star = gaussian_filter(star, 0.8)
    halo = np.zeros((size, size))
    halo[_KERNEL_RADIUS_PX, _KERNEL_RADIUS_PX] = 1.0
    halo = gaussian_filter(halo, scatter_sigma_px, mode="constant")
    kernel = penetration * star / star.sum() + scatter * halo / halo.sum()
    kernel.setflags(write=False)
    return kernel


def add_tails(cfg: PhantomConfig, patient: Patient, geometric: np.ndarray) -> np.ndarray:
    """Expected in-window counts: geometric part plus penetration star and scatter halo."""
    kernel = tail_kernel(
        patient.acquisition.star_angle_deg,
        cfg.spoke_length_mm / cfg.pixel_mm,
        cfg.scatter_sigma_mm / cfg.pixel_mm,
        cfg.penetration_fraction,
        cfg.scatter_fraction,
    )
    primary = 1.0 - cfg.penetration_fraction - cfg.scatter_fraction
    tails = fftconvolve(geometric, kernel, mode="same")
    return np.clip(primary * geometric + tails, 0.0, None)


def expected_counts(
    cfg: PhantomConfig, patient: Patient, rng: np.random.Generator
) -> dict[View, np.ndarray]:
    """Noise-free expected counts of the anterior and posterior views."""
    thickness = thickness_map_cm(cfg, patient)
    texture = np.exp(gaussian_filter(rng.normal(0.0, 1.0, thickness.shape), 10.0) * 4.0)
    pool = blood_pool_counts(cfg, patient, thickness, texture)
    mid_gap = patient.acquisition.air_gap_anterior_cm + patient.acquisition.air_gap_posterior_cm
    blur_fwhm_mm = system_fwhm_mm(cfg, mid_gap / 2.0 + patient.body.neck_thickness_cm / 2.0)
    pool = gaussian_filter(pool, blur_fwhm_mm * FWHM_TO_SIGMA / cfg.pixel_mm)
    out = {}
    for view in (View.ANTERIOR, View.POSTERIOR):
        geo = pool.copy() if view == View.ANTERIOR else np.fliplr(pool).copy()
        for source in patient.sources:
            render_source(cfg, patient, source, view, geo)
        out[view] = add_tails(cfg, patient, geo)
    return out


def poisson_counts(expected: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Poisson-sampled counts as uint16 (saturating at 65535)."""
    return np.minimum(rng.poisson(expected), np.iinfo(np.uint16).max).astype(np.uint16)


def focus_mask(cfg: PhantomConfig, patient: Patient, view: View) -> np.ndarray:
    """Pixels where any remnant focus reaches half its own peak (its FWHM footprint)."""
    mask = np.zeros((cfg.matrix, cfg.matrix), bool)
    for source in patient.sources:
        if source.kind != "remnant":
            continue
        img = np.zeros((cfg.matrix, cfg.matrix))
        render_source(cfg, patient, source, view, img, total=1.0)
        if img.max() > 0:
            mask |= img >= 0.5 * img.max()
    return mask
