"""A grid of example anterior/posterior views of both classes, displayed like an NM console."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from thyrocad.data.phantom.cohort import VIEWS, SimulatedPatient, residual_flags, simulate_patient
from thyrocad.data.phantom.config import PhantomConfig


def _display_window(counts: np.ndarray) -> float:
    """Upper display level: 60 % of the maximum, as a physician would saturate hot glands."""
    return max(float(counts.max()) * 0.6, 1.0)


def write_preview(path: str | Path, config: PhantomConfig, per_class: int = 4) -> Path:
    """Save a PNG with `per_class` patients of each class, anterior and posterior side by side.

    Grey scale is inverted (counts dark on white), linear from 0 to 60 % of each image's
    maximum, like common NM displays.
    """
    flags = residual_flags(config)
    chosen: list[SimulatedPatient] = []
    for want in (True, False):
        idx = [i for i in range(config.n_patients) if flags[i] == want][:per_class]
        chosen += [simulate_patient(config, i, want) for i in idx]
    fig = Figure(figsize=(2.2 * 2 * per_class, 5.2))
    axes = np.atleast_2d(fig.subplots(2, 2 * per_class))
    for k, sim in enumerate(chosen):
        row, col = divmod(k, per_class)
        for v, view in enumerate(VIEWS):
            ax = axes[row, 2 * col + v]
            img = sim.counts[view]
            ax.imshow(img, cmap="gray_r", vmin=0, vmax=_display_window(img))
            p = sim.patient
            uptake = sum(f["uptake_pct_24h"] for f in p.foci)
            title = f"{'RES' if p.residual else 'NON'} {view.value[:4]}"
            if view == VIEWS[0]:
                title += f"\n{uptake:.3f}%" if p.residual else "\n-"
                if p.confounders:
                    title += " " + ",".join(c[:5] for c in p.confounders)
            ax.set_title(title, fontsize=7)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(
        f"thyrocad phantom (difficulty {config.difficulty}, anatomy {config.anatomy}, "
        f"seed {config.seed}); "
        "top: residual, bottom: non-residual; inverted grey, 0 to 60 % of max",
        fontsize=8,
    )
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    return out
