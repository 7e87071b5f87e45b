"""The anatomy-variation axis: named settings that stand for other cameras, departments and
patients than the default cohort (docs/phantom.md, "Anatomy settings").

A setting changes only how patients are framed and built (placement in the field, neck size,
camera matrix and pixel size, empty detector bands, arms, salivary glands, look-alikes of a
gland pair, hot nodes, saliva spots, stomach); the physics and the remnant uptakes stay those
of the `PhantomConfig`. Its extra random draws come from a stream of their own, so patient i
has the same remnant foci and acquisition under every setting (paired comparisons).
"""

from __future__ import annotations

from dataclasses import dataclass

from thyrocad.errors import ConfigError

CAMERAS_ALL = ((128, 4.42), (128, 4.8), (256, 1.2), (256, 2.21), (256, 2.4), (512, 1.2))
"""(matrix, pixel mm) of large-field cameras at zoom 1 and 2 (PN §9.6: GE 2.21 / 4.42 mm,
Siemens 2.4 / 4.8 mm, zoom 2 about 1.2 mm)."""


@dataclass(frozen=True)
class AnatomySetting:
    """How patients are framed and built. Ranges are (low, high), drawn uniformly."""

    name: str
    description: str
    chin_row_frac: tuple[float, float] = (0.32, 0.44)  # mandible row / image rows; PN §9.6
    neck_length_scale: tuple[float, float] = (1.0, 1.0)  # multiplies the §9 vertical chain
    neck_width_scale: tuple[float, float] = (1.0, 1.0)  # multiplies neck and shoulder widths
    cameras: tuple[tuple[int, float], ...] = ()  # (matrix, pixel mm); () = the config's
    detector_field_mm: tuple[float, float] | None = None  # useful field along the body
    arms_up_prevalence: float = 0.0
    salivary_scale: tuple[float, float] = (1.0, 1.0)  # multiplies salivary uptake
    salivary_absent_prevalence: float = 0.0  # glands removed or destroyed
    gland_mimic_prevalence: float = 0.0  # residual patients with a large bilateral pair
    node_prevalence: float | None = None  # None: the config's, scaled by difficulty
    node_pct: tuple[float, float] | None = None
    node_bilateral_prevalence: float = 0.0
    contamination_prevalence: float | None = None
    stomach_prevalence: float | None = None  # None: the config's


ANATOMY_SETTINGS: dict[str, AnatomySetting] = {
    s.name: s
    for s in (
        AnatomySetting(
            "default",
            "published anatomy (PN §9), GE-like 256 x 256 at 2.2 mm, neck centred in the field",
        ),
        AnatomySetting(
            "field_position",
            "patients placed anywhere from high to low: chin 15-45 % from the top of the field",
            chin_row_frac=(0.15, 0.45),
        ),
        AnatomySetting(
            "small_neck",
            "small adults: neck chain x0.8-0.9, neck and shoulders x0.85-0.92",
            neck_length_scale=(0.8, 0.9),
            neck_width_scale=(0.85, 0.92),
        ),
        AnatomySetting(
            "large_neck",
            "large adults: neck chain x1.1-1.25, neck and shoulders x1.08-1.18",
            neck_length_scale=(1.1, 1.25),
            neck_width_scale=(1.08, 1.18),
        ),
        AnatomySetting(
            "cameras",
            "128/256/512 matrices, 1.2-4.8 mm pixels (zoom 1 and 2, GE and Siemens)",
            cameras=CAMERAS_ALL,
        ),
        AnatomySetting(
            "rectangular_detector",
            "a 38-41 cm useful field along the body in a square matrix: empty bands top and "
            "bottom (PN §9.6)",
            chin_row_frac=(0.28, 0.42),
            cameras=((256, 2.21), (256, 2.4)),
            detector_field_mm=(380.0, 410.0),
        ),
        AnatomySetting(
            "arms_up",
            "arms raised beside the head, shoulders lifted",
            arms_up_prevalence=1.0,
        ),
        AnatomySetting(
            "faint_glands",
            "salivary glands faint after earlier radioiodine (x0.03-0.3) or absent (30 %)",
            salivary_scale=(0.03, 0.3),
            salivary_absent_prevalence=0.3,
        ),
        AnatomySetting(
            "gland_mimic",
            "large bilateral remnants (12-20 mm, symmetric) that look like a gland pair, in 60 % "
            "of residual patients",
            gland_mimic_prevalence=0.6,
        ),
        AnatomySetting(
            "hot_nodes",
            "hot lateral cervical nodes (0.1-2 %) in 60 % of patients, bilateral in a third",
            node_prevalence=0.6,
            node_pct=(0.1, 2.0),
            node_bilateral_prevalence=0.33,
        ),
        AnatomySetting(
            "saliva_spots",
            "saliva contamination spots on chin, neck skin or collar in 60 % of patients",
            contamination_prevalence=0.6,
        ),
        AnatomySetting(
            "stomach",
            "field centred lower, stomach in the field (chin 15-24 % from the top)",
            chin_row_frac=(0.15, 0.24),
            stomach_prevalence=1.0,
        ),
    )
}
MIXED = "mixed"
"""Each patient draws one of the other settings (a cohort from many departments)."""
ANATOMY_NAMES = (*ANATOMY_SETTINGS, MIXED)


def anatomy_setting(name: str) -> AnatomySetting:
    """The named setting; a `ConfigError` lists the names when `name` is unknown."""
    if name not in ANATOMY_NAMES:
        raise ConfigError(
            f"unknown anatomy setting {name!r}; choose one of {', '.join(ANATOMY_NAMES)}"
        )
    return ANATOMY_SETTINGS.get(name, ANATOMY_SETTINGS["default"])


def patient_setting(name: str, pick: float) -> AnatomySetting:
    """The setting patient draws: `name`'s, or for "mixed" the one at `pick` in [0, 1)."""
    if name != MIXED:
        return anatomy_setting(name)
    options = list(ANATOMY_SETTINGS.values())
    return options[int(pick * len(options))]
