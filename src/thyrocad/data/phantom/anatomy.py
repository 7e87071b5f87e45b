"""Random anatomy and activity of one synthetic patient (no image formation here).

Patient frame: x in mm towards the patient's left, y in mm caudal, origin at the cricoid on
the tracheal midline; depth in cm from the anterior skin. Activities are in MBq at the time
of imaging. `physics.py` projects this description onto the anterior and posterior views.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from thyrocad.data.phantom.config import PhantomConfig

_SHOULDER_SPAN_MM = 80.0  # the outline widens from neck to shoulders over this height
BED_CENTER_Y_MM = -14.0
"""Craniocaudal centre of the region that holds every remnant site (cricoid = 0)."""

# Remnant sites relative to the cricoid (PN §5 [ESTIMATE] positions): x range of |x|, y range.
_SITES: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {
    "paratracheal": ((6.0, 18.0), (-6.0, 10.0)),  # Berry's ligament / paratracheal-lobar
    "superior_pole": ((12.0, 22.0), (-32.0, -18.0)),
    "isthmus": ((0.0, 5.0), (0.0, 12.0)),
    "pyramidal": ((0.0, 6.0), (-40.0, -22.0)),  # midline, cranial (pyramidal lobe)
}
_SITE_WEIGHTS = {"paratracheal": 0.55, "superior_pole": 0.30, "isthmus": 0.15}


@dataclass(frozen=True)
class Source:
    """A Gaussian-shaped activity distribution (sigma = spread of the activity itself)."""

    kind: str
    x_mm: float
    y_mm: float
    sx_mm: float
    sy_mm: float
    angle_deg: float
    depth_cm: float
    activity_mbq: float
    focus_id: int = -1  # index into Patient.foci for remnant foci


@dataclass(frozen=True)
class Body:
    """Outline and AP thickness of head, neck and upper torso."""

    neck_half_width_mm: float
    neck_thickness_cm: float
    head_center_y_mm: float
    head_half_width_mm: float
    head_half_height_mm: float
    head_thickness_cm: float
    notch_y_mm: float
    submandibular_y_mm: float
    shoulder_half_width_mm: float
    chest_thickness_cm: float


@dataclass(frozen=True)
class Pose:
    """Where the cricoid lands in the anterior image, and the in-plane tilt."""

    row0: float
    col0: float
    tilt_deg: float
    rotation_deg: float  # about the body's long axis (turned head/shoulders)


@dataclass(frozen=True)
class Acquisition:
    administered_mbq: float
    hours_post_dose: float
    frame_duration_s: float
    air_gap_anterior_cm: float
    air_gap_posterior_cm: float
    star_angle_deg: float
    retention: float  # whole-body retention at the imaging time (fraction)


@dataclass(frozen=True)
class Patient:
    index: int
    residual: bool
    body: Body
    pose: Pose
    acquisition: Acquisition
    sources: tuple[Source, ...]
    foci: tuple[dict, ...]  # ground truth of each remnant focus
    confounders: tuple[str, ...] = field(default_factory=tuple)


def body_thickness_cm(body: Body, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """AP thickness (cm) at patient-frame points; 0 outside the body."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    hx = (x / body.head_half_width_mm) ** 2
    hy = ((y - body.head_center_y_mm) / body.head_half_height_mm) ** 2
    head = body.head_thickness_cm * np.sqrt(np.clip(1.0 - hx - hy, 0.0, None))
    neck_top = body.head_center_y_mm
    in_neck = y >= neck_top
    neck = np.where(in_neck, _profile(x, body.neck_half_width_mm) * body.neck_thickness_cm, 0.0)
    s = _smoothstep((y - (body.notch_y_mm - 30.0)) / _SHOULDER_SPAN_MM)
    half_w = body.neck_half_width_mm + (body.shoulder_half_width_mm - body.neck_half_width_mm) * s
    thick = body.neck_thickness_cm + (body.chest_thickness_cm - body.neck_thickness_cm) * s
    torso = np.where(y >= body.notch_y_mm - 30.0, _profile(x, half_w) * thick, 0.0)
    return np.maximum(head, np.maximum(neck, torso))


def chin_y_mm(body: Body) -> float:
    """Lowest point of the head ellipse that the neck leaves uncovered (mandible level)."""
    return body.head_center_y_mm + body.head_half_height_mm - 30.0


def _profile(x: np.ndarray, half_width: np.ndarray | float) -> np.ndarray:
    """Elliptic cross-section profile (1 on the midline, 0 at the edge)."""
    return np.sqrt(np.clip(1.0 - (x / half_width) ** 2, 0.0, None))


def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(*bounds))


def _log_uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(math.exp(rng.uniform(math.log(bounds[0]), math.log(bounds[1]))))


def sample_patient(cfg: PhantomConfig, index: int, residual: bool) -> Patient:
    """Draw one patient from `np.random.default_rng([cfg.seed, index])`."""
    rng = np.random.default_rng([cfg.seed, index])
    scale = cfg.confounder_scale
    confounders: list[str] = []
    body = _sample_body(rng, cfg)
    acq = _sample_acquisition(rng, cfg)
    rotated = rng.random() < cfg.rotation_prevalence * scale
    truncated = rng.random() < cfg.truncation_prevalence * scale
    pose = _sample_pose(rng, cfg, rotated, truncated)
    if rotated:
        confounders.append("rotation")
    if truncated:
        confounders.append("truncation")

    def to_mbq(pct: float, half_time_h: float) -> float:
        decay = 0.5 ** ((acq.hours_post_dose - 24.0) / half_time_h)
        return acq.administered_mbq * pct / 100.0 * decay

    sources = _physiological_sources(rng, cfg, body, to_mbq)
    foci: list[dict] = []
    if residual:
        rem_sources, foci = _remnant_sources(rng, cfg, to_mbq)
        sources += rem_sources
    if rng.random() < cfg.node_prevalence * scale:
        sources += _node_sources(rng, cfg, to_mbq)
        confounders.append("node")
    if rng.random() < cfg.contamination_prevalence * scale:
        sources += _contamination_sources(rng, cfg, body, to_mbq)
        confounders.append("contamination")
    if rng.random() < cfg.oesophageal_retention_prevalence * scale:
        y = _uniform(rng, (-5.0, 110.0))
        pct = _log_uniform(rng, (0.01, 0.3))
        sources.append(
            Source("oesophageal_retention", 3.0, y, 5.0, 8.0, 0.0, 4.5, to_mbq(pct, 12.0))
        )
        confounders.append("oesophageal_retention")
    sources = [_rotate_about_axis(s, body, pose.rotation_deg) for s in sources]
    return Patient(
        index, residual, body, pose, acq, tuple(sources), tuple(foci), tuple(confounders)
    )


def _sample_body(rng: np.random.Generator, cfg: PhantomConfig) -> Body:
    # One neck-length factor moves the submandibular glands and the sternal notch together.
    u = float(rng.random())
    to_sm = _lerp(cfg.cricoid_to_submandibular_mm, u) + rng.normal(0.0, 3.0)
    chin_y = -(to_sm + _uniform(rng, (8.0, 18.0)))
    head_b = _uniform(rng, (105.0, 118.0))
    return Body(
        neck_half_width_mm=_uniform(rng, cfg.neck_half_width_mm),
        neck_thickness_cm=_uniform(rng, cfg.neck_thickness_cm),
        head_center_y_mm=chin_y - head_b + 30.0,
        head_half_width_mm=_uniform(rng, (70.0, 82.0)),
        head_half_height_mm=head_b,
        head_thickness_cm=_uniform(rng, (18.0, 21.0)),
        notch_y_mm=_lerp(cfg.cricoid_to_notch_mm, u) + rng.normal(0.0, 3.0),
        submandibular_y_mm=-to_sm,
        shoulder_half_width_mm=_uniform(rng, (165.0, 200.0)),
        # soft-tissue equivalent: the lungs hold and attenuate little
        chest_thickness_cm=_uniform(rng, (11.0, 15.0)),
    )


def _lerp(bounds: tuple[float, float], u: float) -> float:
    return bounds[0] + (bounds[1] - bounds[0]) * u


def _sample_acquisition(rng: np.random.Generator, cfg: PhantomConfig) -> Acquisition:
    hours = float(rng.choice(cfg.hours_post_dose))
    r48 = cfg.whole_body_retention_48h * math.exp(rng.normal(0.0, cfg.retention_log_sd))
    return Acquisition(
        administered_mbq=float(rng.choice(cfg.administered_mbq)),
        hours_post_dose=hours,
        frame_duration_s=float(round(rng.uniform(*cfg.frame_duration_s) / 60.0) * 60.0),
        air_gap_anterior_cm=_uniform(rng, cfg.air_gap_cm),
        air_gap_posterior_cm=_uniform(rng, cfg.air_gap_cm),
        star_angle_deg=float(rng.choice(cfg.vendor_star_angles_deg)),
        retention=min(0.6, r48 * 0.5 ** ((hours - 48.0) / 24.0)),
    )


def _sample_pose(
    rng: np.random.Generator, cfg: PhantomConfig, rotated: bool, truncated: bool
) -> Pose:
    n = cfg.matrix
    row0 = n * 0.47 + rng.normal(0.0, n * 0.025)
    col0 = n * 0.5 + rng.normal(0.0, n * 0.012)
    tilt = rng.normal(0.0, cfg.tilt_sd_deg)
    rotation = rng.normal(0.0, 4.0)
    if rotated:
        sign = rng.choice([-1.0, 1.0])
        if rng.random() < 0.5:
            tilt = sign * rng.uniform(8.0, 15.0)
        else:
            rotation = sign * rng.uniform(15.0, 30.0)
    if truncated:
        shift = n * rng.uniform(0.14, 0.22)
        if rng.random() < 0.6:
            row0 -= shift  # head cut at the top
        else:
            col0 += rng.choice([-1.0, 1.0]) * shift  # one shoulder cut at the side
    return Pose(float(row0), float(col0), float(tilt), float(rotation))


def _rotate_about_axis(s: Source, body: Body, rotation_deg: float) -> Source:
    """Turn the patient about the long axis: midline structures shift, depths change."""
    if rotation_deg == 0.0:
        return s
    phi = math.radians(rotation_deg)
    thick = float(body_thickness_cm(body, s.x_mm, s.y_mm)) or body.neck_thickness_cm
    dz_mm = (s.depth_cm - thick / 2.0) * 10.0
    x = s.x_mm * math.cos(phi) + dz_mm * math.sin(phi)
    dz = -s.x_mm * math.sin(phi) + dz_mm * math.cos(phi)
    depth = float(np.clip(thick / 2.0 + dz / 10.0, 0.0, thick))
    return replace(s, x_mm=x, depth_cm=depth)


def _physiological_sources(rng, cfg: PhantomConfig, body: Body, to_mbq) -> list[Source]:
    """Salivary glands, mouth, nose, oesophagus band and (sometimes) stomach."""
    out: list[Source] = []
    salivary = _log_uniform(rng, cfg.salivary_total_pct)
    chin_y = chin_y_mm(body)
    for kind, share, (x0, sx, sy, depth) in (
        ("parotid", cfg.parotid_share, (60.0, 11.0, 16.0, 8.0)),
        ("submandibular", 1.0 - cfg.parotid_share, (38.0, 9.0, 7.0, 3.5)),
    ):
        for side in (-1.0, 1.0):
            gland = salivary * share / 2.0 * math.exp(rng.normal(0.0, cfg.gland_asymmetry_sd))
            x = side * (x0 + rng.normal(0.0, 4.0))
            if kind == "parotid":
                y = chin_y - _uniform(rng, (35.0, 50.0))
            else:
                y = body.submandibular_y_mm + rng.normal(0.0, 2.0)
            out += _lobulated(
                rng, kind, x, y, sx, sy, depth, to_mbq(gland, cfg.salivary_half_time_h)
            )
    mouth_y = chin_y - 25.0
    oral = to_mbq(_log_uniform(rng, cfg.oral_pct), cfg.salivary_half_time_h)
    out += _lobulated(rng, "oral", 0.0, mouth_y, 17.0, 10.0, 4.0, oral)
    if rng.random() < cfg.nasal_prevalence:
        nasal = to_mbq(_log_uniform(rng, cfg.nasal_pct), cfg.salivary_half_time_h)
        out.append(Source("nasal", rng.normal(0, 2), mouth_y - 45.0, 8.0, 9.0, 0.0, 3.0, nasal))
    out += _oesophagus(rng, cfg, body, to_mbq)
    if rng.random() < cfg.stomach_prevalence:
        stomach = to_mbq(_log_uniform(rng, cfg.stomach_pct), 24.0)
        y = body.notch_y_mm + _uniform(rng, (215.0, 270.0))
        x = _uniform(rng, (55.0, 95.0))
        out.append(Source("stomach", x, y, 32.0, 26.0, 20.0, 8.0, stomach))
    return out


def _lobulated(
    rng, kind: str, x: float, y: float, sx: float, sy: float, depth: float, activity: float
) -> list[Source]:
    """An organ as three jittered Gaussian lobes (looks less like a perfect disc)."""
    weights = rng.dirichlet([4.0, 4.0, 4.0])
    return [
        Source(
            kind,
            x + rng.normal(0.0, sx * 0.35),
            y + rng.normal(0.0, sy * 0.35),
            sx * rng.uniform(0.6, 0.9),
            sy * rng.uniform(0.6, 0.9),
            float(rng.uniform(0.0, 180.0)),
            depth + rng.normal(0.0, 0.3),
            activity * float(w),
        )
        for w in weights
    ]


def _oesophagus(rng, cfg: PhantomConfig, body: Body, to_mbq) -> list[Source]:
    """A patchy midline band from the pharynx down into the chest (swallowed saliva)."""
    ys = np.arange(-45.0, 320.0, 6.0)
    patch = np.convolve(rng.normal(0.0, 1.0, ys.size + 4), np.ones(5) / 5.0, mode="valid")
    weights = np.exp(1.6 * patch)
    weights /= weights.sum()
    total = to_mbq(_log_uniform(rng, cfg.oesophagus_pct), 12.0)
    wander = np.cumsum(rng.normal(0.0, 0.6, ys.size))
    out = []
    for y, w, dx in zip(ys, weights, wander, strict=True):
        depth = 4.5 if y < body.notch_y_mm else 4.5 + min(3.5, (y - body.notch_y_mm) / 40.0)
        out.append(Source("oesophagus", 3.0 + dx, float(y), 5.0, 4.5, 0.0, depth, total * w))
    return out


def _remnant_sources(rng, cfg: PhantomConfig, to_mbq) -> tuple[list[Source], list[dict]]:
    """1-4 foci in the thyroid bed (sometimes a pyramidal lobe) and their ground truth."""
    n = int(rng.choice(len(cfg.foci_count_weights), p=_normalised(cfg.foci_count_weights))) + 1
    names = list(_SITE_WEIGHTS)
    sites = list(rng.choice(names, size=n, p=_normalised([_SITE_WEIGHTS[k] for k in names])))
    if rng.random() < cfg.pyramidal_prevalence:
        sites = [*sites[: min(n, 3)], "pyramidal"]
    median = cfg.remnant_median_pct
    total = min(cfg.remnant_uptake_cap_pct, median * cfg.remnant_uptake_gsd ** rng.normal())
    shares = rng.dirichlet([1.5] * len(sites))
    sources, foci = [], []
    for i, (site, share) in enumerate(zip(sites, shares, strict=True)):
        (ax0, ax1), ys = _SITES[site]
        x = float(rng.choice([-1.0, 1.0]) * rng.uniform(ax0, ax1))
        y = _uniform(rng, ys)
        size = _log_uniform(rng, cfg.focus_size_mm)
        elong = 1.3 if site in ("superior_pole", "pyramidal") else 1.0
        sx = size / 2.355
        depth = _uniform(rng, cfg.bed_depth_cm) + (0.5 if site == "superior_pole" else 0.0)
        uptake = float(total * share)
        activity = to_mbq(uptake, cfg.remnant_half_life_h)
        sources.append(Source("remnant", x, y, sx, sx * elong, 0.0, depth, activity, i))
        foci.append(
            {
                "site": site,
                "size_mm": size,
                "uptake_pct_24h": uptake,
                "activity_mbq": activity,
                "depth_cm": depth,
            }
        )
    return sources, foci


def _node_sources(rng, cfg: PhantomConfig, to_mbq) -> list[Source]:
    """1-2 lateral cervical lymph-node metastases (levels II-IV), outside the bed."""
    out = []
    side = rng.choice([-1.0, 1.0])
    for _ in range(int(rng.integers(1, 3))):
        x = float(side * rng.uniform(32.0, 55.0))
        y = _uniform(rng, (-50.0, 40.0))
        size = _uniform(rng, (4.0, 12.0)) / 2.355
        pct = _log_uniform(rng, cfg.node_pct)
        out.append(
            Source(
                "node",
                x,
                y,
                size,
                size,
                0.0,
                _uniform(rng, (1.5, 4.0)),
                to_mbq(pct, cfg.remnant_half_life_h),
            )
        )
    return out


def _contamination_sources(rng, cfg: PhantomConfig, body: Body, to_mbq) -> list[Source]:
    """Saliva on skin, collar or hair: small irregular hot spots, on a body surface."""
    regions = (
        ((-30.0, 30.0), (-70.0, -40.0)),  # chin, drooling
        ((-50.0, 50.0), (-40.0, 60.0)),  # neck skin
        ((-130.0, 130.0), (60.0, 140.0)),  # collar, clothing
        ((-70.0, 70.0), (body.head_center_y_mm - 100.0, body.head_center_y_mm - 60.0)),  # hair
    )
    xs, ys = regions[int(rng.integers(len(regions)))]
    x, y = _uniform(rng, xs), _uniform(rng, ys)
    thick = float(body_thickness_cm(body, x, y))
    depth = 0.0 if rng.random() < 0.7 else thick
    activity = to_mbq(_log_uniform(rng, cfg.contamination_pct), 1e6)
    out = []
    for w in rng.dirichlet([2.0] * int(rng.integers(1, 4))):
        s = _uniform(rng, (1.5, 4.0))
        out.append(
            Source(
                "contamination",
                x + rng.normal(0, 4),
                y + rng.normal(0, 4),
                s,
                s,
                0.0,
                depth,
                activity * float(w),
            )
        )
    return out


def _normalised(weights) -> np.ndarray:
    w = np.asarray(weights, float)
    return w / w.sum()
