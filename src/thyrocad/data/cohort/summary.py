"""What a researcher should know about a loaded cohort before training on it: the files that
could not be grouped into patients, and warnings about anything the pipeline will treat
differently from a cohort of two-view NM DICOM counts with pixel spacing.

Each warning is one sentence per cohort (never one per file), naming at most a few files by
their relative path; patient IDs are never named.
"""

from __future__ import annotations

from collections import Counter

from thyrocad.data.cohort.model import Cohort, CohortFile, spacing_text
from thyrocad.study import View

_LISTED = 3  # files named in one warning


def ungrouped_files(cohort: Cohort) -> list[str]:
    """Files of a class-folder cohort whose patient could not be told from their name (no view
    token, so each is a patient of its own) and that do not hold both views themselves (known
    only when the files were read)."""
    both = {View.ANTERIOR, View.POSTERIOR}
    return [
        f.relpath
        for f in _files(cohort)
        if f.grouping == "file" and f.views is not None and not both <= set(f.views)
    ]


def cohort_warnings(cohort: Cohort) -> list[str]:
    """One line per thing the pipeline will treat differently (empty for a cohort of two-view
    DICOM counts, all at one size and spacing). Needs a cohort loaded with read=True for all
    but the grouping warning."""
    files = _files(cohort)
    read = [f for f in files if f.facts is not None]
    found = [_ungrouped(cohort)]
    if read and len(read) == len(files):
        found += [
            _no_spacing(read),
            _gray_levels(read),
            _mixed("image sizes", read, lambda f: "{}x{}".format(*f.facts.shape)),
            _mixed("pixel spacings", read, lambda f: spacing_text(f.facts.pixel_spacing_mm)),
            _unknown_views(read),
            _name_disagrees(read),
            _single_view_patients(cohort),
        ]
    return [w for w in found if w]


def _files(cohort: Cohort) -> list[CohortFile]:
    return [f for p in cohort.patients for f in p.cohort_files]


def _some(paths: list[str]) -> str:
    """'a.png, b.png, c.png and 4 more'."""
    shown = ", ".join(paths[:_LISTED])
    return shown + (f" and {len(paths) - _LISTED} more" if len(paths) > _LISTED else "")


def _ungrouped(cohort: Cohort) -> str:
    paths = ungrouped_files(cohort)
    if not paths:
        return ""
    return (
        f"{len(paths)} file(s) in the class folders have no view token in their name "
        f"({_some(paths)}), so each was taken as a patient of its own: name the views "
        "PATIENT_anterior / PATIENT_posterior, use one folder per patient, or a labels.csv"
    )


def _no_spacing(files: list[CohortFile]) -> str:
    n = sum(f.facts.pixel_spacing_mm is None for f in files)
    if not n:
        return ""
    return (
        f"{n} of {len(files)} file(s) carry no pixel spacing (PNG/JPEG exports): the crop box "
        "and the thyroid-bed locator then assume a standard camera field (the box is a fixed "
        "fraction of the image width; docs/own-data.md); DICOM files keep the spacing"
    )


def _gray_levels(files: list[CohortFile]) -> str:
    kinds = Counter(f.facts.pixels for f in files if "counts" not in f.facts.pixels)
    if not kinds:
        return ""
    described = ", ".join(f"{kind}: {n}" for kind, n in sorted(kinds.items()))
    mixed = " The cohort mixes them with DICOM counts." if len(files) > kinds.total() else ""
    return (
        f"{kinds.total()} file(s) are image exports ({described}), not counts: the pipeline "
        "windows and equalizes their display values as if they were counts, and the "
        f"uptake-ratio observer's ratios are ratios of display values.{mixed}"
    )


def _mixed(what: str, files: list[CohortFile], key) -> str:
    counts = Counter(key(f) for f in files)
    if len(counts) < 2:
        return ""
    listed = ", ".join(f"{k} ({n} files)" for k, n in counts.most_common())
    return (
        f"{what} differ: {listed}; the crop box has one size in mm (or one fraction of the "
        "width without spacing), so images taken at other zooms show the neck at other scales"
    )


def _unknown_views(files: list[CohortFile]) -> str:
    unknown = [f.relpath for f in files if f.views and View.UNKNOWN in f.views]
    if not unknown:
        return ""
    return (
        f"{len(unknown)} file(s) have no recognised view ({_some(unknown)}): they are used as "
        "views of unknown projection, and --view-fusion anterior/posterior cannot pick them; "
        "end their names in _anterior / _posterior or fill labels.csv's view column"
    )


def _name_disagrees(files: list[CohortFile]) -> str:
    odd = [
        f.relpath
        for f in files
        if f.facts.view_source == "header"
        and f.facts.name_view is not None
        and f.views != (f.facts.name_view,)
        and len(f.views) == 1
    ]
    if not odd:
        return ""
    return (
        f"{len(odd)} file(s) are named for one view but their header states the other "
        f"({_some(odd)}); the header's view is used"
    )


def _single_view_patients(cohort: Cohort) -> str:
    single = [p for p in cohort.patients if p.views is not None and len(p.views) < 2]
    if not single:
        return ""
    return (
        f"{len(single)} of {len(cohort.patients)} patient(s) have one view only: their "
        "probability is that view's alone"
    )
