"""Exception types. Every error a user can cause derives from `ThyrocadError`.

Messages say what was wrong and what to do; they never contain patient names or IDs.
"""


class ThyrocadError(Exception):
    """Base class of all errors raised on purpose by thyrocad."""


# --- reading images -------------------------------------------------------------------------


class InputError(ThyrocadError):
    """An input image file cannot be used."""


class NotDicomError(InputError):
    """The file is neither DICOM nor a supported image export (PNG/JPG)."""


class TruncatedFileError(InputError):
    """The file ends before its declared content."""


class NoPixelDataError(InputError):
    """The DICOM object carries no (or empty) pixel data."""


class UnsupportedTransferSyntaxError(InputError):
    """The pixel data is encoded in a transfer syntax no installed decoder handles."""


class PixelDecodeError(InputError):
    """The pixel data could not be decoded (corrupt or non-conforming compressed stream)."""


class NotPlanarError(InputError):
    """The object is not a planar neck view: a SPECT volume, a whole-body sweep, a PET slice..."""


class ImageSizeError(InputError):
    """Declared or actual image dimensions are absurd for a planar neck view."""


class InconsistentHeaderError(InputError):
    """The header contradicts itself (frame count vs detector vector, bits, ...)."""


# --- cohorts ----------------------------------------------------------------------------------


class CohortError(ThyrocadError):
    """A labelled cohort folder is invalid. `problems` lists every problem found, one per row."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        self.problems = list(problems or [])
        detail = "".join(f"\n  - {p}" for p in self.problems)
        super().__init__(message + detail)
