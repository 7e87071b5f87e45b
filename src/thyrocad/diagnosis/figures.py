"""Pictures of one diagnosis for people: the views, the preprocessing stages, Grad-CAM overlays
(annotated for heatmap PNGs and Secondary Captures), the views a physician clicks to set the
thyroid bed, and a one-page report (PNG and PDF). matplotlib's object API only (no pyplot, no
display).

Orientation marks: an anterior view is shown as seen from the front, the patient's right on
the viewer's left; a posterior view as seen from behind, the patient's left on the viewer's
left (the Patient Orientation the Secondary Captures state). A view of unknown projection gets
no R/L marks.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.image import imread

from thyrocad.diagnosis.explain import ViewOverlay, display_gray
from thyrocad.diagnosis.reading import DISCLAIMER, GRADCAM_TITLE, band_text, flag_label
from thyrocad.diagnosis.types import Analysis, PreparedView
from thyrocad.preprocess.config import OutputConfig
from thyrocad.preprocess.strip import render_strip
from thyrocad.study import Study, View

NOT_FOR_DIAGNOSIS = "NOT FOR DIAGNOSTIC USE · thyrocad research software"
VIEW_TITLES = {View.ANTERIOR: "ANTERIOR", View.POSTERIOR: "POSTERIOR", View.UNKNOWN: "VIEW UNKNOWN"}
# (left edge, right edge) marks of the patient's sides, by view.
SIDE_MARKS = {View.ANTERIOR: ("R", "L"), View.POSTERIOR: ("L", "R")}
IDENTITY_LABELS = (
    ("name", "Patient"), ("id", "ID"), ("birth_date", "born"), ("sex", "sex"),
    ("study_date", "study"), ("accession", "accession"),
)  # fmt: skip
NO_IDENTITY = "Patient identity not stored (check the study in the PACS)"


def identity_line(identity: dict[str, str] | None) -> str:
    """One line naming the patient and study, or that the identity was not stored."""
    if not identity:
        return NO_IDENTITY
    parts = []
    for key, label in IDENTITY_LABELS:
        value = identity.get(key, "")
        if key in ("birth_date", "study_date"):
            value = format_date(value)
        if value:
            parts.append(f"{label} {value}")
    return " · ".join(parts) or NO_IDENTITY


def format_date(value: str) -> str:
    """A DICOM date YYYYMMDD as YYYY-MM-DD (anything else unchanged)."""
    if len(value) == 8 and value.isdigit():
        return f"{value[:4]}-{value[4:6]}-{value[6:]}"
    return value


def views_figure(study: Study) -> Figure:
    """The original views of `study`, side by side, in counts."""
    fig = Figure(figsize=(4 * len(study.images), 4.2))
    axes = fig.subplots(1, len(study.images))
    for ax, image in zip(np.atleast_1d(axes), study.images, strict=True):
        shown = ax.imshow(image.counts, cmap="gray_r")
        ax.set_title(f"{image.view.value} ({image.counts.shape[1]}x{image.counts.shape[0]})")
        ax.axis("off")
        _side_marks(ax, image.view, "black")
        fig.colorbar(shown, ax=ax, fraction=0.046, label="counts")
    fig.tight_layout()
    return fig


def bed_view(prepared: PreparedView) -> np.ndarray:
    """RGB uint8 of one view at its original pixels, windowed, with the crop box used and
    the bed centre marked: the image a physician clicks to set the bed."""
    result = prepared.result
    gray = (display_gray(result.stages["original"]) * 255).round().astype(np.uint8)
    rgb = cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB)
    r0, c0, r1, c1 = result.crop_box.as_tuple()
    cv2.rectangle(rgb, (c0, r0), (c1 - 1, r1 - 1), (255, 200, 0), 1)
    row, col = (round(float(v)) for v in result.bed_center_rc)
    cv2.drawMarker(rgb, (col, row), (255, 60, 60), cv2.MARKER_CROSS, 9, 1)
    return rgb


def annotated_figure(overlay: ViewOverlay, caption: str) -> Figure:
    """One view's overlay with its projection, R/L marks, `caption` (the call), a colour bar
    and "NOT FOR DIAGNOSTIC USE"; the view is drawn at least at its native size."""
    rows, cols = overlay.rgb.shape[:2]
    img_w = max(3.6, cols / 100)
    img_h = img_w * rows / cols
    left, right, top, bottom = 0.3, 1.3, 0.8, 0.45  # margins in inches
    width, height = left + img_w + right, top + img_h + bottom
    fig = Figure(figsize=(width, height), dpi=100, facecolor="black")
    ax = fig.add_axes((left / width, bottom / height, img_w / width, img_h / height))
    ax.imshow(overlay.rgb, interpolation="nearest")
    ax.axis("off")
    _side_marks(ax, overlay.view, "white")
    bar_box = ((left + img_w + 0.2) / width, bottom / height, 0.15 / width, img_h / height)
    cax = fig.add_axes(bar_box)
    bar = fig.colorbar(ScalarMappable(Normalize(0, 1), "jet"), cax=cax)
    bar.set_label("Grad-CAM weight for 'residual'", color="white", fontsize=8)
    bar.ax.tick_params(colors="white", labelsize=7)
    title = fig.text(0.5, 1 - 0.1 / height, VIEW_TITLES[overlay.view], ha="center", va="top")
    title.set(color="white", fontsize=12, fontweight="bold")
    fig.text(0.5, 1 - 0.45 / height, caption, ha="center", va="top", color="white", fontsize=8,
             wrap=True)  # fmt: skip
    fig.text(0.5, 0.12 / height, NOT_FOR_DIAGNOSIS, ha="center", va="bottom", color="yellow",
             fontsize=9, fontweight="bold")  # fmt: skip
    return fig


def annotated_view(overlay: ViewOverlay, caption: str) -> np.ndarray:
    """`annotated_figure` rendered to an RGB uint8 array."""
    return render_rgb(annotated_figure(overlay, caption))


def render_rgb(fig: Figure) -> np.ndarray:
    """A figure rendered with Agg to an RGB uint8 array."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.ascontiguousarray(np.asarray(canvas.buffer_rgba())[..., :3])


def _side_marks(ax, view: View, color: str) -> None:
    for x, mark in zip((0.02, 0.98), SIDE_MARKS.get(view, ()), strict=False):
        ax.text(x, 0.5, mark, transform=ax.transAxes, ha="left" if x < 0.5 else "right",
                va="center", color=color, fontsize=12, fontweight="bold")  # fmt: skip


def report_figure(
    study: Study,
    summary: dict[str, Any],
    version: str,
    overlay: Path,
    identity: dict[str, str] | None,
) -> Figure:
    """One page: patient identity (or that it is not stored), the call, probability, band,
    operating point, flags and notes, the views and the Grad-CAM overlay."""
    fig = Figure(figsize=(8.27, 11.69))  # A4 portrait
    lines = [identity_line(identity), "", *report_lines(summary), f"model {version}", DISCLAIMER]
    fig.text(0.05, 0.97, "\n".join(lines), va="top", fontsize=9, family="monospace", wrap=True)
    for i, image in enumerate(study.images[:2]):
        ax = fig.add_axes((0.05 + 0.47 * i, 0.46, 0.43, 0.28))
        ax.imshow(image.counts, cmap="gray_r")
        ax.set_title(image.view.value)
        _side_marks(ax, image.view, "black")
        ax.axis("off")
    if overlay.is_file():
        ax = fig.add_axes((0.05, 0.04, 0.9, 0.38))
        ax.imshow(imread(overlay))
        ax.axis("off")
    return fig


def report_lines(summary: dict[str, Any]) -> list[str]:
    """The text of the report: call, probability, band, per-view probabilities, flags, notes."""
    call = summary["reading"]
    op = summary["operating_point"]
    views = ", ".join(
        f"{v['view']} {v['probability']:.3f}" if v["used"] else f"{v['view']} not used"
        for v in summary["views"]
    )
    lines = [
        call["call_text"].upper(),
        f"P(residual) = {summary['probability']:.3f}; threshold {op['threshold']:.3f}; "
        f"{band_text(call)}",
        f"views: {views}",
    ]
    lines += [f"flag: {flag_label(f)}" for f in summary["flags"]]
    lines += [f"note: {n}" for n in summary["notes"]]
    return lines


def overlay_figure(overlays: Sequence[ViewOverlay]) -> Figure:
    """The overlays side by side, titled by view and by the class Grad-CAM explains."""
    fig = Figure(figsize=(4 * len(overlays), 4.5))
    for ax, item in zip(np.atleast_1d(fig.subplots(1, len(overlays))), overlays, strict=True):
        ax.imshow(item.rgb)
        ax.set_title(item.view.value)
        _side_marks(ax, item.view, "white")
        ax.axis("off")
    fig.suptitle(
        f"{GRADCAM_TITLE} (every call; where the network looked, not a segmentation)", fontsize=10
    )
    fig.tight_layout()
    return fig


def write_stages(analysis: Analysis, output: OutputConfig, path: Path) -> Path:
    """Every view's preprocessing stages, one strip per view, stacked, as PNG."""
    strips = [render_strip(p.result, output) for p in analysis.views]
    ok, png = cv2.imencode(".png", cv2.vconcat(strips))
    if not ok:
        raise ValueError("OpenCV could not encode the preprocessing stages as PNG")
    path.write_bytes(png.tobytes())  # a full disk raises OSError(ENOSPC), not a bare False
    return path


def save_figure(fig: Figure, path: Path) -> Path:
    """Render `fig` to `path` (format from the suffix). PNGs with zlib's fastest level: half
    the time of Pillow's default and no larger for these figures (docs/benchmarks.md)."""
    png = path.suffix.lower() == ".png"
    fig.savefig(path, dpi=100, **({"pil_kwargs": {"compress_level": 1}} if png else {}))
    return path
