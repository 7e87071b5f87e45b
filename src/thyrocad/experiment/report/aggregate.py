"""From run results to the paper's Table 4, predictions.csv and stats.json.

Positive = residual (label 1). Per-run metrics come from
`thyrocad.evaluation.metrics.binary_metrics` at the threshold the run recorded (chosen on its
training patients). Every statistic comes from `thyrocad.evaluation.stats`.

Summary rule across splits. The repeated random splits share test patients (and most training
patients), so their test sets are not independent and pooling all test predictions into one ROC
would count patients several times. The summary therefore works on one value per split: mean and
SD (ddof=1) over splits, the Mann–Whitney U test between per-split values (as in the paper), and
the Nadeau–Bengio corrected resampled t statistic, whose variance term (1/J + n_test/n_train)
accounts for the overlap between splits. Per-split AUCs carry their own DeLong 95 % CI and the
paired DeLong test against the reference on that split's test patients.
"""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from thyrocad.errors import StatisticsError
from thyrocad.evaluation.metrics import binary_metrics
from thyrocad.evaluation.stats import (
    corrected_resampled_ttest,
    delong_auc,
    delong_paired_test,
    mann_whitney,
    summarize_splits,
)
from thyrocad.experiment.report.uncertainty import (
    class_counts,
    external_results,
    mann_whitney_caveat,
    operating_point,
    rule_comparison,
    sen_spe_uncertainty,
)
from thyrocad.experiment.runs import RunResult

logger = logging.getLogger(__name__)

METRICS = ("acc", "sen", "spe", "ppv", "npv", "f1", "auc")
METRIC_LABELS = {
    "acc": "ACC %",
    "sen": "SEN %",
    "spe": "SPE %",
    "ppv": "PPV %",
    "npv": "NPV %",
    "f1": "F1 %",
    "auc": "AUC",
}
PREDICTION_COLUMNS = ("model", "split", "patient_id", "label", "probability")
SUMMARY_RULE = (
    "One value per split: mean and SD (ddof=1) over the splits; Mann–Whitney U (two-sided) on "
    "the per-split values against the reference; Nadeau–Bengio corrected resampled t-test "
    "(variance factor 1/J + n_test/n_train) for the mean difference, and a corrected 95 % CI of "
    "each model's mean AUC. Test predictions of different splits are never pooled, because the "
    "splits share test patients. Per-split AUCs have DeLong 95 % CIs and a paired DeLong test "
    "against the reference on that split's test patients."
)


@dataclass(frozen=True)
class ModelEntry:
    """One row of the results: a CNN or a baseline, how it was initialised, whether it ran."""

    name: str
    kind: str  # "model" | "baseline"
    initialisation: str  # e.g. "ImageNet (package)", "scratch", "n/a (no training)"
    mode: str  # "head" | "full" | "last" | "n/a"
    status: str = "ok"  # "ok" | "unavailable"
    reason: str = ""  # why unavailable, or why the initialisation differs from the one asked

    @property
    def ran(self) -> bool:
        return self.status == "ok"

    @property
    def short_initialisation(self) -> str:
        """The initialisation in a few words (the full text and reason stay in the notes)."""
        if self.initialisation.startswith("scratch"):
            return "random initialisation"
        return self.initialisation.split(" (")[0] if self.kind == "model" else "n/a"


@dataclass
class Aggregate:
    """Everything the outputs are written from."""

    entries: list[ModelEntry]
    reference: str
    per_split: dict[str, dict[str, list[float]]]  # model -> metric -> values in split order
    table: list[dict[str, Any]]  # rows model, metric, mean, sd
    stats: dict[str, Any] = field(default_factory=dict)


def run_metrics(result: RunResult) -> dict[str, Any]:
    """binary_metrics of one run at its recorded threshold."""
    return binary_metrics(result.labels, result.probabilities, result.info["threshold"])


def _by_model(results: Iterable[RunResult]) -> dict[str, list[RunResult]]:
    grouped: dict[str, list[RunResult]] = {}
    for r in sorted(results, key=lambda r: (r.model, r.split)):
        grouped.setdefault(r.model, []).append(r)
    return grouped


def aggregate(
    results: Sequence[RunResult], entries: Sequence[ModelEntry], reference: str
) -> Aggregate:
    """Per-split metrics, the mean (SD) table and the statistics of `results`."""
    grouped = _by_model(results)
    per_split = {
        name: {m: [float(run_metrics(r)[m]) for r in runs] for m in METRICS}
        for name, runs in grouped.items()
    }
    table = []
    for entry in entries:
        for metric in METRICS:
            values = per_split.get(entry.name, {}).get(metric, [])
            mean, sd = _mean_sd(values)
            table.append({"model": entry.name, "metric": metric, "mean": mean, "sd": sd})
    agg = Aggregate(list(entries), reference, per_split, table)
    agg.stats = _statistics(grouped, agg)
    return agg


def _mean_sd(values: Sequence[float]) -> tuple[float, float]:
    finite = [v for v in values if math.isfinite(v)]
    if len(finite) >= 2:
        s = summarize_splits(finite)
        return s.mean, s.sd
    if len(finite) == 1:
        return finite[0], math.nan
    return math.nan, math.nan


def _statistics(grouped: dict[str, list[RunResult]], agg: Aggregate) -> dict[str, Any]:
    per_split = _per_split_auc(grouped, agg.reference)
    n_splits = max((len(runs) for runs in grouped.values()), default=0)
    return {
        "reference": agg.reference,
        "positive_class": "residual (label 1)",
        "summary_rule": SUMMARY_RULE,
        "models": [asdict(e) for e in agg.entries],
        "mann_whitney": _mann_whitney_all(agg),
        "mann_whitney_caveat": mann_whitney_caveat(n_splits),
        "per_split": per_split,
        "summary": _summary(grouped, agg, per_split),
        "sen_spe_uncertainty": {
            name: sen_spe_uncertainty(runs, agg.per_split[name]) for name, runs in grouped.items()
        },
        "operating_points": {name: operating_point(runs) for name, runs in grouped.items()},
        "distinct_test_sets": len({tuple(sorted(r.patient_ids)) for r in _first(grouped)}),
        "external": external_results(grouped),
        "operating_point_comparison": rule_comparison(grouped),
    }


def _first(grouped: dict[str, list[RunResult]]) -> list[RunResult]:
    """The runs of the first model (every model is tested on the same splits)."""
    return next(iter(grouped.values()), [])


def _mann_whitney_all(agg: Aggregate) -> dict[str, dict[str, Any]]:
    """metric -> model -> {u, p, method} against the reference over per-split values."""
    ref_values = agg.per_split.get(agg.reference)
    out: dict[str, dict[str, Any]] = {}
    for metric in METRICS:
        out[metric] = {}
        for name, values in agg.per_split.items():
            if name == agg.reference or ref_values is None:
                continue
            out[metric][name] = _guarded(mann_whitney, values[metric], ref_values[metric])
    return out


def _guarded(statistic: Callable[..., Any], *args: Any) -> dict[str, Any]:
    """`statistic(*args)` as a dict, or {"error": why} when it is undefined for these data."""
    try:
        value = statistic(*args)
    except StatisticsError as exc:
        return {"error": str(exc)}
    return value if isinstance(value, dict) else asdict(value)


def _aligned(run: RunResult) -> dict[str, tuple[int, float]]:
    return {
        pid: (lab, p)
        for pid, lab, p in zip(run.patient_ids, run.labels, run.probabilities, strict=True)
    }


def _per_split_auc(grouped: dict[str, list[RunResult]], ref: str) -> dict[str, dict[str, Any]]:
    """split -> model -> {auc, ci, n, delong vs reference} on that split's test patients."""
    ref_runs = {r.split: r for r in grouped.get(ref, [])}
    out: dict[str, dict[str, Any]] = {}
    for name, runs in grouped.items():
        for run in runs:
            entry = {
                "auc": _guarded(delong_auc, run.labels, run.probabilities),
                "n_test": class_counts(run),
                "test_flags": run.info.get("test_flags", {}),
            }
            ref_run = ref_runs.get(run.split)
            if name != ref and ref_run is not None:
                entry["delong_vs_reference"] = _guarded(_paired_delong, run, ref_run)
            out.setdefault(str(run.split), {})[name] = entry
    return out


def _paired_delong(run: RunResult, ref_run: RunResult) -> dict[str, Any]:
    a, b = _aligned(run), _aligned(ref_run)
    if set(a) != set(b):
        raise StatisticsError("the two runs have different test patients; cannot pair them")
    ids = sorted(a)
    labels = [a[i][0] for i in ids]
    res = delong_paired_test(labels, [a[i][1] for i in ids], [b[i][1] for i in ids])
    return {**asdict(res), "z": res.statistic, "p": res.p_value}


def _summary(
    grouped: dict[str, list[RunResult]], agg: Aggregate, per_split: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """model -> per-metric summaries, corrected CI of the mean AUC, and vs-reference tests."""
    ref = agg.reference
    out: dict[str, Any] = {}
    for name, runs in grouped.items():
        n_test = len(runs[0].patient_ids)
        n_train = int(runs[0].info.get("n_train_patients", 0))
        values = agg.per_split[name]
        item: dict[str, Any] = {
            "n_splits": len(runs),
            "metrics": {m: _guarded(summarize_splits, values[m]) for m in METRICS},
        }
        if n_train:
            zeros = np.zeros(len(runs))
            item["auc_mean_corrected_ci"] = _guarded(
                _corrected_ci, values["auc"], zeros, n_train, n_test
            )
            if name != ref and ref in agg.per_split:
                item["vs_reference_corrected_ttest"] = {
                    m: _guarded(
                        corrected_resampled_ttest, values[m], agg.per_split[ref][m], n_train, n_test
                    )
                    for m in METRICS
                }
        if name != ref:
            item["splits_delong_p_below_0_05"] = _count_significant(name, per_split)
        out[name] = item
    return out


def _corrected_ci(values, zeros, n_train: int, n_test: int) -> dict[str, float]:
    """Nadeau–Bengio corrected 95 % CI of a mean over splits (a test against 0), within [0, 1]."""
    res = corrected_resampled_ttest(values, zeros, n_train, n_test)
    return {
        "mean": res.mean_difference,
        "ci_low": max(res.ci_low, 0.0),
        "ci_high": min(res.ci_high, 1.0),
    }


def _count_significant(name: str, per_split: dict[str, dict[str, Any]]) -> int:
    """In how many splits the paired DeLong test against the reference gave p < 0.05."""
    return sum(
        1
        for per_model in per_split.values()
        if per_model.get(name, {}).get("delong_vs_reference", {}).get("p", 1.0) < 0.05
    )


# --- writing ------------------------------------------------------------------------------


def write_predictions_csv(results: Iterable[RunResult], path: Path) -> None:
    """predictions.csv: one row per test patient of every run (label 1 = residual)."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(PREDICTION_COLUMNS)
        for r in sorted(results, key=lambda r: (r.model, r.split)):
            for pid, lab, p in zip(r.patient_ids, r.labels, r.probabilities, strict=True):
                writer.writerow([r.model, r.split, pid, lab, repr(float(p))])


def write_table_csv(agg: Aggregate, path: Path) -> None:
    """table.csv: model,metric,mean,sd (fractions; NaN where undefined)."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["model", "metric", "mean", "sd"])
        writer.writeheader()
        for row in agg.table:
            writer.writerow({**row, "mean": repr(row["mean"]), "sd": repr(row["sd"])})


def _cell(mean: float, sd: float, metric: str) -> str:
    if math.isnan(mean):
        return "n/a"
    scale, digits = (1.0, 3) if metric == "auc" else (100.0, 2)
    sd_text = "n/a" if math.isnan(sd) else f"{sd * scale:.{digits}f}"
    return f"{mean * scale:.{digits}f} ({sd_text})"


def p_text(result: dict[str, Any] | None) -> str:
    """A p-value as the report prints it: 3 decimals, "<0.001" below that, "n/a" if none."""
    if not result or result.get("p_value") is None:
        return "n/a"
    p = result["p_value"]
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def results_rows(agg: Aggregate) -> tuple[list[str], list[list[str]]]:
    """Table 4: header and rows (metrics as rows, mean (SD) per model)."""
    ran = [e for e in agg.entries if e.ran]
    cells = {(r["model"], r["metric"]): _cell(r["mean"], r["sd"], r["metric"]) for r in agg.table}
    rows = [[METRIC_LABELS[m], *(cells[(e.name, m)] for e in ran)] for m in METRICS]
    return ["metric", *(e.name for e in ran)], rows


def p_value_rows(agg: Aggregate) -> tuple[list[str], list[list[str]]]:
    """Mann–Whitney p of each model against the reference, per metric."""
    others = [e.name for e in agg.entries if e.ran and e.name != agg.reference]
    mw = agg.stats.get("mann_whitney", {})
    rows = [[METRIC_LABELS[m], *(p_text(mw.get(m, {}).get(n)) for n in others)] for m in METRICS]
    return ["metric", *others], rows


def uncertainty_rows(agg: Aggregate) -> tuple[list[str], list[list[str]]]:
    """Per model: the operating point and what SEN and SPE rest on (n, Wilson 95 % CI)."""
    unc = agg.stats.get("sen_spe_uncertainty", {})
    points = agg.stats.get("operating_points", {})
    rows = []
    for e in (e for e in agg.entries if e.ran and e.name in unc):
        cells = [e.name, _point_text(points.get(e.name, {}))]
        for metric in ("sen", "spe"):
            u = unc[e.name][metric]
            cells.append(
                f"{_pct(u['mean'])} of n = {u['n']} ({_pct(u['ci_low'])}–{_pct(u['ci_high'])})"
            )
        rows.append(cells)
    header = ["model", "threshold", "SEN % per split (Wilson 95 % CI)", "SPE % per split (Wilson)"]
    return header, rows


def external_rows(agg: Aggregate) -> tuple[list[str], list[list[str]]]:
    """Internal and external mean (SD) side by side: AUC, SEN, SPE per model."""
    ext = agg.stats.get("external", {})
    rows_by = {(r["model"], r["metric"]): r for r in agg.table}
    rows = []
    for e in (e for e in agg.entries if e.name in ext):
        cells = [e.name]
        for metric in ("auc", "sen", "spe"):
            internal = rows_by[(e.name, metric)]
            external = ext[e.name]["summary"][metric]
            cells += [
                _cell(internal["mean"], internal["sd"], metric),
                _cell(external["mean"], external["sd"], metric),
            ]
        rows.append(cells)
    header = ["model"] + [f"{m} {w}" for m in ("AUC", "SEN %", "SPE %") for w in ("int.", "ext.")]
    return header, rows


def comparison_rows(agg: Aggregate) -> tuple[list[str], list[list[str]]]:
    """Threshold, training and test SEN and SPE (mean (SD) over splits) of each model under
    every operating point, on the same trained models."""
    comparison = agg.stats.get("operating_point_comparison", {})
    rows = []
    for name, rules in comparison.items():
        for rule, v in rules.items():
            label = f"{rule} (optimistic)" if rule == "train-youden" else rule
            threshold = v.get("threshold", {"mean": math.nan, "sd": math.nan})
            cells = [name, label, _cell(threshold["mean"], threshold["sd"], "auc")]
            for key in ("train_sen", "train_spe", "sen", "spe"):
                value = v.get(key, {"mean": math.nan, "sd": math.nan})
                cells.append(_cell(value["mean"], value["sd"], "sen"))
            rows.append(cells)
    header = ["model", "operating point", "threshold", "train SEN %", "train SPE %"]
    return [*header, "test SEN %", "test SPE %"], rows


def _point_text(point: dict[str, Any]) -> str:
    text = point.get("operating_point", "n/a")
    return f"{text} (optimistic)" if point.get("optimistic") else text


def _pct(value: float) -> str:
    return "n/a" if not math.isfinite(value) else f"{100 * value:.1f}"


def markdown_lines(header: list[str], rows: list[list[str]]) -> list[str]:
    """A markdown table's lines."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def table_markdown(agg: Aggregate) -> str:
    """Table 4 (metrics as rows, mean (SD) per model), the Mann–Whitney p-values against the
    reference, what SEN/SPE rest on, the external cohort (if any), the models and notes."""
    lines = markdown_lines(*results_rows(agg))
    lines += ["", "Mean (SD) over splits; positive = residual.", ""]
    header, rows = p_value_rows(agg)
    if len(header) > 1:
        lines += [f"Two-sided Mann–Whitney U p against {agg.reference} (per-split values):", ""]
        lines += [*markdown_lines(header, rows), ""]
    caveat = agg.stats.get("mann_whitney_caveat")
    if caveat:
        lines += [f"Caveat: {caveat}.", ""]
    lines += [*markdown_lines(*uncertainty_rows(agg)), ""]
    lines.append(
        "Baselines choose their threshold by Youden's J on the training patients: a count ratio "
        "or a CHO decision variable cannot memorise them."
    )
    header, rows = comparison_rows(agg)
    if rows:
        lines += [
            "",
            "Operating points compared on the same trained models (SEN/SPE on the training "
            "patients and on the test parts):",
            "",
        ]
        lines += markdown_lines(header, rows)
    header, rows = external_rows(agg)
    if rows:
        lines += ["", "External test cohort (every split's model; int. = internal test parts):"]
        lines += ["", *markdown_lines(header, rows)]
    lines += ["", "| model | kind | initialisation | mode | status |", "|---|---|---|---|---|"]
    for e in agg.entries:
        lines.append(f"| {e.name} | {e.kind} | {e.initialisation} | {e.mode} | {e.status} |")
    notes = [f"- {e.name}: {e.reason}" for e in agg.entries if e.reason]
    if notes:
        lines += ["", *notes]
    return "\n".join(lines) + "\n"
