"""What a diagnosis needs from the files of one study, and how it is kept for a re-run.

`StudySource.read` reads the files (one study: one file, or one file per view) into a `Study`
(`thyrocad.intake.load_study`: counts only, no identity; the neck field of a whole-body sweep,
input-domain flags) and, for every DICOM file, its `reference_header`: the UIDs and the
sanitised patient and study attributes that DICOM results copy. `save` keeps exactly that in a
folder so that the study can be diagnosed again (a physician setting the thyroid bed) without
keeping the uploaded file:

- `input.npz`: each view's count image (float32), its name, where it lies in the file's frame
  and its flags, the pixel spacing, frame duration and the non-identifying metadata of the
  `Study`;
- `input_reference_<k>.dcm`: the reference header(s) (no pixels; patient data like the SR).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

from thyrocad.diagnosis.dicom_sr import reference_header
from thyrocad.errors import DicomResultError, InputError
from thyrocad.intake import load_study
from thyrocad.io.identity import read_patient_fields
from thyrocad.io.read import merge_studies
from thyrocad.study import Study, View, ViewImage

INPUT_NAME = "input.npz"
REFERENCE_NAME = "input_reference_{k}.dcm"
NO_DICOM_RESULTS = "DICOM results not written: {reason}"


@dataclass(frozen=True)
class StudySource:
    """One study's views and, per DICOM file, what its results reference (sanitised)."""

    study: Study
    references: tuple[Dataset, ...] = ()
    identity: dict[str, str] | None = None  # of the first DICOM file, sanitised
    dicom: bool = False  # any DICOM file among the inputs
    notes: tuple[str, ...] = field(default_factory=tuple)  # what was sanitised, or why no refs

    @classmethod
    def read(cls, paths: Sequence[Path], views: Sequence[View | None] | None = None) -> StudySource:
        """Read the files of one study; `views[i]` names the view of a single-view file that
        does not state one (e.g. a PNG export). Several files are merged with `merge_studies`'
        checks. Header values that break DICOM's rules never fail the read: they are fixed or
        dropped, with a note."""
        paths = [Path(p) for p in paths]
        if not paths:
            raise InputError("no files given for the study")
        views = list(views) if views is not None else [None] * len(paths)
        if len(views) != len(paths):
            raise InputError(f"{len(views)} view names for {len(paths)} files")
        studies = [load_study(p, v) for p, v in zip(paths, views, strict=True)]
        references, identity, notes = [], None, []
        for path, study in zip(paths, studies, strict=True):
            if study.metadata.get("source_format") != "DICOM":
                continue
            try:
                reference, fields = reference_header(path)
            except DicomResultError as exc:
                notes.append(NO_DICOM_RESULTS.format(reason=exc))
                continue
            references.append(reference)
            identity = identity or fields.identity()
            notes += fields.notes
        dicom = any(s.metadata.get("source_format") == "DICOM" for s in studies)
        return cls(merge_studies(studies), tuple(references), identity, dicom, tuple(notes))

    def save(self, folder: Path) -> list[Path]:
        """Keep the views and the reference headers in `folder` (see the module docstring)."""
        folder.mkdir(parents=True, exist_ok=True)
        study = self.study
        meta = {
            "views": [im.view.value for im in study.images],
            "origins_rc": [list(im.origin_rc) for im in study.images],
            "flags": [list(im.flags) for im in study.images],
            "pixel_spacing_mm": study.pixel_spacing_mm,
            "frame_duration_ms": study.frame_duration_ms,
            "spacing_note": study.spacing_note,
            "metadata": study.metadata,
            "notes": list(self.notes),
        }
        arrays = {f"view{i}": im.counts for i, im in enumerate(study.images)}
        written = [folder / INPUT_NAME]
        np.savez(written[0], meta=np.array(json.dumps(meta)), **arrays)
        for k, reference in enumerate(self.references):
            written.append(_save_reference(reference, folder / REFERENCE_NAME.format(k=k)))
        return written

    @classmethod
    def load(cls, folder: Path) -> StudySource:
        """The source `save` kept in `folder`; InputError if it was not kept or is damaged."""
        path = folder / INPUT_NAME
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                origins = meta.get("origins_rc") or [(0, 0)] * len(meta["views"])
                flags = meta.get("flags") or [()] * len(meta["views"])
                images = tuple(
                    ViewImage(
                        View(name),
                        data[f"view{i}"].astype(np.float32),
                        tuple(origins[i]),
                        tuple(flags[i]),
                    )
                    for i, name in enumerate(meta["views"])
                )
        except (OSError, KeyError, ValueError) as exc:
            raise InputError(
                f"the views of this diagnosis were not kept or are damaged ({type(exc).__name__})"
            ) from None
        spacing = meta["pixel_spacing_mm"]
        study = Study(
            images=images,
            pixel_spacing_mm=tuple(spacing) if spacing else None,
            frame_duration_ms=meta["frame_duration_ms"],
            spacing_note=meta["spacing_note"],
            metadata=meta["metadata"],
        )
        references = tuple(
            pydicom.dcmread(p) for p in sorted(folder.glob(REFERENCE_NAME.format(k="*")))
        )
        identity = read_patient_fields(references[0]).identity() if references else None
        return cls(study, references, identity, bool(references), tuple(meta["notes"]))


def _save_reference(reference: Dataset, path: Path) -> Path:
    ds = Dataset(reference)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = reference.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = reference.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.save_as(path, enforce_file_format=True)
    return path
