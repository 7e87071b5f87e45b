"""The two cohort layouts, read into rows: a folder with `labels.csv`, or class folders."""

from __future__ import annotations

import csv
import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from thyrocad.data.cohort.model import parse_label
from thyrocad.errors import ConfigError
from thyrocad.intake import ALL_VIEWS, parse_bed
from thyrocad.io.names import view_from_name
from thyrocad.study import View

LABELS_FILE = "labels.csv"
REQUIRED_COLUMNS = ("path", "label", "patient_id")
VIEW_COLUMN = "view"
BED_COLUMNS = {  # key of Row.beds -> (row column, col column): thyroid-bed centres set by hand
    ALL_VIEWS: ("bed_row", "bed_col"),
    "anterior": ("bed_row_anterior", "bed_col_anterior"),
    "posterior": ("bed_row_posterior", "bed_col_posterior"),
}
_KNOWN_COLUMNS = (
    *REQUIRED_COLUMNS,
    VIEW_COLUMN,
    *(c for pair in BED_COLUMNS.values() for c in pair),
)
_VIEW_ALIASES = {
    "anterior": View.ANTERIOR,
    "ant": View.ANTERIOR,
    "a": View.ANTERIOR,
    "posterior": View.POSTERIOR,
    "post": View.POSTERIOR,
    "p": View.POSTERIOR,
}


# How a file was assigned to its patient (`Row.grouping`).
GROUPINGS = {
    "csv": "patient_id column of labels.csv",
    "name": "file name before the view token",
    "folder": "patient folder",
    "file": "one file, one patient (no view token in the name)",
}


@dataclass
class Row:
    """One file entry of either layout; `line` is the CSV line (None for folder layouts);
    `grouping` says how the file was assigned to its patient (a key of `GROUPINGS`)."""

    line: int | None
    patient_id: str
    label: int | None
    relpath: str
    view_hint: View | None = None
    attributes: dict[str, str] = field(default_factory=dict)
    beds: dict[str, tuple[float, float]] = field(default_factory=dict)  # by BED_COLUMNS key
    grouping: str = "csv"


def where(rows: Iterable[Row]) -> str:
    """Where some rows come from: 'labels.csv line(s) 3, 7' or their relative paths."""
    rows = list(rows)
    lines = sorted({r.line for r in rows if r.line is not None})
    if lines:
        word = "line" if len(lines) == 1 else "lines"
        return f"{LABELS_FILE} {word} {', '.join(map(str, lines))}"
    return ", ".join(sorted({r.relpath for r in rows}))


def csv_rows(root: Path) -> tuple[list[Row], list[str]]:
    """Rows of labels.csv and the problems found in its text (not yet in the files)."""
    try:
        with open(root / LABELS_FILE, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            records = [(reader.line_num, rec) for rec in reader]  # line where the record ends
    except UnicodeDecodeError as exc:
        return [], [f"{LABELS_FILE}: not UTF-8 text ({exc.reason}); save it as UTF-8 CSV"]
    except csv.Error as exc:
        return [], [f"{LABELS_FILE}: not valid CSV ({exc})"]
    records = [(n, rec) for n, rec in records if any(cell.strip() for cell in rec)]
    if not records:
        return [], [f"{LABELS_FILE}: empty; it needs a header {','.join(REQUIRED_COLUMNS)}"]
    (_, header), body = records[0], records[1:]
    names = [h.strip() for h in header]
    index = {n.lower(): i for i, n in enumerate(names)}
    missing = [c for c in REQUIRED_COLUMNS if c not in index]
    if missing:
        hint = "; it seems to use ';' as separator, use ','" if ";" in header[0] else ""
        return [], [
            f"{LABELS_FILE} line 1: missing column(s) {', '.join(missing)}; "
            f"found {', '.join(repr(n) for n in names)}{hint}"
        ]
    repeated = sorted(n for n, k in Counter(n.lower() for n in names).items() if k > 1)
    if repeated:
        return [], [f"{LABELS_FILE} line 1: column(s) {', '.join(repeated)} appear more than once"]
    if not body:
        return [], [f"{LABELS_FILE}: has a header but no rows"]
    extra = [i for i, n in enumerate(names) if n.lower() not in _KNOWN_COLUMNS]
    rows, problems = [], []
    for line, rec in body:
        if len(rec) != len(names):
            problems.append(
                f"{LABELS_FILE} line {line}: {len(rec)} fields, the header has {len(names)}"
            )
            continue
        row, row_problems = _csv_row(line, rec, index, names, extra)
        problems.extend(f"{LABELS_FILE} line {line}: {p}" for p in row_problems)
        if row is not None:
            rows.append(row)
    return rows, problems


def _csv_row(
    line: int, rec: list[str], index: dict[str, int], names: list[str], extra: list[int]
) -> tuple[Row | None, list[str]]:
    """One CSV record as a `Row` (None if unusable) and its problems."""
    problems = []
    path_text = rec[index["path"]].strip().replace("\\", "/")
    patient_id = rec[index["patient_id"]].strip()
    label_text = rec[index["label"]]
    label = parse_label(label_text)
    if label is None:
        problems.append(
            f"unknown label {label_text.strip()!r}; use residual / non_residual (or 1 / 0)"
        )
    if not patient_id:
        problems.append("empty patient_id")
    view_hint = None
    if VIEW_COLUMN in index and (view_text := rec[index[VIEW_COLUMN]].strip()):
        view_hint = _VIEW_ALIASES.get(view_text.lower())
        if view_hint is None:
            problems.append(f"unknown view {view_text!r}; use anterior or posterior")
    relpath, path_problem = _normalised_relpath(path_text)
    if path_problem:
        problems.append(path_problem)
    beds = _beds(rec, index, problems)
    if relpath is None:
        return None, problems
    attributes = {names[i]: rec[i].strip() for i in extra}
    return Row(line, patient_id, label, relpath, view_hint, attributes, beds), problems


def _beds(
    rec: list[str], index: dict[str, int], problems: list[str]
) -> dict[str, tuple[float, float]]:
    """The thyroid-bed centres a record sets (`BED_COLUMNS`; empty cells set none)."""
    beds = {}
    for key, pair in BED_COLUMNS.items():
        cells = [rec[index[c]].strip() if c in index else "" for c in pair]
        if not any(cells):
            continue
        if not all(cells):
            problems.append(f"{' and '.join(pair)} must both be given (or both left empty)")
            continue
        try:
            beds[key] = parse_bed(*cells, what=",".join(pair))
        except ConfigError as exc:
            problems.append(str(exc))
    if ALL_VIEWS in beds and len(beds) > 1:
        problems.append(
            f"{','.join(BED_COLUMNS[ALL_VIEWS])} (every view) and per-view bed columns are both "
            "set; give one or the other"
        )
    return beds


def _normalised_relpath(text: str) -> tuple[str | None, str | None]:
    """A POSIX path relative to the cohort root, or None and why it is refused."""
    if not text:
        return None, "empty path"
    pure = PurePosixPath(text)
    if pure.is_absolute() or (len(text) > 1 and text[1] == ":"):
        return None, f"path {text!r} is absolute; write it relative to the cohort folder"
    norm = os.path.normpath(text).replace(os.sep, "/")
    if norm == ".." or norm.startswith("../"):
        return None, f"path {text!r} points outside the cohort folder"
    return norm, None


def folder_rows(root: Path) -> tuple[list[Row], list[str]]:
    """Rows of a class-folder layout and the problems in its structure."""
    rows: list[Row] = []
    problems: list[str] = []
    class_dirs = []
    for child in _visible(root):
        if not child.is_dir():
            continue
        label = parse_label(child.name)
        if label is None:
            problems.append(
                f"{child.name}/: not a class folder; expected residual/ and non_residual/ "
                f"(or add a {LABELS_FILE})"
            )
        else:
            class_dirs.append((child, label))
    if not class_dirs:
        return [], [
            f"{root}: found neither {LABELS_FILE} nor class folders residual/, non_residual/",
            *problems,
        ]
    for class_dir, label in class_dirs:
        for entry in _visible(class_dir):
            if entry.is_file():
                rows.append(_class_file_row(root, entry, label))
            elif entry.is_dir():
                rows.extend(_patient_folder_rows(root, entry, label, problems))
    return rows, problems


def _class_file_row(root: Path, path: Path, label: int) -> Row:
    """A file directly in a class folder: its patient is the name before its view token
    (`PH0001_anterior.png` -> PH0001), else the whole stem (one file, one patient)."""
    named = view_from_name(path.name)
    if named is not None and named.patient:
        return Row(None, named.patient, label, _rel(root, path), grouping="name")
    return Row(None, path.stem, label, _rel(root, path), grouping="file")


def _patient_folder_rows(root: Path, folder: Path, label: int, problems: list[str]) -> list[Row]:
    """One row per file of a patient sub-folder; nested folders and empty folders are problems."""
    rows = []
    for entry in _visible(folder):
        if entry.is_file():
            rows.append(Row(None, folder.name, label, _rel(root, entry), grouping="folder"))
        else:
            problems.append(f"{_rel(root, entry)}/: folders inside a patient folder are not read")
    if not rows:
        problems.append(f"{_rel(root, folder)}/: patient folder without files")
    return rows


def _visible(folder: Path) -> list[Path]:
    """Entries of `folder` not starting with '.', sorted by name."""
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def _rel(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()
