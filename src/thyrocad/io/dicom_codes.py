"""Coded concepts shared by the DICOM reader and writers (projection views, modality).

The projection codes are those of DICOM PS3.16 CID 26 "Nuclear Medicine Projections"
(SNOMED CT, with the SNOMED-RT codes earlier editions used); they agree with
`pydicom.sr.codedict.codes.cid26.AnteriorProjection` / `.PosteriorProjection`.
"""

from thyrocad.study import View

NM_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.20"

# Projection codes written in the View Code Sequence of each Detector Information Sequence
# item: (code value, coding scheme designator, code meaning).
VIEW_CODES: dict[View, tuple[str, str, str]] = {
    View.ANTERIOR: ("399321004", "SCT", "Anterior projection"),
    View.POSTERIOR: ("399001007", "SCT", "Posterior projection"),
}

# Older SNOMED-RT forms of the same two concepts, still found in files written before CID 26
# moved to SNOMED CT: (code value, coding scheme designator) -> view.
LEGACY_VIEW_CODES: dict[tuple[str, str], View] = {
    ("G-5215", "SRT"): View.ANTERIOR,
    ("G-5216", "SRT"): View.POSTERIOR,
    ("G-5215", "SNM3"): View.ANTERIOR,
    ("G-5216", "SNM3"): View.POSTERIOR,
}
