"""The description of one synthetic patient: sources, body outline, camera, pose, acquisition.

Patient frame: x in mm towards the patient's left, y in mm caudal, origin at the lower border
of the cricoid on the tracheal midline; depth in cm from the anterior skin. Activities are in
MBq at the time of imaging. `anatomy.py` draws these, `physics.py` images them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

BED_REGION_CENTER_Y_MM = -10.0
"""Centre of the thyroid-bed region, 10 mm above the lower cricoid border: half-way from the
pyramidal-lobe level (50 mm above) to the lower poles (30 mm below; PN §5, §9.2). The crop is
centred here; ground truth `thyroid_bed_center`."""
LOBE_CENTER_Y_MM = 7.0
"""Anatomical bed centre (centre of the lobes, Berry's ligament), PN §9.0: 0.7 cm below."""
_TRAPEZIUS_MM = 60.0  # the outline starts to widen this far above the acromion ...
_DELTOID_MM = 45.0  # ... and reaches the bideltoid width this far below it
_ARM_HALF_WIDTH_MM, _ARM_THICKNESS_CM = 40.0, 9.0  # raised upper arm [ESTIMATE]


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
    """Outline, AP thickness and vertical landmarks (y, mm) of head, neck and upper torso."""

    neck_half_width_mm: float
    neck_thickness_cm: float
    head_center_y_mm: float
    head_half_width_mm: float
    head_half_height_mm: float
    head_thickness_cm: float
    chin_y_mm: float  # lower border of the mandible
    hyoid_y_mm: float
    submandibular_y_mm: float  # gland centroids
    notch_y_mm: float  # suprasternal notch
    acromion_y_mm: float  # shoulder line
    shoulder_half_width_mm: float
    chest_thickness_cm: float
    arms_up: bool = False


@dataclass(frozen=True)
class Camera:
    """Image matrix, pixel size and the detector's useful field (None: the whole matrix)."""

    matrix: int
    pixel_mm: float
    field_rows_mm: float | None = None  # useful field along the body, centred in the matrix


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
    camera: Camera
    acquisition: Acquisition
    sources: tuple[Source, ...]
    foci: tuple[dict, ...]  # ground truth of each remnant focus
    confounders: tuple[str, ...] = field(default_factory=tuple)
    anatomy: str = "default"


def body_thickness_cm(body: Body, x, y) -> np.ndarray:
    """AP thickness (cm) at patient-frame points; 0 outside the body."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    hx = (x / body.head_half_width_mm) * (x / body.head_half_width_mm)
    dy = (y - body.head_center_y_mm) / body.head_half_height_mm
    head = body.head_thickness_cm * np.sqrt(np.clip(1.0 - hx - dy * dy, 0.0, None))
    in_neck = y >= body.head_center_y_mm
    neck = np.where(in_neck, _profile(x, body.neck_half_width_mm) * body.neck_thickness_cm, 0.0)
    start = body.acromion_y_mm - _TRAPEZIUS_MM
    s = _smoothstep((y - start) / (_TRAPEZIUS_MM + _DELTOID_MM))
    half_w = body.neck_half_width_mm + (body.shoulder_half_width_mm - body.neck_half_width_mm) * s
    thick = body.neck_thickness_cm + (body.chest_thickness_cm - body.neck_thickness_cm) * s
    torso = np.where(y >= start, _profile(x, half_w) * thick, 0.0)
    out = np.maximum(head, np.maximum(neck, torso))
    if body.arms_up:
        centre = body.shoulder_half_width_mm - _ARM_HALF_WIDTH_MM
        arm = _profile(np.abs(x) - centre, _ARM_HALF_WIDTH_MM) * _ARM_THICKNESS_CM
        out = np.maximum(out, np.where(y <= body.acromion_y_mm + _DELTOID_MM, arm, 0.0))
    return out


def _profile(x, half_width) -> np.ndarray:
    """Elliptic cross-section profile (1 on the midline, 0 at the edge)."""
    t = x / half_width
    return np.sqrt(np.clip(1.0 - t * t, 0.0, None))


def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)
