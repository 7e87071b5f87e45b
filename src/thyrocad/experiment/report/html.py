"""report.html: one self-contained page (figures embedded as base64 PNG, no external files).

Researchers share this page, so it names no patient: the settings it shows list each split's
test patients by number only (their IDs are in splits.json and predictions.csv, which are
patient data)."""

from __future__ import annotations

import base64
import html
import json
import math
from dataclasses import dataclass, field
from typing import Any

from thyrocad.experiment.report.aggregate import METRIC_LABELS, METRICS, SUMMARY_RULE, Aggregate

_STYLE = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:14px}
th,td{border:1px solid #bbb;padding:4px 8px;text-align:right}
th:first-child,td:first-child{text-align:left}
pre{background:#f5f5f5;padding:8px;overflow-x:auto;font-size:12px}
img{max-width:100%}
.note{color:#555;font-size:13px}
"""


@dataclass
class ReportContext:
    """What the page shows beyond the aggregate: provenance and how to reproduce it."""

    command: str
    settings: dict[str, Any]
    settings_hash: str
    data_hash: str
    versions: dict[str, str]
    machine: dict[str, str]
    backend: str
    wall_times: dict[str, float]
    created_utc: str
    figures: dict[str, bytes] = field(default_factory=dict)


def shareable_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """`settings` with each split's test patients replaced by their number."""
    splits = settings.get("splits")
    if not isinstance(splits, list):
        return settings
    counted = [
        {k: v for k, v in s.items() if k != "test"} | {"n_test": len(s.get("test", []))}
        for s in splits
    ]
    return {**settings, "splits": counted}


def _esc(value: Any) -> str:
    return html.escape(str(value))


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _fmt(value: Any, digits: int = 3) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.{digits}f}"
    return "n/a" if value is None else str(value)


def _main_table(agg: Aggregate) -> str:
    ran = [e for e in agg.entries if e.ran]
    others = [e.name for e in ran if e.name != agg.reference]
    by_key = {(r["model"], r["metric"]): r for r in agg.table}
    mw = agg.stats.get("mann_whitney", {})
    rows = []
    for metric in METRICS:
        scale = 1.0 if metric == "auc" else 100.0
        digits = 3 if metric == "auc" else 2
        row = [METRIC_LABELS[metric]]
        for e in ran:
            r = by_key[(e.name, metric)]
            row.append(f"{_fmt(r['mean'] * scale, digits)} ({_fmt(r['sd'] * scale, digits)})")
        for name in others:
            p = mw.get(metric, {}).get(name, {}).get("p_value")
            row.append(_fmt(p))
        rows.append(row)
    header = ["metric", *(e.name for e in ran), *(f"p vs {agg.reference}: {n}" for n in others)]
    return _table(header, rows)


def _models_table(agg: Aggregate) -> str:
    rows = [[e.name, e.kind, e.initialisation, e.mode, e.status, e.reason] for e in agg.entries]
    return _table(["model", "kind", "initialisation", "mode", "status", "note"], rows)


def _summary_table(agg: Aggregate) -> str:
    summary = agg.stats.get("summary", {})
    rows = []
    for e in agg.entries:
        s = summary.get(e.name)
        if s is None:
            continue
        auc = s["metrics"].get("auc", {})
        ci = s.get("auc_mean_corrected_ci", {})
        ttest = s.get("vs_reference_corrected_ttest", {}).get("auc", {})
        rows.append(
            [
                e.name,
                _fmt(auc.get("mean")),
                f"{_fmt(ci.get('ci_low'))}–{_fmt(ci.get('ci_high'))}",
                f"{_fmt(auc.get('minimum'))}–{_fmt(auc.get('maximum'))}",
                _fmt(ttest.get("p_value")),
                _fmt(s.get("splits_delong_p_below_0_05")),
            ]
        )
    header = [
        "model",
        "mean AUC",
        "corrected 95 % CI of the mean",
        "range over splits",
        f"corrected t-test p vs {agg.reference}",
        "splits with DeLong p<0.05",
    ]
    return _table(header, rows)


def _per_split_table(agg: Aggregate) -> str:
    per_split = agg.stats.get("per_split", {})
    rows = []
    for split in sorted(per_split, key=int):
        for name, entry in per_split[split].items():
            auc = entry["auc"]
            delong = entry.get("delong_vs_reference", {})
            rows.append(
                [
                    split,
                    name,
                    _fmt(auc.get("auc")),
                    f"{_fmt(auc.get('ci_low'))}–{_fmt(auc.get('ci_high'))}",
                    _fmt(delong.get("z")) if delong else "",
                    _fmt(delong.get("p")) if delong else "",
                    auc.get("error") or delong.get("error") or delong.get("note") or "",
                ]
            )
    header = ["split", "model", "AUC", "DeLong 95 % CI", "paired z", "paired p", "note"]
    return _table(header, rows)


def _figure(title: str, png: bytes | None) -> str:
    if png is None:
        return f"<h3>{_esc(title)}</h3><p class='note'>not available (no data recorded)</p>"
    data = base64.b64encode(png).decode("ascii")
    return f"<h3>{_esc(title)}</h3><img alt='{_esc(title)}' src='data:image/png;base64,{data}'>"


def render_report(agg: Aggregate, ctx: ReportContext) -> str:
    """The full HTML page as a string."""
    wall = [[k, f"{v:.1f}"] for k, v in ctx.wall_times.items()]
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>thyrocad experiment {ctx.settings_hash}</title><style>{_STYLE}</style></head>",
        "<body><h1>thyrocad experiment report</h1>",
        f"<p>Created {_esc(ctx.created_utc)} · settings hash <code>{ctx.settings_hash}</code> · "
        f"cohort data hash <code>{_esc(ctx.data_hash)}</code></p>",
        "<h2>Reproduce</h2>",
        f"<pre>{_esc(ctx.command)}</pre>",
        "<h2>Results (paper Table 4 layout)</h2>",
        _main_table(agg),
        "<p class='note'>Mean (SD) over splits; positive class = residual. p: two-sided "
        f"Mann–Whitney U over per-split values against {_esc(agg.reference)}.</p>",
        "<h2>Models</h2>",
        _models_table(agg),
        "<h2>Statistics</h2>",
        f"<p class='note'>How the summary was formed: {_esc(SUMMARY_RULE)}</p>",
        _summary_table(agg),
        "<h3>Per split: AUC with DeLong CI, paired DeLong test against the reference</h3>",
        _per_split_table(agg),
        "<h2>Figures</h2>",
        *(_figure(title, png) for title, png in ctx.figures.items()),
        "<h2>Run time</h2>",
        f"<p>Execution: {_esc(ctx.backend)}</p>",
        _table(["what", "seconds"], wall),
        "<h2>Configuration</h2>",
        "<p class='note'>Test patients per split by number only: their IDs are in splits.json "
        "and predictions.csv (patient data; do not share them).</p>",
        f"<pre>{_esc(json.dumps(shareable_settings(ctx.settings), indent=1, sort_keys=True))}"
        "</pre>",
        "<h2>Software and machine</h2>",
        _table(["library", "version"], [[k, v] for k, v in ctx.versions.items()]),
        _table(["machine", ""], [[k, v] for k, v in ctx.machine.items()]),
        "</body></html>",
    ]
    return "\n".join(parts)
