"""THE entry point for reading a scan: `read_study(path)` sniffs the content and dispatches.

DICOM (the 'DICM' marker after the 128-byte preamble) goes to `thyrocad.io.dicom.read_dicom`
with `planar_only=True`; PNG and JPEG exports (by their magic bytes, never the file name) go to
`thyrocad.io.exports.read_image_export`. A view the content does not state is taken from the
file name where it has a view token (`thyrocad.io.names`). `merge_studies` joins the files of
one study (one file per view) with checks.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from thyrocad.errors import FileAccessError, NotDicomError, StudyMergeError, ViewConflictError
from thyrocad.io.dicom import check_input_file, read_dicom
from thyrocad.io.exports import read_image_export
from thyrocad.io.names import view_from_name
from thyrocad.study import Study, View

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"
DICOM_MAGIC_OFFSET = 128


def sniff(path: str | Path) -> str:
    """The format of `path` from its content: "DICOM", "PNG" or "JPEG"; NotDicomError otherwise."""
    path = Path(path)
    head = _head(path, DICOM_MAGIC_OFFSET + 4)
    if head[DICOM_MAGIC_OFFSET : DICOM_MAGIC_OFFSET + 4] == b"DICM":
        return "DICOM"
    if head.startswith(PNG_MAGIC):
        return "PNG"
    if head.startswith(JPEG_MAGIC):
        return "JPEG"
    what = "an empty file" if not head else "neither DICOM (no 'DICM' at byte 128) nor PNG/JPEG"
    raise NotDicomError(
        f"{path}: {what}; give a DICOM Part 10 file or a PNG/JPEG export of one view"
    )


def read_study(
    path: str | Path, view: View | None = None, *, whole_body: bool = False, name_views: bool = True
) -> Study:
    """Read a DICOM file or a PNG/JPEG export into a `Study`, choosing the reader by content.

    `view` names the view of a single-view input that does not state one (an export, or a
    DICOM frame without a view code); it must agree with the view a file states, and cannot
    apply to a file with several views (ViewConflictError). Without `view`, such an input
    takes the view its file name states (`PH0001_anterior.png`; `name_views=False`: stays
    unknown); a view the content states always wins over the name. `whole_body=True` accepts
    whole-body sweeps as they are stored (`thyrocad.intake.load_study` then cuts out the
    neck field). Every failure is an `InputError`.
    """
    path = Path(path)
    kind = sniff(path)
    named = view_from_name(path.name) if name_views and view is None else None
    if kind == "DICOM":
        study = _with_view(read_dicom(path, whole_body=whole_body), view, path)
        if named is not None and study.views == (View.UNKNOWN,):
            return _with_view(study, named.view, path)
        return study
    chosen = view or (named.view if named else View.UNKNOWN)
    return read_image_export(path, view=chosen, whole_body=whole_body)


def _head(path: Path, size: int) -> bytes:
    check_input_file(path)
    try:
        with path.open("rb") as handle:
            return handle.read(size)
    except OSError as exc:
        raise FileAccessError(f"{path}: cannot read: {exc.strerror or exc}") from exc


def _with_view(study: Study, view: View | None, path: Path) -> Study:
    """`study` with its single unknown view set to `view` (checked against what it states)."""
    if view is None or view is View.UNKNOWN or study.views == (view,):
        return study
    if study.views != (View.UNKNOWN,):
        stated = "+".join(v.value for v in study.views)
        raise ViewConflictError(
            f"{path}: the caller says {view.value} but the file holds {stated}; "
            "drop the view argument for this file"
        )
    return dataclasses.replace(study, images=(dataclasses.replace(study.images[0], view=view),))


def merge_studies(studies: list[Study]) -> Study:
    """One `Study` with the views of all `studies` (the files of one study or patient).

    `StudyMergeError` when their pixel spacings differ or a view (anterior, posterior) occurs
    more than once."""
    if len(studies) == 1:
        return studies[0]
    spacings = {s.pixel_spacing_mm for s in studies}
    if len(spacings) > 1:
        raise StudyMergeError(
            "the files of one study have different pixel spacings "
            f"({', '.join(map(str, spacings))}); resample them or keep one acquisition"
        )
    views = [v for s in studies for v in s.views if v is not View.UNKNOWN]
    if len(set(views)) != len(views):
        raise StudyMergeError(
            f"the study's {len(studies)} files hold the views {', '.join(views)}; "
            "give each view once"
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


_EXPORT_DEPTHS = {"L": "8-bit", "1": "1-bit", "LA": "8-bit", "I;16": "16-bit", "I;16B": "16-bit",
                  "I;16L": "16-bit", "I": "32-bit"}  # fmt: skip


def describe_pixels(study: Study) -> str:
    """What the pixel values of `study` are: '16-bit counts' for DICOM, '8-bit gray levels'
    (a display export, not counts) or 'colour converted to gray levels' for PNG/JPEG."""
    meta = study.metadata
    if meta.get("source_format") == "DICOM":
        bits = meta.get("bits_stored")
        return f"{bits}-bit counts" if bits else "counts"
    depth = _EXPORT_DEPTHS.get(meta.get("image_mode", ""))
    return f"{depth} gray levels" if depth else "colour converted to gray levels"
