"""`thyrocad train`: fine-tune a backbone on a labelled cohort and write a model bundle."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from thyrocad.cli.app import busy, command, renamed


@command(name="train")
def train_command(
    cohort_dir: Annotated[Path, typer.Argument(help="Cohort folder: labels.csv or class folders.")],
    out: Annotated[Path, typer.Option("--out", help="Model bundle folder to write.")],
    model: Annotated[
        str,
        typer.Option(
            "--model",
            help="resnet18, squeezenet1_1, squeezenet1_0, shufflenet_v2_x1_0, efficientnet_lite0.",
        ),
    ] = "resnet18",
    mode: Annotated[
        str, typer.Option("--mode", help="head (frozen backbone), last (last stage), full.")
    ] = "head",
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Training epochs.")] = 80,
    init: Annotated[
        str,
        typer.Option(
            "--init", help="imagenet (weights from the hub cache or --weights) or scratch."
        ),
    ] = "imagenet",
    weights: Annotated[
        str | None,
        typer.Option(
            "--weights",
            metavar="FILE",
            help="Initial weights from a state_dict file (MODEL=FILE also accepted), e.g. "
            "torchvision's resnet18-f37072fd.pth on an offline machine.",
        ),
    ] = None,
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")] = "auto",
    seed: Annotated[int, typer.Option("--seed", help="Random seed of the run.")] = 0,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Batch size.")] = 32,
    lr: Annotated[float, typer.Option("--lr", help="Adam learning rate.")] = 1e-5,
    val_fraction: Annotated[
        float, typer.Option("--val-fraction", help="Share of patients held out for val curves.")
    ] = 0.0,
    target_sensitivity: Annotated[
        float | None,
        typer.Option(
            "--target-sensitivity",
            help="Threshold rule: reach this sensitivity on training data (default: Youden's J).",
        ),
    ] = None,
    preset_name: Annotated[
        str, typer.Option("--preset", help="Preprocessing preset: default or paper.")
    ] = "default",
    bf16: Annotated[bool, typer.Option("--bf16", help="bf16 autocast (CUDA only).")] = False,
    channels_last: Annotated[
        bool, typer.Option("--channels-last", help="Channels-last memory format (CUDA only).")
    ] = False,
    allow_download: Annotated[
        bool,
        typer.Option(
            "--allow-download/--offline",
            help="Let torchvision download missing ImageNet weights into the hub cache "
            "(--offline: use only local files).",
        ),
    ] = True,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue from the checkpoint in OUT/checkpoint.")
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Replace a bundle in --out, or write into a folder of other files."
        ),
    ] = False,
) -> None:
    """Fine-tune a backbone on a labelled cohort and write a model bundle.

    Train a classifier (paper settings: Adam 1e-5, weight decay 1e-5, 80 epochs, balanced
    sampling) on every view of every patient, pick the decision threshold on the training data
    and write a model bundle (weights, configs, data hash, history + plot, threshold). An
    existing bundle in --out, or a folder of other files, is refused unless --force.

    Example: thyrocad train data/phantom --model resnet18 --out models/r18 --mode head --epochs 80
    """
    from thyrocad.training import TrainConfig

    console = Console()
    config = TrainConfig(
        model=model,
        weights=initial_weights(model, init, weights),
        mode=mode,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        seed=seed,
        device=device,
        bf16=bf16,
        channels_last=channels_last,
        val_fraction=val_fraction,
        threshold_rule="youden" if target_sensitivity is None else "sensitivity",
        threshold_target=0.95 if target_sensitivity is None else target_sensitivity,
        allow_download=allow_download,
    )
    claim_bundle_dir(out, force=force)
    _train(console, cohort_dir, out, config, preset_name, resume)


def initial_weights(model: str, init: str, weights: str | None) -> str:
    """`TrainConfig.weights` from --init and --weights (a file, or MODEL=FILE); the old
    `--weights imagenet|none` still works, with a deprecation line."""
    from thyrocad.errors import ConfigError

    if weights is not None and weights.lower() in ("imagenet", "none"):
        new = "imagenet" if weights.lower() == "imagenet" else "scratch"
        init = renamed(new, f"--weights {weights}", init, f"--init {new}", "imagenet")
        weights = None
    if init not in ("imagenet", "scratch"):
        raise ConfigError(f"--init must be imagenet or scratch, got {init!r}")
    if weights is None:
        return "none" if init == "scratch" else "imagenet"
    if init == "scratch":
        raise ConfigError("--weights gives the initial weights; leave out --init scratch")
    named, sep, file = weights.partition("=")
    if sep and named != model:
        raise ConfigError(f"--weights {weights}: the file is for {named}, but --model is {model}")
    return file if sep else weights


def claim_bundle_dir(out: Path, *, force: bool) -> None:
    """Refuse, unless `force`, an --out that holds a model bundle (of any model) or files that
    are not thyrocad's; both before anything is trained."""
    from thyrocad.bundle.format import MANIFEST
    from thyrocad.errors import OutputExistsError
    from thyrocad.files import claim_output_dir

    if (out / MANIFEST).is_file() and not force:
        raise OutputExistsError(
            f"{out} already holds a model bundle; choose another --out, or pass --force to "
            "replace it"
        )
    claim_output_dir(out, "bundle", force=force)


def _train(
    console: Console, cohort_dir: Path, out: Path, config, preset_name: str, resume: bool
) -> None:
    from thyrocad.data.cohort import load_cohort
    from thyrocad.training.workflow import train_bundle

    cohort = load_cohort(cohort_dir, read=False)
    console.print(f"{config.model} ({config.mode}): {len(cohort.patients)} patients")

    def show(record) -> None:
        val_part = (
            f"  val loss {record.val_loss:.4f} acc {record.val_acc:.3f}"
            if record.val_loss is not None
            else ""
        )
        console.print(
            f"epoch {record.epoch:>3}/{config.epochs}  loss {record.train_loss:.4f} "
            f"acc {record.train_acc:.3f}{val_part}  ({record.seconds:.2f} s)"
        )

    with busy(console, f"preprocessing {len(cohort.patients)} patients"):
        made = train_bundle(
            cohort, config, out, preprocess=preset_name, resume=resume, on_epoch=show
        )
    console.print(
        f"{made.n_train_views} training views"
        + (f", {made.n_val_views} validation views" if made.n_val_views else "")
        + (f", {made.n_unusable_views} unusable views left out" if made.n_unusable_views else "")
    )
    _summary(console, made.threshold, out)


def _summary(console: Console, t, out: Path) -> None:
    table = Table(title="Decision threshold (chosen on training data)")
    for column in ("rule", "threshold", "sensitivity", "specificity"):
        table.add_column(column)
    table.add_row(t.rule, f"{t.value:.4f}", f"{t.sensitivity:.3f}", f"{t.specificity:.3f}")
    console.print(table)
    console.print(f"model bundle written to {out}")
