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

from thyrocad.experiment.report.aggregate import (
    SUMMARY_RULE,
    Aggregate,
    comparison_rows,
    external_rows,
    p_text,
    p_value_rows,
    results_rows,
    uncertainty_rows,
)

_STYLE = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:14px;max-width:100%}
th,td{border:1px solid #bbb;padding:4px 8px;text-align:right;overflow-wrap:anywhere}
th:first-child,td:first-child{text-align:left;white-space:nowrap;overflow-wrap:normal}
td.text{text-align:left}
pre{background:#f5f5f5;padding:8px;font-size:12px;white-space:pre-wrap;overflow-wrap:anywhere}
img{max-width:100%}
.note{color:#555;font-size:13px}
details{margin:0.5em 0}
summary{cursor:pointer;color:#245}
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
    methods: str = ""


def _esc(value: Any) -> str:
    return html.escape(str(value))


def _table(header: list[str], rows: list[list[Any]], text_columns: tuple[int, ...] = ()) -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(
            f"<td class='text'>{_esc(c)}</td>" if i in text_columns else f"<td>{_esc(c)}</td>"
            for i, c in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _fmt(value: Any, digits: int = 3) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.{digits}f}"
    return "n/a" if value is None else str(value)


def _models_table(agg: Aggregate) -> str:
    """Models with a short note; the full reason (e.g. a missing weights file) folded away."""
    rows = []
    for e in agg.entries:
        note = e.reason.split(":")[0].split(";")[0][:80] if e.reason else ""
        rows.append([e.name, e.kind, e.short_initialisation, e.mode, e.status, note])
    details = "".join(
        f"<p class='note'><b>{_esc(e.name)}</b>: {_esc(e.reason)}</p>"
        for e in agg.entries
        if e.reason
    )
    table = _table(["model", "kind", "initialisation", "mode", "status", "note"], rows, (2, 5))
    if details:
        table += f"<details><summary>Details of the notes</summary>{details}</details>"
    return table


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
                p_text(ttest),
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
            n = entry.get("n_test", {})
            flags = ", ".join(f"{k} {v}" for k, v in entry.get("test_flags", {}).items())
            rows.append(
                [
                    split,
                    name,
                    f"{n.get('residual', '?')} / {n.get('non_residual', '?')}",
                    _fmt(auc.get("auc")),
                    f"{_fmt(auc.get('ci_low'))}–{_fmt(auc.get('ci_high'))}",
                    _fmt(delong.get("z")) if delong else "",
                    p_text({"p_value": delong.get("p")}) if delong else "",
                    flags,
                    auc.get("error") or delong.get("error") or delong.get("note") or "",
                ]
            )
    header = [
        "split", "model", "test n (res. / non-res.)", "AUC", "DeLong 95 % CI", "paired z",
        "paired p", "flags on test views", "note",
    ]  # fmt: skip
    return _table(header, rows, (1, 7, 8))


def _comparison_section(agg: Aggregate) -> list[str]:
    header, rows = comparison_rows(agg)
    if not rows:
        return []
    return [
        "<h3>Operating points compared on the same trained models</h3>",
        "<p class='note'>The threshold each rule gives on the same models, and SEN and SPE "
        "at it on the training patients (the model's own predictions) and on the test parts, "
        "mean (SD) over splits (the out-of-fold predictions were computed for the "
        "experiment's own out-of-fold operating point). A gap between training and test is "
        "what a threshold chosen on the training predictions does not see.</p>",
        _table(header, rows),
    ]


def _external_section(agg: Aggregate) -> list[str]:
    header, rows = external_rows(agg)
    if not rows:
        return []
    return [
        "<h2>External test cohort</h2>",
        "<p class='note'>Every split's model applied to the external cohort at that split's "
        "threshold; mean (SD) over splits beside the internal test parts'. Per split: "
        "stats.json, <code>external</code>.</p>",
        _table(header, rows),
    ]


def _settings_json(settings: dict[str, Any]) -> str:
    return json.dumps(shareable_settings(settings), indent=1, sort_keys=True)


def shareable_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """The settings without patient IDs: each split's test patients replaced by their
    number (splits.json keeps the lists)."""
    out = dict(settings)
    if "splits" in out:
        out["splits"] = [
            {"index": s["index"], "seed": s["seed"], "n_test": len(s["test"])}
            for s in out["splits"]
        ]
    return out


def _figure(title: str, png: bytes | None) -> str:
    if png is None:
        return f"<h3>{_esc(title)}</h3><p class='note'>not available (no data recorded)</p>"
    data = base64.b64encode(png).decode("ascii")
    return f"<h3>{_esc(title)}</h3><img alt='{_esc(title)}' src='data:image/png;base64,{data}'>"


def _p_value_section(agg: Aggregate) -> list[str]:
    header, rows = p_value_rows(agg)
    if len(header) < 2:
        return []
    caveat = agg.stats.get("mann_whitney_caveat")
    return [
        f"<h3>Two-sided Mann–Whitney U p against {_esc(agg.reference)}</h3>",
        _table(header, rows),
        f"<p class='note'>Caveat: {_esc(caveat)}.</p>" if caveat else "",
    ]


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
        _table(*results_rows(agg)),
        "<p class='note'>Mean (SD) over splits; positive class = residual.</p>",
        *_p_value_section(agg),
        "<h3>Operating points and what SEN and SPE rest on</h3>",
        _table(*uncertainty_rows(agg), text_columns=(1,)),
        "<p class='note'>One split's SEN rests on its residual test patients and its SPE on "
        "its non-residual ones; the interval is the Wilson 95 % interval of one split's "
        "proportion at the mean. Thresholds marked optimistic were chosen on the training "
        "patients' own predictions. Baselines choose their threshold by Youden's J on the "
        "training patients: a count ratio or a CHO decision variable cannot memorise "
        "them.</p>",
        *_comparison_section(agg),
        *_external_section(agg),
        "<h2>Methods</h2>",
        f"<p>{_esc(ctx.methods)}</p>",
        "<h2>Models</h2>",
        _models_table(agg),
        "<h2>Statistics</h2>",
        f"<p class='note'>How the summary was formed: {_esc(SUMMARY_RULE)}</p>",
        _summary_table(agg),
        "<details><summary>Per split: test patients, AUC with DeLong CI, paired DeLong test "
        "against the reference, preprocessing flags</summary>",
        _per_split_table(agg),
        "</details>",
        "<h2>Figures</h2>",
        *(_figure(title, png) for title, png in ctx.figures.items()),
        "<h2>Run time</h2>",
        f"<p>Execution: {_esc(ctx.backend)}</p>",
        _table(["what", "seconds"], wall),
        "<h2>Configuration</h2>",
        "<details><summary>Full settings (JSON; test patient lists in splits.json)</summary>",
        f"<pre>{_esc(_settings_json(ctx.settings))}</pre>",
        "</details>",
        "<h2>Software and machine</h2>",
        _table(["library", "version"], [[k, v] for k, v in ctx.versions.items()]),
        _table(["machine", ""], [[k, v] for k, v in ctx.machine.items()]),
        "</body></html>",
    ]
    return "\n".join(parts)
