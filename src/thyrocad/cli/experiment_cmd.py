"""`thyrocad experiment`: the paper's protocol on a cohort, resumable, with live progress."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from thyrocad.cli.app import command, renamed
from thyrocad.cli.tables import print_markdown
from thyrocad.experiment.command import option_value
from thyrocad.experiment.config import ExperimentConfig
from thyrocad.preprocess import PRESETS as PREPROCESS_PRESETS

# The CLI's defaults are the config's, never a copy; read from the dataclass fields so that
# importing the CLI does not validate a config (which would load every backbone's library).
DEFAULTS = SimpleNamespace(**{f.name: f.default for f in dataclasses.fields(ExperimentConfig)})


# options shared by the commands that run an experiment for the user (demo, ablate)
WorkersOption = Annotated[
    int | None, typer.Option(help="Local worker processes for the runs (default: CPU cores).")
]
AllowSmallOption = Annotated[
    bool,
    typer.Option(
        "--allow-small",
        help="Run although a test part holds fewer than 5 patients of a class.",
    ),
]
ForceOption = Annotated[
    bool,
    typer.Option(
        "--force", help="Use a non-empty --out folder that is not thyrocad's (files stay)."
    ),
]


def _names(text: str) -> tuple[str, ...]:
    """'a,b' -> ('a', 'b'); '' or 'none' -> ()."""
    if text.strip().lower() in ("", "none"):
        return ()
    return tuple(n.strip() for n in text.split(",") if n.strip())


def model_weights(pairs: list[str] | None) -> tuple[tuple[str, str], ...]:
    """['resnet18=/w/r18.pth'] -> (('resnet18', '/w/r18.pth'),), files made absolute."""
    from thyrocad.errors import ConfigError

    weights = []
    for pair in pairs or ():
        model, sep, file = pair.partition("=")
        if not sep or not model.strip() or not file.strip():
            raise ConfigError(
                f"--weights takes MODEL=FILE (e.g. resnet18=resnet18.pth), got {pair!r}"
            )
        weights.append((model.strip(), str(Path(file.strip()).expanduser().absolute())))
    return tuple(weights)


def run_with_progress(
    cohort_dir: Path, out: Path, config, backend, console: Console, force: bool = False
):
    """Run (or resume) the experiment under a Rich progress bar that leaves no text behind
    (on success or error); say up front which models cannot run; return the outcome."""
    from thyrocad.experiment.command import experiment_command
    from thyrocad.experiment.run import run_experiment

    in_flight: list[str] = []
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("runs ·"),
        TimeElapsedColumn(),
        TextColumn("elapsed ·"),
        TimeRemainingColumn(),
        TextColumn("left"),
    )
    with Progress(
        *columns, console=console, transient=True, disable=not console.is_terminal
    ) as progress:
        task = progress.add_task("checking the cohort, drawing splits, preprocessing", total=None)

        def describe() -> str:
            shown = ", ".join(in_flight[:3]) + (" …" if len(in_flight) > 3 else "")
            return f"running {shown}" if shown else "writing outputs"

        def on_plan(plan, n_done: int) -> None:
            for entry in plan.entries:
                if not entry.ran:
                    progress.console.print(
                        f"[yellow]unavailable:[/yellow] {entry.name} will not run: {entry.reason}",
                        highlight=False,
                    )
            progress.update(task, total=len(plan.specs), completed=n_done)
            progress.update(task, description="preprocessing the cohort (cached on disk)")

        def on_start(spec) -> None:
            in_flight.append(f"{spec.model} split {spec.split}")
            progress.update(task, description=describe())

        def on_done(result) -> None:
            label = f"{result.model} split {result.split}"
            if label in in_flight:
                in_flight.remove(label)
            progress.update(task, advance=1, description=describe())

        outcome = run_experiment(
            cohort_dir,
            out,
            config,
            backend,
            command=experiment_command(cohort_dir, out, config),
            on_plan=on_plan,
            on_start=on_start,
            on_done=on_done,
            force=force,
        )
    return outcome


def print_outcome(console: Console, outcome) -> None:
    """The table (split to fit the terminal) and where the outputs are."""
    print_markdown(console, outcome.table_markdown)
    console.print(
        f"{outcome.n_runs} runs ({outcome.n_resumed} reused from an earlier invocation), "
        f"{outcome.wall_s:.0f} s. Results set {outcome.settings_hash}; report: "
        f"{outcome.out_dir / 'report.html'} (all sets: {outcome.out_dir.parent / 'index.html'})",
        soft_wrap=True,
    )


@command()
def experiment(
    cohort_dir: Annotated[Path, typer.Argument(help="Labelled cohort folder.")],
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o", help="Results folder; each settings set gets its own subfolder."
        ),
    ],
    models: Annotated[
        str,
        typer.Option(
            help="Comma-separated backbones ('none' for baselines only).  "
            f"[default: {', '.join(DEFAULTS.models)}]",
            show_default=False,
        ),
    ] = option_value(DEFAULTS.models),
    baselines: Annotated[
        str, typer.Option(help="Comma-separated baselines or 'none'.")
    ] = option_value(DEFAULTS.baselines),
    recipes: Annotated[
        str,
        typer.Option(
            help="Comma-separated recipes run as rows of their own (own preprocessing, backbone, "
            "mode, training): recommended, paper_pipeline, ablate-... or 'none'."
        ),
    ] = option_value(DEFAULTS.recipes),
    splits: Annotated[
        int, typer.Option(help="Number of random patient-level splits.")
    ] = DEFAULTS.n_splits,
    test_fraction: Annotated[
        float, typer.Option(help="Share of each class in the test set.")
    ] = DEFAULTS.test_fraction,
    epochs: Annotated[int, typer.Option(help="Training epochs per run.")] = DEFAULTS.epochs,
    mode: Annotated[
        str, typer.Option(help="head | last | full: which layers train.")
    ] = DEFAULTS.mode,
    reference: Annotated[
        str, typer.Option(help="Model the others are tested against.")
    ] = DEFAULTS.reference,
    workers: Annotated[int, typer.Option(help="Local worker processes for independent runs.")] = 1,
    ray: Annotated[
        str | None, typer.Option(help="Run on a Ray cluster: 'auto' or its address.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the splits and of training.")] = DEFAULTS.seed,
    view_fusion: Annotated[
        str, typer.Option(help="Patient probability from its views: mean|max|anterior|posterior.")
    ] = DEFAULTS.view_fusion,
    init: Annotated[
        str,
        typer.Option(
            help="imagenet | scratch | imagenet-or-scratch (scratch where weights are missing)."
        ),
    ] = DEFAULTS.init,
    weights: Annotated[
        list[str] | None,
        typer.Option(
            "--weights",
            metavar="MODEL=FILE",
            help="Initial weights of MODEL from a state_dict file (e.g. resnet18=resnet18-"
            "f37072fd.pth for an offline machine); repeatable; overrides --init for MODEL.",
        ),
    ] = None,
    preset_name: Annotated[
        str,
        typer.Option("--preset", help=f"Preprocessing preset: {' | '.join(PREPROCESS_PRESETS)}."),
    ] = DEFAULTS.preprocess,
    preprocess: Annotated[
        str | None, typer.Option("--preprocess", hidden=True, help="Old name of --preset.")
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Training batch size.")] = DEFAULTS.batch_size,
    lr: Annotated[float, typer.Option(help="Adam learning rate.")] = DEFAULTS.lr,
    weight_decay: Annotated[float, typer.Option(help="Adam weight decay.")] = DEFAULTS.weight_decay,
    device: Annotated[
        str, typer.Option(help="Training device: auto (CUDA when present) | cpu | cuda.")
    ] = DEFAULTS.device,
    threads: Annotated[
        int | None, typer.Option(help="torch/OpenCV threads per run (default: cores / workers).")
    ] = None,
    operating_point: Annotated[
        str,
        typer.Option(
            help="CNN thresholds: argmax (the paper), oof-youden, oof-sensitivity:T "
            "(out-of-fold, inner k-fold) or train-youden (optimistic; for comparison)."
        ),
    ] = DEFAULTS.operating_point,
    inner_folds: Annotated[
        int, typer.Option(help="Folds of the out-of-fold operating points.")
    ] = DEFAULTS.inner_folds,
    allow_small: AllowSmallOption = DEFAULTS.allow_small,
    test_cohort: Annotated[
        Path | None,
        typer.Option(help="External labelled cohort every split's model is also scored on."),
    ] = None,
    batched_splits: Annotated[
        bool,
        typer.Option(
            "--batched-splits",
            help="Train the splits of a full/last-mode CNN as one batched computation (for a "
            "GPU; equal to split by split within float tolerance, a killed run redoes the batch).",
        ),
    ] = DEFAULTS.batched_splits,
    force: ForceOption = False,
) -> None:
    """Run the paper's experiment: every model on the same stratified patient-level splits.

    Writes predictions.csv, table.csv, table.md, stats.json, figures and a self-contained
    report.html into --out/<settings hash>/, links --out/latest to it and lists every results
    set in --out/index.html: other settings never overwrite earlier results. Finished runs are
    recorded one by one: re-running the same command after an interruption skips them. A
    reference model that cannot run (no ImageNet weights offline) stops the experiment before
    it starts, with the remedies.

    Example: thyrocad experiment data/cohort --out results --splits 10 --epochs 80 --workers 2
    """
    from thyrocad.experiment.execute import Backend

    console = Console()
    preset_name = renamed(preprocess, "--preprocess", preset_name, "--preset", DEFAULTS.preprocess)
    config = ExperimentConfig(
        models=_names(models),
        baselines=_names(baselines),
        n_splits=splits,
        test_fraction=test_fraction,
        epochs=epochs,
        mode=mode,
        reference=reference,
        seed=seed,
        view_fusion=view_fusion,
        batch_size=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        preprocess=preset_name,
        init=init,
        device=device,
        operating_point=operating_point,
        inner_folds=inner_folds,
        allow_small=allow_small,
        test_cohort=str(test_cohort.absolute()) if test_cohort else "",
        weights=model_weights(weights),
        recipes=_names(recipes),
        batched_splits=batched_splits,
    )
    backend = Backend(workers=max(1, workers), ray_address=ray, threads_per_run=threads)
    outcome = run_with_progress(cohort_dir, out, config, backend, console, force=force)
    print_outcome(console, outcome)
