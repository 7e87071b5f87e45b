"""`thyrocad cohort-check`: load and validate a labelled cohort folder, print what it holds."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from thyrocad.cli.app import command

if TYPE_CHECKING:
    from thyrocad.data.cohort import Cohort

GROUPS_SHOWN = 3  # example patients of a class-folder cohort, by their files


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
    """Check a labelled cohort: patients and views per class, sizes, spacings, problems.

    Lists every problem (CSV line or relative path) and exits with status 1 if there are any.
    Otherwise prints a summary to check at a glance, how files were grouped into patients, and
    a warning for anything the pipeline will treat differently (no pixel spacing, gray-level
    exports, mixed sizes or spacings, unrecognised views). See docs/own-data.md.

    Example: thyrocad cohort-check data/cohort --allow-one-class
    """
    from thyrocad.data.cohort import cohort_warnings, load_cohort, ungrouped_files
    from thyrocad.errors import CohortError

    console = Console()
    try:
        cohort = load_cohort(cohort_dir, read=read, require_both_classes=not allow_one_class)
    except CohortError as exc:
        console.print(_problem_table(str(exc).splitlines()[0], exc.problems))
        raise typer.Exit(1) from None
    summary = cohort.summary()
    console.print(_summary_table(summary))
    if cohort.layout == "folders":
        console.print(_grouping_table(cohort, ungrouped_files(cohort)))
    for warning in cohort_warnings(cohort):
        console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
    console.print(f"data hash: {summary['data_hash']}", soft_wrap=True)


def _summary_table(summary: dict) -> Table:
    from thyrocad.data.cohort.layouts import GROUPINGS

    table = Table(title="Cohort", show_header=False)
    table.add_column("item", style="bold", no_wrap=True)
    table.add_column("value", overflow="fold")
    classes = summary["patients_per_class"]
    table.add_row("layout", "labels.csv" if summary["layout"] == "csv" else "class folders")
    table.add_row("patients", f"{summary['patients']}: {_amounts(classes)}")
    for name, views in (summary["views_per_class"] or {}).items():
        table.add_row(f"views, {name}", _amounts(views))
    views = summary["views_per_patient"]
    table.add_row("views per patient", "not read (--no-read)" if views is None else _counts(views))
    per_patient = ", ".join(f"{k} ({n} patients)" for k, n in summary["files_per_patient"].items())
    table.add_row("files", f"{summary['files']}; per patient: {per_patient}")
    grouping = {GROUPINGS[k]: n for k, n in summary["grouping"].items()}
    table.add_row("patient from", _counts(grouping))
    for key, label in (
        ("image_sizes", "image sizes"),
        ("pixel_spacings", "pixel spacings"),
        ("pixels", "pixel values"),
        ("view_sources", "views from"),
    ):
        if summary[key] is not None:
            table.add_row(label, _counts(summary[key]))
    table.add_row("problems", "0")
    return table


def _grouping_table(cohort: Cohort, ungrouped: list[str]) -> Table:
    """How a class-folder cohort's files became patients: a few examples by their files, and
    every file that could not be grouped."""
    table = Table(title="Grouping (files of one patient)", show_header=False, title_justify="left")
    table.add_column("files", overflow="fold")
    grouped = [p for p in cohort.patients if p.cohort_files[0].grouping != "file"]
    for patient in grouped[:GROUPS_SHOWN]:
        table.add_row(" + ".join(_file_text(f) for f in patient.cohort_files))
    rest = len(grouped) - GROUPS_SHOWN
    if rest > 0:
        table.add_row(f"… {rest} more patient(s)")
    for relpath in ungrouped:
        table.add_row(f"[yellow]not grouped:[/yellow] {relpath} (one file, one patient)")
    return table


def _file_text(cfile) -> str:
    if cfile.views is None:
        return cfile.relpath
    return f"{cfile.relpath} ({'+'.join(v.value for v in cfile.views)})"


def _problem_table(title: str, problems: list[str]) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("problem", overflow="fold")
    for i, problem in enumerate(problems, start=1):
        table.add_row(str(i), problem)
    return table


def _counts(counts: dict[str, int]) -> str:
    """'2: 38, 1: 2' from {'2': 38, '1': 2}."""
    return ", ".join(f"{k}: {n}" for k, n in counts.items())


def _amounts(counts: dict[str, int]) -> str:
    """'7 residual, 5 non_residual' from {'residual': 7, 'non_residual': 5}."""
    return ", ".join(f"{n} {k}" for k, n in counts.items())
