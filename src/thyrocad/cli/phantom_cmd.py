"""`thyrocad phantom`: write a synthetic I-131 neck cohort (DICOM or PNG) with ground truth."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from thyrocad.cli.app import busy, command


@command()
def phantom(
    out_dir: Annotated[Path, typer.Argument(help="Folder to write the cohort into.")],
    patients: Annotated[int, typer.Option("--patients", min=2, help="Number of patients.")] = 446,
    residual: Annotated[
        int, typer.Option("--residual", min=0, help="How many of them are residual.")
    ] = 346,
    seed: Annotated[int, typer.Option("--seed", help="Random seed of the cohort.")] = 0,
    difficulty: Annotated[
        str, typer.Option("--difficulty", help="A number >= 0, or easy / default / hard.")
    ] = "default",
    fmt: Annotated[
        str, typer.Option("--format", help="multiframe (one NM file, 2 frames), per-view, png.")
    ] = "multiframe",
    workers: Annotated[
        int | None, typer.Option("--workers", min=1, help="Processes (default: all CPUs).")
    ] = None,
    preview: Annotated[
        bool, typer.Option("--preview", help="Also write preview.png (example views).")
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Replace a cohort of other settings, or write among other files."
        ),
    ] = False,
) -> None:
    """Write a synthetic I-131 neck cohort (anterior + posterior views) with ground truth.

    Writes images/, labels.csv, ground_truth/ and cohort.json; see docs/phantom.md. A folder
    holding other files, or a cohort of other settings or format, is refused unless --force.

    Example: thyrocad phantom data/phantom --patients 446 --residual 346 --seed 0 --preview
    """
    from thyrocad.data.phantom import PhantomConfig, generate_cohort, parse_difficulty
    from thyrocad.data.phantom.cohort import FORMATS
    from thyrocad.data.phantom.preview import write_preview
    from thyrocad.errors import ConfigError

    console = Console()
    config = PhantomConfig(
        n_patients=patients, n_residual=residual, seed=seed, difficulty=parse_difficulty(difficulty)
    )
    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    _claim(out_dir, config.config_hash(), fmt, force)
    with busy(console, f"simulating {patients} patients"):
        summary = generate_cohort(out_dir, config, fmt=fmt, workers=workers)
    console.print(
        f"wrote {summary['n_patients']} patients ({summary['n_residual']} residual, "
        f"{summary['n_files']} files) to {out_dir} in {summary['seconds']:.1f} s"
    )
    if preview:
        path = write_preview(out_dir / "preview.png", config)
        console.print(f"preview: {path}")


def _claim(out_dir: Path, config_hash: str, fmt: str, force: bool) -> None:
    """Refuse, unless `force`, a folder of other files or a phantom cohort of other settings
    or format (its files would mix with the new ones)."""
    import json

    from thyrocad.data.phantom.cohort import MANIFEST_FILE
    from thyrocad.errors import OutputExistsError
    from thyrocad.files import claim_output_dir

    claim_output_dir(out_dir, "phantom", force=force)
    try:
        before = json.loads((out_dir / MANIFEST_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if (before.get("config_hash"), before.get("format")) != (config_hash, fmt) and not force:
        raise OutputExistsError(
            f"{out_dir} holds a phantom cohort of other settings or format; choose another "
            "folder, or pass --force to write over it"
        )
