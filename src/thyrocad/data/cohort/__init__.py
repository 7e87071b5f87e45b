"""Load and validate a labelled cohort: which files belong to which patient, with which label.

Two layouts are accepted:

(a) a folder with ``labels.csv``: columns ``path,label,patient_id`` at least (header names are
    matched case-insensitively), one row per file, paths relative to the folder. A patient may
    have several rows (one file per view). An optional ``view`` column (``anterior``/``ant``/
    ``a``, ``posterior``/``post``/``p``, or empty) is passed to the reader for files that do not
    say their view (PNG/JPG). Optional ``bed_row,bed_col`` (every view of the row's file) or
    ``bed_row_anterior,bed_col_anterior`` / ``bed_row_posterior,bed_col_posterior`` set the
    thyroid-bed centre by hand, in the file's pixels; empty cells leave it to the locator.
    Every preprocessing of the cohort uses them. Other columns are kept: per file in
    `CohortFile.attributes`, and per patient in `Patient.attributes` where all of the
    patient's rows agree. Paths may not be absolute nor climb out with ``..`` (checked on the
    text; symbolic links are followed).
(b) a folder with one sub-folder per class (``residual/``, ``non_residual/``); inside, either
    each sub-folder is one patient (its files = views), or files lie directly in the class
    folder: a file whose name ends in a view token (``PH0001_anterior.png``, ``PH0001ANT.png``;
    `thyrocad.io.names`) belongs to the patient named before the token, so both views of a
    patient stay together; a file without a token is a patient of its own (patient ID = stem).
    Every non-hidden folder at the top level must be a class folder.

A file's view comes from its content (DICOM view codes), else the ``view`` column, else its
file name; `summary` counts where views came from and `cohort_warnings` lists what the
pipeline will treat differently (no spacing, gray-level exports, mixed sizes, ...).

Labels: ``residual`` / ``non_residual``, case-insensitive, with ``-`` or a space accepted for
``_`` (``Non-Residual``), or ``1`` / ``0``. Anything else is reported as an unknown label.

`load_cohort` collects every problem it finds (with the CSV line or the relative path) and then
raises one `CohortError`. It never keeps pixel data: `Patient.load_study` reads on demand.
Patient IDs are never logged; errors name CSV lines and relative paths only.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from thyrocad.data.cohort.layouts import LABELS_FILE, csv_rows, folder_rows
from thyrocad.data.cohort.model import (
    LABEL_NAMES,
    Cohort,
    CohortFile,
    FileFacts,
    Patient,
    parse_label,
)
from thyrocad.data.cohort.summary import cohort_warnings, ungrouped_files
from thyrocad.data.cohort.validation import (
    check_beds,
    check_classes,
    check_files,
    group_patients,
)
from thyrocad.errors import CohortError

logger = logging.getLogger(__name__)


def load_cohort(
    folder: str | os.PathLike, *, read: bool = True, require_both_classes: bool = True
) -> Cohort:
    """Load the cohort in `folder` and validate it; raise `CohortError` listing every problem.

    With `read`, every file is decoded once by `thyrocad.intake.load_study` (pixels are dropped
    right after) to report unreadable files, two anterior (or posterior) views of one patient,
    differing pixel spacings and bed centres outside their view; files decoded before by the
    same reader code (same content hash) are not decoded again
    (`$THYROCAD_HOME/cache/cohorts-decoded`). Without `read` only
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
        layout, (rows, problems) = "csv", csv_rows(root)
    else:
        layout, (rows, problems) = "folders", folder_rows(root)
    files = check_files(root, rows, problems, read=read)
    check_beds(rows, files, problems)
    patients = group_patients(root, rows, files, problems)
    check_classes(rows, problems, require_both_classes=require_both_classes)
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


__all__ = [
    "LABELS_FILE",
    "LABEL_NAMES",
    "Cohort",
    "CohortFile",
    "FileFacts",
    "Patient",
    "cohort_warnings",
    "load_cohort",
    "parse_label",
    "ungrouped_files",
]
