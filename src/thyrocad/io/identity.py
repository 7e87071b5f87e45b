"""Patient identity from a DICOM header, read only where a deployment chose to store it."""

from __future__ import annotations

from pathlib import Path

from pydicom import dcmread


def patient_identity(path: Path) -> dict[str, str]:
    """Patient name and ID from a DICOM header (the web app stores them only when configured
    to; they never go to logs)."""
    ds = dcmread(path, stop_before_pixels=True, specific_tags=["PatientName", "PatientID"])
    return {"name": str(ds.get("PatientName", "")), "id": str(ds.get("PatientID", ""))}
