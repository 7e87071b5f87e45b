"""Every parameter of the synthetic I-131 neck cohort, named, with its source or reasoning.

Sources are the items of `PHANTOM_NUMBERS.md` (shared design notes), cited as "PN §x".
`docs/phantom.md` lists the same parameters in a table.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from thyrocad.configs import Config
from thyrocad.data.phantom import portable
from thyrocad.data.phantom.variation import ANATOMY_NAMES
from thyrocad.errors import ConfigError

GENERATOR_VERSION = "2"
"""Bumped whenever the same config and seed would produce different pixels. 2: anatomy from
PN §9, anatomy settings, counts identical on every CPU (`portable`)."""

DIFFICULTY_PRESETS: dict[str, float] = {"easy": 0.5, "default": 1.0, "hard": 1.5}


@dataclass(frozen=True)
class PhantomConfig(Config):
    """Settings of one synthetic cohort. Lengths in mm unless the name says cm."""

    # --- cohort --------------------------------------------------------------------------
    n_patients: int = 446  # paper: 446 patients
    n_residual: int = 346  # paper: 346 residual, 100 non-residual
    seed: int = 0
    difficulty: float = 1.0  # 0 = literature uptake values; see `remnant_faint_decades`
    anatomy: str = "default"  # a name of `variation.ANATOMY_NAMES` (docs/phantom.md)

    # --- acquisition (paper; PN §0) --------------------------------------------------------
    matrix: int = 256  # paper: 256 x 256
    pixel_mm: float = 2.2  # large-field camera at zoom 1 (PHANTOM.md)
    administered_mbq: tuple[float, ...] = (74.0, 111.0, 148.0, 185.0)  # PHANTOM.md: 74-185 MBq
    hours_post_dose: tuple[float, ...] = (24.0, 48.0, 72.0)  # PHANTOM.md: 24-72 h
    frame_duration_s: tuple[float, float] = (300.0, 600.0)  # paper: 5-10 min per frame
    sensitivity_cps_per_mbq: float = 35.0  # PN §2.3 recommended default (25-50)
    energy_window_kev: tuple[float, float] = (327.6, 400.4)  # PN §0: 364 keV +/- 10 %

    # --- collimator and attenuation (PN §2.2, §3) -------------------------------------------
    geometric_fwhm_face_mm: float = 4.3  # PN §2.2 table, GE HEGP at 0 cm
    geometric_fwhm_slope_mm_per_cm: float = 0.67  # PN §2.2: 0.67 mm/cm (GE)
    intrinsic_fwhm_mm: float = 3.8  # PN §0: intrinsic at 364 keV, added in quadrature
    air_gap_cm: tuple[float, float] = (1.0, 3.0)  # PN §2.2: collimator on skin + 1-2 cm gap
    mu_per_cm: float = 0.11  # PN §3: soft tissue, 364 keV, narrow beam (primary photons)
    penetration_fraction: float = 0.10  # PN §2.4: geometric path >60 % of in-window counts
    scatter_fraction: float = 0.25  # PHANTOM.md: scatter fraction in window 20-30 %
    scatter_sigma_mm: float = 35.0  # [ESTIMATE] broad halo from object scatter
    spoke_length_mm: float = 45.0  # [ESTIMATE] e-folding length of a septal-penetration spoke
    vendor_star_angles_deg: tuple[float, ...] = (0.0, 15.0, 30.0)  # PN §7 item 6

    # --- anatomy, neck extended (PN §9; mean and SD of normal links, else uniform ranges) ----
    notch_below_cricoid_mm: tuple[float, float] = (40.0, 10.0)  # PN §9.0: SSN-cricoid N(4, 1) cm
    hyoid_above_cricoid_mm: tuple[float, float] = (55.0, 8.0)  # PN §9.0: N(5.5, 0.8) cm
    submandibular_above_hyoid_mm: tuple[float, float] = (15.0, 6.0)  # PN §9.0: N(1.5, 0.6) cm
    mandible_above_hyoid_mm: tuple[float, float] = (24.0, 4.0)  # PN §9.3: 22.8-24.4 mm
    parotid_above_submandibular_mm: tuple[float, float] = (30.0, 40.0)  # PN §9.3 [ESTIMATE]
    submandibular_lateral_mm: tuple[float, float] = (35.0, 45.0)  # PN §9.3 [ESTIMATE]
    parotid_lateral_mm: tuple[float, float] = (50.0, 65.0)  # PN §9.3 [ESTIMATE]
    acromion_above_notch_mm: tuple[float, float] = (3.5, 13.0)  # PN §9.0: 0.2-0.5 cm, SD 1.3
    neck_half_width_mm: tuple[float, float] = (50.0, 70.0)  # PN §9.4: 10-15 cm, 11-13 typical
    neck_thickness_cm: tuple[float, float] = (11.0, 15.0)  # PN §9.4: 12.4-14.2 cm on CT
    shoulder_half_width_mm: tuple[float, float] = (205.0, 270.0)  # PN §9.4: bideltoid 41-57 cm
    bed_depth_cm: tuple[float, float] = (1.2, 3.0)  # PN §0: 2.0 cm (1.2-3.0)
    tilt_sd_deg: float = 3.0  # [ESTIMATE] ordinary in-plane tilt of head/neck

    # --- physiological uptake, % of administered activity at 24 h (PN §4.3) -------------------
    salivary_total_pct: tuple[float, float] = (0.1, 0.4)  # PN §4.3 [ESTIMATE], all 4 glands
    parotid_share: float = 0.6  # PN §4.3: parotids usually brighter in total counts
    gland_asymmetry_sd: float = 0.3  # [ESTIMATE] log-SD of left/right gland ratio
    oral_pct: tuple[float, float] = (0.01, 0.12)  # [ESTIMATE] saliva in the mouth
    nasal_pct: tuple[float, float] = (0.01, 0.08)  # [ESTIMATE]
    nasal_prevalence: float = 0.95  # PN §4.3: Norby 1990, 95 %
    oesophagus_pct: tuple[float, float] = (0.005, 0.06)  # [ESTIMATE] swallowed saliva band
    stomach_pct: tuple[float, float] = (0.5, 2.0)  # PN §4.3 [ESTIMATE]
    stomach_prevalence: float = 0.5  # [ESTIMATE] fundus at the lower field edge
    whole_body_retention_48h: float = 0.10  # PN §4.2: 10 % (7-25 %) at 48 h
    retention_log_sd: float = 0.45  # spreads retention over about 5-25 %
    body_mass_kg: float = 70.0  # converts retention to a blood-pool concentration
    salivary_half_time_h: float = 24.0  # [ESTIMATE] PN §4.3: 0.1-0.4 % at 24 h -> half by 48 h

    # --- remnant (positive class; PN §4.1, §4.2, §5) -----------------------------------------
    remnant_uptake_median_pct: float = 0.5  # PN §4.1: log-normal, median 0.5 % at 24 h
    remnant_uptake_gsd: float = 3.0  # PN §4.1: geometric SD about x3
    remnant_uptake_cap_pct: float = 12.0  # PN §4.1: cap around 10-15 %
    remnant_faint_decades: float = 0.85  # decades the median drops per unit of difficulty
    remnant_half_life_h: float = 40.0  # PN §4.2: effective half-life 40 h
    foci_count_weights: tuple[float, ...] = (0.45, 0.30, 0.17, 0.08)  # 1-4 foci, PN §5
    pyramidal_prevalence: float = 0.3  # PN §5: pyramidal lobe on 30.5 % of scans
    focus_size_mm: tuple[float, float] = (3.0, 20.0)  # PHANTOM.md: few mm to 2 cm

    # --- confounders, prevalence at difficulty 1 (scaled linearly with difficulty) -----------
    node_prevalence: float = 0.09  # PN §4.5: about 9 % of patients
    node_pct: tuple[float, float] = (0.01, 0.5)  # PN §4.5: 0.01-0.5 % each
    contamination_prevalence: float = 0.04  # PN §4.4: 2 %, doubled at the default difficulty
    contamination_pct: tuple[float, float] = (0.002, 0.2)  # [ESTIMATE]
    oesophageal_retention_prevalence: float = 0.03  # PN §4.4: 1.5 %, doubled
    rotation_prevalence: float = 0.10  # [ESTIMATE] noticeably rotated/tilted patients
    truncation_prevalence: float = 0.05  # [ESTIMATE] organs cut at the field edge

    # --- 8-bit export -----------------------------------------------------------------------
    png_window_percentile: float = 99.8  # 0 -> black, this count percentile -> white

    def __post_init__(self) -> None:
        if not 0 <= self.n_residual <= self.n_patients:
            raise ConfigError(
                f"--residual must lie between 0 and the number of patients ({self.n_patients}), "
                f"got {self.n_residual}"
            )
        if self.difficulty < 0:
            raise ConfigError(f"--difficulty must be >= 0, got {self.difficulty}")
        if self.matrix < 64:
            raise ConfigError(f"matrix must be at least 64, got {self.matrix}")
        if self.anatomy not in ANATOMY_NAMES:
            raise ConfigError(
                f"--anatomy must be one of {', '.join(ANATOMY_NAMES)}, got {self.anatomy!r}"
            )

    @property
    def confounder_scale(self) -> float:
        """Multiplier of every confounder prevalence at this difficulty."""
        return self.difficulty

    @property
    def remnant_median_pct(self) -> float:
        """Median remnant uptake (% IA at 24 h) at this difficulty."""
        return self.remnant_uptake_median_pct * portable.exp(
            -self.remnant_faint_decades * self.difficulty * portable.LN10
        )

    def config_hash(self) -> str:
        """Short hash of the settings and generator version (names the cache folder)."""
        payload = json.dumps({"v": GENERATOR_VERSION, **self.to_dict()}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


def parse_difficulty(value: str | float) -> float:
    """A float, or one of the named presets easy/default/hard."""
    if isinstance(value, int | float):
        return float(value)
    if value in DIFFICULTY_PRESETS:
        return DIFFICULTY_PRESETS[value]
    try:
        return float(value)
    except ValueError:
        names = ", ".join(DIFFICULTY_PRESETS)
        raise ConfigError(
            f"--difficulty must be a number or one of {names}, got {value!r}"
        ) from None
