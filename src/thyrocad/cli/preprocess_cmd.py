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
        str, typer.Option("--preset", help="Pipeline preset: default, paper or grabcut_bed.")
    ] = "default",
    config_file: Annotated[
        Path | None,
        typer.Option("--config", help="Pipeline config JSON (overrides --preset).", exists=True),
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Only the first N files.")
    ] = None,
) -> None:
    """Run the preprocessing pipeline on a cohort and write stage strips + index.html.

    Preprocess every image of a cohort; write one PNG strip of the stages per view and an
    index.html listing them with their flags (the analogue of the paper's Figs. 2 and 4).

    Example: thyrocad preprocess data/phantom --out runs/preprocess --preset paper --limit 20
    """
    from thyrocad.data.cohort import load_cohort
    from thyrocad.errors import InputError, PreprocessError
    from thyrocad.io.read import read_study
    from thyrocad.preprocess import Pipeline, PipelineConfig, preset
    from thyrocad.preprocess.strip import StripEntry, bed_summary, write_index, write_strip

    console = Console()
    config = (
        PipelineConfig.from_json(config_file.read_text(encoding="utf-8"))
        if config_file
        else preset(preset_name)
    )
    cohort = load_cohort(cohort_dir, read=False, require_both_classes=False)
    files = [f for p in cohort.patients for f in p.cohort_files][:limit]
    pipeline = Pipeline(config)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(config.to_json(), encoding="utf-8")
    entries: list[StripEntry] = []
    for cfile in track(files, description="preprocessing", console=console):
        try:
            study = read_study(cfile.path, view=cfile.view_hint)
            for view, result in pipeline.run_study(study):
                name = f"strips/{_safe_stem(cfile.relpath)}_{view.value}.png"
                write_strip(out / name, result, config.output)
                bed = bed_summary(result)
                entries.append(StripEntry(cfile.relpath, view.value, name, result.flags, bed=bed))
        except (InputError, PreprocessError) as exc:
            entries.append(StripEntry(cfile.relpath, "", "", (), f"{type(exc).__name__}: {exc}"))
    index = write_index(out / "index.html", entries, f"Preprocessing ({config.name})")
    n_flagged = sum(1 for e in entries if e.flags)
    n_failed = sum(1 for e in entries if e.error)
    console.print(f"{len(entries)} views: {n_flagged} flagged, {n_failed} failed. Open {index}")


def _safe_stem(relpath: str) -> str:
    """A flat file name from a relative path ('a/b c.dcm' -> 'a__b_c')."""
    stem = relpath.rsplit(".", 1)[0] if "." in relpath.rsplit("/", 1)[-1] else relpath
    return re.sub(r"[^A-Za-z0-9._-]+", "_", stem.replace("/", "__"))
