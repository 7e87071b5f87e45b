"""Stage strips (one PNG per view: every stage side by side) and an index page listing them.

The analogue of the paper's Figs. 2 and 4: what each preprocessing step did to each image.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from thyrocad.errors import PreprocessError
from thyrocad.preprocess.config import OutputConfig
from thyrocad.preprocess.pipeline import PreprocessResult

PANEL = 192  # px, side of one panel
LABEL_H = 22  # px, label band above each panel
GAP = 4  # px, white gap right of each panel
PANELS = (
    ("original", "original (sqrt) + crop box"),
    ("crop", "crop (sqrt counts)"),
    ("window8", "8-bit window"),
    ("equalized", "equalized"),
    ("grabcut_mask", "GrabCut mask"),
    ("network_input", "network input"),
)


def _counts_to_gray(counts: np.ndarray) -> np.ndarray:
    """Square-root display of counts (0..max to 0..255), so faint uptake stays visible."""
    peak = float(counts.max())
    scaled = np.sqrt(counts / peak) * 255.0 if peak > 0 else np.zeros_like(counts)
    return np.rint(scaled).astype(np.uint8)


def _panel_image(result: PreprocessResult, stage: str, output: OutputConfig) -> np.ndarray:
    """The stage as a PANEL x PANEL BGR uint8 image."""
    array = result.stages[stage]
    if stage in ("original", "crop"):
        gray = _counts_to_gray(array)
    elif stage == "grabcut_mask":
        gray = array.astype(np.uint8) * 255
    elif stage == "network_input":
        unit = array[0] * output.std[0] + output.mean[0]
        gray = np.rint(np.clip(unit, 0, 1) * 255).astype(np.uint8)
    else:
        gray = array
    bgr = cv2.cvtColor(cv2.resize(gray, (PANEL, PANEL), interpolation=cv2.INTER_NEAREST),
                       cv2.COLOR_GRAY2BGR)  # fmt: skip
    if stage == "original":
        box = result.crop_box
        sy, sx = PANEL / gray.shape[0], PANEL / gray.shape[1]
        top_left = (round(box.col0 * sx), round(box.row0 * sy))
        bottom_right = (round(box.col1 * sx) - 1, round(box.row1 * sy) - 1)
        cv2.rectangle(bgr, top_left, bottom_right, (0, 200, 255), 1)
    return cv2.copyMakeBorder(bgr, 0, 0, 0, GAP, cv2.BORDER_CONSTANT, value=(255, 255, 255))


def _labelled(panel: np.ndarray, label: str) -> np.ndarray:
    band = np.full((LABEL_H, panel.shape[1], 3), 255, np.uint8)
    cv2.putText(band, label, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return cv2.vconcat([band, panel])


def render_strip(result: PreprocessResult, output: OutputConfig) -> np.ndarray:
    """All stages of one view side by side, labelled: a BGR uint8 image."""
    panels = [_labelled(_panel_image(result, s, output), label) for s, label in PANELS]
    return cv2.hconcat(panels)


def write_strip(path: Path, result: PreprocessResult, output: OutputConfig) -> Path:
    """Render and save one strip as PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), render_strip(result, output)):
        raise PreprocessError(f"could not write {path}; check that the folder is writable")
    return path


@dataclass(frozen=True)
class StripEntry:
    """One row of the index page: a source file, its view, the strip, the flags and how the
    thyroid bed was placed (reason and confidence)."""

    source: str  # path relative to the cohort folder, as the user named it
    view: str
    strip: str  # path of the PNG relative to the index page
    flags: tuple[str, ...]
    error: str = ""
    bed: str = ""  # `bed_summary` of the result


def bed_summary(result: PreprocessResult) -> str:
    """How the thyroid bed was placed, for a reader: reason and confidence."""
    return f"{result.bed_reason} (confidence {result.bed_confidence:.2f})"


def write_index(path: Path, entries: list[StripEntry], title: str) -> Path:
    """An HTML page listing every strip with its flags (or the error that stopped it)."""
    rows = []
    for e in entries:
        flags = ", ".join(e.flags) if e.flags else "none"
        body = (
            f'<img src="{html.escape(e.strip)}" alt="stages" loading="lazy">'
            if e.strip
            else f'<span class="err">{html.escape(e.error)}</span>'
        )
        rows.append(
            f"<tr><td>{html.escape(e.source)}</td><td>{html.escape(e.view)}</td>"
            f"<td>{html.escape(flags)}</td><td>{html.escape(e.bed)}</td><td>{body}</td></tr>"
        )
    flagged = sum(1 for e in entries if e.flags or e.error)
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif}} td{{vertical-align:top;padding:4px}}
tr:nth-child(even){{background:#f4f4f4}} .err{{color:#b00}}</style></head>
<body><h1>{html.escape(title)}</h1>
<p>{len(entries)} views, {flagged} flagged or failed. Stages: {
        html.escape(", ".join(label for _, label in PANELS))
    }.</p>
<table><tr><th>file</th><th>view</th><th>flags</th><th>thyroid bed</th><th>stages</th></tr>
{chr(10).join(rows)}
</table></body></html>
"""
    path.write_text(page, encoding="utf-8")
    return path
