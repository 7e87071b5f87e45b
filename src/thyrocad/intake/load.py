"""Reading a scan for diagnosis or a cohort: the one way every entry point does it.

`load_study(path)` reads the file (`thyrocad.io.read.read_study`, whole-body sweeps
accepted), cuts the neck field out of a whole-body sweep (`neck_field`) and adds the
input-domain flags (`domain`). `field_beds` turns thyroid-bed centres set by a person, in the
file's pixels, into centres in each view's own pixels, as `Pipeline.run_study` takes them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from thyrocad.errors import ConfigError
from thyrocad.intake.domain import check_domain
from thyrocad.intake.neck_field import is_whole_body, neck_field_study
from thyrocad.io.read import read_study
from thyrocad.study import Study, View

ALL_VIEWS = "all"
"""Key of a bed centre that applies to every view of a file."""
Beds = Mapping[str, tuple[float, float]]
Box = tuple[int, int, int, int]


def load_study(path: str | Path, view: View | None = None, *, name_views: bool = True) -> Study:
    """Read one file into a `Study` of neck views with their input-domain flags.

    `view` names the view of a single-view file that does not state one, and `name_views`
    lets its file name name it otherwise (see `read_study`).
    A whole-body sweep gives the neck field of each of its frames (`NeckFieldError` when it
    cannot be found). Every failure is an `InputError`.
    """
    study = read_study(path, view, whole_body=True, name_views=name_views)
    if is_whole_body(study):
        study = neck_field_study(study)
    return check_domain(study)


def parse_bed(
    row: str | float, col: str | float, what: str = "the thyroid bed"
) -> tuple[float, float]:
    """(row, col) from two numbers or their text; `ConfigError` unless both are finite and >= 0."""
    try:
        rc = (float(row), float(col))
    except (TypeError, ValueError):
        raise ConfigError(
            f"{what}: {row!r}, {col!r} is not a row and a column; give two numbers (original "
            "pixels), e.g. 120,128"
        ) from None
    if not all(math.isfinite(v) and v >= 0 for v in rc):
        raise ConfigError(f"{what}: row {row}, column {col} must be finite and at least 0")
    return rc


def field_beds(study: Study, beds: Beds | None) -> dict[str, tuple[float, float]]:
    """Bed centres given in the file's pixels, by view name or `ALL_VIEWS`, as centres in each
    view's own pixels, by view name.

    `ConfigError` when a named view is not in the study, or a centre lies outside its view (for
    a whole-body sweep: outside the neck field)."""
    views = [(im.view.value, im.box_in_file()) for im in study.images]
    return beds_in_views(views, beds, study.source or "the study")


def beds_in_views(
    views: Sequence[tuple[str, Box]], beds: Beds | None, what: str
) -> dict[str, tuple[float, float]]:
    """`field_beds` for views given as (view name, box in the file) pairs."""
    if not beds:
        return {}
    names = {name for name, _ in views}
    missing = sorted(set(beds) - names - {ALL_VIEWS})
    if missing:
        raise ConfigError(
            f"a thyroid bed was given for the {' and '.join(missing)} view, but {what} holds "
            f"{' and '.join(sorted(names))}"
        )
    local: dict[str, tuple[float, float]] = {}
    for name, (row0, col0, row1, col1) in views:
        rc = beds.get(name, beds.get(ALL_VIEWS))
        if rc is None:
            continue
        row, col = rc
        if not (row0 <= row < row1 and col0 <= col < col1):
            raise ConfigError(
                f"the thyroid bed given at row {row:g}, column {col:g} lies outside the {name} "
                f"view of {what} (rows {row0}-{row1 - 1}, columns {col0}-{col1 - 1} of the file"
                "; of a whole-body sweep, its neck field); give original-pixel coordinates "
                "inside it"
            )
        here = (row - row0, col - col0)
        if local.setdefault(name, here) != here:
            raise ConfigError(
                f"{what} has several {name} views at different places; name each view to set "
                "its bed"
            )
    return local
