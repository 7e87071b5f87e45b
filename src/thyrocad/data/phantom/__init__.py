"""Synthetic planar I-131 neck scintigrams with ground truth (see docs/phantom.md).

Example:
    >>> from thyrocad.data.phantom import PhantomConfig, generate_cohort
    >>> summary = generate_cohort("cohort", PhantomConfig(n_patients=20, n_residual=15))
"""

from thyrocad.data.phantom.cohort import (
    default_cohort_dir,
    ensure_default_cohort,
    generate_cohort,
    simulate_patient,
)
from thyrocad.data.phantom.config import DIFFICULTY_PRESETS, PhantomConfig, parse_difficulty
from thyrocad.data.phantom.variation import ANATOMY_NAMES, ANATOMY_SETTINGS, AnatomySetting

__all__ = [
    "ANATOMY_NAMES",
    "ANATOMY_SETTINGS",
    "DIFFICULTY_PRESETS",
    "AnatomySetting",
    "PhantomConfig",
    "default_cohort_dir",
    "ensure_default_cohort",
    "generate_cohort",
    "parse_difficulty",
    "simulate_patient",
]
