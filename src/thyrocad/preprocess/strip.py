"""Stage strips (one PNG per view: every stage that ran, side by side) and an index page
listing them with a legend of their flags.

The analogue of the paper's Figs. 2 and 4: what each preprocessing step did to each image.
"""

from __future__ import annotations

import html
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from thyrocad import intake
from thyrocad.errors import PreprocessError
from thyrocad.intake import flag_name
from thyrocad.preprocess.config import OutputConfig
from thyrocad.preprocess.pipeline import PreprocessResult

PANEL = 192  # px, side of one panel
LABEL_H = 22  # px, label band above each panel
GAP = 4  # px, white gap right of each panel
PANELS = (
    ("original", "original (sqrt) + crop box"),
    ("crop", "crop (sqrt)"),
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
    if stage == "grabcut_mask" and any(f.startswith("grabcut_") for f in result.flags):
        return _note_panel("not used:", "crop kept whole")
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


def _note_panel(*lines: str) -> np.ndarray:
    """A light-grey panel with a short note, for a stage whose output was not used."""
    panel = np.full((PANEL, PANEL, 3), 235, np.uint8)
    for i, line in enumerate(lines):
        y = PANEL // 2 - 8 + 20 * i
        cv2.putText(
            panel, line, (12, y), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (60, 60, 60), 1, cv2.LINE_AA
        )
    return cv2.copyMakeBorder(panel, 0, 0, 0, GAP, cv2.BORDER_CONSTANT, value=(255, 255, 255))


def _labelled(panel: np.ndarray, label: str) -> np.ndarray:
    band = np.full((LABEL_H, panel.shape[1], 3), 255, np.uint8)
    cv2.putText(band, label, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return cv2.vconcat([band, panel])


def shown_panels(result: PreprocessResult) -> list[tuple[str, str]]:
    """The (stage, label) panels of a strip: a stage switched off gets none (equalization off
    passes the 8-bit image itself on; GrabCut off leaves an all-true mask and no `grabcut_*`
    flag). The same config gives every view the same panels."""
    stages = result.stages
    skipped = set()
    if stages["equalized"] is stages["window8"]:
        skipped.add("equalized")
    grabcut_flagged = any(f.startswith("grabcut_") for f in result.flags)
    if stages["grabcut_mask"].all() and not grabcut_flagged:
        skipped.add("grabcut_mask")
    return [(stage, label) for stage, label in PANELS if stage not in skipped]


def render_strip(result: PreprocessResult, output: OutputConfig) -> np.ndarray:
    """The stages of one view that ran, side by side, labelled: a BGR uint8 image."""
    panels = [
        _labelled(_panel_image(result, s, output), label) for s, label in shown_panels(result)
    ]
    return cv2.hconcat(panels)


def write_strip(path: Path, result: PreprocessResult, output: OutputConfig) -> Path:
    """Render and save one strip as PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), render_strip(result, output)):
        raise PreprocessError(f"could not write {path}; check that the folder is writable")
    return path


@dataclass(frozen=True)
class StripEntry:
    """One row of the index page: a source file, its view, the strip and the flags."""

    source: str  # path relative to the cohort folder, as the user named it
    view: str
    strip: str  # path of the PNG relative to the index page
    flags: tuple[str, ...]
    error: str = ""


FLAG_MEANINGS = {
    "no_spacing": "the image carries no pixel spacing (a PNG/JPEG export): the crop box and the "
    "bed locator assume a 563-mm field across the image width",
    "bed_not_found": "the thyroid bed was not located: the box is centred on the fallback "
    "centre (the middle of the image by default)",
    "bed_set_by_user": "the bed centre was given by a person, not located",
    "padded": "the crop box reaches outside the image: the outside is zero counts",
    "negative_counts_clipped": "negative pixel values were set to 0",
    "blank_image": "no counts in the crop: the view is left out of training and diagnosis",
    "flat_image": "every crop pixel is equal: the view is left out of training and diagnosis",
    "sparse_counts": "the clip percentile of the crop was 0: windowed at its maximum instead",
    "saturated": "more than 1 % of the crop's pixels sit at its maximum value",
    "grabcut_skipped": "the crop is too small or flat for GrabCut: kept unsegmented",
    "grabcut_failed": "OpenCV raised inside GrabCut: the crop is kept unsegmented",
    "grabcut_empty": "GrabCut's foreground was below grabcut.min_fg_fraction of the crop: the "
    "crop is kept unsegmented (the paper's GrabCut does this on most phantom views, "
    "docs/preprocessing.md)",
}


def flag_meaning(flag: str) -> str:
    """What a flag means for people: a preprocessing flag's or an input-domain flag's
    (`thyrocad.intake.MEANINGS`, by the name before its ": detail"); unknown flags as they
    are."""
    name = flag_name(flag)
    return FLAG_MEANINGS.get(flag) or intake.MEANINGS.get(name) or flag


def common_flags(entries: list[StripEntry]) -> tuple[str, ...]:
    """Flags that every preprocessed view carries (e.g. `no_spacing` on a cohort of PNG
    exports): said once for the cohort instead of on every view."""
    done = [set(e.flags) for e in entries if not e.error]
    return tuple(sorted(set.intersection(*done))) if done else ()


_STYLE = """body{font-family:sans-serif;margin:1em;max-width:1260px}
img{max-width:100%;height:auto;display:block}
.view{border-top:1px solid #ccc;padding:6px 0}
.view h3{font-size:1em;margin:0 0 4px 0;overflow-wrap:anywhere}
.flags{color:#8a4b00}.err{color:#b00}
dt{font-family:monospace;font-weight:bold}dd{margin:0 0 6px 1.5em}"""


def write_index(path: Path, entries: list[StripEntry], title: str) -> Path:
    """An HTML page listing every strip with its flags (or the error that stopped it): flags
    common to every view said once at the top, a legend of every flag that occurs, strips
    scaled to the page width."""
    common = common_flags(entries)
    counts = Counter(f for e in entries for f in e.flags)
    flagged = sum(1 for e in entries if set(e.flags) - set(common))
    failed = sum(1 for e in entries if e.error)
    legend = "".join(
        f"<dt>{html.escape(f)}</dt><dd>{html.escape(flag_meaning(f))} "
        f"({n} view{'s' * (n != 1)})</dd>"
        for f, n in sorted(counts.items())
    )
    on_all = (
        f"<p>Every view: {html.escape(', '.join(common))} (not repeated below).</p>"
        if common
        else ""
    )
    views = "\n".join(_view_html(e, common) for e in entries)
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>{_STYLE}</style></head>
<body><h1>{html.escape(title)}</h1>
<p>{len(entries)} views: {flagged} with flags, {failed} failed. Each strip shows the stages that
ran, left to right: {html.escape(", ".join(label for _, label in PANELS))}.</p>
{on_all}
<h2>Flags</h2><dl id="legend">{legend or "<dd>none</dd>"}</dl>
<h2>Views</h2>
{views}
</body></html>
"""
    path.write_text(page, encoding="utf-8")
    return path


def _view_html(entry: StripEntry, common: tuple[str, ...]) -> str:
    own = [f for f in entry.flags if f not in common]
    heading = html.escape(f"{entry.source} · {entry.view}" if entry.view else entry.source)
    if entry.error:
        body = f'<p class="err">{html.escape(entry.error)}</p>'
    else:
        flags = f'<p class="flags">flags: {html.escape(", ".join(own))}</p>' if own else ""
        body = f'{flags}<img src="{html.escape(entry.strip)}" alt="stages" loading="lazy">'
    return f'<div class="view"><h3>{heading}</h3>{body}</div>'
