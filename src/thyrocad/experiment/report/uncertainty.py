"""What the numbers of an experiment rest on: test counts per class, Wilson intervals beside
SEN and SPE, how each threshold was chosen, caveats of small samples, and the external test
cohort's results (`thyrocad.evaluation.validation`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from thyrocad.evaluation.metrics import binary_metrics
from thyrocad.evaluation.stats import summarize_splits
from thyrocad.evaluation.validation import labelled_metrics, wilson_interval
from thyrocad.experiment.runs import RunResult

MIN_SPLITS_FOR_MANN_WHITNEY = 5
EXTERNAL_METRICS = ("acc", "sen", "spe", "ppv", "npv", "auc")


def class_counts(run: RunResult) -> dict[str, int]:
    """Scored test patients of one run per class."""
    n_pos = sum(run.labels)
    return {"residual": n_pos, "non_residual": len(run.labels) - n_pos}


def sen_spe_uncertainty(runs: Sequence[RunResult], per_split: dict[str, list[float]]) -> dict:
    """Per metric (sen, spe): the mean over splits, the patients one split's value rests on,
    and the Wilson 95 % interval of one split's proportion at that mean."""
    counts = class_counts(runs[0])
    out = {}
    for metric, n in (("sen", counts["residual"]), ("spe", counts["non_residual"])):
        finite = [v for v in per_split[metric] if math.isfinite(v)]
        mean = sum(finite) / len(finite) if finite else math.nan
        low, high = wilson_interval(mean * n, n) if finite and n else (math.nan, math.nan)
        out[metric] = {"mean": mean, "n": n, "ci_low": low, "ci_high": high}
    return out


def operating_point(runs: Sequence[RunResult]) -> dict[str, Any]:
    """How a model's thresholds were chosen (the same rule on every split)."""
    info = runs[0].info
    return {
        "operating_point": info.get("operating_point", "train-youden"),
        "rule": info.get("threshold_rule", ""),
        "optimistic": bool(info.get("optimistic", False)),
    }


def mann_whitney_caveat(n_splits: int) -> str:
    """A caveat for Mann–Whitney on few splits (empty when there are enough)."""
    if n_splits >= MIN_SPLITS_FOR_MANN_WHITNEY:
        return ""
    return (
        f"Mann–Whitney on {n_splits} split(s) (fewer than {MIN_SPLITS_FOR_MANN_WHITNEY}): "
        "its p-value cannot fall below what so few values allow; read it as descriptive"
    )


def external_results(grouped: dict[str, list[RunResult]]) -> dict[str, Any]:
    """model -> per-split labelled metrics on the external cohort and their mean (SD);
    {} without an external cohort. Probability-based numbers (Brier, calibration) only for
    CNNs: a baseline's score is not a probability."""
    out: dict[str, Any] = {}
    for name, runs in grouped.items():
        scored = [r for r in runs if r.external.get("labels")]
        if not scored:
            continue
        per_split = []
        for run in scored:
            ext = run.external
            m = labelled_metrics(ext["labels"], ext["probabilities"], run.info["threshold"])
            if run.kind != "model":
                m.pop("brier")
                m.pop("calibration")
            m["unscored"] = ext.get("unscored", 0)
            per_split.append(m)
        out[name] = {
            "per_split": per_split,
            "summary": {k: _mean_sd([m[k]["value"] for m in per_split]) for k in EXTERNAL_METRICS},
        }
    return out


def _mean_sd(values: list[float]) -> dict[str, float]:
    finite = [v for v in values if math.isfinite(v)]
    if len(finite) >= 2:
        s = summarize_splits(finite)
        return {"mean": s.mean, "sd": s.sd}
    return {"mean": finite[0] if finite else math.nan, "sd": math.nan}


def rule_comparison(grouped: dict[str, list[RunResult]]) -> dict[str, Any]:
    """model -> operating point -> mean (SD) over splits of the threshold, the test SEN and SPE
    at that threshold and (`train_sen`, `train_spe`) those of the training patients, for the
    threshold each rule gave on the same trained models (runs with out-of-fold predictions
    record every rule's threshold); {} when no run recorded them."""
    out: dict[str, Any] = {}
    for name, runs in grouped.items():
        recorded = [r for r in runs if "thresholds_by_rule" in r.info]
        if not recorded:
            continue
        out[name] = {}
        for rule in recorded[0].info["thresholds_by_rule"]:
            values: dict[str, list[float]] = {"threshold": [], "sen": [], "spe": []}
            for run in recorded:
                threshold = run.info["thresholds_by_rule"][rule]
                m = binary_metrics(run.labels, run.probabilities, threshold)
                values["threshold"].append(threshold)
                values["sen"].append(m["sen"])
                values["spe"].append(m["spe"])
                train = run.info.get("train_rates_by_rule", {}).get(rule)
                if train is not None:
                    values.setdefault("train_sen", []).append(train["sen"])
                    values.setdefault("train_spe", []).append(train["spe"])
            out[name][rule] = {k: _mean_sd(v) for k, v in values.items()}
    return out
