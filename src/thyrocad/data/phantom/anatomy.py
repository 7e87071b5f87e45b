"""Random anatomy and activity of one synthetic patient (no image formation here).

Patient frame: x in mm towards the patient's left, y in mm caudal, origin at the lower border
of the cricoid on the tracheal midline; depth in cm from the anterior skin. The vertical
landmarks follow PN §9 (neck extended): the suprasternal notch about 40 mm below the cricoid,
the hyoid 55 mm and the submandibular-gland centroid 70 mm above it, the mandible's lower
border 24 mm above the hyoid. Activities are in MBq at the time of imaging. `physics.py`
projects this description onto the anterior and posterior views; `variation.py` names the
settings that frame and build patients differently. All arithmetic is `portable`.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from thyrocad.data.phantom import portable
from thyrocad.data.phantom.config import PhantomConfig
from thyrocad.data.phantom.geometry import (
    Acquisition,
    Body,
    Camera,
    Patient,
    Pose,
    Source,
    body_thickness_cm,
)
from thyrocad.data.phantom.organs import (
    confounder_sources,
    physiological_sources,
    remnant_sources,
)
from thyrocad.data.phantom.portable import PortableRandom
from thyrocad.data.phantom.variation import AnatomySetting, patient_setting


def _lerp(bounds: tuple[float, float], u: float) -> float:
    return bounds[0] + (bounds[1] - bounds[0]) * u


def sample_patient(cfg: PhantomConfig, index: int, residual: bool) -> Patient:
    """Draw one patient. The base stream `[seed, index]` gives the same body, acquisition and
    remnant foci under every anatomy setting; the setting's own draws use `[seed, index, 3]`
    and the confounders `[seed, index, 4]`."""
    rng = PortableRandom([cfg.seed, index])
    var = PortableRandom([cfg.seed, index, 3])
    setting = patient_setting(cfg.anatomy, var.random())
    scale = cfg.confounder_scale
    camera = _sample_camera(var, cfg, setting)
    body = _sample_body(rng, var, cfg, setting)
    acq = _sample_acquisition(rng, cfg)
    rotated = rng.random() < cfg.rotation_prevalence * scale
    truncated = rng.random() < cfg.truncation_prevalence * scale
    pose = _sample_pose(rng, cfg, setting, camera, body, rotated, truncated)
    confounders = [name for name, on in (("rotation", rotated), ("truncation", truncated)) if on]

    def to_mbq(pct: float, half_time_h: float) -> float:
        decay = portable.exp(-(acq.hours_post_dose - 24.0) / half_time_h * portable.LN2)
        return acq.administered_mbq * pct / 100.0 * decay

    sources = physiological_sources(rng, var, cfg, setting, body, to_mbq)
    foci: list[dict] = []
    if residual:
        rem_sources, foci = remnant_sources(rng, var, cfg, setting, to_mbq)
        sources += rem_sources
    extra, names = confounder_sources(cfg.seed, index, cfg, setting, body, to_mbq)
    sources += extra
    confounders += names
    if body.arms_up:
        confounders.append("arms_up")
    sources = [_rotate_about_axis(s, body, pose.rotation_deg) for s in sources]
    sources = [s for s in sources if s.activity_mbq > 0.0]
    return Patient(
        index=index,
        residual=residual,
        body=body,
        pose=pose,
        camera=camera,
        acquisition=acq,
        sources=tuple(sources),
        foci=tuple(foci),
        confounders=tuple(confounders),
        anatomy=setting.name,
    )


def _sample_camera(var: PortableRandom, cfg: PhantomConfig, setting: AnatomySetting) -> Camera:
    matrix, pixel = var.choice(setting.cameras) if setting.cameras else (cfg.matrix, cfg.pixel_mm)
    rows_mm = var.uniform(*setting.detector_field_mm) if setting.detector_field_mm else None
    return Camera(int(matrix), float(pixel), rows_mm)


def _chain(rng: PortableRandom, mean_sd: tuple[float, float]) -> float:
    """One link of the PN §9 chain: normal, kept positive."""
    return max(0.2 * mean_sd[0], rng.normal(*mean_sd))


def _sample_body(
    rng: PortableRandom, var: PortableRandom, cfg: PhantomConfig, setting: AnatomySetting
) -> Body:
    length = var.uniform(*setting.neck_length_scale)
    width = var.uniform(*setting.neck_width_scale)
    notch = _chain(rng, cfg.notch_below_cricoid_mm) * length
    hyoid = -_chain(rng, cfg.hyoid_above_cricoid_mm) * length
    submandibular = hyoid - _chain(rng, cfg.submandibular_above_hyoid_mm) * length
    chin = hyoid - _chain(rng, cfg.mandible_above_hyoid_mm) * length
    acromion = notch - rng.normal(*cfg.acromion_above_notch_mm)
    head_b = rng.uniform(105.0, 118.0)
    arms_up = var.random() < setting.arms_up_prevalence
    shoulder = rng.uniform(*cfg.shoulder_half_width_mm) * width
    if arms_up:  # raised arms lift the shoulders and narrow the deltoid outline
        acromion -= var.uniform(10.0, 30.0)
        shoulder *= 0.85
    return Body(
        neck_half_width_mm=rng.uniform(*cfg.neck_half_width_mm) * width,
        neck_thickness_cm=rng.uniform(*cfg.neck_thickness_cm),
        head_center_y_mm=chin + 30.0 - head_b,  # the head ellipse ends 30 mm below the chin
        head_half_width_mm=rng.uniform(70.0, 82.0),
        head_half_height_mm=head_b,
        head_thickness_cm=rng.uniform(18.0, 21.0),
        chin_y_mm=chin,
        hyoid_y_mm=hyoid,
        submandibular_y_mm=submandibular,
        notch_y_mm=notch,
        acromion_y_mm=acromion,
        shoulder_half_width_mm=shoulder,
        # soft-tissue equivalent: the lungs hold and attenuate little
        chest_thickness_cm=rng.uniform(11.0, 15.0),
        arms_up=arms_up,
    )


def _sample_acquisition(rng: PortableRandom, cfg: PhantomConfig) -> Acquisition:
    hours = float(rng.choice(cfg.hours_post_dose))
    r48 = cfg.whole_body_retention_48h * portable.exp(rng.normal(0.0, cfg.retention_log_sd))
    minutes = round(rng.uniform(*cfg.frame_duration_s) / 60.0)
    return Acquisition(
        administered_mbq=float(rng.choice(cfg.administered_mbq)),
        hours_post_dose=hours,
        frame_duration_s=float(minutes * 60.0),
        air_gap_anterior_cm=rng.uniform(*cfg.air_gap_cm),
        air_gap_posterior_cm=rng.uniform(*cfg.air_gap_cm),
        star_angle_deg=float(rng.choice(cfg.vendor_star_angles_deg)),
        retention=min(0.6, r48 * portable.exp(-(hours - 48.0) / 24.0 * portable.LN2)),
    )


def _sample_pose(
    rng: PortableRandom,
    cfg: PhantomConfig,
    setting: AnatomySetting,
    camera: Camera,
    body: Body,
    rotated: bool,
    truncated: bool,
) -> Pose:
    n, mm = camera.matrix, camera.pixel_mm
    chin_row = _lerp(setting.chin_row_frac, rng.random()) * n
    row0 = chin_row - body.chin_y_mm / mm
    col0 = (n - 1) / 2.0 + rng.normal(0.0, 7.0) / mm
    tilt = rng.normal(0.0, cfg.tilt_sd_deg)
    rotation = rng.normal(0.0, 4.0)
    sign, pick, amount = rng.sign(), rng.random(), rng.random()
    if rotated:
        if pick < 0.5:
            tilt = sign * _lerp((8.0, 15.0), amount)
        else:
            rotation = sign * _lerp((15.0, 30.0), amount)
    if truncated:
        shift = n * _lerp((0.14, 0.22), amount)
        if pick < 0.6:
            row0 -= shift  # head cut at the top
        else:
            col0 += sign * shift  # one shoulder cut at the side
    return Pose(float(row0), float(col0), float(tilt), float(rotation))


def _rotate_about_axis(s: Source, body: Body, rotation_deg: float) -> Source:
    """Turn the patient about the long axis: midline structures shift, depths change."""
    if rotation_deg == 0.0:
        return s
    sin, cos = portable.sincos_deg(rotation_deg)
    thick = float(body_thickness_cm(body, s.x_mm, s.y_mm)) or body.neck_thickness_cm
    dz_mm = (s.depth_cm - thick / 2.0) * 10.0
    x = s.x_mm * cos + dz_mm * sin
    dz = -s.x_mm * sin + dz_mm * cos
    depth = float(np.clip(thick / 2.0 + dz / 10.0, 0.0, thick))
    return replace(s, x_mm=x, depth_cm=depth)
