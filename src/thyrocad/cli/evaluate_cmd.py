"""`thyrocad evaluate`: a model bundle on a labelled cohort, with confidence intervals."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from thyrocad.cli.app import busy, command


@command()
def evaluate(
    bundle: Annotated[Path, typer.Argument(help="Model bundle folder (from thyrocad train).")],
    cohort_dir: Annotated[Path, typer.Argument(help="Labelled cohort folder.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the results.")],
    force: Annotated[
        bool, typer.Option("--force", help="Write into a non-empty folder of other files.")
    ] = False,
) -> None:
    """Score a model bundle on a labelled cohort at the bundle's threshold.

    Writes predictions.csv (patient_id,label,probability,verdict,flags), metrics.json (AUC with
    DeLong 95 % CI; ACC, SEN, SPE, PPV, NPV with Wilson 95 % CIs and their counts; Brier
    score; calibration intercept and slope) and report.html (ROC, reliability diagram,
    confusion matrix, what the bundle was trained on).

    Example: thyrocad evaluate models/r18 data/external --out eval-external
    """
    from thyrocad.decision import describe_source
    from thyrocad.diagnosis.evaluate import evaluate_bundle

    console = Console()
    with busy(console, "diagnosing every patient of the cohort"):
        result = evaluate_bundle(bundle, cohort_dir, out, force=force)
    m = result.metrics
    table = Table(title=f"{m['bundle']['model']} on {m.get('n_patients', 0)} patients")
    for column in ("metric", "value", "95 % CI", "counts"):
        table.add_column(column)
    for key in ("acc", "sen", "spe", "ppv", "npv"):
        if key in m:
            v = m[key]
            interval = f"{_pct(v['ci_low'])}–{_pct(v['ci_high'])}"
            table.add_row(key.upper(), _pct(v["value"]), interval, f"{v['successes']}/{v['n']}")
    if "auc" in m:
        a = m["auc"]
        table.add_row("AUC", _num(a["value"]), f"{_num(a['ci_low'])}–{_num(a['ci_high'])}", "")
        table.add_row("Brier", _num(m["brier"]), "", "")
    console.print(table)
    threshold = m["bundle"].get("threshold") or {}
    console.print(
        f"threshold {_num(m.get('threshold'))} ({threshold.get('rule')}): "
        + describe_source(threshold.get("source", "training"))
    )
    if m["unscored_patients"]:
        console.print(f"{m['unscored_patients']} patient(s) without a usable view left out")
    console.print(f"results written to {result.out_dir}")


def _pct(v) -> str:
    return "n/a" if v is None or v != v else f"{100 * v:.1f} %"


def _num(v) -> str:
    return "n/a" if v is None or v != v else f"{v:.3f}"
