"""`thyrocad demo`: the paper's experiment on the default synthetic cohort, sized for a CPU."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from thyrocad.cli.app import busy, command
from thyrocad.cli.experiment_cmd import ForceOption, WorkersOption


def _cohort_table(summary: dict, folder: Path) -> Table:
    table = Table(title="Default synthetic cohort", show_header=False)
    table.add_column("item", style="bold")
    table.add_column("value", overflow="fold")
    table.add_row("folder", str(folder))
    table.add_row("patients", str(summary["patients"]))
    for name, n in summary["patients_per_class"].items():
        table.add_row(f"  {name}", str(n))
    table.add_row("files", str(summary["files"]))
    table.add_row("data hash", summary["data_hash"])
    return table


@command()
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Results folder.")] = Path(
        "thyrocad-demo"
    ),
    workers: WorkersOption = None,
    force: ForceOption = False,
) -> None:
    """Run the paper's experiment on the built-in synthetic cohort (the main job).

    Generate (once, cached) the default 446-patient synthetic cohort and run the paper's
    experiment on it: ResNet-18, SqueezeNet 1.1, ShuffleNetV2 1x and EfficientNet-Lite0 in
    head mode (lr 1e-3) plus the uptake-ratio and channelized Hotelling observers, 10 splits,
    80 epochs. Prints the table and writes report.html into --out/<settings hash>/ (--out/latest
    links to it). Re-running reuses every finished run and all caches.

    Example: thyrocad demo --out thyrocad-demo
    """
    from thyrocad.cli.experiment_cmd import print_outcome, run_with_progress
    from thyrocad.data.cohort import load_cohort
    from thyrocad.data.phantom import ensure_default_cohort
    from thyrocad.experiment.execute import Backend
    from thyrocad.experiment.presets import preset

    console = Console()
    with busy(console, "Generating the default synthetic cohort (first run only)"):
        folder = ensure_default_cohort()
        cohort = load_cohort(folder, read=False)
    console.print(_cohort_table(cohort.summary(), folder))
    backend = Backend(workers=workers or os.cpu_count() or 1)
    outcome = run_with_progress(folder, out, preset("demo"), backend, console, force=force)
    print_outcome(console, outcome)
