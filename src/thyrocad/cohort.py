"""Load and validate a labelled cohort: which files belong to which patient, with which label.

Two layouts are accepted:

(a) a folder with ``labels.csv``: columns ``path,label,patient_id`` at least (header names are
    matched case-insensitively), one row per file, paths relative to the folder. A patient may
    have several rows (one file per view). An optional ``view`` column (``anterior``/``ant``/
    ``a``, ``posterior``/``post``/``p``, or empty) is passed to the reader for files that do not
    say their view (PNG/JPG). Other columns are kept: per file in `CohortFile.attributes`, and
    per patient in `Patient.attributes` where all of the patient's rows agree. Paths may not be
    absolute nor climb out with ``..`` (checked on the text; symbolic links are followed).
(b) a folder with one sub-folder per class (``residual/``, ``non_residual/``); inside, each file is
    one patient (patient ID = file stem) or each sub-folder is one patient (its files = views).
    Every non-hidden folder at the top level must be a class folder.

Labels: ``residual`` / ``non_residual``, case-insensitive, with ``-`` or a space accepted for
``_`` (``Non-Residual``), or ``1`` / ``0``. Anything else is reported as an unknown label.

`load_cohort` collects every problem it finds (with the CSV line or the relative path) and then
raises one `CohortError`. It never keeps pixel data: `Patient.load_study` reads on demand.
Patient IDs are never logged; errors name CSV lines and relative paths only.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.metadata
import logging
import os
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from types import MappingProxyType

import numpy as np

from thyrocad import result_cache
from thyrocad.errors import CohortError, InputError
from thyrocad.reader import read_study
from thyrocad.study import Study, View

logger = logging.getLogger(__name__)

LABELS_FILE = "labels.csv"
REQUIRED_COLUMNS = ("path", "label", "patient_id")
VIEW_COLUMN = "view"
LABEL_NAMES = {1: "residual", 0: "non_residual"}
_LABEL_ALIASES = {"residual": 1, "1": 1, "non_residual": 0, "nonresidual": 0, "0": 0}
_VIEW_ALIASES = {
    "anterior": View.ANTERIOR,
    "ant": View.ANTERIOR,
    "a": View.ANTERIOR,
    "posterior": View.POSTERIOR,
    "post": View.POSTERIOR,
    "p": View.POSTERIOR,
}
_SINGLE_VIEWS = (View.ANTERIOR, View.POSTERIOR)


def parse_label(text: str) -> int | None:
    """1 for residual, 0 for non-residual, None for anything else (see the module docstring)."""
    key = text.strip().lower().replace("-", "_").replace(" ", "_")
    return _LABEL_ALIASES.get(key)


@dataclass(frozen=True)
class CohortFile:
    """One image file of a patient. `views` is None when the cohort was loaded with read=False."""

    path: Path
    relpath: str
    sha256: str
    view_hint: View | None = None
    views: tuple[View, ...] | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Patient:
    """A patient: label (1 = residual) and image files, sorted by relative path."""

    patient_id: str
    label: int
    cohort_files: tuple[CohortFile, ...]
    attributes: Mapping[str, str] = field(default_factory=dict)

    @property
    def label_name(self) -> str:
        return LABEL_NAMES[self.label]

    @property
    def files(self) -> tuple[Path, ...]:
        return tuple(f.path for f in self.cohort_files)

    @property
    def views(self) -> tuple[View, ...] | None:
        """Views over all files (None when not read at load time)."""
        if any(f.views is None for f in self.cohort_files):
            return None
        return tuple(v for f in self.cohort_files for v in f.views)

    def load_study(self) -> Study:
        """Read the patient's files and merge their views into one `Study`.

        Raises `InputError` when a file cannot be read and `CohortError` when the files disagree
        on pixel spacing.
        """
        studies = [read_study(f.path, view=f.view_hint) for f in self.cohort_files]
        return merge_studies(studies)


@dataclass(frozen=True)
class Cohort:
    """A validated cohort. `layout` is ``"csv"`` or ``"folders"``."""

    root: Path
    patients: tuple[Patient, ...]
    layout: str

    @property
    def patient_ids(self) -> list[str]:
        return [p.patient_id for p in self.patients]

    @property
    def labels(self) -> np.ndarray:
        """Integer labels in patient order, 1 = residual."""
        return np.array([p.label for p in self.patients], dtype=np.int64)

    @property
    def files(self) -> list[Path]:
        return [f for p in self.patients for f in p.files]

    def data_hash(self) -> str:
        """sha256 over the sorted (relative path, patient ID, label, content sha256) of each file.

        Content hashes are those computed at load time. Any change of a file's bytes, its label,
        its name or its patient changes the hash.
        """
        lines = sorted(
            f"{f.relpath}\t{p.patient_id}\t{p.label}\t{f.sha256}\n"
            for p in self.patients
            for f in p.cohort_files
        )
        return hashlib.sha256("".join(lines).encode()).hexdigest()

    def summary(self) -> dict:
        """Counts for display: patients per class, files, files and views per patient."""
        n_by_label = Counter(p.label for p in self.patients)
        views = [p.views for p in self.patients]
        return {
            "layout": self.layout,
            "patients": len(self.patients),
            "patients_per_class": {LABEL_NAMES[k]: n_by_label.get(k, 0) for k in (1, 0)},
            "files": sum(len(p.cohort_files) for p in self.patients),
            "files_per_patient": _sorted_counts(len(p.cohort_files) for p in self.patients),
            "views_per_patient": None
            if any(v is None for v in views)
            else _sorted_counts("+".join(sorted(x.value for x in v)) for v in views),
            "data_hash": self.data_hash(),
        }


def merge_studies(studies: list[Study]) -> Study:
    """One `Study` with the views of all `studies`; CohortError if their pixel spacings differ."""
    if len(studies) == 1:
        return studies[0]
    spacings = {s.pixel_spacing_mm for s in studies}
    if len(spacings) > 1:
        raise CohortError(
            "the files of one patient have different pixel spacings "
            f"({', '.join(map(str, spacings))}); resample them or keep one acquisition"
        )
    durations = {s.frame_duration_ms for s in studies}
    common_meta = set(studies[0].metadata.items()).intersection(
        *(s.metadata.items() for s in studies[1:])
    )
    return Study(
        images=tuple(im for s in studies for im in s.images),
        pixel_spacing_mm=spacings.pop(),
        frame_duration_ms=durations.pop() if len(durations) == 1 else None,
        source="; ".join(s.source for s in studies),
        spacing_note="; ".join(dict.fromkeys(s.spacing_note for s in studies if s.spacing_note)),
        metadata=dict(sorted(common_meta)),
    )


def load_cohort(
    folder: str | os.PathLike, *, read: bool = True, require_both_classes: bool = True
) -> Cohort:
    """Load the cohort in `folder` and validate it; raise `CohortError` listing every problem.

    With `read`, every file is decoded once by `thyrocad.reader.read_study` (pixels are dropped
    right after) to report unreadable files, two anterior (or posterior) views of one patient
    and differing pixel spacings; files decoded before by the same reader code (same content
    hash) are not decoded again (`$THYROCAD_HOME/cache/cohorts-decoded`). Without `read` only
    existence, duplicates and labels are checked.
    `require_both_classes=False` accepts a one-class cohort (for inference, not training).

    Example: ``cohort = load_cohort("data/cohort"); cohort.labels.mean()``
    """
    root = Path(folder).expanduser().absolute()
    if not root.is_dir():
        raise CohortError(
            f"cohort {root} cannot be loaded", [f"{root} does not exist or is not a folder"]
        )
    if (root / LABELS_FILE).is_file():
        layout, (rows, problems) = "csv", _csv_rows(root)
    else:
        layout, (rows, problems) = "folders", _folder_rows(root)
    files = _check_files(root, rows, problems, read=read)
    patients = _group_patients(root, rows, files, problems)
    _check_classes(rows, problems, require_both_classes=require_both_classes)
    if problems:
        logger.info("cohort has %d problem(s)", len(problems))
        raise CohortError(
            f"cohort {root} has {len(problems)} problem(s); fix them and check again "
            f"(thyrocad cohort-check {root})",
            problems,
        )
    cohort = Cohort(root=root, patients=tuple(patients), layout=layout)
    logger.info(
        "loaded cohort (%s layout): %d patients (%d residual), %d files",
        layout,
        len(patients),
        int(cohort.labels.sum()),
        len(cohort.files),
    )
    return cohort


# --- reading the layouts -------------------------------------------------------------------


@dataclass
class _Row:
    """One file entry of either layout; `line` is the CSV line (None for folder layouts)."""

    line: int | None
    patient_id: str
    label: int | None
    relpath: str
    view_hint: View | None = None
    attributes: dict[str, str] = field(default_factory=dict)


def _where(rows: Iterable[_Row]) -> str:
    """Where some rows come from: 'labels.csv line(s) 3, 7' or their relative paths."""
    rows = list(rows)
    lines = sorted({r.line for r in rows if r.line is not None})
    if lines:
        word = "line" if len(lines) == 1 else "lines"
        return f"{LABELS_FILE} {word} {', '.join(map(str, lines))}"
    return ", ".join(sorted({r.relpath for r in rows}))


def _csv_rows(root: Path) -> tuple[list[_Row], list[str]]:
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
    extra = [i for i, n in enumerate(names) if n.lower() not in (*REQUIRED_COLUMNS, VIEW_COLUMN)]
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
) -> tuple[_Row | None, list[str]]:
    """One CSV record as a `_Row` (None if unusable) and its problems."""
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
    if relpath is None:
        return None, problems
    attributes = {names[i]: rec[i].strip() for i in extra}
    return _Row(line, patient_id, label, relpath, view_hint, attributes), problems


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


def _folder_rows(root: Path) -> tuple[list[_Row], list[str]]:
    """Rows of a class-folder layout and the problems in its structure."""
    rows: list[_Row] = []
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
                rows.append(_Row(None, entry.stem, label, _rel(root, entry)))
            elif entry.is_dir():
                rows.extend(_patient_folder_rows(root, entry, label, problems))
    return rows, problems


def _patient_folder_rows(root: Path, folder: Path, label: int, problems: list[str]) -> list[_Row]:
    """One row per file of a patient sub-folder; nested folders and empty folders are problems."""
    rows = []
    for entry in _visible(folder):
        if entry.is_file():
            rows.append(_Row(None, folder.name, label, _rel(root, entry)))
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


# --- checking the files --------------------------------------------------------------------


@dataclass(frozen=True)
class _FileInfo:
    sha256: str
    views: tuple[View, ...] | None = None
    pixel_spacing_mm: tuple[float, float] | None = None


def _check_files(
    root: Path, rows: list[_Row], problems: list[str], *, read: bool
) -> dict[str, _FileInfo]:
    """Hash (and with `read`, decode) each distinct file once; report missing, duplicate and
    unreadable files. Returns the info of each usable relative path."""
    by_path: dict[str, list[_Row]] = defaultdict(list)
    for row in rows:
        by_path[row.relpath].append(row)
    infos: dict[str, _FileInfo] = {}
    known = _decoded_before(by_path) if read else {}
    for relpath, path_rows in by_path.items():
        if len(path_rows) > 1:
            problems.append(f"{_where(path_rows)}: the file {relpath!r} is listed more than once")
        info, problem = _file_info(
            root / relpath, path_rows[0].view_hint, read=read, known=known.get(relpath)
        )
        if problem:
            problems.append(f"{_where(path_rows)}: {relpath!r} {problem}")
        else:
            infos[relpath] = info
    if read and not problems:
        _remember_decoded(by_path, infos)
    by_hash: dict[str, list[str]] = defaultdict(list)
    for relpath, info in infos.items():
        by_hash[info.sha256].append(relpath)
    for digest, paths in by_hash.items():
        if len(paths) > 1:
            same = [r for p in paths for r in by_path[p]]
            problems.append(
                f"{_where(same)}: files {', '.join(map(repr, paths))} have identical content "
                f"(sha256 {digest[:12]}…); each file must be a distinct image"
            )
    return infos


_DECODED = "cohorts-decoded"


def _decode_key(by_path: dict[str, list[_Row]]) -> list:
    """What the decoded views and spacings of these files depend on, besides their content."""
    from thyrocad import dicom, reader

    hints = sorted((p, str(rows[0].view_hint)) for p, rows in by_path.items())
    return [result_cache.source_digest(reader, dicom), importlib.metadata.version("pydicom"), hints]


def _decoded_before(by_path: dict[str, list[_Row]]) -> dict[str, _FileInfo]:
    """Views and spacing of each file as decoded by an earlier load of the same files (by
    content hash), from `$THYROCAD_HOME/cache/cohorts-decoded`; {} when not known."""
    entry = result_cache.load(result_cache.entry_path(_DECODED, _decode_key(by_path)))
    if not isinstance(entry, dict):
        return {}
    return {
        relpath: _FileInfo(
            item["sha256"],
            tuple(View(v) for v in item["views"]),
            tuple(item["spacing"]) if item["spacing"] is not None else None,
        )
        for relpath, item in entry.items()
    }


def _remember_decoded(by_path: dict[str, list[_Row]], infos: dict[str, _FileInfo]) -> None:
    """Keep what `_decoded_before` reads back."""
    entry = {
        relpath: {
            "sha256": info.sha256,
            "views": [str(v) for v in info.views or ()],
            "spacing": list(info.pixel_spacing_mm) if info.pixel_spacing_mm else None,
        }
        for relpath, info in infos.items()
    }
    result_cache.store(result_cache.entry_path(_DECODED, _decode_key(by_path)), entry)


def _file_info(
    path: Path, view_hint: View | None, *, read: bool, known: _FileInfo | None = None
) -> tuple[_FileInfo, str | None]:
    """Hash and optionally decode one file (unless `known` has the same content hash); on
    failure, the reason as the second value."""
    if not path.exists():
        return _FileInfo(""), "does not exist"
    if not path.is_file():
        return _FileInfo(""), "is not a file"
    try:
        with open(path, "rb") as fh:
            digest = hashlib.file_digest(fh, "sha256").hexdigest()
    except OSError as exc:
        return _FileInfo(""), f"cannot be opened ({type(exc).__name__}: {exc.strerror})"
    if not read:
        return _FileInfo(digest), None
    if known is not None and known.sha256 == digest:
        return known, None
    try:
        study = read_study(path, view=view_hint)
    except (InputError, OSError) as exc:
        message = str(exc).removeprefix(f"{path}: ")  # the caller names the file already
        return _FileInfo(digest), f"cannot be read ({type(exc).__name__}: {message})"
    return _FileInfo(digest, study.views, study.pixel_spacing_mm), None


# --- patients and classes ------------------------------------------------------------------


def _group_patients(
    root: Path, rows: list[_Row], files: dict[str, _FileInfo], problems: list[str]
) -> list[Patient]:
    """Patients sorted by ID; reports conflicting labels, repeated views and spacing mismatch."""
    by_patient: dict[str, list[_Row]] = defaultdict(list)
    for row in rows:
        if row.patient_id:  # an empty ID is already reported
            by_patient[row.patient_id].append(row)
    patients = []
    for patient_id in sorted(by_patient):
        prow = sorted(by_patient[patient_id], key=lambda r: r.relpath)
        labels = {r.label for r in prow if r.label is not None}
        if len(labels) > 1:
            problems.append(
                f"{_where(prow)}: one patient with conflicting labels "
                f"({', '.join(LABEL_NAMES[x] for x in sorted(labels))})"
            )
        usable = [r for r in prow if r.relpath in files]
        _check_views(prow, [files[r.relpath] for r in usable], problems)
        if len(labels) != 1 or len(usable) != len(prow) or any(r.label is None for r in prow):
            continue
        cfiles = tuple(_cohort_file(root, r, files[r.relpath]) for r in prow)
        shared = _shared_attributes(prow)
        patients.append(Patient(patient_id, labels.pop(), cfiles, MappingProxyType(shared)))
    return patients


def _cohort_file(root: Path, row: _Row, info: _FileInfo) -> CohortFile:
    return CohortFile(
        path=root / row.relpath,
        relpath=row.relpath,
        sha256=info.sha256,
        view_hint=row.view_hint,
        views=info.views,
        attributes=MappingProxyType(dict(row.attributes)),
    )


def _shared_attributes(rows: list[_Row]) -> dict[str, str]:
    """The extra columns on which all of a patient's rows agree."""
    first = rows[0].attributes
    return {k: v for k, v in first.items() if all(r.attributes.get(k) == v for r in rows)}


def _check_views(rows: list[_Row], infos: list[_FileInfo], problems: list[str]) -> None:
    """A patient may have at most one anterior and one posterior view, all at one spacing."""
    if not infos or infos[0].views is None:
        return
    counts = Counter(v for info in infos for v in info.views)
    for view in _SINGLE_VIEWS:
        if counts[view] > 1:
            problems.append(f"{_where(rows)}: one patient with {counts[view]} {view.value} views")
    spacings = {info.pixel_spacing_mm for info in infos}
    if len(spacings) > 1:
        problems.append(f"{_where(rows)}: one patient's files have different pixel spacings")


def _check_classes(rows: list[_Row], problems: list[str], *, require_both_classes: bool) -> None:
    """A cohort needs patients, and both classes unless `require_both_classes` is False.

    Judged on the labels as written, so that a file problem does not also look like a
    missing class."""
    if not rows:
        if not problems:
            problems.append("the cohort has no patients")
        return
    present = {r.label for r in rows if r.label is not None}
    if len(present) != 1:
        return
    only = LABEL_NAMES[present.pop()]
    n_patients = len({r.patient_id for r in rows if r.patient_id})
    if require_both_classes:
        problems.append(
            f"all {n_patients} patients are {only}; training needs both classes "
            "(allow a one-class cohort for inference with require_both_classes=False / "
            "--allow-one-class)"
        )
    else:
        logger.warning("all %d patients are %s (one-class cohort)", n_patients, only)


def _sorted_counts(values: Iterable) -> dict[str, int]:
    return {str(k): n for k, n in sorted(Counter(values).items())}


__all__ = [
    "LABEL_NAMES",
    "Cohort",
    "CohortFile",
    "Patient",
    "load_cohort",
    "merge_studies",
    "parse_label",
]
