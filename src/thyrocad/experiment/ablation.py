"""The ablation study (`thyrocad ablate`): one experiment whose rows are the paper's pipeline,
one-factor-at-a-time variants of it and of the recommended recipe, and the classical observers,
all on the same splits; and its table.

Each variant changes one setting of its base recipe (`thyrocad.experiment.recipes`). Every row
is compared with the paper's pipeline (`paper_pipeline`) the way docs/statistics.md compares
models: the Nadeau-Bengio corrected resampled t-test of the per-split AUC differences, and in
how many splits the paired DeLong test gave p < 0.05 (the splits share patients, so their
DeLong p-values are not combined into one).
"""

from __future__ import annotations

import math
from typing import Any

from thyrocad.experiment.config import ExperimentConfig
from thyrocad.experiment.recipes import REFERENCE, ablation_names, experiment_recipe
from thyrocad.experiment.report import Aggregate
from thyrocad.experiment.report.aggregate import markdown_lines

OBSERVERS = ("peak", "uptake_ratio")
HEADER = [
    "row",
    "change",
    "AUC mean (SD)",
    "ΔAUC vs paper pipeline (corrected 95 % CI)",
    "corrected t-test p",
    "DeLong p < 0.05",
    "s per run",
]


def ablation_config(
    n_splits: int = 10, seed: int = 0, device: str = "auto", allow_small: bool = False
) -> ExperimentConfig:
    """The experiment of the ablation: every variant, the paper's pipeline (the reference),
    the recommended recipe and the observers, on `n_splits` splits."""
    recipes = (REFERENCE, "recommended", *ablation_names())
    return ExperimentConfig(
        models=(),
        recipes=recipes,
        baselines=OBSERVERS,
        n_splits=n_splits,
        reference=REFERENCE,
        seed=seed,
        device=device,
        allow_small=allow_small,
    )


def ablation_rows(agg: Aggregate, wall: dict[str, float]) -> tuple[list[str], list[list[str]]]:
    """The ablation table: one row per recipe and observer, in the experiment's order."""
    summary = agg.stats["summary"]
    rows = []
    for entry in agg.entries:
        item = summary.get(entry.name)
        if item is None:
            continue
        rows.append(
            [
                entry.name,
                _change(entry.name),
                _mean_sd(item["metrics"]["auc"]),
                _difference(item.get("vs_reference_corrected_ttest", {}).get("auc")),
                _p(item.get("vs_reference_corrected_ttest", {}).get("auc")),
                _count(item, entry.name == agg.reference),
                _seconds(wall.get(f"{entry.name}: sum of run times (s)"), item["n_splits"]),
            ]
        )
    return HEADER, rows


def _change(name: str) -> str:
    if name in OBSERVERS:
        return "classical observer (no training)"
    return experiment_recipe(name).summary


def _mean_sd(summary: dict[str, Any]) -> str:
    if "error" in summary:
        return "n/a"
    return f"{summary['mean']:.3f} ({summary['sd']:.3f})"


def _difference(test: dict[str, Any] | None) -> str:
    if not test or "error" in test:
        return "reference" if test is None else "n/a"
    return f"{test['mean_difference']:+.3f} ({test['ci_low']:+.3f} to {test['ci_high']:+.3f})"


def _p(test: dict[str, Any] | None) -> str:
    if not test or "error" in test or test.get("p_value") is None:
        return "" if test is None else "n/a"
    p = test["p_value"]
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _count(item: dict[str, Any], is_reference: bool) -> str:
    if is_reference:
        return ""
    return f"{item['splits_delong_p_below_0_05']} of {item['n_splits']}"


def _seconds(total: float | None, n_splits: int) -> str:
    if total is None or not math.isfinite(total):
        return "n/a"
    return f"{total / n_splits:.1f}"


def ablation_markdown(agg: Aggregate, wall: dict[str, float]) -> str:
    """The ablation table as markdown."""
    return "\n".join(markdown_lines(*ablation_rows(agg, wall))) + "\n"
