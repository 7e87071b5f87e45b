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
    return {
        "reference": agg.reference,
        "positive_class": "residual (label 1)",
        "summary_rule": SUMMARY_RULE,
        "models": [asdict(e) for e in agg.entries],
        "mann_whitney": _mann_whitney_all(agg),
        "per_split": per_split,
        "summary": _summary(grouped, agg, per_split),
    }


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
            entry = {"auc": _guarded(delong_auc, run.labels, run.probabilities)}
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


def _p_text(result: dict[str, Any] | None) -> str:
    if not result or "p_value" not in result:
        return "n/a"
    p = result["p_value"]
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def table_markdown(agg: Aggregate) -> str:
    """Table 4 layout: metrics as rows, models as columns with mean (SD), then p vs reference."""
    ran = [e for e in agg.entries if e.ran]
    others = [e for e in ran if e.name != agg.reference]
    cells = {(r["model"], r["metric"]): _cell(r["mean"], r["sd"], r["metric"]) for r in agg.table}
    header = [
        "metric",
        *(e.name for e in ran),
        *(f"p ({e.name} vs {agg.reference})" for e in others),
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    mw = agg.stats.get("mann_whitney", {})
    for metric in METRICS:
        row = [METRIC_LABELS[metric], *(cells[(e.name, metric)] for e in ran)]
        row += [_p_text(mw.get(metric, {}).get(e.name)) for e in others]
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    lines.append(
        "Mean (SD) over splits; positive = residual. p: two-sided Mann–Whitney U over the "
        f"per-split values against {agg.reference} (method stated in stats.json)."
    )
    lines.append("")
    lines.append("| model | kind | initialisation | mode | status |")
    lines.append("|---|---|---|---|---|")
    for e in agg.entries:
        lines.append(f"| {e.name} | {e.kind} | {e.initialisation} | {e.mode} | {e.status} |")
    notes = [f"- {e.name}: {e.reason}" for e in agg.entries if e.reason]
    if notes:
        lines += ["", *notes]
    return "\n".join(lines) + "\n"
