"""Checks of a cohort's files and patients: every problem collected with where it was found."""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from thyrocad.cache import Store, make_key, source_digest
from thyrocad.data.cohort.layouts import Row, where
from thyrocad.data.cohort.model import LABEL_NAMES, CohortFile, FileFacts, Patient
from thyrocad.errors import ConfigError, InputError
from thyrocad.intake import beds_in_views, load_study, neck_field
from thyrocad.intake import load as intake_load
from thyrocad.io import dicom, names
from thyrocad.io import read as reader
from thyrocad.io.names import view_from_name
from thyrocad.io.read import describe_pixels
from thyrocad.study import Study, View

logger = logging.getLogger(__name__)

_SINGLE_VIEWS = (View.ANTERIOR, View.POSTERIOR)


@dataclass(frozen=True)
class _FileInfo:
    sha256: str
    views: tuple[View, ...] | None = None
    facts: FileFacts | None = None
    boxes: tuple[tuple[int, int, int, int], ...] = ()  # each view's place in the file

    @property
    def pixel_spacing_mm(self) -> tuple[float, float] | None:
        return self.facts.pixel_spacing_mm if self.facts else None


def check_files(
    root: Path, rows: list[Row], problems: list[str], *, read: bool
) -> dict[str, _FileInfo]:
    """Hash (and with `read`, decode) each distinct file once; report missing, duplicate and
    unreadable files. Returns the info of each usable relative path."""
    by_path: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        by_path[row.relpath].append(row)
    infos: dict[str, _FileInfo] = {}
    known = _decoded_before(by_path) if read else {}
    for relpath, path_rows in by_path.items():
        if len(path_rows) > 1:
            problems.append(f"{where(path_rows)}: the file {relpath!r} is listed more than once")
        info, problem = _file_info(
            root / relpath, path_rows[0].view_hint, read=read, known=known.get(relpath)
        )
        if problem:
            problems.append(f"{where(path_rows)}: {relpath!r} {problem}")
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
                f"{where(same)}: files {', '.join(map(repr, paths))} have identical content "
                f"(sha256 {digest[:12]}…); each file must be a distinct image"
            )
    return infos


_DECODED = "cohorts-decoded"
_DECODED_LAYOUT = 3  # 3: views with their source, size, pixel description, place in the file


def _decode_key(by_path: dict[str, list[Row]]) -> str:
    """What the decoded views and spacings of these files depend on, besides their content."""
    hints = sorted((p, str(rows[0].view_hint)) for p, rows in by_path.items())
    return make_key(
        source_digest(reader, dicom, names, intake_load, neck_field),
        importlib.metadata.version("pydicom"),
        hints,
        _DECODED_LAYOUT,
    )


def _decoded_before(by_path: dict[str, list[Row]]) -> dict[str, _FileInfo]:
    """Views and spacing of each file as decoded by an earlier load of the same files (by
    content hash), from `$THYROCAD_HOME/cache/cohorts-decoded`; {} when not known."""
    entry = Store(_DECODED).get_json(_decode_key(by_path))
    if not isinstance(entry, dict):
        return {}
    try:
        return {relpath: _info_from_json(item) for relpath, item in entry.items()}
    except (KeyError, TypeError, ValueError):
        return {}  # an entry of another layout is a miss


def _info_from_json(item: dict) -> _FileInfo:
    facts = item["facts"]
    spacing, name_view = facts["spacing"], facts["name_view"]
    return _FileInfo(
        item["sha256"],
        tuple(View(v) for v in item["views"]),
        FileFacts(
            shape=(int(facts["shape"][0]), int(facts["shape"][1])),
            pixel_spacing_mm=None if spacing is None else (float(spacing[0]), float(spacing[1])),
            pixels=str(facts["pixels"]),
            view_source=str(facts["view_source"]),
            name_view=None if name_view is None else View(name_view),
        ),
        tuple(tuple(box) for box in item["boxes"]),
    )


def _remember_decoded(by_path: dict[str, list[Row]], infos: dict[str, _FileInfo]) -> None:
    """Keep what `_decoded_before` reads back."""
    entry = {
        relpath: {
            "sha256": info.sha256,
            "views": [str(v) for v in info.views or ()],
            "boxes": [list(box) for box in info.boxes],
            "facts": {
                "shape": list(info.facts.shape),
                "spacing": info.facts.pixel_spacing_mm,
                "pixels": info.facts.pixels,
                "view_source": info.facts.view_source,
                "name_view": info.facts.name_view,
            },
        }
        for relpath, info in infos.items()
        if info.facts is not None
    }
    Store(_DECODED).put_json(_decode_key(by_path), entry)


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
        study = load_study(path, view=view_hint, name_views=False)
    except (InputError, OSError) as exc:
        message = str(exc).removeprefix(f"{path}: ")  # the caller names the file already
        return _FileInfo(digest), f"cannot be read ({type(exc).__name__}: {message})"
    return _read_info(digest, study, path.name, view_hint), None


def check_beds(rows: list[Row], files: dict[str, _FileInfo], problems: list[str]) -> None:
    """Bed centres of labels.csv: inside a view of their file (for a whole-body sweep, its
    neck field), and at most one per view of a patient. Needs files read at load time."""
    seen: dict[tuple[str, View], Row] = {}
    for row in rows:
        info = files.get(row.relpath)
        if not row.beds or info is None or info.views is None:
            continue
        views = [(v.value, box) for v, box in zip(info.views, info.boxes, strict=True)]
        try:
            beds_in_views(views, row.beds, repr(row.relpath))
        except ConfigError as exc:
            problems.append(f"{where([row])}: {exc}")
            continue
        for view in info.views:
            earlier = seen.setdefault((row.patient_id, view), row)
            if earlier is not row:
                problems.append(
                    f"{where([earlier, row])}: one patient with two {view.value} views that set "
                    "a thyroid bed; name the views (view column)"
                )


def _read_info(digest: str, study: Study, name: str, view_hint: View | None) -> _FileInfo:
    """A read file's info: its views as `Patient.load_study` will see them (a view the content
    or labels.csv does not state taken from the file name) and where they came from."""
    named = view_from_name(name)
    views = study.views
    if view_hint is not None:
        source = "labels.csv"
    elif View.UNKNOWN not in views:
        source = "header"
    elif named is not None and views == (View.UNKNOWN,):
        views, source = (named.view,), "file name"
    else:
        source = "none"
    facts = FileFacts(
        shape=study.images[0].counts.shape,
        pixel_spacing_mm=study.pixel_spacing_mm,
        pixels=describe_pixels(study),
        view_source=source,
        name_view=named.view if named else None,
    )
    return _FileInfo(digest, views, facts, tuple(im.box_in_file() for im in study.images))


# --- patients and classes ------------------------------------------------------------------


def group_patients(
    root: Path, rows: list[Row], files: dict[str, _FileInfo], problems: list[str]
) -> list[Patient]:
    """Patients sorted by ID; reports conflicting labels, repeated views and spacing mismatch."""
    by_patient: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        if row.patient_id:  # an empty ID is already reported
            by_patient[row.patient_id].append(row)
    patients = []
    for patient_id in sorted(by_patient):
        prow = sorted(by_patient[patient_id], key=lambda r: r.relpath)
        labels = {r.label for r in prow if r.label is not None}
        if len(labels) > 1:
            problems.append(
                f"{where(prow)}: one patient with conflicting labels "
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


def _cohort_file(root: Path, row: Row, info: _FileInfo) -> CohortFile:
    return CohortFile(
        path=root / row.relpath,
        relpath=row.relpath,
        sha256=info.sha256,
        view_hint=row.view_hint,
        views=info.views,
        attributes=MappingProxyType(dict(row.attributes)),
        beds=MappingProxyType(dict(row.beds)),
        grouping=row.grouping,
        facts=info.facts,
    )


def _shared_attributes(rows: list[Row]) -> dict[str, str]:
    """The extra columns on which all of a patient's rows agree."""
    first = rows[0].attributes
    return {k: v for k, v in first.items() if all(r.attributes.get(k) == v for r in rows)}


def _check_views(rows: list[Row], infos: list[_FileInfo], problems: list[str]) -> None:
    """A patient may have at most one anterior and one posterior view, all at one spacing."""
    if not infos or infos[0].views is None:
        return
    counts = Counter(v for info in infos for v in info.views)
    for view in _SINGLE_VIEWS:
        if counts[view] > 1:
            problems.append(f"{where(rows)}: one patient with {counts[view]} {view.value} views")
    spacings = {info.pixel_spacing_mm for info in infos}
    if len(spacings) > 1:
        problems.append(f"{where(rows)}: one patient's files have different pixel spacings")


def check_classes(rows: list[Row], problems: list[str], *, require_both_classes: bool) -> None:
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
