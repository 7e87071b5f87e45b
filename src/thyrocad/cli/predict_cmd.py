"""`thyrocad predict`: diagnose studies (DICOM, PNG/JPG) with a model bundle."""

from __future__ import annotations

import csv
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import Progress

from thyrocad.cli.app import command, renamed

CSV_COLUMNS = (
    "path", "verdict", "probability", "threshold", "threshold_source", "train_sensitivity",
    "train_specificity", "fusion", "p_anterior", "p_posterior", "flags", "crop_boxes",
    "neck_field", "outputs", "notes", "error",
)  # fmt: skip
BED_VIEWS = ("anterior", "posterior", "unknown")
WHOLE_BODY = "from_whole_body"  # thyrocad.intake.FROM_WHOLE_BODY (not imported: --help speed)
PROGRESS_FROM = 3  # inputs from which a progress bar is shown

logger = logging.getLogger(__name__)


@dataclass
class Row:
    """One input's outcome: its diagnosis (or error) and the files written for it."""

    path: Path
    diagnosis: Any = None  # thyrocad.diagnosis.types.Diagnosis
    outputs: list[str] = field(default_factory=list)
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        data = {"path": str(self.path), "outputs": self.outputs, "error": self.error}
        if self.diagnosis is not None:
            data["diagnosis"] = self.diagnosis.to_dict()
        return data

    def csv_row(self) -> dict[str, str]:
        row = {"path": str(self.path), "outputs": ";".join(self.outputs), "error": self.error}
        d = self.diagnosis
        if d is None:
            return row
        op = d.operating_point
        by_view = {v.view: v.probability for v in d.views if v.probability is not None}
        row.update(
            verdict=d.verdict,
            probability=f"{d.probability:.6f}",
            threshold=f"{op.threshold:.6f}",
            threshold_source=op.source,
            train_sensitivity=_fmt(op.train_sensitivity),
            train_specificity=_fmt(op.train_specificity),
            fusion=d.fusion,
            p_anterior=_fmt(by_view.get("anterior")),
            p_posterior=_fmt(by_view.get("posterior")),
            flags=";".join(d.flags),
            crop_boxes=";".join(f"{v.view} {_box(v.crop_box)}" for v in d.views),
            neck_field=";".join(_neck_fields(d)),
            notes=";".join(d.notes),
        )
        return row


def _neck_fields(diagnosis: Any) -> list[str]:
    """'<view> rows a-b, cols c-d' of each view cut from a whole-body sweep."""
    return [f"{v.view} {_box(v.field_box)}" for v in diagnosis.views if WHOLE_BODY in v.flags]


def _box(box: tuple[int, int, int, int]) -> str:
    """'rows 10-65, cols 3-58' (inclusive) from an end-exclusive (row0, col0, row1, col1)."""
    return f"rows {box[0]}-{box[2] - 1}, cols {box[1]}-{box[3] - 1}"


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.6f}"


def collect_inputs(paths: list[Path]) -> tuple[list[Path], list[Row]]:
    """Files to diagnose: named files as given, folders searched recursively for DICOM/PNG/JPEG
    files (other files, hidden files and thyrocad's own DICOM results are skipped)."""
    from thyrocad.diagnosis.dicom_sr import is_result_file
    from thyrocad.errors import InputError
    from thyrocad.io.read import sniff

    files, missing = [], []
    for path in paths:
        if path.is_dir():
            for candidate in sorted(p for p in path.rglob("*") if p.is_file()):
                hidden = any(part.startswith(".") for part in candidate.relative_to(path).parts)
                if hidden or is_result_file(candidate):
                    continue
                try:
                    sniff(candidate)
                except InputError:
                    continue
                files.append(candidate)
        elif path.exists():
            files.append(path)
        else:
            missing.append(Row(path, error=f"FileAccessError: {path} does not exist"))
    return files, missing


class _Names:
    """Unique output stems for input files (same stem in two folders: -2, -3, ...)."""

    def __init__(self) -> None:
        self._seen: dict[str, int] = {}

    def __call__(self, path: Path) -> str:
        n = self._seen.get(path.stem, 0) + 1
        self._seen[path.stem] = n
        return path.stem if n == 1 else f"{path.stem}-{n}"


def parse_beds(values: list[str]) -> dict[str, tuple[float, float]]:
    """`--bed ROW,COL` (every view) or `--bed VIEW=ROW,COL` (repeatable) as a bed mapping;
    `ConfigError` for anything else."""
    from thyrocad.errors import ConfigError
    from thyrocad.intake import ALL_VIEWS, parse_bed

    beds: dict[str, tuple[float, float]] = {}
    for value in values:
        view, _, coords = value.rpartition("=")
        view = view.strip().lower() or ALL_VIEWS
        if view not in (*BED_VIEWS, ALL_VIEWS):
            raise ConfigError(
                f"--bed {value!r}: unknown view {view!r}; use ROW,COL or "
                f"{'/'.join(BED_VIEWS)}=ROW,COL"
            )
        parts = coords.split(",")
        if len(parts) != 2:
            raise ConfigError(f"--bed {value!r}: give ROW,COL (two numbers, original pixels)")
        if view in beds:
            raise ConfigError(f"--bed: the {view} view is given twice")
        beds[view] = parse_bed(*parts, what=f"--bed {value!r}")
    if ALL_VIEWS in beds and len(beds) > 1:
        raise ConfigError("--bed: give either ROW,COL for every view or one bed per view")
    return beds


def diagnose_file(
    service,
    path: Path,
    stem: str,
    heatmaps: Path | None,
    dicom_dir: Path | None,
    dicom: bool,
    beds: dict[str, tuple[float, float]] | None = None,
    strict: bool = False,
) -> Row:
    """Diagnose one file through the diagnosis service, writing the outputs asked for."""
    from thyrocad.diagnosis.service import Outputs

    outputs = Outputs(
        heatmaps=heatmaps, dicom=(dicom_dir or path.parent) if dicom else None, stem=stem
    )
    outcome = service.diagnose([path], outputs, beds=beds, strict=strict)
    return Row(path, outcome.diagnosis, [str(p) for p in outcome.files.values()])


def write_table(rows: list[Row], out: Path) -> None:
    """Write all rows as CSV or JSON (by the file suffix)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".json":
        out.write_text(json.dumps([r.to_dict() for r in rows], indent=2) + "\n")
        return
    with out.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(r.csv_row() for r in rows)


def _iterate(files: list[Path], console: Console) -> Iterator[Path]:
    if len(files) < PROGRESS_FROM:
        yield from files
        return
    with Progress(console=console, transient=True, disable=not console.is_terminal) as progress:
        task = progress.add_task("diagnosing", total=len(files))
        for path in files:
            yield path
            progress.advance(task)


@command()
def predict(
    model_dir: Annotated[Path, typer.Argument(help="Model bundle folder (from training).")],
    inputs: Annotated[
        list[Path], typer.Argument(help="DICOM / PNG / JPG files or folders (searched).")
    ],
    out: Annotated[
        Path | None, typer.Option("--out", help="Write all results to FILE.csv or FILE.json.")
    ] = None,
    heatmaps: Annotated[
        Path | None, typer.Option("--heatmaps", help="Write Grad-CAM overlay PNGs into DIR.")
    ] = None,
    threshold: Annotated[
        float | None,
        typer.Option("--threshold", min=0.0, max=1.0, help="Override the bundle's threshold."),
    ] = None,
    dicom: Annotated[
        bool, typer.Option("--dicom", help="Write DICOM SR + Secondary Captures next to inputs.")
    ] = False,
    dicom_out: Annotated[
        Path | None, typer.Option("--dicom-out", help="Write the DICOM results into DIR.")
    ] = None,
    backend: Annotated[
        str,
        typer.Option(
            "--backend",
            help="Engine for the network: auto (onnxruntime, else PyTorch with the reason "
            "logged), onnxruntime (MODEL_DIR/model.onnx, else an export cached once per "
            "bundle) or torch.",
        ),
    ] = "auto",
    onnx: Annotated[
        bool, typer.Option("--onnx", hidden=True, help="Old name of --backend onnxruntime.")
    ] = False,
    threads: Annotated[
        int, typer.Option("--threads", min=1, help="CPU threads for the network.")
    ] = min(4, os.cpu_count() or 1),
    bed: Annotated[
        list[str] | None,
        typer.Option(
            "--bed",
            metavar="[VIEW=]ROW,COL",
            help="Set the thyroid-bed centre (original pixels) instead of locating it: ROW,COL "
            "for every view, or anterior=ROW,COL / posterior=ROW,COL (repeat the option).",
        ),
    ] = None,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict",
            help="Refuse inputs outside the validated domain (not I-131, zoomed field, pixel "
            "size, field or counts out of range; docs/inputs.md).",
        ),
    ] = False,
) -> None:
    """Diagnose studies (DICOM, PNG/JPG, whole-body sweeps) with a model bundle.

    Diagnose each input study: per-view and fused probability of residual thyroid tissue and
    the verdict at the bundle's operating point, with the flags of anything outside the
    validated domain (e.g. not_i131). Whole-body sweeps are diagnosed on their neck field.
    Files that fail are reported (one line each) and skipped; the exit code is 1 if any
    failed, 2 if a --bed did not fit a file. Patient names and IDs are never printed.

    Example: thyrocad predict runs/bundle scans/ --out results.csv --heatmaps heatmaps/ --dicom
    """
    import torch

    from thyrocad.diagnosis.service import DiagnosisService
    from thyrocad.errors import ConfigError, ThyrocadError
    from thyrocad.io.privacy import describe_exception

    beds = parse_beds(bed or [])
    console = Console()
    torch.set_num_threads(threads)  # this process is ours: the library never sets it
    backend = renamed("onnxruntime" if onnx else None, "--onnx", backend, "--backend", "auto")
    service = DiagnosisService.from_bundle(
        model_dir, backend=backend, threads=threads, threshold=threshold
    )
    files, rows = collect_inputs(inputs)
    for row in rows:
        _print_row(console, row)
    names = _Names()
    bad_setting = False
    for path in _iterate(files, console):
        try:
            row = diagnose_file(
                service,
                path,
                names(path),
                heatmaps,
                dicom_out,
                dicom or dicom_out is not None,
                beds,
                strict,
            )
        except ConfigError as exc:  # a --bed that does not fit this file
            bad_setting = True
            row = Row(path, error=f"{type(exc).__name__}: {exc}")
        except ThyrocadError as exc:
            row = Row(path, error=f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # a bug, not a bad input: report it and go on with the rest
            logger.exception("unexpected error on %s", path)  # the traceback is redacted
            row = Row(path, error=f"unexpected {describe_exception(exc)} (please report)")
        rows.append(row)
        _print_row(console, row)
    if out is not None:
        write_table(rows, out)
        console.print(f"results: {out}")
    failed = sum(bool(r.error) for r in rows)
    console.print(f"{len(rows) - failed} diagnosed, {failed} failed")
    if bad_setting:
        raise typer.Exit(code=2)
    if failed or not rows:
        raise typer.Exit(code=1)


def _print_row(console: Console, row: Row) -> None:
    if row.error:
        console.print(f"failed {row.path}: {row.error}", style="red", soft_wrap=True, markup=False)
        return
    d = row.diagnosis
    views = ", ".join(f"{v.view} {v.probability:.3f}" for v in d.views if v.probability is not None)
    flags = f"  flags: {', '.join(d.flags)}" if d.flags else ""
    notes = f"  note: {'; '.join(d.notes)}" if d.notes else ""
    field = f"  neck field: {'; '.join(_neck_fields(d))}" if _neck_fields(d) else ""
    console.print(
        f"{row.path}: {d.verdict} p={d.probability:.3f} (threshold "
        f"{d.operating_point.threshold:.3f}; {views}){flags}{field}{notes}",
        soft_wrap=True,
        markup=False,
        highlight=False,
    )
