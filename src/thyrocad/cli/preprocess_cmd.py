"""`thyrocad preprocess`: run the preprocessing pipeline on a cohort and write stage strips."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import track

from thyrocad.cli.app import command


@command()
def preprocess(
    cohort_dir: Annotated[Path, typer.Argument(help="Cohort folder: labels.csv or class folders.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for the strips and index.html.")],
    preset_name: Annotated[
        str,
        typer.Option(
            "--preset", help="Pipeline preset: default, paper, grabcut_bed or recommended."
        ),
    ] = "default",
    config_file: Annotated[
        Path | None,
        typer.Option("--config", help="Pipeline config JSON (overrides --preset).", exists=True),
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Only the first N files.")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Write into a non-empty folder that is not thyrocad's.")
    ] = False,
) -> None:
    """Run the preprocessing pipeline on a cohort and write stage strips + index.html.

    Preprocess every image of a cohort; write one PNG strip of the stages per view and an
    index.html listing them with their flags and a legend (the analogue of the paper's Figs. 2
    and 4). Bed centres set in labels.csv (bed_row,bed_col; docs/inputs.md) are used. Refuses
    a non-empty --out folder that thyrocad did not write, unless --force.

    Example: thyrocad preprocess data/phantom --out runs/preprocess --preset paper --limit 20
    """
    from thyrocad.data.cohort import load_cohort
    from thyrocad.errors import ConfigError, InputError, PreprocessError
    from thyrocad.files import claim_output_dir
    from thyrocad.intake import field_beds, load_study
    from thyrocad.preprocess import Pipeline, PipelineConfig, preset
    from thyrocad.preprocess.strip import (
        StripEntry,
        bed_summary,
        common_flags,
        write_index,
        write_strip,
    )

    console = Console()
    config = (
        PipelineConfig.from_json(config_file.read_text(encoding="utf-8"))
        if config_file
        else preset(preset_name)
    )
    cohort = load_cohort(cohort_dir, read=False, require_both_classes=False)
    files = [f for p in cohort.patients for f in p.cohort_files][:limit]
    pipeline = Pipeline(config)
    claim_output_dir(out, "preprocess", force=force)
    (out / "config.json").write_text(config.to_json(), encoding="utf-8")
    entries: list[StripEntry] = []
    for cfile in track(
        files,
        description="preprocessing",
        console=console,
        transient=True,
        disable=not console.is_terminal,
    ):
        try:
            study = load_study(cfile.path, view=cfile.view_hint)
            results = pipeline.run_study(study, field_beds(study, cfile.beds))
            for image, (view, result) in zip(study.images, results, strict=True):
                name = f"strips/{_safe_stem(cfile.relpath)}_{view.value}.png"
                write_strip(out / name, result, config.output)
                flags = tuple(dict.fromkeys((*image.flags, *result.flags)))
                bed = bed_summary(result)
                entries.append(StripEntry(cfile.relpath, view.value, name, flags, bed=bed))
        except (ConfigError, InputError, PreprocessError) as exc:
            entries.append(StripEntry(cfile.relpath, "", "", (), f"{type(exc).__name__}: {exc}"))
    index = write_index(out / "index.html", entries, f"Preprocessing ({config.name})")
    common = common_flags(entries)
    n_flagged = sum(1 for e in entries if set(e.flags) - set(common))
    n_failed = sum(1 for e in entries if e.error)
    on_all = f" (every view: {', '.join(common)})" if common else ""
    console.print(
        f"{len(entries)} views{on_all}: {n_flagged} with other flags, {n_failed} failed. "
        f"Open {index}",
        soft_wrap=True,
    )


def _safe_stem(relpath: str) -> str:
    """A flat file name from a relative path ('a/b c.dcm' -> 'a__b_c')."""
    stem = relpath.rsplit(".", 1)[0] if "." in relpath.rsplit("/", 1)[-1] else relpath
    return re.sub(r"[^A-Za-z0-9._-]+", "_", stem.replace("/", "__"))
