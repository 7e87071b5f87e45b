"""Write a de-identified copy of a public DICOM scan for realdata/ (see realdata/MANIFEST.md).

Keeps what thyrocad reads (pixels, spacing, view, radionuclide, energy window, zoom, field of
view, camera model) and drops everything that names or dates a person, an institution or a
visit: patient and physician fields, accession and study IDs, private tags, free-text
requests; dates become 19000101 and UIDs are made anew.

    python scripts/deidentify_real_scan.py IN.dcm OUT.dcm
"""

from __future__ import annotations

import sys

import pydicom
from pydicom.uid import generate_uid

BLANK = (
    "PatientName", "PatientID", "IssuerOfPatientID", "PatientBirthDate", "PatientBirthTime",
    "PatientAge", "PatientSex", "InstitutionName", "StationName", "NameOfPhysiciansReadingStudy",
    "ReferringPhysicianName", "OperatorsName", "AccessionNumber", "StudyID",
    "PerformedProcedureStepID", "ProtocolName",
)  # fmt: skip
DROP = ("RequestAttributesSequence", "InterventionDrugInformationSequence", "DateOfLastCalibration",
        "TimeOfLastCalibration", "SoftwareVersions")  # fmt: skip
FILE_META = ("PrivateInformationCreatorUID", "PrivateInformation", "SourceApplicationEntityTitle")
UIDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID")


def deidentify(ds: pydicom.Dataset) -> pydicom.Dataset:
    """Strip identifying fields from `ds` in place and return it."""
    ds.remove_private_tags()
    for meta in FILE_META:
        if meta in ds.file_meta:
            delattr(ds.file_meta, meta)
    for keyword in BLANK:
        if keyword in ds:
            setattr(ds, keyword, "")
    for keyword in DROP:
        if keyword in ds:
            delattr(ds, keyword)
    for element in ds.iterall():
        if element.VR == "DA" and element.value:
            element.value = "19000101"
    for keyword in UIDS:
        if keyword in ds:
            setattr(ds, keyword, generate_uid())
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = "thyrocad scripts/deidentify_real_scan.py"
    return ds


if __name__ == "__main__":
    source, target = sys.argv[1:3]
    deidentify(pydicom.dcmread(source)).save_as(target, enforce_file_format=True)
