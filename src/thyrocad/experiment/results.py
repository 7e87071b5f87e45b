"""The results folder of `thyrocad experiment`: one subfolder per results set, never overwritten
by another set, a stable `latest` link and an index page listing every set.

    RESULTS_DIR/
      index.html          every results set, newest first, with its settings and report
      latest -> <hash>/   the set of the last invocation (a relative symbolic link)
      <hash>/             report.html, table.md, table.csv, predictions.csv, stats.json, ...
      runs/<hash>/        settings.json and one file per finished run (resume)

A results set is named by its settings hash (`thyrocad.experiment.runs.settings_hash`), so
re-running the same settings resumes and rewrites its own set, and other settings (another
model, another seed, another cohort) get their own.
"""

from __future__ import annotations

import html
import json
import logging
import os
import re
import time
from pathlib import Path

from thyrocad.experiment.runs import RUNS_DIRNAME, SETTINGS_FILENAME
from thyrocad.files import claim_output_dir, write_text_atomic

logger = logging.getLogger(__name__)

KIND = "experiment"
LATEST = "latest"
INDEX = "index.html"
_SET_NAME = re.compile(r"^[0-9a-f]{16}$")


def claim_results_dir(out: Path, *, force: bool = False) -> Path:
    """Make `out` an experiment results folder (`thyrocad.files.claim_output_dir`); a folder
    with a `runs/` folder of thyrocad 0.4.0 is one already."""
    if (out / RUNS_DIRNAME).is_dir():
        force = True
    return claim_output_dir(out, KIND, force=force)


def set_dir(out: Path, settings_hash: str) -> Path:
    """The folder of one results set."""
    return out / settings_hash


def point_latest(out: Path, settings_hash: str) -> None:
    """Make `out/latest` a relative link to the set `settings_hash`, replaced atomically; where
    links cannot be made (some file systems) the index page alone says which set is latest."""
    tmp = out / f".{LATEST}.{os.getpid()}.tmp"
    try:
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(settings_hash, target_is_directory=True)
        os.replace(tmp, out / LATEST)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        logger.warning("could not link %s to the latest results set (%s)", out / LATEST, exc)


def write_index(out: Path, latest: str) -> Path:
    """index.html: every results set in `out`, newest first, with its models, the settings in
    which the sets differ, and a link to its report."""
    sets = sorted(
        (p for p in out.iterdir() if p.is_dir() and _SET_NAME.match(p.name)),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    described = [(p, _described(_settings(out, p.name))) for p in sets]
    differing = sorted(
        {k for _, d in described for k in d if len({str(e.get(k)) for _, e in described}) > 1}
    )
    rows = "\n".join(_row(p, d, differing, p.name == latest) for p, d in described)
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>thyrocad experiment results</title>
<style>body{{font-family:sans-serif;margin:1em;max-width:1260px}}
table{{border-collapse:collapse}} td,th{{padding:3px 8px;border-bottom:1px solid #ddd;
text-align:left;vertical-align:top}} .latest{{background:#eef6ee}}</style></head>
<body><h1>thyrocad experiment results</h1>
<p>{len(sets)} results set(s), newest first; <code>{LATEST}/</code> is the last one run. Each
set is named by the hash of its settings: other settings never overwrite it. The last column
shows the settings in which the sets differ; each report holds all of them.</p>
<table><tr><th>results set</th><th>written (UTC)</th><th>models</th><th>baselines</th>
<th>settings that differ</th></tr>
{rows}
</table></body></html>
"""
    write_text_atomic(out / INDEX, page)
    return out / INDEX


def _described(settings: dict) -> dict:
    """A set's settings as flat 'name: value' pairs: the experiment's, the cohort's hash."""
    flat = dict(settings.get("experiment", {}))
    flat["cohort"] = str(settings.get("cohort_data_hash", "?"))[:12]
    flat["thyrocad"] = settings.get("thyrocad_version", "?")
    return flat


_SHOWN = ("models", "baselines")  # columns of their own


def _row(folder: Path, settings: dict, differing: list[str], latest: bool) -> str:
    written = time.strftime("%Y-%m-%d %H:%M", time.gmtime(folder.stat().st_mtime))
    link = f'<a href="{folder.name}/report.html">{folder.name}</a>' + (
        " (latest)" if latest else ""
    )
    names = [
        ", ".join(settings.get("models", [])) or "none",
        ", ".join(settings.get("baselines", [])) or "none",
        "; ".join(f"{k} {_text(settings.get(k))}" for k in differing if k not in _SHOWN),
    ]
    cells = [link, written, *(html.escape(c) for c in names)]
    return (
        f'<tr class="{"latest" if latest else ""}">'
        + "".join(f"<td>{c}</td>" for c in cells)
        + "</tr>"
    )


def _text(value: object) -> str:
    """A setting as in its command line: 'a,b' for names, 'model=file' for weights pairs."""
    if isinstance(value, list):
        items = ("=".join(map(str, v)) if isinstance(v, list) else str(v) for v in value)
        return ",".join(items) or "none"
    return str(value)


def _settings(out: Path, settings_hash: str) -> dict:
    """The settings of a set as its run registry stored them ({} when unreadable)."""
    path = out / RUNS_DIRNAME / settings_hash / SETTINGS_FILENAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
