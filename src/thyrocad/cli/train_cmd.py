"""`thyrocad train`: fine-tune a backbone on a labelled cohort and write a model bundle."""

from __future__ import annotations

import dataclasses
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
    recipe_name: Annotated[
        str | None,
        typer.Option(
            "--recipe",
            help="recommended (the default: small_cnn from scratch on small native-resolution "
            "crops) or paper (ResNet-18, head mode, Adam 1e-5, 80 epochs: the paper's; the "
            "default once --model or a --preset other than recommended is given). Options "
            "given below replace the recipe's settings.",
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            help="small_cnn, resnet18, squeezenet1_1, squeezenet1_0, shufflenet_v2_x1_0, "
            "efficientnet_lite0.",
        ),
    ] = None,
    mode: Annotated[
        str | None, typer.Option("--mode", help="head (frozen backbone), last (last stage), full.")
    ] = None,
    epochs: Annotated[int | None, typer.Option("--epochs", min=1, help="Training epochs.")] = None,
    init: Annotated[
        str | None,
        typer.Option(
            "--init", help="imagenet (weights from the hub cache or --weights) or scratch."
        ),
    ] = None,
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
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", min=1, help="Batch size.")
    ] = None,
    lr: Annotated[float | None, typer.Option("--lr", help="Adam learning rate.")] = None,
    weight_decay: Annotated[
        float | None, typer.Option("--weight-decay", help="Adam weight decay.")
    ] = None,
    val_fraction: Annotated[
        float, typer.Option("--val-fraction", help="Share of patients held out for val curves.")
    ] = 0.0,
    operating_point: Annotated[
        str,
        typer.Option(
            "--operating-point",
            help="How the threshold is chosen: argmax, oof-youden, oof-sensitivity:T or "
            "train-youden (optimistic). Default: oof-youden in head mode, argmax otherwise.",
        ),
    ] = "auto",
    inner_folds: Annotated[
        int, typer.Option("--inner-folds", min=2, help="Folds of the out-of-fold rules.")
    ] = 5,
    target_sensitivity: Annotated[
        float | None,
        typer.Option(
            "--target-sensitivity",
            hidden=True,
            help="Old form of --operating-point oof-sensitivity:T.",
        ),
    ] = None,
    preset_name: Annotated[
        str | None,
        typer.Option(
            "--preset",
            help="Preprocessing preset: recommended, default, paper or grabcut_bed (default: "
            "the recipe's).",
        ),
    ] = None,
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
    """Train a classifier on a labelled cohort and write a model bundle.

    By default the recommended recipe (docs/training.md): small_cnn from scratch in full mode
    on 60 mm crops at 32 x 32 windowed against the neck's background around the bed (log
    counts, no equalization, no GrabCut), Adam 1e-3, 20 epochs, balanced
    sampling; --recipe paper (or --model / --preset paper) trains as the paper did: ResNet-18
    (ImageNet), head mode, Adam 1e-5, weight decay 1e-5, 80 epochs. Every view of every patient
    is a training image; the decision threshold follows --operating-point (in head mode by
    default on out-of-fold predictions of an inner 5-fold). The bundle holds weights, configs,
    data hash, history + plot and threshold. An existing bundle in --out, or a folder of other
    files, is refused unless --force.

    Example: thyrocad train data/phantom --out models/recommended
    """
    from thyrocad.training.recipes import train_recipe

    console = Console()
    old_point = None if target_sensitivity is None else f"oof-sensitivity:{target_sensitivity:g}"
    operating_point = renamed(
        old_point,
        "--target-sensitivity T",
        operating_point,
        "--operating-point oof-sensitivity:T",
        "auto",
    )
    chosen = {
        "model": model, "mode": mode, "epochs": epochs, "lr": lr, "batch_size": batch_size,
        "weight_decay": weight_decay,
    }  # fmt: skip
    if mode not in (None, "full"):
        chosen.update(flip=False, shift_px=0)  # a recipe's augmentation needs 'full' mode
    recipe = train_recipe(recipe_name, model, preset_name)
    base = recipe.train
    named = model or base.model
    if init is not None or weights is not None or named != base.model:
        chosen["weights"] = initial_weights(named, init or "imagenet", weights)
    config = dataclasses.replace(
        base,
        **{k: v for k, v in chosen.items() if v is not None},
        seed=seed,
        device=device,
        bf16=bf16,
        channels_last=channels_last,
        val_fraction=val_fraction,
        operating_point=operating_point,
        inner_folds=inner_folds,
        allow_download=allow_download,
    )
    claim_bundle_dir(out, force=force)
    console.print(f"recipe {recipe.name}: {recipe.summary}")
    _train(console, cohort_dir, out, config, preset_name or recipe.pipeline, resume)


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


def _train(console: Console, cohort_dir: Path, out: Path, config, preprocess, resume: bool) -> None:
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
            cohort, config, out, preprocess=preprocess, resume=resume, on_epoch=show
        )
    console.print(
        f"{made.n_train_views} training views"
        + (f", {made.n_val_views} validation views" if made.n_val_views else "")
        + (f", {made.n_unusable_views} unusable views left out" if made.n_unusable_views else "")
    )
    _summary(console, made.threshold, out)


def _summary(console: Console, t, out: Path) -> None:
    table = Table(title=f"Decision threshold ({t.rule}; chosen {_SOURCES.get(t.source, t.source)})")
    for column in ("threshold", "on", "sensitivity", "specificity"):
        table.add_column(column)
    table.add_row(f"{t.value:.4f}", "training patients", _num(t.sensitivity), _num(t.specificity))
    if t.k:
        table.add_row(
            "", f"out of fold ({t.k} folds)", _num(t.oof_sensitivity), _num(t.oof_specificity)
        )
    console.print(table)
    if t.indeterminate:
        low, high = t.indeterminate
        console.print(f"indeterminate band (needs a physician's read): {low:.4f} to {high:.4f}")
    if t.source == "training":
        console.print("the threshold was chosen on the training predictions: optimistic")
    console.print(f"model bundle written to {out}")


_SOURCES = {
    "argmax": "as the network's argmax",
    "out_of_fold": "on out-of-fold predictions",
    "training": "on the training predictions",
}


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
