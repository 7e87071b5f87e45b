"""Patient identity: read and sanitised where a deployment shows it or copies it into DICOM
results (`thyrocad.io.privacy` keeps it out of logs and messages).

Real PACS data often breaks the value rules of the patient and study modules (a birth date
`1970-01-01` or `19700101RT`, a sex `male`, a 70-character name). `read_patient_fields` reads
these values raw (pydicom never converts, validates or logs them) and returns them sanitised:
fixed where the intent is unambiguous, dropped otherwise, with one note per change that names
the attribute, never its value.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.charset import convert_encodings, decode_bytes
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from thyrocad.warning_filters import quiet

PN_DELIMITERS = {0x5C, 0x3D, 0x5E}  # '\', '=', '^'
MAX_LENGTH = {"PN": 64, "LO": 64, "SH": 16}  # PN: per component group (PS3.5 Table 6.2-1)
SEX_CODES = {"M": "M", "MALE": "M", "F": "F", "FEMALE": "F", "O": "O", "OTHER": "O"}

# Patient and study attributes copied into results, with their value representation.
FIELDS = {
    "PatientName": "PN",
    "PatientID": "LO",
    "IssuerOfPatientID": "LO",
    "PatientBirthDate": "DA",
    "PatientSex": "CS",
    "StudyDate": "DA",
    "StudyTime": "TM",
    "AccessionNumber": "SH",
    "StudyID": "SH",
    "ReferringPhysicianName": "PN",
    "StudyDescription": "LO",
    "Manufacturer": "LO",
    "ManufacturerModelName": "LO",
}
# What the web app shows (and stores with --store-patient-ids): key -> DICOM keyword.
IDENTITY = {
    "name": "PatientName",
    "id": "PatientID",
    "birth_date": "PatientBirthDate",
    "sex": "PatientSex",
    "study_date": "StudyDate",
    "accession": "AccessionNumber",
}


@dataclass(frozen=True)
class PatientFields:
    """Sanitised patient/study values (keyword -> text, "" when absent or dropped) and one
    note per value that was fixed or dropped (attribute names only, never values)."""

    values: dict[str, str]
    notes: tuple[str, ...] = field(default_factory=tuple)

    def identity(self) -> dict[str, str]:
        """The values a physician checks: name, ID, birth date, sex, study date, accession."""
        return {key: self.values.get(keyword, "") for key, keyword in IDENTITY.items()}


def read_patient_fields(ds: Dataset) -> PatientFields:
    """The sanitised patient/study values of a header read by pydicom (values left raw)."""
    encodings = _encodings(ds)
    values: dict[str, str] = {}
    notes: list[str] = []
    for keyword, vr in FIELDS.items():
        raw = _raw_text(ds, keyword, encodings)
        clean, note = SANITISERS[vr](raw)
        values[keyword] = clean
        if note:
            notes.append(f"{keyword} {note}")
    return PatientFields(values, tuple(notes))


def patient_identity(path: Path) -> dict[str, str]:
    """Name, ID, birth date, sex, study date and accession of a DICOM file, sanitised (the web
    app stores them only when configured to; they never go to logs)."""
    with quiet():
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=list(FIELDS))
    return read_patient_fields(ds).identity()


def _encodings(ds: Dataset) -> list[str]:
    raw = ds.get_item(tag_for_keyword("SpecificCharacterSet"))
    value = raw.value if raw is not None else None
    if isinstance(value, bytes):
        value = [v.strip() for v in value.decode("ascii", "replace").split("\\")]
    try:
        with quiet():
            return convert_encodings(value or "ISO_IR 6")
    except (LookupError, ValueError, TypeError):
        return ["iso8859"]


def _raw_text(ds: Dataset, keyword: str, encodings: list[str]) -> str:
    """The element's text without pydicom's conversion (which validates and logs values)."""
    element = ds.get_item(tag_for_keyword(keyword))
    value = None if element is None else element.value
    if value is None:
        return ""
    if isinstance(value, bytes):
        with quiet():
            return decode_bytes(value, encodings, PN_DELIMITERS)
    if isinstance(value, list | tuple | MultiValue):
        return "\\".join(str(v) for v in value)
    return str(value)


# --- sanitisers: raw text -> (clean value, note or "") ------------------------------------------


def _printable(text: str) -> str:
    return "".join(c for c in text if c.isprintable()).strip(" \x00")


def _first_value(text: str) -> tuple[str, str]:
    first, _, rest = text.partition("\\")
    return first, ("had several values: the first kept" if rest.strip() else "")


def _long_string(text: str, limit: int) -> tuple[str, str]:
    value, note = _first_value(_printable(text))
    if len(value) > limit:
        return value[:limit].rstrip(), f"longer than {limit} characters: truncated"
    return value, note


def _person_name(text: str) -> tuple[str, str]:
    """At most three component groups (alphabetic=ideographic=phonetic) of at most 64
    characters each, cut at the end of the group (the given names before the family name)."""
    value, note = _first_value(_printable(text))
    groups = value.split("=")
    limit = MAX_LENGTH["PN"]
    fixed = "=".join(g[:limit].rstrip("^ ") if len(g) > limit else g for g in groups[:3])
    if len(groups) > 3 or any(len(g) > limit for g in groups):
        note = f"name longer than {limit} characters per component group: truncated"
    return fixed, note


_DATE = re.compile(r"(\d{4})[-./]?(\d{2})[-./]?(\d{2})(.*)")
_TIME = re.compile(r"(\d{2}):?(\d{2})?(?::?(\d{2}))?(\.\d{1,6})?")


def _date(text: str) -> tuple[str, str]:
    value = _printable(text)
    if not value:
        return "", ""
    match = _DATE.fullmatch(value)
    if match is None:
        return "", "is not a date: dropped"
    year, month, day, rest = match.groups()
    try:
        dt.date(int(year), int(month), int(day))
    except ValueError:
        return "", "is not a valid date: dropped"
    clean = f"{year}{month}{day}"
    if clean == value:
        return clean, ""
    return clean, "reformatted to YYYYMMDD" + (" (trailing text dropped)" if rest else "")


def _time(text: str) -> tuple[str, str]:
    value = _printable(text)
    if not value:
        return "", ""
    match = _TIME.fullmatch(value)
    if match is None:
        return "", "is not a time: dropped"
    hours, minutes, seconds, fraction = match.groups()
    if int(hours) > 23 or int(minutes or 0) > 59 or int(seconds or 0) > 60:
        return "", "is not a valid time: dropped"
    clean = hours + (minutes or "") + (seconds or "") + (fraction or "")
    return clean, "" if clean == value else "reformatted to HHMMSS"


def _sex(text: str) -> tuple[str, str]:
    value = _printable(text).upper()
    if not value:
        return "", ""
    if value in SEX_CODES:
        return SEX_CODES[value], "" if value == SEX_CODES[value] else "mapped to M/F/O"
    return "", "is not M, F or O: dropped"


SANITISERS: dict[str, Callable[[str], tuple[str, str]]] = {
    "PN": _person_name,
    "LO": lambda t: _long_string(t, MAX_LENGTH["LO"]),
    "SH": lambda t: _long_string(t, MAX_LENGTH["SH"]),
    "DA": _date,
    "TM": _time,
    "CS": _sex,
}
