"""`thyrocad ablate`: the ablation study of the paper's pipeline (docs/experiment.md)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from thyrocad.cli.app import busy, command
from thyrocad.cli.experiment_cmd import AllowSmallOption, ForceOption, WorkersOption


@command()
def ablate(
    cohort_dir: Annotated[
        Path | None,
        typer.Argument(help="Labelled cohort folder (default: the default synthetic cohort)."),
    ] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Results folder.")] = Path(
        "thyrocad-ablation"
    ),
    splits: Annotated[int, typer.Option(help="Number of random patient-level splits.")] = 10,
    seed: Annotated[int, typer.Option(help="Seed of the splits and of training.")] = 0,
    device: Annotated[str, typer.Option(help="Training device: auto | cpu | cuda.")] = "auto",
    workers: WorkersOption = None,
    allow_small: AllowSmallOption = False,
    force: ForceOption = False,
) -> None:
    """Measure what each step of the paper's pipeline costs: one factor at a time.

    One experiment on the same splits: the paper's pipeline (EfficientNet-Lite0, head mode;
    the reference), variants that change one of its settings (crop size, equalization, GrabCut,
    count transform, input size, backbone), the recommended recipe and variants of it (crop,
    upsampling, equalization, GrabCut, counts, mode), and the peak and uptake-ratio observers.
    Prints the ablation table (mean (SD) AUC, difference from the paper's pipeline with the
    corrected resampled t-test, splits where the paired DeLong test gave p < 0.05) and writes it
    as ablation.md beside the experiment's report. Resumable like `thyrocad experiment`.

    Example: thyrocad ablate --splits 5 --out thyrocad-ablation
    """
    from thyrocad.cli.experiment_cmd import run_with_progress
    from thyrocad.cli.tables import print_markdown
    from thyrocad.data.phantom import ensure_default_cohort
    from thyrocad.experiment.ablation import ablation_config, ablation_markdown
    from thyrocad.experiment.execute import Backend
    from thyrocad.files import write_text_atomic

    console = Console()
    if cohort_dir is None:
        with busy(console, "Generating the default synthetic cohort (first run only)"):
            cohort_dir = ensure_default_cohort()
    config = ablation_config(n_splits=splits, seed=seed, device=device, allow_small=allow_small)
    backend = Backend(workers=workers or os.cpu_count() or 1)
    outcome = run_with_progress(cohort_dir, out, config, backend, console, force=force)
    table = ablation_markdown(outcome.aggregate, outcome.wall_times)
    write_text_atomic(outcome.out_dir / "ablation.md", table)
    print_markdown(console, table)
    console.print(f"ablation table: {outcome.out_dir / 'ablation.md'}")
