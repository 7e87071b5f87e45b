"""The cohort's data model: a `Cohort` of `Patient`s, each with its `CohortFile`s and label."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from thyrocad.intake import field_beds, load_study
from thyrocad.io.read import merge_studies
from thyrocad.study import Study, View

LABEL_NAMES = {1: "residual", 0: "non_residual"}
_LABEL_ALIASES = {"residual": 1, "1": 1, "non_residual": 0, "nonresidual": 0, "0": 0}


def parse_label(text: str) -> int | None:
    """1 for residual, 0 for non-residual, None for anything else (see the module docstring)."""
    key = text.strip().lower().replace("-", "_").replace(" ", "_")
    return _LABEL_ALIASES.get(key)


VIEW_SOURCES = ("header", "labels.csv", "file name", "none")


@dataclass(frozen=True)
class FileFacts:
    """What reading a file told: its size (rows, columns), pixel spacing (None: not stored),
    what its pixel values are (`thyrocad.io.read.describe_pixels`), where its views came from
    (one of `VIEW_SOURCES`) and the view its file name states, if any."""

    shape: tuple[int, int]
    pixel_spacing_mm: tuple[float, float] | None
    pixels: str
    view_source: str
    name_view: View | None = None


@dataclass(frozen=True)
class CohortFile:
    """One image file of a patient. `views` and `facts` are None when the cohort was loaded
    with read=False; `grouping` says how the file was assigned to its patient
    (`thyrocad.data.cohort.layouts.GROUPINGS`).

    `beds` are thyroid-bed centres set in labels.csv, in the file's pixels, by view name or
    `thyrocad.intake.ALL_VIEWS`."""

    path: Path
    relpath: str
    sha256: str
    view_hint: View | None = None
    views: tuple[View, ...] | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)
    beds: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    grouping: str = "csv"
    facts: FileFacts | None = None


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
        """Read the patient's files (`thyrocad.intake.load_study`) and merge their views into
        one `Study`.

        Raises `InputError` when a file cannot be read or the files disagree on pixel spacing.
        """
        return self.load_study_with_beds()[0]

    def load_study_with_beds(self) -> tuple[Study, dict[str, tuple[float, float]]]:
        """The patient's `Study` and the bed centres set in labels.csv, by view name, in each
        view's own pixels (what `Pipeline.run_study` takes). `ConfigError` for a bed outside
        its view (`thyrocad cohort-check` reports these first)."""
        studies = [load_study(f.path, view=f.view_hint) for f in self.cohort_files]
        beds: dict[str, tuple[float, float]] = {}
        for cfile, study in zip(self.cohort_files, studies, strict=True):
            beds.update(field_beds(study, cfile.beds))
        return merge_studies(studies), beds


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
        """sha256 over the sorted (relative path, patient ID, label, content sha256, and the
        bed centres where labels.csv sets any) of each file.

        Content hashes are those computed at load time. Any change of a file's bytes, its label,
        its name, its patient or its bed centres changes the hash.
        """
        lines = sorted(
            f"{f.relpath}\t{p.patient_id}\t{p.label}\t{f.sha256}{_beds_text(f.beds)}\n"
            for p in self.patients
            for f in p.cohort_files
        )
        return hashlib.sha256("".join(lines).encode()).hexdigest()

    def summary(self) -> dict:
        """Counts for display: patients and views per class, files, files and views per
        patient, how files were grouped into patients, and (when the files were read) image
        sizes, pixel spacings, pixel values and where the views came from, each with counts.
        Read-dependent entries are None when the cohort was loaded with read=False."""
        n_by_label = Counter(p.label for p in self.patients)
        files = [f for p in self.patients for f in p.cohort_files]
        read = all(f.facts is not None for f in files)
        facts = [f.facts for f in files] if read else []
        return {
            "layout": self.layout,
            "patients": len(self.patients),
            "patients_per_class": {LABEL_NAMES[k]: n_by_label.get(k, 0) for k in (1, 0)},
            "files": len(files),
            "files_per_patient": _sorted_counts(len(p.cohort_files) for p in self.patients),
            "grouping": _sorted_counts(f.grouping for f in files),
            "views_per_patient": _sorted_counts(
                "+".join(sorted(x.value for x in p.views)) for p in self.patients
            )
            if read
            else None,
            "views_per_class": {
                LABEL_NAMES[k]: _sorted_counts(
                    v.value for p in self.patients if p.label == k for v in p.views
                )
                for k in (1, 0)
            }
            if read
            else None,
            "image_sizes": _sorted_counts("{}x{}".format(*x.shape) for x in facts) or None,
            "pixel_spacings": _sorted_counts(map(spacing_text, (x.pixel_spacing_mm for x in facts)))
            or None,
            "pixels": _sorted_counts(x.pixels for x in facts) or None,
            "view_sources": _sorted_counts(x.view_source for x in facts) or None,
            "data_hash": self.data_hash(),
        }


def _beds_text(beds: Mapping[str, tuple[float, float]]) -> str:
    """'' without beds (so cohorts without bed columns keep their hash), else the beds."""
    return "".join(f"\t{view}={row:g},{col:g}" for view, (row, col) in sorted(beds.items()))


def spacing_text(spacing_mm: tuple[float, float] | None) -> str:
    """'2.2 x 2.2 mm' (rows x columns), or 'none'."""
    return "none" if spacing_mm is None else "{:g} x {:g} mm".format(*spacing_mm)


def _sorted_counts(values: Iterable) -> dict[str, int]:
    return {str(k): n for k, n in sorted(Counter(values).items())}
