"""Pictures of one diagnosis for people: the views, the preprocessing stages, Grad-CAM overlays
and a one-page report (PNG and PDF). matplotlib's object API only (no pyplot, no display)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
from matplotlib.figure import Figure
from matplotlib.image import imread

from thyrocad.diagnosis.dicom_sr import ViewOverlay
from thyrocad.diagnosis.types import Analysis
from thyrocad.preprocess.config import OutputConfig
from thyrocad.preprocess.strip import render_strip
from thyrocad.study import Study


def views_figure(study: Study) -> Figure:
    """The original views of `study`, side by side, in counts."""
    fig = Figure(figsize=(4 * len(study.images), 4.2))
    axes = fig.subplots(1, len(study.images))
    for ax, image in zip(np.atleast_1d(axes), study.images, strict=True):
        shown = ax.imshow(image.counts, cmap="gray_r")
        ax.set_title(f"{image.view.value} ({image.counts.shape[1]}x{image.counts.shape[0]})")
        ax.axis("off")
        fig.colorbar(shown, ax=ax, fraction=0.046, label="counts")
    fig.tight_layout()
    return fig


def report_figure(study: Study, summary: dict[str, Any], version: str, overlay: Path) -> Figure:
    """One page: verdict, probability, operating point, views and the Grad-CAM overlay."""
    fig = Figure(figsize=(8.27, 11.69))  # A4 portrait
    threshold = summary["operating_point"]["threshold"]
    lines = [
        summary["verdict_text"],
        f"P(residual) = {summary['probability']:.3f} (threshold {threshold:.3f})",
        f"model {version}",
        "Research software, not a medical device. Read with the images.",
    ]
    fig.text(0.05, 0.95, "\n".join(lines), va="top", fontsize=12, family="monospace")
    for i, image in enumerate(study.images[:2]):
        ax = fig.add_axes((0.05 + 0.47 * i, 0.5, 0.43, 0.33))
        ax.imshow(image.counts, cmap="gray_r")
        ax.set_title(image.view.value)
        ax.axis("off")
    if overlay.is_file():
        ax = fig.add_axes((0.05, 0.05, 0.9, 0.4))
        ax.imshow(imread(overlay))
        ax.axis("off")
    return fig


def overlay_figure(overlays: list[ViewOverlay]) -> Figure:
    """The overlays side by side, titled by view."""
    fig = Figure(figsize=(4 * len(overlays), 4.3))
    for ax, item in zip(np.atleast_1d(fig.subplots(1, len(overlays))), overlays, strict=True):
        ax.imshow(item.rgb)
        ax.set_title(f"{item.view.value}: Grad-CAM (residual)")
        ax.axis("off")
    fig.tight_layout()
    return fig


def write_stages(analysis: Analysis, output: OutputConfig, path: Path) -> Path:
    """Every view's preprocessing stages, one strip per view, stacked, as PNG."""
    strips = [render_strip(p.result, output) for p in analysis.views]
    if not cv2.imwrite(str(path), cv2.vconcat(strips)):
        raise OSError(f"cannot write {path}")
    return path


def save_figure(fig: Figure, path: Path) -> Path:
    """Render `fig` to `path` (format from the suffix)."""
    fig.savefig(path, dpi=100)
    return path
