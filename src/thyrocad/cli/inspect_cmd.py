"""`thyrocad inspect`: one line per scan file (views, size, spacing, counts, encoding)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from thyrocad.cli.app import command
from thyrocad.errors import InputError, NotDicomError

if TYPE_CHECKING:
    from thyrocad.study import Study


@command(name="inspect")
def inspect(
    paths: Annotated[
        list[Path], typer.Argument(help="DICOM files, PNG/JPEG exports, or folders (recursed).")
    ],
) -> None:
    """Show what thyrocad reads from each scan: views, size, spacing, counts per view, encoding.

    A view the file does not state is read from its name (PH0001_anterior.png). PNG/JPEG
    exports hold gray levels, not counts: their line says so and sums gray levels instead.

    Prints one line per file on stdout, with the neck field of a whole-body sweep and the
    input-domain flags (e.g. not_i131: Tc-99m; docs/inputs.md); a file that cannot be read
    gets one line with the error type and what to do, and the others are still shown. Files
    found in folders that are neither DICOM nor PNG/JPEG (by content, e.g. a README) are
    skipped and counted in the summary on stderr. Patient names and IDs are never shown.
    Exits with status 1 if any file failed or none was found.

    Example: thyrocad inspect scans/patient_001.dcm exports/
    """
    from thyrocad.intake import load_study

    console = Console(soft_wrap=True, highlight=False)
    shown = failed = skipped = 0
    for path, found_in_folder in _files(paths):
        if found_in_folder and _is_other_content(path):
            skipped += 1
            continue
        shown += 1
        try:
            line = _describe(load_study(path))
        except InputError as exc:
            failed += 1
            line = f"ERROR  {_error_text(exc, path)}"
        console.print(f"{path}  {line}", markup=False)
    summary = f"{shown} file(s), {failed} failed"
    if skipped:
        summary += f", {skipped} skipped (neither DICOM nor PNG/JPEG)"
    Console(stderr=True, highlight=False).print(summary, markup=False)
    if failed or not shown:
        raise typer.Exit(1)


def _files(paths: list[Path]) -> Iterator[tuple[Path, bool]]:
    """Each named path, and every non-hidden file under a named folder (flag True)."""
    for path in paths:
        if not path.is_dir():
            yield path, False
            continue
        for found in sorted(path.rglob("*")):
            hidden = any(part.startswith(".") for part in found.relative_to(path).parts)
            if found.is_file() and not hidden:
                yield found, True


def _is_other_content(path: Path) -> bool:
    """True for a file that is neither DICOM nor PNG/JPEG (other problems show when read)."""
    from thyrocad.io.read import sniff

    try:
        sniff(path)
    except NotDicomError:
        return True
    except InputError:
        return False
    return False


def _describe(study: Study) -> str:
    """Views, size, spacing, counts (an export: gray levels) per view, encoding; a sweep's
    neck field; the flags."""
    from thyrocad.intake import FROM_WHOLE_BODY
    from thyrocad.io.read import describe_pixels

    rows, cols = study.images[0].counts.shape
    views = "+".join(v.value for v in study.views)
    spacing = (
        "none" if study.pixel_spacing_mm is None else "{:g}x{:g} mm".format(*study.pixel_spacing_mm)
    )
    sums = " ".join(
        f"{im.view.value}={float(im.counts.sum(dtype='float64')):.0f}" for im in study.images
    )
    encoding = study.metadata.get("transfer_syntax")
    if encoding:  # DICOM: the values are counts
        line = f"{views}  {rows}x{cols}  spacing {spacing}  counts {sums}  {encoding}"
    else:
        export = f"{study.metadata['source_format']} export: {describe_pixels(study)}, not counts"
        line = f"{views}  {rows}x{cols}  spacing {spacing}  gray-level sum {sums}  {export}"
    fields = [im for im in study.images if FROM_WHOLE_BODY in im.flags]
    if fields:
        sweep = f"{study.metadata.get('rows', '?')}x{study.metadata.get('columns', '?')}"
        boxes = ", ".join(
            f"{im.view.value} rows {im.origin_rc[0]}-{im.origin_rc[0] + im.counts.shape[0] - 1}"
            for im in fields
        )
        line += f"  whole-body sweep {sweep}, neck field: {boxes}"
    flags = dict.fromkeys(f for im in study.images for f in im.flags if f != FROM_WHOLE_BODY)
    return line + (f"  flags: {'; '.join(flags)}" if flags else "")


def _error_text(exc: InputError, path: Path) -> str:
    """'ErrorType: message' on one line, without the path the line already starts with."""
    message = str(exc).removeprefix(f"{path}: ")
    return f"{type(exc).__name__}: {' '.join(message.split())}"
