"""Experiment outputs: predictions.csv, table.csv, table.md, stats.json, figures, report.html."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from thyrocad.experiment.report.aggregate import (
    METRICS,
    Aggregate,
    ModelEntry,
    aggregate,
    table_markdown,
    write_predictions_csv,
    write_table_csv,
)
from thyrocad.experiment.report.figures import (
    metrics_strip_figure,
    roc_figure,
    training_curves_figure,
)
from thyrocad.experiment.report.html import ReportContext, render_report
from thyrocad.experiment.report.methods import methods_text
from thyrocad.experiment.runs import RunResult
from thyrocad.files import strict_json, write_text_atomic

logger = logging.getLogger(__name__)

OUTPUT_FILES = (
    "methods.md",
    "predictions.csv",
    "table.csv",
    "table.md",
    "stats.json",
    "roc.png",
    "training_curves.png",
    "metrics.png",
    "report.html",
)

__all__ = [
    "METRICS",
    "OUTPUT_FILES",
    "Aggregate",
    "ModelEntry",
    "ReportContext",
    "aggregate",
    "table_markdown",
    "write_outputs",
]


def write_outputs(
    out_dir: Path,
    results: Sequence[RunResult],
    entries: Sequence[ModelEntry],
    reference: str,
    context: ReportContext,
) -> Aggregate:
    """Write every output file of an experiment into `out_dir`; return the aggregate."""

    out_dir.mkdir(parents=True, exist_ok=True)
    agg = aggregate(results, entries, reference)
    write_predictions_csv(results, out_dir / "predictions.csv")
    write_table_csv(agg, out_dir / "table.csv")
    write_text_atomic(out_dir / "table.md", table_markdown(agg))
    write_text_atomic(out_dir / "stats.json", strict_json(agg.stats))
    order = [e.name for e in entries if e.ran]
    figures = {
        "ROC curves (paper Fig. 10)": ("roc.png", roc_figure(results, order) if results else None),
        "Training curves (paper Fig. 9)": (
            "training_curves.png",
            training_curves_figure(results, order),
        ),
        "Metrics of every split (box plots)": (
            "metrics.png",
            metrics_strip_figure(agg.per_split, order) if results else None,
        ),
    }
    for filename, png in figures.values():
        if png is not None:
            (out_dir / filename).write_bytes(png)
    context.figures = {title: png for title, (_, png) in figures.items()}
    context.methods = methods_text(agg, context.settings, context.versions)
    write_text_atomic(out_dir / "methods.md", "# Methods\n\n" + context.methods + "\n")
    write_text_atomic(out_dir / "report.html", render_report(agg, context))
    logger.info("wrote experiment outputs to %s", out_dir)
    return agg
