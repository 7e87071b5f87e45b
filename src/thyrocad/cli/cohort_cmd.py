"""`thyrocad cohort-check`: load and validate a labelled cohort folder, print what it holds."""

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from thyrocad.cli.app import command


@command(name="cohort-check")
def cohort_check(
    cohort_dir: Annotated[
        Path, typer.Argument(help="Cohort folder (labels.csv or class folders).")
    ],
    allow_one_class: Annotated[
        bool,
        typer.Option(
            "--allow-one-class",
            help="Accept a cohort with one class only (inference, not training).",
        ),
    ] = False,
    read: Annotated[
        bool, typer.Option(help="Decode every image to check it (--no-read: existence only).")
    ] = True,
) -> None:
    """Check a labelled cohort: patients per class, views per patient, files, problems.

    Lists every problem (CSV line or relative path) and exits with status 1 if there are any.

    Example: thyrocad cohort-check data/cohort --allow-one-class
    """
    from thyrocad.data.cohort import load_cohort
    from thyrocad.errors import CohortError

    console = Console()
    try:
        cohort = load_cohort(cohort_dir, read=read, require_both_classes=not allow_one_class)
    except CohortError as exc:
        console.print(_problem_table(str(exc).splitlines()[0], exc.problems))
        raise typer.Exit(1) from None
    summary = cohort.summary()
    console.print(_summary_table(summary))
    console.print(f"data hash (sha256): {summary['data_hash']}", soft_wrap=True)


def _summary_table(summary: dict) -> Table:
    table = Table(title="Cohort", show_header=False)
    table.add_column("item", style="bold")
    table.add_column("value")
    table.add_row("layout", summary["layout"])
    table.add_row("patients", str(summary["patients"]))
    for name, n in summary["patients_per_class"].items():
        table.add_row(f"  {name}", str(n))
    table.add_row("files", str(summary["files"]))
    table.add_row("files per patient", _counts(summary["files_per_patient"]))
    views = summary["views_per_patient"]
    table.add_row("views per patient", "not read (--no-read)" if views is None else _counts(views))
    table.add_row("problems", "0")
    return table


def _problem_table(title: str, problems: list[str]) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("problem", overflow="fold")
    for i, problem in enumerate(problems, start=1):
        table.add_row(str(i), problem)
    return table


def _counts(counts: dict[str, int]) -> str:
    """'2: 38 patients, 1: 2 patients' from {'2': 38, '1': 2}."""
    return ", ".join(f"{k}: {n}" for k, n in counts.items())
